/**
 * Mount reference counting (moby's `mountref.Counter`, formerly `graphdriver.RefCounter`).
 *
 * A driver that mounts on `get` keeps one `MountCounter`, keyed by mount point. States of a
 * key: *untouched* (never seen by this counter) → *held* (count ≥ 1) → back to *untouched*
 * when the count reaches 0. Moves:
 *
 * - `acquire(path, mount)`: on the first touch, ask `isMounted(path)`; a mount that exists
 *   without this counter knowing (another process, a crashed predecessor) is **adopted** as
 *   one holder, so it is never mounted twice and a later release can unmount it. Then the
 *   count goes up by one; only when it becomes 1 does `mount()` run.
 * - `release(path, unmount)`: the count goes down by one; only when it becomes 0 does
 *   `unmount()` run. A release below zero is `MountNotHeldError`, never a silent success.
 *
 * Calls for one path are serialised (a queue per path), so a `get` racing another `get` never
 * returns before the mount exists, and a `put` racing a `get` never unmounts under it. If
 * `mount()` fails the count is restored; if `unmount()` fails the holder is restored too, so
 * a retry (or `cleanup`) still knows the mount. An adopted mount is re-checked on every
 * touch: if its owner unmounted it meanwhile, the counter starts afresh and mounts again.
 */
import createDebug from 'debug'
import { GraphDriverInternalError, MountNotHeldError } from './errors.js'

const debug = createDebug('layerstore:graphdriver')

/** Options of {@link MountCounter}. */
export interface MountCounterOptions {
  /**
   * Tells whether `path` is a mount point now (e.g. `isMountPoint` from `native/`, which reads
   * `/proc/self/mountinfo`). Asked once per path, on its first touch since it was last free.
   */
  readonly isMounted: (path: string) => Promise<boolean> | boolean
}

interface Entry {
  count: number
  /** True when the first holder was a mount found in mountinfo, not one of our acquires. */
  adopted: boolean
  /** Held, but the mount was found gone (its adopted owner unmounted it): mount again. */
  lost: boolean
}

/** Counts holders of mount points and runs the mount/unmount at the edges. */
export class MountCounter {
  readonly #isMounted: (path: string) => Promise<boolean> | boolean
  readonly #entries = new Map<string, Entry>()
  readonly #queues = new Map<string, Promise<unknown>>()

  constructor(options: MountCounterOptions) {
    this.#isMounted = options.isMounted
  }

  /**
   * Adds a holder of `path`, running `mount` if this is the first (and the path was not
   * already mounted). Returns the new count. If `mount` rejects, the count is unchanged and
   * the error propagates.
   */
  acquire(path: string, mount: () => Promise<void> | void): Promise<number> {
    return this.#serial(path, async () => {
      const entry = await this.#touch(path)
      entry.count += 1
      if (entry.count === 1 || entry.lost) {
        try {
          await mount()
        } catch (err) {
          entry.count -= 1
          this.#forgetIfFree(path, entry)
          throw err
        }
        entry.lost = false
        debug('mounted %s', path)
      }
      return entry.count
    })
  }

  /**
   * Removes a holder of `path`, running `unmount` if it was the last. Returns the new count.
   * `MountNotHeldError` if the path is neither held nor mounted. If `unmount` rejects, the
   * holder is restored and the error propagates.
   */
  release(path: string, unmount: () => Promise<void> | void): Promise<number> {
    return this.#serial(path, async () => {
      const entry = await this.#touch(path)
      if (entry.count <= 0) {
        this.#entries.delete(path)
        throw new MountNotHeldError(path)
      }
      entry.count -= 1
      if (entry.count === 0) {
        try {
          if (!entry.lost) await unmount()
        } catch (err) {
          entry.count += 1
          throw err
        }
        this.#entries.delete(path)
        debug('unmounted %s%s', path, entry.adopted ? ' (adopted)' : '')
      }
      return entry.count
    })
  }

  /**
   * Drops every holder of `path` at once, running `unmount` if it had any (`cleanup`,
   * or a forced removal). Returns how many holders there were.
   */
  releaseAll(path: string, unmount: () => Promise<void> | void): Promise<number> {
    return this.#serial(path, async () => {
      const entry = this.#entries.get(path)
      if (!entry || entry.count === 0) return 0
      await unmount()
      this.#entries.delete(path)
      return entry.count
    })
  }

  /** The holders of `path` this counter knows of (0 if untouched; adoption is not probed). */
  count(path: string): number {
    return this.#entries.get(path)?.count ?? 0
  }

  /** True if the first holder of `path` was an adopted mount. */
  isAdopted(path: string): boolean {
    return this.#entries.get(path)?.adopted ?? false
  }

  /** Every path with at least one holder. */
  paths(): string[] {
    return [...this.#entries].filter(([, e]) => e.count > 0).map(([p]) => p)
  }

  async #touch(path: string): Promise<Entry> {
    let entry = this.#entries.get(path)
    // An adopted mount belongs to someone else, who may have unmounted it since: re-check,
    // or a later acquire would count on a mount that is gone and hand out an empty dir.
    if (entry?.adopted && !(await this.#isMounted(path))) {
      debug('adopted mount %s is gone; dropping its holder', path)
      entry.adopted = false
      entry.count -= 1
      // Our own holders, if any, counted on that mount: the next acquire mounts again.
      entry.lost = entry.count > 0
      if (entry.count === 0) {
        this.#entries.delete(path)
        entry = undefined
      }
    }
    if (entry) return entry
    const mounted = await this.#isMounted(path)
    entry = { count: mounted ? 1 : 0, adopted: mounted, lost: false }
    if (mounted) debug('adopted existing mount %s', path)
    this.#entries.set(path, entry)
    return entry
  }

  #forgetIfFree(path: string, entry: Entry): void {
    if (entry.count < 0) throw new GraphDriverInternalError(`mount count of ${path} fell below zero`)
    if (entry.count === 0) this.#entries.delete(path)
  }

  // One promise chain per path: each call waits for the previous call on that path to settle.
  #serial<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#queues.get(path) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.then(
      () => undefined,
      () => undefined,
    )
    this.#queues.set(path, tail)
    void tail.then(() => {
      if (this.#queues.get(path) === tail) this.#queues.delete(path)
    })
    return run
  }
}
