import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { FileMetadataStore, isCleanReport } from '../../src/metadata/index.js'
import type { CacheID, ChainID, MountID } from '../../src/metadata/index.js'
import { buildChild, cleanupTemps, commitLayer, digest, hexID, makeTemp, removeChild, startChild, testLayer } from './helpers.js'
import type { RunningChild } from './helpers.js'

const stores: FileMetadataStore[] = []
const children: RunningChild[] = []
beforeAll(buildChild)
afterAll(removeChild)
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill()
    await c.done
  }
  for (const s of stores.splice(0)) await s.close()
  await cleanupTemps()
})

async function open(root: string): Promise<FileMetadataStore> {
  const store = await FileMetadataStore.open(root, 'overlay2')
  stores.push(store)
  return store
}

async function commitMount(store: FileMetadataStore, name: string, mountID: string, parent?: ChainID, init = true): Promise<void> {
  const tx = await store.startTransaction()
  await tx.setMountID(mountID as MountID)
  if (init) await tx.setInitID(`${mountID}-init` as MountID)
  if (parent) await tx.setParent(parent)
  await tx.commitMount(name)
}

async function dirWith(path: string, files: Record<string, string>): Promise<void> {
  await mkdir(path, { recursive: true })
  for (const [f, text] of Object.entries(files)) await writeFile(join(path, f), text)
}

describe('orphan scan', () => {
  it('finds exactly the leftovers, spares live intents and committed records, and a second scan finds nothing', async () => {
    const root = await makeTemp()
    const store = await open(root)
    const L = store.layout
    const a = testLayer('a')
    const c = testLayer('c', a.chainID)
    const d = testLayer('d', a.chainID)
    await commitLayer(store, a)
    await commitLayer(store, c)
    await commitLayer(store, d)
    const mM = hexID('m')
    await commitMount(store, 'web', mM, a.chainID)

    // Leftovers of dead owners and of moby.
    const dead = 'f'.repeat(32)
    const cX = hexID('x')
    const cY = hexID('y')
    const cR = hexID('r')
    const mO = hexID('o')
    const mQ = hexID('q')
    const mN = hexID('n')
    await dirWith(join(L.tmpDir, `write-set-${dead}-0123`), { 'cache-id': cX, diff: a.diffID })
    await dirWith(join(L.tmpDir, 'write-set-123456'), { 'cache-id': cY })
    await writeFile(join(L.tmpDir, `atomic-${dead}-99`), '{}')
    await writeFile(join(L.tmpDir, `owner-${dead}.lock`), '')
    await dirWith(join(L.sha256Dir, `${'e'.repeat(64)}-${hexID('rand')}-removing`), { 'cache-id': cR, diff: a.diffID })
    await dirWith(join(L.mountsDir, `old-${hexID('rand2')}-removing`), { 'mount-id': mO })
    await dirWith(join(L.mountsDir, 'broken'), { 'mount-id': 'xyz' })
    await dirWith(join(L.mountsDir, 'orphaned'), { 'mount-id': mQ, parent: digest('gone') })
    await dirWith(join(L.mountsDir, 'nodriver'), { 'mount-id': mN, parent: a.chainID })
    await writeFile(join(L.sha256Dir, 'README'), 'junk that is neither a layer nor a marker')

    // Live intents: another store in this process, another process, and our own mark.
    const other = await open(root)
    const cL = hexID('live')
    const liveTx = await other.startTransaction()
    await liveTx.setCacheID(cL as CacheID)
    const cP = hexID('proc')
    const proc = startChild({ mode: 'intent', root, driver: 'overlay2', cacheID: cP })
    children.push(proc)
    await proc.waitFor('ready')
    const mark = await store.markRemoving(d.chainID)

    const known = [a.cacheID, c.cacheID, d.cacheID, mM, `${mM}-init`, cX, cY, cR, mO, mQ, cL, cP, 'stray']
    const report = await store.scanOrphans(known)
    expect(report.writeSets.map((w) => [w.path.slice(L.tmpDir.length + 1), w.driverIDs]).sort()).toEqual([
      ['write-set-123456', [cY]],
      [`write-set-${dead}-0123`, [cX]],
    ])
    expect(report.tempFiles.map((p) => p.slice(L.tmpDir.length + 1)).sort()).toEqual([`atomic-${dead}-99`, `owner-${dead}.lock`])
    expect(report.removals.map((r) => [r.recordKind, r.record, r.driverIDs]).sort()).toEqual([
      ['layer', `sha256:${'e'.repeat(64)}`, [cR]],
      ['mount', 'old', [mO]],
    ])
    expect(report.mounts.map((m) => [m.name, m.reason]).sort()).toEqual([
      ['broken', 'broken'],
      ['nodriver', 'driver-missing'],
      ['orphaned', 'parent-missing'],
    ])
    expect(report.brokenLayers).toEqual([])
    expect(report.unreferencedDriverIDs).toEqual([cR, cX, cY, mO, mQ, 'stray'].sort())
    expect(report.withheldDriverIDs).toEqual([])

    const result = await store.cleanup(known)
    expect(result.failures).toEqual([])
    expect(result.removed).toHaveLength(9)
    const remaining = known.filter((id) => !result.report.unreferencedDriverIDs.includes(id))
    const second = await store.scanOrphans(remaining)
    expect(isCleanReport(second)).toBe(true)
    // Committed records, live intents and our mark survived.
    expect(await store.list()).toEqual({ layers: [a.chainID, c.chainID].sort(), mounts: ['web'] })
    expect((await readdir(L.tmpDir)).filter((n) => n.startsWith('write-set-'))).toHaveLength(2)
    await store.removeMarked(mark)

    // The other process dies: its write set and owner lock become orphans, its cache ID unreferenced.
    proc.kill('SIGKILL')
    await proc.done
    const afterKill = await store.cleanup([...remaining, 'late'])
    expect(afterKill.report.writeSets.map((w) => w.driverIDs)).toEqual([[cP]])
    expect(afterKill.report.tempFiles).toHaveLength(1)
    expect(afterKill.report.unreferencedDriverIDs).toEqual([d.cacheID, cP, 'late'].sort())
    // The live transaction of the other store still commits.
    await liveTx.cancel()
    await other.close()
    expect(isCleanReport(await store.scanOrphans([a.cacheID, c.cacheID, mM, `${mM}-init`]))).toBe(true)
  })

  it('without known driver IDs offers only what abandoned intents name', async () => {
    const root = await makeTemp()
    const store = await open(root)
    await dirWith(join(store.layout.tmpDir, 'write-set-1'), { 'cache-id': 'abc', 'mount-id': hexID('m'), 'init-id': `${hexID('m')}-init` })
    const report = await store.scanOrphans()
    expect(report.unreferencedDriverIDs).toEqual(['abc', hexID('m'), `${hexID('m')}-init`].sort())
  })

  it('reports a broken committed layer but never removes it; an unreadable cache-id withholds the driver sweep', async () => {
    const root = await makeTemp()
    const store = await open(root)
    const good = testLayer('good')
    const badDiff = testLayer('bad-diff')
    const noCache = testLayer('no-cache')
    for (const l of [good, badDiff, noCache]) await commitLayer(store, l)
    await writeFile(store.layout.layerFile(badDiff.chainID, 'diff'), 'garbage')
    const known = [good.cacheID, badDiff.cacheID, noCache.cacheID, 'stray']

    let report = await store.scanOrphans(known)
    expect(report.brokenLayers.map((b) => b.chainID)).toEqual([badDiff.chainID])
    expect(report.brokenLayers[0]!.error).toMatchObject({ code: 'ERR_METADATA_CORRUPT', file: 'diff' })
    // Its cache-id is still readable, so its data stays protected.
    expect(report.unreferencedDriverIDs).toEqual(['stray'])

    await rm(store.layout.layerFile(noCache.chainID, 'cache-id'))
    report = await store.scanOrphans(known)
    expect(report.brokenLayers.map((b) => b.chainID).sort()).toEqual([badDiff.chainID, noCache.chainID].sort())
    expect(report.unreferencedDriverIDs).toEqual([])
    expect(report.withheldDriverIDs).toEqual([noCache.cacheID, 'stray'].sort())
    const result = await store.cleanup(known)
    expect(result.removed).toEqual([])
    expect((await store.list()).layers).toHaveLength(3)
  })

  it('reports a layer whose parent layer is gone as broken, without touching it', async () => {
    const root = await makeTemp()
    const store = await open(root)
    const lonely = testLayer('lonely', digest('gone') as ChainID)
    await commitLayer(store, lonely)
    const report = await store.scanOrphans([lonely.cacheID])
    expect(report.brokenLayers).toHaveLength(1)
    expect(report.brokenLayers[0]).toMatchObject({ chainID: lonely.chainID, error: { file: 'parent', reason: 'invalid' } })
    expect(report.unreferencedDriverIDs).toEqual([])
    expect(isCleanReport(report)).toBe(true)
  })

  it('flags a mount as driver-missing only against a given driver list', async () => {
    const root = await makeTemp()
    const store = await open(root)
    const mID = hexID('m')
    await commitMount(store, 'c1', mID)
    expect(isCleanReport(await store.scanOrphans())).toBe(true)
    const report = await store.scanOrphans([mID])
    expect(report.mounts.map((m) => [m.name, m.reason, m.detail])).toEqual([['c1', 'driver-missing', `driver has no ${mID}-init`]])
    expect(report.unreferencedDriverIDs).toEqual([mID])
  })
})
