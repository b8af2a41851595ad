/**
 * Encoding tar headers for exported layers: USTAR blocks, preceded by a PAX extended header
 * when a value does not fit USTAR (long or non-ASCII names and link targets, ids above
 * 0o7777777, sizes of 8 GiB and more, sub-second or out-of-range mtimes, xattrs).
 *
 * Why not tar-stream's packer: it builds PAX records as JS strings and encodes them as UTF-8,
 * so a binary xattr value (`security.capability` is binary) or a non-UTF-8 name would come
 * out changed; it also writes ids above 0o777777 as 0o777777 and wraps mtimes past 2038.
 * Layers need all of these exactly, hence this small pure encoder (Go's archive/tar rules:
 * USTAR fields only for ASCII values that fit, PAX keys sorted, times as `sec.nsec`).
 */

/** Member types an export writes. */
export type ExportType = 'file' | 'hardlink' | 'symlink' | 'char-device' | 'block-device' | 'directory' | 'fifo'

/** One member's header, values as they are on disk. */
export interface ExportHeader {
  /** Full name as bytes (directories end with `/`). */
  readonly name: Buffer
  readonly type: ExportType
  /** Permission bits (07777). */
  readonly mode: number
  readonly uid: number
  readonly gid: number
  /** Content size; 0 for everything but regular files. */
  readonly size: number
  readonly mtime: { readonly sec: number; readonly nsec: number }
  /** Symlink target or hardlink target (a member name); empty otherwise. */
  readonly linkname: Buffer
  readonly devmajor: number
  readonly devminor: number
  /** Xattrs, written as `SCHILY.xattr.<name>` records. */
  readonly xattrs: ReadonlyMap<string, Buffer>
}

/** The tar block size: headers are one block, contents are padded to whole blocks. */
export const BLOCK_SIZE = 512
/** Two zero blocks end an archive (as Go's Writer.Close writes it). */
export const END_OF_ARCHIVE: Buffer = Buffer.alloc(2 * BLOCK_SIZE)

const TYPEFLAGS: Readonly<Record<ExportType, number>> = {
  file: 0x30,
  hardlink: 0x31,
  symlink: 0x32,
  'char-device': 0x33,
  'block-device': 0x34,
  directory: 0x35,
  fifo: 0x36,
}
const TYPE_PAX = 0x78

const MAX_OCTAL_8 = 0o7777777 // 7 digits + NUL in an 8-byte field
const MAX_OCTAL_12 = 0o77777777777 // 11 digits + NUL in a 12-byte field

/** The zero padding after `size` bytes of content, up to the next block. */
export function padding(size: number): Buffer {
  const length = paddingLength(size)
  return length === 0 ? EMPTY : Buffer.alloc(length)
}

/** The length of {@link padding}: 0 to 511 bytes. */
export function paddingLength(size: number): number {
  const rest = size % BLOCK_SIZE
  return rest === 0 ? 0 : BLOCK_SIZE - rest
}
const EMPTY: Buffer = Buffer.alloc(0)

/**
 * The header blocks of one member: a PAX `x` header (with its data) when needed, then the
 * USTAR block. Throws RangeError for device numbers that no tar format can hold in PAX
 * (there is no standard record for them).
 */
export function encodeHeader(h: ExportHeader): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE)
  const pax = encodeHeaderInto(h, block)
  return pax === null ? block : Buffer.concat([pax, block])
}

/**
 * {@link encodeHeader} for a writer of many headers: the USTAR block goes into the first 512
 * bytes of `block` (overwritten), and the PAX blocks that must come before it, if any, are
 * returned. Allocating a fresh 512-byte Buffer per header costs more than encoding it.
 */
export function encodeHeaderInto(h: ExportHeader, block: Buffer): Buffer | null {
  const pax = new Map<string, Buffer>()
  let name: Buffer = h.name
  let prefix: Buffer = EMPTY
  let paxPath = false
  if (!isAscii(name)) {
    paxPath = true
  } else if (name.length > 100) {
    const split = splitUstarName(name)
    if (split === null) paxPath = true
    else [prefix, name] = split
  }
  if (paxPath) pax.set('path', h.name)
  const paxLink = h.linkname.length > 100 || !isAscii(h.linkname)
  if (paxLink) pax.set('linkpath', h.linkname)
  if (h.uid > MAX_OCTAL_8) pax.set('uid', Buffer.from(String(h.uid)))
  if (h.gid > MAX_OCTAL_8) pax.set('gid', Buffer.from(String(h.gid)))
  if (h.size > MAX_OCTAL_12) pax.set('size', Buffer.from(String(h.size)))
  const mtimeFits = h.mtime.sec >= 0 && h.mtime.sec <= MAX_OCTAL_12
  if (!mtimeFits || h.mtime.nsec !== 0) pax.set('mtime', Buffer.from(formatPaxTime(h.mtime.sec, h.mtime.nsec)))
  for (const [key, value] of h.xattrs) pax.set(`SCHILY.xattr.${key}`, value)
  if (h.devmajor > MAX_OCTAL_8 || h.devminor > MAX_OCTAL_8) {
    throw new RangeError(`device ${h.devmajor}:${h.devminor} does not fit a tar header`)
  }

  block.fill(0, 0, BLOCK_SIZE)
  if (paxPath) writeBytes(block, 0, 100, asciiOnly(h.name))
  else {
    writeBytes(block, 0, 100, name)
    writeBytes(block, 345, 155, prefix)
  }
  writeOctal(block, 100, 8, h.mode & 0o7777)
  writeOctal(block, 108, 8, h.uid > MAX_OCTAL_8 ? 0 : h.uid)
  writeOctal(block, 116, 8, h.gid > MAX_OCTAL_8 ? 0 : h.gid)
  writeOctal(block, 124, 12, h.size > MAX_OCTAL_12 ? 0 : h.size)
  writeOctal(block, 136, 12, mtimeFits ? h.mtime.sec : 0)
  block[156] = TYPEFLAGS[h.type]
  writeBytes(block, 157, 100, paxLink ? asciiOnly(h.linkname) : h.linkname)
  writeMagic(block)
  if (h.type === 'char-device' || h.type === 'block-device') {
    writeOctal(block, 329, 8, h.devmajor)
    writeOctal(block, 337, 8, h.devminor)
  }
  writeChecksum(block)
  if (pax.size === 0) return null

  const data = encodePaxRecords(pax)
  const paxBlock = Buffer.alloc(BLOCK_SIZE)
  writeBytes(paxBlock, 0, 100, paxHeaderName(h.name))
  writeOctal(paxBlock, 100, 8, 0)
  writeOctal(paxBlock, 108, 8, 0)
  writeOctal(paxBlock, 116, 8, 0)
  writeOctal(paxBlock, 124, 12, data.length)
  writeOctal(paxBlock, 136, 12, 0)
  paxBlock[156] = TYPE_PAX
  writeMagic(paxBlock)
  writeChecksum(paxBlock)
  return Buffer.concat([paxBlock, data, padding(data.length)])
}

/** PAX records `"<len> <key>=<value>\n"`, keys sorted (Go's order), values as raw bytes. */
export function encodePaxRecords(records: ReadonlyMap<string, Buffer>): Buffer {
  const parts: Buffer[] = []
  for (const key of [...records.keys()].sort()) {
    const value = records.get(key)!
    const body = Buffer.byteLength(key) + value.length + 3 // ' ', '=', '\n'
    let len = body + String(body).length
    if (String(len).length !== String(body).length) len++
    parts.push(Buffer.from(`${len} ${key}=`), value, NEWLINE)
  }
  return Buffer.concat(parts)
}
const NEWLINE = Buffer.from('\n')

/** `sec.nsec` with trailing zeros trimmed, as Go's formatPAXTime (negative times included). */
export function formatPaxTime(sec: number, nsec: number): string {
  if (nsec === 0) return String(sec)
  // A negative time with a fraction: -1.25 is sec -2 + 0.75, written "-1.25".
  const sign = sec < 0 ? '-' : ''
  const s = sec < 0 ? -(sec + 1) : sec
  const n = sec < 0 ? 1e9 - nsec : nsec
  return `${sign}${s}.${String(n).padStart(9, '0').replace(/0+$/, '')}`
}

/** Go's splitUSTARPath: a `/` such that prefix ≤ 155 and name ≤ 100 bytes, name not empty. */
function splitUstarName(name: Buffer): [Buffer, Buffer] | null {
  let i = Math.min(name.length - 1, 155)
  while (i > 0 && name[i] !== 0x2f) i--
  if (i <= 0) return null
  const rest = name.subarray(i + 1)
  if (rest.length === 0 || rest.length > 100) return null
  return [name.subarray(0, i), rest]
}

/** Go's PAX header name: `dir/PaxHeaders.0/base`, ASCII only, cut at 100 bytes. */
function paxHeaderName(name: Buffer): Buffer {
  const s = asciiOnly(name).toString('latin1').replace(/\/+$/, '')
  const slash = s.lastIndexOf('/')
  const full = `${s.slice(0, slash + 1)}PaxHeaders.0/${s.slice(slash + 1)}`
  return Buffer.from(full.slice(0, 100), 'latin1')
}

function isAscii(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80) return false
  return true
}

function asciiOnly(b: Buffer): Buffer {
  return isAscii(b) ? b : Buffer.from(b.filter((c) => c < 0x80))
}

function writeBytes(block: Buffer, offset: number, size: number, value: Buffer): void {
  value.copy(block, offset, 0, Math.min(size, value.length))
}

/** Zero-padded octal digits filling the field but its last byte, which stays NUL. */
function writeOctal(block: Buffer, offset: number, size: number, value: number): void {
  // Digit by digit from the right: no string per field (a header has up to ten of them).
  // Values reach 8^11, past 32 bits, hence % and Math.floor rather than bit operations.
  let v = value
  for (let i = offset + size - 2; i >= offset; i--) {
    block[i] = 0x30 + (v % 8)
    v = Math.floor(v / 8)
  }
}

/** USTAR's magic and version, POSIX form. */
const MAGIC = Buffer.from('ustar\x0000', 'latin1')

function writeMagic(block: Buffer): void {
  MAGIC.copy(block, 257)
}

/** The checksum: the sum of the block's bytes with the field itself as spaces. */
function writeChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156)
  let sum = 0
  for (let i = 0; i < BLOCK_SIZE; i++) sum += block[i]!
  // Six octal digits, NUL, space (at most 512 * 255 = 0o376000, so six always suffice).
  writeOctal(block, 148, 7, sum)
  block[154] = 0
  block[155] = 0x20
}
