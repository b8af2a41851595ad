/**
 * Extended attributes, on paths without following a final symlink (`l*xattr`) and on fds
 * (`f*xattr`). Synchronous: the layer apply sets them per file in a hot loop, where a sync
 * FFI call costs about a microsecond and a worker round trip a hundred times more.
 *
 * Kernel facts the callers rely on: `trusted.*` needs CAP_SYS_ADMIN and works on symlinks
 * (overlayfs keeps `trusted.overlay.opaque` there); `user.*` is refused on symlinks and
 * device files with EPERM.
 */
import type { PathLike } from './errors.js'
import { check, checkFd, cPath, cString, func, lastErrno, throwErrno } from './libc.js'
import { errnoValue } from './errors.js'

/** lsetxattr flags: fail with EEXIST if the attribute exists. */
export const XATTR_CREATE = 0x1
/** lsetxattr flags: fail with ENODATA if the attribute does not exist. */
export const XATTR_REPLACE = 0x2

const ENODATA = errnoValue('ENODATA')
const ERANGE = errnoValue('ERANGE')

/**
 * Sets xattr `name` of `path` (not following a final symlink) to `value`. `flags` is 0,
 * {@link XATTR_CREATE} or {@link XATTR_REPLACE}. Throws a {@link SyscallError}: EPERM for
 * `user.*` on a symlink, EOPNOTSUPP (not-supported) where the filesystem has no xattrs,
 * ENOSPC/E2BIG past the filesystem's size limit (ext4: one block).
 */
export function lsetxattr(path: PathLike, name: string, value: Buffer, flags = 0): void {
  const fn = func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)')
  const ret = fn(cPath('lsetxattr', path), cString('lsetxattr', name, 'name'), value, value.length, flags)
  check(ret, 'lsetxattr', { path, detail: name })
}

/** Like {@link lsetxattr}, on an open fd. */
export function fsetxattr(fd: number, name: string, value: Buffer, flags = 0): void {
  const fn = func('int fsetxattr(int fd, const char *name, const void *value, size_t size, int flags)')
  const ret = fn(checkFd('fsetxattr', fd), cString('fsetxattr', name, 'name'), value, value.length, flags)
  check(ret, 'fsetxattr', { detail: name })
}

/**
 * The value of xattr `name` of `path` (not following a final symlink), or null when the
 * file has no such attribute (ENODATA). Values of any size: asks the size first, and asks
 * again if the value grew in between. Throws a {@link SyscallError} (ENOENT for a missing file).
 */
export function lgetxattr(path: PathLike, name: string): Buffer | null {
  const fn = func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)')
  const cpath = cPath('lgetxattr', path)
  const cname = cString('lgetxattr', name, 'name')
  return readSized((buf) => fn(cpath, cname, buf, buf?.length ?? 0) as number | bigint, 'lgetxattr', path, name)
}

/** Like {@link lgetxattr}, on an open fd. */
export function fgetxattr(fd: number, name: string): Buffer | null {
  const fn = func('intptr_t fgetxattr(int fd, const char *name, void *value, size_t size)')
  const cname = cString('fgetxattr', name, 'name')
  checkFd('fgetxattr', fd)
  return readSized((buf) => fn(fd, cname, buf, buf?.length ?? 0) as number | bigint, 'fgetxattr', undefined, name)
}

/**
 * The names of the xattrs of `path` (not following a final symlink), in the kernel's order.
 * Only the names this process may see: without CAP_SYS_ADMIN the kernel hides `trusted.*`.
 */
export function llistxattr(path: PathLike): string[] {
  const fn = func('intptr_t llistxattr(const char *path, char *list, size_t size)')
  const cpath = cPath('llistxattr', path)
  const list = readSized((buf) => fn(cpath, buf, buf?.length ?? 0) as number | bigint, 'llistxattr', path)
  return splitNames(list)
}

/** Like {@link llistxattr}, on an open fd. */
export function flistxattr(fd: number): string[] {
  const fn = func('intptr_t flistxattr(int fd, char *list, size_t size)')
  checkFd('flistxattr', fd)
  return splitNames(readSized((buf) => fn(fd, buf, buf?.length ?? 0) as number | bigint, 'flistxattr'))
}

/** Removes xattr `name` of `path`; ENODATA (kind not-found) when it has none. */
export function lremovexattr(path: PathLike, name: string): void {
  const fn = func('int lremovexattr(const char *path, const char *name)')
  check(fn(cPath('lremovexattr', path), cString('lremovexattr', name, 'name')), 'lremovexattr', { path, detail: name })
}

/** Like {@link lremovexattr}, on an open fd. */
export function fremovexattr(fd: number, name: string): void {
  const fn = func('int fremovexattr(int fd, const char *name)')
  check(fn(checkFd('fremovexattr', fd), cString('fremovexattr', name, 'name')), 'fremovexattr', { detail: name })
}

/**
 * The size-then-read dance of the *getxattr/*listxattr calls. `call(null)` asks for the size;
 * between that and the read another process may grow the value, which gives ERANGE: retry.
 */
function readSized(
  call: (buf: Buffer | null) => number | bigint,
  syscall: string,
  path?: PathLike,
  name?: string,
): Buffer | null {
  const details = { ...(path === undefined ? {} : { path }), ...(name === undefined ? {} : { detail: name }) }
  for (let attempt = 0; attempt < 8; attempt++) {
    const size = Number(call(null))
    if (size === -1) {
      if (name !== undefined && lastErrno() === ENODATA) return null
      throwErrno(syscall, details)
    }
    if (size === 0) return Buffer.alloc(0)
    const buf = Buffer.allocUnsafe(size)
    const got = Number(call(buf))
    if (got >= 0) return got === size ? buf : buf.subarray(0, got)
    const errno = lastErrno()
    if (errno === ERANGE) continue
    if (name !== undefined && errno === ENODATA) return null // removed in between
    throwErrno(syscall, details)
  }
  throwErrno(syscall, details) // still ERANGE: the value keeps growing
}

function splitNames(list: Buffer | null): string[] {
  if (!list || list.length === 0) return []
  const names = list.toString('utf8').split('\0')
  if (names[names.length - 1] === '') names.pop()
  return names
}

/**
 * Copies every xattr of `from` onto `to`, neither followed if a symlink, but those `skip`
 * names (e.g. overlayfs's own). For a copy's metadata (graphdriver's `copyMetadata`) and an
 * apply's copy-up of a directory.
 */
export function copyXattrs(from: PathLike, to: PathLike, skip?: (name: string) => boolean): void {
  for (const name of llistxattr(from)) {
    if (skip?.(name) === true) continue
    const value = lgetxattr(from, name)
    if (value !== null) lsetxattr(to, name, value)
  }
}
