/**
 * The tar header block codec: decodes one 512-byte block exactly as Go's `archive/tar` (the
 * Go 1.11 fork inside vbatts/tar-split) reads it, because the names and sizes it yields decide
 * the byte accounting of tar-split. Pure: no I/O, no state.
 *
 * Layout (offset/length): name 0/100, mode 100/8, uid 108/8, gid 116/8, size 124/12,
 * mtime 136/12, chksum 148/8, typeflag 156/1, linkname 157/100, magic 257/6, version 263/2,
 * uname 265/32, gname 297/32, devmajor 329/8, devminor 337/8; then USTAR prefix 345/155, or
 * STAR prefix 345/131 + atime 476/12 + ctime 488/12 + trailer 508/4, or GNU atime 345/12 +
 * ctime 357/12 + sparse array 386 (4 × 24 + "is extended" byte at 482) + realsize 483/12.
 */
import { InvalidHeaderError } from './errors.js'

/** Every tar structure is a multiple of this. */
export const BLOCK_SIZE = 512

/** Header formats a single block can be in, told apart by magic (PAX is decided later). */
export type BlockFormat = 'v7' | 'ustar' | 'gnu' | 'star'

/**
 * One header block, decoded but not merged with PAX records or GNU long names. Numbers are
 * signed (base-256 allows negatives) and exact up to 2^53; beyond that they are the nearest
 * double, which is still above `Number.MAX_SAFE_INTEGER`, so callers can reject them.
 */
export interface RawHeader {
  /** `name`, with the USTAR/STAR prefix joined by `/` when non-empty. A copy, never a view. */
  readonly name: Buffer
  readonly typeflag: number
  readonly mode: number
  readonly uid: number
  readonly gid: number
  /** The size field as written; header-only types ignore it later. */
  readonly size: number
  readonly mtime: number
  readonly linkname: Buffer
  /** Empty for V7 headers, which have no such field. */
  readonly uname: Buffer
  readonly gname: Buffer
  readonly devmajor: number
  readonly devminor: number
  /** Seconds; only GNU and STAR headers carry them. */
  readonly atime?: number
  readonly ctime?: number
  readonly format: BlockFormat
}

/** Typeflag `'0'`: a regular file. */
export const TYPE_REG = 0x30
/** Typeflag NUL: a V7 regular file, or a directory when the name ends in `/`. */
export const TYPE_REG_A = 0x00
/** Typeflag `'7'`: a contiguous file, which every reader treats as a regular file. */
export const TYPE_CONT = 0x37
/** Typeflag `'x'`: PAX records for the next member. */
export const TYPE_PAX_LOCAL = 0x78
/** Typeflag `'g'`: PAX records for every later member. */
export const TYPE_PAX_GLOBAL = 0x67
/** Typeflag `'L'`: the next member's long name (GNU). */
export const TYPE_GNU_LONGNAME = 0x4c
/** Typeflag `'K'`: the next member's long link target (GNU). */
export const TYPE_GNU_LONGLINK = 0x4b
/** Typeflag `'S'`: an old GNU sparse file. */
export const TYPE_GNU_SPARSE = 0x53
/** Typeflag `'D'`: a GNU incremental dumpdir; its data is a directory listing. */
export const TYPE_GNU_DUMPDIR = 0x44
/** Typeflag `'V'`: a GNU volume label. */
export const TYPE_GNU_VOLUME = 0x56

/**
 * Types '1'–'6' (hard link, symlink, char, block, directory, FIFO) have no data section
 * whatever their size field says: Go, bsdtar and Python all read 0 bytes, and the corpus
 * (`go-hdr-only`, a directory with size 255 in CPython's testtar) depends on it.
 */
export function isHeaderOnlyType(typeflag: number): boolean {
  return typeflag >= 0x31 && typeflag <= 0x36
}

/** True when all 512 bytes are zero: half of an end-of-archive marker. */
export function isZeroBlock(block: Uint8Array): boolean {
  // A real header is rejected at its first byte or so (the name, the checksum); only zero
  // blocks are scanned in full.
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false
  return true
}

/** Number of zero bytes that follow a data section of `size` bytes up to the block edge. */
export function blockPadding(size: number): number {
  const rem = size % BLOCK_SIZE
  return rem === 0 ? 0 : BLOCK_SIZE - rem
}

/** Bytes up to the first NUL (the whole field if none), as a C string: a copy, never a view. */
export function fieldString(b: Uint8Array, start: number, length: number): Buffer {
  // Most link names and prefixes are empty: one shared empty buffer, no allocation.
  if (b[start] === 0) return EMPTY
  const end = start + length
  let i = start
  while (i < end && b[i] !== 0) i++
  return Buffer.from(b.subarray(start, i))
}

/**
 * Parses a numeric field the way Go's reader does: GNU base-256 when the first byte has bit 7
 * set (big-endian two's complement, bit 6 the sign; more than 63 significant bits is an
 * overflow); octal otherwise, after trimming spaces and NULs at both ends and cutting at an
 * inner NUL; empty is 0. Returns NaN when Go would report `ErrHeader`.
 */
export function parseNumeric(b: Uint8Array, start: number, length: number): number {
  const end = start + length
  if (length > 0 && (b[start]! & 0x80) !== 0) {
    const inv = (b[start]! & 0x40) !== 0 ? 0xff : 0
    // Skip leading zero bytes (after inversion and masking the marker bit) to count the
    // significant ones; Go's overflow rule amounts to "at most 63 significant bits".
    let i = start
    let first = (b[i]! ^ inv) & 0x7f
    while (first === 0 && i + 1 < end) {
      i++
      first = b[i]! ^ inv
    }
    const significant = first === 0 ? 0 : end - i
    if (significant > 8 || (significant === 8 && first >= 0x80)) return NaN
    let x = 0
    for (let j = i; j < end; j++) {
      const c = j === start ? (b[j]! ^ inv) & 0x7f : b[j]! ^ inv
      x = x * 256 + c
    }
    return inv === 0xff ? -x - 1 : x
  }
  return parseOctal(b, start, end)
}

function isTrimmable(c: number | undefined): boolean {
  return c === 0x20 || c === 0x00
}

function parseOctal(b: Uint8Array, start: number, end: number): number {
  while (start < end && isTrimmable(b[start])) start++
  while (end > start && isTrimmable(b[end - 1])) end--
  if (start === end) return 0
  let x = 0
  for (let i = start; i < end; i++) {
    const c = b[i]!
    if (c === 0) break // Go parses the trimmed field as a C string
    if (c < 0x30 || c > 0x37) return NaN
    x = x * 8 + (c - 0x30)
  }
  return x
}

/** Unsigned and signed (Sun tar) sums of the block, the checksum field counted as spaces. */
export function computeChecksums(block: Uint8Array): { unsigned: number; signed: number } {
  // This runs for every header of every layer. The signed sum is the unsigned one minus 256
  // for each byte with its top bit set, so one pass gives both.
  let unsigned: number
  let high: number
  if ((block.byteOffset & 3) === 0 && block.length >= BLOCK_SIZE) {
    // Four bytes at a time (a block in an input chunk is aligned): bytes summed in two 16-bit
    // lanes (at most 2 × 128 × 255 each), top bits counted in four 8-bit lanes (at most 128
    // each); byte order does not matter to a sum. About 4× faster than byte by byte.
    const words = new Uint32Array(block.buffer, block.byteOffset, BLOCK_SIZE >>> 2)
    let lanes = 0
    let tops = 0
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!
      lanes += (w & 0x00ff00ff) + ((w >>> 8) & 0x00ff00ff)
      tops += (w >>> 7) & 0x01010101
    }
    unsigned = (lanes & 0xffff) + (lanes >>> 16)
    high = (tops & 0xff) + ((tops >>> 8) & 0xff) + ((tops >>> 16) & 0xff) + (tops >>> 24)
  } else {
    unsigned = 0
    high = 0
    for (let i = 0; i < BLOCK_SIZE; i++) {
      const c = block[i]!
      unsigned += c
      high += c >>> 7
    }
  }
  for (let i = 148; i < 156; i++) {
    const c = block[i]!
    unsigned += 0x20 - c
    high -= c >>> 7
  }
  return { unsigned, signed: unsigned - 256 * high }
}

function hasBytes(b: Uint8Array, start: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (b[start + i] !== text.charCodeAt(i)) return false
  return true
}

/**
 * The block's format by magic, or `null` when the checksum does not verify (either sum is
 * accepted, as Go does, because Sun tar wrote signed sums).
 */
export function blockFormat(block: Uint8Array): BlockFormat | null {
  const stored = parseOctal(block, 148, 156)
  const { unsigned, signed } = computeChecksums(block)
  if (Number.isNaN(stored) || (stored !== unsigned && stored !== signed)) return null
  if (hasBytes(block, 257, 'ustar\0')) return hasBytes(block, 508, 'tar\0') ? 'star' : 'ustar'
  if (hasBytes(block, 257, 'ustar ') && hasBytes(block, 263, ' \0')) return 'gnu'
  return 'v7'
}

function isAscii(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80) return false
  return true
}

/**
 * Decodes one (non-zero) header block.
 *
 * @param block exactly 512 bytes
 * @param offset where the block starts in the archive, for the error
 * @throws InvalidHeaderError `checksum` when the checksum does not verify (`not-a-tar` for
 *   the first block of the archive), `number` when a numeric field Go parses is malformed
 */
export function decodeHeader(block: Uint8Array, offset: number): RawHeader {
  const format = blockFormat(block)
  if (format === null) {
    throw new InvalidHeaderError(
      offset === 0 ? 'not-a-tar' : 'checksum',
      offset,
      offset === 0 ? 'the first block is not a tar header (its checksum does not verify)' : 'header checksum mismatch',
    )
  }
  const bad: string[] = []
  const num = (field: string, start: number, length: number): number => {
    const v = parseNumeric(block, start, length)
    if (Number.isNaN(v)) {
      bad.push(field)
      return 0
    }
    return v
  }
  let name: Buffer = fieldString(block, 0, 100)
  const size = num('size', 124, 12)
  const mode = num('mode', 100, 8)
  const uid = num('uid', 108, 8)
  const gid = num('gid', 116, 8)
  const mtime = num('mtime', 136, 12)
  const linkname = fieldString(block, 157, 100)
  let uname: Buffer = EMPTY
  let gname: Buffer = EMPTY
  let devmajor = 0
  let devminor = 0
  let atime: number | undefined
  let ctime: number | undefined
  let prefix: Buffer = EMPTY
  if (format !== 'v7') {
    uname = fieldString(block, 265, 32)
    gname = fieldString(block, 297, 32)
    devmajor = num('devmajor', 329, 8)
    devminor = num('devminor', 337, 8)
    if (format === 'ustar') {
      prefix = fieldString(block, 345, 155)
    } else if (format === 'star') {
      prefix = fieldString(block, 345, 131)
      atime = num('atime', 476, 12)
      ctime = num('ctime', 488, 12)
    } else {
      // GNU has no prefix, but Go < 1.8 wrote one into the atime/ctime area. Go reads those
      // fields skeptically and, when they do not parse, takes the area as a prefix if it is
      // ASCII (golang/go#12594); we must build the same name.
      const a = block[345] !== 0 ? parseNumeric(block, 345, 12) : undefined
      const c = block[357] !== 0 ? parseNumeric(block, 357, 12) : undefined
      if ((a !== undefined && Number.isNaN(a)) || (c !== undefined && Number.isNaN(c))) {
        const p = fieldString(block, 345, 155)
        if (isAscii(p)) prefix = p
      } else {
        atime = a
        ctime = c
      }
    }
  }
  if (bad.length > 0) {
    throw new InvalidHeaderError('number', offset, `malformed numeric field(s): ${bad.join(', ')}`)
  }
  if (prefix.length > 0) name = Buffer.concat([prefix, SLASH, name])
  // Optional fields are added after the literal: spreading conditional literals into it
  // takes V8's slow runtime path, and this runs for every header.
  const h: { -readonly [K in keyof RawHeader]: RawHeader[K] } = {
    name,
    typeflag: block[156]!,
    mode,
    uid,
    gid,
    size,
    mtime,
    linkname,
    uname,
    gname,
    devmajor,
    devminor,
    format,
  }
  if (atime !== undefined) h.atime = atime
  if (ctime !== undefined) h.ctime = ctime
  return h
}

const EMPTY = Buffer.alloc(0)
const SLASH = Buffer.from('/')
