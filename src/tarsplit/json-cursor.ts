/**
 * A minimal JSON reader over bytes, internal to the tar-split module (go-json.ts decodes
 * entries with it). `JSON.parse` cannot do what Go's decoder does here: notice sizes beyond
 * 2^53 instead of rounding them, replace each invalid UTF-8 byte in a string by U+FFFD (Go
 * does it per byte, TextDecoder per maximal subpart), and refuse absurd nesting without
 * recursing.
 */
import { MetadataFormatError } from './errors.js'

/** Go's `maxNestingDepth` for `encoding/json`. */
const MAX_DEPTH = 10_000

/** A position in one JSON value's bytes; errors name the stream line. */
export class JsonCursor {
  /** Offset of the next byte to read in `buf`. */
  pos = 0
  readonly #bytes: Buffer
  /**
   * @param buf the bytes of one JSON value (and surrounding whitespace)
   * @param line the 1-based stream line `buf` starts on, for error messages
   */
  constructor(
    readonly buf: Uint8Array,
    readonly line: number,
  ) {
    this.#bytes = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  /** Offset of the next `byte` at or after `from`, or -1 (a native scan). */
  indexOf(byte: number, from: number): number {
    return this.#bytes.indexOf(byte, from)
  }

  /** Bytes [start, end) as a latin1 string (one character per byte). */
  latin1(start: number, end: number): string {
    return this.#bytes.toString('latin1', start, end)
  }

  /** The byte at the cursor, or -1 at the end. */
  peek(): number {
    return this.pos < this.buf.length ? this.buf[this.pos]! : -1
  }

  /** Moves past `n` bytes already inspected. */
  advance(n: number): void {
    this.pos += n
  }

  /** True when every byte was consumed. */
  atEnd(): boolean {
    return this.pos >= this.buf.length
  }

  /** Skips JSON whitespace (space, tab, CR, LF: Go's set). */
  skipSpace(): void {
    const b = this.buf
    let p = this.pos
    while (p < b.length && (b[p] === 0x20 || b[p] === 0x0a || b[p] === 0x0d || b[p] === 0x09)) p++
    this.pos = p
  }

  /** Consumes `byte` or throws `MetadataFormatError` (with `what` as the detail). */
  expect(byte: number, what?: string): void {
    if (this.peek() !== byte) throw this.error(what ?? `expected '${String.fromCharCode(byte)}'`)
    this.pos++
  }

  /** Consumes the literal `word` or throws. */
  literal(word: 'null' | 'true' | 'false'): void {
    for (let i = 0; i < word.length; i++) {
      if (this.buf[this.pos + i] !== word.charCodeAt(i)) throw this.error(`invalid literal, expected ${word}`)
    }
    this.pos += word.length
  }

  /** An error naming the line of byte `at` (default: the cursor). */
  error(detail: string, at = this.pos): MetadataFormatError {
    let line = this.line
    const end = Math.min(at, this.buf.length)
    for (let i = 0; i < end; i++) if (this.buf[i] === 0x0a) line++
    const what = at >= this.buf.length ? 'unexpected end of input' : `at byte ${at} of the value`
    return new MetadataFormatError(`${detail} (${what})`, line)
  }
}

function hex4(cur: JsonCursor, at: number): number {
  let v = 0
  for (let i = 0; i < 4; i++) {
    const c = cur.buf[at + i]
    let d: number
    if (c === undefined) throw cur.error('truncated \\u escape', at + i)
    else if (c >= 0x30 && c <= 0x39) d = c - 0x30
    else if (c >= 0x61 && c <= 0x66) d = c - 0x57
    else if (c >= 0x41 && c <= 0x46) d = c - 0x37
    else throw cur.error('invalid \\u escape', at + i)
    v = (v << 4) | d
  }
  return v
}

/** Length of the valid UTF-8 sequence at `p` by Go's `utf8.DecodeRune` rules, or 0. */
function utf8Length(b: Uint8Array, p: number): number {
  const c = b[p]!
  const c1 = b[p + 1] ?? 0
  const cont = (x: number | undefined): boolean => x !== undefined && (x & 0xc0) === 0x80
  if (c >= 0xc2 && c <= 0xdf) return cont(c1) ? 2 : 0
  if (c >= 0xe0 && c <= 0xef) {
    const lo = c === 0xe0 ? 0xa0 : 0x80
    const hi = c === 0xed ? 0x9f : 0xbf
    return c1 >= lo && c1 <= hi && cont(b[p + 2]) ? 3 : 0
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const lo = c === 0xf0 ? 0x90 : 0x80
    const hi = c === 0xf4 ? 0x8f : 0xbf
    return c1 >= lo && c1 <= hi && cont(b[p + 2]) && cont(b[p + 3]) ? 4 : 0
  }
  return 0
}

const REPLACEMENT = Buffer.from('\ufffd', 'utf8')

/** Reads a JSON string at the cursor and returns its bytes as Go's `unquote` would. */
export function readGoString(cur: JsonCursor): Buffer {
  const b = cur.buf
  cur.expect(0x22)
  const start = cur.pos
  let p = start
  // Fast path: plain ASCII without escapes (every base64 payload).
  while (p < b.length) {
    const c = b[p]!
    if (c === 0x22) {
      cur.pos = p + 1
      return Buffer.from(b.subarray(start, p))
    }
    if (c === 0x5c || c < 0x20 || c >= 0x80) break
    p++
  }
  const parts: Uint8Array[] = [b.subarray(start, p)]
  let run = p
  const flush = (): void => {
    if (p > run) parts.push(b.subarray(run, p))
  }
  while (p < b.length) {
    const c = b[p]!
    if (c === 0x22) {
      flush()
      cur.pos = p + 1
      return Buffer.concat(parts)
    }
    if (c < 0x20) throw cur.error('invalid control character in a string', p)
    if (c < 0x80) {
      if (c !== 0x5c) {
        p++
        continue
      }
      flush()
      const e = b[p + 1]
      const simple: Record<number, number> = { 0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 8, 0x66: 12, 0x6e: 10, 0x72: 13, 0x74: 9 }
      if (e !== undefined && simple[e] !== undefined) {
        parts.push(Buffer.of(simple[e]!))
        p += 2
      } else if (e === 0x75) {
        let cp = hex4(cur, p + 2)
        p += 6
        if (cp >= 0xd800 && cp <= 0xdfff) {
          // A valid surrogate pair is one character; anything else becomes U+FFFD (Go).
          const pairOk = cp <= 0xdbff && b[p] === 0x5c && b[p + 1] === 0x75
          const lo = pairOk ? hex4(cur, p + 2) : 0
          if (pairOk && lo >= 0xdc00 && lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00)
            p += 6
          } else {
            cp = 0xfffd
          }
        }
        parts.push(Buffer.from(String.fromCodePoint(cp), 'utf8'))
      } else {
        throw cur.error('invalid escape in a string', p)
      }
      run = p
      continue
    }
    const n = utf8Length(b, p)
    if (n === 0) {
      // Go replaces each invalid byte by U+FFFD and resynchronises on the next one.
      flush()
      parts.push(REPLACEMENT)
      p++
      run = p
    } else {
      p += n
    }
  }
  throw cur.error('unterminated string')
}

/** Scans a JSON number's grammar; tells whether it is an integer literal. */
function scanNumber(cur: JsonCursor): boolean {
  const b = cur.buf
  let p = cur.pos
  const digits = (): number => {
    const s = p
    while (p < b.length && b[p]! >= 0x30 && b[p]! <= 0x39) p++
    return p - s
  }
  if (b[p] === 0x2d) p++
  if (b[p] === 0x30) p++
  else if (digits() === 0) throw cur.error('invalid number', p)
  let integer = true
  if (b[p] === 0x2e) {
    p++
    integer = false
    if (digits() === 0) throw cur.error('invalid number', p)
  }
  if (b[p] === 0x65 || b[p] === 0x45) {
    p++
    integer = false
    if (b[p] === 0x2b || b[p] === 0x2d) p++
    if (digits() === 0) throw cur.error('invalid number', p)
  }
  cur.pos = p
  return integer
}

/**
 * Reads a JSON number. Returns its value when it is an integer literal (no fraction, no
 * exponent: Go refuses those for an int field too) or `null` when it is not; throws when it
 * is malformed or beyond ±(2^53 − 1), which a JavaScript number cannot hold exactly.
 */
export function readInteger(cur: JsonCursor): number | null {
  const start = cur.pos
  if (!scanNumber(cur)) return null
  const text = cur.latin1(start, cur.pos)
  const value = Number(text)
  if (!Number.isSafeInteger(value) || (text.length > 15 && BigInt(text) !== BigInt(value))) {
    throw cur.error(`integer ${text} is beyond 2^53 - 1`, start)
  }
  return value === 0 ? 0 : value // no -0
}

/** Validates and skips one JSON value of any kind, iteratively (no recursion). */
export function skipValue(cur: JsonCursor): void {
  const closers: number[] = []
  const readKey = (): void => {
    cur.skipSpace()
    if (cur.peek() !== 0x22) throw cur.error('expected a string key')
    readGoString(cur)
    cur.skipSpace()
    cur.expect(0x3a)
  }
  for (;;) {
    cur.skipSpace()
    const c = cur.peek()
    if (c === 0x7b || c === 0x5b) {
      cur.advance(1)
      cur.skipSpace()
      const close = c === 0x7b ? 0x7d : 0x5d
      if (cur.peek() === close) {
        cur.advance(1)
      } else {
        if (closers.length >= MAX_DEPTH) throw cur.error(`nesting deeper than ${MAX_DEPTH}`)
        closers.push(close)
        if (close === 0x7d) readKey()
        continue
      }
    } else if (c === 0x22) readGoString(cur)
    else if (c === 0x74) cur.literal('true')
    else if (c === 0x66) cur.literal('false')
    else if (c === 0x6e) cur.literal('null')
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) scanNumber(cur)
    else throw cur.error('expected a JSON value')
    // Close every container that ends here; stop at a ',' that starts the next value.
    for (;;) {
      const top = closers[closers.length - 1]
      if (top === undefined) return
      cur.skipSpace()
      const d = cur.peek()
      cur.advance(1)
      if (d === top) {
        closers.pop()
        continue
      }
      if (d !== 0x2c) throw cur.error(`expected ',' or '${String.fromCharCode(top)}'`, cur.pos - 1)
      if (top === 0x7d) readKey()
      break
    }
  }
}
