/**
 * GNU sparse maps: where a sparse member's stored data goes in its logical (expanded) file.
 * Pure: decoding and validation only. Four encodings exist:
 *
 * - old GNU `S` headers: up to 4 entries inline, then 512-byte extension blocks of 21 entries
 *   each while the "is extended" byte is set (the blocks sit between header and data);
 * - PAX 0.0: repeated `GNU.sparse.offset`/`GNU.sparse.numbytes` records (folded into
 *   `GNU.sparse.map` by the PAX parser) plus `GNU.sparse.numblocks`;
 * - PAX 0.1: `GNU.sparse.map` = "off,len,off,len…" and `GNU.sparse.numblocks`;
 * - PAX 1.0: the map is text at the start of the data section ("count\noff\nlen\n…"), padded
 *   to a block edge. Those bytes are raw archive bytes: the disassembler records them in the
 *   member's segment (Go's tar-split loses them).
 *
 * A hostile map must not make us allocate without bound, so the map's encoded size is capped
 * like Go's since tar-split 0.12.2 (CVE-2025-58183): 1 MiB by default.
 *
 * The readers of map blocks take a `nextBlock` callback and do no I/O themselves.
 */
import type { SparseExtent } from './entry.js'
import { HeaderTooLargeError, InvalidHeaderError } from './errors.js'
import { BLOCK_SIZE, parseNumeric } from './header.js'
import { PAX_GNU_SPARSE_MAP, parseGoInt, type PaxRecords } from './pax.js'

function bad(offset: number, detail: string): InvalidHeaderError {
  return new InvalidHeaderError('sparse-map', offset, detail)
}

/** Entries per 512-byte old-GNU extension block (21 × 24 bytes, then the "extended" byte). */
const EXTENSION_ENTRIES = 21

/**
 * Reads `count` old-GNU entries (12-byte offset + 12-byte length each) from `block` at
 * `start`, stopping at the first entry whose offset field starts with NUL (GNU and BSD tar
 * stop there too), and appends them to `into`.
 */
function decodeOldGnuEntries(
  block: Uint8Array,
  start: number,
  count: number,
  offset: number,
  into: SparseExtent[],
): void {
  for (let i = 0; i < count; i++) {
    const at = start + i * 24
    if (block[at] === 0) break
    const off = parseNumeric(block, at, 12)
    const len = parseNumeric(block, at + 12, 12)
    if (Number.isNaN(off) || Number.isNaN(len)) throw bad(offset, `malformed old GNU sparse entry ${i}`)
    into.push({ offset: off, length: len })
  }
}

/** The sparse part of an old GNU `S` header. */
export interface OldGnuSparseHeader {
  /** The logical size (the `realsize` field). */
  readonly realSize: number
  /** Inline entries, unvalidated. */
  readonly entries: SparseExtent[]
  /** Whether an extension block follows the header. */
  readonly isExtended: boolean
}

/**
 * Decodes the inline sparse map of an old GNU `S` header block (the caller has checked the
 * block is in GNU format; STAR uses the same typeflag with another layout).
 *
 * @throws InvalidHeaderError `sparse-map` when a number is malformed
 */
export function decodeOldGnuSparseHeader(block: Uint8Array, offset: number): OldGnuSparseHeader {
  const realSize = parseNumeric(block, 483, 12)
  if (Number.isNaN(realSize)) throw bad(offset, 'malformed old GNU sparse real size')
  const entries: SparseExtent[] = []
  decodeOldGnuEntries(block, 386, 4, offset, entries)
  return { realSize, entries, isExtended: block[482]! > 0 }
}

/**
 * Decodes one old GNU sparse extension block, appending its entries to `into`.
 *
 * @returns whether another extension block follows
 */
export function decodeOldGnuSparseExtension(block: Uint8Array, offset: number, into: SparseExtent[]): boolean {
  decodeOldGnuEntries(block, 0, EXTENSION_ENTRIES, offset, into)
  return block[EXTENSION_ENTRIES * 24]! > 0
}

/** Reads the next 512-byte block of the archive (failing if the input ends). */
export type NextBlock = () => Promise<Uint8Array>

/** A sparse map and the logical size it applies to. */
export interface SparseLayout {
  readonly map: readonly SparseExtent[]
  readonly realSize: number
}

/**
 * Reads an old GNU `S` member's map: the inline entries of its header, then extension
 * blocks while the "is extended" flag is set (the blocks sit between header and data).
 *
 * @param block the member's header block (in GNU format)
 * @param at its archive offset, for errors
 * @param limit the most extension bytes accepted
 * @throws HeaderTooLargeError past `limit`; InvalidHeaderError `sparse-map` when malformed
 */
export async function readOldGnuSparseMap(
  block: Uint8Array,
  at: number,
  limit: number,
  nextBlock: NextBlock,
): Promise<SparseLayout> {
  const head = decodeOldGnuSparseHeader(block, at)
  const map = head.entries
  let extended = head.isExtended
  for (let bytes = BLOCK_SIZE; extended; bytes += BLOCK_SIZE) {
    if (bytes > limit) throw new HeaderTooLargeError(bytes, limit, at)
    extended = decodeOldGnuSparseExtension(await nextBlock(), at, map)
  }
  return { map, realSize: head.realSize }
}

/**
 * Reads a PAX 1.0 map from the start of a data section of `dataSize` bytes.
 *
 * @returns the map and the bytes it took (whole blocks)
 * @throws HeaderTooLargeError past `limit`; InvalidHeaderError `sparse-map` when malformed or
 *   running past the data section
 */
export async function readSparseMap1x0(
  dataSize: number,
  at: number,
  limit: number,
  nextBlock: NextBlock,
): Promise<{ map: SparseExtent[]; bytes: number }> {
  const reader = new SparseMap1x0Reader(at, limit)
  for (;;) {
    if (reader.bytes + BLOCK_SIZE > dataSize) throw bad(at, 'the GNU sparse 1.0 map runs past the data section')
    // Checked before reading, so that a hostile map costs no block beyond the limit.
    if (reader.bytes + BLOCK_SIZE > limit) throw new HeaderTooLargeError(reader.bytes + BLOCK_SIZE, limit, at)
    if (reader.feed(await nextBlock())) return { map: reader.result!, bytes: reader.bytes }
  }
}

/** A PAX-encoded sparse member, as the records announce it. */
export interface PaxSparseInfo {
  /** `1.0` keeps its map in the data section; `0.x` in the records. */
  readonly version: '0.x' | '1.0'
  /** `GNU.sparse.name`: the real name, which overrides every other name. */
  readonly name?: Buffer
  /** `GNU.sparse.size` (or `GNU.sparse.realsize`): the logical size, if given. */
  readonly realSize?: number
}

function text(records: PaxRecords, key: string): string {
  return records.get(key)?.toString('latin1') ?? ''
}

/**
 * Tells whether a member's local PAX records make it a GNU sparse file, by Go's rules: an
 * explicit `GNU.sparse.major`/`minor` of 0.0, 0.1 or 1.0; any other version is not sparse
 * (read as a plain file); without a version, a non-empty `GNU.sparse.map` means 0.x.
 *
 * @returns null when the member is not sparse
 * @throws InvalidHeaderError `sparse-map` when the announced size is malformed
 */
export function detectPaxSparse(records: PaxRecords, offset: number): PaxSparseInfo | null {
  const major = text(records, 'GNU.sparse.major')
  const minor = text(records, 'GNU.sparse.minor')
  let version: PaxSparseInfo['version']
  if (major === '0' && (minor === '0' || minor === '1')) version = '0.x'
  else if (major === '1' && minor === '0') version = '1.0'
  else if (major !== '' || minor !== '') return null
  else if (text(records, PAX_GNU_SPARSE_MAP) !== '') version = '0.x'
  else return null
  const name = records.get('GNU.sparse.name')
  const sizeText = text(records, 'GNU.sparse.size') || text(records, 'GNU.sparse.realsize')
  let realSize: number | undefined
  if (sizeText !== '') {
    realSize = parseGoInt(sizeText)
    if (Number.isNaN(realSize)) throw bad(offset, `malformed GNU sparse size ${JSON.stringify(sizeText)}`)
  }
  return {
    version,
    ...(name !== undefined && name.length > 0 ? { name } : {}),
    ...(realSize !== undefined ? { realSize } : {}),
  }
}

/**
 * Reads the PAX 0.0/0.1 map from `GNU.sparse.numblocks` and `GNU.sparse.map`.
 *
 * @throws InvalidHeaderError `sparse-map` when the count is missing or wrong, or a number is
 *   malformed
 */
export function parseSparseMap0x(records: PaxRecords, offset: number): SparseExtent[] {
  const count = parseGoInt(text(records, 'GNU.sparse.numblocks'))
  if (Number.isNaN(count) || count < 0) throw bad(offset, 'missing or malformed GNU.sparse.numblocks')
  const map = text(records, PAX_GNU_SPARSE_MAP)
  const fields = map === '' ? [] : map.split(',')
  if (fields.length !== 2 * count) {
    throw bad(offset, `GNU.sparse.map has ${fields.length} numbers, GNU.sparse.numblocks says ${2 * count}`)
  }
  const out: SparseExtent[] = []
  for (let i = 0; i < fields.length; i += 2) {
    const off = parseGoInt(fields[i]!)
    const len = parseGoInt(fields[i + 1]!)
    if (Number.isNaN(off) || Number.isNaN(len)) throw bad(offset, `malformed GNU.sparse.map entry ${i / 2}`)
    out.push({ offset: off, length: len })
  }
  return out
}

/**
 * Incremental reader of a PAX 1.0 map, fed one 512-byte block of the data section at a time
 * (the map ends at the edge of the block holding its last newline, as GNU tar and Go read it).
 * Numbers are decimal (GNU's manual says octal; GNU tar writes decimal, and Go reads decimal).
 */
export class SparseMap1x0Reader {
  readonly #offset: number
  readonly #limit: number
  readonly #blocks: Buffer[] = []
  #newlines = 0
  /** Newlines needed: 1 for the count, then 2 per entry once the count is known. */
  #needed = 1
  #count = -1
  #result: SparseExtent[] | null = null

  /**
   * @param offset archive offset of the member's header, for errors
   * @param limit the most map bytes accepted (whole blocks)
   */
  constructor(offset: number, limit: number) {
    this.#offset = offset
    this.#limit = limit
  }

  /** Map bytes consumed so far (a multiple of 512). */
  get bytes(): number {
    return this.#blocks.length * BLOCK_SIZE
  }

  /** The map once complete, else null. */
  get result(): SparseExtent[] | null {
    return this.#result
  }

  /**
   * Takes the next block of the data section.
   *
   * @returns true when the map is complete (no more blocks belong to it)
   * @throws HeaderTooLargeError past the limit; InvalidHeaderError `sparse-map` when malformed
   */
  feed(block: Uint8Array): boolean {
    if (this.#result !== null) return true
    if (this.bytes + BLOCK_SIZE > this.#limit) {
      throw new HeaderTooLargeError(this.bytes + BLOCK_SIZE, this.#limit, this.#offset)
    }
    this.#blocks.push(Buffer.from(block))
    for (let i = 0; i < block.length; i++) if (block[i] === 0x0a) this.#newlines++
    if (this.#count < 0 && this.#newlines >= 1) {
      const all = Buffer.concat(this.#blocks)
      const count = parseGoInt(all.subarray(0, all.indexOf(0x0a)))
      if (Number.isNaN(count) || count < 0) throw bad(this.#offset, 'malformed GNU sparse 1.0 entry count')
      this.#count = count
      this.#needed = 1 + 2 * count
    }
    if (this.#count < 0 || this.#newlines < this.#needed) return false
    const tokens = Buffer.concat(this.#blocks).toString('latin1').split('\n', this.#needed + 1)
    const out: SparseExtent[] = []
    for (let i = 0; i < this.#count; i++) {
      const off = parseGoInt(tokens[1 + 2 * i]!)
      const len = parseGoInt(tokens[2 + 2 * i]!)
      if (Number.isNaN(off) || Number.isNaN(len)) throw bad(this.#offset, `malformed GNU sparse 1.0 entry ${i}`)
      out.push({ offset: off, length: len })
    }
    this.#result = out
    return true
  }
}

/**
 * Checks a map against the logical size with Go's (and bsdtar's) rules: no negative numbers,
 * no overflow, every extent within the size, extents sorted and not overlapping (touching is
 * fine).
 *
 * @throws InvalidHeaderError `sparse-map`
 */
export function validateSparseMap(map: readonly SparseExtent[], realSize: number, offset: number): void {
  if (realSize < 0) throw bad(offset, `negative sparse real size ${realSize}`)
  let previousEnd = 0
  for (let i = 0; i < map.length; i++) {
    const { offset: off, length: len } = map[i]!
    if (off < 0 || len < 0) throw bad(offset, `sparse entry ${i} is negative`)
    const end = off + len
    if (end > realSize) throw bad(offset, `sparse entry ${i} ends at ${end}, beyond the real size ${realSize}`)
    if (off < previousEnd) throw bad(offset, `sparse entry ${i} overlaps or is out of order`)
    previousEnd = end
  }
}

/** The data extents that hold bytes (zero-length ones carry none), in order. */
export function dataExtents(map: readonly SparseExtent[]): SparseExtent[] {
  return map.filter((e) => e.length > 0)
}

/** Bytes stored in the archive for a map: the sum of its lengths. */
export function storedSize(map: readonly SparseExtent[]): number {
  let n = 0
  for (const e of map) n += e.length
  return n
}

/** True when the stored bytes are the whole logical file (no holes at all). */
export function isDense(map: readonly SparseExtent[], realSize: number): boolean {
  const data = dataExtents(map)
  if (realSize === 0) return data.length === 0
  // Validated maps are sorted and disjoint, so covering [0, realSize) means no gaps.
  return storedSize(data) === realSize
}
