import { mkdtemp, mkdir, rm, writeFile, readFile } from 'node:fs/promises'
import { closeSync, openSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  attachMount,
  FSCONFIG_CMD_CREATE,
  FSCONFIG_SET_STRING,
  fsconfig,
  fsmount,
  fsopen,
  isMountPoint,
  MNT_DETACH,
  mount,
  mountsUnder,
  mountSync,
  MS_BIND,
  MS_RDONLY,
  MS_REMOUNT,
  NativeArgumentError,
  readMountInfo,
  SyscallError,
  umount,
  umountSync,
} from '../../src/native/index.js'
import { isKind } from '../../src/errors.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('skipping mount tests: they need root (CAP_SYS_ADMIN)')

describe.skipIf(!isRoot)('mount and umount', () => {
  let dir: string
  const mounted: (string | Buffer)[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'native-mount-'))
  })
  afterEach(async () => {
    // Lazy unmounts so that a failed test cannot leave a busy mount behind.
    for (const target of mounted.splice(0).reverse()) await umount(target, MNT_DETACH).catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })

  async function bind(source: string, target: string, flags = 0): Promise<void> {
    await mount(source, target, null, MS_BIND | flags)
    mounted.push(target)
  }

  /** A source dir holding `file` (`content`) and an empty target dir, in the test's dir. */
  async function sourceAndTarget(content: string): Promise<{ src: string; target: string }> {
    const src = join(dir, 'src')
    const target = join(dir, 'target')
    await mkdir(src)
    await mkdir(target)
    await writeFile(join(src, 'file'), content)
    return { src, target }
  }

  it('bind mounts, remounts read-only (EROFS on write), and unmounts', async () => {
    const { src, target } = await sourceAndTarget('hello')
    await bind(src, target)
    expect(await readFile(join(target, 'file'), 'utf8')).toBe('hello')
    expect(await isMountPoint(target)).toBe(true)
    expect(await isMountPoint(src)).toBe(false)

    await mount(null, target, null, MS_REMOUNT | MS_BIND | MS_RDONLY)
    const err = await writeFile(join(target, 'new'), 'x').catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'EROFS' })
    const info = (await readMountInfo()).find((m) => m.mountPoint === target)
    expect(info?.options.split(',')).toContain('ro')

    await umount(target)
    mounted.pop()
    expect(await isMountPoint(target)).toBe(false)
    await writeFile(join(target, 'new'), 'x') // the underlying dir is writable again
  })

  it('mounts and unmounts on the calling thread too, with the same typed errors', async () => {
    const { src, target } = await sourceAndTarget('inline')
    mountSync(src, target, null, MS_BIND)
    mounted.push(target)
    expect(await readFile(join(target, 'file'), 'utf8')).toBe('inline')
    expect(await isMountPoint(target)).toBe(true)
    umountSync(target, MNT_DETACH)
    mounted.pop()
    expect(await isMountPoint(target)).toBe(false)
    expect(() => umountSync(target)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'umount2', path: target }))
    let err: unknown
    try {
      mountSync(join(dir, 'missing'), target, null, MS_BIND)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(SyscallError)
    expect(err).toMatchObject({ code: 'ENOENT', kind: 'not-found', path: join(dir, 'missing'), dest: target })
    expect(() => mountSync('a\0b', target, null, MS_BIND)).toThrow(NativeArgumentError)
  })

  it('refuses to unmount a busy mount (EBUSY, conflict) but MNT_DETACH detaches it', async () => {
    const { src, target } = await sourceAndTarget('x')
    await bind(src, target)
    const fd = openSync(join(target, 'file'), 'r')
    try {
      const err = await umount(target).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(SyscallError)
      expect(err).toMatchObject({ code: 'EBUSY', errno: 16, kind: 'conflict', syscall: 'umount2', path: target })
      await umount(target, MNT_DETACH)
      mounted.pop()
      expect(await isMountPoint(target)).toBe(false)
    } finally {
      closeSync(fd)
    }
  })

  it('fails with typed errors: a missing source is not-found, a non-mount is EINVAL', async () => {
    const target = join(dir, 'target')
    await mkdir(target)
    const missing = await mount(join(dir, 'nope'), target, null, MS_BIND).catch((e: unknown) => e)
    expect(missing).toMatchObject({ code: 'ENOENT', kind: 'not-found', syscall: 'mount', path: join(dir, 'nope'), dest: target })
    expect(isKind(missing, 'not-found')).toBe(true)
    const notMounted = await umount(target).catch((e: unknown) => e)
    expect(notMounted).toMatchObject({ code: 'EINVAL', syscall: 'umount2' })
    const badType = await mount('none', target, 'no-such-fs', 0).catch((e: unknown) => e)
    expect(badType).toMatchObject({ code: 'ENODEV', kind: 'not-supported' })
    await expect(mount('a\0b', target, null, MS_BIND)).rejects.toBeInstanceOf(NativeArgumentError)
  })

  it('mounts names with spaces and non-UTF-8 bytes, and mountinfo unescapes them', async () => {
    const src = join(dir, 'src')
    await mkdir(src)
    const spaced = join(dir, 'with space\tand tab')
    await mkdir(spaced)
    await bind(src, spaced)
    const raw = Buffer.concat([Buffer.from(join(dir, 'latin-')), Buffer.from([0xe9])])
    await mkdir(raw)
    await mount(src, raw, null, MS_BIND)
    mounted.push(raw)
    try {
      const infos = await readMountInfo()
      expect(infos.map((m) => m.mountPoint)).toContain(spaced)
      expect(infos.map((m) => m.mountPoint)).toContain(raw.toString('latin1'))
      expect(infos.some((m) => m.mountPointBytes.equals(raw))).toBe(true)
      expect(await isMountPoint(spaced)).toBe(true)
      const under = await mountsUnder(dir)
      expect(under.map((m) => m.mountPoint).sort()).toEqual([spaced, raw.toString('latin1')].sort())
    } finally {
      await umount(raw)
      mounted.pop()
    }
  })

  it('lists nested mounts under a dir deepest first', async () => {
    const src = join(dir, 'src')
    const outer = join(dir, 'outer')
    await mkdir(src)
    await mkdir(join(src, 'inner'), { recursive: true })
    await mkdir(outer)
    await bind(src, outer)
    await bind(src, join(outer, 'inner'))
    const under = await mountsUnder(dir)
    expect(under.map((m) => m.mountPoint)).toEqual([join(outer, 'inner'), outer])
    await umount(outer, MNT_DETACH) // a lazy unmount detaches the whole subtree
    mounted.splice(0)
    expect(await mountsUnder(dir)).toEqual([])
  })

  it('mounts through the new mount API (fsopen, fsconfig, fsmount, move_mount)', async () => {
    const target = join(dir, 'tmpfs')
    await mkdir(target)
    const fd = fsopen('tmpfs')
    try {
      fsconfig(fd, FSCONFIG_SET_STRING, 'size', '1m')
      expect(() => fsconfig(fd, FSCONFIG_SET_STRING, 'no-such-option', 'x')).toThrow(SyscallError)
      fsconfig(fd, FSCONFIG_CMD_CREATE)
      const mfd = fsmount(fd)
      try {
        attachMount(mfd, target)
        mounted.push(target)
      } finally {
        closeSync(mfd)
      }
    } finally {
      closeSync(fd)
    }
    const info = (await readMountInfo()).find((m) => m.mountPoint === target)
    expect(info?.fstype).toBe('tmpfs')
    const noFs = (() => {
      try {
        return fsopen('no-such-fs')
      } catch (e) {
        return e
      }
    })()
    expect(noFs).toMatchObject({ code: 'ENODEV', kind: 'not-supported', syscall: 'fsopen' })
  })
})
