/**
 * A metadata transaction: a write set under `tmp/` that becomes a layer's (or a RW layer's)
 * record with one rename.
 *
 * States: `open` (setters write files into the set) → `committed` (renamed into `sha256/` or
 * `mounts/`) or `cancelled` (removed). A failed commit leaves it `open`, so the caller's
 * `finally { await tx.cancel() }` still cleans up; `cancel()` after a commit does nothing.
 */
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import type { Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import createDebug from 'debug'
import { renameat2 } from '../native/index.js'
import { JsonPacker } from '../tarsplit/index.js'
import type { CrashPoint, CrashPointHook } from './crash-points.js'
import {
  deviceOf,
  errnoOf,
  fsyncDir,
  fsyncFile,
  ioError,
  removeTree,
  replaceFile,
  syncFilesystemOf,
  writeFileSynced,
} from './durable-fs.js'
import {
  IncompleteTransactionError,
  LayerAlreadyExistsError,
  MountNameConflictError,
  TransactionStateError,
} from './errors.js'
import { digestHex, parseCacheID, parseChainID, parseDiffID, parseMountID } from './ids.js'
import type { CacheID, ChainID, DiffID, MountID } from './ids.js'
import type { JsonObject, JsonValue } from './json.js'
import { LAYER_FILES, MOUNT_FILES, checkExtraFileName, checkMountName } from './layout.js'
import type { LayerDbLayout } from './layout.js'

const debug = createDebug('layerstore:metadata')

/**
 * The files other processes read from a live write set (the orphan scan reads the driver
 * IDs, the layer store's graph the parent it holds): replaced atomically, so that a reader
 * sees nothing or the whole value. The others are written in place: nobody reads them
 * before the commit.
 */
const SCANNED_FILES: ReadonlySet<string> = new Set([LAYER_FILES.cacheID, LAYER_FILES.parent, MOUNT_FILES.mountID, MOUNT_FILES.initID])

/** Options of {@link Transaction.commit} and {@link Transaction.commitMount}. */
export interface CommitOptions {
  /**
   * Paths on filesystems to flush with one `syncfs(2)` each before the record is published:
   * the driver directories holding this layer's data. The metadata becomes visible only once
   * the data it describes is durable. When the write set lives on one of these filesystems,
   * that `syncfs` makes the set durable too and its files are not fsynced one by one.
   */
  readonly syncfsPaths?: readonly string[]
}

/** Where a transaction is in its life (see the file comment). */
export type TransactionState = 'open' | 'committing' | 'committed' | 'cancelled'

/**
 * An open write set. Create one with `FileMetadataStore.startTransaction()` **before** the
 * first side effect (before the driver creates the cache ID's directory), and set the driver
 * IDs (`setCacheID`, or `setMountID`/`setInitID`) before the driver creates them: the orphan
 * scan of a concurrent process reads them from this live set and leaves those directories
 * alone; once this process dies they become orphans and are reported.
 *
 * The files a concurrent scan reads (driver IDs, `parent`) are replaced atomically inside the
 * set, so a scan reads either nothing or the whole value. Nothing is fsynced while the set is
 * filled: the commit makes the whole set durable at once, before the rename that publishes it
 * (by the driver's `syncfs` when the set is on the same filesystem, else one fsync per file
 * and one of the set's directory).
 */
export class Transaction {
  /** The write-set directory (for logs). */
  readonly path: string
  readonly #layout: LayerDbLayout
  readonly #crash: CrashPointHook
  readonly #written = new Set<string>()
  readonly #pending = new Set<Promise<void>>()
  readonly #writers = new Set<{ readonly stream: Writable; readonly done: Promise<void> }>()
  #state: TransactionState = 'open'

  /** @internal Use `FileMetadataStore.startTransaction()`. */
  constructor(layout: LayerDbLayout, path: string, crash: CrashPointHook) {
    this.#layout = layout
    this.path = path
    this.#crash = crash
  }

  /** The state: `open`, `committing`, `committed` or `cancelled`. */
  get state(): TransactionState {
    return this.#state
  }

  /** Writes `diff`: the layer's diff ID, without a trailing newline (as moby). */
  async setDiffID(diffID: DiffID): Promise<void> {
    return await this.#write(LAYER_FILES.diff, parseDiffID(diffID))
  }

  /** Writes `size`: the bytes the layer's apply wrote, in decimal (as moby). */
  async setSize(size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`layer size ${size} is not a non-negative integer`)
    return await this.#write(LAYER_FILES.size, String(size))
  }

  /** Writes `cache-id`. Call it before the driver creates that directory. */
  async setCacheID(cacheID: CacheID): Promise<void> {
    return await this.#write(LAYER_FILES.cacheID, parseCacheID(cacheID))
  }

  /** Writes `parent`: the parent's chain ID (of a layer, or of a RW layer). Omit for none. */
  async setParent(parent: ChainID): Promise<void> {
    return await this.#write(LAYER_FILES.parent, parseChainID(parent))
  }

  /** Writes `descriptor.json` (moby writes it for foreign layers only). */
  async setDescriptor(descriptor: JsonObject): Promise<void> {
    return await this.#write(LAYER_FILES.descriptor, JSON.stringify(descriptor))
  }

  /** Writes `mount-id` of a RW layer. Call it before the driver creates that directory. */
  async setMountID(mountID: MountID): Promise<void> {
    return await this.#write(MOUNT_FILES.mountID, parseMountID(mountID))
  }

  /** Writes `init-id` of a RW layer (`<mountID>-init`). Call it before the driver creates it. */
  async setInitID(initID: MountID): Promise<void> {
    return await this.#write(MOUNT_FILES.initID, parseMountID(initID, 'init-id'))
  }

  /** Writes one of our extra files (`references.json`, `mount-state.json`, …) as JSON. */
  async setExtra(file: string, value: JsonValue): Promise<void> {
    checkExtraFileName(file)
    return await this.#write(file, JSON.stringify(value))
  }

  /**
   * Opens `tar-split.json.gz` for writing. The bytes given are stored as they are: pass gzip
   * (moby's migration path), or use {@link tarSplitPacker} which gzips. The file is made
   * durable by the commit, with the rest of the set; `commit` refuses to run while it is
   * still open.
   */
  tarSplitWriter(): Writable {
    this.#checkOpen('tarSplitWriter')
    const path = `${this.path}/${LAYER_FILES.tarSplit}`
    const stream = createWriteStream(path, { flags: 'w', mode: 0o644 })
    const writer = { stream, done: finished(stream) }
    writer.done.then(
      () => this.#written.add(LAYER_FILES.tarSplit),
      () => undefined,
    )
    this.#writers.add(writer)
    return stream
  }

  /** A tar-split `JsonPacker` (an `EntrySink`) writing gzip into `tar-split.json.gz`. */
  tarSplitPacker(): JsonPacker {
    return new JsonPacker(this.tarSplitWriter(), { gzip: true })
  }

  /**
   * Publishes the set as the committed layer `chainID`: syncs the driver data and the set (see
   * {@link CommitOptions}), renames it to `sha256/<hex>` (never over an existing record) and
   * fsyncs `sha256/`.
   *
   * @throws IncompleteTransactionError when `diff`, `size` or `cache-id` is missing, or
   *   `mount-id` was set (a mount record).
   * @throws LayerAlreadyExistsError when `chainID` is already committed; the set stays open.
   */
  async commit(chainID: ChainID, options: CommitOptions = {}): Promise<void> {
    await Transaction.commitLayers([{ transaction: this, chainID }], options)
  }

  /**
   * A group commit: publishes several layer sets, in the order given, after **one** flush of
   * every filesystem involved (where `commit` flushes once per set). Each set still becomes
   * its layer with its own rename and fsync of `sha256/`, one after the other, so a crash
   * leaves a prefix of them committed (never a layer without the parent before it in the
   * list, on a filesystem that writes metadata back in any order); this is why the renames
   * are not batched behind one fsync too.
   *
   * Every set is checked before anything is flushed. A failure before the first rename
   * leaves every set open; a failure at set k leaves the sets before it committed and the
   * others open (the caller's `cancel()` of each then cleans up).
   *
   * @throws as {@link commit}, for the first set that fails.
   */
  static async commitLayers(
    items: readonly { readonly transaction: Transaction; readonly chainID: ChainID }[],
    options: CommitOptions = {},
  ): Promise<void> {
    const planned = items.map(({ transaction, chainID }) => ({ transaction, id: parseChainID(chainID) }))
    const ready: Transaction[] = []
    const first = planned[0]?.transaction
    try {
      for (const { transaction } of planned) {
        await transaction.#ready('commit', checkLayerSet)
        ready.push(transaction)
      }
      // A group flushes the write sets' filesystem once too, rather than fsync every file.
      const setsFs = planned.length > 1 && first ? [first.#layout.tmpDir] : []
      const synced = await syncFilesystems([...(options.syncfsPaths ?? []), ...setsFs])
      // Every set lives in tmp/: one stat tells whether the flush covered them all.
      const setsSynced = first === undefined || synced.has(await deviceOf(first.#layout.tmpDir))
      for (const { transaction } of planned) await transaction.#makeDurable(setsSynced)
    } catch (err) {
      for (const transaction of ready) transaction.#state = 'open'
      throw err
    }
    for (const [i, { transaction, id }] of planned.entries()) {
      try {
        await transaction.#rename(transaction.#layout.layerDir(id), 'commit', () => new LayerAlreadyExistsError(id))
      } catch (err) {
        // The sets not renamed go back to open; one renamed whose fsync failed stays committed.
        for (const later of planned.slice(i)) if (later.transaction.#state === 'committing') later.transaction.#state = 'open'
        throw err
      }
      debug('committed layer %s (%s)', id, digestHex(id))
    }
  }

  /**
   * Publishes the set as the RW layer (mount) `name` under `mounts/`: all of `mount-id`,
   * `init-id` and `parent` appear at once (moby writes them one by one, so a crash could load
   * a mount without its parent reference).
   *
   * @throws IncompleteTransactionError without `mount-id`, or with layer files.
   * @throws MountNameConflictError when the name is taken; the set stays open.
   */
  async commitMount(name: string, options: CommitOptions = {}): Promise<void> {
    this.#checkOpen('commitMount')
    checkMountName(name)
    const check = (written: ReadonlySet<string>, path: string): void => {
      const layerOnly = [LAYER_FILES.diff, LAYER_FILES.size, LAYER_FILES.cacheID, LAYER_FILES.tarSplit]
      if (!written.has(MOUNT_FILES.mountID) || layerOnly.some((f) => written.has(f))) {
        const missing = written.has(MOUNT_FILES.mountID) ? [] : [MOUNT_FILES.mountID]
        throw new IncompleteTransactionError(path, missing, 'it holds layer files; use commit()')
      }
    }
    try {
      await this.#ready('commit-mount', check)
      const synced = await syncFilesystems(options.syncfsPaths ?? [])
      await this.#makeDurable(synced.has(await deviceOf(this.#layout.tmpDir)))
    } catch (err) {
      this.#state = 'open'
      throw err
    }
    await this.#rename(this.#layout.mountDir(name), 'commit-mount', () => new MountNameConflictError(name))
    debug('committed mount %s', name)
  }

  /** Removes the write set. Does nothing once committed or cancelled. */
  async cancel(): Promise<void> {
    if (this.#state === 'committed' || this.#state === 'cancelled') return
    if (this.#state === 'committing') throw new TransactionStateError(this.path, 'cancel() during commit')
    this.#state = 'cancelled'
    await removeTree(this.path)
    debug('cancelled %s', this.path)
  }

  /**
   * Waits for the setters and the tar-split writer, checks what was written, and moves to
   * `committing`. The caller sets the state back to `open` if the commit then fails.
   */
  async #ready(step: 'commit' | 'commit-mount', check: (written: ReadonlySet<string>, path: string) => void): Promise<void> {
    this.#checkOpen(step)
    this.#state = 'committing'
    try {
      // Setters still in flight finish first (their failure is the commit's).
      await Promise.all(this.#pending)
      for (const w of this.#writers) {
        // Ended but maybe not yet fsynced and closed: wait for that; never ended: a caller bug.
        if (!w.stream.writableEnded) {
          throw new TransactionStateError(this.path, 'the tar-split writer is still open; end it first')
        }
        await w.done.catch((err: unknown) => {
          throw ioError('write', `${this.path}/${LAYER_FILES.tarSplit}`, err)
        })
      }
      check(this.#written, this.path)
    } catch (err) {
      this.#state = 'open'
      throw err
    }
  }

  /**
   * The set's files and entries must be durable before the rename makes them reachable. A
   * syncfs of the set's filesystem (`synced`), after every file was written, did that
   * already; otherwise each file is fsynced, then the set's directory.
   */
  async #makeDurable(synced: boolean): Promise<void> {
    const step = this.#written.has(MOUNT_FILES.mountID) ? 'commit-mount' : 'commit'
    // No existence check before the syncs: the rename refuses to replace a record (and a
    // conflict, which is rare, only costs the syncs done for nothing).
    this.#crashAt(`${step}:before-sync`)
    if (!synced) {
      await Promise.all([...this.#written].map((file) => fsyncFile(`${this.path}/${file}`)))
      await fsyncDir(this.path)
    }
  }

  /** Publishes the (durable) set at `target`, then makes the rename durable. A failed rename leaves the set open. */
  async #rename(target: string, step: 'commit' | 'commit-mount', conflict: () => Error): Promise<void> {
    this.#crashAt(`${step}:before-rename`)
    try {
      renameat2(this.path, target, 'noreplace')
    } catch (err) {
      this.#state = 'open'
      const code = errnoOf(err)
      if (code === 'EEXIST' || code === 'ENOTEMPTY') throw conflict()
      throw ioError('rename', this.path, err)
    }
    this.#state = 'committed'
    this.#crashAt(`${step}:after-rename`)
    await fsyncDir(dirnameOf(target))
    this.#crashAt(`${step}:after-sync`)
  }

  async #write(file: string, data: string): Promise<void> {
    this.#checkOpen(`write ${file}`)
    const path = `${this.path}/${file}`
    // Durability is left to commit: one syncfs (or one pass of fsyncs) for the whole set.
    const write = SCANNED_FILES.has(file)
      ? replaceFile(`${this.path}/.${file}.${randomBytes(6).toString('hex')}.tmp`, path, this.path, data, false, undefined, false)
      : writeFileSynced(path, data, false)
    const done = write.then(() => {
      this.#written.add(file)
    })
    this.#pending.add(done)
    try {
      await done
    } finally {
      this.#pending.delete(done)
    }
  }

  #checkOpen(what: string): void {
    if (this.#state !== 'open') throw new TransactionStateError(this.path, `${what} on a ${this.#state} transaction`)
  }

  #crashAt(point: CrashPoint): void {
    this.#crash?.(point)
  }
}

/** A layer set needs `diff`, `size` and `cache-id`, and no mount file. */
function checkLayerSet(written: ReadonlySet<string>, path: string): void {
  const missing = [LAYER_FILES.diff, LAYER_FILES.size, LAYER_FILES.cacheID].filter((f) => !written.has(f))
  if (missing.length || written.has(MOUNT_FILES.mountID)) {
    throw new IncompleteTransactionError(path, missing, 'it holds mount files; use commitMount()')
  }
}

/** syncfs once per filesystem among `paths`; returns the device numbers flushed. */
async function syncFilesystems(paths: readonly string[]): Promise<Set<number>> {
  const synced = new Set<number>()
  for (const path of paths) {
    const dev = await deviceOf(path)
    if (synced.has(dev)) continue
    await syncFilesystemOf(path)
    synced.add(dev)
  }
  return synced
}

function dirnameOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/'))
}
