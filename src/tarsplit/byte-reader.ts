/**
 * A pull-based reader over an async iterable of chunks, for the disassembler. It hands out
 * views of the source's chunks (no copy) for content, and copies only when a small structure
 * (a header block, an extension header) straddles two chunks. It never reads ahead more than
 * one chunk, so the source's own backpressure is the disassembler's.
 *
 * Chunk lifetime. Without a recycler, the source must not change a chunk after yielding it
 * (Node streams never do). With one (`io.readFileChunks` gives its source one), the reader
 * owns the hold each chunk comes with and releases it when it moves on to the next chunk,
 * *before* asking for it, so that the source can read into that buffer while the reader
 * waits: every view of the current chunk (`take`, `read`) is dead from the next `pull()` on.
 * A chunk of which a view was handed out for good (`escape`) is never released.
 */

const EMPTY = Buffer.alloc(0)

/**
 * The lease of a recycling source (structurally `io.ChunkRecycler`; tarsplit imports
 * nothing): each chunk is yielded with one hold; the buffer is reused once all are released.
 */
export interface ChunkRecycler {
  hold(chunk: Uint8Array): void
  release(chunk: Uint8Array): void
}

/** Sequential reads over `AsyncIterable<Uint8Array>`, tracking the absolute offset. */
export class ByteReader {
  readonly #it: AsyncIterator<Uint8Array>
  #chunk: Buffer = EMPTY
  #pos = 0
  /** Offset of `#chunk[0]` in the whole input. */
  #base = 0
  #eof = false
  #closed = false
  readonly #recycler: ChunkRecycler | null
  /** The current chunk was handed out for good: never release it. */
  #escaped = false

  constructor(source: AsyncIterable<Uint8Array>, recycler?: ChunkRecycler) {
    this.#it = source[Symbol.asyncIterator]()
    this.#recycler = recycler ?? null
  }

  /**
   * Marks the current chunk as handed out for good (a view of it went to a consumer that may
   * keep it): it will not be released, so its buffer is never reused.
   */
  escape(): void {
    this.#escaped = true
  }

  /** Bytes consumed so far: the archive offset of the next byte. */
  get offset(): number {
    return this.#base + this.#pos
  }

  /** Bytes available now without awaiting. */
  get ready(): number {
    return this.#chunk.length - this.#pos
  }

  /**
   * Moves to the next non-empty chunk. Call only when `ready` is 0.
   *
   * @returns false at the end of the input
   */
  async pull(): Promise<boolean> {
    this.#base += this.#chunk.length
    this.#letGo()
    while (!this.#eof) {
      const r = await this.#it.next()
      if (r.done === true) {
        this.#eof = true
        break
      }
      const v = r.value
      if (v.length === 0) {
        this.#recycler?.release(v)
        continue
      }
      this.#chunk = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
      return true
    }
    return false
  }

  /** Releases the current chunk (unless escaped) and forgets it. */
  #letGo(): void {
    const chunk = this.#chunk
    this.#chunk = EMPTY
    this.#pos = 0
    if (chunk !== EMPTY && !this.#escaped) this.#recycler?.release(chunk)
    this.#escaped = false
  }

  /** A view of the next `n` bytes of the current chunk; `n` must not exceed `ready`. */
  take(n: number): Buffer {
    const start = this.#pos
    this.#pos += n
    return this.#chunk.subarray(start, this.#pos)
  }

  /**
   * A view of `n` bytes of the current chunk from `skip` bytes ahead, without consuming
   * them; `skip + n` must not exceed `ready`.
   */
  peek(skip: number, n: number): Buffer {
    const start = this.#pos + skip
    return this.#chunk.subarray(start, start + n)
  }

  /**
   * The next `n` bytes: a view when they lie in one chunk, else a copy. Shorter only when the
   * input ends first.
   */
  async read(n: number): Promise<Buffer> {
    if (this.ready >= n) return this.take(n)
    if (this.ready === 0 && !(await this.pull())) return EMPTY
    if (this.ready >= n) return this.take(n)
    const out = Buffer.allocUnsafe(n)
    let got = 0
    while (got < n) {
      if (this.ready === 0 && !(await this.pull())) break
      const k = Math.min(this.ready, n - got)
      this.#chunk.copy(out, got, this.#pos, this.#pos + k)
      this.#pos += k
      got += k
    }
    return got === n ? out : out.subarray(0, got)
  }

  /** Releases the source (its `return()`), e.g. closing a file stream. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#eof = true
    this.#base += this.#pos
    this.#letGo()
    await this.#it.return?.()
  }
}
