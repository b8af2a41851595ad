/**
 * The overlay driver: kernel overlayfs on a layout compatible with Docker's overlay2 (see
 * layout.ts). A layer stores only its own changes in `diff/`; `get` stacks the layer's
 * `diff/` on its ancestors' through one overlay mount, planned by mount-plan.ts and performed
 * by mounts.ts. Diffs are native (overlay-diff.ts): the upper dir is the record of changes.
 *
 * Read-only and read-write views:
 * - a layer made with `create` (an image layer) is committed from birth: it gets no `work/`
 *   (a base one gets the `committed` marker instead, see layout.ts), and a read-write parent
 *   gets the marker when a child is created on it (moby's rule, moby/moby#39663: a dir must
 *   never be the upper of one mount and a lower of another). A committed layer is mounted
 *   without an upper: its `diff/` becomes the top lower, and every write fails with EROFS;
 * - a layer made with `createReadWrite` gets `work/` and is mounted with `diff/` as the upper;
 * - a base layer (no parent) cannot be an overlay on its own (overlayfs needs an upper or two
 *   lowers): its view is a bind mount of `diff/`, read-only (bind, then remount) if committed.
 * `get(id, { writable: true })` mounts the read-write way whatever the marker says (making an
 * image layer's `work/` first, and its marker), and `get(id, { readOnly: true })` the
 * read-only way (a RW layer's `diff/` as the top lower, its `work/` untouched). The first
 * `get` decides the view; later ones share it until the last `put`, and one asking for the
 * other view gets `MountModeConflictError`.
 *
 * Opened read-only (`readOnly`, for a read-only store such as a Docker data root), the driver
 * writes and mounts nothing: create, remove, get and applyDiff are refused, and `cleanup`
 * leaves every mount alone (a Docker root's mounts are its running containers').
 */
import { mkdir, readdir, readFile, rename, rmdir, stat } from 'node:fs/promises'
import { statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import createDebug from 'debug'
import type { Readable } from 'node:stream'
import type { Change } from '../../archive/index.js'
import { removeTreeAsync } from '../../archive/index.js'
import type {
  CreateOptions,
  DiffGetterDriver,
  DriverCapabilities,
  DriverLayerID,
  DriverStatus,
  GetOptions,
} from '../../graphdriver/index.js'
import {
  assertLayerID,
  checkSharedView,
  InvalidDriverOptionError,
  hasErrno,
  listLayerDirs,
  LayerExistsError,
  LayerInUseError,
  LayerNotFoundError,
  LayerNotMountedError,
  mountPointsUnder,
  MountCounter,
  naiveDiff,
  ReadOnlyNotSupportedError,
  unmountTarget,
} from '../../graphdriver/index.js'
import { hasCode } from '../../errors.js'
import { prewarmBlockingCalls, RelativeMounter } from '../../native/index.js'
import type { FileGetter, TarMember } from '../../tarsplit/index.js'
import { OverlayLayerCorruptError, OverlayMaxDepthError, OverlayMountError, OverlayMountTooLongError } from './errors.js'
import { OverlayDiff } from './overlay-diff.js'
import { LayerInfoCache } from './layer-info-cache.js'
import type { OverlayLayerInfo } from './layer-files.js'
import { maintainHome, makeLayerDir, makeWorkDir, readLayerInfo, resolveLowerDirs, unlinkIfOurs } from './layer-files.js'
import { generateLinkID, LINK_DIR, lowerEntry, OverlayLayout, parseLink, SCRATCH_MARK, scratchName } from './layout.js'
import type { OverlayMountPlan } from './mount-plan.js'
import { planOverlayMount } from './mount-plan.js'
import { isLayerMounted, performMountPlan } from './mounts.js'
import type { OverlayFeatures } from './probe.js'

// The short-link directory sits beside the layers in the home: never a layer id.
const RESERVED_IDS = [LINK_DIR] as const

const debug = createDebug('layerstore:overlay')

/** The driver's registered name (its home is `<root>/overlay`). */
export const OVERLAY_DRIVER_NAME = 'overlay'

/**
 * The most lower dirs one layer may stack (moby's overlay2 `maxDepth`): 128 relative short
 * links still fit one mount(2) page, leaving room for the upper, work and label options.
 */
export const MAX_LOWERS = 128

/** Options of {@link OverlayDriver}; the factory (index.ts) probes the features. */
export interface OverlayDriverOptions {
  /** The driver's home, `<root>/<name>`. */
  readonly home: string
  /** What `probeOverlay` found. */
  readonly features: OverlayFeatures
  /**
   * The registered name: `overlay` (default), or `overlay2`, Docker's name for the same
   * layout (home `<root>/overlay2`, layerdb `image/overlay2/`).
   */
  readonly name?: string
  /** Write and mount nothing (see the module doc). Default false. */
  readonly readOnly?: boolean
}

/** See the module doc. Its diff half is overlay-diff.ts. */
export class OverlayDriver implements DiffGetterDriver {
  readonly name: string
  readonly home: string
  /** True when opened read-only: nothing is written or mounted. */
  readonly readOnly: boolean
  readonly capabilities: DriverCapabilities
  /** Paths of this home. */
  readonly layout: OverlayLayout
  /** What the probes found. */
  readonly features: OverlayFeatures
  readonly #counter = new MountCounter({ isMounted: (p) => isLayerMounted(p) })
  readonly #diff: OverlayDiff
  readonly #infos: LayerInfoCache
  /** Mounts with paths relative to home (the short-link fallback); its thread starts on first use. */
  readonly #mounter: RelativeMounter

  constructor(options: OverlayDriverOptions) {
    this.name = options.name ?? OVERLAY_DRIVER_NAME
    this.readOnly = options.readOnly ?? false
    this.home = options.home
    this.layout = new OverlayLayout(options.home)
    this.#infos = new LayerInfoCache(this.layout)
    this.features = options.features
    this.capabilities = Object.freeze({
      readOnlyLayers: true,
      nativeDiff: true,
      mounts: true,
      preservesMetadata: true,
      maxDepth: MAX_LOWERS,
    })
    this.#diff = new OverlayDiff(this, naiveDiff(this))
    // The mounter wants an absolute directory; the contract does not promise one.
    this.#mounter = new RelativeMounter(resolve(options.home))
  }

  /**
   * Creates the home's skeleton (`l/`), sweeps scratch dirs a crashed process left, and
   * re-creates `l/` links that are missing (moby/moby#46498: a lost link made every mount
   * of every child fail with ELOOP). Idempotent; O(layers).
   */
  async init(): Promise<void> {
    this.#checkWritable('init')
    await maintainHome(this.layout)
  }

  /** Makes an empty read-only layer; see `ProtoDriver.create`. Refuses every storage option. */
  async create(id: DriverLayerID, parent: DriverLayerID | null, options?: CreateOptions): Promise<void> {
    const key = Object.keys(options?.storageOpt ?? {})[0]
    if (key !== undefined) throw new InvalidDriverOptionError(this.name, key, 'storage options apply to read-write layers only')
    await this.#create(id, parent, true)
  }

  /** Makes an empty read-write layer; see `ProtoDriver.createReadWrite`. */
  async createReadWrite(id: DriverLayerID, parent: DriverLayerID | null, options?: CreateOptions): Promise<void> {
    const key = Object.keys(options?.storageOpt ?? {})[0]
    if (key !== undefined) {
      throw new InvalidDriverOptionError(this.name, key, 'not supported by overlay (size needs XFS project quotas)')
    }
    await this.#create(id, parent, false)
  }

  async #create(id: string, parent: string | null, readOnly: boolean): Promise<void> {
    this.#checkWritable('create a layer')
    assertLayerID(this.name, id, RESERVED_IDS)
    if (parent !== null) assertLayerID(this.name, parent, RESERVED_IDS)
    // A read-write layer is mounted next, on the native worker: let it start now, beside the
    // create. A read-only one is applied and committed (a syncfs, on the libuv pool): no
    // worker, whose ~13 MiB would be most of register's memory.
    if (!readOnly) prewarmBlockingCalls()
    const [taken, parentInfo] = await Promise.all([this.exists(id), parent === null ? null : this.#infos.find(parent)])
    if (taken) throw new LayerExistsError(this.name, id)
    let lowers: string[] = []
    if (parent !== null) {
      if (!parentInfo) throw new LayerNotFoundError(this.name, parent, 'parent')
      lowers = [lowerEntry(parentInfo.link), ...parentInfo.lowers]
      if (lowers.length > MAX_LOWERS) throw new OverlayMaxDepthError(id, parent, lowers.length, MAX_LOWERS)
    }
    const link = generateLinkID()
    try {
      await makeLayerDir(this.layout, {
        id,
        link,
        lowers,
        work: !readOnly,
        // An image layer with a parent is committed by having no `work/`; a base one cannot
        // be (see layout.ts).
        committed: readOnly && parent === null,
        // From now on the parent is only ever a lower (see the module doc); a parent committed
        // already (every image layer) is left as it is.
        markParent: parent !== null && !parentInfo?.committed ? parent : null,
      })
    } catch (err) {
      if (hasErrno(err, 'ENOTEMPTY') || hasErrno(err, 'EEXIST')) throw new LayerExistsError(this.name, id, { cause: err })
      throw err
    }
    // The apply that follows checks the layer's parent: it need not read back what we wrote.
    if (readOnly) this.#infos.remember(id, { link, lowers, committed: true })
    debug('created %s layer %s (parent %s, %d lowers)', readOnly ? 'ro' : 'rw', id, parent ?? '-', lowers.length)
  }

  /** Deletes the layer; see `ProtoDriver.remove`. A missing layer is not an error. */
  async remove(id: DriverLayerID): Promise<void> {
    this.#checkWritable('remove a layer')
    assertLayerID(this.name, id, RESERVED_IDS)
    const merged = this.layout.mergedDir(id)
    const holders = this.#counter.count(merged)
    if (holders > 0) throw new LayerInUseError(this.name, id, holders, merged)
    if (await isLayerMounted(merged)) throw new LayerInUseError(this.name, id, 0, merged)
    this.#infos.forget(id)
    const link = await readFile(this.layout.linkFile(id), 'utf8').then(parseLink, () => null)
    // Rename first: a crash during the deletion leaves a scratch dir that init sweeps, never
    // a half-deleted layer that still looks like one.
    const doomed = join(this.home, scratchName(id, 'removing'))
    try {
      await rename(this.layout.layerDir(id), doomed)
    } catch (err) {
      if (hasErrno(err, 'ENOENT')) return
      throw err
    }
    if (link !== null) await unlinkIfOurs(this.layout, link, id)
    // Not fs.rm: Node 20 lists the whole tree at once (+31 MiB for 55k files, issue #6).
    await removeTreeAsync(doomed)
    debug('removed layer %s', id)
  }

  /** Mounts (or shares the mount of) the layer's view; see `ProtoDriver.get`. */
  async get(id: DriverLayerID, options?: GetOptions): Promise<string> {
    this.#checkWritable('mount a layer')
    assertLayerID(this.name, id, RESERVED_IDS)
    const info = await this.findLayerInfo(id)
    if (!info) throw new LayerNotFoundError(this.name, id)
    const merged = this.layout.mergedDir(id)
    let mounted = false
    await this.#counter.acquire(merged, async () => {
      const plan = this.#plan(id, info, options)
      // A writable view of a committed layer with a parent has `diff/` as its upper: an image
      // layer has no `work/` for it yet.
      if (info.committed && !this.#wantsReadOnly(info, options) && info.lowers.length > 0) await makeWorkDir(this.layout, id)
      await mkdir(merged, { mode: 0o700 }).catch((err: unknown) => {
        if (!hasErrno(err, 'EEXIST')) throw err
      })
      try {
        await performMountPlan(plan, this.#mounter)
      } catch (err) {
        await rmdir(merged).catch(() => undefined)
        await this.#explainMountFailure(id, err)
        throw new OverlayMountError(id, merged, `mount (${plan.method})`, { cause: err })
      }
      mounted = true
    })
    // A shared mount (ours or adopted) shows the view its first get chose: it must be this one.
    if (!mounted) await checkSharedView(this.name, id, merged, this.#wantsReadOnly(info, options), () => this.put(id))
    return merged
  }

  /** Releases one `get`; the last one unmounts. See `ProtoDriver.put`. */
  async put(id: DriverLayerID): Promise<void> {
    assertLayerID(this.name, id, RESERVED_IDS)
    const merged = this.layout.mergedDir(id)
    try {
      await this.#counter.release(merged, async () => {
        try {
          await unmountTarget(merged)
        } catch (err) {
          throw new OverlayMountError(id, merged, 'unmount', { cause: err })
        }
      })
    } catch (err) {
      if (hasCode(err, 'ERR_MOUNT_NOT_HELD')) throw new LayerNotMountedError(this.name, id)
      throw err
    }
  }

  /** True if the layer's dir exists. */
  async exists(id: DriverLayerID): Promise<boolean> {
    assertLayerID(this.name, id, RESERVED_IDS)
    // Synchronous: see LayerInfoCache's stat.
    try {
      return statSync(this.layout.layerDir(id), { throwIfNoEntry: false })?.isDirectory() ?? false
    } catch {
      return false
    }
  }

  /**
   * The directories in home, but for `l/` (the short links) and scratch dirs (`~` in the
   * name: a layer being created or removed, a probe), which are the driver's own.
   */
  async list(): Promise<DriverLayerID[]> {
    return listLayerDirs(this.home, RESERVED_IDS)
  }


  /** Backing filesystem, mount interface and options, layer count. */
  async status(): Promise<DriverStatus> {
    const entries = await readdir(this.home).catch(() => [] as string[])
    const layers = entries.filter((n) => n !== 'l' && !n.includes(SCRATCH_MARK)).length
    return [
      ['Backing Filesystem', this.features.backingFs],
      ['Supports d_type', 'not probed'],
      ['Native Overlay Diff', 'true'],
      ['Mount API', this.readOnly ? 'none (opened read-only)' : this.features.api === 'lowerdir+' ? 'fsconfig lowerdir+' : 'mount(2) with short links'],
      ['Mount Options', this.features.options.join(',') || '(none)'],
      ['Layers', String(layers)],
    ]
  }

  /** moby's overlay2 metadata: `WorkDir`, `MergedDir`, `UpperDir`, and `LowerDir` if any. */
  async getMetadata(id: DriverLayerID): Promise<Readonly<Record<string, string>>> {
    if (!(await this.exists(id))) throw new LayerNotFoundError(this.name, id)
    const info = await this.layerInfo(id)
    const meta: Record<string, string> = {
      WorkDir: this.layout.workDir(id),
      MergedDir: this.layout.mergedDir(id),
      UpperDir: this.layout.diffDir(id),
    }
    if (info.lowers.length > 0) meta.LowerDir = (await this.lowerDirs(info)).join(':')
    return meta
  }

  /**
   * Unmounts every layer view under home, ours and any a crashed process left, forgets all
   * counts and ends the relative mounter's thread. Layers stay. A second call finds nothing to do.
   */
  async cleanup(): Promise<void> {
    if (this.readOnly) return
    for (const path of this.#counter.paths()) await this.#counter.releaseAll(path, () => unmountTarget(path))
    for (const point of await mountPointsUnder(this.home)) {
      if (point.endsWith('/merged')) await unmountTarget(point)
    }
    // Its cwd holds home busy; a later get starts a new one.
    await this.#mounter.close()
  }

  /** Extracts a layer tar into the layer (native into `diff/` on its own parent). */
  applyDiff(id: DriverLayerID, parent: DriverLayerID | null, members: AsyncIterable<TarMember>): Promise<number> {
    if (this.readOnly) return Promise.reject(this.#readOnlyError('apply a diff'))
    return this.#diff.applyDiff(id, parent, members)
  }

  /** The changes from `parent` (native from the upper dir on its own parent). */
  changes(id: DriverLayerID, parent: DriverLayerID | null): Promise<Change[]> {
    return this.#diff.changes(id, parent)
  }

  /** A tar of the changes from `parent` (native from the upper dir on its own parent). */
  diff(id: DriverLayerID, parent: DriverLayerID | null): Promise<Readable> {
    return this.#diff.diff(id, parent)
  }

  /** The bytes of the changes from `parent`. */
  diffSize(id: DriverLayerID, parent: DriverLayerID | null): Promise<number> {
    return this.#diff.diffSize(id, parent)
  }

  /** Reads the layer's own files from `diff/` by member name, without mounting. */
  diffGetter(id: DriverLayerID): Promise<{ readonly getter: FileGetter; close(): Promise<void> }> {
    return this.#diff.diffGetter(id)
  }

  /**
   * Reads a layer's `link`, `lower` and whether it is committed (the marker, or a parent and
   * no `work/`). `OverlayLayerCorruptError` when `link`
   * or `lower` is empty or malformed (a crash before moby's atomic writes; moby/moby#46498).
   */
  async layerInfo(id: string): Promise<OverlayLayerInfo> {
    // A missing dir: read anyway, for the same error a missing `link` gives.
    return (await this.#infos.find(id)) ?? readLayerInfo(this.layout, id)
  }

  /**
   * {@link layerInfo}, or undefined when the layer does not exist: one `stat` for a committed
   * layer read before (see layer-info-cache.ts).
   */
  findLayerInfo(id: string): Promise<OverlayLayerInfo | undefined> {
    assertLayerID(this.name, id, RESERVED_IDS)
    return this.#infos.find(id)
  }

  /** The absolute diff dirs of a layer's lowers (each `l/` link resolved), top first. */
  lowerDirs(info: OverlayLayerInfo): Promise<string[]> {
    return resolveLowerDirs(this.layout, info)
  }

  /** How `get` would mount layer `id` now (exposed for tests and `layerctl inspect`). */
  async planMount(id: string, options?: GetOptions): Promise<OverlayMountPlan> {
    return this.#plan(id, await this.layerInfo(id), options)
  }

  #plan(id: string, info: OverlayLayerInfo, options: GetOptions | undefined): OverlayMountPlan {
    const plan = planOverlayMount({
      home: this.home,
      id,
      link: info.link,
      lowers: info.lowers,
      readOnly: this.#wantsReadOnly(info, options),
      options: this.features.options,
      api: this.features.api,
      ...(options?.mountLabel ? { mountLabel: options.mountLabel } : {}),
    })
    if (plan.method === 'too-long') throw new OverlayMountTooLongError(id, plan.length, plan.limit)
    return plan
  }

  // readOnly wins over writable; else a committed layer is read-only unless writable is asked.
  #wantsReadOnly(info: OverlayLayerInfo, options: GetOptions | undefined): boolean {
    return options?.readOnly === true || (info.committed && !options?.writable)
  }

  #checkWritable(operation: string): void {
    if (this.readOnly) throw this.#readOnlyError(operation)
  }

  #readOnlyError(operation: string): ReadOnlyNotSupportedError {
    return new ReadOnlyNotSupportedError(this.name, 'open', `opened read-only: cannot ${operation}`)
  }

  // After a failed mount: a lower whose `l/` link is gone is the likely cause (the kernel only
  // says ENOENT or ELOOP); name it instead.
  async #explainMountFailure(id: string, cause: unknown): Promise<void> {
    const info = await this.layerInfo(id).catch(() => null)
    if (!info) return
    for (const entry of [lowerEntry(info.link), ...info.lowers]) {
      const path = this.layout.resolveEntry(entry)
      const ok = await stat(path).then(
        (st) => st.isDirectory(),
        () => false,
      )
      if (!ok) throw new OverlayLayerCorruptError(id, path, 'a lower layer link is missing or dangling', { cause })
    }
  }

}
