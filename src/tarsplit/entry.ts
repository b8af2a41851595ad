/**
 * The tar-split record model, as Go's `vbatts/tar-split` `storage.Entry` defines it.
 *
 * A disassembled tar is a sequence of entries in stream order. A *segment* carries raw archive
 * bytes verbatim (headers, extension headers, padding, end-of-archive blocks, trailing bytes);
 * a *file* entry stands for one member's content, which is not stored: reassembly fetches it
 * by name from a file getter and checks it against the CRC-64 in `payload`.
 */

/** `type` 1 in the JSON: a member whose content comes from the file getter. */
export const FILE_TYPE = 1
/** `type` 2 in the JSON: raw bytes written verbatim. */
export const SEGMENT_TYPE = 2

/**
 * One extent of a sparse member's logical file: `length` bytes of data at `offset`. Everything
 * between extents (and after the last one, up to the real size) is a hole of zeros.
 */
export interface SparseExtent {
  readonly offset: number
  readonly length: number
}

/** Raw archive bytes, written verbatim on reassembly. */
export interface SegmentEntry {
  readonly type: typeof SEGMENT_TYPE
  /** The bytes; `null` and an empty buffer both write nothing (Go accepts both). */
  readonly payload: Buffer | null
  /** Sequence number given by the packer; reassembly ignores it and uses stream order. */
  readonly position: number
}

/** One tar member; its content (when `size > 0`) is fetched by name at reassembly. */
export interface FileEntry {
  readonly type: typeof FILE_TYPE
  /**
   * The member's full name as raw bytes (PAX `path` / GNU long name / USTAR prefix merged,
   * not cleaned, trailing `/` kept). Encoded as `name` when valid UTF-8, else `name_raw`.
   */
  readonly name: Buffer
  /** Logical content size from the header (for a sparse member: its real, expanded size). */
  readonly size: number
  /** 8-byte big-endian CRC-64/GO-ISO of the logical content, or `null` when `size` is 0. */
  readonly payload: Buffer | null
  /**
   * Only for sparse members, and our extension to Go's format (Go ignores the key and cannot
   * replay such a member): the data extents, so that reassembly writes only these ranges of
   * the extracted (dense) file, exactly as the archive stored them.
   */
  readonly sparse?: readonly SparseExtent[]
  readonly position: number
}

export type Entry = SegmentEntry | FileEntry

/**
 * Where the disassembler sends entries (in stream order). `add` may return a promise to apply
 * backpressure; the disassembler awaits it before reading on. An implementation rejects a
 * duplicate path by throwing (the JSON packer throws `DuplicatePathError`).
 */
export interface EntrySink {
  add(entry: EntryInput): void | Promise<void>
}

/** An entry before the packer numbers it. */
export type EntryInput =
  | Omit<SegmentEntry, 'position'>
  | Omit<FileEntry, 'position'>

/** Where reassembly reads entries from, in stream order. */
export type EntrySource = AsyncIterable<Entry>
