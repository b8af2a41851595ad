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
 * Content pieces are views of the input's chunks. Given ones (`member.content`) stay valid
 * for good and are written from where they are; lent ones (`member.lent`, from a recycling
 * input) die when the parser moves on, so they are first copied into the writer's own slabs
 * (slab-ring.ts). At most {@link MAX_PENDING_BYTES} of them (lent: the slabs' size) and
 * {@link MAX_PENDING_FILES} open files wait at a time; beyond that the reader waits for
 * writes to finish, which keeps memory flat whatever the layer.
 *
 * A failed write or attribute call is reported by the next {@link FileWriter.check} or by
 * {@link FileWriter.drain}, as the error `wrap` made for its member; a file's descriptor is
 * closed only after all of its writes have settled, so a recycled descriptor number can
 * never receive a late write.
 */
import fs from 'node:fs'
import { SlabRing, type Slab } from './slab-ring.js'

/** Bytes read but not yet written, across files, before the reader waits. */
export const MAX_PENDING_BYTES = 32 << 20
/** Files with deferred work (each holds a descriptor) before the reader waits. */
export const MAX_PENDING_FILES = 64
/**
 * Files smaller than this are written at once, synchronously: one write(2) of a few KiB
 * costs less than handing it to the thread pool and taking the completion back (measured on
 * the 55,000-file workload: the deferred path used ~20 % more CPU in all).
 */
export const DEFER_MIN_SIZE = 64 << 10

/** One write: `length` bytes of `buf` from `offset`, to file position `position`. */
interface Piece {
  readonly buf: Buffer
  readonly offset: number
  readonly length: number
  readonly position: number
  /** The slab `buf` is, for a copy of lent content. */
  readonly slab?: Slab
}

/** Sparse layout of a member: data extents in order, and the real size. */
export interface SparseLayout {
  readonly map: readonly { readonly offset: number; readonly length: number }[]
  readonly realSize: number
}

/** Defers file writes to the thread pool, in bounded amounts. */
export class FileWriter {
  /** Files whose writes are not all done. */
  #open = 0
  #next = 0
  #bytes = 0
  /** Readers waiting for a write or a file to finish (one promise per wait, none otherwise). */
  #waiters: (() => void)[] = []
  /** Sequence numbers of the files not finished, for {@link check}. */
  readonly #pending = new Set<number>()
  /** The failure of the earliest file (in tar order) that failed, and that order. */
  #failedAt = Infinity
  #failure: unknown = undefined
  /** Copies of lent pieces, allocated at the first one. */
  #ring: SlabRing | null = null

  /**
   * Reads all of `content` (the parser needs it consumed before the next member) and queues
   * its writes to `fd`, a new empty file; when they are all written, runs `finish` (the
   * attributes) and closes `fd`. Resolves once
   * the content is read, not written; a file without content (`null`) without a promise
   * when within bounds.
   *
   * @param sparse the data extents `content` fills, for a sparse member (its holes stay
   *   holes: positional writes, then ftruncate to the real size)
   * @param wrap turns a failure into the error to report
   * @param lent `content` is lent (valid only until the next piece is asked for): deferred
   *   pieces are copied first
   * @param whole the whole content at once if it is at hand (`TarMember.lentNow`): a small
   *   file is then written without a promise, and `content` is never read
   */
  write(
    fd: number,
    content: AsyncIterable<Buffer> | null,
    size: number,
    sparse: SparseLayout | undefined,
    finish: () => void,
    wrap: (err: unknown) => unknown,
    lent = false,
    whole?: () => Buffer | undefined,
  ): Promise<void> | undefined {
    if (content === null || (size < DEFER_MIN_SIZE && sparse === undefined)) return writeNow(fd, content, finish, whole)
    if (this.#open >= MAX_PENDING_FILES) return this.#writeLater(fd, content, sparse, finish, wrap, lent)
    const job = new Job(this, this.#next++, fd, sparse, finish, wrap)
    this.#open++
    this.#pending.add(job.seq)
    return this.#read(job, content, sparse, lent)
  }

  async #writeLater(
    fd: number,
    content: AsyncIterable<Buffer>,
    sparse: SparseLayout | undefined,
    finish: () => void,
    wrap: (err: unknown) => unknown,
    lent: boolean,
  ): Promise<void> {
    while (this.#open >= MAX_PENDING_FILES) await this.#wait()
    await this.write(fd, content, Infinity, sparse, finish, wrap, lent)
  }

  async #read(job: Job, content: AsyncIterable<Buffer>, sparse: SparseLayout | undefined, lent: boolean): Promise<void> {
    try {
      const queue = lent
        ? (piece: Piece): Promise<void> | undefined => this.#copy(job, piece)
        : (piece: Piece): Promise<void> | undefined => {
            job.start(piece)
            return this.#bytes > MAX_PENDING_BYTES ? this.#overBudget() : undefined
          }
      if (sparse === undefined) await readDense(content, queue)
      else await readSparse(content, sparse, queue)
    } catch (err) {
      // A parse error: nothing more comes; the descriptor closes once the writes are done.
      job.abort()
      throw err
    }
    job.endOfContent()
  }

  /**
   * Copies a lent piece into slabs and queues its writes; a promise only when it must wait
   * for a slab (the piece stays valid meanwhile: the parser is not asked for more).
   */
  #copy(job: Job, piece: Piece): Promise<void> | undefined {
    const ring = (this.#ring ??= new SlabRing())
    let { offset, length, position } = piece
    while (length > 0) {
      const slab = ring.room()
      if (slab === null) {
        const rest: Piece = { buf: piece.buf, offset, length, position }
        return this.#wait().then(() => this.#copy(job, rest))
      }
      const n = Math.min(length, slab.buf.length - slab.used)
      piece.buf.copy(slab.buf, slab.used, offset, offset + n)
      job.start({ buf: slab.buf, offset: slab.used, length: n, position, slab })
      slab.used += n
      offset += n
      position += n
      length -= n
    }
    return undefined
  }

  async #overBudget(): Promise<void> {
    while (this.#bytes > MAX_PENDING_BYTES) await this.#wait()
  }

  #wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  #wake(): void {
    const waiters = this.#waiters
    if (waiters.length === 0) return
    this.#waiters = []
    for (const w of waiters) w()
  }

  /** A piece was queued ({@link Job} calls it). */
  queued(length: number): void {
    this.#bytes += length
  }

  /** A piece was written, or failed. */
  written(length: number): void {
    this.#bytes -= length
    this.#wake()
  }

  /** A file is finished: closed, with its failure if any. */
  finished(seq: number, failure: unknown, failed: boolean): void {
    this.#open--
    this.#pending.delete(seq)
    if (failed && seq < this.#failedAt) {
      this.#failedAt = seq
      this.#failure = failure
    }
    this.#wake()
  }

  /**
   * Throws a deferred failure once it is known to be the earliest (in tar order): when no
   * file that came before it is still pending. Several files may fail for one cause (a full
   * disk); the first member is the one to name.
   */
  check(): void {
    if (this.#failedAt === Infinity) return
    for (const seq of this.#pending) if (seq < this.#failedAt) return
    throw this.#failure
  }

  /** Waits for every deferred write, then throws the earliest failure, if any. */
  async drain(): Promise<void> {
    while (this.#open > 0) await this.#wait()
    this.check()
  }
}

/** One file's deferred writes; completes (attributes, close) when the last one is done. */
class Job {
  #outstanding = 0
  #readDone = false
  #aborted = false
  #failed = false
  #error: unknown = undefined

  constructor(
    readonly writer: FileWriter,
    readonly seq: number,
    readonly fd: number,
    readonly sparse: SparseLayout | undefined,
    readonly finish: () => void,
    readonly wrap: (err: unknown) => unknown,
  ) {}

  start(piece: Piece): void {
    this.writer.queued(piece.length)
    this.#outstanding++
    if (piece.slab !== undefined) piece.slab.pending++
    pwriteAll(this.fd, piece, (err) => {
      if (err !== null) this.#fail(err)
      if (piece.slab !== undefined) piece.slab.pending--
      this.writer.written(piece.length)
      this.#settle()
    })
  }

  #fail(err: unknown): void {
    if (this.#failed) return
    this.#failed = true
    this.#error = err
  }

  /** One write is done. */
  #settle(): void {
    this.#outstanding--
    if (this.#readDone && this.#outstanding === 0) this.#complete()
  }

  endOfContent(): void {
    this.#readDone = true
    if (this.#outstanding === 0) this.#complete()
  }

  /** The content could not be read: close after the writes, report nothing (the caller throws). */
  abort(): void {
    this.#aborted = true
    this.endOfContent()
  }

  #complete(): void {
    try {
      if (!this.#failed && !this.#aborted) {
        if (this.sparse !== undefined) fs.ftruncateSync(this.fd, this.sparse.realSize)
        this.finish()
      }
    } catch (err) {
      this.#fail(err)
    } finally {
      fs.closeSync(this.fd)
    }
    const failed = this.#failed && !this.#aborted
    this.writer.finished(this.seq, failed ? this.wrap(this.#error) : undefined, failed)
  }
}

/**
 * A small file (or an empty one, `content` null): written, finished and closed right here,
 * without a promise when its whole content is at hand (`whole`). Errors propagate as they
 * are (the applier names the member).
 */
function writeNow(
  fd: number,
  content: AsyncIterable<Buffer> | null,
  finish: () => void,
  whole: (() => Buffer | undefined) | undefined,
): Promise<void> | undefined {
  const now = content === null ? null : whole?.()
  if (now !== undefined) {
    try {
      if (now !== null) writeAllSync(fd, now)
      finish()
    } finally {
      fs.closeSync(fd)
    }
    return undefined
  }
  return (async () => {
    try {
      for await (const buf of content!) writeAllSync(fd, buf)
      finish()
    } finally {
      fs.closeSync(fd)
    }
  })()
}

function writeAllSync(fd: number, buf: Buffer): void {
  for (let offset = 0; offset < buf.length; ) offset += fs.writeSync(fd, buf, offset, buf.length - offset)
}

type Queue = (piece: Piece) => Promise<void> | undefined

async function readDense(content: AsyncIterable<Buffer>, queue: Queue): Promise<void> {
  let position = 0
  for await (const buf of content) {
    const wait = queue({ buf, offset: 0, length: buf.length, position })
    if (wait !== undefined) await wait
    position += buf.length
  }
}

/** Sparse content comes as the data extents, in map order; each goes to its offset. */
async function readSparse(content: AsyncIterable<Buffer>, sparse: SparseLayout, queue: Queue): Promise<void> {
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
      const wait = queue({ buf, offset, length, position })
      if (wait !== undefined) await wait
      offset += length
      position += length
      left -= length
    }
  }
}

/** pwrite(2) on the thread pool until the piece is written (short writes are legal). */
function pwriteAll(fd: number, piece: Piece, done: (err: Error | null) => void): void {
  const step = (offset: number, length: number, position: number): void => {
    fs.write(fd, piece.buf, offset, length, position, (err, n) => {
      if (err) done(err)
      else if (n === 0) done(Object.assign(new Error('write made no progress'), { code: 'EIO' }))
      else if (n < length) step(offset + n, length - n, position + n)
      else done(null)
    })
  }
  step(piece.offset, piece.length, piece.position)
}
