/**
 * Typed errors of the native module. A failed syscall becomes a {@link SyscallError} shaped
 * like Node's own errno errors (`code` is the errno name, `syscall`, `path`, `dest`), plus
 * the layerstore `kind` (see src/errors.ts) so that callers can branch on a category.
 */
import { constants as osConstants } from 'node:os'
import { getSystemErrorMap } from 'node:util'
import type { ErrorKind } from '../errors.js'

/** A path as the kernel sees it: a string (encoded as UTF-8) or raw bytes. */
export type PathLike = string | Buffer

/**
 * errno number → name. Built from `os.constants.errno`; where two names share a number the
 * first one listed here wins, so that `code` reads as the Linux man pages spell it.
 */
const PREFERRED_NAMES = ['EAGAIN', 'EOPNOTSUPP', 'EDEADLK']
const ERRNO_NAMES: ReadonlyMap<number, string> = (() => {
  const names = new Map<number, string>()
  for (const name of PREFERRED_NAMES) {
    const value = (osConstants.errno as Record<string, number | undefined>)[name]
    if (value !== undefined) names.set(value, name)
  }
  for (const [name, value] of Object.entries(osConstants.errno)) {
    if (!names.has(value)) names.set(value, name)
  }
  return names
})()

/** The symbolic name of a (positive) errno value, e.g. `2` → `'ENOENT'`; `'E<n>'` if unknown. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`
}

/** The (positive) errno value of a symbolic name, e.g. `'EXDEV'` → `18`. */
export function errnoValue(name: string): number {
  const value = (osConstants.errno as Record<string, number | undefined>)[name]
  if (value === undefined) throw new TypeError(`unknown errno name ${name}`)
  return value
}

const KIND_BY_NAME: Readonly<Record<string, ErrorKind>> = {
  ENOENT: 'not-found',
  ESRCH: 'not-found',
  ENODATA: 'not-found', // a missing xattr
  EEXIST: 'already-exists',
  EBUSY: 'conflict', // still mounted, still in use
  ETXTBSY: 'conflict',
  ENOTEMPTY: 'conflict', // a directory that still has entries
  ENOSPC: 'no-space',
  EDQUOT: 'no-space',
  ENOSYS: 'not-supported', // a syscall this kernel lacks
  EOPNOTSUPP: 'not-supported',
  ENODEV: 'not-supported', // a filesystem type this kernel lacks
  EBADF: 'invalid-argument', // a closed or wrong descriptor: a bug in the caller
  EFAULT: 'invalid-argument',
  EINVAL: 'invalid-argument',
  ENAMETOOLONG: 'invalid-argument',
  E2BIG: 'invalid-argument',
  ERANGE: 'invalid-argument',
}

/**
 * The layerstore kind of an errno value, out of context: ENOENT → not-found, EEXIST →
 * already-exists, EBUSY → conflict, ENOSPC/EDQUOT → no-space, ENOSYS/EOPNOTSUPP → not-supported,
 * EINVAL/EBADF → invalid-argument, anything else (EPERM, EACCES, EROFS, EXDEV, EIO…) → system.
 * Calls where an errno means "this kernel or filesystem cannot" (EINVAL for an unknown flag,
 * EXDEV for a reflink) override it when they throw.
 */
export function kindOfErrno(errno: number): ErrorKind {
  return KIND_BY_NAME[errnoName(errno)] ?? 'system'
}

/** Shows a path in a message: as is when a string, else UTF-8 with \xNN escapes for bad bytes. */
export function showPath(path: PathLike): string {
  if (typeof path === 'string') return path
  const text = path.toString('utf8')
  if (Buffer.from(text, 'utf8').equals(path)) return text
  let out = ''
  for (const byte of path) {
    out += byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`
  }
  return out
}

/** What a {@link SyscallError} knows about its call, beyond the errno. */
export interface SyscallErrorDetails {
  /** The path the call was about, as the caller gave it. */
  path?: PathLike
  /** The second path, for calls with two (rename, mount). */
  dest?: PathLike
  /** The kind to report instead of {@link kindOfErrno}'s, when the call knows better. */
  kind?: ErrorKind
  /** Extra words for the message, e.g. the kernel's own log lines for an fs context. */
  detail?: string
}

/**
 * A syscall failed. Shaped like Node's errno errors: `code` is the errno name (`'EBUSY'`),
 * `syscall` the call (`'umount2'`), `path`/`dest` the paths involved. Unlike Node, `errno` is
 * the positive kernel value, the one in `os.constants.errno`.
 */
export class SyscallError extends Error {
  override readonly name = 'SyscallError'
  /** The errno name, e.g. `'ENOENT'`; stable, branch on it. */
  readonly code: string
  /** The positive errno value. */
  readonly errno: number
  /** The layerstore category; see {@link kindOfErrno}. */
  readonly kind: ErrorKind
  /** The path the call was about, as the caller gave it. */
  readonly path: PathLike | undefined
  /** The second path, for calls with two. */
  readonly dest: PathLike | undefined
  constructor(
    readonly syscall: string,
    errno: number,
    details: SyscallErrorDetails = {},
    options?: ErrorOptions,
  ) {
    const code = errnoName(errno)
    const description = getSystemErrorMap().get(-errno)?.[1] ?? `errno ${errno}`
    let message = `${code}: ${description}, ${syscall}`
    if (details.path !== undefined) message += ` '${showPath(details.path)}'`
    if (details.dest !== undefined) message += ` -> '${showPath(details.dest)}'`
    if (details.detail) message += ` (${details.detail})`
    super(message, options)
    this.code = code
    this.errno = errno
    this.kind = details.kind ?? kindOfErrno(errno)
    this.path = details.path
    this.dest = details.dest
  }
}

/** An argument the kernel must never see: a path with a NUL byte, an out-of-range number. */
export class NativeArgumentError extends Error {
  override readonly name = 'NativeArgumentError'
  readonly code = 'ERR_NATIVE_INVALID_ARGUMENT'
  readonly kind = 'invalid-argument'
  constructor(
    readonly syscall: string,
    readonly argument: string,
    reason: string,
  ) {
    super(`invalid ${argument} for ${syscall}: ${reason}`)
  }
}

/** libc or the FFI layer could not be loaded on this platform. */
export class NativeUnavailableError extends Error {
  override readonly name = 'NativeUnavailableError'
  readonly code = 'ERR_NATIVE_UNAVAILABLE'
  readonly kind = 'not-supported'
  constructor(reason: string, options?: ErrorOptions) {
    super(`native syscalls are unavailable: ${reason}`, options)
  }
}

/** The helper thread that runs blocking calls died or answered nonsense: a bug. */
export class NativeWorkerError extends Error {
  override readonly name = 'NativeWorkerError'
  readonly code = 'ERR_NATIVE_WORKER'
  readonly kind = 'internal'
  constructor(
    readonly syscall: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`native worker failed during ${syscall}: ${reason}`, options)
  }
}
