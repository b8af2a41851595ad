/**
 * Reads header groups for the disassembler: the padding owed after the last data section,
 * then the extension headers before a member (PAX `x` records, GNU long names and link
 * names), the member's header block and its sparse map; or a `g` header, returned as a
 * pseudo-member as Go does; or the end-of-archive marker. Every byte read goes to the pending
 * segment; the headers are merged into the member's plan (member-plan.ts). The global PAX
 * records in force live here.
 */
import type { ByteReader } from './byte-reader.js'
import type { EntryEmitter } from './entry-emitter.js'
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
import { planGlobal, planMember, resolveMember, type MemberBase, type MemberPlan } from './member-plan.js'
import { applyGlobalRecords, parsePaxRecords, type PaxRecords } from './pax.js'
import { parseSparseMap0x, readOldGnuSparseMap, readSparseMap1x0, type SparseLayout } from './sparse.js'

/** A header group's segment is split past this many times `maxHeaderSize` (see below). */
const GROUP_SPLIT_FACTOR = 8

/** Turns the header blocks before each member into its plan. */
export class HeaderGroupReader {
  readonly #reader: ByteReader
  readonly #out: EntryEmitter
  readonly #maxHeaderSize: number
  /** Padding owed after the last data section, read at the start of the next group. */
  #pad = 0
  #global: PaxRecords = new Map()

  constructor(reader: ByteReader, out: EntryEmitter, maxHeaderSize: number) {
    this.#reader = reader
    this.#out = out
    this.#maxHeaderSize = maxHeaderSize
  }

  /**
   * The next member's plan without a promise, when the owed padding and its header block
   * are in the chunk at hand and the block is a plain one (no extension header before it,
   * not sparse, not the end). Null when any of that does not hold, having consumed nothing:
   * {@link next} then goes on from exactly here. Only for a disassembly without a sink: the
   * padding is skipped, not added to the pending segment.
   */
  plainNow(): MemberPlan | null {
    const r = this.#reader
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
    const at = r.offset - BLOCK_SIZE
    const base = resolveMember(decodeChecked(block, at), null, null, null, at)
    const plan = planMember(base, base.dataSize, null, this.#global, at)
    this.#pad = blockPadding(base.dataSize)
    return plan
  }

  /**
   * Reads the owed padding and the next header group into the pending segment; the plan of
   * the member (or `g` pseudo-member) it ends with, or null at the end of the archive. The
   * segment is not flushed: its last bytes are the member's.
   */
  async next(): Promise<MemberPlan | null> {
    if (this.#pad > 0) await this.#readRaw(this.#pad, 'padding')
    this.#pad = 0
    let local: PaxRecords | null = null
    let longName: Buffer | null = null
    let longLink: Buffer | null = null
    for (;;) {
      // Go keeps a whole header group in one segment; a hostile run of extension headers
      // would make that unbounded, so a group past this size is split (still replayable).
      if (this.#out.pending > GROUP_SPLIT_FACTOR * this.#maxHeaderSize) await this.#out.flush()
      const at = this.#reader.offset
      const block = await this.#readBlock()
      // The input ends at a block edge: an archive without end marker (valid, as in Go).
      if (block.length === 0) return null
      if (block.length < BLOCK_SIZE) throw new TruncatedArchiveError('header', this.#reader.offset)
      this.#out.push(block)
      if (isZeroBlock(block)) {
        await this.#readEndMarker(at)
        return null
      }
      const raw = decodeChecked(block, at)
      switch (raw.typeflag) {
        case TYPE_PAX_LOCAL:
          // A later `x` replaces an earlier one's records, as in Go.
          local = await this.#readExtension(raw, at, (data) => parsePaxRecords(data, at))
          continue
        case TYPE_PAX_GLOBAL:
          return this.#globalPlan(raw, at)
        case TYPE_GNU_LONGNAME:
        case TYPE_GNU_LONGLINK: {
          const value = await this.#readExtension(raw, at, cString)
          if (raw.typeflag === TYPE_GNU_LONGNAME) longName = value
          else longLink = value
          continue
        }
        default:
          return this.#memberPlan(resolveMember(raw, local, longName, longLink, at), block, at)
      }
    }
  }

  /** Reads `n` raw bytes into the pending segment, or fails as truncated `where`. */
  async #readRaw(n: number, where: TruncatedArchiveError['where'], member?: Buffer): Promise<Buffer> {
    const r = this.#reader
    const bytes = r.ready >= n ? r.take(n) : await r.read(n)
    if (bytes.length < n) throw new TruncatedArchiveError(where, r.offset, member)
    this.#out.push(bytes)
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
    this.#out.push(second)
  }

  /** A `g` header: updates the global records; its plan is a pseudo-member's, as in Go. */
  async #globalPlan(raw: RawHeader, at: number): Promise<MemberPlan> {
    const records = await this.#readExtension(raw, at, (data) => parsePaxRecords(data, at))
    const plan = planGlobal(raw, records, at) // validates the values, as Go's mergePAX does
    this.#global = applyGlobalRecords(this.#global, records)
    return plan
  }

  /** Reads the member's sparse map (if any) and owes the padding of its data section. */
  async #memberPlan(base: MemberBase, block: Buffer, at: number): Promise<MemberPlan> {
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
    // The whole data section, sparse map blocks included: they are whole blocks, so the
    // padding follows from it.
    this.#pad = blockPadding(base.dataSize)
    return plan
  }
}

/** Decodes a header block, refusing a negative size where the type has a data section. */
function decodeChecked(block: Buffer, at: number): RawHeader {
  const raw = decodeHeader(block, at)
  // Go checks the size of every header block, meta ones included, before merging.
  if (raw.size < 0 && !isHeaderOnlyType(raw.typeflag)) {
    throw new InvalidHeaderError('negative-size', at, `size field is ${raw.size}`)
  }
  return raw
}

/** A GNU long name: the data up to the first NUL. */
function cString(data: Buffer): Buffer {
  const nul = data.indexOf(0)
  return Buffer.from(nul >= 0 ? data.subarray(0, nul) : data)
}
