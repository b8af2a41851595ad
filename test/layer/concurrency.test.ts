/**
 * Several processes (the built package, test/layer/child.mjs) register (layer by layer or
 * with `registerChain`) and release overlapping chains of layers on one root at once, each
 * under its own holder name. Layers
 * are deleted and registered again while others use their parents. Afterwards every layer's
 * holders must be exactly the workers' net counts (no lost or double reference), every layer
 * must stream back its exact bytes (no half layer), nothing must be orphaned, and no worker
 * may hang (no deadlock: the test has a time limit).
 *
 * Needs `dist/`: `npm test` builds it; in a session run `npx tsc -p tsconfig.build.json`.
 */
import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { chainIDOf, diffIDFromHex, isEmptyCleanup } from '../../src/layer/index.js'
import type { ChainID } from '../../src/layer/index.js'
import { DIST_BUILT, driverIDs, driverNames, makeTar, openStore, readAll, runChild, tempRoot } from './helpers.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('layer concurrency tests skipped: they need root')
else if (!DIST_BUILT) console.warn('layer concurrency tests skipped: dist/ is not built (run npx tsc -p tsconfig.build.json)')

const WORKERS = 4
const OPS = 25

const digest = (b: Buffer) => diffIDFromHex(createHash('sha256').update(b).digest('hex'))

describe.skipIf(!isRoot || !DIST_BUILT).each(driverNames())('concurrent processes on %s', (driverName) => {
  it('neither lose nor double a reference, and leave no half layer', async () => {
    const t = await tempRoot('layerstore-concurrency-')
    try {
      // Two chains share their base, so workers race on the same base with different children.
      const shared = await makeTar([{ name: 'base.txt', content: 'shared base' }])
      const other = await makeTar([{ name: 'base.txt', content: 'other base' }])
      const kids = await Promise.all([1, 2, 3].map((n) => makeTar([{ name: `kid${n}.txt`, content: `kid ${n}` }])))
      const bytes = new Map<ChainID, Buffer>()
      const chains: Array<{ base: string; child: string }> = []
      for (const [i, [base, child]] of ([[shared, kids[0]!], [shared, kids[1]!], [other, kids[2]!]] as const).entries()) {
        const basePath = join(t.dir, `base${i}.tar`)
        const childPath = join(t.dir, `child${i}.tar`)
        await writeFile(basePath, base)
        await writeFile(childPath, child)
        const baseID = chainIDOf(null, digest(base))
        bytes.set(baseID, base)
        bytes.set(chainIDOf(baseID, digest(child)), child)
        chains.push({ base: basePath, child: childPath })
      }
      const root = join(t.dir, 'root')
      // One store first, so the workers do not race to pick the driver.
      await (await openStore(root, driverName)).close()
      const results = await Promise.all(
        Array.from({ length: WORKERS }, (_, i) =>
          runChild({ mode: 'worker', root, driver: driverName, holder: `worker-${i}`, chains, ops: OPS, seed: 7919 * (i + 1), releaseAll: i % 2 === 0 }),
        ),
      )
      const expected = new Map<ChainID, Map<string, number>>()
      for (const [i, r] of results.entries()) {
        expect(r.stderr, `worker ${i}`).toBe('')
        expect(r.code).toBe(0)
        const line = r.stdout.split('\n').find((l) => l.startsWith('refs '))!
        for (const [id, n] of Object.entries(JSON.parse(line.slice(5)) as Record<string, number>)) {
          const m = expected.get(id as ChainID) ?? new Map<string, number>()
          m.set(`worker-${i}`, n)
          expected.set(id as ChainID, m)
        }
      }
      const store = await openStore(root, driverName)
      try {
        expect(isEmptyCleanup(store.openCleanup!)).toBe(true)
        const layers = await store.map()
        expect([...layers.keys()].sort()).toEqual([...expected.keys()].sort())
        for (const [id, holders] of expected) {
          expect((await store.references(id)).holders, id).toEqual(holders)
          const layer = await store.get(id)
          expect(await readAll(await layer.tarStream())).toEqual(bytes.get(id))
          await store.release(layer)
        }
        expect(await driverIDs(root, driverName)).toEqual([...layers.values()].map((l) => l.cacheID).sort())
        // Releasing every worker's references empties the store.
        for (const [id, holders] of expected) {
          for (const [holder, n] of holders) for (let k = 0; k < n; k++) await store.releaseHolder(id, holder)
        }
        expect((await store.map()).size).toBe(0)
        expect(await driverIDs(root, driverName)).toEqual([])
      } finally {
        await store.close()
      }
    } finally {
      await t.remove()
    }
  }, 180_000)
})
