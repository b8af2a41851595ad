import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { closeSync, constants, openSync, readFileSync, readSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  AT_FDCWD,
  NativeArgumentError,
  O_PATH,
  openat2,
  RESOLVE_BENEATH,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_SYMLINKS,
  SyscallError,
} from '../../src/native/index.js'

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}

function readAll(fd: number): string {
  const buf = Buffer.alloc(4096)
  const n = readSync(fd, buf, 0, buf.length, 0)
  return buf.toString('utf8', 0, n)
}

describe('openat2', () => {
  let dir: string
  let root: string
  let rootFd: number
  const fds: number[] = []

  beforeEach(async () => {
    // <dir>/root is the "layer": it has its own etc/passwd, a symlink to /etc/passwd and to ../../…
    dir = await mkdtemp(join(tmpdir(), 'native-openat2-'))
    root = join(dir, 'root')
    await mkdir(join(root, 'etc'), { recursive: true })
    await mkdir(join(root, 'sub', 'deeper'), { recursive: true })
    await writeFile(join(root, 'etc', 'passwd'), 'inside')
    await writeFile(join(dir, 'outside'), 'outside')
    await symlink('/etc/passwd', join(root, 'abs-link'))
    await symlink('../../../../../../outside', join(root, 'sub', 'rel-link'))
    rootFd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY)
    fds.push(rootFd)
  })
  afterEach(async () => {
    for (const fd of fds.splice(0)) closeSync(fd)
    await rm(dir, { recursive: true, force: true })
  })

  function open(path: string | Buffer, flags: number, resolve: number, mode = 0): number {
    const fd = openat2(rootFd, path, { flags, mode, resolve })
    fds.push(fd)
    return fd
  }

  it('keeps ../../etc/passwd and an absolute symlink inside the root with RESOLVE_IN_ROOT', () => {
    expect(readAll(open('../../etc/passwd', constants.O_RDONLY, RESOLVE_IN_ROOT))).toBe('inside')
    expect(readAll(open('sub/deeper/../../../../etc/passwd', constants.O_RDONLY, RESOLVE_IN_ROOT))).toBe('inside')
    expect(readAll(open('abs-link', constants.O_RDONLY, RESOLVE_IN_ROOT))).toBe('inside')
    expect(readAll(open('/etc/passwd', constants.O_RDONLY, RESOLVE_IN_ROOT))).toBe('inside')
    // The relative link climbs past the root, so it lands on root/outside, which does not exist.
    expect(thrown(() => open('sub/rel-link', constants.O_RDONLY, RESOLVE_IN_ROOT))).toMatchObject({
      code: 'ENOENT',
      kind: 'not-found',
    })
    // Without the rule, the same absolute link goes to the host's file.
    expect(readAll(open('abs-link', constants.O_RDONLY, 0))).toBe(readFileSync('/etc/passwd', 'utf8').slice(0, 4096))
  })

  it('refuses a symlink with RESOLVE_NO_SYMLINKS (ELOOP, unsafe-path) and an escape with RESOLVE_BENEATH', () => {
    const err = thrown(() => open('abs-link', constants.O_RDONLY, RESOLVE_NO_SYMLINKS))
    expect(err).toBeInstanceOf(SyscallError)
    expect(err).toMatchObject({ code: 'ELOOP', kind: 'unsafe-path', syscall: 'openat2', path: 'abs-link' })
    expect(thrown(() => open('../outside', constants.O_RDONLY, RESOLVE_BENEATH))).toMatchObject({
      code: 'EXDEV',
      kind: 'unsafe-path',
    })
    expect(readAll(open('etc/passwd', constants.O_RDONLY, RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH))).toBe('inside')
  })

  it('creates files with a mode, and returns fds that node:fs can use', async () => {
    const fd = open('sub/new', constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, RESOLVE_IN_ROOT, 0o600)
    writeSync(fd, 'written')
    expect(await readFile(join(root, 'sub', 'new'), 'utf8')).toBe('written')
    expect(thrown(() => open('sub/new', constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, RESOLVE_IN_ROOT, 0o600))).toMatchObject({
      code: 'EEXIST',
      kind: 'already-exists',
    })
    const pathFd = open(Buffer.from('etc'), O_PATH | constants.O_DIRECTORY, RESOLVE_IN_ROOT)
    expect(pathFd).toBeGreaterThan(2)
    const cwdFd = openat2(AT_FDCWD, join(root, 'etc', 'passwd'), { flags: constants.O_RDONLY })
    fds.push(cwdFd)
    expect(readAll(cwdFd)).toBe('inside')
  })

  it('fails typed on bad arguments', () => {
    expect(thrown(() => open('missing', constants.O_RDONLY, RESOLVE_IN_ROOT))).toMatchObject({ code: 'ENOENT' })
    // The kernel refuses a mode without O_CREAT, and unknown resolve bits.
    expect(thrown(() => open('etc/passwd', constants.O_RDONLY, RESOLVE_IN_ROOT, 0o644))).toMatchObject({ code: 'EINVAL' })
    expect(thrown(() => open('etc/passwd', constants.O_RDONLY, 0x4000))).toMatchObject({ code: 'EINVAL' })
    expect(thrown(() => open('etc\0/../x', constants.O_RDONLY, RESOLVE_IN_ROOT))).toBeInstanceOf(NativeArgumentError)
    expect(thrown(() => openat2(-5, 'x', { flags: 0 }))).toBeInstanceOf(NativeArgumentError)
  })
})
