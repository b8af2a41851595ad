/**
 * RW layers beyond moby's tests: mount counts shared by store instances (as by processes),
 * a mount left for another instance to unmount (`close({ keepMounts })`, what `layerctl
 * mount` does), handles across instances, and the typed misuse errors.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isMountPoint } from '../../src/native/index.js'
import { driverNames, expectNoOrphans, makeTar, openStore, storeFixture } from './helpers.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('RW layer tests skipped: they need root (drivers mount)')

describe.skipIf(!isRoot).each(driverNames())('RW layers on %s', (driverName) => {
  const fx = storeFixture(driverName)

  it('keeps a mount for another instance to unmount, counted across instances', async () => {
    const base = await fx.store.register(await makeTar([{ name: 'base.txt', content: 'base' }]), null, { holder: 'img' })
    const rw = await fx.store.createRWLayer('ctr', base.chainID)
    const path = await rw.mount()
    await writeFile(join(path, 'written.txt'), 'from the first instance')
    const mountedByDriver = await isMountPoint(path)
    await fx.store.close({ keepMounts: true })

    await fx.reopen()
    const again = await fx.store.getRWLayer('ctr')
    await expect(fx.store.releaseRWLayer(again)).rejects.toMatchObject({ code: 'ERR_RW_LAYER_MOUNTED', kind: 'conflict', mounts: 1 })
    expect(again.retained).toBe(true)
    // A second mount here shares the view; two unmounts are then owed, from anyone.
    const path2 = await again.mount()
    expect(await readFile(join(path2, 'written.txt'), 'utf8')).toBe('from the first instance')
    await again.unmount()
    expect(await isMountPoint(path)).toBe(mountedByDriver)
    await again.unmount()
    expect(await isMountPoint(path)).toBe(false)
    await expect(again.unmount()).rejects.toMatchObject({ code: 'ERR_RW_LAYER_NOT_MOUNTED' })
    expect(await fx.store.releaseRWLayer(again)).toEqual({ removed: true, remainingHandles: 0, deleted: [] })
    expect(await fx.store.listRWLayers()).toEqual([])
    expect((await fx.store.releaseHolder(base.chainID, 'img')).length).toBe(1)
  })

  it('mounts read-only on request: writes fail with EROFS and the RW layer does not change (issue 7)', async () => {
    const base = await fx.store.register(await makeTar([{ name: 'base.txt', content: 'base' }]), null, { holder: 'img' })
    const rw = await fx.store.createRWLayer('ctr', base.chainID)
    const path = await rw.mount()
    await writeFile(join(path, 'own'), 'mine')
    await rw.unmount()
    const ro = await rw.mount({ readOnly: true })
    try {
      await expect(writeFile(join(ro, 'new'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
      await expect(writeFile(join(ro, 'own'), 'changed')).rejects.toMatchObject({ code: 'EROFS' })
      expect(await readFile(join(ro, 'base.txt'), 'utf8')).toBe('base')
      expect(await readFile(join(ro, 'own'), 'utf8')).toBe('mine')
      // A writable mount meanwhile: refused where both views share a mount point, else elsewhere.
      const other = await rw.mount().then(
        (p) => p,
        (err: unknown) => {
          expect(err).toMatchObject({ code: 'ERR_DRIVER_MOUNT_MODE_CONFLICT', kind: 'conflict' })
          return undefined
        },
      )
      if (other !== undefined) {
        expect(other).not.toBe(ro)
        await rw.unmount()
      }
    } finally {
      await rw.unmount()
    }
    expect((await rw.changes()).map((c) => `${c.kind} ${String(c.path)}`)).toEqual(['added /own'])
    // Counted like any mount: another instance unmounts a read-only mount left for it.
    await rw.mount({ readOnly: true })
    await fx.store.close({ keepMounts: true })
    await fx.reopen()
    const again = await fx.store.getRWLayer('ctr')
    await again.unmount()
    await expect(again.unmount()).rejects.toMatchObject({ code: 'ERR_RW_LAYER_NOT_MOUNTED' })
  })

  it('unmounts what this instance mounted at close (default), so counts stay true', async () => {
    const rw = await fx.store.createRWLayer('ctr', null)
    const path = await rw.mount()
    await rw.mount()
    await fx.store.close()
    expect(await isMountPoint(path)).toBe(false)
    await fx.reopen()
    const again = await fx.store.getRWLayer('ctr')
    await expect(again.unmount()).rejects.toMatchObject({ code: 'ERR_RW_LAYER_NOT_MOUNTED' })
    expect((await fx.store.releaseRWLayer(again)).removed).toBe(true)
  })

  it('removes a RW layer only when no live handle holds it, in any instance', async () => {
    const rw = await fx.store.createRWLayer('shared', null)
    const other = await openStore(fx.root, driverName)
    try {
      const theirs = await other.getRWLayer('shared')
      expect(await fx.store.releaseRWLayer(rw)).toEqual({ removed: false, remainingHandles: 1, deleted: [] })
      await expect(fx.store.releaseRWLayer(rw)).rejects.toMatchObject({ code: 'ERR_RW_LAYER_NOT_RETAINED' })
      await expect(rw.mount()).rejects.toMatchObject({ code: 'ERR_RW_LAYER_NOT_RETAINED' })
      expect((await other.releaseRWLayer(theirs)).removed).toBe(true)
    } finally {
      await other.close()
    }
    await expect(fx.store.getRWLayer('shared')).rejects.toMatchObject({ code: 'ERR_MOUNT_DOES_NOT_EXIST', kind: 'not-found' })
    await expect(fx.store.getMountID('shared')).rejects.toMatchObject({ code: 'ERR_MOUNT_DOES_NOT_EXIST' })
  })

  it('refuses a taken name, a missing parent and a bad name, changing nothing', async () => {
    const rw = await fx.store.createRWLayer('taken', null)
    expect(await fx.store.getMountID('taken')).toBe(rw.mountID)
    await expect(fx.store.createRWLayer('taken', null)).rejects.toMatchObject({ code: 'ERR_MOUNT_NAME_CONFLICT' })
    await expect(fx.store.createRWLayer('x', `sha256:${'0'.repeat(64)}` as never)).rejects.toMatchObject({ code: 'ERR_LAYER_DOES_NOT_EXIST' })
    await expect(fx.store.createRWLayer('../escape', null)).rejects.toMatchObject({ kind: 'invalid-argument' })
    expect(await fx.store.listRWLayers()).toEqual(['taken'])
    expect((await fx.store.releaseRWLayer(rw)).removed).toBe(true)
  })

  it('cleans up the init layer and the parent hold when the init function fails', async () => {
    const base = await fx.store.register(await makeTar([{ name: 'b', content: 'b' }]), null, { holder: 'img' })
    const boom = Object.assign(new Error('init failed'), { code: 'TEST_INIT' })
    await expect(
      fx.store.createRWLayer('bad-init', base.chainID, {
        initFunc: async () => {
          throw boom
        },
      }),
    ).rejects.toBe(boom)
    expect(await fx.store.listRWLayers()).toEqual([])
    expect((await fx.store.references(base.chainID)).holders).toEqual(new Map([['img', 1]]))
    const report = await fx.store.cleanup()
    expect(report.removedDriverIDs).toEqual([])
  })

  /** An init function that waits for `release()`, so that a create stays in flight. */
  const parkedInit = (): { initFunc: (dir: string) => Promise<void>; started: Promise<void>; release: (err?: Error) => void } => {
    let started!: () => void
    let release!: (err?: Error) => void
    const startedP = new Promise<void>((r) => (started = r))
    const gate = new Promise<void>((resolve, reject) => (release = (err) => (err ? reject(err) : resolve())))
    return {
      initFunc: async (dir) => {
        await writeFile(join(dir, 'init.txt'), 'init')
        started()
        await gate
      },
      started: startedP,
      release,
    }
  }

  it('holds its parent while in flight against a release by another instance, then by its record', async () => {
    const base = await fx.store.register(await makeTar([{ name: 'base.txt', content: 'base' }]), null, { holder: 'img' })
    const other = await openStore(fx.root, driverName)
    try {
      const init = parkedInit()
      const creating = fx.store.createRWLayer('ctr', base.chainID, { initFunc: init.initFunc })
      await init.started
      // No reference was written into the parent to hold it: the live write set does.
      expect(Object.fromEntries((await other.references(base.chainID)).holders)).toEqual({ img: 1 })
      expect(await other.releaseHolder(base.chainID, 'img')).toEqual([])
      expect(await other.has(base.chainID)).toBe(true)
      init.release()
      const rw = await creating
      expect((await other.references(base.chainID)).rwLayers).toEqual(['ctr'])
      expect(Object.fromEntries((await other.references(base.chainID)).holders)).toEqual({})
      const path = await rw.mount()
      expect(await readFile(join(path, 'base.txt'), 'utf8')).toBe('base')
      await rw.unmount()
      // The RW layer held the parent: removing it deletes the parent too.
      expect((await fx.store.releaseRWLayer(rw)).deleted.map((l) => l.chainID)).toEqual([base.chainID])
    } finally {
      await other.close()
    }
    await fx.store.close()
    await expectNoOrphans(fx.root, driverName)
  })

  it('deletes the parent it leaves unheld when it fails, and keeps one still held', async () => {
    const [a, b] = [
      await fx.store.register(await makeTar([{ name: 'a.txt', content: 'a' }]), null, { holder: 'img' }),
      await fx.store.register(await makeTar([{ name: 'b.txt', content: 'b' }]), null, { holder: 'img' }),
    ]
    const other = await openStore(fx.root, driverName)
    try {
      const first = parkedInit()
      const second = parkedInit()
      // Both outcomes are observed at once: neither rejection goes unhandled meanwhile.
      const outcomes = Promise.allSettled([
        fx.store.createRWLayer('first', a.chainID, { initFunc: first.initFunc }),
        fx.store.createRWLayer('second', b.chainID, { initFunc: second.initFunc }),
      ])
      await Promise.all([first.started, second.started])
      await other.releaseHolder(a.chainID, 'img')
      const boom = new Error('init failed')
      first.release(boom)
      second.release(boom)
      expect(await outcomes).toEqual([
        { status: 'rejected', reason: boom },
        { status: 'rejected', reason: boom },
      ])
      expect(await other.has(a.chainID)).toBe(false)
      expect(Object.fromEntries((await other.references(b.chainID)).holders)).toEqual({ img: 1 })
      expect(await fx.store.listRWLayers()).toEqual([])
    } finally {
      await other.close()
    }
    await fx.store.close()
    await expectNoOrphans(fx.root, driverName)
  })
})
