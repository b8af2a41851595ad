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
 * Where we deliberately differ from Go (whose output for these is not replayable): truncation
 * anywhere, even inside padding, is an error; sparse members carry their extents; header-only
 * types and non-file data get F entries of size 0, their bytes (if any) in segments.
 */
import createDebug from 'debug'
import { ByteReader, type ChunkRecycler } from './byte-reader.js'
import { FILE_TYPE, SEGMENT_TYPE, type EntryInput, type EntrySink } from './entry.js'
import { HeaderTooLargeError, InvalidHeaderError, TruncatedArchiveError } from './errors.js'
import {
  BLOCK_SIZE,
  TYPE_GNU_LONGLINK,
  TYPE_GNU_LONGNAME,
  TYPE_GNU_SPARSE,
  TYPE_PAX_GLOBAL,
  TYPE_PAX_LOCAL,
  blockFormat,
  blockPadding,
  decodeHeader,
  isHeaderOnlyType,
  isZeroBlock,
  type RawHeader,
} from './header.js'
import {
  ContentCursor,
  planGlobal,
  planMember,
  resolveMember,
  type MemberBase,
  type MemberPlan,
} from './member-plan.js'
import { applyGlobalRecords, parsePaxRecords, type PaxRecords } from './pax.js'
import { parseSparseMap0x, readOldGnuSparseMap, readSparseMap1x0, type SparseLayout } from './sparse.js'
import type { TarMember } from './tar-header.js'

const log = createDebug('layerstore:tarsplit')

/** Go's limit on PAX headers and GNU long names (`maxSpecialFileSize`). */
export const DEFAULT_MAX_HEADER_SIZE = 1 << 20

/**
 * Bytes after the end-of-archive marker are cut into segments of exactly this size, as Go
 * reading a file does; bounded segments fixed CVE-2017-14992 (a tar followed by GiBs of
 * zeros). Non-file data is flushed at the same size.
 */
export const TRAILING_CHUNK_SIZE = 1 << 20

/** A header group's segment is split past this many times `maxHeaderSize` (see below). */
const GROUP_SPLIT_FACTOR = 8

/** The pending segment's buffer starts this big; one grown past it is dropped at a flush. */
const SEGMENT_BUFFER_SIZE = 16 << 10

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

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined })

class Disassembler implements AsyncIterableIterator<TarMember> {
  readonly #reader: ByteReader
  /** Null: nothing wants entries; none are built (no CRC, no segments). */
  readonly #sink: EntrySink | null
  readonly #maxHeaderSize: number
  readonly #emptyFinalSegment: boolean
  /** Content read through `member.content` must keep its chunk (see disassemble). */
  readonly #recycling: boolean
  /**
   * Raw bytes waiting to become the next segment entry, copied in (a chunk may be reused
   * before the segment is complete), and copied out when emitted.
   */
  #seg: Buffer = Buffer.allocUnsafe(SEGMENT_BUFFER_SIZE)
  #segLen = 0
  /** Padding owed after the last data section, read at the start of the next group. */
  #pad = 0
  #cur: ContentCursor | null = null
  #global: PaxRecords = new Map()
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
    this.#recycling = recycler !== undefined
    this.#sink = options.sink ?? null
    this.#maxHeaderSize = max
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
      if (this.#cur !== null) await this.#endMember(this.#cur)
      const member = await this.#nextMember()
      if (member !== null) {
        this.#members++
        return { done: false, value: member }
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
      this.#cur = null
      await this.#reader.close()
    }
    return DONE
  }

  /** Makes `err` sticky and releases the source; returns the error to throw. */
  async #fail(err: unknown): Promise<unknown> {
    if (this.#failed === null) {
      this.#failed = err
      this.#cur = null
      await this.#reader.close().catch(() => undefined)
    }
    return this.#failed
  }

  // ── segments ───────────────────────────────────────────────────────────────────────────

  #push(bytes: Buffer): void {
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

  async #add(entry: EntryInput): Promise<void> {
    const pending = this.#sink?.add(entry)
    if (pending !== undefined) await pending
  }

  /** Emits the pending bytes as one segment: a copy of its own, which the sink may keep. */
  async #flush(): Promise<void> {
    if (this.#segLen === 0) return
    const payload = Buffer.from(this.#seg.subarray(0, this.#segLen))
    this.#segLen = 0
    if (this.#seg.length > SEGMENT_BUFFER_SIZE) this.#seg = Buffer.allocUnsafe(SEGMENT_BUFFER_SIZE)
    await this.#add({ type: SEGMENT_TYPE, payload })
  }

  // ── reading ────────────────────────────────────────────────────────────────────────────

  /** Reads `n` raw bytes into the pending segment, or fails as truncated `where`. */
  async #readRaw(n: number, where: TruncatedArchiveError['where'], member?: Buffer): Promise<Buffer> {
    const r = this.#reader
    const bytes = r.ready >= n ? r.take(n) : await r.read(n)
    if (bytes.length < n) throw new TruncatedArchiveError(where, r.offset, member)
    this.#push(bytes)
    return bytes
  }

  /** One block, or fewer bytes at the end of the input (none at a clean block edge). */
  #readBlock(): Buffer | Promise<Buffer> {
    const r = this.#reader
    return r.ready >= BLOCK_SIZE ? r.take(BLOCK_SIZE) : r.read(BLOCK_SIZE)
  }

  /**
   * Reads the data section of a PAX header or GNU long name (bounded by `maxHeaderSize`) into
   * the pending segment and decodes it before its padding is read (a malformed header is
   * reported as such even when the input ends in its padding). The padding of a `g` header
   * is left for the next segment, where Go puts it.
   */
  async #readExtension<T>(raw: RawHeader, at: number, decode: (data: Buffer) => T): Promise<T> {
    if (raw.size > this.#maxHeaderSize) throw new HeaderTooLargeError(raw.size, this.#maxHeaderSize, at)
    const value = decode(await this.#readRaw(raw.size, 'extension-header'))
    if (raw.typeflag === TYPE_PAX_GLOBAL) this.#pad = blockPadding(raw.size)
    else await this.#readRaw(blockPadding(raw.size), 'padding')
    return value
  }

  // ── the header group ───────────────────────────────────────────────────────────────────

  /**
   * The common case without a promise in sight: nothing wants entries, the rest of the
   * current member's content (if any) is in the chunk at hand, and so is the next header
   * block, a plain one (no extension header before it, not sparse, not the end). Null when
   * any of that does not hold, having consumed nothing the general path would not: it then
   * goes on from exactly here. Each async step of the general path costs a promise and a
   * trip through the microtask queue, and a layer of small files has ~10 of them per member.
   */
  #nextPlain(): TarMember | null {
    if (this.#sink !== null) return null
    const r = this.#reader
    const cur = this.#cur
    if (cur !== null) {
      if (cur.plan.unreferenced > 0) return null
      // Without a sink, content that nobody read is only skipped.
      while (cur.remaining > 0 && r.ready > 0) this.#consume(cur)
      if (cur.remaining > 0) return null
      this.#cur = null
    }
    const pad = this.#pad
    if (r.ready < pad + BLOCK_SIZE) return null
    const block = r.peek(pad, BLOCK_SIZE)
    const flag = block[156]
    if (
      flag === TYPE_PAX_LOCAL ||
      flag === TYPE_PAX_GLOBAL ||
      flag === TYPE_GNU_LONGNAME ||
      flag === TYPE_GNU_LONGLINK ||
      flag === TYPE_GNU_SPARSE ||
      isZeroBlock(block)
    ) {
      return null
    }
    r.take(pad + BLOCK_SIZE)
    this.#pad = 0
    const at = r.offset - BLOCK_SIZE
    const raw = decodeHeader(block, at)
    if (raw.size < 0 && !isHeaderOnlyType(raw.typeflag)) {
      throw new InvalidHeaderError('negative-size', at, `size field is ${raw.size}`)
    }
    const base = resolveMember(raw, null, null, null, at)
    return this.#present(planMember(base, base.dataSize, null, this.#global, at), base.dataSize)
  }

  /** Reads the headers up to the next member and emits its segment; null at the end. */
  async #nextMember(): Promise<TarMember | null> {
    if (this.#pad > 0) await this.#readRaw(this.#pad, 'padding')
    this.#pad = 0
    let local: PaxRecords | null = null
    let longName: Buffer | null = null
    let longLink: Buffer | null = null
    for (;;) {
      // Go keeps a whole header group in one segment; a hostile run of extension headers
      // would make that unbounded, so a group past this size is split (still replayable).
      if (this.#segLen > GROUP_SPLIT_FACTOR * this.#maxHeaderSize) await this.#flush()
      const at = this.#reader.offset
      const block = await this.#readBlock()
      // The input ends at a block edge: an archive without end marker (valid, as in Go).
      if (block.length === 0) return null
      if (block.length < BLOCK_SIZE) throw new TruncatedArchiveError('header', this.#reader.offset)
      this.#push(block)
      if (isZeroBlock(block)) {
        await this.#readEndMarker(at)
        return null
      }
      const raw = decodeHeader(block, at)
      // Go checks the size of every header block, meta ones included, before merging.
      if (raw.size < 0 && !isHeaderOnlyType(raw.typeflag)) {
        throw new InvalidHeaderError('negative-size', at, `size field is ${raw.size}`)
      }
      switch (raw.typeflag) {
        case TYPE_PAX_LOCAL:
          // A later `x` replaces an earlier one's records, as in Go.
          local = await this.#readExtension(raw, at, (data) => parsePaxRecords(data, at))
          continue
        case TYPE_PAX_GLOBAL:
          return this.#globalMember(raw, at)
        case TYPE_GNU_LONGNAME:
        case TYPE_GNU_LONGLINK: {
          const value = await this.#readExtension(raw, at, cString)
          if (raw.typeflag === TYPE_GNU_LONGNAME) longName = value
          else longLink = value
          continue
        }
        default:
          return this.#member(resolveMember(raw, local, longName, longLink, at), block, at)
      }
    }
  }

  /**
   * After one zero block, a second one or the end of the input ends the archive (both valid:
   * some writers stop after one). Anything else is refused, as Go does, including a header
   * (GNU tar would warn and go on; the corpus follows Go).
   */
  async #readEndMarker(at: number): Promise<void> {
    const second = await this.#readBlock()
    if (second.length === 0) return
    if (second.length < BLOCK_SIZE) throw new TruncatedArchiveError('header', this.#reader.offset)
    if (!isZeroBlock(second)) {
      const what = blockFormat(second) !== null ? 'a tar header' : 'a block that is neither zeros nor a header'
      throw new InvalidHeaderError('data-after-zero-block', at + BLOCK_SIZE, `${what} follows a lone zero block`)
    }
    this.#push(second)
  }

  /** A `g` header: updates the global records and is returned as a pseudo-member, as Go does. */
  async #globalMember(raw: RawHeader, at: number): Promise<TarMember> {
    const records = await this.#readExtension(raw, at, (data) => parsePaxRecords(data, at))
    const plan = planGlobal(raw, records, at) // validates the values, as Go's mergePAX does
    this.#global = applyGlobalRecords(this.#global, records)
    await this.#flush()
    await this.#addFileEntry(plan, null)
    return Object.freeze({ header: plan.header, content: EMPTY_CONTENT, lent: EMPTY_CONTENT })
  }

  /** Reads the member's sparse map (if any), emits its segment, and sets it current. */
  async #member(base: MemberBase, block: Buffer, at: number): Promise<TarMember> {
    let dataSize = base.dataSize
    let sparse: SparseLayout | null = null
    // Sparse map blocks (old GNU extension blocks, the PAX 1.0 map) are raw bytes of this
    // member's segment.
    const nextBlock = (): Promise<Buffer> => this.#readRaw(BLOCK_SIZE, 'sparse-map', base.name)
    if (base.raw.typeflag === TYPE_GNU_SPARSE) {
      if (base.raw.format !== 'gnu') {
        // STAR uses the same typeflag with another layout; Go refuses it too.
        throw new InvalidHeaderError('sparse-map', at, "a type 'S' sparse header that is not in GNU format")
      }
      sparse = await readOldGnuSparseMap(block, at, this.#maxHeaderSize, nextBlock)
    } else if (base.paxSparse !== null) {
      const realSize = base.paxSparse.realSize ?? dataSize
      if (base.paxSparse.version === '1.0') {
        const map = await readSparseMap1x0(dataSize, at, this.#maxHeaderSize, nextBlock)
        dataSize -= map.bytes
        sparse = { map: map.map, realSize }
      } else {
        sparse = { map: parseSparseMap0x(base.local!, at), realSize }
      }
    }
    const plan = planMember(base, dataSize, sparse, this.#global, at)
    await this.#flush()
    // Members whose entry does not depend on their content get it now; `data` bytes then
    // flow into the next segment after it, where Go's reader would put skipped bytes.
    if (plan.kind !== 'file') await this.#addFileEntry(plan, null)
    return this.#present(plan, base.dataSize)
  }

  /**
   * Makes `plan` the current member and builds what the caller gets. Its segment and (for
   * non-files) its F entry must have been sent already.
   *
   * @param sectionSize the whole data section, sparse map blocks included (they are whole
   *   blocks, so the padding follows from it)
   */
  #present(plan: MemberPlan, sectionSize: number): TarMember {
    const cur = new ContentCursor(plan, this.#sink !== null)
    this.#pad = blockPadding(sectionSize)
    this.#cur = cur
    if (plan.dataSize === 0) return Object.freeze({ header: plan.header, content: EMPTY_CONTENT, lent: EMPTY_CONTENT })
    const escape = this.#recycling
    return Object.freeze({
      header: plan.header,
      content: new Content(() => this.#contentIterator(cur, escape)),
      lent: new Content(() => this.#contentIterator(cur, false)),
      lentNow: () => this.#contentNow(cur),
    })
  }

  // ── content ────────────────────────────────────────────────────────────────────────────

  /**
   * Reads the next piece of the current member's content from the current chunk (which must
   * not be empty): a view, CRC'd for files, added to the pending segment for other data.
   */
  #consume(cur: ContentCursor): Buffer {
    const file = cur.plan.kind === 'file'
    // Bytes bound for a segment come in pieces of at most 1 MiB, so that one huge input
    // chunk cannot make a huge segment.
    const ready = this.#reader.ready
    const bytes = this.#reader.take(cur.piece(file ? ready : Math.min(ready, TRAILING_CHUNK_SIZE)))
    cur.consumed(bytes)
    if (!file) this.#push(bytes)
    return bytes
  }

  /**
   * The whole content of a dense file member, lent, when none of it was read yet and all of
   * it is in the chunk at hand; else undefined, with nothing consumed.
   */
  #contentNow(cur: ContentCursor): Buffer | undefined {
    const { plan } = cur
    if (this.#failed !== null || this.#cur !== cur || plan.kind !== 'file' || plan.extents !== null) return undefined
    if (cur.remaining !== plan.dataSize || this.#reader.ready < cur.remaining) return undefined
    return this.#consume(cur)
  }

  /** Makes sure the current chunk has bytes for `cur`, or fails as truncated. */
  async #fill(cur: ContentCursor): Promise<void> {
    if (this.#reader.ready === 0 && !(await this.#reader.pull())) {
      throw new TruncatedArchiveError('payload', this.#reader.offset, cur.plan.entryName)
    }
  }

  /** @param escape the pieces are given for good: their chunks must never be released */
  #contentIterator(cur: ContentCursor, escape: boolean): AsyncIterator<Buffer> {
    return {
      next: async (): Promise<IteratorResult<Buffer, undefined>> => {
        if (this.#failed !== null) throw this.#failed
        if (this.#cur !== cur || cur.remaining === 0) return DONE
        try {
          await this.#fill(cur)
          const bytes = this.#consume(cur)
          if (escape) this.#reader.escape()
          if (this.#segLen >= TRAILING_CHUNK_SIZE) await this.#flush()
          return { done: false, value: bytes }
        } catch (err) {
          throw await this.#fail(err)
        }
      },
      return: async (): Promise<IteratorResult<Buffer, undefined>> => DONE,
    }
  }

  /** Drains what the caller did not read, then emits a file member's F entry. */
  async #endMember(cur: ContentCursor): Promise<void> {
    while (cur.remaining > 0) {
      await this.#fill(cur)
      this.#consume(cur)
      if (this.#segLen >= TRAILING_CHUNK_SIZE) await this.#flush()
    }
    this.#cur = null
    const { plan } = cur
    if (plan.kind === 'file') await this.#addFileEntry(plan, cur.digest())
    // Stored bytes no sparse extent refers to: raw bytes, where Go's reader puts skipped data.
    for (let n = plan.unreferenced; n > 0; ) {
      await this.#fill(cur)
      const bytes = this.#reader.take(Math.min(this.#reader.ready, n, TRAILING_CHUNK_SIZE))
      this.#push(bytes)
      n -= bytes.length
      if (this.#segLen >= TRAILING_CHUNK_SIZE) await this.#flush()
    }
  }

  async #addFileEntry(plan: MemberPlan, payload: Buffer | null): Promise<void> {
    if (this.#sink === null) return
    // Two literals rather than a spread of a conditional one, which V8 builds the slow way.
    const { entryName: name, entrySize: size, extents } = plan
    await this.#add(
      extents !== null
        ? { type: FILE_TYPE, name, size, payload, sparse: extents }
        : { type: FILE_TYPE, name, size, payload },
    )
  }

  // ── the end ────────────────────────────────────────────────────────────────────────────

  /**
   * Emits the end segment (last padding and end-of-archive blocks), then every remaining
   * input byte in segments of exactly 1 MiB (the last one shorter), as Go does with a file.
   */
  async #endArchive(): Promise<void> {
    await this.#flush()
    const r = this.#reader
    for (;;) {
      if (r.ready === 0 && !(await r.pull())) break
      this.#push(r.take(Math.min(r.ready, TRAILING_CHUNK_SIZE - this.#segLen)))
      if (this.#segLen === TRAILING_CHUNK_SIZE) await this.#flush()
    }
    await this.#flush()
    if (this.#emptyFinalSegment) await this.#add({ type: SEGMENT_TYPE, payload: Buffer.alloc(0) })
  }
}

/** A GNU long name: the data up to the first NUL. */
function cString(data: Buffer): Buffer {
  const nul = data.indexOf(0)
  return Buffer.from(nul >= 0 ? data.subarray(0, nul) : data)
}

/**
 * A member's content as an iterable. A class, not an object literal: a literal with the
 * computed key `[Symbol.asyncIterator]` is built by a runtime call in V8, about a
 * microsecond per member, which on a layer of 50,000 small files is noticeable.
 */
class Content implements AsyncIterable<Buffer> {
  readonly #open: () => AsyncIterator<Buffer>

  constructor(open: () => AsyncIterator<Buffer>) {
    this.#open = open
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this.#open()
  }
}

const EMPTY_CONTENT: AsyncIterable<Buffer> = Object.freeze({
  [Symbol.asyncIterator]: (): AsyncIterator<Buffer> => ({ next: async () => DONE }),
})
