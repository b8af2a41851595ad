/**
 * Turns a header group (the member's header block, the PAX records and GNU long names before
 * it, the global PAX state) into what the disassembler needs: the merged header handed to the
 * caller, the name and size of the member's file entry, and how its data section is accounted.
 * Pure; the merge order and rules are Go's `archive/tar` (tar-split's reader), since they
 * decide names and byte counts.
 */
import { Crc64 } from './crc64.js'
import type { SparseExtent } from './entry.js'
import { InvalidHeaderError } from './errors.js'
import {
  TYPE_CONT,
  TYPE_GNU_DUMPDIR,
  TYPE_GNU_SPARSE,
  TYPE_GNU_VOLUME,
  TYPE_PAX_GLOBAL,
  TYPE_REG,
  TYPE_REG_A,
  isHeaderOnlyType,
  type RawHeader,
} from './header.js'
import { applyGlobalRecords, interpretPax, type PaxFields, type PaxRecords } from './pax.js'
import {
  dataExtents,
  detectPaxSparse,
  isDense,
  storedSize,
  validateSparseMap,
  type PaxSparseInfo,
  type SparseLayout,
} from './sparse.js'
import type { TarFormat, TarHeader, TarTime, TarType } from './tar-header.js'

/**
 * How a member's data section is accounted:
 * - `file`: content the file getter replays; CRC'd; the F entry has its logical size;
 * - `data`: bytes that are not a file's content (GNU dumpdir listings, volume labels, unknown
 *   types): kept verbatim in segments, F entry of size 0, so any reassembler replays them;
 * - `none`: no data section (header-only types whatever their size field says, empty files).
 */
export type ContentKind = 'file' | 'data' | 'none'

/** A member after names, types and sizes are merged, before its sparse map is read. */
export interface MemberBase {
  readonly raw: RawHeader
  readonly local: PaxRecords | null
  readonly fields: PaxFields | null
  readonly name: Buffer
  readonly linkname: Buffer
  readonly type: TarType
  /** Size of the data section in the archive (0 for header-only types). */
  readonly dataSize: number
  /** Set when PAX records make the member a GNU sparse file (0.x or 1.0). */
  readonly paxSparse: PaxSparseInfo | null
}

const EMPTY = Buffer.alloc(0)
const EMPTY_RECORDS: PaxRecords = new Map()

function tarType(typeflag: number, name: Buffer): TarType {
  switch (typeflag) {
    case TYPE_REG:
    case TYPE_CONT:
    case TYPE_GNU_SPARSE:
      return 'file'
    case TYPE_REG_A:
      // Legacy archives mark directories with a trailing slash on a regular-file header.
      return name.length > 0 && name[name.length - 1] === 0x2f ? 'directory' : 'file'
    case 0x31:
      return 'hardlink'
    case 0x32:
      return 'symlink'
    case 0x33:
      return 'char-device'
    case 0x34:
      return 'block-device'
    case 0x35:
      return 'directory'
    case 0x36:
      return 'fifo'
    case TYPE_PAX_GLOBAL:
      return 'pax-global'
    case TYPE_GNU_DUMPDIR:
      return 'gnu-dumpdir'
    case TYPE_GNU_VOLUME:
      return 'gnu-volume'
    default:
      return 'other'
  }
}

function checkSize(size: number, at: number, what: string): void {
  if (size < 0) throw new InvalidHeaderError('negative-size', at, `${what} is ${size}`)
  if (!Number.isSafeInteger(size)) {
    throw new InvalidHeaderError('size-too-large', at, `${what} ${size} is beyond 2^53 - 1 bytes`)
  }
}

/**
 * Merges a member's header block with the records and long names before it: PAX `path` and
 * `linkpath` first, then GNU long name/link (when non-empty) override; a PAX `size` replaces
 * the size field; a V7 regular file whose name ends in `/` is a directory.
 *
 * @throws InvalidHeaderError for malformed PAX values, a negative size or one above 2^53 - 1
 */
export function resolveMember(
  raw: RawHeader,
  local: PaxRecords | null,
  longName: Buffer | null,
  longLink: Buffer | null,
  at: number,
): MemberBase {
  const fields = local !== null ? interpretPax(local, at) : null
  let name = fields?.path ?? raw.name
  if (longName !== null && longName.length > 0) name = longName
  let linkname = fields?.linkpath ?? raw.linkname
  if (longLink !== null && longLink.length > 0) linkname = longLink
  const type = tarType(raw.typeflag, name)
  const headerOnly = isHeaderOnlyType(raw.typeflag) || (raw.typeflag === TYPE_REG_A && type === 'directory')
  const dataSize = headerOnly ? 0 : (fields?.size ?? raw.size)
  checkSize(dataSize, at, 'the data size')
  const paxSparse = local !== null && raw.typeflag !== TYPE_GNU_SPARSE ? detectPaxSparse(local, at) : null
  if (paxSparse?.name !== undefined) name = paxSparse.name
  if (paxSparse !== null && type !== 'file') {
    throw new InvalidHeaderError('sparse-map', at, `GNU sparse records on a member of type ${type}`)
  }
  return { raw, local, fields, name, linkname, type, dataSize, paxSparse }
}

/** Everything the disassembler needs to account for one member. */
export interface MemberPlan {
  /** The merged header handed to the caller (frozen). */
  readonly header: TarHeader
  readonly kind: ContentKind
  /** The name of its F entry: the fully merged raw name. */
  readonly entryName: Buffer
  /** The `size` of its F entry: the logical size for files, 0 otherwise. */
  readonly entrySize: number
  /** Content bytes to read from the archive (after any PAX 1.0 map). */
  readonly dataSize: number
  /**
   * Stored bytes after the content that no sparse extent refers to (GNU tar reads such
   * archives; they are kept as raw bytes). 0 for dense members.
   */
  readonly unreferenced: number
  /** Data extents to CRC with holes between them; null when the stored bytes are dense. */
  readonly extents: readonly SparseExtent[] | null
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** A user or group name as text (UTF-8); the common `root` and empty names without a decode call. */
function nameString(b: Buffer): string {
  if (b.length === 0) return ''
  if (b.length === 4 && b[0] === 0x72 && b[1] === 0x6f && b[2] === 0x6f && b[3] === 0x74) return 'root'
  return b.toString('utf8')
}

function time(sec: number | undefined): TarTime | undefined {
  return sec === undefined ? undefined : { sec, nsec: 0 }
}

/**
 * Completes a member: validates its sparse map (if any) against the bytes stored, and builds
 * the header the caller sees. Global PAX records apply to the metadata (ids, names of owner,
 * times, xattrs) but never to `path`, `linkpath` or `size`, which Go ignores in them and which
 * decide the member's identity and byte accounting.
 *
 * @param base the merged member
 * @param dataSize data bytes left after any PAX 1.0 map
 * @param sparse the sparse layout, or null for a dense member
 * @param global the global PAX records in force
 * @throws InvalidHeaderError `sparse-map` when the map does not fit the real size or does not
 *   account for exactly the stored bytes; `size-too-large` for a real size above 2^53 - 1
 */
export function planMember(
  base: MemberBase,
  dataSize: number,
  sparse: SparseLayout | null,
  global: PaxRecords,
  at: number,
): MemberPlan {
  const { raw, type } = base
  let kind: ContentKind
  let entrySize = 0
  let extents: SparseExtent[] | null = null
  let contentSize = dataSize
  if (sparse !== null) {
    checkSize(sparse.realSize, at, 'the sparse real size')
    validateSparseMap(sparse.map, sparse.realSize, at)
    contentSize = storedSize(sparse.map)
    if (contentSize > dataSize) {
      throw new InvalidHeaderError(
        'sparse-map',
        at,
        `the sparse map references ${contentSize} bytes but the archive stores only ${dataSize}`,
      )
    }
    kind = sparse.realSize > 0 ? 'file' : 'none'
    entrySize = sparse.realSize
    // A map without holes stores the file as it is: plain content, as Go records it.
    if (!isDense(sparse.map, sparse.realSize)) extents = dataExtents(sparse.map)
  } else if (type === 'file') {
    kind = dataSize > 0 ? 'file' : 'none'
    entrySize = dataSize
  } else {
    kind = dataSize > 0 ? 'data' : 'none'
  }

  let records = base.local ?? EMPTY_RECORDS
  let meta = base.fields
  if (global.size > 0) {
    records = applyGlobalRecords(global, records)
    meta = interpretPax(records, at)
  }
  const format: TarFormat = base.local !== null ? 'pax' : raw.format
  const atime = meta?.atime ?? time(raw.atime)
  const ctime = meta?.ctime ?? time(raw.ctime)
  // Optional fields are added after the literal, not spread into it: a spread of a
  // conditional object literal goes through V8's slow runtime path, once per member.
  const header: Mutable<TarHeader> = {
    name: base.name,
    type,
    typeflag: raw.typeflag,
    mode: raw.mode,
    uid: meta?.uid ?? raw.uid,
    gid: meta?.gid ?? raw.gid,
    uname: nameString(meta?.uname ?? raw.uname),
    gname: nameString(meta?.gname ?? raw.gname),
    size: kind === 'file' ? entrySize : kind === 'data' ? dataSize : 0,
    mtime: meta?.mtime ?? { sec: raw.mtime, nsec: 0 },
    linkname: base.linkname,
    devmajor: raw.devmajor,
    devminor: raw.devminor,
    pax: records,
    xattrs: meta?.xattrs ?? EMPTY_RECORDS,
    format,
  }
  if (atime !== undefined) header.atime = atime
  if (ctime !== undefined) header.ctime = ctime
  if (sparse !== null) header.sparse = Object.freeze({ map: Object.freeze([...sparse.map]), realSize: sparse.realSize })
  Object.freeze(header)
  return {
    header,
    kind,
    entryName: base.name,
    entrySize,
    dataSize: contentSize,
    unreferenced: dataSize - contentSize,
    extents,
  }
}

/**
 * The pseudo-member Go returns for a global (`g`) header: no content, size 0, and its name,
 * which Go takes from the header's own `path` record when it has one (it merges the records
 * into the `g` header itself).
 */
export function planGlobal(raw: RawHeader, records: PaxRecords, at: number): MemberPlan {
  const name = interpretPax(records, at).path ?? raw.name
  const header: TarHeader = Object.freeze({
    name,
    type: 'pax-global',
    typeflag: raw.typeflag,
    mode: raw.mode,
    uid: raw.uid,
    gid: raw.gid,
    uname: raw.uname.toString('utf8'),
    gname: raw.gname.toString('utf8'),
    size: 0,
    mtime: { sec: raw.mtime, nsec: 0 },
    linkname: EMPTY,
    devmajor: raw.devmajor,
    devminor: raw.devminor,
    pax: records,
    xattrs: EMPTY_RECORDS,
    format: 'pax',
  })
  return { header, kind: 'none', entryName: name, entrySize: 0, dataSize: 0, unreferenced: 0, extents: null }
}

/**
 * Reads a member's content against its plan: cuts it into pieces that never cross a sparse
 * extent's edge, and checksums the logical file as the pieces pass (each hole before an
 * extent, and the one after the last, via `updateZeros`, so a 60 GiB hole costs nothing).
 */
export class ContentCursor {
  readonly plan: MemberPlan
  #remaining: number
  /** Sparse: index of the next extent, bytes left in the current one, logical offset. */
  #ext = 0
  #extLeft = 0
  #pos = 0
  readonly #crc: Crc64 | null

  /** @param checksum compute the CRC (false when no one wants the F entry) */
  constructor(plan: MemberPlan, checksum = true) {
    this.plan = plan
    this.#remaining = plan.dataSize
    this.#crc = checksum && plan.kind === 'file' && plan.entrySize > 0 ? new Crc64() : null
  }

  /** Content bytes not yet read. */
  get remaining(): number {
    return this.#remaining
  }

  /** The length of the next piece, at most `available` (0 only when nothing remains). */
  piece(available: number): number {
    const n = Math.min(available, this.#remaining)
    const extents = this.plan.extents
    if (extents === null || n === 0) return n
    if (this.#extLeft === 0) {
      // Entering the next extent: the gap before it is a hole of zeros.
      const e = extents[this.#ext++]!
      this.#crc?.updateZeros(e.offset - this.#pos)
      this.#pos = e.offset
      this.#extLeft = e.length
    }
    return Math.min(n, this.#extLeft)
  }

  /** Accounts for a piece just read (of the length `piece` gave). */
  consumed(bytes: Buffer): void {
    this.#remaining -= bytes.length
    this.#extLeft -= bytes.length
    this.#pos += bytes.length
    this.#crc?.update(bytes)
  }

  /** The F entry's payload once all content is read: the CRC, or null for size 0 (or unchecked). */
  digest(): Buffer | null {
    if (this.#crc === null) return null
    // The hole after the last extent, up to the real size.
    if (this.plan.extents !== null) this.#crc.updateZeros(this.plan.entrySize - this.#pos)
    return this.#crc.digest()
  }
}
