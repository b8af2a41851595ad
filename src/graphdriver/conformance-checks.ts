/**
 * Conformance checks of the lifecycle: create/remove, errors, read-only layers, get/put
 * counting, removal of a layer in use, listing, cleanup, reopening a home, adopting a
 * foreign mount.
 * (The diff checks are in conformance-diff-checks.ts.)
 */
import { chmod, chown, mkdir, open, readdir, readFile, realpath, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { expect } from 'vitest'
import { readMountInfo } from '../native/index.js'
import type { CheckEnv, ConformanceCheck } from './conformance.js'
import type { MemberSpec } from './conformance-members.js'
import { members } from './conformance-members.js'
import { diffTrees, snapshotTree } from './conformance-tree.js'
import type { Change, Driver } from './driver.js'

/** `create` + `applyDiff` of `specs`: a read-only layer with that content. */
export async function makeLayer(d: Driver, id: string, parent: string | null, specs: readonly MemberSpec[]): Promise<number> {
  await d.create(id, parent)
  return d.applyDiff(id, parent, members(specs))
}

/** Runs `fn` on the layer's view between a `get` and its `put`. */
export async function withView<T>(d: Driver, id: string, fn: (path: string) => Promise<T>): Promise<T> {
  const path = await d.get(id)
  try {
    return await fn(path)
  } finally {
    await d.put(id)
  }
}

/** How many mounts sit exactly on `path` (stacked mounts count each). */
export async function mountsAt(path: string): Promise<number> {
  const target = await realpath(path).catch(() => path)
  return (await readMountInfo()).filter((m) => m.mountPoint === target).length
}

/** Changes as sorted `kind path` lines (paths as latin1 of their bytes). */
export function changeLines(list: readonly Change[]): string[] {
  return list.map((c) => `${c.kind} ${pathText(c.path)}`).sort()
}

function pathText(p: string | Buffer): string {
  return typeof p === 'string' ? p : p.toString('latin1')
}

/** Entries of a directory, sorted, ignoring `lost+found` (a fresh ext4 root has one). */
export async function names(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n !== 'lost+found').sort()
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ code })
}

const createEmpty: ConformanceCheck = {
  title: 'create, get, put and remove an empty layer',
  async run({ driver: d, root }: CheckEnv) {
    await d.create('empty', null)
    expect(await d.exists('empty')).toBe(true)
    await withView(d, 'empty', async (p) => {
      const st = await stat(p)
      expect(st.isDirectory()).toBe(true)
      expect(st.mode & 0o7777).toBe(0o755)
      if (root) expect([st.uid, st.gid]).toEqual([0, 0])
      expect(await names(p)).toEqual([])
    })
    await d.remove('empty')
    expect(await d.exists('empty')).toBe(false)
    await d.remove('empty') // a missing layer is not an error
  },
}

const createBaseAndSnap: ConformanceCheck = {
  title: 'a read-write base layer and a read-only child see the same content',
  async run({ driver: d, root }: CheckEnv) {
    await d.createReadWrite('base', null)
    await withView(d, 'base', async (p) => {
      await mkdir(join(p, 'a subdir'))
      await chmod(join(p, 'a subdir'), 0o705 | 0o1000)
      await writeFile(join(p, 'a file'), 'Some data')
      await chmod(join(p, 'a file'), 0o222 | 0o4000)
      if (root) {
        await chown(join(p, 'a subdir'), 1, 2)
        await chmod(join(p, 'a subdir'), 0o705 | 0o1000)
      }
    })
    const verify = async (p: string): Promise<void> => {
      expect(await names(p)).toEqual(['a file', 'a subdir'])
      const dir = await stat(join(p, 'a subdir'))
      expect(dir.isDirectory()).toBe(true)
      expect(dir.mode & 0o7777).toBe(0o1705)
      if (root) expect([dir.uid, dir.gid]).toEqual([1, 2])
      const file = await stat(join(p, 'a file'))
      expect(file.isFile()).toBe(true)
      expect(file.mode & 0o7777).toBe(0o4222)
      expect(await readFile(join(p, 'a file'), 'utf8')).toBe('Some data')
    }
    const base = await withView(d, 'base', async (p) => {
      await verify(p)
      return snapshotTree(p, { ignoreRoot: true })
    })
    await d.create('snap', 'base')
    const snap = await withView(d, 'snap', async (p) => {
      await verify(p)
      return snapshotTree(p, { ignoreRoot: true })
    })
    expect(diffTrees(base, snap)).toEqual([])
  },
}

const misuse: ConformanceCheck = {
  title: 'misuse gets typed errors',
  async run({ driver: d }: CheckEnv) {
    await makeLayer(d, 'l1', null, [{ name: 'f', content: 'x' }])
    await rejectsWithCode(d.create('l1', null), 'ERR_DRIVER_LAYER_EXISTS')
    await rejectsWithCode(d.createReadWrite('l1', null), 'ERR_DRIVER_LAYER_EXISTS')
    await rejectsWithCode(d.create('l2', 'nope'), 'ERR_DRIVER_LAYER_NOT_FOUND')
    await expect(d.create('l2', 'nope')).rejects.toMatchObject({ kind: 'not-found', role: 'parent' })
    expect(await d.exists('l2')).toBe(false)
    await rejectsWithCode(d.get('nope'), 'ERR_DRIVER_LAYER_NOT_FOUND')
    await rejectsWithCode(d.getMetadata('nope'), 'ERR_DRIVER_LAYER_NOT_FOUND')
    for (const bad of ['../escape', 'a/b', '..', '.', '', 'nul\0x']) {
      await rejectsWithCode(d.create(bad, null), 'ERR_DRIVER_INVALID_LAYER_ID')
      await rejectsWithCode(d.get(bad), 'ERR_DRIVER_INVALID_LAYER_ID')
    }
    await rejectsWithCode(d.create('l3', null, { storageOpt: { size: '10G' } }), 'ERR_DRIVER_INVALID_OPTION')
    expect(await d.exists('l3')).toBe(false)
    await rejectsWithCode(d.put('l1'), 'ERR_DRIVER_LAYER_NOT_MOUNTED')
    expect(Array.isArray(await d.status())).toBe(true)
    expect(typeof (await d.getMetadata('l1'))).toBe('object')
  },
}

const readOnly: ConformanceCheck = {
  title: 'read-only layers are really read-only (EROFS); read-write layers are writable',
  async run(env: CheckEnv) {
    const d = env.driver
    if (!d.capabilities.readOnlyLayers) env.skip('the driver declares capabilities.readOnlyLayers = false')
    await makeLayer(d, 'ro', null, [{ name: 'dir', type: 'directory' }, { name: 'dir/f', content: 'data' }])
    await withView(d, 'ro', async (p) => {
      await rejectsWithCode(writeFile(join(p, 'new'), 'x'), 'EROFS')
      await rejectsWithCode(mkdir(join(p, 'dir', 'sub')), 'EROFS')
      await rejectsWithCode(open(join(p, 'dir', 'f'), 'r+'), 'EROFS')
      await rejectsWithCode(chmod(join(p, 'dir'), 0o700), 'EROFS')
      expect(await readFile(join(p, 'dir', 'f'), 'utf8')).toBe('data')
    })
    await d.createReadWrite('rw', 'ro')
    await withView(d, 'rw', async (p) => {
      await writeFile(join(p, 'dir', 'f'), 'changed')
      await writeFile(join(p, 'new'), 'x')
    })
    // The child's writes never reach the read-only parent.
    await withView(d, 'ro', async (p) => {
      expect(await readFile(join(p, 'dir', 'f'), 'utf8')).toBe('data')
      expect(await names(p)).toEqual(['dir'])
    })
  },
}

const readOnlyViewOfRW: ConformanceCheck = {
  title: 'get(id, { readOnly: true }) of a read-write layer is read-only (EROFS) and changes nothing',
  async run(env: CheckEnv) {
    const d = env.driver
    if (!d.capabilities.readOnlyLayers) env.skip('the driver declares capabilities.readOnlyLayers = false')
    await makeLayer(d, 'ro', null, [{ name: 'f', content: 'parent' }])
    for (const [rw, parent] of [['rw', 'ro'], ['rwbase', null]] as const) {
      await d.createReadWrite(rw, parent)
      await withView(d, rw, async (p) => writeFile(join(p, 'own'), 'mine'))
      const before = await snapshotTree(d.home, { ignoreDirTimes: true })
      const p = await d.get(rw, { readOnly: true })
      try {
        await rejectsWithCode(writeFile(join(p, 'new'), 'x'), 'EROFS')
        await rejectsWithCode(open(join(p, 'own'), 'r+'), 'EROFS')
        expect(await readFile(join(p, 'own'), 'utf8')).toBe('mine')
        if (parent) expect(await readFile(join(p, 'f'), 'utf8')).toBe('parent')
        // The other view while this one is out: refused, or (at another path) writable.
        const other = await d.get(rw).then(
          (path) => path,
          (err: unknown) => {
            expect(err).toMatchObject({ code: 'ERR_DRIVER_MOUNT_MODE_CONFLICT', kind: 'conflict' })
            return undefined
          },
        )
        if (other !== undefined) {
          expect(other).not.toBe(p)
          await d.put(rw)
        }
        await rejectsWithCode(writeFile(join(p, 'new'), 'x'), 'EROFS')
      } finally {
        await d.put(rw)
      }
      expect(diffTrees(before, await snapshotTree(d.home, { ignoreDirTimes: true }))).toEqual([])
      // Writable again once the read-only view is given back; the read-only one wrote nothing.
      await withView(d, rw, async (p) => {
        expect(await names(p)).toEqual(parent ? ['f', 'own'] : ['own'])
        await writeFile(join(p, 'later'), 'y')
      })
    }
  },
}

const getPutCounting: ConformanceCheck = {
  title: 'get and put are counted: mount once, unmount once',
  async run({ driver: d }: CheckEnv) {
    await makeLayer(d, 'ro', null, [{ name: 'f', content: 'x' }])
    await d.createReadWrite('rw', 'ro')
    for (const id of ['ro', 'rw']) {
      const p1 = await d.get(id)
      const mounted = await mountsAt(p1)
      if (d.capabilities.mounts) expect(mounted).toBeLessThanOrEqual(1)
      const p2 = await d.get(id)
      expect(p2).toBe(p1)
      expect(await mountsAt(p1)).toBe(mounted)
      await d.put(id)
      expect(await mountsAt(p1)).toBe(mounted)
      expect(await readFile(join(p1, 'f'), 'utf8')).toBe('x')
      await d.put(id)
      if (mounted) expect(await mountsAt(p1)).toBe(0)
      await rejectsWithCode(d.put(id), 'ERR_DRIVER_LAYER_NOT_MOUNTED')
      // Concurrent gets: one mount, one path, and every one returns only once it is usable.
      const paths = await Promise.all([1, 2, 3, 4, 5].map(() => d.get(id)))
      expect(new Set(paths).size).toBe(1)
      expect(await mountsAt(p1)).toBe(mounted)
      await Promise.all(paths.map(async (p) => expect(await readFile(join(p, 'f'), 'utf8')).toBe('x')))
      await Promise.all(paths.map(() => d.put(id)))
      if (mounted) expect(await mountsAt(p1)).toBe(0)
    }
  },
}

const removeInUse: ConformanceCheck = {
  title: 'remove of a layer in use is a typed error and deletes nothing',
  async run({ driver: d }: CheckEnv) {
    await makeLayer(d, 'ro', null, [{ name: 'f', content: 'x' }])
    await d.createReadWrite('rw', 'ro')
    for (const id of ['ro', 'rw']) {
      const p = await d.get(id)
      await expect(d.remove(id)).rejects.toMatchObject({ code: 'ERR_DRIVER_LAYER_IN_USE', kind: 'conflict' })
      expect(await d.exists(id)).toBe(true)
      expect(await readFile(join(p, 'f'), 'utf8')).toBe('x')
      await d.put(id)
    }
    await d.remove('rw')
    await d.remove('ro')
    expect(await d.exists('rw')).toBe(false)
    expect(await d.exists('ro')).toBe(false)
  },
}

const listLiveLayers: ConformanceCheck = {
  title: 'list returns exactly the live layers, read-only and read-write',
  async run(env: CheckEnv) {
    const d = env.driver
    expect(await d.list()).toEqual([])
    await makeLayer(d, 'base', null, [{ name: 'f', content: 'a' }])
    await makeLayer(d, 'mid', 'base', [{ name: 'g', content: 'b' }])
    await d.create('gone', 'mid')
    await d.createReadWrite('ctr-init', 'mid')
    await d.createReadWrite('ctr', 'ctr-init')
    await d.remove('gone')
    const live = ['base', 'ctr', 'ctr-init', 'mid']
    // Held views (mounts, for a driver that mounts) are not layers.
    await withView(d, 'ctr', async () => {
      await withView(d, 'base', async () => expect([...(await d.list())].sort()).toEqual(live))
    })
    expect([...(await d.list())].sort()).toEqual(live)
    for (const id of live) expect(await d.exists(id)).toBe(true)
    // The listing comes from the home, not from this instance's memory.
    await d.cleanup()
    expect([...(await (await env.open()).list())].sort()).toEqual(live)
  },
}

const cleanupLeavesNoMounts: ConformanceCheck = {
  title: 'cleanup leaves no mounts and the driver stays usable',
  async run({ driver: d, home }: CheckEnv) {
    await makeLayer(d, 'a', null, [{ name: 'f', content: 'a' }])
    await makeLayer(d, 'b', 'a', [{ name: 'g', content: 'b' }])
    await d.createReadWrite('c', 'b')
    await d.get('a')
    await d.get('b')
    await d.get('b')
    await d.get('c')
    await d.cleanup()
    expect(await mountsUnderHome(home)).toEqual([])
    await d.cleanup() // a second call is a no-op
    await rejectsWithCode(d.put('a'), 'ERR_DRIVER_LAYER_NOT_MOUNTED')
    await withView(d, 'c', async (p) => expect(await names(p)).toEqual(['f', 'g']))
    await d.remove('c')
  },
}

async function mountsUnderHome(home: string): Promise<string[]> {
  const root = await realpath(home)
  return (await readMountInfo()).map((m) => m.mountPoint).filter((p) => p === root || p.startsWith(`${root}/`))
}

const reopen: ConformanceCheck = {
  title: 'a new instance on the same home sees the same layers',
  async run(env: CheckEnv) {
    const d = env.driver
    await makeLayer(d, 'base', null, [{ name: 'etc', type: 'directory' }, { name: 'etc/hosts', content: 'h' }])
    await d.createReadWrite('rw', 'base')
    await withView(d, 'rw', (p) => writeFile(join(p, 'etc', 'motd'), 'hi'))
    await d.cleanup()
    const d2 = await env.open()
    expect(await d2.exists('base')).toBe(true)
    expect(await d2.exists('rw')).toBe(true)
    await withView(d2, 'rw', async (p) => {
      expect(await names(join(p, 'etc'))).toEqual(['hosts', 'motd'])
      await writeFile(join(p, 'etc', 'more'), 'still writable')
    })
    await withView(d2, 'base', async (p) => {
      expect(await names(join(p, 'etc'))).toEqual(['hosts'])
      if (d2.capabilities.readOnlyLayers) await rejectsWithCode(writeFile(join(p, 'x'), 'x'), 'EROFS')
    })
    expect(changeLines(await d2.changes('rw', 'base'))).toEqual(['added /etc/more', 'added /etc/motd', 'modified /etc'])
  },
}

const adoptForeignMount: ConformanceCheck = {
  title: 'a mount made by another instance is adopted, never mounted twice',
  async run(env: CheckEnv) {
    const d1 = env.driver
    if (!d1.capabilities.mounts) env.skip('the driver declares capabilities.mounts = false (get mounts nothing)')
    await makeLayer(d1, 'ro', null, [{ name: 'f', content: 'x' }])
    const d2 = await env.open()
    const p1 = await d1.get('ro')
    expect(await mountsAt(p1)).toBe(1)
    const p2 = await d2.get('ro')
    expect(p2).toBe(p1)
    expect(await mountsAt(p1)).toBe(1)
    await d2.put('ro')
    expect(await mountsAt(p1)).toBe(1) // d1 still holds it
    await d1.put('ro')
    expect(await mountsAt(p1)).toBe(0)
    // d2 once adopted that mount; it must notice it is gone and mount afresh.
    const p3 = await d2.get('ro')
    expect(await mountsAt(p3)).toBe(1)
    expect(await readFile(join(p3, 'f'), 'utf8')).toBe('x')
    await expect(d1.remove('ro')).rejects.toMatchObject({ code: 'ERR_DRIVER_LAYER_IN_USE' })
    await d2.put('ro')
    expect(await mountsAt(p3)).toBe(0)
  },
}

/** The lifecycle checks, in order. */
export const BASIC_CHECKS: readonly ConformanceCheck[] = [
  createEmpty,
  createBaseAndSnap,
  misuse,
  readOnly,
  readOnlyViewOfRW,
  getPutCounting,
  removeInUse,
  listLiveLayers,
  cleanupLeavesNoMounts,
  reopen,
  adoptForeignMount,
]
