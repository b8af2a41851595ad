/**
 * The layer store: moby's `layer.Store`, typed, shared safely by several processes.
 *
 * ## Vocabulary
 *
 * - **layer** (read-only): a registered tar, keyed by its **chain ID** (OCI: its diff ID and
 *   its parent's chain ID), stored as a driver layer (the **cache ID**) plus moby-compatible
 *   metadata (`layerdb/sha256/<hex>/`, with the tar-split that reproduces its exact bytes).
 * - **reference**: what keeps a layer alive. Each belongs to a **holder**: a name the caller
 *   chose (an image name, `layerctl register --ref NAME`), persisted until released by that
 *   name from any process; or this store instance's **session**, which ends at `close()` or
 *   when the process dies. A layer is also held by each **child** registered on it and each
 *   **RW layer** created on it. One held by nothing is deleted at once (its parents then too,
 *   if that leaves them unheld).
 * - **RW layer**: a container's writable layer, named by the caller (`createRWLayer`), on an
 *   optional init layer and a read-only parent. It lasts until `releaseRWLayer` of its last
 *   live handle; its `mount()` calls are counted across processes.
 * - **handle**: each `register`/`get` (`Layer`) and `createRWLayer`/`getRWLayer` (`RWLayer`)
 *   returns a new one; releasing it twice is `LayerNotRetainedError`/`RWLayerNotRetainedError`.
 *
 * ## Lifecycle
 *
 * Importing an image: `has(chainID)` to skip a layer already present, else
 * `register(tar, parentChainID, { holder: 'docker.io/library/alpine:3', diffID })` for each
 * layer, base first. Running a container: `createRWLayer(id, topChainID, { initFunc })`, then
 * `rw.mount()` → the root path, `rw.unmount()`, `commit(rw)` to save it as a new layer,
 * `releaseRWLayer(rw)` to delete it. Removing the image: `releaseHolder(chainID, image)` for
 * its top layer, which deletes the chain down to whatever else still holds it.
 *
 * ## Concurrency, crashes, cost
 *
 * Every change takes the store lock (a kernel lock on `<root>/layerstore.lock`) exclusively,
 * briefly: the slow work (extracting a layer, removing its files) happens outside it, into a
 * fresh cache ID or after renaming the record to `-removing`. A process killed at any instant
 * leaves the old state or the new, plus orphans that the next `open` (or `cleanup()`) removes
 * and reports. `register` reads its input once (memory stays flat whatever the size);
 * releasing the last reference of a layer reads every layer record once (to find children).
 *
 * ## Read-only
 *
 * `open({ readOnly: true })` reads a root without changing anything under it, a Docker
 * overlay2 data root included (`driver: 'overlay2'`): see read-only-open.ts and
 * `LayerStoreOptions.readOnly`. Every change is then `StoreReadOnlyError`.
 */
import { mkdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import createDebug from 'debug'
import { hasCode } from '../errors.js'
import { defaultDrivers } from '../drivers/index.js'
import type { DriverStatus } from '../graphdriver/index.js'
import { DriverRegistry, MAX_LAYER_DEPTH, refuseReadOnlyOnly, selectDriver } from '../graphdriver/index.js'
import type { ChainID, MountID } from '../metadata/index.js'
import { FileMetadataStore, StoreLock, parseChainID } from '../metadata/index.js'
import { LayerNotRetainedError, LayerStoreInternalError, RWLayerNotRetainedError } from './errors.js'
import type {
  ChainLayerInput,
  CloseOptions,
  LayerStoreOptions,
  CreateRWLayerOptions,
  Layer,
  LayerInfo,
  LayerInput,
  LayerMetadata,
  LayerReferences,
  RegisterChainOptions,
  RegisterOptions,
  RegisteredLayer,
  RWLayer,
  RWLayerReleaseResult,
} from './layer.js'
import { adjust, readHolders, writeHolders } from './references.js'
import { registerLayers } from './register-chain.js'
import { ROLayerHandle } from './ro-layer.js'
import { RWLayerHandle } from './rw-layer.js'
import { RWLayerManager } from './rw-layer-manager.js'
import { checkHolder, Session } from './session.js'
import { cleanupStore } from './store-cleanup.js'
import type { StoreCleanupReport } from './store-cleanup.js'
import { StoreCore } from './store-core.js'
import { openReadOnlyCore, READ_ONLY_HOLDER } from './read-only-open.js'

const debug = createDebug('layerstore:layer')

/** The layer store. See the file comment; open one with {@link LayerStore.open}. */
export class LayerStore {
  /** The data root (absolute). */
  readonly root: string
  /** The driver's name (also its home's base name under `root`). */
  readonly driverName: string
  readonly #core: StoreCore
  readonly #rw: RWLayerManager
  readonly #handles = new Set<ROLayerHandle>()
  #openCleanup: StoreCleanupReport | undefined

  private constructor(core: StoreCore, driverName: string) {
    this.root = core.root
    this.driverName = driverName
    this.#core = core
    this.#rw = new RWLayerManager(core)
  }

  /**
   * Opens (creating if needed) the store at `options.root`: selects the driver (an explicit
   * one, the root's prior driver, or the first that works), opens the layerdb and, unless
   * disabled, runs `cleanup()`.
   *
   * @throws the graph driver module's selection errors (`PriorDriverError`, `NoSupportedDriverError`, …),
   *   `StoreLockedError` when not waiting.
   */
  static async open(options: LayerStoreOptions): Promise<LayerStore> {
    if (options.readOnly) {
      const core = await openReadOnlyCore(options)
      return new LayerStore(core, core.driver.name)
    }
    const root = resolve(options.root)
    const registry = options.registry ?? new DriverRegistry(defaultDrivers)
    for (const plugin of options.driverPlugins ?? []) {
      await registry.loadPlugin(plugin)
    }
    // Before the root, lock file or anything else is made: a Docker root stays untouched.
    await refuseReadOnlyOnly(root, registry, options.driver)
    await mkdir(root, { recursive: true, mode: 0o700 })
    const lock = StoreLock.forRoot(root)
    const wait = options.waitForLock ?? true
    // Driver homes and the layerdb skeleton are made under the lock: a concurrent open must
    // not take a half-made home for a prior driver.
    const { driver, metadata, session } = await lock.withExclusive(async () => {
      const selected = await selectDriver({
        root,
        registry,
        ...(options.driver !== undefined ? { driver: options.driver } : {}),
        ...(options.driverOptions ? { options: options.driverOptions } : {}),
      })
      const crash = options.crashPoint
      try {
        const metadata = await FileMetadataStore.open(root, selected.name, crash ? { crashPoint: crash } : {})
        try {
          return { driver: selected.driver, metadata, session: await Session.start(metadata.layout) }
        } catch (err) {
          await metadata.close()
          throw err
        }
      } catch (err) {
        await selected.driver.cleanup().catch(() => undefined)
        throw err
      }
    }, { wait })
    const maxDepth = Math.min(options.maxDepth ?? MAX_LAYER_DEPTH, driver.capabilities.maxDepth)
    const core = new StoreCore({ root, driver, metadata, lock, session, wait, maxDepth, crash: options.crashPoint })
    const store = new LayerStore(core, driver.name)
    if (options.cleanupOnOpen ?? true) {
      try {
        store.#openCleanup = await store.cleanup()
      } catch (err) {
        await store.close().catch(() => undefined)
        throw err
      }
    }
    debug('opened %s with driver %s', root, driver.name)
    return store
  }

  /** What the `cleanup()` at open did (undefined when it was disabled). */
  get openCleanup(): StoreCleanupReport | undefined {
    return this.#openCleanup
  }

  /** True when opened read-only (`LayerStoreOptions.readOnly`): every change throws. */
  get readOnly(): boolean {
    return this.#core.readOnly
  }

  /** The deepest chain `register` accepts. */
  get maxDepth(): number {
    return this.#core.maxDepth
  }

  /** The holder of references taken without a holder name: `session:<id>`. */
  get sessionHolder(): string {
    return this.#core.readOnly ? READ_ONLY_HOLDER : this.#core.session.holder
  }

  /**
   * Registers a layer tar (plain, gzip or zstd) on `parent` (null: a base layer) and returns a
   * new reference to it. See {@link RegisterOptions} for the holder, a known diff ID,
   * progress and abort. A layer whose chain ID exists already only gets a reference: without
   * a diff ID, the input is read and compared byte for byte with the registered layers it
   * could be, and is not applied (a copy is made and discarded only when another process
   * registers the same layer at the same time).
   *
   * @throws LayerDoesNotExistError (the parent), MaxDepthExceededError, LayerDigestMismatchError,
   *   the tar and archive modules' typed errors for bad input (`TruncatedArchiveError`,
   *   `InvalidHeaderError`, `DuplicatePathError`, `UnsafePathError`, …), CorruptInputError,
   *   CompressionNotSupportedError, NoSpaceError. The store is left as it was.
   */
  async register(tar: LayerInput, parent?: ChainID | null, options: RegisterOptions = {}): Promise<RegisteredLayer> {
    this.#core.checkWritable('register a layer')
    const holder = this.#holderFor(options.holder)
    const entry = { tar, ...(options.diffID ? { diffID: options.diffID } : {}), ...(options.descriptor ? { descriptor: options.descriptor } : {}) }
    const [outcome] = await registerLayers(this.#core, [entry], parent ?? null, holder, {
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    })
    if (!outcome) throw new LayerStoreInternalError('register returned no layer')
    return Object.assign(this.#handle(outcome.info, holder), { existed: outcome.existed })
  }

  /**
   * Registers an image's layers in order, each on the one before (the first on `parent`), and
   * returns a reference to each, as that many `register` calls would; but the layers are made
   * durable together: one flush of the filesystems for the whole chain instead of one per
   * layer, which is most of a small layer's register. Each layer is still published
   * atomically, in order: a crash leaves a prefix of the chain registered (each layer whole,
   * held by `holder`), as a crash between `register` calls would. The entries are read one at
   * a time (an async iterable may open each tar when asked for it).
   *
   * @throws as {@link register} (nothing of the chain is stored), and LayerChainConflictError
   *   when another process registered the same new layers at the same moment.
   */
  async registerChain(
    layers: Iterable<ChainLayerInput> | AsyncIterable<ChainLayerInput>,
    parent?: ChainID | null,
    options: RegisterChainOptions = {},
  ): Promise<RegisteredLayer[]> {
    this.#core.checkWritable('register layers')
    const holder = this.#holderFor(options.holder)
    const outcomes = await registerLayers(this.#core, layers, parent ?? null, holder, options)
    return outcomes.map((o) => Object.assign(this.#handle(o.info, holder), { existed: o.existed }))
  }

  /** True when a layer with this chain ID is registered. */
  async has(chainID: ChainID): Promise<boolean> {
    const id = parseChainID(chainID)
    return this.#core.shared(() => this.#core.metadata.hasLayer(id))
  }

  /**
   * Takes a new reference to a registered layer for `options.holder` (default: the session).
   * In a read-only store the handle holds nothing (nothing is persisted): a writer may delete
   * the layer meanwhile, and its `tarStream()` then fails.
   *
   * @throws LayerDoesNotExistError
   */
  async get(chainID: ChainID, options: { readonly holder?: string } = {}): Promise<Layer> {
    const id = parseChainID(chainID)
    const core = this.#core
    if (core.readOnly) {
      core.checkOpen()
      const holder = options.holder === undefined ? READ_ONLY_HOLDER : checkHolder(options.holder)
      return this.#handle(await core.shared(() => core.describe(id)), holder)
    }
    const holder = this.#holderFor(options.holder)
    const info = await core.exclusive(async () => {
      const info = await core.describe(id)
      await core.addHolder(id, holder, 1)
      return info
    })
    return this.#handle(info, holder)
  }

  /**
   * Releases the reference `layer` holds, and deletes the layer if nothing holds it any more,
   * then its parents for as long as that is true. Returns what was deleted, child first.
   *
   * @throws LayerNotRetainedError for a handle already released (or not from this store).
   */
  async release(layer: Layer): Promise<LayerMetadata[]> {
    const handle = layer instanceof ROLayerHandle && layer.belongsTo(this.#core) ? layer : undefined
    if (!handle || !handle.take()) throw new LayerNotRetainedError(layer.chainID, layer.holder)
    if (this.#core.readOnly) {
      // A read-only handle persisted nothing: dropping it changes nothing either.
      this.#handles.delete(handle)
      return []
    }
    try {
      const deleted = await this.#releaseOne(handle.chainID, handle.holder)
      this.#handles.delete(handle)
      return deleted
    } catch (err) {
      handle.restore()
      throw err
    }
  }

  /**
   * Releases one reference of a named holder without a handle: `layerctl release --ref NAME`
   * in another process than the one that registered. Deletes as {@link release} does.
   *
   * @throws LayerNotRetainedError when `holder` holds no reference to it; LayerDoesNotExistError.
   */
  async releaseHolder(chainID: ChainID, holder: string): Promise<LayerMetadata[]> {
    this.#core.checkWritable('release a reference')
    return this.#releaseOne(parseChainID(chainID), checkHolder(holder))
  }

  async #releaseOne(chainID: ChainID, holder: string): Promise<LayerMetadata[]> {
    const core = this.#core
    const victims = await core.exclusive(async () => {
      const holders = (await readHolders(core.metadata, { layer: chainID })) ?? new Map<string, number>()
      if (!holders.has(holder)) {
        await core.metadata.getLayer(chainID) // LayerDoesNotExistError first
        throw new LayerNotRetainedError(chainID, holder, 'it holds no reference to this layer')
      }
      adjust(holders, holder, -1)
      await writeHolders(core.metadata, { layer: chainID }, holders)
      core.crash('release:after-holders')
      if (await core.anyAlive(holders)) return []
      return core.markUnheld(await core.graph(), [chainID])
    })
    await core.removeVictims(victims)
    return victims.map((v) => v.metadata)
  }

  /** Who holds a layer: holders and their counts, child layers, RW layers. */
  async references(chainID: ChainID): Promise<LayerReferences> {
    const id = parseChainID(chainID)
    const core = this.#core
    return core.shared(async () => {
      await core.metadata.getLayer(id)
      const holders = (await readHolders(core.metadata, { layer: id })) ?? new Map<string, number>()
      const graph = await core.graph()
      return Object.freeze({
        holders,
        children: Object.freeze([...(graph.children.get(id) ?? [])].sort()),
        rwLayers: Object.freeze([...(graph.rwLayers.get(id) ?? [])].sort()),
      })
    })
  }

  /**
   * Every registered layer, described (not referenced: moby's `Map`). A layer whose record (or
   * an ancestor's) does not validate is left out, not fatal: `cleanup()` reports it.
   */
  async map(): Promise<ReadonlyMap<ChainID, LayerInfo>> {
    const core = this.#core
    return core.shared(async () => {
      const out = new Map<ChainID, LayerInfo>()
      for (const id of (await core.metadata.list()).layers) {
        try {
          out.set(id, await core.describe(id))
        } catch (err) {
          if (!hasCode(err, 'ERR_METADATA_CORRUPT')) throw err
          debug('layer %s left out of the map: %s', id, (err as Error).message)
        }
      }
      return out
    })
  }

  /**
   * Creates the RW layer `name` on `parent` (null: on nothing), with an init layer when
   * `options.initFunc` is given, and returns a handle.
   *
   * @throws MountNameConflictError, LayerDoesNotExistError, the driver's errors.
   */
  async createRWLayer(name: string, parent: ChainID | null, options: CreateRWLayerOptions = {}): Promise<RWLayer> {
    this.#core.checkOpen()
    this.#core.checkWritable('create a RW layer')
    return this.#rw.create(name, parent, options)
  }

  /**
   * A new handle on the RW layer `name`. In a read-only store it is not persisted, and only
   * reads work through it (`changes`, `size`, `tarStream`, `metadata`).
   *
   * @throws MountDoesNotExistError
   */
  getRWLayer(name: string): Promise<RWLayer> {
    return this.#rw.get(name)
  }

  /** The driver ID of the RW layer `name`. @throws MountDoesNotExistError */
  async getMountID(name: string): Promise<MountID> {
    const core = this.#core
    return core.shared(async () => (await core.metadata.getMount(name)).mountID)
  }

  /** Names of the RW layers. */
  listRWLayers(): Promise<string[]> {
    return this.#rw.list()
  }

  /**
   * Releases a RW layer handle. The RW layer is removed when no other live handle (in any
   * process) holds it, and then its parent chain is released as by {@link release}.
   *
   * @throws RWLayerNotRetainedError for a second release; RWLayerMountedError when it would be
   *   removed while mounted (nothing changes then).
   */
  async releaseRWLayer(rw: RWLayer): Promise<RWLayerReleaseResult> {
    this.#core.checkOpen()
    if (!(rw instanceof RWLayerHandle)) throw new RWLayerNotRetainedError(rw.name)
    return this.#rw.release(rw)
  }

  /**
   * Registers the changes of a RW layer (its `tarStream()`, against its parent) as a new
   * layer on the RW layer's parent, and returns a reference to it. The RW layer stays.
   */
  async commit(rw: RWLayer, options: RegisterOptions = {}): Promise<Layer> {
    this.#core.checkWritable('commit a RW layer')
    const tar = await rw.tarStream()
    try {
      return await this.register(tar, rw.parent?.chainID ?? null, options)
    } finally {
      tar.destroy()
    }
  }

  /**
   * Removes what crashed or failed operations left (write sets, `-removing` records and their
   * driver data, driver layers no record names, unusable RW layer records), drops the
   * references of dead sessions, forgets mount counts of a previous boot, and deletes the
   * layers nothing holds any more. Never deletes data a committed layer references. Returns
   * what it did.
   */
  async cleanup(): Promise<StoreCleanupReport> {
    this.#core.checkWritable('clean up')
    return cleanupStore(this.#core)
  }

  /** The driver's status lines (backing filesystem, …). */
  async driverStatus(): Promise<DriverStatus> {
    this.#core.checkOpen()
    return this.#core.driver.status()
  }

  /**
   * Closes the store: releases the session's references (deleting what nothing else holds),
   * forgets named holders' handles (their references persist), gives back RW handles and,
   * unless `keepMounts`, the mounts this instance made, then releases the driver (`cleanup`)
   * and the locks. A second call does nothing.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    const core = this.#core
    if (core.closed) return
    core.markClosed()
    if (core.readOnly) {
      // Nothing was persisted, locked or mounted: in particular the driver's cleanup, which
      // unmounts what it finds under its home, must not touch a Docker root's mounts.
      for (const handle of this.#handles) handle.take()
      this.#handles.clear()
      await this.#rw.close(false)
      await core.metadata.close()
      debug('closed %s (read-only)', this.root)
      return
    }
    const session = [...this.#handles].filter((h) => h.holder === core.session.holder)
    for (const handle of this.#handles) handle.take()
    this.#handles.clear()
    for (const handle of session) {
      await core.dropHolder(handle.chainID, handle.holder).catch((err: unknown) => debug('releasing %s at close failed: %s', handle.chainID, err))
    }
    await this.#rw.close(options.keepMounts ?? false)
    if (!options.keepMounts) await core.driver.cleanup()
    await core.session.end()
    await core.metadata.close()
    debug('closed %s', this.root)
  }

  #holderFor(holder: string | undefined): string {
    this.#core.checkOpen()
    return holder === undefined ? this.#core.session.holder : checkHolder(holder)
  }

  #handle(info: LayerInfo, holder: string): ROLayerHandle {
    const handle = new ROLayerHandle(this.#core, info, holder)
    this.#handles.add(handle)
    return handle
  }
}
