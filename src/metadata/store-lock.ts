/**
 * The store lock: one kernel file lock on `<root>/layerstore.lock`, shared for reads and
 * exclusive for changes, which the kernel drops when the holding process dies.
 *
 * Within a process, holders queue here first (first come, first served; a waiting exclusive
 * holder stops later shared ones from overtaking it), and only the transition from "no
 * holder" to "some holder" touches the kernel: the first holder opens a new descriptor and
 * locks it, the last one closes it. So two exclusive holders in one process exclude each
 * other, at most one blocking kernel call per `StoreLock` occupies a worker thread, and a
 * lock is never lost to an unrelated `close()` (the lock belongs to our own open file
 * description, as flock and OFD locks do).
 *
 * Keep slow work outside the exclusive lock: apply a layer into a fresh cache ID and lock
 * only to commit; delete by renaming under the lock and removing after unlocking.
 */
import { constants } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { mkdir, open } from 'node:fs/promises'
import { dirname } from 'node:path'
import createDebug from 'debug'
import { lockFile } from '../native/index.js'
import { errnoOf, ioError } from './durable-fs.js'
import { LockNotHeldError, StoreLockedError } from './errors.js'
import { storeLockPath } from './layout.js'

const debug = createDebug('layerstore:metadata')

/** `shared` for reads, `exclusive` for changes. */
export type LockMode = 'shared' | 'exclusive'

/** Options of an acquisition. */
export interface AcquireOptions {
  /**
   * Wait until the lock is free (default true). With false, a lock held elsewhere (in this
   * process or another) fails at once with `StoreLockedError`.
   */
  readonly wait?: boolean
  /** Stops waiting: the promise rejects with the signal's reason. A granted lock stays held. */
  readonly signal?: AbortSignal
}

/** One holder's claim on the store lock. */
export interface StoreLockHandle {
  readonly mode: LockMode
  /** True until {@link release} is called. */
  readonly held: boolean
  /**
   * Gives the claim back. The last holder in this process unlocks the kernel lock.
   *
   * @throws LockNotHeldError on a second call.
   */
  release(): Promise<void>
}

interface Waiter {
  readonly mode: LockMode
  readonly signal: AbortSignal | undefined
  readonly resolve: (handle: StoreLockHandle) => void
  readonly reject: (err: unknown) => void
}

/** The store lock of one data root (see the file comment). No state outside the instance. */
export class StoreLock {
  /** The lock file. */
  readonly path: string
  readonly #queue: Waiter[] = []
  #holders = 0
  #mode: LockMode = 'shared'
  #handle: FileHandle | undefined
  /** Set while the kernel lock is being taken or given back; the queue waits for it. */
  #busy = false
  #closing: Promise<void> = Promise.resolve()

  /** @param path the lock file; see {@link StoreLock.forRoot}. */
  constructor(path: string) {
    this.path = path
  }

  /** The lock of a data root: `<root>/layerstore.lock`. */
  static forRoot(dataRoot: string): StoreLock {
    return new StoreLock(storeLockPath(dataRoot))
  }

  /** How many holders in this process have the lock now, and in which mode. */
  get state(): { readonly holders: number; readonly mode: LockMode | undefined } {
    return { holders: this.#holders, mode: this.#holders ? this.#mode : undefined }
  }

  /** Takes the lock for reading; other shared holders may hold it at the same time. */
  shared(options: AcquireOptions = {}): Promise<StoreLockHandle> {
    return this.#acquire('shared', options.wait ?? true, options.signal)
  }

  /** Takes the lock for changes; nobody else, in any process, holds it meanwhile. */
  exclusive(options: AcquireOptions = {}): Promise<StoreLockHandle> {
    return this.#acquire('exclusive', options.wait ?? true, options.signal)
  }

  /** Runs `fn` under the shared lock and releases it however `fn` ends. */
  async withShared<T>(fn: () => Promise<T>, options?: AcquireOptions): Promise<T> {
    const handle = await this.shared(options)
    try {
      return await fn()
    } finally {
      await handle.release()
    }
  }

  /** Runs `fn` under the exclusive lock and releases it however `fn` ends. */
  async withExclusive<T>(fn: () => Promise<T>, options?: AcquireOptions): Promise<T> {
    const handle = await this.exclusive(options)
    try {
      return await fn()
    } finally {
      await handle.release()
    }
  }

  async #acquire(mode: LockMode, wait: boolean, signal: AbortSignal | undefined): Promise<StoreLockHandle> {
    signal?.throwIfAborted()
    if (wait) {
      return new Promise<StoreLockHandle>((resolve, reject) => {
        const onAbort = (): void => {
          // Still queued: leave the queue. Already at the kernel: #pump sees the abort.
          const at = this.#queue.indexOf(waiter)
          if (at > 0 || (at === 0 && !this.#busy)) {
            this.#queue.splice(at, 1)
            reject(signal!.reason)
            void this.#pump()
          }
        }
        const waiter: Waiter = {
          mode,
          signal,
          resolve: (handle) => {
            signal?.removeEventListener('abort', onAbort)
            resolve(handle)
          },
          reject: (err) => {
            signal?.removeEventListener('abort', onAbort)
            reject(err)
          },
        }
        this.#queue.push(waiter)
        signal?.addEventListener('abort', onAbort, { once: true })
        void this.#pump()
      })
    }
    if (this.#queue.length === 0 && !this.#busy) {
      if (this.#holders > 0 && mode === 'shared' && this.#mode === 'shared') return this.#grant(mode)
      if (this.#holders === 0) {
        this.#busy = true
        try {
          await this.#kernelLock(mode, false, undefined)
          return this.#grant(mode)
        } finally {
          this.#busy = false
          void this.#pump()
        }
      }
    }
    throw new StoreLockedError(this.path, mode)
  }

  /** Grants queued waiters in order, taking the kernel lock when the first one arrives. */
  async #pump(): Promise<void> {
    if (this.#busy) return
    this.#busy = true
    try {
      while (this.#queue.length) {
        const waiter = this.#queue[0]!
        if (waiter.signal?.aborted) {
          this.#queue.shift()
          waiter.reject(waiter.signal.reason)
          continue
        }
        if (this.#holders > 0) {
          if (waiter.mode !== 'shared' || this.#mode !== 'shared') break
        } else {
          try {
            await this.#kernelLock(waiter.mode, true, waiter.signal)
          } catch (err) {
            this.#queue.shift()
            waiter.reject(err)
            continue
          }
        }
        this.#queue.shift()
        waiter.resolve(this.#grant(waiter.mode))
      }
    } finally {
      this.#busy = false
    }
  }

  #grant(mode: LockMode): StoreLockHandle {
    this.#holders++
    this.#mode = mode
    let held = true
    const handle: StoreLockHandle = {
      mode,
      get held() {
        return held
      },
      release: async () => {
        if (!held) throw new LockNotHeldError(this.path)
        held = false
        await this.#release()
      },
    }
    return Object.freeze(handle)
  }

  async #release(): Promise<void> {
    this.#holders--
    if (this.#holders === 0) {
      const handle = this.#handle
      this.#handle = undefined
      // Closing the descriptor drops the kernel lock; the next kernel lock waits for it.
      this.#closing = (handle?.close() ?? Promise.resolve()).catch((err: unknown) => {
        debug('closing %s failed: %s', this.path, err)
      })
      await this.#closing
      debug('released %s', this.path)
    }
    void this.#pump()
  }

  async #kernelLock(mode: LockMode, wait: boolean, signal: AbortSignal | undefined): Promise<void> {
    await this.#closing
    let handle: FileHandle
    // O_RDWR: an OFD write lock needs a descriptor open for writing.
    const openLockFile = (): Promise<FileHandle> => open(this.path, constants.O_RDWR | constants.O_CREAT, 0o600)
    try {
      // The root exists but on first use: make it only then (two syscalls fewer per lock).
      handle = await openLockFile().catch(async (err: unknown) => {
        if (errnoOf(err) !== 'ENOENT') throw err
        await mkdir(dirname(this.path), { recursive: true, mode: 0o700 })
        return openLockFile()
      })
    } catch (err) {
      throw ioError('open', this.path, err)
    }
    let got: boolean
    try {
      got = await lockFile(handle.fd, mode, { wait, ...(signal ? { signal } : {}) })
    } catch (err) {
      await handle.close()
      if (signal?.aborted) throw signal.reason
      throw ioError('lock', this.path, err)
    }
    if (!got) {
      await handle.close()
      throw new StoreLockedError(this.path, mode)
    }
    this.#handle = handle
    debug('locked %s (%s)', this.path, mode)
  }
}
