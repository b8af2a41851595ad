/**
 * Fixed-size output chunks for the export: headers, small files' contents and padding are
 * copied (or read) into one chunk until it is full, instead of being handed on as one small
 * Buffer each. A layer of 50,000 small files is then ~400 pushes of 1 MiB rather than
 * 150,000 pushes of a few hundred bytes, each of which costs the stream machinery and the
 * consumer far more than the copy.
 *
 * Members may straddle chunks: a tar reader does not care where chunks end. Every chunk but
 * the last is exactly full, and every byte of a chunk was written (chunks come from
 * `allocUnsafe`, so nothing uninitialised may leak into a layer).
 */
import fs from 'node:fs'

/** A region of the current chunk to read into: `buffer[offset, offset + length)`. */
export interface ChunkSpace {
  readonly buffer: Buffer
  readonly offset: number
  readonly length: number
}

/** Collects bytes into chunks of `size` bytes; full chunks wait in {@link take} for the reader. */
export class ChunkWriter {
  readonly #size: number
  /** The chunk being filled, or null before the first byte after a full one (allocated lazily). */
  #buf: Buffer | null = null
  #pos = 0
  #ready: Buffer[] = []

  constructor(size: number) {
    this.#size = size
  }

  /** True when full chunks wait to be taken. */
  get hasReady(): boolean {
    return this.#ready.length > 0
  }

  /** The full chunks so far (the caller hands them on); the writer forgets them. */
  take(): Buffer[] {
    const out = this.#ready
    this.#ready = []
    return out
  }

  /** Ends the current chunk where it is, full or not, so that {@link take} returns it too. */
  flush(): void {
    if (this.#buf !== null && this.#pos > 0) this.#ready.push(this.#pos === this.#size ? this.#buf : this.#buf.subarray(0, this.#pos))
    this.#buf = null
    this.#pos = 0
  }

  /** Appends a copy of `bytes`. */
  write(bytes: Buffer): void {
    for (let done = 0; done < bytes.length; ) {
      const space = this.space()
      const n = bytes.copy(space.buffer, space.offset, done, done + Math.min(space.length, bytes.length - done))
      this.advance(n)
      done += n
    }
  }

  /** Appends `count` zero bytes. */
  zeros(count: number): void {
    for (let left = count; left > 0; ) {
      const space = this.space()
      const n = Math.min(space.length, left)
      space.buffer.fill(0, space.offset, space.offset + n)
      this.advance(n)
      left -= n
    }
  }

  /**
   * Appends exactly `count` bytes read synchronously from `fd` at its current position.
   * Throws the read's error, or a plain Error when the file ends first.
   */
  readSync(fd: number, count: number): void {
    for (let left = count; left > 0; ) {
      const space = this.space()
      const n = fs.readSync(fd, space.buffer, space.offset, Math.min(space.length, left), null)
      if (n === 0) throw new Error(`file ended ${left} bytes before its size ${count}`)
      this.advance(n)
      left -= n
    }
  }

  /** The free room of the current chunk (never empty). Write into it, then {@link advance}. */
  space(): ChunkSpace {
    if (this.#buf === null) this.#buf = Buffer.allocUnsafe(this.#size)
    return { buffer: this.#buf, offset: this.#pos, length: this.#size - this.#pos }
  }

  /** Marks `count` bytes of the last {@link space} as written. */
  advance(count: number): void {
    this.#pos += count
    if (this.#pos === this.#size) this.flush()
  }
}
