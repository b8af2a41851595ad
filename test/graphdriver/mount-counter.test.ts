import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MountCounter } from '../../src/graphdriver/mount-counter.js'
import { mountPointsUnder, unmountAll } from '../../src/graphdriver/unmount-all.js'
import { isMountPoint, mount, MNT_DETACH, MS_BIND, umount } from '../../src/native/index.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('mount-counter tests skipped: mounting needs root')

describe.skipIf(!isRoot)('MountCounter', () => {
  let tmp: string
  let src: string
  let target: string
  let mounts: number
  let unmounts: number
  const doMount = async (): Promise<void> => {
    mounts++
    await mount(src, target, null, MS_BIND)
  }
  const doUnmount = async (): Promise<void> => {
    unmounts++
    await umount(target, MNT_DETACH)
  }
  const counter = (): MountCounter => new MountCounter({ isMounted: isMountPoint })

  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'layerstore-mount-counter-'))
    src = join(tmp, 'src')
    target = join(tmp, 'target')
    await mkdir(src)
    await mkdir(target)
    await writeFile(join(src, 'f'), 'hello')
    mounts = 0
    unmounts = 0
  })
  afterEach(async () => {
    await unmountAll(tmp)
    await rm(tmp, { recursive: true, force: true })
  })

  it('mounts on the first acquire and unmounts on the last release', async () => {
    const c = counter()
    expect(await c.acquire(target, doMount)).toBe(1)
    expect(await c.acquire(target, doMount)).toBe(2)
    expect(mounts).toBe(1)
    expect(await readFile(join(target, 'f'), 'utf8')).toBe('hello')
    expect(await c.release(target, doUnmount)).toBe(1)
    expect(await isMountPoint(target)).toBe(true)
    expect(await c.release(target, doUnmount)).toBe(0)
    expect(unmounts).toBe(1)
    expect(await isMountPoint(target)).toBe(false)
    await expect(c.release(target, doUnmount)).rejects.toMatchObject({ code: 'ERR_MOUNT_NOT_HELD', kind: 'conflict' })
    expect(c.count(target)).toBe(0)
    expect(c.paths()).toEqual([])
  })

  it('adopts a mount found in mountinfo instead of mounting twice', async () => {
    // Made outside the counter, as by another process or a crashed predecessor.
    await mount(src, target, null, MS_BIND)
    const c = counter()
    expect(await c.acquire(target, doMount)).toBe(2)
    expect(mounts).toBe(0)
    expect(c.isAdopted(target)).toBe(true)
    expect(await mountPointsUnder(tmp)).toHaveLength(1)
    expect(await c.release(target, doUnmount)).toBe(1)
    expect(await isMountPoint(target)).toBe(true) // the other holder keeps it
    expect(await c.release(target, doUnmount)).toBe(0)
    expect(unmounts).toBe(1)
    expect(await isMountPoint(target)).toBe(false)
  })

  it('a release alone adopts and unmounts a leftover mount (moby: a later put unmounts it)', async () => {
    await mount(src, target, null, MS_BIND)
    const c = counter()
    expect(await c.release(target, doUnmount)).toBe(0)
    expect(await isMountPoint(target)).toBe(false)
  })

  it('notices when an adopted mount was unmounted by its owner, and mounts again', async () => {
    await mount(src, target, null, MS_BIND)
    const c = counter()
    expect(await c.acquire(target, doMount)).toBe(2)
    await umount(target) // the owner lets go
    expect(await c.acquire(target, doMount)).toBe(2) // our first holder plus this one
    expect(mounts).toBe(1)
    expect(await isMountPoint(target)).toBe(true)
    await c.release(target, doUnmount)
    await c.release(target, doUnmount)
    expect(await isMountPoint(target)).toBe(false)
    expect(unmounts).toBe(1)
  })

  it('serialises concurrent acquires: all wait for the one mount', async () => {
    const c = counter()
    const slowMount = async (): Promise<void> => {
      await new Promise((r) => setTimeout(r, 20))
      await doMount()
    }
    const counts = await Promise.all([1, 2, 3, 4].map(() => c.acquire(target, slowMount)))
    expect(counts.sort()).toEqual([1, 2, 3, 4])
    expect(mounts).toBe(1)
    await Promise.all([1, 2, 3, 4].map(() => c.release(target, doUnmount)))
    expect(unmounts).toBe(1)
    expect(await isMountPoint(target)).toBe(false)
  })

  it('restores the count when mount or unmount fails', async () => {
    const c = counter()
    const failing = (): Promise<void> => Promise.reject(Object.assign(new Error('boom'), { code: 'EBOOM' }))
    await expect(c.acquire(target, failing)).rejects.toMatchObject({ code: 'EBOOM' })
    expect(c.count(target)).toBe(0)
    await c.acquire(target, doMount)
    await expect(c.release(target, failing)).rejects.toMatchObject({ code: 'EBOOM' })
    expect(c.count(target)).toBe(1)
    expect(await c.release(target, doUnmount)).toBe(0)
    expect(await isMountPoint(target)).toBe(false)
  })

  it('releaseAll drops every holder with one unmount', async () => {
    const c = counter()
    await c.acquire(target, doMount)
    await c.acquire(target, doMount)
    expect(await c.releaseAll(target, doUnmount)).toBe(2)
    expect(unmounts).toBe(1)
    expect(await c.releaseAll(target, doUnmount)).toBe(0)
    expect(await isMountPoint(target)).toBe(false)
  })
})

describe.skipIf(!isRoot)('unmountAll', () => {
  let tmp: string
  afterEach(async () => {
    await unmountAll(tmp)
    await rm(tmp, { recursive: true, force: true })
  })

  it('detaches nested and stacked mounts, deepest first', async () => {
    tmp = await mkdtemp(join(tmpdir(), 'layerstore-unmount-all-'))
    const src = join(tmp, 'src')
    const a = join(tmp, 'a')
    await mkdir(join(src, 'b'), { recursive: true })
    await mkdir(a)
    await mount(src, a, null, MS_BIND)
    await mount(src, join(a, 'b'), null, MS_BIND)
    await mount(src, a, null, MS_BIND) // stacked on a
    expect((await mountPointsUnder(tmp)).length).toBe(2)
    const done = await unmountAll(tmp)
    expect(done.length).toBe(3)
    expect(await mountPointsUnder(tmp)).toEqual([])
    expect(await unmountAll(tmp)).toEqual([])
  })
})
