/**
 * Typed errors of the tar-split module. Each has a stable `code` and a `kind` (see
 * src/errors.ts for the convention; this module imports nothing of ours, so the shape is
 * repeated here rather than shared through a base class).
 */

/** Shows a raw member name in a message: as UTF-8 when it is, else with \xNN escapes. */
export function showName(name: Buffer | string): string {
  if (typeof name === 'string') return JSON.stringify(name)
  let out = ''
  for (const ch of name.toString('latin1')) {
    const c = ch.charCodeAt(0)
    out += c >= 0x20 && c < 0x7f ? ch : `\\x${c.toString(16).padStart(2, '0')}`
  }
  return `"${out}"`
}

/** Why a header was refused. */
export type InvalidHeaderReason =
  | 'checksum' // the header checksum does not match
  | 'number' // a numeric field is not octal or base-256, or overflows
  | 'negative-size'
  | 'size-too-large' // beyond what we can address exactly (> 2^53 - 1)
  | 'pax-record' // a malformed PAX record (length, no '=', no newline, NUL in a path key…)
  | 'sparse-map' // a malformed or inconsistent sparse map
  | 'data-after-zero-block' // a zero block followed by a block that is neither zero nor a header
  | 'not-a-tar' // the first block is not a tar header at all

/** A header block or extension header that is malformed. */
export class InvalidHeaderError extends Error {
  override readonly name = 'InvalidHeaderError'
  readonly code = 'ERR_TAR_INVALID_HEADER'
  readonly kind = 'bad-input'
  constructor(
    readonly reason: InvalidHeaderReason,
    /** Offset in the archive of the block at fault. */
    readonly offset: number,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`invalid tar header at byte ${offset} (${reason}): ${detail}`, options)
  }
}

/** The input ended before the archive did: inside a header, a payload or a padding. */
export class TruncatedArchiveError extends Error {
  override readonly name = 'TruncatedArchiveError'
  readonly code = 'ERR_TAR_TRUNCATED'
  readonly kind = 'bad-input'
  constructor(
    readonly where: 'header' | 'extension-header' | 'payload' | 'padding' | 'sparse-map',
    /** Total bytes read when the input ended. */
    readonly offset: number,
    readonly member?: Buffer,
  ) {
    super(
      `truncated tar archive: input ended inside a ${where} at byte ${offset}` +
        (member ? ` (member ${showName(member)})` : ''),
    )
  }
}

/** A PAX extended header or GNU long name/link larger than the limit (1 MiB, as Go). */
export class HeaderTooLargeError extends Error {
  override readonly name = 'HeaderTooLargeError'
  readonly code = 'ERR_TAR_HEADER_TOO_LARGE'
  readonly kind = 'bad-input'
  constructor(
    readonly size: number,
    readonly limit: number,
    readonly offset: number,
  ) {
    super(`tar extension header of ${size} bytes at byte ${offset} exceeds the limit of ${limit} bytes`)
  }
}

/** Two members clean to the same path (Go's tar-split refuses this, and so does moby). */
export class DuplicatePathError extends Error {
  override readonly name = 'DuplicatePathError'
  readonly code = 'ERR_TAR_DUPLICATE_PATH'
  readonly kind = 'bad-input'
  constructor(
    readonly member: Buffer,
    /** 1-based line of the tar-split metadata, when the duplicate was found on read. */
    readonly line?: number,
  ) {
    super(
      `duplicate path in tar archive: ${showName(member)} (duplicates of file paths are not supported)` +
        (line !== undefined ? ` at line ${line} of the tar-split metadata` : ''),
    )
  }
}

/** The tar-split metadata (JSON) is malformed or not what we can replay. */
export class MetadataFormatError extends Error {
  override readonly name = 'MetadataFormatError'
  readonly code = 'ERR_TARSPLIT_BAD_METADATA'
  readonly kind = 'bad-input'
  constructor(
    detail: string,
    /** 1-based line of the JSON stream, when known. */
    readonly line?: number,
    options?: ErrorOptions,
  ) {
    super(`malformed tar-split metadata${line !== undefined ? ` at line ${line}` : ''}: ${detail}`, options)
  }
}

/** A file's content does not match the CRC-64 recorded at disassembly. */
export class ChecksumMismatchError extends Error {
  override readonly name = 'ChecksumMismatchError'
  readonly code = 'ERR_TARSPLIT_CHECKSUM_MISMATCH'
  readonly kind = 'bad-input'
  constructor(readonly member: Buffer, detail?: string) {
    super(
      `file integrity checksum failed for ${showName(member)}` +
        (detail ? `: ${detail}` : '; the layer content on disk was changed or is damaged'),
    )
  }
}

/** The file getter has no file for a member that needs content. */
export class MissingFileError extends Error {
  override readonly name = 'MissingFileError'
  readonly code = 'ERR_TARSPLIT_MISSING_FILE'
  readonly kind = 'not-found'
  constructor(readonly member: Buffer, options?: ErrorOptions) {
    super(`no file for tar member ${showName(member)}: the layer content on disk is incomplete`, options)
  }
}

/** A member name that would resolve outside the getter's root (`..`, a symlink on the way). */
export class UnsafeNameError extends Error {
  override readonly name = 'UnsafeNameError'
  readonly code = 'ERR_TARSPLIT_UNSAFE_NAME'
  readonly kind = 'unsafe-path'
  constructor(readonly member: Buffer, detail: string) {
    super(`refusing to read tar member ${showName(member)}: ${detail}`)
  }
}
