/**
 * The public types of the layer store: read-only layers, RW layers, and the options of the
 * store's operations (moby's `layer.go`). The store itself is `LayerStore` (layer-store.ts).
 */
import type { Readable } from 'node:stream'
import type { Change, DriverRegistry } from '../graphdriver/index.js'
import type { StoreCrashHook } from './crash-points.js'
import type { CacheID, ChainID, DiffID, JsonObject, MountID } from '../metadata/index.js'

export type { CacheID, ChainID, DiffID, MountID } from '../metadata/index.js'
export type { Change, DriverStatus } from '../graphdriver/index.js'

/** The tar input of `register`/`applyDiff`: a stream, any async iterable of bytes, or the bytes. */
export type LayerInput = Readable | AsyncIterable<Uint8Array> | Uint8Array

/**
 * What describes a committed read-only layer. Immutable: a layer's record never changes
 * while it exists, and every ancestor of a layer lives as long as the layer does.
 */
export interface LayerInfo {
  readonly chainID: ChainID
  /** sha256 of the layer's uncompressed tar, exactly as registered. */
  readonly diffID: DiffID
  /** The parent layer, or null for a base layer. */
  readonly parent: LayerInfo | null
  /** Bytes of the whole chain: this layer's `diffSize` plus its parent's `size` (moby's `Size`). */
  readonly size: number
  /** Bytes this layer's apply wrote (moby's `DiffSize`, the sum of its members' sizes). */
  readonly diffSize: number
  /** 1 for a base layer, the parent's depth + 1 otherwise. */
  readonly depth: number
  /** The driver's ID of the layer's files. */
  readonly cacheID: CacheID
  /** `descriptor.json`, when the layer was registered with one. */
  readonly descriptor?: JsonObject
}

/** Progress of a byte stream, reported as it goes. */
export interface StreamProgress {
  /** Uncompressed tar bytes so far. */
  readonly bytes: number
  /** Input bytes as read (equal to `bytes` for uncompressed input). */
  readonly inputBytes: number
}

/** Options of `Layer.tarStream()` and `RWLayer.tarStream()`. */
export interface TarStreamOptions {
  /** Called as bytes are produced (at most once per chunk). */
  readonly onProgress?: (progress: StreamProgress) => void
}

/**
 * A reference to a read-only layer: what `register` and `get` return. Each call returns a
 * new handle, holding one reference for its `holder` until `LayerStore.release(handle)`; a
 * released handle can no longer stream (`LayerNotRetainedError`).
 */
export interface Layer extends LayerInfo {
  /** Who holds this reference (a caller's name, or `session:<id>` of the store instance). */
  readonly holder: string
  /** False once released (or once the store is closed). */
  readonly retained: boolean
  /**
   * The layer's tar, **exactly the registered bytes**, rebuilt from its tar-split metadata and
   * the driver's files and hashed as it streams: a stream whose bytes do not hash to
   * `diffID` fails at its end with `LayerDigestMismatchError`, a changed or missing file as
   * soon as it is reached (`ChecksumMismatchError`, `MissingFileError`). Consume or destroy
   * it: it holds the layer's files until it closes.
   */
  tarStream(options?: TarStreamOptions): Promise<Readable>
  /** The driver's facts about the layer's files (moby's `Metadata`, e.g. vfs `SourceDir`). */
  metadata(): Promise<Readonly<Record<string, string>>>
}

/** What `LayerStore.register` returns: a new reference, and whether the layer was new. */
export interface RegisteredLayer extends Layer {
  /**
   * True when a layer with this chain ID was registered already (by an earlier call or a
   * concurrent one): this call only added a reference, and its extracted copy, if any, was
   * discarded.
   */
  readonly existed: boolean
}

/** What `release` reports for each layer it deleted (moby's `Metadata`). */
export interface LayerMetadata {
  readonly chainID: ChainID
  readonly diffID: DiffID
  /** Chain size, as `LayerInfo.size`. */
  readonly size: number
  readonly diffSize: number
}

/** Options of `LayerStore.register`. */
export interface RegisterOptions {
  /**
   * Who holds the reference returned (an image name, `--ref NAME`): persisted, it outlives
   * this process until released by name. Default: this store instance's session, whose
   * references end when the store is closed or its process dies.
   */
  readonly holder?: string
  /**
   * The diff ID if the caller knows it already (a registry pull has it from the image
   * config): a layer already present is then referenced **without reading the input**
   * (which is destroyed unread), and otherwise the input must hash to it, or nothing is
   * stored (`LayerDigestMismatchError`). Without it, a layer already present is found by
   * reading the input, and referenced without being applied again.
   */
  readonly diffID?: DiffID
  /** Stored as `descriptor.json` (moby writes one for foreign layers). */
  readonly descriptor?: JsonObject
  /** Called as input is read. */
  readonly onProgress?: (progress: StreamProgress) => void
  /** Aborts the register; nothing is stored and the error is the signal's reason. */
  readonly signal?: AbortSignal
}

/** One layer of `LayerStore.registerChain`: its tar and what the caller knows of it. */
export interface ChainLayerInput {
  readonly tar: LayerInput
  /** See {@link RegisterOptions.diffID}: a layer present already is referenced unread. */
  readonly diffID?: DiffID
  /** See {@link RegisterOptions.descriptor}. */
  readonly descriptor?: JsonObject
}

/** Options of `LayerStore.registerChain`. */
export interface RegisterChainOptions {
  /** Who holds the reference to each layer; see {@link RegisterOptions.holder}. */
  readonly holder?: string
  /** Called as input is read; `index` is the layer's position in the chain. */
  readonly onProgress?: (progress: StreamProgress, index: number) => void
  /** Aborts the chain; nothing is stored and the error is the signal's reason. */
  readonly signal?: AbortSignal
}

/** moby's `MountInit`: writes the init layer (e.g. `/etc/hosts` placeholders) at `root`. */
export type MountInit = (root: string) => Promise<void>

/** Options of `LayerStore.createRWLayer` (moby's `CreateRWLayerOpts`). */
export interface CreateRWLayerOptions {
  /**
   * Fills an init layer between the parent and the RW layer (`<mountID>-init`); its changes
   * never appear in the RW layer's `changes`, `size` or `tarStream`.
   */
  readonly initFunc?: MountInit
  /** SELinux label for the init layer's creation (and default for `mount`). */
  readonly mountLabel?: string
  /** Driver storage options, e.g. `{ size: '10G' }` where the driver supports quotas. */
  readonly storageOpt?: Readonly<Record<string, string>>
}

/**
 * A handle on a RW layer (a container's writable layer): from `createRWLayer` or
 * `getRWLayer`. The RW layer itself persists until `releaseRWLayer` of the last live handle
 * (in any process) removes it; handles of a closed store or a dead process do not count.
 */
export interface RWLayer {
  /** The name it was created with (the container ID, for an engine). */
  readonly name: string
  /** The driver's ID of the RW layer's files. */
  readonly mountID: MountID
  /** The driver's ID of its init layer, when created with `initFunc`. */
  readonly initID: MountID | null
  /** The read-only layer it starts from, or null. */
  readonly parent: LayerInfo | null
  /** False once released (or once the store is closed). */
  readonly retained: boolean
  /**
   * Makes the layer's filesystem available and returns its path. Mounts are counted across
   * processes (persisted): each `mount` needs one `unmount`, from any process; a later
   * `mount` returns the same view. `options` may be the mount label alone (the older form).
   * With `readOnly`, every write through the path fails with `EROFS` and the layer does not
   * change; asking for the other view while one is mounted is `MountModeConflictError`
   * (overlay, bind; vfs hands out both, at different paths).
   */
  mount(options?: RWMountOptions | string): Promise<string>
  /** Gives back one `mount`; the last one unmounts. `RWLayerNotMountedError` if none is out. */
  unmount(): Promise<void>
  /** Paths changed against the parent (the init layer's changes excluded), sorted by path. */
  changes(): Promise<Change[]>
  /** Bytes of added and modified files (moby's `RWLayer.Size`), init layer excluded. */
  size(): Promise<number>
  /**
   * A tar of the changes against the parent (AUFS whiteouts), as the driver's diff makes it:
   * **no byte-exactness guarantee** (moby's `TarStreamFrom`); `LayerStore.commit` registers it.
   */
  tarStream(options?: TarStreamOptions): Promise<Readable>
  /** Extracts a layer tar (gzip/zstd allowed) into the RW layer; returns the members' size. */
  applyDiff(tar: LayerInput): Promise<number>
  /** The driver's facts about the RW layer. */
  metadata(): Promise<Readonly<Record<string, string>>>
}

/** Options of `RWLayer.mount`. */
export interface RWMountOptions {
  /** SELinux label for the mount; ignored where SELinux is off. */
  readonly mountLabel?: string
  /**
   * Mount read-only (`layerctl mount --ro`): overlay mounts without an upper dir, vfs and
   * bind bind-mount read-only. Needs the driver's `capabilities.readOnlyLayers`, else
   * `ReadOnlyNotSupportedError`. Default false.
   */
  readonly readOnly?: boolean
}

/** What `releaseRWLayer` did. */
export interface RWLayerReleaseResult {
  /** True when the RW layer was removed (no other live handle held it). */
  readonly removed: boolean
  /** Live handles left, across processes (moby#48516: a kept layer is visible, not silent). */
  readonly remainingHandles: number
  /** Read-only layers deleted because the RW layer was their last holder, child first. */
  readonly deleted: readonly LayerMetadata[]
}

/** Who keeps a layer alive. */
export interface LayerReferences {
  /** Holder name → references held. */
  readonly holders: ReadonlyMap<string, number>
  /** Layers registered on top of it. */
  readonly children: readonly ChainID[]
  /** RW layers created on it. */
  readonly rwLayers: readonly string[]
}

/** Options of `LayerStore.close`. */
export interface CloseOptions {
  /**
   * Leave RW layers this instance mounted mounted (and counted), for another process to
   * unmount: what `layerctl mount` needs. Default false: they are unmounted, and the driver
   * releases everything it holds.
   */
  readonly keepMounts?: boolean
}

/** Options of `LayerStore.open`. */
export interface LayerStoreOptions {
  /** The data root, e.g. `/var/lib/layerstore`; created if missing. */
  readonly root: string
  /** The driver by name (`overlay`, `vfs`, a plugin's); default: the root's prior driver, else the first that works. */
  readonly driver?: string
  /** Driver options (`--driver-opt k=v`), passed to the driver's factory. */
  readonly driverOptions?: Readonly<Record<string, string>>
  /** Plugin driver modules to load (paths or package names), resolved from `process.cwd()`. */
  readonly driverPlugins?: readonly string[]
  /** Seam: the registry to select from. Default: `defaultDrivers` (the built-ins and `overlay2`), plus `driverPlugins`. */
  readonly registry?: DriverRegistry
  /**
   * Run `cleanup()` at open (default true): remove what crashed processes left and finish
   * their interrupted deletions. Its report is {@link LayerStore.openCleanup}.
   */
  readonly cleanupOnOpen?: boolean
  /**
   * Wait for the store lock when another process holds it (default true). With false, such
   * an operation fails at once with `StoreLockedError`.
   */
  readonly waitForLock?: boolean
  /**
   * The deepest chain accepted: at most the driver's `capabilities.maxDepth`, which defaults
   * to moby's 125 (an overlay mount takes 128 lowers; an RW layer adds 2 more, plus one spare).
   */
  readonly maxDepth?: number
  /** Test seam: called at each named crash point (see `LAYER_CRASH_POINTS`). */
  readonly crashPoint?: StoreCrashHook
  /**
   * Open an existing store without changing anything under `root` (issue 6), e.g. a Docker
   * data root with `driver: 'overlay2'`. Nothing is created, cleaned, locked for writing or
   * mounted: no session or owner file, no `tmp/`, no driver start-up work (the driver's
   * `openReadOnly`). Reads work (`has`, `get`, `map`, `references`, `tarStream`, RW layers'
   * `changes`/`size`/`tarStream`, `driverStatus`); every change is `StoreReadOnlyError`.
   * `get` hands out handles that hold nothing, so a writer may delete the layer meanwhile
   * (its stream then fails). Locking: a root with our lock file (`layerstore.lock`) is read
   * under its shared lock, as any reader is; a root without one (Docker's) is read without
   * locks. Default false.
   */
  readonly readOnly?: boolean
}
