/**
 * The graph driver contract: what a storage backend must do so that the layer store can stack
 * image layers on it (moby's `ProtoDriver` + `DiffDriver`, in TypeScript).
 *
 * ## Vocabulary
 *
 * - **home**: the directory a driver owns, `<root>/<driver name>/`. The store passes it; the
 *   driver keeps everything it writes under it and nothing else.
 * - **id**: a layer's name inside the driver: the cache ID chosen by the store (random hex,
 *   `[0-9a-zA-Z_.-]`, never `.` or `..`). A driver refuses any other id with
 *   `InvalidLayerIDError`, so an id can never name a path outside `home`.
 * - **parent**: the id of the layer a new layer starts from, or `null` for a base layer. A
 *   layer's full filesystem is its own changes on top of its parent chain.
 * - **read-only layer**: made with {@link ProtoDriver.create}; it is filled once with
 *   {@link DiffDriver.applyDiff} and then only read (image layers). **read-write layer**: made
 *   with {@link ProtoDriver.createReadWrite} (a container's layer, or its init layer).
 * - **mount path**: the absolute directory {@link ProtoDriver.get} returns, where the layer's
 *   complete filesystem (parents included) is visible until the matching
 *   {@link ProtoDriver.put}.
 *
 * ## Lifecycle
 *
 * Importing an image layer: `create(id, parent)`, then `applyDiff(id, parent, members)` with
 * the layer tar (whiteouts in the AUFS `.wh.` format of OCI layers, whatever the driver stores
 * internally). Running a container: `createReadWrite(rw, topImageLayer)`, then
 * `get(rw)` → a path to use as the container's root, `put(rw)` when it stops, and later
 * `diff(rw, topImageLayer)` to commit it, `remove(rw)` to delete it. A layer is removed only
 * when no child, no mount and no holder of a `get` remains: the store tracks children, the
 * driver refuses a remove while a `get` is outstanding.
 *
 * Example: `await d.create('a1', null)`, `await d.applyDiff('a1', null, members)`,
 * `await d.create('b2', 'a1')`, `await d.applyDiff('b2', 'a1', members2)`,
 * `const root = await d.get('b2')` sees the files of both, `await d.put('b2')`.
 *
 * ## Concurrency and cost
 *
 * Methods are async and may be called concurrently for different ids; calls for the same id
 * are serialised by the driver where that matters (`get`/`put`). Several driver instances in
 * one or more processes may share one home only under the store lock; mounts that exist
 * without this instance's knowledge are adopted from `/proc/self/mountinfo` (see
 * `MountCounter`), never mounted twice.
 *
 * Guarantees are stated per method; what a driver can only do on some filesystems is declared
 * in {@link DriverCapabilities}, never left to be discovered.
 */
import type { Readable } from 'node:stream'
import type { Change } from '../archive/index.js'
import type { FileGetter, TarMember } from '../tarsplit/index.js'

export type { Change } from '../archive/index.js'

/** A layer id inside a driver (the store's cache ID). See the vocabulary above. */
export type DriverLayerID = string

/** Options of {@link ProtoDriver.create} and {@link ProtoDriver.createReadWrite}. */
export interface CreateOptions {
  /** SELinux label for the layer's mount (moby's `MountLabel`); ignored where SELinux is off. */
  readonly mountLabel?: string
  /**
   * Driver-specific storage options (moby's `--storage-opt`, e.g. `size`), already split into
   * key and value. A driver refuses a key it does not know, or any key on a read-only layer
   * (`create`), with `InvalidDriverOptionError`; it never ignores one silently.
   */
  readonly storageOpt?: Readonly<Record<string, string>>
}

/** Options of {@link ProtoDriver.get}. */
export interface GetOptions {
  /** SELinux label for the mount; ignored where SELinux is off. */
  readonly mountLabel?: string
  /**
   * Ask for a **writable** view even of a read-only layer. Only the naive diff wrapper uses
   * this, to fill a freshly created read-only layer in `applyDiff`. **Writing a layer that
   * already has children corrupts them**: the store never does it. Default false: a read-only
   * layer's view is read-only (if `capabilities.readOnlyLayers`).
   */
  readonly writable?: boolean
  /**
   * Ask for a **read-only** view even of a read-write layer (a container's layer looked at,
   * `layerctl mount --ro`): every write through it fails with `EROFS`, and nothing in the
   * layer changes (overlay: no upper dir, the layer's `diff/` becomes the top lower). Takes
   * precedence over `writable`. Needs `capabilities.readOnlyLayers`, else
   * `ReadOnlyNotSupportedError`. While a view of the layer is held, a `get` for the other
   * kind of view of the same mount point is `MountModeConflictError` (a driver whose two
   * views live at different paths, as vfs's, may hand out both).
   */
  readonly readOnly?: boolean
}

/**
 * What a driver guarantees, as data: the conformance suite skips a check only when a driver
 * declares it cannot pass it here, and `layerctl` shows it. Never branch on a driver's name.
 */
export interface DriverCapabilities {
  /**
   * `get` of a read-only layer (made with `create`), and `get(id, { readOnly: true })` of any
   * layer, give a view where every write fails with `EROFS`. False: the view is writable and
   * callers must behave, and `get(id, { readOnly: true })` is `ReadOnlyNotSupportedError`.
   */
  readonly readOnlyLayers: boolean
  /**
   * `diff`, `changes`, `applyDiff` and `diffSize` are computed natively (from the driver's
   * own record of changes, e.g. an overlay upper dir). False: they come from `naiveDiff`, as
   * full tree walks and comparisons on top of `get`.
   */
  readonly nativeDiff: boolean
  /**
   * `get` mounts something, so `put` unmounts and `cleanup` must leave no mount behind.
   * False: `get` returns a plain directory (it still counts holders).
   */
  readonly mounts: boolean
  /** Ownership, modes, times, xattrs (`user.*`, `trusted.*`, `security.capability`), device
   * nodes, FIFOs and hard links inside a layer survive `applyDiff`, child creation and `diff`. */
  readonly preservesMetadata: boolean
  /** The deepest parent chain the driver supports (moby's limit is 125; see `MAX_LAYER_DEPTH`). */
  readonly maxDepth: number
}

/**
 * Moby's limit: an overlay mount takes at most 128 lower dirs (in old kernels), minus the 2
 * an RW layer and its init layer add, minus one for safety. The store refuses deeper chains.
 */
export const MAX_LAYER_DEPTH = 125

/** One line of {@link ProtoDriver.status}: a label and its value, shown as is by `layerctl`. */
export type DriverStatus = ReadonlyArray<readonly [label: string, value: string]>

/**
 * The part every driver implements (moby's `ProtoDriver`). A driver without native diffs
 * gets the {@link DiffDriver} half from `naiveDiff(proto)`.
 */
export interface ProtoDriver {
  /** The driver's registered name, e.g. `'vfs'`, `'overlay'`; also its home's base name. */
  readonly name: string
  /** Absolute path of the driver's home, `<root>/<name>`. */
  readonly home: string
  /** What this instance guarantees (may depend on probes of the home's filesystem). */
  readonly capabilities: DriverCapabilities

  /**
   * Makes an empty read-only layer `id` on top of `parent` (null: a base layer). Fill it with
   * `applyDiff`. Any storage option is refused (`InvalidDriverOptionError`).
   * Errors: `LayerExistsError` if `id` exists, `LayerNotFoundError` (role `'parent'`) if the
   * parent does not. Cost: O(1) for overlay; O(size of parent) for copying drivers (vfs).
   * A failed create leaves nothing behind.
   */
  create(id: DriverLayerID, parent: DriverLayerID | null, options?: CreateOptions): Promise<void>

  /**
   * Makes an empty read-write layer `id` on top of `parent` (null: a base layer), for a
   * container. Same errors as `create`; storage options the driver supports (e.g. `size`)
   * apply here.
   */
  createReadWrite(id: DriverLayerID, parent: DriverLayerID | null, options?: CreateOptions): Promise<void>

  /**
   * Deletes layer `id` and everything the driver kept for it. A missing layer is not an
   * error (moby's drivers return nil), so a crashed remove can be retried. A layer with an
   * outstanding `get` (or a mount found in mountinfo) is refused with `LayerInUseError`, and
   * nothing is deleted. Children are the store's business: the driver does not check them.
   */
  remove(id: DriverLayerID): Promise<void>

  /**
   * Makes the layer's complete filesystem (its parents included) available and returns its
   * absolute path. Every `get` must be paired with one `put`: the first `get` mounts (if the
   * driver mounts), later ones return the same path and count; a mount found in
   * `/proc/self/mountinfo` that this instance did not make is adopted, not mounted again.
   * A read-only layer's view is read-only when `capabilities.readOnlyLayers`.
   * Errors: `LayerNotFoundError`; a failed mount is wrapped with the driver and id.
   */
  get(id: DriverLayerID, options?: GetOptions): Promise<string>

  /**
   * Releases one `get`. The last `put` unmounts. A `put` without a matching `get` is
   * `LayerNotMountedError` (the count never goes below zero).
   */
  put(id: DriverLayerID): Promise<void>

  /** True if layer `id` exists (cheap: one stat). */
  exists(id: DriverLayerID): Promise<boolean>

  /**
   * Every layer id this driver holds, read-only and read-write alike (init layers included),
   * in no particular order: exactly the ids for which `exists` is true. Layers being created
   * or removed right now, and scratch a crashed create or remove left, are not listed: they
   * are the driver's own to sweep. So are its bookkeeping entries (overlay's `l/`). The store
   * uses this to find driver layers no metadata references, so that it never has to read a
   * driver's home itself. Cost: one directory read, no stat per layer.
   */
  list(): Promise<DriverLayerID[]>

  /** Human-readable facts about the driver (backing filesystem, options, layer count…). */
  status(): Promise<DriverStatus>

  /**
   * Low-level facts about one layer for `inspect` (moby's `GetMetadata`), e.g. vfs
   * `{ SourceDir }`, overlay `{ LowerDir, UpperDir, WorkDir, MergedDir }`.
   * Errors: `LayerNotFoundError`.
   */
  getMetadata(id: DriverLayerID): Promise<Readonly<Record<string, string>>>

  /**
   * Releases everything this instance holds: unmounts every mount the driver made or adopted
   * under its home (deepest first) and forgets all counts. Call it before exiting. A second
   * call is a no-op. The layers stay; a new instance on the same home sees them.
   */
  cleanup(): Promise<void>
}

/**
 * The diff half (moby's `DiffDriver`). Tar streams use the AUFS whiteout format of OCI
 * layers (`.wh.NAME`, `.wh..wh..opq`) whatever the driver stores internally.
 */
export interface DiffDriver {
  /**
   * A tar of the changes from `parent` to `id` (parent null: the whole tree), as a stream
   * the caller must consume or destroy (that releases the layers it holds). The bytes are
   * **not** guaranteed to be reproducible (naive diffs stamp whiteouts with the current time
   * and walk in their own order); the layer store keeps tar-split metadata for exact bytes.
   * `parent` must be `id`'s parent (or an ancestor, for a squashed diff).
   */
  diff(id: DriverLayerID, parent: DriverLayerID | null): Promise<Readable>

  /**
   * The paths that differ from `parent` to `id` (parent null: everything is `'added'`),
   * sorted by path. A deleted directory is reported once, not its children.
   */
  changes(id: DriverLayerID, parent: DriverLayerID | null): Promise<Change[]>

  /**
   * Extracts a layer tar's members into layer `id` (fresh, made with `create` on `parent`),
   * applying whiteouts, and returns the sum of the members' header sizes (moby's
   * `ApplyDiff` size). Hostile members fail with the archive module's `UnsafePathError` and
   * nothing outside the layer is touched. Consumes `members` fully, or stops at the error.
   */
  applyDiff(id: DriverLayerID, parent: DriverLayerID | null, members: AsyncIterable<TarMember>): Promise<number>

  /**
   * The bytes the changes from `parent` to `id` occupy: the sizes of added and modified
   * non-directories, each hard-linked inode once. Cost: a `changes` walk plus an lstat each.
   */
  diffSize(id: DriverLayerID, parent: DriverLayerID | null): Promise<number>
}

/** A complete driver: what the store uses. */
export interface Driver extends ProtoDriver, DiffDriver {}

/**
 * Optional: reads a layer's own files by tar member name without mounting (moby's
 * `DiffGetterDriver`), for tar-split reassembly. Test with {@link hasDiffGetter}.
 */
export interface DiffGetterDriver extends Driver {
  /** A getter over layer `id`'s own files; `close` releases what it holds (call it once). */
  diffGetter(id: DriverLayerID): Promise<{ readonly getter: FileGetter; close(): Promise<void> }>
}

/** True if `driver` offers {@link DiffGetterDriver.diffGetter}. */
export function hasDiffGetter(driver: Driver): driver is DiffGetterDriver {
  return typeof (driver as Partial<DiffGetterDriver>).diffGetter === 'function'
}

/** True if `driver` implements the diff half itself (else wrap it with `naiveDiff`). */
export function isDiffDriver(driver: ProtoDriver): driver is Driver {
  const d = driver as Partial<Driver>
  return (
    typeof d.diff === 'function' &&
    typeof d.changes === 'function' &&
    typeof d.applyDiff === 'function' &&
    typeof d.diffSize === 'function'
  )
}

/** What a driver factory gets to build an instance. */
export interface DriverInitOptions {
  /** The driver's home, `<root>/<name>`; the factory creates it if missing. */
  readonly home: string
  /**
   * Driver options (moby's `--storage-opt` at daemon level, `layerctl --driver-opt k=v`),
   * already split into key and value. Unknown keys are refused with
   * `InvalidDriverOptionError`.
   */
  readonly options?: Readonly<Record<string, string>>
}

/**
 * How a driver is made: what built-ins export and what a plugin module exports (as its
 * `default` export or as `driverFactory`). The registry wraps a {@link ProtoDriver} without
 * diff methods in `naiveDiff`.
 */
export interface DriverFactory {
  /** The driver's name: `[a-z0-9][a-z0-9_.-]*`, unique in a registry, and its home's base name. */
  readonly name: string
  /**
   * Auto-selection order: lower first (overlay 10, bind 50, vfs 100). Drivers without a
   * priority are tried only when named explicitly.
   */
  readonly priority?: number
  /**
   * Builds an instance on `options.home`. Must probe, not assume: on a kernel or backing
   * filesystem that cannot host it, reject with `DriverNotSupportedError` (selection then
   * tries the next driver); any other error aborts selection.
   */
  create(options: DriverInitOptions): Promise<ProtoDriver | Driver>
  /**
   * Optional: true if `home` holds layers of this driver (for the prior-driver check). Without
   * it, any entry in `home` counts, as in moby; a driver whose home keeps skeleton dirs when
   * empty (overlay's `l/`, vfs's `dir/`) should say better.
   */
  holdsLayers?(home: string): Promise<boolean>
  /**
   * Optional: an instance on an existing home for a **read-only** store
   * (`LayerStore.open({ readOnly: true })`, e.g. a Docker data root): it must create, write,
   * sweep, probe-mount and mount nothing, at open or later. The store then only calls
   * `exists`, `list`, `status`, `getMetadata`, the diff half's reads (`changes`, `diffSize`,
   * `diff`) and `diffGetter`, and `cleanup` never; so reads must not need a mount (a naive
   * driver's `get` must return a plain directory). Without it, a read-only open of this
   * driver is `ReadOnlyNotSupportedError`: a factory that only creates cannot promise this.
   */
  openReadOnly?(options: DriverInitOptions): Promise<ProtoDriver | Driver>
  /**
   * True: the driver reads another engine's root (e.g. `overlay2`, Docker's) and is opened
   * read-only only. A writable store asking for it, by name or as the root's prior driver,
   * is refused with `DriverReadOnlyOnlyError` before it creates anything under the root.
   */
  readonly readOnlyOnly?: boolean
}

/**
 * Splits `"key=value"` (moby's `ParseStorageOptKeyValue`): on the first `=`, both sides
 * trimmed. Returns null when there is no `=` or the key is empty; callers turn that into
 * `InvalidDriverOptionError`.
 */
export function parseOptionKeyValue(option: string): readonly [key: string, value: string] | null {
  const eq = option.indexOf('=')
  if (eq < 0) return null
  const key = option.slice(0, eq).trim()
  if (key === '') return null
  return [key, option.slice(eq + 1).trim()]
}
