/**
 * The streaming tar disassembler: reads a tar once, hands each member to the caller, and sends
 * tar-split entries to a sink exactly as Go's `asm.NewInputTarStream` does, so that the
 * metadata plus the members' contents reproduce the input byte for byte.
 *
 * States and moves. The parser is pulled by the caller's `next()`:
 *
 *   member done? ── drain the unread content, emit its F entry (file members)
 *        │
 *   header group ── read the previous member's padding, then blocks into the pending segment:
 *        │          `x` → keep its records, loop · `L`/`K` → keep the long name, loop ·
 *        │          `g` → emit S + F and return it as a pseudo-member ·
 *        │          zero block → end of archive (a second zero block, or EOF, must follow) ·
 *        │          EOF at a block edge → end of archive · anything else → the member
 *   member ──────── sparse map blocks (old GNU extension blocks, the PAX 1.0 map) join the
 *        │          pending segment; emit S; emit F at once unless content must be CRC'd
 *   content ─────── the caller reads the data section; file members are CRC'd (holes via
 *        │          `updateZeros`); other data (dumpdirs, labels) goes to the pending segment
 *   end ─────────── emit the pending segment (last padding + end blocks), then every byte left
 *                   in the input as 1 MiB segments, then stop.
 *
 * The header group is read by `HeaderGroupReader` (header-group.ts), the content by
 * `ContentReader` (content-reader.ts), over the input chunks of a `ByteReader`
 * (byte-reader.ts); entries leave through an `EntryEmitter` (entry-emitter.ts). This file
 * keeps the public API and the pull loop that moves between the states.
 *
 * Where we deliberately differ from Go (whose output for these is not replayable): truncation
 * anywhere, even inside padding, is an error; sparse members carry their extents; header-only
 * types and non-file data get F entries of size 0, their bytes (if any) in segments.
 */
import createDebug from 'debug'
import { ByteReader, type ChunkRecycler } from './byte-reader.js'
import { ContentReader, DONE } from './content-reader.js'
import { SEGMENT_TYPE, type EntrySink } from './entry.js'
import { EntryEmitter, TRAILING_CHUNK_SIZE } from './entry-emitter.js'
import { BLOCK_SIZE } from './header.js'
import { HeaderGroupReader } from './header-group.js'
import type { TarMember } from './tar-header.js'

const log = createDebug('layerstore:tarsplit')

/** Go's limit on PAX headers and GNU long names (`maxSpecialFileSize`). */
export const DEFAULT_MAX_HEADER_SIZE = 1 << 20

export { TRAILING_CHUNK_SIZE } from './entry-emitter.js'
export type { ChunkRecycler } from './byte-reader.js'

/**
 * The chunk recycler of a source, if it has one (`io.readFileChunks` gives its sources a
 * `recycler`); undefined for anything else (a Node stream, a generator).
 */
export function recyclerOf(source: unknown): ChunkRecycler | undefined {
  const r = (source as { recycler?: Partial<ChunkRecycler> } | null)?.recycler
  return typeof r?.hold === 'function' && typeof r.release === 'function' ? (r as ChunkRecycler) : undefined
}

/** Options of {@link disassemble}. */
export interface DisassembleOptions {
  /**
   * Receives the entries in stream order; a promise from `add` is awaited (backpressure).
   * Omit it when no one wants the metadata (an apply): then no entry is built at all, so no
   * file content is checksummed and no segment is kept, which is much cheaper.
   */
  readonly sink?: EntrySink
  /**
   * Largest PAX header, GNU long name/link, or sparse map accepted, in bytes. Default 1 MiB,
   * Go's limit; larger ones fail with `HeaderTooLargeError`.
   */
  readonly maxHeaderSize?: number
  /**
   * End with one more, empty, segment after the bytes that follow the end-of-archive marker,
   * as Go's tar-split up to 0.11 does (Debian's `tar-split` CLI, Docker ≤ 20.10). Default
   * false: 0.12's output (moby today). Readers of either version accept both.
   */
  readonly emptyFinalSegment?: boolean
  /**
   * The lease under which the source's chunks are lent (see "Chunk lifetime" below). Default:
   * the source's own `recycler` property, if it has one ({@link recyclerOf}). Pass it when
   * the source is a pass-through of a recycling source (a tap that hashes each chunk before
   * yielding it unchanged), and only then.
   */
  readonly recycler?: ChunkRecycler
}

/**
 * Disassembles a tar stream into tar-split entries, member by member.
 *
 * Iterate the result to drive the parse: each step reads the next member's headers, sends
 * the segment entry before it to the sink and yields the member. `member.content` yields the
 * bytes the archive stores for it (views of the input chunks, not copies); content not read
 * is drained by the next step. Do not call `next()` while a content read is pending. The
 * member's file entry is sent once its content has been read. Iteration finishes only after
 * the input was read to its end and every entry was sent (and each `add` settled), so the
 * sink is complete.
 *
 * Chunk lifetime. With a plain source, every piece stays valid for good (the chunks never
 * change). With a recycling source (`io.readFileChunks`, or the `recycler` option) the
 * disassembler releases each chunk as it moves past it, and the source then reuses the
 * buffer, so two ways to read content are offered:
 * - `member.content`: pieces stay valid for good; the chunks they are views of are never
 *   released (not reused), so a consumer that knows nothing of recycling stays correct;
 * - `member.lent` (the same bytes): a piece is valid only until the next request to this
 *   member's content or to the member iterator (the chunk may be overwritten from then on);
 *   a consumer that writes each piece before asking for the next one, or copies what it
 *   keeps, uses it and lets the source reuse its buffers;
 * - `member.lentNow()`: the same bytes as `lent`, in one piece and without a promise, when
 *   the whole content is in the chunk at hand (else undefined: read one of the above).
 * Headers, names, link names, PAX values and sink entries are copies: they outlive chunks.
 *
 * Memory stays flat: content is never buffered; only extension headers (≤ `maxHeaderSize`
 * each), sparse maps (same bound) and segments (≤ 1 MiB of trailing or non-file data) are,
 * as copies.
 *
 * Errors are thrown from `next()` (and from a content read): `InvalidHeaderError`,
 * `TruncatedArchiveError`, `HeaderTooLargeError`, or whatever the sink throws (the JSON
 * packer's `DuplicatePathError`). After an error the source is released and every later call
 * throws the same error. Breaking out of the loop early releases the source too, leaving the
 * sink incomplete.
 *
 * @param source the tar bytes, e.g. `io.readFileChunks(path)` or a `fs.createReadStream`;
 *   chunks must stay unchanged after they are yielded unless released under a recycler
 */
export function disassemble(
  source: AsyncIterable<Uint8Array>,
  options: DisassembleOptions,
): AsyncIterableIterator<TarMember> {
  return new Disassembler(source, options)
}

class Disassembler implements AsyncIterableIterator<TarMember> {
  readonly #reader: ByteReader
  readonly #out: EntryEmitter
  readonly #group: HeaderGroupReader
  readonly #content: ContentReader
  readonly #emptyFinalSegment: boolean
  #failed: unknown = null
  #finished = false
  #members = 0

  constructor(source: AsyncIterable<Uint8Array>, options: DisassembleOptions) {
    const max = options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE
    if (!Number.isSafeInteger(max) || max < BLOCK_SIZE) {
      throw new RangeError(`maxHeaderSize must be an integer of at least ${BLOCK_SIZE}, got ${max}`)
    }
    const recycler = options.recycler ?? recyclerOf(source)
    this.#reader = new ByteReader(source, recycler)
    this.#out = new EntryEmitter(options.sink)
    this.#group = new HeaderGroupReader(this.#reader, this.#out, max)
    this.#content = new ContentReader(this.#reader, this.#out, recycler !== undefined, {
      failed: () => this.#failed,
      fail: (err) => this.#fail(err),
    })
    this.#emptyFinalSegment = options.emptyFinalSegment === true
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<TarMember> {
    return this
  }

  async next(): Promise<IteratorResult<TarMember, undefined>> {
    if (this.#failed !== null) throw this.#failed
    if (this.#finished) return DONE
    try {
      const plain = this.#nextPlain()
      if (plain !== null) {
        this.#members++
        return { done: false, value: plain }
      }
      if (this.#content.active) await this.#content.end()
      const plan = await this.#group.next()
      if (plan !== null) {
        await this.#out.flush()
        // Members whose entry does not depend on their content (a `g` pseudo-member too) get
        // it now; `data` bytes then flow into the next segment after it, where Go's reader
        // would put skipped bytes.
        if (plan.kind !== 'file') await this.#out.addFile(plan, null)
        this.#members++
        return { done: false, value: this.#content.open(plan) }
      }
      await this.#endArchive()
      this.#finished = true
      log('disassembled %d members, %d bytes', this.#members, this.#reader.offset)
      return DONE
    } catch (err) {
      throw await this.#fail(err)
    }
  }

  async return(): Promise<IteratorResult<TarMember, undefined>> {
    if (!this.#finished && this.#failed === null) {
      this.#finished = true
      this.#content.drop()
      await this.#reader.close()
    }
    return DONE
  }

  /** Makes `err` sticky and releases the source; returns the error to throw. */
  async #fail(err: unknown): Promise<unknown> {
    if (this.#failed === null) {
      this.#failed = err
      this.#content.drop()
      await this.#reader.close().catch(() => undefined)
    }
    return this.#failed
  }

  /**
   * The common case without a promise in sight: nothing wants entries, the rest of the
   * current member's content (if any) is in the chunk at hand, and so is the next header
   * block, a plain one (no extension header before it, not sparse, not the end). Null when
   * any of that does not hold, having consumed nothing the general path would not: it then
   * goes on from exactly here. Each async step of the general path costs a promise and a
   * trip through the microtask queue, and a layer of small files has ~10 of them per member.
   */
  #nextPlain(): TarMember | null {
    if (this.#out.enabled || !this.#content.skipNow()) return null
    const plan = this.#group.plainNow()
    return plan === null ? null : this.#content.open(plan)
  }

  /**
   * Emits the end segment (last padding and end-of-archive blocks), then every remaining
   * input byte in segments of exactly 1 MiB (the last one shorter), as Go does with a file.
   */
  async #endArchive(): Promise<void> {
    const out = this.#out
    await out.flush()
    const r = this.#reader
    for (;;) {
      if (r.ready === 0 && !(await r.pull())) break
      out.push(r.take(Math.min(r.ready, TRAILING_CHUNK_SIZE - out.pending)))
      if (out.pending === TRAILING_CHUNK_SIZE) await out.flush()
    }
    await out.flush()
    if (this.#emptyFinalSegment) await out.add({ type: SEGMENT_TYPE, payload: Buffer.alloc(0) })
  }
}
