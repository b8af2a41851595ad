/**
 * What the parts of the layer store share: the driver, the metadata store, the store lock and
 * the session, plus the operations on references that more than one part needs (describe a
 * layer, add or drop a holder, delete what nothing holds any more).
 *
 * Deletion is two-phase, as the issue asks: under the exclusive lock a layer is only renamed
 * to its `-removing` name (`markUnheld`), so it stops existing at once for every process; its
 * driver data and the marked record are removed after unlocking (`removeMarked`). A crash in
 * between leaves marks whose owner is dead, which the next `cleanup()` removes.
 */
import createDebug from 'debug'
import type { Driver } from '../graphdriver/index.js'
import type { ChainID, FileMetadataStore, LayerRecord, RemovalMark, StoreLock } from '../metadata/index.js'
import type { StoreCrashHook, StoreCrashPoint } from './crash-points.js'
import { LayerStoreClosedError, StoreReadOnlyError } from './errors.js'
import type { LayerInfo, LayerMetadata } from './layer.js'
import { adjust, childrenOf, readHolders, scanGraph, writeHolders } from './references.js'
import type { GraphLayer, LayerGraph } from './references.js'
import type { Session } from './session.js'

const debug = createDebug('layerstore:layer')

/** Past this many entries the description cache starts over (it is only a cache). */
const INFO_CACHE_LIMIT = 10_000

/** A layer marked for deletion, with what `release` reports about it. */
export interface Victim {
  readonly metadata: LayerMetadata
  /** Its driver ID (the cache ID it had when marked) are `mark.driverIDs`. */
  readonly mark: RemovalMark
}

/** A failure of the deferred part of a deletion: the mark stays for `cleanup()`. */
export interface DeletionFailure {
  readonly target: string
  readonly error: Error
}

/** Construction parameters of {@link StoreCore}. */
export interface StoreCoreParts {
  readonly root: string
  readonly driver: Driver
  readonly metadata: FileMetadataStore
  /** Undefined: take no lock at all (a read-only store on a root no layerstore writes). */
  readonly lock: StoreLock | undefined
  /** Undefined in a read-only store: a session writes its owner file. */
  readonly session: Session | undefined
  /** A read-only store: `exclusive` (every change) fails with `StoreReadOnlyError`. */
  readonly readOnly?: boolean
  readonly wait: boolean
  readonly maxDepth: number
  readonly crash?: StoreCrashHook | undefined
}

/** See the file comment. One per open store; no state outside it. */
export class StoreCore {
  readonly root: string
  readonly driver: Driver
  readonly metadata: FileMetadataStore
  readonly maxDepth: number
  /** True for a read-only store (see `StoreCoreParts.readOnly`). */
  readonly readOnly: boolean
  readonly #session: Session | undefined
  readonly #lock: StoreLock | undefined
  readonly #wait: boolean
  readonly #crash: StoreCrashHook | undefined
  /** `chainID/cacheID` → description: immutable while that incarnation of the layer exists. */
  readonly #infos = new Map<string, LayerInfo>()
  /** The graph's view of each layer, a function of its chain ID (see `GraphLayer`). */
  readonly #graphCache = new Map<ChainID, GraphLayer>()
  #closed = false

  constructor(parts: StoreCoreParts) {
    this.root = parts.root
    this.driver = parts.driver
    this.metadata = parts.metadata
    this.#session = parts.session
    this.readOnly = parts.readOnly ?? false
    this.maxDepth = parts.maxDepth
    this.#lock = parts.lock
    this.#wait = parts.wait
    this.#crash = parts.crash
  }

  /** The session. @throws StoreReadOnlyError in a read-only store, which has none. */
  get session(): Session {
    if (!this.#session) throw new StoreReadOnlyError(this.root, 'take references')
    return this.#session
  }

  /** @throws StoreReadOnlyError in a read-only store. */
  checkWritable(operation: string): void {
    if (this.readOnly) throw new StoreReadOnlyError(this.root, operation)
  }

  /** True once `close()` began. */
  get closed(): boolean {
    return this.#closed
  }

  /** Marks the store closed: every later operation fails with `LayerStoreClosedError`. */
  markClosed(): void {
    this.#closed = true
  }

  /** @throws LayerStoreClosedError after `close()`. */
  checkOpen(): void {
    if (this.#closed) throw new LayerStoreClosedError(this.root)
  }

  /** Runs `fn` under the exclusive store lock (`StoreLockedError` if busy and not waiting). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.checkOpen()
    return this.#writableLock().withExclusive(fn, { wait: this.#wait })
  }

  /** Runs `fn` under the shared store lock. */
  shared<T>(fn: () => Promise<T>): Promise<T> {
    this.checkOpen()
    return this.#lock ? this.#lock.withShared(fn, { wait: this.#wait }) : fn()
  }

  /** Runs `fn` under the exclusive lock even after `close()` began (for `close` itself). */
  exclusiveWhileClosing<T>(fn: () => Promise<T>): Promise<T> {
    return this.#writableLock().withExclusive(fn, { wait: true })
  }

  #writableLock(): StoreLock {
    this.checkWritable('change it')
    if (!this.#lock) throw new StoreReadOnlyError(this.root, 'change it')
    return this.#lock
  }

  /** Calls the crash hook (tests). */
  crash(point: StoreCrashPoint): void {
    this.#crash?.(point)
  }

  /**
   * Describes a committed layer and its ancestors. Call it while the layer cannot vanish:
   * under the store lock, or while holding a reference to it.
   *
   * @throws LayerDoesNotExistError, CorruptMetadataError
   */
  async describe(chainID: ChainID): Promise<LayerInfo> {
    // The cache ID names the incarnation: one small read instead of the whole record when
    // this one was described before (a register describes its parent every time).
    const cacheID = await this.metadata.peekCacheID(chainID)
    const cached = cacheID === undefined ? undefined : this.#infos.get(`${chainID}/${cacheID}`)
    if (cached) return cached
    const record = await this.metadata.getLayer(chainID)
    const known = this.#infos.get(`${record.chainID}/${record.cacheID}`)
    if (known) return known
    // A parent exists as long as its child does, in the incarnation the child was made on.
    return this.describeRecord(record, record.parent ? await this.describe(record.parent) : null)
  }

  /**
   * Describes a layer from its record and its parent's description, and caches that: for a
   * record this process just committed, which it need not read back.
   */
  describeRecord(record: LayerRecord, parent: LayerInfo | null): LayerInfo {
    const key = `${record.chainID}/${record.cacheID}`
    const info: LayerInfo = Object.freeze({
      chainID: record.chainID,
      diffID: record.diffID,
      parent,
      size: record.size + (parent?.size ?? 0),
      diffSize: record.size,
      depth: (parent?.depth ?? 0) + 1,
      cacheID: record.cacheID,
      ...(record.descriptor ? { descriptor: record.descriptor } : {}),
    })
    if (this.#infos.size >= INFO_CACHE_LIMIT) this.#infos.clear()
    this.#infos.set(key, info)
    return info
  }

  /**
   * Deletes a layer (and then its ancestors) if nothing holds it any more: after a failed
   * register or RW-layer create cancelled the write set that held it (another process may
   * have released it meanwhile, as moby's release on a failed register would).
   */
  async deleteIfUnheld(chainID: ChainID): Promise<LayerMetadata[]> {
    const victims = await this.exclusiveWhileClosing(async () => {
      if (!(await this.metadata.hasLayer(chainID))) return []
      const holders = await readHolders(this.metadata, { layer: chainID })
      if (holders === undefined || (await this.anyAlive(holders))) return []
      return this.markUnheld(await this.graph(), [chainID])
    })
    await this.removeVictims(victims)
    return victims.map((v) => v.metadata)
  }

  /** Reads who holds whom (see `scanGraph`). Under the store lock. */
  graph(): Promise<LayerGraph> {
    return scanGraph(this.metadata, this.#graphCache)
  }

  /** The registered children of `parent` (base layers for null), as a hint: see `childrenOf`. */
  childrenOf(parent: ChainID | null): Promise<ChainID[]> {
    return childrenOf(this.metadata, this.#graphCache, parent)
  }

  /** Adds `n` references of `holder` to a layer. Under the exclusive lock. */
  async addHolder(chainID: ChainID, holder: string, n: number): Promise<void> {
    const holders = (await readHolders(this.metadata, { layer: chainID })) ?? new Map<string, number>()
    adjust(holders, holder, n)
    await writeHolders(this.metadata, { layer: chainID }, holders)
  }

  /**
   * Under the exclusive lock: marks each of `starts` (and then its ancestors, for as long as
   * the same holds) for deletion if nothing holds it: no live holder, no child layer left, no
   * RW layer, no live write set (a register in flight on it). A layer without `references.json` (made by moby) is never taken: its holders
   * are not ours to know. Returns the marked layers, children before parents.
   */
  async markUnheld(graph: LayerGraph, starts: Iterable<ChainID>): Promise<Victim[]> {
    const alive = this.session.probe()
    const victims: Victim[] = []
    const gone = new Set<ChainID>()
    for (const start of starts) {
      let current: ChainID | undefined = start
      while (current !== undefined && !gone.has(current)) {
        const record = graph.layers.get(current)
        if (!record) break
        if ((graph.children.get(current) ?? []).some((child) => !gone.has(child))) break
        if ((graph.rwLayers.get(current) ?? []).length > 0) break
        if ((graph.pendingChildren.get(current) ?? 0) > 0) break
        const holders = await readHolders(this.metadata, { layer: current })
        if (holders === undefined) break
        let held = false
        for (const holder of holders.keys()) if ((held = await alive(holder))) break
        if (held) break
        const metadata: LayerMetadata = Object.freeze({
          chainID: record.chainID,
          diffID: record.diffID,
          size: chainSize(graph, record.chainID),
          diffSize: record.size,
        })
        const mark = await this.metadata.markRemoving(current)
        this.crash('delete:after-mark')
        debug('marked layer %s for deletion', current)
        victims.push({ metadata, mark })
        gone.add(current)
        current = record.parent
      }
    }
    return victims
  }

  /**
   * After unlocking: removes the victims' driver data, then their marked records. Keeps going
   * past failures, whose marks stay for `cleanup()` (our session owns them until it ends).
   */
  async removeVictims(victims: readonly Victim[]): Promise<DeletionFailure[]> {
    const failures: DeletionFailure[] = []
    for (const victim of victims) {
      try {
        for (const id of victim.mark.driverIDs) await this.driver.remove(id)
        this.crash('delete:after-driver-remove')
        await this.metadata.removeMarked(victim.mark)
        debug('deleted layer %s', victim.metadata.chainID)
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err))
        debug('deleting layer %s failed, left for cleanup: %s', victim.metadata.chainID, error.message)
        failures.push({ target: victim.metadata.chainID, error })
      }
    }
    return failures
  }

  /**
   * Drops one reference of `holder` on a layer and deletes whatever that leaves unheld (the
   * failure path of register and RW create gives the parent back this way, as moby does).
   */
  async dropHolder(chainID: ChainID, holder: string): Promise<LayerMetadata[]> {
    const victims = await this.exclusiveWhileClosing(async () => {
      const holders = (await readHolders(this.metadata, { layer: chainID })) ?? new Map<string, number>()
      if (!holders.has(holder)) return []
      adjust(holders, holder, -1)
      await writeHolders(this.metadata, { layer: chainID }, holders)
      if (await this.anyAlive(holders)) return []
      return this.markUnheld(await this.graph(), [chainID])
    })
    await this.removeVictims(victims)
    return victims.map((v) => v.metadata)
  }

  /** True when a holder in `holders` is alive (a named holder, or a live session). */
  async anyAlive(holders: ReadonlyMap<string, number>): Promise<boolean> {
    const alive = this.session.probe()
    for (const holder of holders.keys()) if (await alive(holder)) return true
    return false
  }
}

/** The chain size of a layer from a graph: its size plus its ancestors'. */
function chainSize(graph: LayerGraph, chainID: ChainID): number {
  let total = 0
  for (let id: ChainID | undefined = chainID; id !== undefined; ) {
    const record = graph.layers.get(id)
    if (!record) break
    total += record.size
    id = record.parent
  }
  return total
}
