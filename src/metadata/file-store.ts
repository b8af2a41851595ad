/**
 * The file metadata store: moby's layerdb (`<root>/image/<driver>/layerdb/`) read with moby's
 * validation and written with transactions, atomic replacements and directory fsyncs.
 *
 * It knows nothing of reference counting or drivers: the layer store decides, this module
 * records. Locking is the caller's (see `StoreLock`): reads under a shared or exclusive lock,
 * `markRemoving`, commits, extra-file writes and `cleanup` under the exclusive lock; the slow
 * parts (filling a transaction, `removeMarked`) need no lock.
 */
import { randomBytes } from 'node:crypto'
import { createReadStream, lstatSync } from 'node:fs'
import type { Readable } from 'node:stream'
import { mkdir, open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import createDebug from 'debug'
import type { CrashPoint, CrashPointHook } from './crash-points.js'
import { errnoOf, fsyncDir, ioError, pathExists, readOptional, removeTree, replaceFile } from './durable-fs.js'
import {
  CorruptMetadataError,
  LayerDoesNotExistError,
  MetadataStoreStateError,
  MountDoesNotExistError,
} from './errors.js'
import { isDigestHex, parseCacheID, parseChainID } from './ids.js'
import type { CacheID, ChainID } from './ids.js'
import type { JsonValue } from './json.js'
import { isJsonObject } from './json.js'
import { LAYER_FILES, LayerDbLayout, REFERENCES_FILE, checkExtraFileName, checkMountName } from './layout.js'
import { isCleanReport, removeOrphans, scanOrphans } from './orphans.js'
import type { CleanupResult, OrphanReport } from './orphans.js'
import { OwnerProbe, OwnerToken } from './owner.js'
import { readLayerRecord, readMountRecord } from './record-reader.js'
import type { LayerRecord, MountRecord } from './record-reader.js'
import { deleteMarked, renameToRemoving } from './removal-mark.js'
import type { RemovalMark } from './removal-mark.js'
import { Transaction } from './transaction.js'
import { scanWriteSetParents } from './write-set-parents.js'

const debug = createDebug('layerstore:metadata')

/** Options of {@link FileMetadataStore.open}. */
export interface FileMetadataStoreOptions {
  /**
   * Open without creating or writing anything (e.g. a Docker root, for inspection). Every
   * write then fails with `MetadataStoreStateError` ('read-only'). Default false.
   */
  readonly readOnly?: boolean
  /** Test seam: called at each named crash point (see `CRASH_POINTS`). */
  readonly crashPoint?: (point: CrashPoint) => void
}

/** What {@link FileMetadataStore.list} returns: committed records only, sorted. */
export interface MetadataListing {
  readonly layers: readonly ChainID[]
  readonly mounts: readonly string[]
}

/** Which record an extra file belongs to. */
export type RecordRef = { readonly layer: ChainID } | { readonly mount: string }

/** The outcome of {@link FileMetadataStore.cleanup}. */
export interface CleanupReport extends CleanupResult {
  readonly report: OrphanReport
}

/** moby's layerdb of one driver under one data root. */
export class FileMetadataStore {
  /** Every path of this store. */
  readonly layout: LayerDbLayout
  readonly readOnly: boolean
  readonly #owner: OwnerToken | undefined
  readonly #crash: CrashPointHook
  #closed = false

  private constructor(layout: LayerDbLayout, owner: OwnerToken | undefined, options: FileMetadataStoreOptions) {
    this.layout = layout
    this.#owner = owner
    this.readOnly = options.readOnly ?? false
    this.#crash = options.crashPoint
  }

  /**
   * Opens (and unless read-only, creates) the layerdb of `driverName` under `dataRoot`.
   * Does not clean orphans: call {@link cleanup} under the exclusive lock for that.
   */
  static async open(dataRoot: string, driverName: string, options: FileMetadataStoreOptions = {}): Promise<FileMetadataStore> {
    const layout = new LayerDbLayout(dataRoot, driverName)
    if (options.readOnly) return new FileMetadataStore(layout, undefined, options)
    let created = false
    try {
      // moby's modes: the layerdb root 0700, the directories inside it 0755.
      const dirs: Array<[string, number]> = [
        [layout.root, 0o700],
        [layout.tmpDir, 0o755],
        [layout.sha256Dir, 0o755],
        [layout.mountsDir, 0o755],
      ]
      for (const [dir, mode] of dirs) {
        if ((await mkdir(dir, { recursive: true, mode })) !== undefined) created = true
      }
    } catch (err) {
      throw ioError('mkdir', layout.root, err)
    }
    // New directories must survive a power loss before anything is committed into them.
    if (created) {
      for (const dir of [dataRoot, join(layout.root, '..', '..'), join(layout.root, '..'), layout.root]) await fsyncDir(dir)
    }
    const owner = await OwnerToken.acquire(layout)
    debug('opened %s (owner %s)', layout.root, owner.id)
    return new FileMetadataStore(layout, owner, options)
  }

  /** Releases this store's owner lock; open transactions and marks become orphans. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#owner?.release()
  }

  /** The committed layers (valid `sha256/<hex>` directories) and mounts, sorted. */
  async list(): Promise<MetadataListing> {
    this.#checkOpen()
    const layers: ChainID[] = []
    const mounts: string[] = []
    for (const entry of await this.#readdir(this.layout.sha256Dir)) {
      if (entry.isDirectory() && isDigestHex(entry.name)) layers.push(LayerDbLayout.chainIDOfDir(entry.name))
    }
    for (const entry of await this.#readdir(this.layout.mountsDir)) {
      if (entry.isDirectory() && LayerDbLayout.parseMountDirName(entry.name).type === 'record') mounts.push(entry.name)
    }
    return { layers: layers.sort(), mounts: mounts.sort() }
  }

  /** True when `chainID` is committed. */
  async hasLayer(chainID: ChainID): Promise<boolean> {
    this.#checkOpen()
    const dir = this.layout.layerDir(parseChainID(chainID))
    // Synchronous: a lookup costs microseconds, less than the thread pool's round trip, and a
    // chain asks once per layer (issue #6).
    try {
      return lstatSync(dir, { throwIfNoEntry: false })?.isDirectory() ?? false
    } catch (err) {
      throw ioError('stat', dir, err)
    }
  }

  /** Reads a committed layer (see `readLayerRecord` for the errors). */
  async getLayer(chainID: ChainID): Promise<LayerRecord> {
    this.#checkOpen()
    return readLayerRecord(this.layout, chainID)
  }

  /**
   * Reads only a committed layer's `cache-id`: one small read that tells which incarnation of
   * the layer a record read earlier belongs to. Undefined when the layer or the file is
   * missing or the ID is malformed (a full `getLayer` then says what is wrong).
   */
  async peekCacheID(chainID: ChainID): Promise<CacheID | undefined> {
    this.#checkOpen()
    const bytes = await readOptional(this.layout.layerFile(parseChainID(chainID), LAYER_FILES.cacheID)).catch(() => undefined)
    try {
      return bytes === undefined ? undefined : parseCacheID(bytes.toString('utf8'))
    } catch {
      return undefined
    }
  }

  /** Reads a committed RW layer (see `readMountRecord` for the errors). */
  async getMount(name: string): Promise<MountRecord> {
    this.#checkOpen()
    return readMountRecord(this.layout, name)
  }

  /**
   * Opens a layer's `tar-split.json.gz` as stored (gzip; `tarsplit.readEntries` gunzips).
   * The gzip magic is checked here, as moby checks the header on open.
   *
   * @throws LayerDoesNotExistError, or CorruptMetadataError when the file is missing or not gzip.
   */
  async openTarSplit(chainID: ChainID): Promise<Readable> {
    this.#checkOpen()
    const id = parseChainID(chainID)
    const path = this.layout.layerFile(id, LAYER_FILES.tarSplit)
    let handle
    try {
      handle = await open(path, 'r')
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw ioError('open', path, err)
      if (!(await pathExists(this.layout.layerDir(id)))) throw new LayerDoesNotExistError(id)
      throw new CorruptMetadataError('layer', id, LAYER_FILES.tarSplit, path, 'missing', '')
    }
    const magic = Buffer.alloc(2)
    const { bytesRead } = await handle.read(magic, 0, 2, 0)
    if (bytesRead < 2 || magic[0] !== 0x1f || magic[1] !== 0x8b) {
      await handle.close()
      throw new CorruptMetadataError('layer', id, LAYER_FILES.tarSplit, path, 'invalid', 'not gzip')
    }
    return createReadStream('', { fd: handle, start: 0 })
  }

  /** Starts a transaction: a fresh write set under `tmp/` (see {@link Transaction}). */
  async startTransaction(): Promise<Transaction> {
    const owner = this.#writable()
    const path = this.layout.writeSetDir(owner.id, randomBytes(8).toString('hex'))
    try {
      await mkdir(path, { mode: 0o700 })
    } catch (err) {
      throw ioError('mkdir', path, err)
    }
    return new Transaction(this.layout, path, this.#crash)
  }

  /**
   * The layers that live write sets hold as their parent, with how many sets hold each (see
   * write-set-parents.ts). Call under the store lock.
   */
  async writeSetParents(): Promise<Map<ChainID, number>> {
    this.#checkOpen()
    return scanWriteSetParents(this.layout, new OwnerProbe(this.layout, this.#owner?.id))
  }

  /**
   * Renames a committed layer to `<hex>-<token>-removing` (moby's marker) and fsyncs
   * `sha256/`, so that it stops existing before its driver data is touched: a crash later
   * leaves an orphan the scan finds, never a layer whose data is half gone. Call under the
   * exclusive lock; then, after unlocking, remove the driver data and call `removeMarked`.
   *
   * @throws LayerDoesNotExistError when it is not committed.
   */
  async markRemoving(chainID: ChainID): Promise<RemovalMark> {
    const owner = this.#writable()
    const id = parseChainID(chainID)
    const cacheID = await readLayerRecord(this.layout, id).then(
      (r) => r.cacheID,
      (err: unknown) => {
        if (err instanceof CorruptMetadataError) return undefined // still removable; its data is an orphan
        throw err
      },
    )
    const path = await renameToRemoving(
      this.layout.layerDir(id),
      (token) => this.layout.removingLayerDir(id, token),
      owner.id,
      this.#crash,
      () => new LayerDoesNotExistError(id),
    )
    const driverIDs = Object.freeze(cacheID ? [cacheID] : [])
    return Object.freeze({ recordKind: 'layer' as const, record: id, path, driverIDs })
  }

  /**
   * Renames a committed RW layer to `mounts/<name>-<token>-removing`, as {@link markRemoving}.
   *
   * @throws MountDoesNotExistError when it is not committed.
   */
  async markMountRemoving(name: string): Promise<RemovalMark> {
    const owner = this.#writable()
    checkMountName(name)
    const record = await readMountRecord(this.layout, name).catch((err: unknown) => {
      if (err instanceof CorruptMetadataError) return undefined
      throw err
    })
    const path = await renameToRemoving(
      this.layout.mountDir(name),
      (token) => this.layout.removingMountDir(name, token),
      owner.id,
      this.#crash,
      () => new MountDoesNotExistError(name),
    )
    const ids = record ? [record.mountID, ...(record.initID ? [record.initID] : [])] : []
    return Object.freeze({ recordKind: 'mount' as const, record: name, path, driverIDs: Object.freeze(ids) })
  }

  /**
   * Deletes a marked record, files first and the directory last (a crash in between leaves
   * a `-removing` orphan). Needs no lock. A second call does nothing.
   */
  async removeMarked(mark: RemovalMark): Promise<void> {
    this.#writable()
    await deleteMarked(this.layout, mark, this.#crash)
  }

  /** Reads the reference holders of a layer (`references.json`): holder → count. Empty if none. */
  async getReferences(chainID: ChainID): Promise<ReadonlyMap<string, number>> {
    const id = parseChainID(chainID)
    const value = await this.readExtra({ layer: id }, REFERENCES_FILE)
    const holders = new Map<string, number>()
    if (value === undefined) return holders
    const path = this.layout.layerFile(id, REFERENCES_FILE)
    const raw = isJsonObject(value) ? value['holders'] : undefined
    if (!isJsonObject(raw)) {
      throw new CorruptMetadataError('layer', id, REFERENCES_FILE, path, 'invalid', 'want {"holders": {name: count}}')
    }
    for (const [holder, count] of Object.entries(raw)) {
      if (typeof count !== 'number' || !Number.isSafeInteger(count) || count <= 0) {
        const why = `count of ${holder} is not a positive integer`
        throw new CorruptMetadataError('layer', id, REFERENCES_FILE, path, 'invalid', why)
      }
      holders.set(holder, count)
    }
    return holders
  }

  /** Replaces the reference holders of a layer atomically (an empty map removes none; it is written). */
  async setReferences(chainID: ChainID, holders: ReadonlyMap<string, number>): Promise<void> {
    for (const [holder, count] of holders) {
      if (!Number.isSafeInteger(count) || count <= 0) {
        throw new RangeError(`reference count of ${holder} must be a positive integer`)
      }
    }
    const sorted = Object.fromEntries([...holders].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    await this.writeExtra({ layer: parseChainID(chainID) }, REFERENCES_FILE, { holders: sorted })
  }

  /**
   * Reads one of our extra JSON files of a record, or undefined when it has none.
   *
   * @throws LayerDoesNotExistError / MountDoesNotExistError when the record is not committed.
   * @throws CorruptMetadataError when the file is not JSON.
   */
  async readExtra(ref: RecordRef, file: string): Promise<JsonValue | undefined> {
    this.#checkOpen()
    checkExtraFileName(file)
    const { dir, kind, record, missing } = this.#resolve(ref)
    const path = join(dir, file)
    const bytes = await readOptional(path)
    if (bytes === undefined) {
      if (!(await pathExists(dir))) throw missing()
      return undefined
    }
    try {
      return JSON.parse(bytes.toString('utf8')) as JsonValue
    } catch (err) {
      throw new CorruptMetadataError(kind, record, file, path, 'invalid', 'not JSON', { cause: err })
    }
  }

  /**
   * Replaces one of our extra JSON files of a record atomically: written and fsynced under
   * `tmp/`, renamed into the record's directory, which is then fsynced. Call under the
   * exclusive lock.
   */
  async writeExtra(ref: RecordRef, file: string, value: JsonValue): Promise<void> {
    const owner = this.#writable()
    checkExtraFileName(file)
    const { dir, missing } = this.#resolve(ref)
    if (!(await pathExists(dir))) throw missing()
    const temp = this.layout.atomicTempFile(owner.id, randomBytes(8).toString('hex'))
    const beforeRename = (): void => this.#crashAt('extra:before-rename')
    try {
      await replaceFile(temp, join(dir, file), dir, JSON.stringify(value), true, beforeRename)
    } catch (err) {
      // The record went away between the check and the rename.
      if (!(await pathExists(dir))) throw missing()
      throw err
    }
    this.#crashAt('extra:after-rename')
  }

  /** Removes one of our extra files of a record; a missing file is fine. */
  async removeExtra(ref: RecordRef, file: string): Promise<void> {
    this.#writable()
    checkExtraFileName(file)
    const { dir } = this.#resolve(ref)
    await removeTree(join(dir, file))
    await fsyncDir(dir).catch(() => undefined)
  }

  /**
   * Scans for orphans (see orphans.ts) without removing anything. Call under the exclusive
   * lock (a shared one suffices for a report that is only read).
   */
  async scanOrphans(knownDriverIDs?: Iterable<string>): Promise<OrphanReport> {
    this.#checkOpen()
    return scanOrphans(this.layout, new OwnerProbe(this.layout, this.#owner?.id), knownDriverIDs)
  }

  /**
   * Scans and removes the layerdb's orphans, under the caller's exclusive lock. Returns the
   * report, whose `unreferencedDriverIDs` the caller then removes from the driver.
   */
  async cleanup(knownDriverIDs?: Iterable<string>): Promise<CleanupReport> {
    this.#writable()
    const report = await this.scanOrphans(knownDriverIDs)
    const result = isCleanReport(report) ? { removed: [], failures: [] } : await removeOrphans(report)
    return { report, ...result }
  }

  #resolve(ref: RecordRef): { dir: string; kind: 'layer' | 'mount'; record: string; missing: () => Error } {
    if ('layer' in ref) {
      const id = parseChainID(ref.layer)
      return { dir: this.layout.layerDir(id), kind: 'layer', record: id, missing: () => new LayerDoesNotExistError(id) }
    }
    return {
      dir: this.layout.mountDir(ref.mount),
      kind: 'mount',
      record: ref.mount,
      missing: () => new MountDoesNotExistError(ref.mount),
    }
  }

  async #readdir(dir: string) {
    try {
      return await readdir(dir, { withFileTypes: true })
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return []
      throw ioError('readdir', dir, err)
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new MetadataStoreStateError(this.layout.root, 'closed')
  }

  #writable(): OwnerToken {
    this.#checkOpen()
    if (!this.#owner) throw new MetadataStoreStateError(this.layout.root, 'read-only')
    return this.#owner
  }

  #crashAt(point: CrashPoint): void {
    this.#crash?.(point)
  }
}
