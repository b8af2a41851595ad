/**
 * The bind driver: zero-copy flattened layers. What a layer's `get` shows is one complete
 * root filesystem, bind-mounted: nothing is stacked at mount time, at any depth. A read-only
 * layer's tree is a hard-link tree of the files its layers hold (see flatten.ts), so a layer
 * costs its directories and symlinks, and its file data once.
 *
 * Layout of the home:
 *
 * ```
 * <home>/<id>/diff/     a read-only layer's own files, as its tar made them (overlay format:
 *                       whiteouts are devices 0/0, opaque directories have an xattr)
 * <home>/<id>/root/     the layer's complete tree (see below when it is made)
 * <home>/<id>/rw        present (empty) if the layer is read-write
 * <home>/<id>/parent    the parent's id (absent for a base layer)
 * <home>/<id>/merged/   mount point while the layer is held
 * <home>/<id>~…         scratch: a layer or tree being built, or a layer being deleted (`~` is never in an id)
 * ```
 *
 * - A read-only layer (`create`) on a read-only parent holds only `diff/`: registering an
 *   image of n layers costs what its tars hold, not n complete trees. Its `root/` is
 *   flattened from its `diff/` and its ancestors' the first time it is needed (its first
 *   `get`, a read-write child, a naive diff), down to the first ancestor that has one, and
 *   kept. Its `get` is a read-only bind mount of `root/` (bind, then remount
 *   `MS_RDONLY|MS_BIND`: a bind with the read-only flag alone stays writable), so writes
 *   fail with EROFS; `applyDiff` writes only into `diff/`, so no ancestor ever changes. A
 *   hardlink to an ancestor's file links that file's inode, as a flattened tree has it.
 * - A read-write layer (`createReadWrite`), which a container writes into in place, starts as
 *   a copy of its parent's tree (reflinked where the filesystem can, see graphdriver's
 *   `copyDir`) in `root/` and is bind-mounted read-write. So is a read-only layer made on a
 *   read-write parent, with its tar applied in place (AUFS whiteouts applied physically): its
 *   parent may still change. `get(id, { readOnly: true })` gives the read-only bind instead.
 * - A store made before `diff/` existed has `root/` alone in every layer: such a layer is
 *   complete, and a new layer on it stacks on its `root/`.
 *
 * Opened read-only (`readOnly`), the driver creates, removes, sweeps and mounts nothing:
 * `get` returns the layer's tree itself (what naive diffs read) if it has one, and refuses a
 * layer not flattened yet; `put` only counts down.
 */
import { lstatSync, statSync } from 'node:fs'
import { mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import createDebug from 'debug'
import { applyLayer, isOverlayXattr, removeTreeAsync } from '../../archive/index.js'
import type { Change } from '../../archive/index.js'
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
  copyDir,
  copyMetadata,
  GraphDriverInternalError,
  InvalidDriverOptionError,
  hasErrno,
  holdsLayerDirs,
  listLayerDirs,
  LayerExistsError,
  LayerInUseError,
  LayerNotFoundError,
  LayerNotMountedError,
  MAX_LAYER_DEPTH,
  MountCounter,
  mountPointsUnder,
  naiveDiff,
  ReadOnlyNotSupportedError,
  SCRATCH_MARK,
  scratchName,
  sweepScratch,
  unmountTarget,
} from '../../graphdriver/index.js'
import { hasCode } from '../../errors.js'
import { isMountPoint, mount, MS_BIND, MS_RDONLY, MS_REMOUNT } from '../../native/index.js'
import type { FileGetter, TarMember } from '../../tarsplit/index.js'
import { directoryGetter } from '../../tarsplit/index.js'
import { BindMountError } from './errors.js'
import { flattenLayers } from './flatten.js'

const debug = createDebug('layerstore:bind')

/** The driver's registered name (its home is `<root>/bind`). */
export const BIND_DRIVER_NAME = 'bind'

/** Options of {@link BindDriver}. */
export interface BindDriverOptions {
  /** The driver's home, `<root>/bind`. */
  readonly home: string
  /** Write and mount nothing (a read-only store). Default false. */
  readonly readOnly?: boolean
}

/** See the module doc. */
export class BindDriver implements DiffGetterDriver {
  readonly name = BIND_DRIVER_NAME
  readonly home: string
  /** True when opened read-only: nothing is written or mounted. */
  readonly readOnly: boolean
  readonly capabilities: DriverCapabilities = Object.freeze({
    readOnlyLayers: true,
    // Diffs and changes compare trees (naiveDiff); only applyDiff is the driver's own.
    nativeDiff: false,
    mounts: true,
    preservesMetadata: true,
    maxDepth: MAX_LAYER_DEPTH,
  })
  // A mount point that does not exist is not mounted (put removes it): no mountinfo read.
  readonly #counter = new MountCounter({ isMounted: async (p) => (await pathExists(p)) && isMountPoint(p) })
  readonly #naive: DiffGetterDriver
  /** Outstanding gets of a read-only instance (plain trees, nothing mounted), per id. */
  readonly #plainHolders = new Map<string, number>()
  /** Trees being flattened by this process, per id: concurrent users wait for one. */
  readonly #flattening = new Map<string, Promise<string>>()
  /**
   * Each layer's place in a stack, as read from disk once: a layer's ancestors never change,
   * and without this a chain's applies would read the files of every ancestor again.
   */
  readonly #links = new Map<string, StackLink>()

  constructor(options: BindDriverOptions) {
    this.home = options.home
    this.readOnly = options.readOnly ?? false
    this.#naive = naiveDiff(this)
  }

  /** Creates the home and sweeps scratch dirs a crashed process left. Idempotent. */
  async init(): Promise<void> {
    this.#checkWritable('init')
    await mkdir(this.home, { recursive: true, mode: 0o710 })
    const now = Date.now()
    for (const name of await readdir(this.home)) {
      if (name.includes(SCRATCH_MARK)) await sweepScratch(this.home, name, now)
    }
  }

  /** Makes a read-only layer: an empty diff over its parent. Refuses every storage option. */
  async create(id: DriverLayerID, parent: DriverLayerID | null, options?: CreateOptions): Promise<void> {
    const key = Object.keys(options?.storageOpt ?? {})[0]
    if (key !== undefined) throw new InvalidDriverOptionError(this.name, key, 'storage options apply to read-write layers only')
    await this.#create(id, parent, false)
  }

  /** Makes a read-write layer: a (reflinked where possible) copy of the parent's tree. */
  async createReadWrite(id: DriverLayerID, parent: DriverLayerID | null, options?: CreateOptions): Promise<void> {
    const key = Object.keys(options?.storageOpt ?? {})[0]
    if (key !== undefined) throw new InvalidDriverOptionError(this.name, key, 'storage option not supported by bind')
    await this.#create(id, parent, true)
  }

  async #create(id: string, parent: string | null, readWrite: boolean): Promise<void> {
    this.#checkWritable('create a layer')
    assertLayerID(this.name, id)
    if (parent !== null) assertLayerID(this.name, parent)
    if (await this.exists(id)) throw new LayerExistsError(this.name, id)
    this.#links.delete(id)
    // The parent's place in its stack (LayerNotFoundError if it has none): a parent that is
    // a diff is read-only by construction, so only a complete one is asked about `rw`.
    const parentLink = parent === null ? null : (this.#links.get(parent) ?? (await this.#readLink(parent, false)))
    // Built under a scratch name and renamed into place last: `<id>/` is never half made.
    const tmp = join(this.home, scratchName(id, 'creating'))
    let link: StackLink | null = null
    try {
      await mkdir(tmp, { mode: 0o710 })
      // A read-only layer on a read-only parent is a diff; anything else a complete tree.
      const complete = readWrite || (parent !== null && parentLink?.dir === this.#root(parent) && (await this.#isReadWrite(parent)))
      if (complete) {
        const root = join(tmp, 'root')
        await mkdir(root, { mode: 0o755 })
        if (parent !== null) await copyDir(await this.#tree(parent), root)
      } else {
        const diff = join(tmp, 'diff')
        await mkdir(diff, { mode: 0o755 })
        // The root keeps its parent's owner, mode, xattrs and times unless the tar says
        // otherwise (its `./` member), as in a copy of the parent's tree.
        if (parentLink !== null) {
          const below = Buffer.from(parentLink.dir)
          copyMetadata(below, Buffer.from(diff), lstatSync(below, { bigint: true }), isOverlayXattr)
        }
      }
      if (parent !== null) await writeFile(join(tmp, 'parent'), parent, { mode: 0o644 })
      if (!complete) link = { dir: this.#diffDir(id), below: parent }
      if (readWrite) await writeFile(join(tmp, 'rw'), '', { mode: 0o644 })
      await rename(tmp, this.#dir(id))
    } catch (err) {
      await rm(tmp, { recursive: true, force: true })
      if (hasErrno(err, 'ENOTEMPTY') || hasErrno(err, 'EEXIST')) throw new LayerExistsError(this.name, id, { cause: err })
      throw err
    }
    // Known now: the apply that follows, and the next layer's stack, need not read it back.
    if (link !== null) this.#links.set(id, link)
    debug('created %s layer %s (parent %s)', readWrite ? 'rw' : 'ro', id, parent ?? '-')
  }

  /** Deletes the layer; a missing one is not an error. See `ProtoDriver.remove`. */
  async remove(id: DriverLayerID): Promise<void> {
    this.#checkWritable('remove a layer')
    assertLayerID(this.name, id)
    const merged = this.#mountPoint(id)
    const holders = this.#counter.count(merged)
    if (holders > 0) throw new LayerInUseError(this.name, id, holders, merged)
    if (await isMountPoint(merged)) throw new LayerInUseError(this.name, id, 0, merged)
    this.#links.delete(id)
    // Rename first: a crash mid-delete leaves a scratch dir for init to sweep, not a layer.
    const doomed = join(this.home, scratchName(id, 'removing'))
    try {
      await rename(this.#dir(id), doomed)
    } catch (err) {
      if (hasErrno(err, 'ENOENT')) return
      throw err
    }
    await removeTreeAsync(doomed)
    debug('removed layer %s', id)
  }

  /**
   * Bind-mounts the layer's tree on `<id>/merged` (read-only for a read-only layer unless
   * `options.writable`) and returns that path. The first get decides the view; later ones
   * share it until the last put.
   */
  async get(id: DriverLayerID, options?: GetOptions): Promise<string> {
    await this.#mustExist(id)
    if (this.readOnly) {
      if (options?.writable && !options.readOnly) throw this.#readOnlyError('give a writable view')
      const tree = await this.#tree(id)
      this.#plainHolders.set(id, (this.#plainHolders.get(id) ?? 0) + 1)
      return tree
    }
    const merged = this.#mountPoint(id)
    const readOnly = options?.readOnly === true || (!options?.writable && !(await this.#isReadWrite(id)))
    let mounted = false
    await this.#counter.acquire(merged, async () => {
      const tree = await this.#tree(id)
      await mkdir(merged, { mode: 0o755 }).catch((err: unknown) => {
        if (!hasErrno(err, 'EEXIST')) throw err
      })
      try {
        await mount(tree, merged, null, MS_BIND)
      } catch (err) {
        await rmdir(merged).catch(() => undefined)
        throw new BindMountError(id, merged, 'bind mount', { cause: err })
      }
      if (readOnly) {
        try {
          await mount(null, merged, null, MS_REMOUNT | MS_BIND | MS_RDONLY)
        } catch (err) {
          await unmountTarget(merged).catch(() => undefined)
          throw new BindMountError(id, merged, 'read-only remount', { cause: err })
        }
      }
      mounted = true
    })
    // A shared mount (ours or adopted) shows the view its first get chose: it must be this one.
    if (!mounted) await checkSharedView(this.name, id, merged, readOnly, () => this.put(id))
    return merged
  }

  /** Releases one get; the last one unmounts. See `ProtoDriver.put`. */
  async put(id: DriverLayerID): Promise<void> {
    assertLayerID(this.name, id)
    if (this.readOnly) {
      const plain = this.#plainHolders.get(id) ?? 0
      if (plain < 1) throw new LayerNotMountedError(this.name, id)
      if (plain === 1) this.#plainHolders.delete(id)
      else this.#plainHolders.set(id, plain - 1)
      return
    }
    const merged = this.#mountPoint(id)
    try {
      await this.#counter.release(merged, async () => {
        try {
          await unmountTarget(merged)
        } catch (err) {
          throw new BindMountError(id, merged, 'unmount', { cause: err })
        }
      })
    } catch (err) {
      if (hasCode(err, 'ERR_MOUNT_NOT_HELD')) throw new LayerNotMountedError(this.name, id)
      throw err
    }
  }

  /** True if the layer's dir exists: it is renamed into place whole (see `list`). */
  async exists(id: DriverLayerID): Promise<boolean> {
    assertLayerID(this.name, id)
    return isDirectory(this.#dir(id))
  }

  /**
   * The directories in home, but for scratch ones (`~` in the name): a layer is built and
   * deleted under a scratch name, so `<id>/` exists exactly while the layer does.
   */
  async list(): Promise<DriverLayerID[]> {
    return listLayerDirs(this.home)
  }


  /** Layer count. */
  async status(): Promise<DriverStatus> {
    const names = await readdir(this.home).catch(() => [] as string[])
    return [
      ['Layers', String(names.filter((n) => !n.includes(SCRATCH_MARK)).length)],
      ['Read-only layers', 'their own files; flattened into hard-link trees at first use, read-only bind mounts'],
      ['Read-write layers', 'copies (reflinked where supported), read-write bind mounts'],
    ]
  }

  /** `{ SourceDir?, DiffDir?, MergedDir, Parent? }`: SourceDir once the layer has its tree, DiffDir if it has a diff. */
  async getMetadata(id: DriverLayerID): Promise<Readonly<Record<string, string>>> {
    await this.#mustExist(id)
    const meta: Record<string, string> = {}
    if (isDirectory(this.#root(id))) meta.SourceDir = this.#root(id)
    if (isDirectory(this.#diffDir(id))) meta.DiffDir = this.#diffDir(id)
    meta.MergedDir = this.#mountPoint(id)
    const parent = await readFile(join(this.#dir(id), 'parent'), 'utf8').catch(() => null)
    if (parent) meta.Parent = parent
    return meta
  }

  /** Unmounts every layer view under home (ours, and any a crashed process left). */
  async cleanup(): Promise<void> {
    this.#plainHolders.clear()
    if (this.readOnly) return
    for (const path of this.#counter.paths()) await this.#counter.releaseAll(path, () => unmountTarget(path))
    for (const point of await mountPointsUnder(this.home)) {
      if (point.endsWith('/merged')) await unmountTarget(point)
    }
  }

  /**
   * Extracts `members` (no mount) into the layer's `diff/` in overlay format, a hardlink to
   * an ancestor's file linking that file; or, for a layer made as a complete tree, into its
   * tree with AUFS whiteouts applied physically. Returns the sum of header sizes. The layer's
   * own `parent` file names the ancestors, so `parent` is not needed.
   */
  async applyDiff(id: DriverLayerID, _parent: DriverLayerID | null, members: AsyncIterable<TarMember>): Promise<number> {
    this.#checkWritable('apply a diff')
    assertLayerID(this.name, id)
    const link = this.#links.get(id) ?? (await this.#readLink(id, true))
    if (link.dir === this.#root(id)) return (await applyLayer(members, link.dir, { whiteouts: 'naive' })).size
    const lowers = link.below === null ? [] : await this.#stack(link.below)
    return (await applyLayer(members, link.dir, { whiteouts: 'overlay', lowers })).size
  }

  /** A tar of the changes (tree comparison; see `naiveDiff`). */
  diff(id: DriverLayerID, parent: DriverLayerID | null): Promise<Readable> {
    return this.#naive.diff(id, parent)
  }

  /** The changes from `parent` (tree comparison; shared inodes compare equal at once). */
  changes(id: DriverLayerID, parent: DriverLayerID | null): Promise<Change[]> {
    return this.#naive.changes(id, parent)
  }

  /** The bytes of the changes (see `naiveDiff`). */
  diffSize(id: DriverLayerID, parent: DriverLayerID | null): Promise<number> {
    return this.#naive.diffSize(id, parent)
  }

  /**
   * Reads the layer's files by member name straight from its diff (or tree), without a
   * mount: either holds this layer's version of every path its tar names.
   */
  async diffGetter(id: DriverLayerID): Promise<{ readonly getter: FileGetter; close(): Promise<void> }> {
    await this.#mustExist(id)
    const diff = this.#diffDir(id)
    return { getter: directoryGetter(isDirectory(diff) ? diff : this.#root(id)), close: async () => undefined }
  }

  /**
   * The layer's complete tree, flattened from its stack of diffs first if it has none yet.
   * Built under a scratch name and renamed into place: another process that got there first
   * (ENOTEMPTY) made the same tree, which is kept.
   */
  #tree(id: string): Promise<string> {
    const pending = this.#flattening.get(id)
    if (pending !== undefined) return pending
    const made = this.#flatten(id).finally(() => this.#flattening.delete(id))
    this.#flattening.set(id, made)
    return made
  }

  async #flatten(id: string): Promise<string> {
    const root = this.#root(id)
    if (isDirectory(root)) return root
    this.#checkWritable(`flatten layer ${id} (it has no tree yet)`)
    const stack = await this.#stack(id)
    // The tree is made inside a fresh scratch dir: it takes the layer's old root times, and a
    // scratch dir that looked that old could be swept by another process's init meanwhile.
    const tmp = join(this.home, scratchName(id, 'flattening'))
    try {
      await mkdir(tmp, { mode: 0o700 })
      await mkdir(join(tmp, 'root'), { mode: 0o755 })
      const stats = await flattenLayers(stack, join(tmp, 'root'))
      await rename(join(tmp, 'root'), root)
      debug('flattened layer %s from %d layers: %o', id, stack.length, stats)
    } catch (err) {
      // ENOTEMPTY: another process renamed the same tree into place first; it is kept.
      if (!hasErrno(err, 'ENOTEMPTY') && !hasErrno(err, 'EEXIST')) throw err
    } finally {
      await rm(tmp, { recursive: true, force: true })
    }
    return root
  }

  /**
   * The directories whose merge is the layer's tree, top first: its diff and its ancestors',
   * down to the first layer that had a complete tree when first looked at (included), or the
   * base layer. A tree made since changes nothing: the diffs below it still merge into it.
   */
  async #stack(id: string): Promise<string[]> {
    const layers: string[] = []
    for (let layer: string | null = id; layer !== null; ) {
      // A cycle of `parent` files (a damaged home) must not loop for ever.
      if (layers.length > MAX_LAYER_DEPTH) throw new GraphDriverInternalError(`bind: the parents of layer ${id} are more than ${MAX_LAYER_DEPTH} deep: ${this.home} is damaged`)
      const link: StackLink = this.#links.get(layer) ?? (await this.#readLink(layer, layer === id))
      layers.push(link.dir)
      layer = link.below
    }
    return layers
  }

  async #readLink(id: string, isTop: boolean): Promise<StackLink> {
    const root = this.#root(id)
    let link: StackLink
    if (isDirectory(root)) link = { dir: root, below: null }
    else if (isDirectory(this.#diffDir(id))) link = { dir: this.#diffDir(id), below: await this.#parentOf(id) }
    else throw new LayerNotFoundError(this.name, id, isTop ? 'layer' : 'parent')
    this.#links.set(id, link)
    return link
  }

  /** The layer's parent, from its `parent` file; null for a base layer. */
  async #parentOf(id: string): Promise<string | null> {
    try {
      const parent = (await readFile(join(this.#dir(id), 'parent'), 'utf8')).trim()
      if (parent === '') return null
      assertLayerID(this.name, parent)
      return parent
    } catch (err) {
      if (hasErrno(err, 'ENOENT')) return null
      throw err
    }
  }

  #checkWritable(operation: string): void {
    if (this.readOnly) throw this.#readOnlyError(operation)
  }

  #readOnlyError(operation: string): ReadOnlyNotSupportedError {
    return new ReadOnlyNotSupportedError(this.name, 'open', `opened read-only: cannot ${operation}`)
  }

  async #mustExist(id: string): Promise<void> {
    if (!(await this.exists(id))) throw new LayerNotFoundError(this.name, id)
  }

  async #isReadWrite(id: string): Promise<boolean> {
    return stat(join(this.#dir(id), 'rw')).then(
      () => true,
      () => false,
    )
  }

  #dir(id: string): string {
    return join(this.home, id)
  }

  #root(id: string): string {
    return join(this.home, id, 'root')
  }

  #diffDir(id: string): string {
    return join(this.home, id, 'diff')
  }

  #mountPoint(id: string): string {
    return join(this.home, id, 'merged')
  }
}

/** True if `home` holds at least one bind layer (a dir with a `diff/` or a `root/`). */
export async function bindHoldsLayers(home: string): Promise<boolean> {
  return (await holdsLayerDirs(home, 'diff')) || holdsLayerDirs(home, 'root')
}

/** A layer's place in a stack: the directory it adds, and the layer below (null: the stack ends). */
interface StackLink {
  readonly dir: string
  readonly below: string | null
}

async function pathExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/**
 * Synchronous: a stat of a cached name costs microseconds, less than a round trip through
 * the thread pool, and registering a chain asks a few per layer (issue #6).
 */
function isDirectory(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false
  } catch {
    return false
  }
}

