import type { SparseExtent } from './entry.js'

/** Tar member types, by their typeflag byte. */
export type TarType =
  | 'file' // '0', '\0' (V7) and '7' (contiguous)
  | 'hardlink' // '1'
  | 'symlink' // '2'
  | 'char-device' // '3'
  | 'block-device' // '4'
  | 'directory' // '5', or '\0' with a name ending in '/'
  | 'fifo' // '6'
  | 'pax-global' // 'g', returned as a pseudo-member (as Go does) so its bytes are accounted
  | 'gnu-dumpdir' // 'D' (GNU incremental): data is a directory listing
  | 'gnu-volume' // 'V'
  | 'other' // any other typeflag; `typeflag` has the byte

/** The header format a member was read in, by magic. */
export type TarFormat = 'v7' | 'ustar' | 'pax' | 'gnu' | 'star'

/** A timestamp with nanosecond precision (PAX gives sub-second times). */
export interface TarTime {
  /** Seconds since the epoch (may be negative). */
  readonly sec: number
  /** 0 ≤ nsec < 1e9. */
  readonly nsec: number
}

/**
 * One member's merged header: the ustar/GNU block with PAX records and GNU long names
 * applied. Objects handed out are frozen; the parser never reads them back.
 */
export interface TarHeader {
  /** Full name as raw bytes (never cleaned; may be non-UTF-8). */
  readonly name: Buffer
  readonly type: TarType
  /** The raw typeflag byte (e.g. 0x30 for '0'). */
  readonly typeflag: number
  /** Permission and mode bits from the header (07777 and more if the header carries them). */
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly uname: string
  readonly gname: string
  /**
   * Logical content size: the bytes the member's file holds. For a sparse member, its real
   * (expanded) size; for header-only types (links, dirs, devices, fifos), 0 whatever the size
   * field said.
   */
  readonly size: number
  readonly mtime: TarTime
  readonly atime?: TarTime
  readonly ctime?: TarTime
  /** Link target as raw bytes (hardlink: a member name; symlink: any path). Empty otherwise. */
  readonly linkname: Buffer
  readonly devmajor: number
  readonly devminor: number
  /** Every PAX record that applied to this member (global then local), values as raw bytes. */
  readonly pax: ReadonlyMap<string, Buffer>
  /** Extended attributes from `SCHILY.xattr.*` records: name → raw value. */
  readonly xattrs: ReadonlyMap<string, Buffer>
  /** For sparse members: the data extents and the real size. Absent for dense members. */
  readonly sparse?: { readonly map: readonly SparseExtent[]; readonly realSize: number }
  readonly format: TarFormat
}

/**
 * A member handed to the disassembler's caller. `content` yields the bytes the archive stores
 * for it: for a dense member its whole content (`header.size` bytes); for a sparse member only
 * the data extents, in map order (their lengths sum to less than `header.size`; the holes are
 * zeros). It must be consumed before the next member is requested, or it is drained then.
 */
export interface TarMember {
  readonly header: TarHeader
  /** The content; its pieces stay valid for good. */
  readonly content: AsyncIterable<Buffer>
  /**
   * The same bytes, lent: a piece is valid only until the next request to this content or
   * to the member iterator (its buffer may be reused from then on: see `disassemble`,
   * "Chunk lifetime"). Cheaper when the input recycles its chunks; read either this or
   * `content`, not both. Producers other than `disassemble` may leave it out.
   */
  readonly lent?: AsyncIterable<Buffer>
  /**
   * All of the content in one piece, lent as `lent`'s pieces are, when it can be had without
   * waiting: the member is dense, none of its content was read yet, and all of it is in the
   * input at hand. Otherwise undefined, with nothing read: use `lent` or `content` then.
   * For consumers of many small members, to whom a promise per piece is most of the cost.
   * Producers other than `disassemble` may leave it out.
   */
  readonly lentNow?: () => Buffer | undefined
}
