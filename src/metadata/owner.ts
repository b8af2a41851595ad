/**
 * Owner tokens: how the orphan scan tells an abandoned intent from one still in progress.
 *
 * Register applies a layer outside the exclusive store lock (it may take minutes), so another
 * process may run the orphan scan meanwhile and must not delete that write set or the driver
 * directory it names. Each open metadata store therefore holds a kernel lock on its own file
 * `tmp/owner-<id>.lock` and puts `<id>` in the names of its write sets, temp files and
 * `-removing` markers. The kernel drops the lock when the process dies, however it dies, so
 * "the lock can be taken" means "the owner is gone" and its intents are orphans.
 */
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { open, stat, unlink } from 'node:fs/promises'
import { lockFile, unlockFile } from '../native/index.js'
import { errnoOf, ioError } from './durable-fs.js'
import type { LayerDbLayout } from './layout.js'

/** The lock that marks one open metadata store as alive. */
export class OwnerToken {
  readonly id: string
  readonly #path: string
  readonly #handle: FileHandle

  private constructor(id: string, path: string, handle: FileHandle) {
    this.id = id
    this.#path = path
    this.#handle = handle
  }

  /**
   * Creates and locks a fresh owner file. A concurrent scan may probe (lock) the new file in
   * the instant before we lock it, find it "dead" and unlink it; we then hold a lock on an
   * unlinked inode, so after locking we check that the path still names our inode and start
   * over with a new ID if not.
   */
  static async acquire(layout: LayerDbLayout): Promise<OwnerToken> {
    for (;;) {
      const id = randomBytes(16).toString('hex')
      const path = layout.ownerLockFile(id)
      let handle: FileHandle | undefined
      try {
        handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600)
        if (!(await lockFile(handle.fd, 'exclusive', { wait: false }))) {
          throw new Error(`owner lock ${path} is held by someone else right after its creation`)
        }
        const [mine, named] = await Promise.all([handle.stat(), stat(path).catch(() => undefined)])
        if (named && named.ino === mine.ino && named.dev === mine.dev) return new OwnerToken(id, path, handle)
      } catch (err) {
        await handle?.close()
        if (errnoOf(err) === 'EEXIST') continue
        throw ioError('lock', path, err)
      }
      await handle.close()
    }
  }

  /** Unlocks and removes the owner file; intents still open become orphans. */
  async release(): Promise<void> {
    // Unlink first: a scan that opens the name after this sees ENOENT (dead), which is true.
    await unlink(this.#path).catch(() => undefined)
    try {
      await unlockFile(this.#handle.fd)
    } finally {
      await this.#handle.close()
    }
  }
}

/**
 * Answers "is this owner alive?" for one scan, probing each owner's lock file once. An owner
 * whose file is missing or can be locked is dead. `self` is answered without a syscall.
 */
export class OwnerProbe {
  readonly #layout: LayerDbLayout
  readonly #self: string | undefined
  readonly #known = new Map<string, Promise<boolean>>()

  constructor(layout: LayerDbLayout, self: string | undefined) {
    this.#layout = layout
    this.#self = self
  }

  /** True while the owner's store is open in some process. */
  isAlive(owner: string): Promise<boolean> {
    if (owner === this.#self) return Promise.resolve(true)
    let answer = this.#known.get(owner)
    if (!answer) {
      answer = probe(this.#layout.ownerLockFile(owner))
      this.#known.set(owner, answer)
    }
    return answer
  }
}

async function probe(path: string): Promise<boolean> {
  let handle: FileHandle
  try {
    handle = await open(path, constants.O_RDWR)
  } catch (err) {
    const code = errnoOf(err)
    if (code === 'ENOENT' || code === 'ENOTDIR') return false
    throw ioError('open', path, err)
  }
  try {
    // Our own fd is a separate open file description, so the owner's lock conflicts with it
    // even when the owner is this very process (another store instance).
    const got = await lockFile(handle.fd, 'exclusive', { wait: false })
    if (got) await unlockFile(handle.fd)
    return !got
  } catch (err) {
    throw ioError('lock', path, err)
  } finally {
    await handle.close()
  }
}
