/**
 * Writing file contents on the thread pool while the tar is parsed on: the apply's second
 * core. Applying is two jobs, parsing the tar (JavaScript: headers, checksums) and the
 * kernel's work (creating, writing, setting attributes); done one after the other they add
 * up, done at once the slower one sets the pace.
 *
 * Only what goes through the file's descriptor is deferred: the file is created (and its
 * path exists) before the next member is looked at, so every later member sees the tree
 * exactly as a sequential apply would leave it. A later member replacing or deleting the
 * path unlinks it; the deferred writes then finish on the unlinked inode, harmlessly. A
 * hardlink to it shares the inode, which ends up complete. Directory times are set after
 * every deferred write has settled (see `drain`).
 *
 * Content pieces are views of the input's chunks: sources never reuse a chunk once yielded
 * (Node streams do not), so they stay valid until written. At most {@link MAX_PENDING_BYTES}
 * of them and {@link MAX_PENDING_FILES} open files wait at a time; beyond that the reader
 * waits for writes to finish, which keeps memory flat whatever the layer.
 *
 * A failed write or attribute call is reported by the next {@link FileWriter.check} or by
 * {@link FileWriter.drain}, as the error `wrap` made for its member; a file's descriptor is
 * closed only after all of its writes have settled, so a recycled descriptor number can
 * never receive a late write.
 */
import fs from 'node:fs'

/** Bytes read but not yet written, across files, before the reader waits. */
export const MAX_PENDING_BYTES = 32 << 20
/** Files with deferred work (each holds a descriptor) before the reader waits. */
export const MAX_PENDING_FILES = 64

/** One write: `length` bytes of `buf` from `offset`, to file position `position`. */
interface Piece {
  readonly buf: Buffer
  readonly offset: number
  readonly length: number
  readonly position: number
}

/** Sparse layout of a member: data extents in order, and the real size. */
export interface SparseLayout {
  readonly map: readonly { readonly offset: number; readonly length: number }[]
  readonly realSize: number
}

/** Defers file writes to the thread pool, in bounded amounts. */
export class FileWriter {
  readonly #files = new Set<Promise<void>>()
  #bytes = 0
  #failed = false
  #failure: unknown = undefined

  /**
   * Reads all of `content` (the parser needs it consumed before the next member) and queues
   * its writes to `fd`, a new empty file; when they are all written, runs `finish` (the
   * attributes) and closes `fd`. Resolves once the content is read, not written.
   *
   * @param sparse the data extents `content` fills, for a sparse member (its holes stay
   *   holes: positional writes, then ftruncate to the real size)
   * @param wrap turns a failure into the error to report
   */
  async write(
    fd: number,
    content: AsyncIterable<Buffer>,
    sparse: SparseLayout | undefined,
    finish: () => void,
    wrap: (err: unknown) => unknown,
  ): Promise<void> {
    while (this.#files.size >= MAX_PENDING_FILES) await Promise.race(this.#files)
    const writes: Promise<void>[] = []
    const queue = async (piece: Piece): Promise<void> => {
      this.#bytes += piece.length
      writes.push(pwriteAll(fd, piece).finally(() => (this.#bytes -= piece.length)))
      // Over budget: wait for this file's oldest write, or else for another file.
      while (this.#bytes > MAX_PENDING_BYTES) {
        const oldest = writes.find((w) => !settled.has(w))
        if (oldest !== undefined) await settle(oldest, settled)
        else await Promise.race(this.#files)
      }
    }
    const settled = new WeakSet<Promise<void>>()
    try {
      if (sparse === undefined) await readDense(content, queue)
      else await readSparse(content, sparse, queue)
    } catch (err) {
      // A parse error: nothing more comes; close once this file's writes are done.
      await Promise.allSettled(writes)
      fs.closeSync(fd)
      throw err
    }
    const done = this.#complete(fd, writes, sparse, finish).catch((err: unknown) => {
      if (!this.#failed) {
        this.#failed = true
        this.#failure = wrap(err)
      }
    })
    this.#files.add(done)
    void done.then(() => this.#files.delete(done))
  }

  async #complete(fd: number, writes: Promise<void>[], sparse: SparseLayout | undefined, finish: () => void): Promise<void> {
    try {
      const results = await Promise.allSettled(writes)
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      if (sparse !== undefined) fs.ftruncateSync(fd, sparse.realSize)
      finish()
    } finally {
      fs.closeSync(fd)
    }
  }

  /** Throws the first deferred failure, if any. */
  check(): void {
    if (this.#failed) throw this.#failure
  }

  /** Waits for every deferred write, then throws the first failure, if any. */
  async drain(): Promise<void> {
    while (this.#files.size > 0) await Promise.allSettled([...this.#files])
    this.check()
  }
}

async function settle(p: Promise<void>, settled: WeakSet<Promise<void>>): Promise<void> {
  try {
    await p
  } catch {
    // Reported when the file completes.
  } finally {
    settled.add(p)
  }
}

async function readDense(content: AsyncIterable<Buffer>, queue: (piece: Piece) => Promise<void>): Promise<void> {
  let position = 0
  for await (const buf of content) {
    await queue({ buf, offset: 0, length: buf.length, position })
    position += buf.length
  }
}

/** Sparse content comes as the data extents, in map order; each goes to its offset. */
async function readSparse(content: AsyncIterable<Buffer>, sparse: SparseLayout, queue: (piece: Piece) => Promise<void>): Promise<void> {
  let ext = 0
  let position = 0
  let left = 0
  for await (const buf of content) {
    for (let offset = 0; offset < buf.length; ) {
      while (left === 0) {
        const e = sparse.map[ext++]
        if (e === undefined) throw new RangeError('sparse content runs past its map (a parser bug)')
        position = e.offset
        left = e.length
      }
      const length = Math.min(left, buf.length - offset)
      await queue({ buf, offset, length, position })
      offset += length
      position += length
      left -= length
    }
  }
}

/** pwrite(2) on the thread pool until the piece is written (short writes are legal). */
function pwriteAll(fd: number, piece: Piece): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (offset: number, length: number, position: number): void => {
      fs.write(fd, piece.buf, offset, length, position, (err, n) => {
        if (err) return reject(err)
        if (n < length) step(offset + n, length - n, position + n)
        else resolve()
      })
    }
    step(piece.offset, piece.length, piece.position)
  })
}
