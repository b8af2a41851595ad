/**
 * The operations the suite times, written as a user of the public API would write them: a
 * `LayerStore` on a root, and for the read-write references the bare graph driver from the
 * same registry. Each function times only the call it names (wall seconds, in-process) and
 * returns plain numbers; bench-child.ts runs them in a process of their own.
 */
import { spawn } from 'node:child_process'
import { graphdriver, drivers, io, layer } from '../index.js'
import type { DriverSpec } from './driver-spec.js'
import { secondsSince } from './stats.js'

type LayerStore = layer.LayerStore
type ChainID = layer.ChainID

/** The holder of every layer the suite registers: named, so a layer outlives its child process. */
export const BENCH_HOLDER = 'layerstore-bench'

/** Opens the store of `spec` on `root` (created if missing). */
export function openStore(root: string, spec: DriverSpec): Promise<LayerStore> {
  return layer.LayerStore.open({
    root,
    driver: spec.name,
    ...(Object.keys(spec.options).length ? { driverOptions: spec.options } : {}),
    ...(spec.plugins.length ? { driverPlugins: spec.plugins } : {}),
  })
}

/** Starts the bare driver of `spec` on `home`, as the store does (plugins loaded first). */
export async function openDriver(home: string, spec: DriverSpec): Promise<graphdriver.Driver> {
  const registry = new graphdriver.DriverRegistry(drivers.builtinDrivers)
  for (const plugin of spec.plugins) await registry.loadPlugin(plugin)
  return registry.create(spec.name, { home, options: spec.options })
}

/** One timed register. */
export interface RegisterTiming {
  readonly seconds: number
  readonly chainID: ChainID
  readonly existed: boolean
}

/**
 * Registers `tars` in order, each on the previous (the first on `parent`), for the bench's
 * named holder, each read as `layerctl register FILE` reads it (`io.readFileChunks`, a recycling
 * source); times each `register` call (the one streaming pass: read, sha256, tar-split,
 * the driver's apply, the metadata commit).
 */
export async function registerLayers(store: LayerStore, tars: readonly string[], parent: ChainID | null): Promise<RegisterTiming[]> {
  const out: RegisterTiming[] = []
  for (const tar of tars) {
    const start = process.hrtime.bigint()
    const l = await store.register(io.readFileChunks(tar), parent, { holder: BENCH_HOLDER })
    out.push({ seconds: secondsSince(start), chainID: l.chainID, existed: l.existed })
    parent = l.chainID
  }
  return out
}

/** One timed `registerChain` call. */
export interface ChainTiming {
  readonly seconds: number
  readonly chainIDs: readonly ChainID[]
  /** True when any layer of the chain was registered already. */
  readonly existed: boolean
}

/**
 * Registers `tars` as one chain on `parent` with a single `registerChain` call (one flush for
 * all of them), each read as {@link registerLayers} reads it and opened only when the chain
 * asks for it; times the call.
 */
export async function registerChain(store: LayerStore, tars: readonly string[], parent: ChainID | null): Promise<ChainTiming> {
  async function* inputs(): AsyncGenerator<layer.ChainLayerInput> {
    for (const tar of tars) yield { tar: io.readFileChunks(tar) }
  }
  const start = process.hrtime.bigint()
  const registered = await store.registerChain(inputs(), parent, { holder: BENCH_HOLDER })
  return { seconds: secondsSince(start), chainIDs: registered.map((l) => l.chainID), existed: registered.some((l) => l.existed) }
}

/** The four timings of one read-write layer's life. */
export interface RWCycle {
  readonly create: number
  readonly mount: number
  readonly unmount: number
  readonly remove: number
}

/**
 * A container's writable layer through the store, `cycles` times on fresh names:
 * `createRWLayer` on `parent`, `mount`, `unmount`, `releaseRWLayer` (which removes it), each
 * timed. One untimed cycle first (JIT, a driver's lazily started helpers).
 */
export function storeRWCycles(store: LayerStore, parent: ChainID, cycles: number, prefix: string): Promise<RWCycle[]> {
  return timeRWCycles(cycles, prefix, {
    create: (name) => store.createRWLayer(name, parent),
    mount: (rw) => rw.mount(),
    unmount: (rw) => rw.unmount(),
    remove: (rw) => store.releaseRWLayer(rw),
  })
}

/**
 * The same cycle on the bare driver (`createReadWrite`, `get`, `put`, `remove` on the
 * parent's cache ID): the floor a store over this driver can reach, the reference of the
 * read-write operations (GNU tar has none). Run it with the store closed.
 */
export function driverRWCycles(driver: graphdriver.Driver, parent: string, cycles: number, prefix: string): Promise<RWCycle[]> {
  return timeRWCycles(cycles, prefix, {
    create: async (id) => {
      await driver.createReadWrite(id, parent)
      return id
    },
    mount: (id) => driver.get(id),
    unmount: (id) => driver.put(id),
    remove: (id) => driver.remove(id),
  })
}

/** The four steps of one RW layer's life, on the handle `create` returns. */
interface RWSteps<H> {
  create(name: string): Promise<H>
  mount(handle: H): Promise<unknown>
  unmount(handle: H): Promise<unknown>
  remove(handle: H): Promise<unknown>
}

/**
 * Runs `steps` `cycles` times on names `${prefix}-0`…, after one untimed cycle on
 * `${prefix}-warm`, timing each step: the store and its driver reference are timed alike.
 */
async function timeRWCycles<H>(cycles: number, prefix: string, steps: RWSteps<H>): Promise<RWCycle[]> {
  const out: RWCycle[] = []
  for (let i = -1; i < cycles; i++) {
    let t = process.hrtime.bigint()
    const handle = await steps.create(`${prefix}-${i < 0 ? 'warm' : i}`)
    const create = secondsSince(t)
    t = process.hrtime.bigint()
    await steps.mount(handle)
    const mount = secondsSince(t)
    t = process.hrtime.bigint()
    await steps.unmount(handle)
    const unmount = secondsSince(t)
    t = process.hrtime.bigint()
    await steps.remove(handle)
    const remove = secondsSince(t)
    if (i >= 0) out.push({ create, mount, unmount, remove })
  }
  return out
}

/** What `changesAndCommit` measured. */
export interface ChangesCommitTiming {
  readonly changesSeconds: number
  readonly changes: number
  readonly commitSeconds: number
  readonly commitBytes: number
}

/**
 * A RW layer on nothing, filled (untimed) by GNU tar extracting `tar` into its mount, as a
 * container writing a tree; then `rw.changes()` and `store.commit(rw)` (its tar stream
 * registered as a new layer), each timed. The RW layer is released afterwards, untimed.
 */
export async function changesAndCommit(store: LayerStore, tar: string, name: string): Promise<ChangesCommitTiming> {
  const rw = await store.createRWLayer(name, null)
  try {
    const path = await rw.mount()
    await run('tar', ['-x', '--numeric-owner', '-C', path, '-f', tar])
    let t = process.hrtime.bigint()
    const changes = await rw.changes()
    const changesSeconds = secondsSince(t)
    t = process.hrtime.bigint()
    const committed = await store.commit(rw, { holder: BENCH_HOLDER })
    const commitSeconds = secondsSince(t)
    await rw.unmount()
    return { changesSeconds, changes: changes.length, commitSeconds, commitBytes: committed.diffSize }
  } finally {
    await store.releaseRWLayer(rw).catch(() => undefined)
  }
}

/** Reads the registered tar of each layer to its last byte (`tarStream`, verified as it streams). */
export async function exportLayers(store: LayerStore, chainIDs: readonly ChainID[]): Promise<{ seconds: number; bytes: number }> {
  let bytes = 0
  const start = process.hrtime.bigint()
  for (const chainID of chainIDs) {
    const l = await store.get(chainID)
    try {
      const stream = await l.tarStream()
      for await (const chunk of stream) bytes += (chunk as Buffer).length
    } finally {
      await store.release(l)
    }
  }
  return { seconds: secondsSince(start), bytes }
}

/**
 * Releases a whole chain, as removing an image does: first (untimed) the bench's references
 * on every layer below the top, which their children still hold, so that only the top's
 * reference keeps the chain; then, timed, that one, which deletes every layer.
 */
export async function releaseChain(store: LayerStore, chain: readonly ChainID[]): Promise<{ seconds: number; deleted: number }> {
  const top = chain.at(-1)
  if (top === undefined) return { seconds: 0, deleted: 0 }
  for (const chainID of chain.slice(0, -1)) await store.releaseHolder(chainID, BENCH_HOLDER)
  const start = process.hrtime.bigint()
  const deleted = await store.releaseHolder(top, BENCH_HOLDER)
  return { seconds: secondsSince(start), deleted: deleted.length }
}

function run(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err.slice(0, 300)}`))))
  })
}
