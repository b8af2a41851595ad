/**
 * The disassembler's output side: the raw bytes pending for the next segment entry, and the
 * entries sent to the sink. Without a sink it keeps and sends nothing, so that a disassembly
 * no one wants metadata of (an apply) copies no bytes at all.
 */
import { FILE_TYPE, SEGMENT_TYPE, type EntryInput, type EntrySink } from './entry.js'
import type { MemberPlan } from './member-plan.js'

/**
 * Bytes after the end-of-archive marker are cut into segments of exactly this size, as Go
 * reading a file does; bounded segments fixed CVE-2017-14992 (a tar followed by GiBs of
 * zeros). Non-file data is flushed at the same size.
 */
export const TRAILING_CHUNK_SIZE = 1 << 20

/** The pending segment's buffer starts this big; one grown past it is dropped at a flush. */
const SEGMENT_BUFFER_SIZE = 16 << 10

/** Collects segment bytes and sends entries, in stream order, to a sink (if any). */
export class EntryEmitter {
  readonly #sink: EntrySink | null
  /** False: nothing wants entries; none are built (no CRC, no segments). */
  readonly enabled: boolean
  /**
   * Raw bytes waiting to become the next segment entry, copied in (a chunk may be reused
   * before the segment is complete), and copied out when emitted.
   */
  #seg: Buffer = Buffer.allocUnsafe(SEGMENT_BUFFER_SIZE)
  #segLen = 0

  constructor(sink: EntrySink | undefined) {
    this.#sink = sink ?? null
    this.enabled = this.#sink !== null
  }

  /** Bytes pending for the next segment (always 0 without a sink). */
  get pending(): number {
    return this.#segLen
  }

  /** Adds a copy of `bytes` to the pending segment. */
  push(bytes: Buffer): void {
    if (bytes.length === 0 || this.#sink === null) return
    const need = this.#segLen + bytes.length
    if (need > this.#seg.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, 2 * this.#seg.length))
      this.#seg.copy(grown, 0, 0, this.#segLen)
      this.#seg = grown
    }
    bytes.copy(this.#seg, this.#segLen)
    this.#segLen = need
  }

  /** Sends `entry`, awaiting the sink's backpressure. */
  async add(entry: EntryInput): Promise<void> {
    const pending = this.#sink?.add(entry)
    if (pending !== undefined) await pending
  }

  /** Emits the pending bytes as one segment: a copy of its own, which the sink may keep. */
  async flush(): Promise<void> {
    if (this.#segLen === 0) return
    const payload = Buffer.from(this.#seg.subarray(0, this.#segLen))
    this.#segLen = 0
    if (this.#seg.length > SEGMENT_BUFFER_SIZE) this.#seg = Buffer.allocUnsafe(SEGMENT_BUFFER_SIZE)
    await this.add({ type: SEGMENT_TYPE, payload })
  }

  /** Sends the F entry of `plan`'s member; `payload` is its CRC (null for size 0). */
  async addFile(plan: MemberPlan, payload: Buffer | null): Promise<void> {
    if (this.#sink === null) return
    // Two literals rather than a spread of a conditional one, which V8 builds the slow way.
    const { entryName: name, entrySize: size, extents } = plan
    await this.add(
      extents !== null
        ? { type: FILE_TYPE, name, size, payload, sparse: extents }
        : { type: FILE_TYPE, name, size, payload },
    )
  }
}
