import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { closeSync, openSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  fgetxattr,
  flistxattr,
  fremovexattr,
  fsetxattr,
  lgetxattr,
  llistxattr,
  lremovexattr,
  lsetxattr,
  NativeArgumentError,
  SyscallError,
  XATTR_CREATE,
  XATTR_REPLACE,
} from '../../src/native/index.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('skipping trusted.* xattr tests: they need root (CAP_SYS_ADMIN)')

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}

describe('xattrs', () => {
  let dir: string
  let file: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'native-xattr-'))
    file = join(dir, 'file')
    await writeFile(file, 'x')
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('sets, gets, lists and removes user.* attributes with binary values', () => {
    const binary = Buffer.from([0, 1, 2, 0xff, 0, 0x80])
    lsetxattr(file, 'user.bin', binary)
    lsetxattr(file, 'user.empty', Buffer.alloc(0))
    expect(lgetxattr(file, 'user.bin')).toEqual(binary)
    expect(lgetxattr(file, 'user.empty')).toEqual(Buffer.alloc(0))
    expect(llistxattr(file).sort()).toEqual(['user.bin', 'user.empty'])
    lremovexattr(file, 'user.bin')
    expect(lgetxattr(file, 'user.bin')).toBeNull()
    expect(llistxattr(file)).toEqual(['user.empty'])
  })

  it('handles a 4 KiB value (size asked first)', () => {
    const big = Buffer.alloc(4000)
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff
    lsetxattr(file, 'user.big', big)
    expect(lgetxattr(file, 'user.big')).toEqual(big)
  })

  it('honours XATTR_CREATE and XATTR_REPLACE', () => {
    lsetxattr(file, 'user.a', Buffer.from('1'), XATTR_CREATE)
    expect(thrown(() => lsetxattr(file, 'user.a', Buffer.from('2'), XATTR_CREATE))).toMatchObject({
      code: 'EEXIST',
      kind: 'already-exists',
    })
    expect(thrown(() => lsetxattr(file, 'user.b', Buffer.from('2'), XATTR_REPLACE))).toMatchObject({
      code: 'ENODATA',
      kind: 'not-found',
    })
  })

  it('gives typed failures: null for a missing name, ENOENT for a missing file', () => {
    expect(lgetxattr(file, 'user.none')).toBeNull()
    const missing = join(dir, 'missing')
    const err = thrown(() => lgetxattr(missing, 'user.x'))
    expect(err).toBeInstanceOf(SyscallError)
    expect(err).toMatchObject({ code: 'ENOENT', errno: 2, kind: 'not-found', syscall: 'lgetxattr', path: missing })
    expect(thrown(() => llistxattr(missing))).toMatchObject({ code: 'ENOENT', kind: 'not-found' })
    expect(thrown(() => lremovexattr(file, 'user.none'))).toMatchObject({ code: 'ENODATA', kind: 'not-found' })
    expect(thrown(() => lsetxattr(file, 'bogus.ns', Buffer.from('x')))).toMatchObject({ code: 'EOPNOTSUPP' })
    expect(thrown(() => lsetxattr(file, 'user.a\0b', Buffer.from('x')))).toBeInstanceOf(NativeArgumentError)
  })

  it('takes Buffer paths that are not UTF-8', async () => {
    const raw = Buffer.concat([Buffer.from(join(dir, 'f-')), Buffer.from([0xff, 0xfe])])
    closeSync(openSync(raw, 'w'))
    lsetxattr(raw, 'user.k', Buffer.from('v'))
    expect(lgetxattr(raw, 'user.k')).toEqual(Buffer.from('v'))
    expect(llistxattr(raw)).toEqual(['user.k'])
  })

  it('works on fds', () => {
    const fd = openSync(file, 'r+')
    try {
      fsetxattr(fd, 'user.fd', Buffer.from('via fd'))
      expect(fgetxattr(fd, 'user.fd')).toEqual(Buffer.from('via fd'))
      expect(flistxattr(fd)).toEqual(['user.fd'])
      fremovexattr(fd, 'user.fd')
      expect(fgetxattr(fd, 'user.fd')).toBeNull()
    } finally {
      closeSync(fd)
    }
    expect(thrown(() => fgetxattr(-1, 'user.x'))).toBeInstanceOf(NativeArgumentError)
  })

  it('refuses user.* on a symlink (EPERM) and does not follow it', async () => {
    const link = join(dir, 'link')
    await symlink(file, link)
    expect(thrown(() => lsetxattr(link, 'user.x', Buffer.from('x')))).toMatchObject({ code: 'EPERM', kind: 'system' })
    lsetxattr(file, 'user.target', Buffer.from('t'))
    expect(lgetxattr(link, 'user.target')).toBeNull() // the link's own attributes, not the target's
  })

  it.skipIf(!isRoot)('sets trusted.overlay.opaque, also on a symlink', async () => {
    const sub = join(dir, 'sub')
    await mkdir(sub)
    lsetxattr(sub, 'trusted.overlay.opaque', Buffer.from('y'))
    expect(lgetxattr(sub, 'trusted.overlay.opaque')).toEqual(Buffer.from('y'))
    expect(llistxattr(sub)).toContain('trusted.overlay.opaque')
    const link = join(dir, 'link')
    await symlink('nowhere', link)
    lsetxattr(link, 'trusted.overlay.origin', Buffer.from([1, 2, 3]))
    expect(lgetxattr(link, 'trusted.overlay.origin')).toEqual(Buffer.from([1, 2, 3]))
  })
})
