/**
 * Copies of lent content for the deferred writes of file-writer.ts. Lent pieces (see
 * `disassemble`, "Chunk lifetime") die when the parser moves on, but a deferred pwrite reads
 * its buffer later, on the thread pool; so the writer copies each piece into a slab of its
 * own first. Slabs are filled in turn and reused once every write from them has completed,
 * so the copies cost a bounded, constant amount of memory (no garbage for V8 to lag behind
 * on), and the input's buffers go back to their source at once.
 *
 * Why a copy and not a hold on the input chunk: a hold keeps a whole input chunk alive for a
 * few bytes of it (the tail of a file), so the input pool would grow with the pending
 * writes, unbounded in chunks; a memcpy runs at several GB/s, far above what the kernel's
 * write path takes here.
 */

/** Bytes per slab. */
export const SLAB_SIZE = 1 << 20
/** Slabs at most: the copies waiting to be written, in bytes, are at most this many MiB. */
export const SLAB_COUNT = 4

/** One slab: `used` bytes copied in, `pending` writes from it not completed. */
export interface Slab {
  readonly buf: Buffer
  used: number
  pending: number
}

/** Slabs used in turn, allocated as needed up to {@link SLAB_COUNT}. */
export class SlabRing {
  readonly #slabs: Slab[] = []
  #cur = -1

  /**
   * The slab to copy into next (with room after `used`), or null when the next one in turn
   * still has writes pending: wait for a write to complete, then ask again.
   */
  room(): Slab | null {
    const cur = this.#slabs[this.#cur]
    if (cur !== undefined && cur.used < cur.buf.length) return cur
    const next = (this.#cur + 1) % SLAB_COUNT
    let slab = this.#slabs[next]
    if (slab === undefined) {
      // Slabs are taken in order, so the array never has holes.
      slab = { buf: Buffer.allocUnsafeSlow(SLAB_SIZE), used: 0, pending: 0 }
      this.#slabs.push(slab)
    } else if (slab.pending > 0) {
      return null
    }
    slab.used = 0
    this.#cur = next
    return slab
  }
}
