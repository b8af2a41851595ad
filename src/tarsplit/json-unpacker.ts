/**
 * The JSON unpacker: reads tar-split metadata as Go's `storage.NewJSONUnpacker` does, as a
 * stream of entries, without ever holding more than one JSON value in memory.
 *
 * States of the scanner (one pass over each chunk): `between` values (whitespace, counting
 * lines), `inside` an object (tracking nesting depth), `inString` (looking for the closing
 * quote, `escaped` after a backslash). A value is complete when the depth returns to 0; its
 * bytes then go to `decodeEntry`, which validates them fully.
 */
import { Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { FILE_TYPE } from './entry.js'
import type { Entry } from './entry.js'
import { DuplicatePathError, MetadataFormatError } from './errors.js'
import { decodeEntry } from './go-json.js'
import { goClean } from './go-path.js'
import { PathSet } from './path-set.js'

/** Default bound on one JSON value: a segment of 1 MiB is ≈ 1.4 MiB of base64. */
export const DEFAULT_MAX_VALUE_SIZE = 64 * 1024 * 1024

/** Options of {@link readEntries}. */
export interface ReadEntriesOptions {
  /**
   * `'auto'` (default) gunzips when the input starts with the gzip magic (1f 8b); `true`
   * always gunzips; `false` never does. Multi-member gzip is read to its end.
   */
  readonly gzip?: 'auto' | boolean
  /**
   * Largest JSON value (one entry, in bytes) accepted; a longer one is refused with
   * `MetadataFormatError` before it is buffered whole. Default 64 MiB.
   */
  readonly maxValueSize?: number
}

const GZIP_MAGIC_0 = 0x1f
const GZIP_MAGIC_1 = 0x8b

/**
 * Yields the entries of tar-split metadata in stream order.
 *
 * Values may be separated by any JSON whitespace or by nothing (Go's decoder does not need
 * newlines). Each FileEntry's name is checked against the earlier ones with Go's `path.Clean`
 * rule, as Go checks on read too. Entries are frozen. Breaking out of the loop destroys the
 * source.
 *
 * @throws MetadataFormatError (with the 1-based `line`) for malformed JSON, a truncated last
 *   value, a value larger than `maxValueSize`, anything but an object at the top level, or
 *   invalid gzip.
 * @throws DuplicatePathError (with `line`) for a repeated file path.
 */
export async function* readEntries(
  source: Readable | AsyncIterable<Buffer>,
  options: ReadEntriesOptions = {},
): AsyncGenerator<Entry, void, undefined> {
  const max = options.maxValueSize ?? DEFAULT_MAX_VALUE_SIZE
  // Off the heap, as in the packer (see path-set.ts): a tarStream of 55k files holds 55k names.
  const seen = new PathSet()
  const scanner = new ValueScanner(max)
  for await (const chunk of maybeGunzip(source, options.gzip ?? 'auto')) {
    for (const { bytes, line } of scanner.push(chunk)) {
      const entry = decodeEntry(bytes, { line })
      if (entry.type === FILE_TYPE) {
        if (!seen.add(goClean(entry.name))) throw new DuplicatePathError(entry.name, line)
      }
      yield entry
    }
  }
  scanner.end()
}

/** Detects gzip by its magic on the first bytes and decompresses as needed. */
async function* maybeGunzip(source: AsyncIterable<Buffer>, mode: 'auto' | boolean): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]()
  const head: Buffer[] = []
  let headBytes = 0
  let ended = false
  try {
    // Two bytes decide; a one-byte input cannot be gzip.
    while (mode === 'auto' && headBytes < 2) {
      const r = await it.next()
      if (r.done) {
        ended = true
        break
      }
      const chunk = toBuffer(r.value)
      head.push(chunk)
      headBytes += chunk.length
    }
    const first = Buffer.concat(head)
    const gz = mode === true || (mode === 'auto' && first[0] === GZIP_MAGIC_0 && first[1] === GZIP_MAGIC_1)
    if (!gz) {
      if (first.length > 0) yield first
      if (ended) return
      for (let r = await it.next(); !r.done; r = await it.next()) yield toBuffer(r.value)
      return
    }
    async function* rest(): AsyncGenerator<Buffer> {
      if (first.length > 0) yield first
      if (ended) return
      for (let r = await it.next(); !r.done; r = await it.next()) yield toBuffer(r.value)
    }
    const gunzip = createGunzip()
    const input = Readable.from(rest(), { objectMode: false })
    input.on('error', (err) => gunzip.destroy(err))
    input.pipe(gunzip)
    try {
      for await (const chunk of gunzip) yield chunk as Buffer
    } catch (err) {
      // zlib's errors carry a Z_* code (Z_DATA_ERROR, Z_BUF_ERROR…); the source's do not.
      const code = (err as NodeJS.ErrnoException | undefined)?.code
      if (err instanceof Error && typeof code === 'string' && code.startsWith('Z_')) {
        throw new MetadataFormatError(`invalid gzip data: ${err.message}`, undefined, { cause: err })
      }
      throw err
    } finally {
      input.destroy()
      gunzip.destroy()
    }
  } finally {
    // Closing early (or failing) must release the source (a file descriptor, a socket…).
    await it.return?.()
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  throw new MetadataFormatError(`the metadata source yielded a ${typeof chunk}, not bytes`)
}

/** One complete top-level value and the line it starts on. */
interface ScannedValue {
  readonly bytes: Buffer
  readonly line: number
}

const WS_SPACE = 0x20
const WS_TAB = 0x09
const WS_CR = 0x0d
const LF = 0x0a
const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_OBJ = 0x7b
const CLOSE_OBJ = 0x7d
const OPEN_ARR = 0x5b
const CLOSE_ARR = 0x5d

/** Splits a byte stream into top-level JSON objects (see the file comment for the states). */
class ValueScanner {
  readonly #max: number
  #line = 1
  #valueLine = 1
  #depth = 0
  #inString = false
  #escaped = false
  #parts: Buffer[] = []
  #partBytes = 0

  constructor(max: number) {
    this.#max = max
  }

  /** Consumes a chunk; returns the values completed in it. */
  push(chunk: Buffer): ScannedValue[] {
    const out: ScannedValue[] = []
    const n = chunk.length
    let p = 0
    // Start of the current value within this chunk (-1: not inside a value).
    let start = this.#depth > 0 ? 0 : -1
    // Next backslash at or after p: -1 none left in the chunk, -2 not searched yet.
    let bs = -2
    while (p < n) {
      if (this.#depth === 0) {
        const c = chunk[p]!
        if (c === LF) this.#line++
        else if (c === OPEN_OBJ) {
          this.#depth = 1
          this.#valueLine = this.#line
          start = p
        } else if (c !== WS_SPACE && c !== WS_TAB && c !== WS_CR) {
          throw new MetadataFormatError(
            c === 0x6e ? 'a top-level null is not an entry' : `expected an object, found ${describe(c)}`,
            this.#line,
          )
        }
        p++
        continue
      }
      if (this.#inString) {
        if (this.#escaped) {
          this.#escaped = false
          p++
          continue
        }
        // Jump to the next quote or backslash: base64 payloads are long runs of neither.
        // The backslash position is cached: most chunks have none, and searching the rest
        // of the chunk once per string would be quadratic.
        const q = chunk.indexOf(QUOTE, p)
        if (bs !== -1 && bs < p) bs = chunk.indexOf(BACKSLASH, p)
        const b = bs
        if (b !== -1 && (q === -1 || b < q)) {
          this.#escaped = true
          p = b + 1
        } else if (q !== -1) {
          this.#inString = false
          p = q + 1
        } else {
          p = n
        }
        continue
      }
      const c = chunk[p]!
      if (c === QUOTE) this.#inString = true
      else if (c === OPEN_OBJ || c === OPEN_ARR) this.#depth++
      else if (c === CLOSE_OBJ || c === CLOSE_ARR) this.#depth--
      else if (c === LF) this.#line++
      p++
      if (this.#depth === 0) {
        out.push({ bytes: this.#take(chunk.subarray(start, p)), line: this.#valueLine })
        start = -1
      }
    }
    if (this.#depth > 0 && start >= 0) this.#keep(chunk.subarray(start))
    return out
  }

  /** Declares the end of input. */
  end(): void {
    if (this.#depth > 0) {
      throw new MetadataFormatError('the metadata ends inside an entry (truncated)', this.#valueLine)
    }
  }

  #keep(part: Buffer): void {
    this.#partBytes += part.length
    if (this.#partBytes > this.#max) {
      throw new MetadataFormatError(`an entry is larger than the limit of ${this.#max} bytes`, this.#valueLine)
    }
    this.#parts.push(part)
  }

  #take(last: Buffer): Buffer {
    if (this.#parts.length === 0) {
      if (last.length > this.#max) {
        throw new MetadataFormatError(`an entry is larger than the limit of ${this.#max} bytes`, this.#valueLine)
      }
      return last
    }
    this.#keep(last)
    const whole = Buffer.concat(this.#parts, this.#partBytes)
    this.#parts = []
    this.#partBytes = 0
    return whole
  }
}

function describe(c: number): string {
  return c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`
}
