/**
 * A pull-based reader over an async iterable of chunks, for the disassembler. It hands out
 * views of the source's chunks (no copy) for content, and copies only when a small structure
 * (a header block, an extension header) straddles two chunks. It never reads ahead more than
 * one chunk, so the source's own backpressure is the disassembler's.
 *
 * The source must not change a chunk after yielding it (Node streams never do).
 */

const EMPTY = Buffer.alloc(0)

/** Sequential reads over `AsyncIterable<Uint8Array>`, tracking the absolute offset. */
export class ByteReader {
  readonly #it: AsyncIterator<Uint8Array>
  #chunk: Buffer = EMPTY
  #pos = 0
  /** Offset of `#chunk[0]` in the whole input. */
  #base = 0
  #eof = false
  #closed = false

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]()
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
    while (!this.#eof) {
      const r = await this.#it.next()
      if (r.done === true) {
        this.#eof = true
        break
      }
      const v = r.value
      if (v.length === 0) continue
      this.#base += this.#chunk.length
      this.#chunk = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
      this.#pos = 0
      return true
    }
    this.#base += this.#chunk.length
    this.#chunk = EMPTY
    this.#pos = 0
    return false
  }

  /** A view of the next `n` bytes of the current chunk; `n` must not exceed `ready`. */
  take(n: number): Buffer {
    const start = this.#pos
    this.#pos += n
    return this.#chunk.subarray(start, this.#pos)
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
    await this.#it.return?.()
  }
}
