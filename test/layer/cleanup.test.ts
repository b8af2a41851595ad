/**
 * `cleanup()` (also run at open): what it removes, what it reports, and what it must never
 * delete (a committed layer's data, even when another record is unreadable).
 */
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { builtinDrivers } from '../../src/drivers/index.js'
import { DriverRegistry } from '../../src/graphdriver/index.js'
import { isEmptyCleanup } from '../../src/layer/index.js'
import { driverIDs, driverNames, makeTar, readAll, storeFixture } from './helpers.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('layer cleanup tests skipped: they need root')

describe.skipIf(!isRoot).each(driverNames())('cleanup on %s', (driverName) => {
  const fx = storeFixture(driverName)

  const layerdb = (): string => join(fx.root, 'image', driverName, 'layerdb')

  /** A driver layer made behind the store's back, as a crashed process leaves one. */
  const strayDriverLayer = async (): Promise<string> => {
    const driver = await new DriverRegistry(builtinDrivers).create(driverName, { home: join(fx.root, driverName) })
    const id = randomBytes(32).toString('hex')
    await driver.create(id, null)
    await driver.cleanup()
    return id
  }

  it('removes driver layers and write sets that crashed processes left, and reports them', async () => {
    const tar = await makeTar([{ name: 'keep.txt', content: 'kept' }])
    const layer = await fx.store.register(tar, null, { holder: 'keep' })
    const stray = await strayDriverLayer()
    const named = await strayDriverLayer()
    // A write set of an owner that no longer exists, naming a driver layer it had created.
    const writeSet = join(layerdb(), 'tmp', `write-set-${randomBytes(16).toString('hex')}-0011`)
    await mkdir(writeSet)
    await writeFile(join(writeSet, 'cache-id'), named)
    const report = await fx.store.cleanup()
    expect([...report.removedDriverIDs].sort()).toEqual([stray, named].sort())
    expect(report.removedPaths).toEqual([writeSet])
    expect(await driverIDs(fx.root, driverName)).toEqual([layer.cacheID])
    expect(await readAll(await layer.tarStream())).toEqual(tar)
    expect(isEmptyCleanup(await fx.store.cleanup())).toBe(true)
  })

  it('deletes nothing while a committed layer\'s record is unreadable, and reports it', async () => {
    const good = await fx.store.register(await makeTar([{ name: 'g', content: 'good' }]), null, { holder: 'g' })
    const bad = await fx.store.register(await makeTar([{ name: 'b', content: 'bad' }]), null, { holder: 'b' })
    const stray = await strayDriverLayer()
    await writeFile(join(layerdb(), 'sha256', bad.chainID.slice(7), 'cache-id'), '')
    const report = await fx.store.cleanup()
    expect(report.brokenLayers.map((b) => b.chainID)).toEqual([bad.chainID])
    expect(report.removedDriverIDs).toEqual([])
    expect(report.withheldDriverIDs).toEqual([stray, bad.cacheID].sort())
    expect((await driverIDs(fx.root, driverName)).sort()).toEqual([good.cacheID, bad.cacheID, stray].sort())
    expect(await readAll(await good.tarStream())).toBeInstanceOf(Buffer)
  })

  it('removes a RW layer whose driver layer is gone, keeping its parent', async () => {
    const base = await fx.store.register(await makeTar([{ name: 'b', content: 'b' }]), null, { holder: 'img' })
    const rw = await fx.store.createRWLayer('lost', base.chainID, { initFunc: async () => undefined })
    await fx.store.close()
    const driver = await new DriverRegistry(builtinDrivers).create(driverName, { home: join(fx.root, driverName) })
    await driver.remove(rw.mountID)
    await driver.cleanup()
    await fx.reopen()
    expect(fx.store.openCleanup?.removedPaths).toEqual([join(layerdb(), 'mounts', 'lost')])
    expect(fx.store.openCleanup?.removedDriverIDs).toEqual([rw.initID])
    expect(await fx.store.listRWLayers()).toEqual([])
    expect([...(await fx.store.map()).keys()]).toEqual([base.chainID])
  })

  it('forgets mount counts of a previous boot', async () => {
    const rw = await fx.store.createRWLayer('rebooted', null)
    await writeFile(join(layerdb(), 'mounts', 'rebooted', 'mount-state.json'), JSON.stringify({ count: 2, bootID: 'an-earlier-boot' }))
    const report = await fx.store.cleanup()
    expect(report.staleMounts).toEqual(['rebooted'])
    await expect(rw.unmount()).rejects.toMatchObject({ code: 'ERR_RW_LAYER_NOT_MOUNTED' })
    expect((await fx.store.releaseRWLayer(rw)).removed).toBe(true)
  })

  it('finishes a release that a crash interrupted (a layer nobody holds)', async () => {
    const base = await fx.store.register(await makeTar([{ name: 'b', content: 'b' }]), null, { holder: 'x' })
    const child = await fx.store.register(await makeTar([{ name: 'c', content: 'c' }]), base.chainID, { holder: 'x' })
    await fx.store.releaseHolder(base.chainID, 'x')
    // As if the process died right after writing an empty references.json.
    await writeFile(join(layerdb(), 'sha256', child.chainID.slice(7), 'references.json'), '{"holders":{}}')
    const report = await fx.store.cleanup()
    expect(report.deletedLayers.map((l) => l.chainID)).toEqual([child.chainID, base.chainID])
    expect(await driverIDs(fx.root, driverName)).toEqual([])
  })
})
