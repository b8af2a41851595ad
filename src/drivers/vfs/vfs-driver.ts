/**
 * The vfs (vfs-copy) driver: every layer is a complete directory tree, a child starting as a
 * copy of its parent (graphdriver's `copyDir`). Slow and space-hungry, but it works on any
 * filesystem, needs no kernel feature, and is the baseline the other drivers are measured
 * against. Diffs come from `naiveDiff` (see index.ts).
 *
 * Layout of the home (compatible with moby's vfs: `dir/<id>/` is the layer's tree):
 *
 * ```
 * <home>/dir/<id>/     the layer's complete tree
 * <home>/rw/<id>       present (empty) if the layer was made read-write; moby has no such
 *                      marker, so a Docker vfs root reads as all read-only, which is safe
 * <home>/mnt/<id>/     mount point of a read-only layer's view while it is held
 * <home>/tmp/          layers being built or deleted; a crash leaves them here, never in dir/
 * ```
 *
 * `get` of a read-write layer returns its directory; `get` of a read-only layer returns a
 * read-only bind mount of it (counted: the first get mounts, the last put unmounts), so a
 * write there fails with EROFS, unless the home was opened with read-only mounts disabled.
 * `get(id, { readOnly: true })` of a read-write layer gives that read-only mount too, beside
 * its writable directory (two paths, so both views can be out at once).
 *
 * Opened read-only (`readOnly`), the driver creates, removes and mounts nothing: `get`
 * returns the layer's directory (what naive diffs read) and a read-only view is refused.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import createDebug from 'debug'
import type {
  CreateOptions,
  DriverCapabilities,
  DriverLayerID,
  DriverStatus,
  GetOptions,
  ProtoDriver,
} from '../../graphdriver/index.js'
import {
  assertLayerID,
  backingFsName,
  bindMount,
  copyDir,
  InvalidDriverOptionError,
  hasErrno,
  listLayerDirs,
  LayerExistsError,
  LayerInUseError,
  LayerMountError,
  LayerNotFoundError,
  LayerNotMountedError,
  MAX_LAYER_DEPTH,
  MountCounter,
  ReadOnlyNotSupportedError,
  unmountTarget,
} from '../../graphdriver/index.js'
import { removeTreeAsync } from '../../archive/index.js'
import { directoryGetter } from '../../tarsplit/index.js'
import type { FileGetter } from '../../tarsplit/index.js'
import { hasCode } from '../../errors.js'
import { isMountPoint, MNT_DETACH, umountSync } from '../../native/index.js'

const debug = createDebug('layerstore:vfs')

/** The driver's registered name. */
export const VFS_DRIVER_NAME = 'vfs'

/** Options of {@link VfsDriver}, parsed from the driver options by the factory. */
export interface VfsDriverOptions {
  /** The driver's home, `<root>/vfs`. */
  readonly home: string
  /**
   * Serve read-only layers through read-only bind mounts (needs CAP_SYS_ADMIN). When false,
   * `get` returns every layer's directory, writable: `capabilities.readOnlyLayers` is false.
   */
  readonly readOnlyMounts: boolean
  /** Write and mount nothing (a read-only store); implies no read-only mounts. Default false. */
  readonly readOnly?: boolean
}

/**
 * See the module doc. Made by the vfs factory (index.ts), which prepares the home with
 * {@link initVfsHome} and wraps the driver in `naiveDiff`.
 */
export class VfsDriver implements ProtoDriver {
  readonly name = VFS_DRIVER_NAME
  readonly home: string
  readonly capabilities: DriverCapabilities
  readonly #roMounts: boolean
  /** True when opened read-only: nothing is written or mounted. */
  readonly readOnly: boolean
  readonly #counter = new MountCounter({ isMounted: (p) => isMountPoint(p) })
  /** Outstanding gets that returned the plain directory (no mount), per id. */
  readonly #plainHolders = new Map<string, number>()

  constructor(options: VfsDriverOptions) {
    this.home = options.home
    this.readOnly = options.readOnly ?? false
    this.#roMounts = options.readOnlyMounts && !this.readOnly
    this.capabilities = Object.freeze({
      readOnlyLayers: this.#roMounts,
      nativeDiff: false,
      mounts: this.#roMounts,
      preservesMetadata: true,
      maxDepth: MAX_LAYER_DEPTH,
    })
  }

  create(id: DriverLayerID, parent: DriverLayerID | null, options?: CreateOptions): Promise<void> {
    const keys = Object.keys(options?.storageOpt ?? {})
    if (keys[0] !== undefined) {
      return Promise.reject(
        new InvalidDriverOptionError(this.name, keys[0], 'storage options are not supported for vfs on read-only layers'),
      )
    }
    return this.#create(id, parent, false)
  }

  createReadWrite(id: DriverLayerID, parent: DriverLayerID | null, options?: CreateOptions): Promise<void> {
    const keys = Object.keys(options?.storageOpt ?? {})
    if (keys[0] !== undefined) {
      // TODO(#5): `size` needs XFS project quotas; refused until then rather than ignored.
      return Promise.reject(new InvalidDriverOptionError(this.name, keys[0], 'storage option not supported by vfs'))
    }
    return this.#create(id, parent, true)
  }

  async #create(id: DriverLayerID, parent: DriverLayerID | null, readWrite: boolean): Promise<void> {
    this.#checkWritable('create a layer')
    assertLayerID(this.name, id)
    if (parent !== null) assertLayerID(this.name, parent)
    if (await this.exists(id)) throw new LayerExistsError(this.name, id)
    if (parent !== null && !(await this.exists(parent))) throw new LayerNotFoundError(this.name, parent, 'parent')
    // Built in tmp/ and renamed into dir/ at the end, so dir/ never shows a half-copied layer.
    const tmp = join(this.home, 'tmp', `${id}-${randomBytes(6).toString('hex')}`)
    await mkdir(tmp, { mode: 0o755 })
    try {
      if (parent !== null) await copyDir(this.#dir(parent), tmp)
      // The marker goes before the rename: a crash in between leaves at most a stale marker,
      // which the next create of that id rewrites or removes.
      if (readWrite) await writeFile(this.#rwMarker(id), '')
      else await rm(this.#rwMarker(id), { force: true })
      await rename(tmp, this.#dir(id))
    } catch (err) {
      await rm(tmp, { recursive: true, force: true })
      if (hasErrno(err, 'ENOTEMPTY') || hasErrno(err, 'EEXIST')) throw new LayerExistsError(this.name, id, { cause: err })
      throw err
    }
    debug('created %s layer %s (parent %s)', readWrite ? 'rw' : 'ro', id, parent ?? '-')
  }

  async remove(id: DriverLayerID): Promise<void> {
    this.#checkWritable('remove a layer')
    assertLayerID(this.name, id)
    const mnt = this.#mountPoint(id)
    const holders = this.#holders(id)
    if (holders > 0) throw new LayerInUseError(this.name, id, holders, this.#counter.count(mnt) ? mnt : undefined)
    if (await isMountPoint(mnt)) throw new LayerInUseError(this.name, id, 0, mnt)
    // Rename first: a crash during the deletion leaves garbage in tmp/, not a broken layer.
    const doomed = join(this.home, 'tmp', `${id}-removing-${randomBytes(6).toString('hex')}`)
    try {
      await rename(this.#dir(id), doomed)
    } catch (err) {
      if (!hasErrno(err, 'ENOENT')) throw err
    }
    await rm(this.#rwMarker(id), { force: true })
    await rmdir(mnt).catch(() => undefined)
    await removeTreeAsync(doomed)
    debug('removed layer %s', id)
  }

  async get(id: DriverLayerID, options?: GetOptions): Promise<string> {
    assertLayerID(this.name, id)
    const dir = this.#dir(id)
    await this.#mustExist(id)
    if (options?.readOnly && !this.#roMounts) {
      throw new ReadOnlyNotSupportedError(this.name, 'view', `no read-only view of ${id}: read-only bind mounts are off here (vfs.ro_mounts)`)
    }
    if (!options?.readOnly && (!this.#roMounts || options?.writable || (await this.#isReadWrite(id)))) {
      this.#plainHolders.set(id, (this.#plainHolders.get(id) ?? 0) + 1)
      return dir
    }
    const mnt = this.#mountPoint(id)
    await this.#counter.acquire(mnt, async () => {
      try {
        await mkdir(mnt, { recursive: true, mode: 0o755 })
        await bindMount(dir, mnt, true)
      } catch (err) {
        throw new LayerMountError(this.name, id, mnt, 'mount', { cause: err })
      }
    })
    return mnt
  }

  /**
   * The layer's files by tar member name, read from its tree in place: no mount (a `get` of a
   * read-only layer mounts it, and the first mount of a process starts the native worker).
   * The tree is the whole layer, whose files at its members' names are its own versions.
   */
  async diffGetter(id: DriverLayerID): Promise<{ readonly getter: FileGetter; close(): Promise<void> }> {
    assertLayerID(this.name, id)
    await this.#mustExist(id)
    return { getter: directoryGetter(this.#dir(id)), close: async () => undefined }
  }

  async put(id: DriverLayerID): Promise<void> {
    assertLayerID(this.name, id)
    const plain = this.#plainHolders.get(id) ?? 0
    if (plain > 0) {
      if (plain === 1) this.#plainHolders.delete(id)
      else this.#plainHolders.set(id, plain - 1)
      return
    }
    const mnt = this.#mountPoint(id)
    try {
      await this.#counter.release(mnt, () => unmountTarget(mnt))
    } catch (err) {
      if (hasCode(err, 'ERR_MOUNT_NOT_HELD')) throw new LayerNotMountedError(this.name, id)
      throw new LayerMountError(this.name, id, mnt, 'unmount', { cause: err })
    }
  }

  async exists(id: DriverLayerID): Promise<boolean> {
    assertLayerID(this.name, id)
    try {
      return (await stat(this.#dir(id))).isDirectory()
    } catch {
      return false
    }
  }

  /**
   * The directories in `dir/`. Layers being built or deleted live in `tmp/` until their
   * final rename, so `dir/` never shows one half made or half removed.
   */
  async list(): Promise<DriverLayerID[]> {
    return listLayerDirs(join(this.home, 'dir'))
  }

  async status(): Promise<DriverStatus> {
    const layers = (await readdir(join(this.home, 'dir')).catch(() => [])).length
    return [
      ['Backing Filesystem', await backingFsName(this.home)],
      ['Layers', String(layers)],
      ['Read-only layer mounts', this.#roMounts ? 'true' : 'false'],
    ]
  }

  async getMetadata(id: DriverLayerID): Promise<Readonly<Record<string, string>>> {
    await this.#mustExist(id)
    return { SourceDir: this.#dir(id) }
  }

  async cleanup(): Promise<void> {
    for (const mnt of this.#counter.paths()) await this.#counter.releaseAll(mnt, () => unmountTarget(mnt))
    this.#plainHolders.clear()
    // Mounts this instance never touched may belong to another live instance sharing the
    // home: they are left alone (the store's startup reconciliation sweeps crash leftovers
    // with unmountAll).
  }

  #checkWritable(operation: string): void {
    if (this.readOnly) throw new ReadOnlyNotSupportedError(this.name, 'open', `opened read-only: cannot ${operation}`)
  }

  #holders(id: string): number {
    return (this.#plainHolders.get(id) ?? 0) + this.#counter.count(this.#mountPoint(id))
  }

  async #mustExist(id: string): Promise<void> {
    assertLayerID(this.name, id)
    if (!(await this.exists(id))) throw new LayerNotFoundError(this.name, id)
  }

  async #isReadWrite(id: string): Promise<boolean> {
    try {
      await stat(this.#rwMarker(id))
      return true
    } catch {
      return false
    }
  }

  #dir(id: string): string {
    return join(this.home, 'dir', id)
  }

  #rwMarker(id: string): string {
    return join(this.home, 'rw', id)
  }

  #mountPoint(id: string): string {
    return join(this.home, 'mnt', id)
  }
}

/** Creates a vfs home's skeleton (idempotent); the driver expects it. */
export async function initVfsHome(home: string): Promise<void> {
  // 0710 as moby: only root and the remapped root group may traverse.
  for (const sub of ['', 'dir', 'rw', 'mnt', 'tmp']) await mkdir(join(home, sub), { recursive: true, mode: 0o710 })
}

/**
 * Whether read-only bind mounts work here (CAP_SYS_ADMIN in this mount namespace): tries
 * one on a scratch directory under `home`. Probe, don't assume: root in a container without
 * that capability cannot mount.
 */
export async function canBindReadOnly(home: string): Promise<boolean> {
  const probe = join(home, 'tmp', `probe-${randomBytes(6).toString('hex')}`)
  await mkdir(probe, { recursive: true })
  try {
    // Inline: a store that never mounts (a register) then never starts the native worker.
    await bindMount(probe, probe, true, { inline: true })
    umountSync(probe, MNT_DETACH)
    return true
  } catch (err) {
    debug('read-only bind mounts unavailable in %s: %s', home, (err as Error).message)
    return false
  } finally {
    await rmdir(probe).catch(() => undefined)
  }
}

/** True if `home` (a vfs home) holds at least one layer: for the prior-driver check. */
export async function vfsHoldsLayers(home: string): Promise<boolean> {
  try {
    return (await readdir(join(home, 'dir'))).length > 0
  } catch (err) {
    return !hasErrno(err, 'ENOENT')
  }
}
