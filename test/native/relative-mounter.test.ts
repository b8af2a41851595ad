/**
 * RelativeMounter: mount(2) from a thread whose cwd is a given directory, so that relative
 * sources, targets and overlay option paths resolve there, while the process's cwd stays.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { isKind } from '../../src/errors.js'
import {
  isMountPoint,
  isOverlaySupported,
  MNT_DETACH,
  mount,
  MS_BIND,
  MS_RDONLY,
  NativeArgumentError,
  RelativeMounter,
  SyscallError,
  umount,
} from '../../src/native/index.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('skipping relative mount tests: they need root (CAP_SYS_ADMIN)')

describe('RelativeMounter arguments', () => {
  it('refuses a relative directory or one with a NUL byte, before starting anything', () => {
    expect(() => new RelativeMounter('relative/dir')).toThrow(NativeArgumentError)
    expect(() => new RelativeMounter(Buffer.from('relative'))).toThrow(NativeArgumentError)
    expect(() => new RelativeMounter('/tmp/a\0b')).toThrow(NativeArgumentError)
  })

  it('refuses a NUL byte in a mount argument', async () => {
    const mounter = new RelativeMounter(tmpdir())
    try {
      await expect(mounter.mount('a\0b', 'target', null, MS_BIND)).rejects.toBeInstanceOf(NativeArgumentError)
      await expect(mounter.mount('overlay', 'target', 'overlay', 0, 'lowerdir=a\0b')).rejects.toMatchObject({
        code: 'ERR_NATIVE_INVALID_ARGUMENT',
        argument: 'data',
      })
    } finally {
      await mounter.close()
    }
  })
})

describe.skipIf(!isRoot)('RelativeMounter', () => {
  let dir: string
  let mounter: RelativeMounter | undefined
  const mounted: string[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'native-relative-mount-'))
  })
  afterEach(async () => {
    // The thread's cwd holds dir busy: end it before removing dir.
    await mounter?.close()
    mounter = undefined
    for (const target of mounted.splice(0).reverse()) await umount(target, MNT_DETACH).catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })

  async function tree(): Promise<void> {
    await mkdir(join(dir, 'source'))
    await writeFile(join(dir, 'source', 'marker'), 'from the temp dir')
    await mkdir(join(dir, 'target'))
  }

  it('bind mounts relative paths from its directory; the process cwd stays', async () => {
    await tree()
    const cwd = process.cwd()
    mounter = new RelativeMounter(dir)
    await mounter.mount('source', 'target', null, MS_BIND)
    mounted.push(join(dir, 'target'))
    expect(process.cwd()).toBe(cwd)
    expect(await isMountPoint(join(dir, 'target'))).toBe(true)
    expect(await readFile(join(dir, 'target', 'marker'), 'utf8')).toBe('from the temp dir')
    // A second call reuses the thread, and absolute paths work too.
    await mkdir(join(dir, 'second'))
    await mounter.mount(join(dir, 'source'), join(dir, 'second'), null, MS_BIND)
    mounted.push(join(dir, 'second'))
    expect(await readdir(join(dir, 'second'))).toEqual(['marker'])
  })

  it('takes its directory as a Buffer', async () => {
    await tree()
    mounter = new RelativeMounter(Buffer.from(dir))
    await mounter.mount(Buffer.from('source'), 'target', null, MS_BIND)
    mounted.push(join(dir, 'target'))
    expect(await readdir(join(dir, 'target'))).toEqual(['marker'])
  })

  it('resolves overlay option paths from its directory', async (ctx) => {
    if (!(await isOverlaySupported())) {
      console.warn('overlay is missing from this kernel: relative overlay mount not checked')
      ctx.skip()
    }
    for (const name of ['low1', 'low2', 'merged']) await mkdir(join(dir, name))
    await writeFile(join(dir, 'low1', 'top'), '1')
    await writeFile(join(dir, 'low2', 'bottom'), '2')
    mounter = new RelativeMounter(dir)
    await mounter.mount('overlay', 'merged', 'overlay', MS_RDONLY, 'lowerdir=low1:low2')
    mounted.push(join(dir, 'merged'))
    expect((await readdir(join(dir, 'merged'))).sort()).toEqual(['bottom', 'top'])
  })

  it('reports a failed mount as a typed SyscallError and stays usable', async () => {
    await tree()
    mounter = new RelativeMounter(dir)
    const err = await mounter.mount('missing', 'target', null, MS_BIND).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SyscallError)
    expect(err).toMatchObject({ code: 'ENOENT', kind: 'not-found', syscall: 'mount', path: 'missing', dest: 'target' })
    expect(isKind(err, 'not-found')).toBe(true)
    expect((err as Error).message).toContain(dir)
    await mounter.mount('source', 'target', null, MS_BIND)
    mounted.push(join(dir, 'target'))
    expect(await isMountPoint(join(dir, 'target'))).toBe(true)
  })

  it('reports a missing directory as chdir ENOENT, and starts afresh on the next call', async () => {
    const later = join(dir, 'later')
    mounter = new RelativeMounter(later)
    const err = await mounter.mount('source', 'target', null, MS_BIND).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SyscallError)
    expect(err).toMatchObject({ code: 'ENOENT', kind: 'not-found', syscall: 'chdir', path: later })
    await mkdir(later)
    await mkdir(join(later, 'source'))
    await mkdir(join(later, 'target'))
    await mounter.mount('source', 'target', null, MS_BIND)
    mounted.push(join(later, 'target'))
    expect(await isMountPoint(join(later, 'target'))).toBe(true)
  })

  it('can be closed twice and used again after close', async () => {
    await tree()
    mounter = new RelativeMounter(dir)
    await mounter.close() // nothing started yet
    await mounter.mount('source', 'target', null, MS_BIND)
    mounted.push(join(dir, 'target'))
    await mounter.close()
    await mounter.close()
    await mkdir(join(dir, 'again'))
    await mounter.mount('source', 'again', null, MS_BIND)
    mounted.push(join(dir, 'again'))
    expect(await readdir(join(dir, 'again'))).toEqual(['marker'])
  })
})

describe.skipIf(!isRoot)('RelativeMounter thread lifetime', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'native-relative-busy-'))
  })
  afterEach(async () => {
    await umount(join(dir, 'fs'), MNT_DETACH).catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })

  it('holds its directory busy until close (an unmount under it fails with EBUSY)', async () => {
    // A tmpfs of our own, so that the thread's cwd sits on a filesystem we can try to unmount.
    const fs = join(dir, 'fs')
    await mkdir(fs)
    await mount('tmpfs', fs, 'tmpfs', 0, 'size=1m')
    await mkdir(join(fs, 'source'))
    await mkdir(join(fs, 'target'))
    const mounter = new RelativeMounter(fs)
    try {
      await mounter.mount('source', 'target', null, MS_BIND)
      await umount(join(fs, 'target'))
      await expect(umount(fs)).rejects.toMatchObject({ code: 'EBUSY', kind: 'conflict' })
    } finally {
      await mounter.close()
    }
    await umount(fs)
    expect(await isMountPoint(fs)).toBe(false)
  })
})
