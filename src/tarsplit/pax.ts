/**
 * PAX extended header records (`x` local, `g` global): parsing and interpretation, with the
 * strictness of Go's `archive/tar` (the reader tar-split is built on), so that an archive Go
 * refuses is refused here too and one Go accepts yields the same names and sizes. Pure.
 *
 * A record is `"<len> <key>=<value>\n"`, where `<len>` counts the whole record including
 * itself. Values are bytes: xattr values are binary, names may be non-UTF-8.
 */
import { InvalidHeaderError } from './errors.js'
import type { TarTime } from './tar-header.js'

/** Parsed records in stream order; a key given twice keeps its last value (as Go's map). */
export type PaxRecords = ReadonlyMap<string, Buffer>

/** PAX key: the member's name (overrides the header's). */
export const PAX_PATH = 'path'
/** PAX key: the link target. */
export const PAX_LINKPATH = 'linkpath'
/** PAX key: the data section size (overrides the header's). */
export const PAX_SIZE = 'size'
/** PAX key: the owner's numeric id. */
export const PAX_UID = 'uid'
/** PAX key: the group's numeric id. */
export const PAX_GID = 'gid'
/** PAX key: the owner's name. */
export const PAX_UNAME = 'uname'
/** PAX key: the group's name. */
export const PAX_GNAME = 'gname'
/** PAX key: modification time, `[-]sec[.frac]`. */
export const PAX_MTIME = 'mtime'
/** PAX key: access time. */
export const PAX_ATIME = 'atime'
/** PAX key: status change time (dropped from later PAX revisions, still written). */
export const PAX_CTIME = 'ctime'
/** PAX key prefix of extended attributes (`SCHILY.xattr.<name>`, binary values). */
export const PAX_SCHILY_XATTR = 'SCHILY.xattr.'
/** PAX key: a GNU sparse 0.1 map (and where 0.0 offset/numbytes pairs are folded). */
export const PAX_GNU_SPARSE_MAP = 'GNU.sparse.map'
const PAX_GNU_SPARSE_OFFSET = 'GNU.sparse.offset'
const PAX_GNU_SPARSE_NUMBYTES = 'GNU.sparse.numbytes'

/** Keys whose values are C strings in the USTAR header, so a NUL in them is refused. */
const STRING_KEYS = new Set([PAX_PATH, PAX_LINKPATH, PAX_UNAME, PAX_GNAME])

/** The smallest well-formed record, `"5 k=\n"`; Go refuses shorter lengths. */
const MIN_RECORD_LENGTH = 5

function bad(offset: number, detail: string): InvalidHeaderError {
  return new InvalidHeaderError('pax-record', offset, detail)
}

/**
 * Parses the data section of a PAX header into records.
 *
 * GNU sparse format 0.0 writes repeated `GNU.sparse.offset` / `GNU.sparse.numbytes` pairs,
 * which a map cannot hold; like Go, they are folded into one `GNU.sparse.map` value
 * ("off,len,off,len…"), and must alternate starting with an offset.
 *
 * @param data the whole data section (at most the extension header limit)
 * @param offset archive offset of the PAX header block, for errors
 * @throws InvalidHeaderError `pax-record` for a bad length (including the zero-length record
 *   of CVE-2019-20907, which makes naive parsers loop), a missing `=` or newline, an empty
 *   key, a NUL in a key or in a `path`/`linkpath`/`uname`/`gname` value
 */
export function parsePaxRecords(data: Uint8Array, offset: number): Map<string, Buffer> {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  const records = new Map<string, Buffer>()
  let sparsePairs: string[] | undefined
  let pos = 0
  while (pos < buf.length) {
    const sp = buf.indexOf(0x20, pos)
    if (sp < 0) throw bad(offset, `record at data byte ${pos} has no length field`)
    const n = parseGoInt(buf.subarray(pos, sp))
    // n must cover at least "<len> " plus "=\n", and the record must fit in what is left.
    if (!(n >= MIN_RECORD_LENGTH) || n > buf.length - pos || pos + n <= sp + 1) {
      throw bad(offset, `record at data byte ${pos} has a bad length`)
    }
    const end = pos + n
    if (buf[end - 1] !== 0x0a) throw bad(offset, `record at data byte ${pos} does not end with a newline`)
    const eq = buf.indexOf(0x3d, sp + 1)
    if (eq < 0 || eq >= end - 1) throw bad(offset, `record at data byte ${pos} has no '='`)
    const keyBytes = buf.subarray(sp + 1, eq)
    const value = Buffer.from(buf.subarray(eq + 1, end - 1))
    const key = keyBytes.toString('utf8')
    if (keyBytes.length === 0) throw bad(offset, `record at data byte ${pos} has an empty key`)
    if (STRING_KEYS.has(key)) {
      if (value.includes(0)) throw bad(offset, `the ${key} record contains a NUL byte`)
    } else if (keyBytes.includes(0)) {
      throw bad(offset, `record at data byte ${pos} has a NUL byte in its key`)
    }
    if (key === PAX_GNU_SPARSE_OFFSET || key === PAX_GNU_SPARSE_NUMBYTES) {
      sparsePairs ??= []
      const wanted = sparsePairs.length % 2 === 0 ? PAX_GNU_SPARSE_OFFSET : PAX_GNU_SPARSE_NUMBYTES
      if (key !== wanted || value.includes(0x2c)) {
        throw bad(offset, 'GNU sparse 0.0 offset/numbytes records out of order or malformed')
      }
      sparsePairs.push(value.toString('latin1'))
    } else {
      records.set(key, value)
    }
    pos = end
  }
  if (sparsePairs !== undefined) records.set(PAX_GNU_SPARSE_MAP, Buffer.from(sparsePairs.join(','), 'latin1'))
  return records
}

/** What the records of one PAX header say about the member's fields. */
export interface PaxFields {
  readonly path?: Buffer
  readonly linkpath?: Buffer
  readonly uname?: Buffer
  readonly gname?: Buffer
  readonly uid?: number
  readonly gid?: number
  /** The data section size; may exceed 2^53 (then inexact), callers refuse it. */
  readonly size?: number
  readonly mtime?: TarTime
  readonly atime?: TarTime
  readonly ctime?: TarTime
  /** `SCHILY.xattr.<name>` records: name → raw value. */
  readonly xattrs: ReadonlyMap<string, Buffer>
}

/**
 * Interprets records, validating every value Go validates. A record with an empty value is
 * skipped, so the USTAR field stays (Go's rule; for a global record it also means "unset").
 *
 * @throws InvalidHeaderError `pax-record` for a malformed `size`, `uid`, `gid` or time
 */
export function interpretPax(records: PaxRecords, offset: number): PaxFields {
  const out: {
    -readonly [K in keyof PaxFields]: PaxFields[K]
  } = { xattrs: EMPTY_XATTRS }
  let xattrs: Map<string, Buffer> | undefined
  for (const [key, value] of records) {
    if (value.length === 0) continue
    switch (key) {
      case PAX_PATH:
        out.path = value
        break
      case PAX_LINKPATH:
        out.linkpath = value
        break
      case PAX_UNAME:
        out.uname = value
        break
      case PAX_GNAME:
        out.gname = value
        break
      case PAX_UID:
      case PAX_GID:
      case PAX_SIZE: {
        const n = parseGoInt(value)
        if (Number.isNaN(n)) throw bad(offset, `malformed ${key} record ${JSON.stringify(value.toString('latin1'))}`)
        out[key] = n
        break
      }
      case PAX_MTIME:
      case PAX_ATIME:
      case PAX_CTIME: {
        const t = parsePaxTime(value)
        if (t === null) throw bad(offset, `malformed ${key} record ${JSON.stringify(value.toString('latin1'))}`)
        out[key] = t
        break
      }
      default:
        if (key.startsWith(PAX_SCHILY_XATTR)) {
          xattrs ??= new Map()
          xattrs.set(key.slice(PAX_SCHILY_XATTR.length), value)
        }
    }
  }
  if (xattrs !== undefined) out.xattrs = xattrs
  return out
}

/**
 * Applies the records of a global (`g`) header to the running global state, as POSIX says:
 * a later global value replaces an earlier one, and an empty value removes it.
 */
export function applyGlobalRecords(state: PaxRecords, records: PaxRecords): Map<string, Buffer> {
  const next = new Map(state)
  for (const [key, value] of records) {
    if (value.length === 0) next.delete(key)
    else next.set(key, value)
  }
  return next
}

/**
 * Go's `strconv.ParseInt(s, 10, 64)`: an optional sign and at least one decimal digit,
 * nothing else, within the int64 range. Returns NaN otherwise. Exact up to 2^53.
 */
export function parseGoInt(s: Uint8Array | string): number {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s
  let i = 0
  let negative = false
  if (b[0] === 0x2b || b[0] === 0x2d) {
    negative = b[0] === 0x2d
    i = 1
  }
  if (i >= b.length) return NaN
  let x = 0
  let digits = 0
  for (; i < b.length; i++) {
    const c = b[i]!
    if (c < 0x30 || c > 0x39) return NaN
    if (digits > 0 || c !== 0x30) digits++
    x = x * 10 + (c - 0x30)
  }
  if (digits >= 16) {
    // Beyond 2^53 the double is inexact: decide the int64 range exactly.
    const text = Buffer.from(b).toString('latin1')
    const big = BigInt(text.replace(/^\+/, ''))
    if (big > INT64_MAX || big < INT64_MIN) return NaN
  }
  return negative ? -x : x
}

const INT64_MAX = (1n << 63n) - 1n
const INT64_MIN = -(1n << 63n)
const NSEC_DIGITS = 9

/**
 * Go's `parsePAXTime`: `[-]sec[.frac]`, the fraction cut or padded to nanoseconds. A negative
 * time counts its fraction down from the seconds ("-1.5" is 1.5 s before the epoch), and the
 * result is normalised to 0 ≤ nsec < 1e9. Returns null when malformed.
 */
export function parsePaxTime(value: Uint8Array | string): TarTime | null {
  const s = typeof value === 'string' ? value : Buffer.from(value).toString('latin1')
  const dot = s.indexOf('.')
  const ss = dot >= 0 ? s.slice(0, dot) : s
  const sn = dot >= 0 ? s.slice(dot + 1) : ''
  const sec = parseGoInt(ss)
  if (Number.isNaN(sec)) return null
  if (sn.length === 0) return { sec, nsec: 0 }
  if (!/^[0-9]+$/.test(sn)) return null
  const nsec = Number(sn.length < NSEC_DIGITS ? sn.padEnd(NSEC_DIGITS, '0') : sn.slice(0, NSEC_DIGITS))
  if (ss.startsWith('-') && nsec > 0) return { sec: sec - 1, nsec: 1e9 - nsec }
  return { sec, nsec }
}

const EMPTY_XATTRS: ReadonlyMap<string, Buffer> = new Map()
