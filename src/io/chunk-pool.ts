/**
 * The buffers behind a recycling source (see `ChunkRecycler` in read-file-chunks.ts): up to
 * `max` of them are kept and reused once every hold on them is released; past that, a
 * buffer is allocated for one chunk and dropped after its release. A buffer is known by its
 * memory, so a consumer may hold or release any view of a chunk, and a view of memory the
 * pool did not hand out is ignored.
 */
import { ChunkLeaseError } from './errors.js'

/** What {@link ChunkPool.lend} hands out, or a buffer being filled. */
export interface PoolSlot {
  readonly buf: Buffer
  /** Kept in the pool after its release (false: allocated past the pool's size). */
  readonly pooled: boolean
  holds: number
}

/** See the file comment. */
export class ChunkPool {
  /** Bytes of each buffer made from now on (a source may lower it before its first take). */
  bufferSize: number
  readonly #max: number
  readonly #poison: number | undefined
  readonly #slots = new WeakMap<ArrayBufferLike, PoolSlot>()
  #free: PoolSlot[] = []
  #pooled = 0
  #allocated = 0
  #closed = false

  /** @param poison a byte to fill a buffer with at its release (a test aid), or undefined */
  constructor(bufferSize: number, max: number, poison?: number) {
    this.bufferSize = bufferSize
    this.#max = max
    this.#poison = poison
  }

  /** Buffers allocated so far (pooled or not): a count that stays flat means reuse. */
  get allocated(): number {
    return this.#allocated
  }

  /** A free buffer to fill, or a new one. */
  take(): PoolSlot {
    const free = this.#free.pop()
    if (free !== undefined) return free
    const pooled = this.#pooled < this.#max
    if (pooled) this.#pooled++
    this.#allocated++
    // Slow: a buffer of its own, never a slice of Node's shared pool, so that its memory
    // identifies it (and poisoning it touches nothing else).
    const slot: PoolSlot = { buf: Buffer.allocUnsafeSlow(this.bufferSize), pooled, holds: 0 }
    this.#slots.set(slot.buf.buffer, slot)
    return slot
  }

  /** Hands out the first `n` bytes of a filled buffer with one hold. */
  lend(slot: PoolSlot, n: number): Buffer {
    slot.holds = 1
    return n === slot.buf.length ? slot.buf : slot.buf.subarray(0, n)
  }

  /** A buffer no one holds: back to the pool, or dropped. */
  recycle(slot: PoolSlot): void {
    if (this.#poison !== undefined) slot.buf.fill(this.#poison)
    if (slot.pooled && !this.#closed) this.#free.push(slot)
    else this.#slots.delete(slot.buf.buffer)
  }

  hold(chunk: Uint8Array): void {
    const slot = this.#slots.get(chunk.buffer)
    if (slot === undefined) return
    if (slot.holds <= 0) throw new ChunkLeaseError('hold')
    slot.holds++
  }

  release(chunk: Uint8Array): void {
    const slot = this.#slots.get(chunk.buffer)
    if (slot === undefined) return
    if (slot.holds <= 0) throw new ChunkLeaseError('release')
    if (--slot.holds === 0) this.recycle(slot)
  }

  /** Keeps no buffer any more: the free ones go now, the lent ones at their release. */
  close(): void {
    this.#closed = true
    this.#free = []
  }
}
