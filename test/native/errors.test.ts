import { describe, expect, it } from 'vitest'
import { constants } from 'node:os'
import {
  errnoName,
  errnoValue,
  kindOfErrno,
  NativeArgumentError,
  SyscallError,
} from '../../src/native/index.js'
import { hasCode, isKind, isKindedError } from '../../src/errors.js'

describe('errno names and kinds', () => {
  it('names errnos as the man pages do', () => {
    expect(errnoName(2)).toBe('ENOENT')
    expect(errnoName(constants.errno.EAGAIN)).toBe('EAGAIN')
    expect(errnoName(constants.errno.EOPNOTSUPP)).toBe('EOPNOTSUPP')
    expect(errnoName(constants.errno.ENODATA)).toBe('ENODATA')
    expect(errnoName(9999)).toBe('E9999')
    expect(errnoValue('EXDEV')).toBe(18)
    expect(() => errnoValue('ENOPE')).toThrow(TypeError)
  })

  it('maps errnos to kinds', () => {
    const kinds = Object.fromEntries(
      ['ENOENT', 'EEXIST', 'EBUSY', 'ENOSPC', 'EDQUOT', 'EPERM', 'EACCES', 'EROFS', 'ENOSYS', 'EOPNOTSUPP', 'EXDEV', 'EINVAL', 'EIO'].map(
        (name) => [name, kindOfErrno(errnoValue(name))],
      ),
    )
    expect(kinds).toEqual({
      ENOENT: 'not-found',
      EEXIST: 'already-exists',
      EBUSY: 'conflict',
      ENOSPC: 'no-space',
      EDQUOT: 'no-space',
      EPERM: 'system',
      EACCES: 'system',
      EROFS: 'system',
      ENOSYS: 'not-supported',
      EOPNOTSUPP: 'not-supported',
      EXDEV: 'system',
      EINVAL: 'invalid-argument',
      EIO: 'system',
    })
  })
})

describe('SyscallError', () => {
  it('looks like a Node errno error and follows the layerstore convention', () => {
    const err = new SyscallError('rename', 17, { path: '/a', dest: '/b' })
    expect(err).toMatchObject({ name: 'SyscallError', code: 'EEXIST', errno: 17, kind: 'already-exists', syscall: 'rename', path: '/a', dest: '/b' })
    expect(err.message).toBe("EEXIST: file already exists, rename '/a' -> '/b'")
    expect(isKindedError(err)).toBe(true)
    expect(isKind(err, 'already-exists')).toBe(true)
    expect(hasCode(err, 'EEXIST')).toBe(true)
  })

  it('lets the call override the kind, keeps raw paths, escapes them in the message', () => {
    const raw = Buffer.from([0x2f, 0x78, 0xff])
    const err = new SyscallError('ioctl', errnoValue('EXDEV'), { path: raw, kind: 'not-supported', detail: 'FICLONE' })
    expect(err.kind).toBe('not-supported')
    expect(err.path).toBe(raw)
    expect(err.message).toContain("'/x\\xff' (FICLONE)")
  })

  it('NativeArgumentError is invalid-argument', () => {
    const err = new NativeArgumentError('mount', 'target', 'contains a NUL byte')
    expect(isKind(err, 'invalid-argument')).toBe(true)
    expect(err.code).toBe('ERR_NATIVE_INVALID_ARGUMENT')
  })
})
