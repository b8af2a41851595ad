/**
 * Reading a file as chunks from a small pool of reused buffers, for inputs read once from
 * end to end (a layer tar being applied or registered).
 *
 * Why: a `fs.createReadStream` allocates a fresh buffer for every chunk, and V8 collects
 * such external memory only after tens of MiB have piled up: 30–35 MiB of a 100 MiB peak RSS
 * were chunks already parsed and dropped. Reusing a few buffers keeps that flat; it needs
 * the consumer to say when it is done with a chunk, hence the lease below.
 *
 * Double buffering: as soon as a chunk is handed out, the read of the next one starts (on
 * the thread pool) into a free buffer, so reading overlaps the consumer's work on this one.
 */
import fs from 'node:fs'
import { ChunkPool } from './chunk-pool.js'
import type { PoolSlot } from './chunk-pool.js'

/** Default bytes per chunk: big enough to amortise a read, small enough to stay in cache. */
export const DEFAULT_CHUNK_SIZE = 256 << 10
/** Default buffers kept for reuse: one lent, one being read, and slack for holds. */
export const DEFAULT_POOL_BUFFERS = 4
/** The unit a small file's buffer is rounded up to. */
const PAGE = 4096
/** What a released buffer is filled with when `poison` is set. */
export const POISON_BYTE = 0xdb

/**
 * The lease on chunks a recycling source hands out. A chunk is yielded with one hold, owned
 * by whoever iterates the source; its buffer is reused only once every hold was released.
 * A consumer that never calls {@link release} is always correct: its chunks are simply never
 * reused (they are garbage-collected like any stream's).
 *
 * Both methods take the chunk or any view of it (a `subarray`); a view of memory this
 * source did not hand out is ignored, so a consumer may release whatever it got.
 */
export interface ChunkRecycler {
  /** Adds a hold: the chunk stays unchanged until a matching {@link release}. */
  hold(chunk: Uint8Array): void
  /**
   * Drops a hold. After the last one the buffer may be overwritten at once (by the read of a
   * later chunk): no view of it may be used any more.
   */
  release(chunk: Uint8Array): void
}

/** A source of chunks whose buffers are reused once released. Iterate it once. */
export interface RecyclingSource extends AsyncIterable<Buffer> {
  readonly recycler: ChunkRecycler
}

/** What {@link readFileChunks} returns: the source, iterable once, and its buffer count. */
export interface FileChunks extends AsyncIterableIterator<Buffer> {
  readonly recycler: ChunkRecycler
  /** Buffers allocated so far (pooled or not): a count that stays flat means reuse. */
  readonly buffersAllocated: number
}

/** Options of {@link readFileChunks}. */
export interface ReadFileChunksOptions {
  /** Bytes per chunk (the last one may be shorter). Default {@link DEFAULT_CHUNK_SIZE}. */
  readonly chunkSize?: number
  /**
   * Buffers kept for reuse, at least 2. Default {@link DEFAULT_POOL_BUFFERS}. When all are
   * held, a fresh buffer is allocated for the next chunk and dropped after its release.
   */
  readonly buffers?: number
  /**
   * A test aid: fill a buffer with {@link POISON_BYTE} the moment its last hold is released,
   * so that any later use of a view of it reads garbage instead of passing by luck.
   */
  readonly poison?: boolean
}

/**
 * Reads the file at `path` from start to end as a {@link RecyclingSource}.
 *
 * Contract: each chunk is a view of a pooled buffer and comes with one hold. A consumer that
 * knows the lease releases it (`source.recycler.release(chunk)`) when it no longer needs the
 * bytes, at the latest before it asks for the next chunk if it wants reading to stay double
 * buffered; from then on the buffer may be overwritten at any moment. A consumer that does
 * not know the lease releases nothing and gets what a stream gives: chunks that never
 * change. Reusing happens only inside this source; no other code needs to know.
 *
 * The file is opened at the first `next()` (an error such as ENOENT is thrown from there)
 * and closed at the end of the file, on an error, or by `return()` (breaking out of a
 * `for await`), after any read in flight has settled.
 */
export function readFileChunks(path: string | Buffer, options: ReadFileChunksOptions = {}): FileChunks {
  return new FileChunkReader(path, options)
}

interface ReadDone {
  readonly slot: PoolSlot
  readonly n: number
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined })

/** The end of a file found by a short read: no buffer behind it, nothing to recycle. */
const EMPTY_SLOT: PoolSlot = Object.freeze({ buf: Buffer.alloc(0), pooled: false, holds: 0 })

class FileChunkReader implements FileChunks {
  readonly recycler: ChunkRecycler
  readonly #path: string | Buffer
  readonly #chunkSize: number
  readonly #pool: ChunkPool
  #fd: number | null = null
  #position = 0
  #ahead: Promise<ReadDone> | null = null
  #ended = false

  constructor(path: string | Buffer, options: ReadFileChunksOptions) {
    const size = options.chunkSize ?? DEFAULT_CHUNK_SIZE
    const buffers = options.buffers ?? DEFAULT_POOL_BUFFERS
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`chunkSize must be a positive integer, got ${size}`)
    if (!Number.isSafeInteger(buffers) || buffers < 2) throw new RangeError(`buffers must be an integer of at least 2, got ${buffers}`)
    this.#path = path
    this.#chunkSize = size
    this.#pool = new ChunkPool(size, buffers, options.poison === true ? POISON_BYTE : undefined)
    const pool = this.#pool
    this.recycler = { hold: (c) => pool.hold(c), release: (c) => pool.release(c) }
  }

  get buffersAllocated(): number {
    return this.#pool.allocated
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Buffer> {
    return this
  }

  async next(): Promise<IteratorResult<Buffer, undefined>> {
    if (this.#ended) return DONE
    try {
      if (this.#fd === null) {
        this.#fd = await open(this.#path)
        // A file smaller than a chunk gets a buffer just larger than itself: the one read is
        // then short, which ends the file (a small layer costs kilobytes, not a chunk).
        const size = await fileSize(this.#fd)
        if (size < this.#chunkSize) this.#pool.bufferSize = Math.min(this.#chunkSize, (Math.floor(size / PAGE) + 1) * PAGE)
      }
      const { slot, n } = await (this.#ahead ?? this.#read())
      this.#ahead = null
      if (n === 0) {
        this.#pool.recycle(slot)
        await this.#end()
        return DONE
      }
      const chunk = this.#pool.lend(slot, n)
      if (n < slot.buf.length) {
        // A short read of a regular file is its end: the next `next()` needs no buffer (a
        // small file, e.g. a layer of a long chain, then costs one buffer, not two).
        this.#ahead = Promise.resolve({ slot: EMPTY_SLOT, n: 0 })
      } else {
        // Double buffering: the next read runs while the consumer works on this chunk.
        this.#ahead = this.#read()
        // Seen by the next `next()` or by `return()`; never unhandled meanwhile.
        this.#ahead.catch(() => undefined)
      }
      return { done: false, value: chunk }
    } catch (err) {
      await this.#end()
      throw err
    }
  }

  async return(): Promise<IteratorResult<Buffer, undefined>> {
    await this.#end()
    return DONE
  }

  /** Reads the next chunk into a free buffer (or a new one). */
  #read(): Promise<ReadDone> {
    const slot = this.#pool.take()
    const fd = this.#fd!
    const position = this.#position
    this.#position += slot.buf.length
    return new Promise((resolve, reject) => {
      fs.read(fd, slot.buf, 0, slot.buf.length, position, (err, n) => {
        if (err !== null) {
          this.#pool.recycle(slot)
          reject(err)
        } else resolve({ slot, n })
      })
    })
  }

  /** Closes the file once no read is in flight (its descriptor must not be reused under it). */
  async #end(): Promise<void> {
    if (this.#ended) return
    this.#ended = true
    const ahead = this.#ahead
    this.#ahead = null
    if (ahead !== null) await ahead.then((r) => this.#pool.recycle(r.slot), () => undefined)
    this.#pool.close()
    const fd = this.#fd
    this.#fd = null
    if (fd !== null) await new Promise<void>((resolve) => fs.close(fd, () => resolve()))
  }
}

function fileSize(fd: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.fstat(fd, (err, st) => (err !== null ? reject(err) : resolve(st.size)))
  })
}

function open(path: string | Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(path, 'r', (err, fd) => (err !== null ? reject(err) : resolve(fd)))
  })
}
