/**
 * Crash safety: a child process (the built package, test/layer/child.mjs) runs one operation
 * and is SIGKILLed at each crash point it passes, in turn (the points are first recorded by a
 * run that is not killed). The store reopened afterwards must hold either the old state or
 * the new, every layer's tar stream must verify, and nothing may be orphaned after open. A
 * chain of layers (`registerChain`) is atomic per layer: a crash may leave a prefix of it,
 * `partial`, between the two.
 *
 * Needs `dist/`: `npm test` builds it; in a session run `npx tsc -p tsconfig.build.json`.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isEmptyCleanup } from '../../src/layer/index.js'
import type { ChainID, LayerStore } from '../../src/layer/index.js'
import { DIST_BUILT, ONE_DRIVER, driverIDs, ls, makeTar, openStore, readAll, runChild, spawnChild, tempRoot } from './helpers.js'
import type { ChildResult } from './helpers.js'

const isRoot = process.getuid?.() === 0
const skip = !isRoot || !DIST_BUILT
if (!isRoot) console.warn('layer crash tests skipped: they need root')
else if (!DIST_BUILT) console.warn('layer crash tests skipped: dist/ is not built (run npx tsc -p tsconfig.build.json)')

/** Kill runs at once (each has its own root). */
const PARALLEL_KILLS = 3

/** Crash tests run on one driver (overlay when built in): each kill costs a process. */
const DRIVER = ONE_DRIVER

/** What the store holds after a crash, in the order a run passes through them. */
type State = 'old' | 'partial' | 'new'
const RANK: Readonly<Record<State, number>> = { old: 0, partial: 1, new: 2 }

/** What a scenario starts from, and how to tell its old state from its new one. */
interface Scenario {
  readonly name: string
  /** Prepares `root` (in this process) and returns the child's scenario. */
  setup(root: string, tars: Tars): Promise<object>
  /** 'old' or 'new' (or, for a chain, 'partial'); throws when the store holds none of them. */
  classify(store: LayerStore, tars: Tars): Promise<State>
  /** States that some crash point must reach (default: old and new). */
  readonly reaches?: readonly State[]
}

interface Tars {
  readonly base: Buffer
  readonly child: Buffer
  /** A layer for `child`'s top, for the chain scenario. */
  readonly grandchild: Buffer
  readonly dir: string
  baseID: ChainID
  childID: ChainID
  grandchildID: ChainID
}

async function holders(store: LayerStore, id: ChainID): Promise<Record<string, number>> {
  return Object.fromEntries((await store.references(id)).holders)
}

const scenarios: Scenario[] = [
  {
    name: 'register',
    async setup(root, t) {
      const store = await openStore(root, DRIVER)
      await store.register(t.base, null, { holder: 'base' })
      await store.close()
      return { kind: 'register', tar: join(t.dir, 'child.tar'), parent: t.baseID, holder: 'new' }
    },
    async classify(store, t) {
      expect(await holders(store, t.baseID)).toEqual({ base: 1 })
      if (!(await store.has(t.childID))) return 'old'
      expect(await holders(store, t.childID)).toEqual({ new: 1 })
      return 'new'
    },
  },
  {
    name: 'registerChain (two layers, one flush)',
    // Between the two layers' renames: the first layer alone.
    reaches: ['old', 'partial', 'new'],
    async setup(root, t) {
      const store = await openStore(root, DRIVER)
      await store.register(t.base, null, { holder: 'base' })
      await store.close()
      const tars = [join(t.dir, 'child.tar'), join(t.dir, 'grandchild.tar')]
      return { kind: 'register-chain', tars, parent: t.baseID, holder: 'new' }
    },
    async classify(store, t) {
      expect(await holders(store, t.baseID)).toEqual({ base: 1 })
      const [child, grandchild] = [await store.has(t.childID), await store.has(t.grandchildID)]
      if (!child) {
        expect(grandchild).toBe(false)
        return 'old'
      }
      expect(await holders(store, t.childID)).toEqual({ new: 1 })
      if (!grandchild) return 'partial'
      expect(await holders(store, t.grandchildID)).toEqual({ new: 1 })
      return 'new'
    },
  },
  {
    name: 'release (deleting a chain of two)',
    async setup(root, t) {
      const store = await openStore(root, DRIVER)
      await store.register(t.base, null, { holder: 'tmp' })
      await store.register(t.child, t.baseID, { holder: 'top' })
      await store.releaseHolder(t.baseID, 'tmp')
      await store.close()
      return { kind: 'release', chainID: t.childID, holder: 'top' }
    },
    async classify(store, t) {
      const [base, child] = [await store.has(t.baseID), await store.has(t.childID)]
      if (!base && !child) return 'new'
      expect([base, child]).toEqual([true, true])
      expect(await holders(store, t.childID)).toEqual({ top: 1 })
      expect(await holders(store, t.baseID)).toEqual({})
      return 'old'
    },
  },
  {
    name: 'RW layer create (with an init layer)',
    async setup(root, t) {
      const store = await openStore(root, DRIVER)
      await store.register(t.base, null, { holder: 'base' })
      await store.close()
      return { kind: 'rw-create', name: 'c1', parent: t.baseID }
    },
    async classify(store, t) {
      expect(await holders(store, t.baseID)).toEqual({ base: 1 })
      if (!(await store.listRWLayers()).includes('c1')) return 'old'
      const rw = await store.getRWLayer('c1')
      const path = await rw.mount()
      expect(await readFile(join(path, 'init.txt'), 'utf8')).toBe('init')
      expect(await readFile(join(path, 'a.txt'), 'utf8')).toBe('base a')
      await rw.unmount()
      return 'new'
    },
  },
  {
    name: 'RW layer remove',
    async setup(root, t) {
      const store = await openStore(root, DRIVER)
      await store.register(t.base, null, { holder: 'base' })
      await store.createRWLayer('c1', t.baseID, { initFunc: async (dir) => writeFile(join(dir, 'init.txt'), 'init') })
      await store.close()
      return { kind: 'rw-remove', name: 'c1' }
    },
    async classify(store, t) {
      expect(await holders(store, t.baseID)).toEqual({ base: 1 })
      return (await store.listRWLayers()).includes('c1') ? 'old' : 'new'
    },
  },
  {
    name: 'commit of a RW layer',
    async setup(root, t) {
      const store = await openStore(root, DRIVER)
      await store.register(t.base, null, { holder: 'base' })
      const rw = await store.createRWLayer('c1', t.baseID)
      const path = await rw.mount()
      await writeFile(join(path, 'new.txt'), 'committed file')
      await rw.unmount()
      await store.close()
      return { kind: 'commit', name: 'c1', holder: 'committed' }
    },
    async classify(store, t) {
      expect(await holders(store, t.baseID)).toEqual({ base: 1 })
      expect(await store.listRWLayers()).toEqual(['c1'])
      const layers = [...(await store.map()).values()].filter((l) => l.chainID !== t.baseID)
      if (layers.length === 0) return 'old'
      expect(layers.length).toBe(1)
      expect(layers[0]!.parent?.chainID).toBe(t.baseID)
      expect(await holders(store, layers[0]!.chainID)).toEqual({ committed: 1 })
      return 'new'
    },
  },
]

/** Reopens the store after a crash and checks the invariants; returns the state found. */
async function verify(root: string, scenario: Scenario, tars: Tars): Promise<State> {
  const store = await openStore(root, DRIVER)
  try {
    const state = await scenario.classify(store, tars)
    // Every layer streams back bytes that hash to its diff ID.
    for (const id of (await store.map()).keys()) {
      const layer = await store.get(id)
      await readAll(await layer.tarStream())
      await store.release(layer)
    }
    // Nothing orphaned after open: a second sweep finds nothing, the driver holds exactly what
    // the records name, and no intent is left in the layerdb.
    expect(isEmptyCleanup(await store.cleanup())).toBe(true)
    const named = new Set<string>()
    for (const info of (await store.map()).values()) named.add(info.cacheID)
    for (const name of await store.listRWLayers()) {
      const rw = await store.getRWLayer(name)
      named.add(rw.mountID)
      if (rw.initID) named.add(rw.initID)
    }
    expect(await driverIDs(root, DRIVER)).toEqual([...named].sort())
    const layerdb = join(root, 'image', DRIVER, 'layerdb')
    expect((await ls(join(layerdb, 'tmp'))).filter((n) => !n.startsWith('owner-'))).toEqual([])
    expect([...(await ls(join(layerdb, 'sha256'))), ...(await ls(join(layerdb, 'mounts')))].filter((n) => n.endsWith('-removing'))).toEqual([])
    return state
  } finally {
    await store.close({ keepMounts: false })
  }
}

describe.skipIf(skip).each(scenarios)('crash during $name', (scenario) => {
  it('leaves the old state or the new at every crash point, and no orphan', async () => {
    const base = await makeTar([
      { name: 'a.txt', content: 'base a' },
      { name: 'dir/', type: 'directory' },
      { name: 'dir/b.txt', content: 'base b' },
    ])
    const child = await makeTar([{ name: 'c.txt', content: 'child c' }])
    const grandchild = await makeTar([{ name: 'c.txt', content: 'grandchild c' }, { name: 'g.txt', content: 'g' }])
    const { chainIDOf, diffIDFromHex } = await import('../../src/layer/index.js')
    const { createHash } = await import('node:crypto')
    const diff = (b: Buffer) => diffIDFromHex(createHash('sha256').update(b).digest('hex'))
    const baseID = chainIDOf(null, diff(base))
    const tarDir = await tempRoot('layerstore-crash-tars-')
    const childID = chainIDOf(baseID, diff(child))
    const tars: Tars = { base, child, grandchild, dir: tarDir.dir, baseID, childID, grandchildID: chainIDOf(childID, diff(grandchild)) }
    await writeFile(join(tarDir.dir, 'child.tar'), child)
    await writeFile(join(tarDir.dir, 'grandchild.tar'), grandchild)

    const runOnce = async (killAt: number | undefined, trace: boolean): Promise<{ result: ChildResult; state: State }> => {
      const t = await tempRoot('layerstore-crash-')
      try {
        const s = await scenario.setup(t.dir, tars)
        const result = await runChild({ mode: 'scenario', root: t.dir, driver: DRIVER, scenario: s, killAt, trace })
        return { result, state: await verify(t.dir, scenario, tars) }
      } finally {
        await t.remove()
      }
    }
    try {
      const traced = await runOnce(undefined, true)
      expect(traced.result.stderr).toBe('')
      expect(traced.result.stdout).toMatch(/^done$/m)
      expect(traced.state).toBe('new')
      const points = traced.result.stdout
        .split('\n')
        .filter((l) => l.startsWith('point '))
        .map((l) => l.slice(6))
      expect(points.length).toBeGreaterThan(2)
      // Each kill has its own root, so a few run at once (a child is mostly process start-up).
      const seen: string[] = new Array<string>(points.length)
      let next = 0
      const killer = async (): Promise<void> => {
        while (next < points.length) {
          const k = next++
          const { result, state } = await runOnce(k, false)
          expect(result.signal, `killed at #${k} ${points[k]}: ${result.stderr}`).toBe('SIGKILL')
          seen[k] = `${points[k]}→${state}`
        }
      }
      await Promise.all(Array.from({ length: PARALLEL_KILLS }, killer))
      // A later crash never finds an earlier state: once the new state (or a chain's prefix)
      // is reachable by a crash, every later crash keeps it.
      const ranks = seen.map((s) => RANK[s.slice(s.indexOf('→') + 1) as State])
      expect(ranks.every((r, i) => i === 0 || r >= ranks[i - 1]!), seen.join(', ')).toBe(true)
      for (const state of scenario.reaches ?? ['old', 'new']) expect(ranks, `${state} in ${seen.join(', ')}`).toContain(RANK[state])
    } finally {
      await tarDir.remove()
    }
  }, 180_000)
})

describe.skipIf(skip)('a killed process', () => {
  it('loses its session references at the next open, and what only they held is deleted', async () => {
    const t = await tempRoot('layerstore-crash-session-')
    try {
      const root = join(t.dir, 'root')
      const tar = await makeTar([{ name: 'session.txt', content: 'held by a session only' }])
      await writeFile(join(t.dir, 'l.tar'), tar)
      const kept = await makeTar([{ name: 'kept.txt', content: 'held by name' }])
      const store = await openStore(root, DRIVER)
      const named = await store.register(kept, null, { holder: 'named' })
      const child = spawnChild(
        { mode: 'scenario', root, driver: DRIVER, hold: true, scenario: { kind: 'register', tar: join(t.dir, 'l.tar'), parent: named.chainID } },
        'inherit',
      )
      await new Promise<void>((resolve, reject) => {
        child.stdout.setEncoding('utf8').on('data', (s: string) => s.includes('holding') && resolve())
        child.on('close', (code) => reject(new Error(`child ended early (${code})`)))
      })
      // While the child lives, its session holds the layer: a cleanup here keeps it.
      expect((await store.cleanup()).deletedLayers).toEqual([])
      expect((await store.map()).size).toBe(2)
      const exited = new Promise((resolve) => child.once('close', resolve))
      child.kill('SIGKILL')
      await exited
      const report = await store.cleanup()
      expect(report.droppedHolders.map((d) => d.holder.startsWith('session:'))).toEqual([true])
      expect(report.deletedLayers.map((l) => l.diffSize)).toEqual(['held by a session only'.length])
      expect([...(await store.map()).keys()]).toEqual([named.chainID])
      await store.close()
    } finally {
      await t.remove()
    }
  }, 60_000)
})
