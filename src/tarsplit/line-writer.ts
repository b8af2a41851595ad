/**
 * Writes a tar-split JSON line straight into a caller's buffer, the same bytes as
 * `encodeLine` (go-json.ts), without building strings for the common entries.
 *
 * Why: a register packs two lines per member (110k for a layer of 55k files), and building
 * each as strings (a header's base64 alone is ~700 characters, then the concatenation) made
 * the packer allocate several times what the whole parse does; at that rate V8 scavenges
 * often enough that what is briefly alive at each scavenge adds up, and it grows the young
 * generation (measured: 16 MiB of young generation where the parse alone needs 8, issue #6).
 * Segments and plain names are written here byte by byte; anything rarer (a name to escape,
 * a name that is not UTF-8, sparse extents) falls back to the string encoder.
 */
import { isUtf8 } from 'node:buffer'
import { FILE_TYPE, SEGMENT_TYPE } from './entry.js'
import type { EntryInput } from './entry.js'

const B64 = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', 'latin1')
const EQUALS = 0x3d

const SEGMENT_HEAD = Buffer.from('{"type":2,"payload":', 'latin1')
const FILE_HEAD = Buffer.from('{"type":1', 'latin1')
const NAME_KEY = Buffer.from(',"name":"', 'latin1')
const SIZE_KEY = Buffer.from(',"size":', 'latin1')
const PAYLOAD_KEY = Buffer.from(',"payload":', 'latin1')
const POSITION_KEY = Buffer.from(',"position":', 'latin1')
const NULL = Buffer.from('null', 'latin1')
const TAIL = Buffer.from('}\n', 'latin1')

/** Room for the fixed parts of any line: keys, braces, two safe integers, `null`s. */
const FIXED_ROOM = 128

/**
 * Writes the line of `entry` at `position` into `out` from `offset`.
 *
 * @returns the offset after the line; or -1 when it might not fit (nothing useful written:
 *   write it to a fresh buffer, or use `encodeLine`); or -2 when this entry takes the string
 *   path (use `lineText`/`encodeLine`)
 * @throws MetadataFormatError as `encodeLine` for an entry that cannot be represented
 */
export function writeLine(entry: EntryInput, position: number, out: Buffer, offset: number): number {
  if (entry.type === SEGMENT_TYPE) {
    const payload = entry.payload
    const room = FIXED_ROOM + (payload === null ? 0 : base64Length(payload.length))
    if (!checkInteger(position)) return -2
    if (offset + room > out.length) return -1
    let at = offset + SEGMENT_HEAD.copy(out, offset)
    at = writeBytes(payload, out, at)
    return finish(position, out, at)
  }
  if (entry.type !== FILE_TYPE || entry.sparse !== undefined) return -2
  const { name, size, payload } = entry
  if (!checkInteger(position) || !checkInteger(size) || !isPlainName(name)) return -2
  const room = FIXED_ROOM + name.length + (payload === null ? 0 : base64Length(payload.length))
  if (offset + room > out.length) return -1
  let at = offset + FILE_HEAD.copy(out, offset)
  if (name.length > 0) {
    at += NAME_KEY.copy(out, at)
    at += name.copy(out, at)
    out[at++] = 0x22
  }
  if (size !== 0) {
    at += SIZE_KEY.copy(out, at)
    at = writeInteger(size, out, at)
  }
  at += PAYLOAD_KEY.copy(out, at)
  at = writeBytes(payload, out, at)
  return finish(position, out, at)
}

function finish(position: number, out: Buffer, at: number): number {
  at += POSITION_KEY.copy(out, at)
  at = writeInteger(position, out, at)
  return at + TAIL.copy(out, at)
}

/**
 * Writes the decimal digits of a non-negative safe integer. Not `String(n)`: V8 keeps the
 * strings of numbers it converts in a cache, so each position's string (all different)
 * outlived the next scavenge, and that alone grew the young generation.
 */
function writeInteger(n: number, out: Buffer, at: number): number {
  let digits = 1
  for (let p = 10; p <= n; p *= 10) digits++
  for (let i = at + digits - 1; i >= at; i--) {
    out[i] = 0x30 + (n % 10)
    n = Math.floor(n / 10)
  }
  return at + digits
}

/** Non-negative safe integers only; others take the string path, which reports them. */
function checkInteger(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0
}

/**
 * A name Go writes as is between quotes: valid UTF-8 with no byte that its encoder escapes
 * (controls, `"`, `\`, and for HTML safety `<`, `>`, `&`, U+2028 and U+2029).
 */
function isPlainName(name: Buffer): boolean {
  let high = false
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!
    if (c < 0x20 || c === 0x22 || c === 0x5c || c === 0x3c || c === 0x3e || c === 0x26) return false
    if (c >= 0x80) {
      high = true
      // U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
      if (c === 0xe2 && name[i + 1] === 0x80 && (name[i + 2] === 0xa8 || name[i + 2] === 0xa9)) return false
    }
  }
  return !high || isUtf8(name)
}

function base64Length(n: number): number {
  return 4 * Math.ceil(n / 3) + 2
}

/** `null`, or the bytes as a quoted standard base64 string with padding. */
function writeBytes(bytes: Buffer | null, out: Buffer, at: number): number {
  if (bytes === null) return at + NULL.copy(out, at)
  out[at++] = 0x22
  const n = bytes.length
  const whole = n - (n % 3)
  let i = 0
  for (; i < whole; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out[at] = B64[v >>> 18]!
    out[at + 1] = B64[(v >>> 12) & 63]!
    out[at + 2] = B64[(v >>> 6) & 63]!
    out[at + 3] = B64[v & 63]!
    at += 4
  }
  if (n - whole === 1) {
    const v = bytes[i]!
    out[at] = B64[v >>> 2]!
    out[at + 1] = B64[(v & 3) << 4]!
    out[at + 2] = EQUALS
    out[at + 3] = EQUALS
    at += 4
  } else if (n - whole === 2) {
    const v = (bytes[i]! << 8) | bytes[i + 1]!
    out[at] = B64[v >>> 10]!
    out[at + 1] = B64[(v >>> 4) & 63]!
    out[at + 2] = B64[(v & 15) << 2]!
    out[at + 3] = EQUALS
    at += 4
  }
  out[at++] = 0x22
  return at
}
