/**
 * Recursive removal that never follows a symlink and handles byte-string names (Node's
 * `fs.rmSync` joins names as UTF-8 text, which breaks Latin-1 names): synchronous for the
 * apply's per-member calls, asynchronous with bounded memory for deleting a whole layer.
 */
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import { fsPath, joinRel } from './byte-path.js'

/**
 * Removes `abs` (a byte-string path) and everything under it; a missing path is fine.
 * Sync, like the rest of the apply's per-member calls (see apply.ts).
 *
 * @param rel the same path relative to the apply root, passed back to `onRemoved`
 * @param onRemoved called with each path removed (children before their directory)
 * @returns false when nothing was there
 */
export function removeTree(abs: string, rel: string, onRemoved?: (rel: string) => void): boolean {
  const p = fsPath(abs)
  try {
    fs.unlinkSync(p)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return false
    // unlink(2) of a directory is EISDIR on Linux (EPERM elsewhere).
    if (code !== 'EISDIR' && code !== 'EPERM') throw err
    removeChildren(abs, rel, onRemoved)
    fs.rmdirSync(p)
  }
  onRemoved?.(rel)
  return true
}

/** Removes everything inside the directory `abs`, keeping the directory. */
export function removeChildren(abs: string, rel: string, onRemoved?: (rel: string) => void): void {
  const names = fs.readdirSync(fsPath(abs), { encoding: 'latin1', withFileTypes: true })
  for (const d of names) {
    const childAbs = `${abs}/${d.name}`
    const childRel = joinRel(rel, d.name)
    if (d.isDirectory()) {
      removeChildren(childAbs, childRel, onRemoved)
      fs.rmdirSync(fsPath(childAbs))
    } else {
      fs.unlinkSync(fsPath(childAbs))
    }
    onRemoved?.(childRel)
  }
}

/** Directories being emptied at once; each unlinks its files one at a time. */
const PARALLEL_DIRECTORIES = 8

/**
 * Removes the directory tree at `path` (text, as Node gives paths; names inside may be any
 * bytes) without blocking the event loop; a missing path is fine, a non-directory is
 * unlinked. For deleting a whole layer (a driver's `remove`, the discarded copy of a layer
 * registered twice).
 *
 * Why not `fs.promises.rm(path, { recursive: true })`: Node 20 walks the whole tree at once
 * (every directory's children in parallel), so every name and pending call of the tree is in
 * memory together: +31 MiB of peak RSS for a layer of 55k files (issue #6). Here a few
 * directories are emptied at a time, taken depth first from a stack: memory holds the
 * directories waiting on that stack and the listings being worked on, whatever the number
 * of files. A directory is removed once its files and subdirectories are gone.
 */
export async function removeTreeAsync(path: string): Promise<boolean> {
  try {
    await fsp.rmdir(path)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return false
    if (code === 'ENOTDIR') {
      await fsp.unlink(path).catch(ignoreMissing)
      return true
    }
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err
  }
  await new TreeRemoval(Buffer.from(path)).done
  return true
}

/** A directory being removed: `pending` counts its own emptying plus subdirectories left. */
interface DirNode {
  readonly path: Buffer
  readonly parent: DirNode | null
  pending: number
}

/** The state of one {@link removeTreeAsync}: a stack of directories and a few workers on it. */
class TreeRemoval {
  readonly done: Promise<void>
  readonly #stack: DirNode[]
  #running = 0
  #failed = false
  #resolve!: () => void
  #reject!: (err: unknown) => void

  constructor(root: Buffer) {
    this.#stack = [{ path: root, parent: null, pending: 1 }]
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    this.#pump()
  }

  #pump(): void {
    while (!this.#failed && this.#running < PARALLEL_DIRECTORIES && this.#stack.length > 0) {
      const node = this.#stack.pop()!
      this.#running++
      this.#empty(node).then(
        () => {
          this.#running--
          if (this.#stack.length > 0) this.#pump()
          else if (this.#running === 0 && !this.#failed) this.#resolve()
        },
        (err: unknown) => {
          this.#running--
          // The first error wins; the workers still running stop taking directories.
          if (!this.#failed) this.#reject(err)
          this.#failed = true
        },
      )
    }
  }

  /**
   * Unlinks the files of `node`, stacks its subdirectories, and removes it if that was all.
   * A file's path is written into one buffer per directory (its unlinks run one at a time):
   * a new Buffer per file is garbage that, for a layer of 55k files, raised the peak RSS of
   * removing it by several MiB before the collector caught up.
   */
  async #empty(node: DirNode): Promise<void> {
    const entries = await fsp.readdir(node.path, { encoding: 'buffer', withFileTypes: true })
    const prefix = node.path.length + 1
    const scratch = Buffer.allocUnsafe(prefix + NAME_MAX)
    node.path.copy(scratch)
    scratch[node.path.length] = SLASH
    for (const d of entries) {
      // Never truncated: Linux returns no name longer than NAME_MAX, and one would be refused.
      if (d.name.length > NAME_MAX) throw new RangeError(`a name of ${d.name.length} bytes in ${node.path.toString()}`)
      const child = scratch.subarray(0, prefix + d.name.copy(scratch, prefix))
      if (d.isDirectory()) {
        node.pending++
        // Kept on the stack, so a copy of its own.
        this.#stack.push({ path: Buffer.from(child), parent: node, pending: 1 })
      } else {
        await fsp.unlink(child).catch(ignoreMissing)
      }
    }
    this.#pump()
    await this.#finish(node)
  }

  /** One of `node`'s pending parts is done; the last one removes it, then tells its parent. */
  async #finish(node: DirNode): Promise<void> {
    for (let n: DirNode | null = node; n !== null && --n.pending === 0; n = n.parent) {
      await fsp.rmdir(n.path).catch(ignoreMissing)
    }
  }
}

const SLASH = 0x2f
/** The longest file name Linux allows (bytes): no entry name is longer. */
const NAME_MAX = 255

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
}
