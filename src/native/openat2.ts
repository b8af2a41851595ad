/**
 * openat2(2): open a path with the kernel enforcing how it may be resolved. The layer apply
 * uses `RESOLVE_IN_ROOT` so that no `..` or symlink in a hostile tar can reach outside the
 * layer directory: the kernel resolves the path as if the dir fd were `/`, atomically, with
 * no window between a check and the open. Linux 5.6+; glibc has no wrapper, so this goes
 * through syscall(2).
 */
import { errnoValue, SyscallError } from './errors.js'
import type { PathLike } from './errors.js'
import { checkFd, cPath, int64Struct, lastErrno, rawSyscall, SYS } from './libc.js'
import type { ErrorKind } from '../errors.js'

/** Fail with EXDEV when a path component crosses a mount point (bind mounts included). */
export const RESOLVE_NO_XDEV = 0x01
/** Fail with ELOOP on "magic links" such as /proc/self/fd/N. */
export const RESOLVE_NO_MAGICLINKS = 0x02
/** Fail with ELOOP on any symlink, including the final component (implies no magic links). */
export const RESOLVE_NO_SYMLINKS = 0x04
/** Fail with EXDEV when resolution would leave the dir fd's tree (`..`, absolute symlinks). */
export const RESOLVE_BENEATH = 0x08
/** Resolve as if the dir fd were `/`: `..` stops at it, absolute symlinks start from it. */
export const RESOLVE_IN_ROOT = 0x10
/** Fail with EAGAIN unless the lookup can be served from the dentry cache alone (5.12+). */
export const RESOLVE_CACHED = 0x20

/** O_PATH: an fd that names a file without opening it for I/O (not in `fs.constants`). */
export const O_PATH = 0o10000000
/** O_CLOEXEC; {@link openat2} always adds it, as Node does for every fd it opens. */
export const O_CLOEXEC = 0o2000000

/** `struct open_how` of openat2(2). */
export interface OpenHow {
  /** Open flags: `fs.constants.O_RDONLY`, `O_WRONLY | O_CREAT | O_EXCL`, `O_DIRECTORY`, {@link O_PATH}… */
  flags: number
  /** Permission bits for a file that O_CREAT or O_TMPFILE makes (umask applies); else 0. */
  mode?: number
  /** `RESOLVE_*` flags, or-ed. */
  resolve?: number
}

const EAGAIN = errnoValue('EAGAIN')
const ELOOP = errnoValue('ELOOP')
const EXDEV = errnoValue('EXDEV')

// With RESOLVE_IN_ROOT or RESOLVE_BENEATH the kernel answers EAGAIN when a rename elsewhere
// raced with the lookup, to stay safe; a retry normally succeeds at once.
const MAX_RACE_RETRIES = 16

/**
 * Opens `path` relative to `dirFd` (an open directory, or `AT_FDCWD` = -100) under the
 * resolution rules in `how.resolve`, and returns an fd usable with `node:fs` (`fs.readSync`,
 * `fs.closeSync`…), close-on-exec. Throws a {@link SyscallError}; a lookup the rules refuse
 * (EXDEV from RESOLVE_BENEATH/NO_XDEV, ELOOP from RESOLVE_NO_SYMLINKS/NO_MAGICLINKS) has kind
 * unsafe-path, ENOSYS/E2BIG (a kernel before 5.6) kind not-supported.
 */
export function openat2(dirFd: number, path: PathLike, how: OpenHow): number {
  if (dirFd !== -100) checkFd('openat2', dirFd, 'dirFd')
  const resolve = how.resolve ?? 0
  const openHow = int64Struct([(how.flags | O_CLOEXEC) >>> 0, how.mode ?? 0, resolve])
  const cpath = cPath('openat2', path)
  const syscall = rawSyscall()
  for (let attempt = 0; ; attempt++) {
    const ret = Number(
      syscall(SYS.openat2, 'int', dirFd, 'const char *', cpath, 'const void *', openHow, 'size_t', openHow.length),
    )
    if (ret >= 0) return ret
    const errno = lastErrno()
    if (errno === EAGAIN && attempt < MAX_RACE_RETRIES && (resolve & RESOLVE_CACHED) === 0) continue
    throw new SyscallError('openat2', errno, { path, ...kindFor(errno, resolve) })
  }
}

function kindFor(errno: number, resolve: number): { kind?: ErrorKind } {
  if (errno === EXDEV && (resolve & (RESOLVE_BENEATH | RESOLVE_NO_XDEV)) !== 0) return { kind: 'unsafe-path' }
  if (errno === ELOOP && (resolve & (RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)) !== 0) return { kind: 'unsafe-path' }
  if (errno === errnoValue('E2BIG')) return { kind: 'not-supported' }
  return {}
}
