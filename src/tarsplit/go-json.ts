/**
 * One tar-split entry ⇄ one JSON value, byte-compatible with Go's `encoding/json` as
 * `vbatts/tar-split`'s `storage.Entry` uses it. Pure: no streams, no I/O (the packer and
 * unpacker wrap these).
 *
 * Writing matches Go ≥ 1.22 byte for byte: keys in struct order, `omitempty` on `name`,
 * `name_raw` and `size`, `payload` always present, HTML-safe string escaping. Reading accepts
 * what Go's decoder accepts for this struct (case-insensitive keys, unknown keys skipped, last
 * duplicate wins, base64 with CR/LF inside) and refuses, as our hardening, whatever could not
 * be replayed faithfully (unknown types, negative or imprecise sizes, non-integer numbers).
 */
import { isUtf8 } from 'node:buffer'
import { FILE_TYPE, SEGMENT_TYPE } from './entry.js'
import type { Entry, EntryInput, FileEntry, SegmentEntry, SparseExtent } from './entry.js'
import { MetadataFormatError } from './errors.js'
import { JsonCursor, readGoString, readInteger, skipValue } from './json-cursor.js'

/** Go's `json.Encoder` escapes these even though JSON does not require it (HTML safety). */
const GO_EXTRA_ESCAPES = /[<>&\u2028\u2029]/g
const GO_EXTRA_ESCAPED: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
}

/**
 * Quotes a string as Go's encoder does with HTML escaping on. `JSON.stringify` already
 * matches Go ≥ 1.22 for the rest: `\b` `\f` `\n` `\r` `\t`, other controls as lowercase
 * `\u00xx`, DEL and all other characters raw (the input comes from valid UTF-8, so it has no
 * lone surrogates for `JSON.stringify` to escape).
 */
function goQuote(s: string): string {
  // Most names need no escape at all; one scan is cheaper than stringify plus replace.
  if (!NEEDS_ESCAPE.test(s)) return `"${s}"`
  return JSON.stringify(s).replace(GO_EXTRA_ESCAPES, (c) => GO_EXTRA_ESCAPED[c]!)
}
const NEEDS_ESCAPE = /[\u0000-\u001f"\\<>&\u2028\u2029]/

function checkCount(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new MetadataFormatError(`cannot encode entry: ${what} ${n} is not a non-negative safe integer`)
  }
}

/**
 * Encodes one entry as the exact line Go's packer writes, `\n` included.
 *
 * A FileEntry's `sparse` extents (our extension) are written after `payload` as
 * `"sparse":[[offset,length],…]`; Go readers ignore the key.
 *
 * @throws MetadataFormatError when the entry cannot be represented (a negative or unsafe
 *   size or position, an unknown type).
 */
export function encodeEntry(entry: Entry): Buffer {
  return encodeLine(entry, entry.position)
}

/**
 * {@link encodeEntry} for an entry not numbered yet (the packer's path: no copy of the
 * entry to add its position).
 */
export function encodeLine(entry: EntryInput, position: number): Buffer {
  return Buffer.from(lineText(entry, position), 'utf8')
}

/**
 * The line of {@link encodeLine} as a string (its UTF-8 encoding is the line), for a writer
 * that copies it straight into a buffer of its own rather than holding a Buffer per line.
 *
 * @throws MetadataFormatError as {@link encodeEntry}
 */
export function lineText(entry: EntryInput, position: number): string {
  checkCount('position', position)
  let out: string
  if (entry.type === SEGMENT_TYPE) {
    return `{"type":2,"payload":${encodeBytes(entry.payload)},"position":${position}}\n`
  } else if (entry.type === FILE_TYPE) {
    checkCount('size', entry.size)
    out = '{"type":1'
    if (entry.name.length > 0) {
      out += isUtf8(entry.name)
        ? `,"name":${goQuote(entry.name.toString('utf8'))}`
        : `,"name_raw":"${entry.name.toString('base64')}"`
    }
    if (entry.size !== 0) out += `,"size":${entry.size}`
    out += `,"payload":${encodeBytes(entry.payload)}`
    if (entry.sparse !== undefined) {
      out += ',"sparse":['
      entry.sparse.forEach((e, i) => {
        checkCount('sparse offset', e.offset)
        checkCount('sparse length', e.length)
        out += `${i > 0 ? ',' : ''}[${e.offset},${e.length}]`
      })
      out += ']'
    }
  } else {
    throw new MetadataFormatError(`cannot encode entry of type ${String((entry as { type: unknown }).type)}`)
  }
  return `${out},"position":${position}}\n`
}

function encodeBytes(b: Buffer | null): string {
  return b === null ? 'null' : `"${b.toString('base64')}"`
}

/** Options of {@link decodeEntry}. */
export interface DecodeEntryOptions {
  /** 1-based line of the stream where `json` starts, for error messages. Default 1. */
  readonly line?: number
}

/** The fields of `storage.Entry` plus our `sparse`, by their folded JSON key. */
type Field = 'type' | 'name' | 'name_raw' | 'size' | 'payload' | 'position' | 'sparse'
/** The known fields seen in one object: where each value starts, and the value. */
type Fields = { [F in Field]?: { readonly start: number; readonly value: unknown } }
const FIELDS: ReadonlySet<string> = new Set<Field>(['type', 'name', 'name_raw', 'size', 'payload', 'position', 'sparse'])

/**
 * Folds a key as Go's decoder matches field names: ASCII case-insensitively, and with the
 * Unicode simple folds that reach ASCII letters (U+017F ſ → s, U+212A Kelvin sign → k).
 */
function foldKey(key: string): string {
  if (FIELDS.has(key)) return key // the common case: Go's own spelling
  return key.toLowerCase().replace(/\u017f/g, 's').replace(/\u212a/g, 'k')
}

/**
 * Decodes one JSON value (exactly one, optional surrounding whitespace) into an Entry.
 * The result is frozen.
 *
 * @throws MetadataFormatError for invalid JSON, a value that is not an object, wrong value
 *   types, an unknown or missing `type`, a negative size or one above 2^53 − 1, a
 *   non-integer number, malformed base64, or sparse extents that overlap or exceed `size`.
 */
export function decodeEntry(json: Uint8Array, options: DecodeEntryOptions = {}): Entry {
  const cur = new JsonCursor(json, options.line ?? 1)
  cur.skipSpace()
  if (cur.peek() !== 0x7b) {
    throw cur.error(
      cur.peek() === 0x6e ? 'a top-level null is not an entry' : 'expected a JSON object (an entry)',
    )
  }
  const fields: Fields = {}
  cur.advance(1)
  cur.skipSpace()
  if (cur.peek() === 0x7d) {
    cur.advance(1)
  } else {
    for (;;) {
      cur.skipSpace()
      if (cur.peek() !== 0x22) throw cur.error('expected a string key')
      const key = foldKey(readGoString(cur).toString('utf8'))
      cur.skipSpace()
      cur.expect(0x3a)
      cur.skipSpace()
      const start = cur.pos
      if (FIELDS.has(key)) {
        const value = readFieldValue(cur, key as Field)
        // Go ignores a JSON null for a non-pointer field: the previous value stays.
        if (value !== undefined || key === 'payload' || key === 'name_raw' || key === 'sparse') {
          fields[key as Field] = { start, value }
        }
      } else {
        skipValue(cur)
      }
      cur.skipSpace()
      const c = cur.peek()
      cur.advance(1)
      if (c === 0x7d) break
      if (c !== 0x2c) throw cur.error("expected ',' or '}' after an object value", cur.pos - 1)
    }
  }
  cur.skipSpace()
  if (!cur.atEnd()) throw cur.error('unexpected data after the entry')
  return buildEntry(cur, fields)
}

/**
 * Reads the value of a known field. Returns `undefined` for JSON `null` (for byte fields,
 * `null` means a nil slice and is returned as `null`).
 */
function readFieldValue(cur: JsonCursor, field: Field): unknown {
  const c = cur.peek()
  if (c === 0x6e) {
    cur.literal('null')
    return field === 'payload' || field === 'name_raw' ? null : undefined
  }
  switch (field) {
    case 'type':
    case 'size':
    case 'position': {
      if (c !== 0x2d && !(c >= 0x30 && c <= 0x39)) throw cur.error(`"${field}" must be a number`)
      const start = cur.pos
      const value = readInteger(cur)
      if (value === null) throw cur.error(`"${field}" must be an integer`, start)
      return value
    }
    case 'name':
      if (c !== 0x22) throw cur.error('"name" must be a string')
      return readGoString(cur)
    case 'name_raw':
    case 'payload': {
      if (c !== 0x22) throw cur.error(`"${field}" must be a base64 string`)
      const start = cur.pos
      const fast = fastBase64(cur, start)
      if (fast) return fast
      return decodeBase64(cur, readGoString(cur), field, start)
    }
    case 'sparse':
      return readExtents(cur)
  }
}

/**
 * Padded standard base64, together with `length % 4 === 0`: at most two `=`, only at the end.
 * (One character class runs far faster than a regex with a group per quantum.)
 */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * The common case, without a regex over every payload byte: a string with no escapes whose
 * bytes Node decodes to exactly 3/4 of its length minus the padding. Node's decoder skips
 * characters outside the alphabet and stops at an inner `=`, either of which yields fewer
 * bytes; it also accepts the URL-safe `-` and `_`, which Go refuses, hence their check.
 * Anything else takes the exact path. Returns undefined when the fast path does not apply.
 */
function fastBase64(cur: JsonCursor, start: number): Buffer | undefined {
  const end = cur.indexOf(0x22, start + 1)
  const len = end - start - 1
  if (end === -1 || len % 4 !== 0) return undefined
  const b = cur.buf
  const pad = len === 0 ? 0 : (b[end - 1] === 0x3d ? 1 : 0) + (b[end - 2] === 0x3d ? 1 : 0)
  const out = Buffer.from(cur.latin1(start + 1, end), 'base64')
  if (out.length !== (len / 4) * 3 - pad) return undefined
  const dash = cur.indexOf(0x2d, start + 1)
  const underscore = cur.indexOf(0x5f, start + 1)
  if ((dash !== -1 && dash < end) || (underscore !== -1 && underscore < end)) return undefined
  cur.pos = end + 1
  return out
}

/** Go's `base64.StdEncoding` as `encoding/json` uses it: padding required, CR/LF ignored. */
function decodeBase64(cur: JsonCursor, raw: Buffer, field: string, start: number): Buffer {
  let s = raw.toString('latin1')
  if (s.includes('\r') || s.includes('\n')) s = s.replace(/[\r\n]/g, '')
  if (s.length % 4 !== 0 || !BASE64.test(s)) throw cur.error(`"${field}" is not valid padded base64`, start)
  return Buffer.from(s, 'base64')
}

/** `[[offset,length],…]` of non-negative safe integers. */
function readExtents(cur: JsonCursor): SparseExtent[] {
  const out: SparseExtent[] = []
  cur.expect(0x5b, '"sparse" must be an array of [offset,length] pairs')
  cur.skipSpace()
  if (cur.peek() === 0x5d) {
    cur.advance(1)
    return out
  }
  for (;;) {
    cur.skipSpace()
    cur.expect(0x5b, '"sparse" must be an array of [offset,length] pairs')
    cur.skipSpace()
    const offset = readCount(cur, 'sparse offset')
    cur.skipSpace()
    cur.expect(0x2c, 'a sparse extent has two numbers')
    cur.skipSpace()
    const length = readCount(cur, 'sparse length')
    cur.skipSpace()
    cur.expect(0x5d, 'a sparse extent has two numbers')
    out.push(Object.freeze({ offset, length }))
    cur.skipSpace()
    const c = cur.peek()
    cur.advance(1)
    if (c === 0x5d) return out
    if (c !== 0x2c) throw cur.error("expected ',' or ']' in \"sparse\"", cur.pos - 1)
  }
}

function readCount(cur: JsonCursor, what: string): number {
  const start = cur.pos
  const c = cur.peek()
  if (c !== 0x2d && !(c >= 0x30 && c <= 0x39)) throw cur.error(`${what} must be a number`)
  const n = readInteger(cur)
  if (n === null || n < 0) throw cur.error(`${what} must be a non-negative integer`, start)
  return n
}

function buildEntry(cur: JsonCursor, fields: Fields): Entry {
  const type = fields.type
  const position = (fields.position?.value as number | undefined) ?? 0
  if (type === undefined) throw cur.error('the entry has no "type"', 0)
  if (type.value === SEGMENT_TYPE) {
    const payload = (fields.payload?.value as Buffer | null | undefined) ?? null
    const seg: SegmentEntry = { type: SEGMENT_TYPE, payload, position }
    return Object.freeze(seg)
  }
  if (type.value !== FILE_TYPE) {
    throw cur.error(`unknown entry type ${String(type.value)} (1 = file, 2 = segment)`, type.start)
  }
  const sizeField = fields.size
  const size = (sizeField?.value as number | undefined) ?? 0
  if (size < 0) throw cur.error(`negative size ${size}`, sizeField?.start)
  const raw = fields.name_raw?.value as Buffer | null | undefined
  const named = fields.name?.value as Buffer | undefined
  // Go's GetNameBytes: a non-empty name_raw wins over name.
  const name = raw && raw.length > 0 ? raw : (named ?? Buffer.alloc(0))
  const payload = (fields.payload?.value as Buffer | null | undefined) ?? null
  const sparseField = fields.sparse
  const sparse = sparseField?.value as SparseExtent[] | undefined
  if (sparse) checkExtents(cur, sparse, size, sparseField!.start)
  const file: FileEntry = sparse
    ? { type: FILE_TYPE, name, size, payload, sparse: Object.freeze(sparse), position }
    : { type: FILE_TYPE, name, size, payload, position }
  return Object.freeze(file)
}

/** Extents must be in order, not overlap, and end within the member's logical size. */
function checkExtents(cur: JsonCursor, extents: readonly SparseExtent[], size: number, at: number): void {
  let end = 0
  for (const e of extents) {
    if (e.offset < end) throw cur.error(`sparse extents overlap or are out of order at offset ${e.offset}`, at)
    end = e.offset + e.length
    if (end > size) throw cur.error(`sparse extent [${e.offset},${e.length}] ends beyond size ${size}`, at)
  }
}
