/**
 * Typed errors of the archive module (apply, changes, export). Each has a stable `code` and a
 * `kind` (see src/errors.ts); member names are kept as the raw bytes the tar carried.
 */
import type { ErrorKind } from '../errors.js'
import { isKindedError } from '../errors.js'

/** Shows raw name bytes in a message: printable ASCII as is, anything else as \xNN. */
export function showBytes(name: Buffer | string): string {
  const s = typeof name === 'string' ? name : name.toString('latin1')
  let out = ''
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    out += c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c ? s[i] : `\\x${c.toString(16).padStart(2, '0')}`
  }
  return `"${out}"`
}

/** Why a member was refused as reaching outside the target. */
export type UnsafePathReason =
  | 'parent-traversal' // `..` climbs above the root once the name is cleaned
  | 'symlink-in-path' // a directory component of the path is a symlink (never followed)
  | 'hardlink-target' // a hardlink names the root or a target outside it
  | 'whiteout-name' // `.wh.`, `.wh..`, `.wh...`: a whiteout of nothing, of its own dir or of its parent
  | 'root-replaced' // a non-directory member names the root itself

/**
 * A tar member that would create, change or delete something outside the apply target (or
 * the target itself). The apply stops at this member; nothing outside the target was touched.
 */
export class UnsafePathError extends Error {
  override readonly name = 'UnsafePathError'
  readonly code = 'ERR_UNSAFE_PATH'
  readonly kind = 'unsafe-path'
  constructor(
    /** The member's name as the tar carried it (raw bytes). */
    readonly member: Buffer,
    readonly reason: UnsafePathReason,
    detail: string,
  ) {
    super(`refusing tar member ${showBytes(member)} (${reason}): ${detail}`)
  }
}

/** A member of a type the apply does not handle (Solaris ACLs, multi-volume parts…). */
export class UnsupportedMemberError extends Error {
  override readonly name = 'UnsupportedMemberError'
  readonly code = 'ERR_UNSUPPORTED_MEMBER'
  readonly kind = 'not-supported'
  constructor(
    readonly member: Buffer,
    /** The raw typeflag byte. */
    readonly typeflag: number,
  ) {
    super(
      `tar member ${showBytes(member)} has type ${JSON.stringify(String.fromCharCode(typeflag))} ` +
        `(0x${typeflag.toString(16)}), which a layer cannot contain`,
    )
  }
}

/** Why a member was refused as malformed for a layer. */
export type InvalidMemberReason =
  | 'device-number' // devmajor/devminor beyond 32 bits
  | 'parent-not-directory' // a path component is an existing non-directory
  | 'owner' // uid/gid beyond 32 bits

/** A member that is well-formed tar but cannot be applied as it says. */
export class InvalidMemberError extends Error {
  override readonly name = 'InvalidMemberError'
  readonly code = 'ERR_INVALID_MEMBER'
  readonly kind = 'bad-input'
  constructor(
    readonly member: Buffer,
    readonly reason: InvalidMemberReason,
    detail: string,
  ) {
    super(`cannot apply tar member ${showBytes(member)} (${reason}): ${detail}`)
  }
}

/**
 * A filesystem call failed while applying one member (ENOSPC, EPERM, a hardlink to a missing
 * file…). `kind` is the cause's kind when it has one (`no-space`, `not-found`…), else `system`.
 */
export class ApplyEntryError extends Error {
  override readonly name = 'ApplyEntryError'
  readonly code = 'ERR_APPLY_ENTRY'
  readonly kind: ErrorKind
  constructor(
    readonly member: Buffer,
    /** What we were doing: `'create'`, `'write'`, `'chown'`, `'xattr'`, `'times'`… */
    readonly operation: string,
    cause: unknown,
  ) {
    super(`applying tar member ${showBytes(member)} failed at ${operation}: ${messageOf(cause)}`, { cause })
    this.kind = kindOf(cause)
  }
}

/** The directory to apply to, or to read, is missing or not a directory. */
export class InvalidTargetError extends Error {
  override readonly name = 'InvalidTargetError'
  readonly code = 'ERR_INVALID_TARGET'
  readonly kind: ErrorKind
  constructor(
    readonly path: string,
    problem: string,
    cause?: unknown,
  ) {
    super(`${path} ${problem}${cause === undefined ? '' : `: ${messageOf(cause)}`}`, cause === undefined ? undefined : { cause })
    this.kind = cause === undefined ? 'invalid-argument' : kindOf(cause)
  }
}

/** Reading a tree for `changes` or `exportChanges` failed at one path. */
export class TreeReadError extends Error {
  override readonly name = 'TreeReadError'
  readonly code = 'ERR_TREE_READ'
  readonly kind: ErrorKind
  constructor(
    /** The path in the layer (byte string, see `Change.path`). */
    readonly path: string,
    readonly operation: string,
    cause: unknown,
  ) {
    super(`reading ${showBytes(path)} failed at ${operation}: ${messageOf(cause)}`, { cause })
    this.kind = kindOf(cause)
  }
}

/** Node's errno codes that map to a kind (the native module's SyscallError brings its own). */
const NODE_CODE_KINDS: Readonly<Record<string, ErrorKind>> = {
  ENOENT: 'not-found',
  ENOTDIR: 'not-found',
  EEXIST: 'already-exists',
  ENOSPC: 'no-space',
  EDQUOT: 'no-space',
  EBUSY: 'conflict',
  EOPNOTSUPP: 'not-supported',
  ENOTSUP: 'not-supported',
}

function kindOf(cause: unknown): ErrorKind {
  if (isKindedError(cause)) return cause.kind
  const code = (cause as { code?: unknown } | null)?.code
  return (typeof code === 'string' && NODE_CODE_KINDS[code]) || 'system'
}

function messageOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause)
}
