/**
 * mount(2), umount2(2) and the new mount API (fsopen, fsconfig, fsmount, move_mount).
 *
 * `mount` and `umount` are async: an overlay mount looks up every lower dir and an unmount
 * may flush the filesystem, so either can take long enough to stall the event loop; they
 * run on a worker thread (see async-call.ts). The new-API calls are sync building blocks
 * that return fds; `mountOverlay` (overlay-mount.ts) runs the one slow step, creating the
 * superblock, on a worker. `mountSync` and `umountSync` make the same calls on the calling
 * thread, for mounts known to be tiny (a probe of empty dirs takes about a millisecond, where
 * starting the worker, the first time, takes ~100 ms).
 */
import { readSync } from 'node:fs'
import createDebug from 'debug'
import { BLOCKING_PROTOTYPES, callBlocking } from './async-call.js'
import type { BlockingArg } from './async-call.js'
import { SyscallError } from './errors.js'
import type { PathLike, SyscallErrorDetails } from './errors.js'
import { AT_FDCWD, check, checkFd, cPath, cString, func, lastErrno, rawSyscall, SYS } from './libc.js'

const debug = createDebug('layerstore:native')

// mount(2) flags, from <sys/mount.h>; all below 2^31, so plain numbers do.
/** Mount read-only. */
export const MS_RDONLY = 0x1
/** Ignore set-user-ID and set-group-ID bits. */
export const MS_NOSUID = 0x2
/** Do not allow access to device files. */
export const MS_NODEV = 0x4
/** Do not allow programs to be executed. */
export const MS_NOEXEC = 0x8
/** Writes are synced at once. */
export const MS_SYNCHRONOUS = 0x10
/** Change the flags of an existing mount (with MS_BIND: of that mount only, not the superblock). */
export const MS_REMOUNT = 0x20
/** Do not update access times. */
export const MS_NOATIME = 0x400
/** Do not update directory access times. */
export const MS_NODIRATIME = 0x800
/** Make a bind mount: the same tree seen at a second place. */
export const MS_BIND = 0x1000
/** Move an existing mount. */
export const MS_MOVE = 0x2000
/** With MS_BIND or a propagation flag: apply to the whole subtree. */
export const MS_REC = 0x4000
/** Suppress some kernel log messages. */
export const MS_SILENT = 0x8000
/** Propagation: the mount cannot be bind mounted. */
export const MS_UNBINDABLE = 0x20000
/** Propagation: no events in or out. */
export const MS_PRIVATE = 0x40000
/** Propagation: receive events from the master, send none. */
export const MS_SLAVE = 0x80000
/** Propagation: share events with peers. */
export const MS_SHARED = 0x100000
/** Update access times only when older than the modification time. */
export const MS_RELATIME = 0x200000

// umount2(2) flags.
/** Force the unmount (network filesystems; may lose data). */
export const MNT_FORCE = 0x1
/** Lazy unmount: detach now, free once no longer busy. */
export const MNT_DETACH = 0x2
/** Mark for expiry (EAGAIN the first time). */
export const MNT_EXPIRE = 0x4
/** Do not follow a symlink as the target. */
export const UMOUNT_NOFOLLOW = 0x8

// fsopen(2) flags.
/** Close the context fd on exec. */
export const FSOPEN_CLOEXEC = 0x1
// fsconfig(2) commands.
/** Set a flag parameter (key only). */
export const FSCONFIG_SET_FLAG = 0
/** Set a string parameter (key and value). */
export const FSCONFIG_SET_STRING = 1
/** Set a binary parameter. */
export const FSCONFIG_SET_BINARY = 2
/** Set a path parameter (value and dir fd in aux). */
export const FSCONFIG_SET_PATH = 3
/** Set a path parameter that may be empty. */
export const FSCONFIG_SET_PATH_EMPTY = 4
/** Set an fd parameter (fd in aux). */
export const FSCONFIG_SET_FD = 5
/** Create the superblock from the parameters. */
export const FSCONFIG_CMD_CREATE = 6
/** Apply the parameters to an existing superblock. */
export const FSCONFIG_CMD_RECONFIGURE = 7
/** Create a new superblock, never reuse one (6.6+). */
export const FSCONFIG_CMD_CREATE_EXCL = 8
// fsmount(2) flags and mount attributes.
/** Close the mount fd on exec. */
export const FSMOUNT_CLOEXEC = 0x1
/** Mount attribute: read-only. */
export const MOUNT_ATTR_RDONLY = 0x1
/** Mount attribute: nosuid. */
export const MOUNT_ATTR_NOSUID = 0x2
/** Mount attribute: nodev. */
export const MOUNT_ATTR_NODEV = 0x4
/** Mount attribute: noexec. */
export const MOUNT_ATTR_NOEXEC = 0x8
/** Mount attribute: nodiratime. */
export const MOUNT_ATTR_NODIRATIME = 0x80
// move_mount(2) flags.
/** Follow symlinks on the from path. */
export const MOVE_MOUNT_F_SYMLINKS = 0x1
/** The from dir fd itself is the mount (empty from path). */
export const MOVE_MOUNT_F_EMPTY_PATH = 0x4
/** Follow symlinks on the to path. */
export const MOVE_MOUNT_T_SYMLINKS = 0x10
/** The to dir fd itself is the target (empty to path). */
export const MOVE_MOUNT_T_EMPTY_PATH = 0x40

/**
 * mount(2). `source` may be null (remount, propagation changes), `fstype` null for binds and
 * remounts; `data` is the filesystem's option string, which the kernel caps at one page
 * (4096 bytes with its NUL): long overlay lowerdir lists need {@link mountOverlay} instead.
 * Rejects with a {@link SyscallError} (EBUSY → conflict, ENOENT → not-found, ENODEV →
 * not-supported…) whose `path` is the source and `dest` the target, as Node reports two-path
 * calls (just `path`, the target, when the source is null).
 */
export async function mount(
  source: PathLike | null,
  target: PathLike,
  fstype: string | null,
  flags: number,
  data?: string,
): Promise<void> {
  debug('mount %s on %s type %s flags %s', source, target, fstype, flags.toString(16))
  await callBlocking('mount', mountArgs(source, target, fstype, flags, data), 'mount', mountPaths(source, target))
}

/** mount(2)'s C arguments, for {@link mount} and {@link mountSync}. */
function mountArgs(source: PathLike | null, target: PathLike, fstype: string | null, flags: number, data?: string): BlockingArg[] {
  return [
    source === null ? null : cPath('mount', source, 'source'),
    cPath('mount', target, 'target'),
    fstype === null ? null : cString('mount', fstype, 'fstype'),
    flags,
    data === undefined ? null : cString('mount', data, 'data'),
  ]
}

/** The paths a mount(2) error names: the source and target, or just the target without a source. */
function mountPaths(source: PathLike | null, target: PathLike): SyscallErrorDetails {
  return source === null ? { path: target } : { path: source, dest: target }
}

/**
 * umount2(2): `flags` is 0 or a combination of {@link MNT_DETACH} (lazy: detach now, free
 * when no longer busy), {@link MNT_FORCE}, {@link UMOUNT_NOFOLLOW}. A busy mount without
 * MNT_DETACH rejects with EBUSY (kind conflict); a path that is not a mount point with EINVAL.
 */
export async function umount(target: PathLike, flags = 0): Promise<void> {
  debug('umount %s flags %d', target, flags)
  await callBlocking('umount2', [cPath('umount2', target, 'target'), flags], 'umount2', { path: target })
}

/**
 * {@link mount} on the calling thread: blocks the event loop for as long as the kernel takes,
 * so only for a mount known to be quick (a bind, an overlay of a few empty dirs). Throws what
 * {@link mount} rejects with.
 */
export function mountSync(source: PathLike | null, target: PathLike, fstype: string | null, flags: number, data?: string): void {
  debug('mount (inline) %s on %s type %s flags %s', source, target, fstype, flags.toString(16))
  check(func(BLOCKING_PROTOTYPES.mount)(...mountArgs(source, target, fstype, flags, data)), 'mount', mountPaths(source, target))
}

/**
 * {@link umount} on the calling thread, for a mount known to be quick to detach (with
 * {@link MNT_DETACH} the kernel defers the teardown of a busy one). Throws what
 * {@link umount} rejects with.
 */
export function umountSync(target: PathLike, flags = 0): void {
  debug('umount (inline) %s flags %d', target, flags)
  check(func(BLOCKING_PROTOTYPES.umount2)(cPath('umount2', target, 'target'), flags), 'umount2', { path: target })
}

/**
 * fsopen(2): opens a filesystem context for `fsName` (e.g. `'overlay'`) and returns its fd,
 * close-on-exec by default. Close it with `fs.closeSync` when done, also on failure.
 * ENODEV (kind not-supported) when the kernel lacks the filesystem; ENOSYS before Linux 5.2.
 */
export function fsopen(fsName: string, flags = FSOPEN_CLOEXEC): number {
  const ret = rawSyscall()(SYS.fsopen, 'const char *', cString('fsopen', fsName, 'fsName'), 'unsigned int', flags)
  return check(ret, 'fsopen', { path: fsName })
}

/**
 * fsconfig(2) on a context from {@link fsopen}: `FSCONFIG_SET_FLAG` (key only),
 * `FSCONFIG_SET_STRING` (key and string value), `FSCONFIG_CMD_CREATE` (neither; builds the
 * superblock and may block: {@link mountOverlay} runs it on a worker). A refused parameter
 * fails with EINVAL; the message carries the kernel's own explanation, read from the context.
 */
export function fsconfig(
  fd: number,
  cmd: number,
  key: string | null = null,
  value: PathLike | null = null,
  aux = 0,
): void {
  checkFd('fsconfig', fd)
  const ret = rawSyscall()(
    SYS.fsconfig,
    'int',
    fd,
    'unsigned int',
    cmd,
    'const char *',
    key === null ? null : cString('fsconfig', key, 'key'),
    'const void *',
    value === null ? null : cPath('fsconfig', value, 'value'),
    'int',
    aux,
  )
  if (Number(ret) === -1) {
    const errno = lastErrno()
    const log = readFsContextLog(fd)
    throw new SyscallError('fsconfig', errno, {
      ...(value === null ? {} : { path: value }),
      ...withDetail(key === null ? log : [`key ${key}`, ...log]),
    })
  }
}

/**
 * fsmount(2): turns a created context into a detached mount and returns its fd. `attrFlags`
 * are `MOUNT_ATTR_*` (e.g. {@link MOUNT_ATTR_RDONLY}).
 */
export function fsmount(fd: number, flags = FSMOUNT_CLOEXEC, attrFlags = 0): number {
  checkFd('fsmount', fd)
  const ret = rawSyscall()(SYS.fsmount, 'int', fd, 'unsigned int', flags, 'unsigned int', attrFlags)
  return check(ret, 'fsmount')
}

/**
 * move_mount(2): attaches (or moves) a mount. For a mount fd from {@link fsmount}, pass
 * `fromDirFd = mountFd`, `fromPath = ''` and {@link MOVE_MOUNT_F_EMPTY_PATH}. Dir fds may be
 * `AT_FDCWD` (-100).
 */
export function moveMount(
  fromDirFd: number,
  fromPath: PathLike,
  toDirFd: number,
  toPath: PathLike,
  flags = 0,
): void {
  const ret = rawSyscall()(
    SYS.move_mount,
    'int',
    fromDirFd,
    'const char *',
    cPath('move_mount', fromPath, 'fromPath'),
    'int',
    toDirFd,
    'const char *',
    cPath('move_mount', toPath, 'toPath'),
    'unsigned int',
    flags,
  )
  check(ret, 'move_mount', { path: toPath, ...(fromPath === '' ? {} : { dest: fromPath }) })
}

/** {@link moveMount} of a detached mount fd onto `target` (relative paths from the cwd). */
export function attachMount(mountFd: number, target: PathLike): void {
  moveMount(mountFd, '', AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)
}

/**
 * The messages the kernel logged on an fs context ("e overlay: …"), oldest first. Reading
 * the context fd pops them; it fails with ENODATA once none are left.
 */
export function readFsContextLog(fd: number): string[] {
  const lines: string[] = []
  const buf = Buffer.alloc(1024)
  for (let i = 0; i < 64; i++) {
    let n: number
    try {
      n = readSync(fd, buf, 0, buf.length, null)
    } catch {
      break
    }
    if (n <= 0) break
    const line = buf.toString('utf8', 0, n).trimEnd()
    // Kernel log lines start with a severity letter; anything else means the fd was not an
    // fs context (a caller's mistake), and its data has no place in a message.
    if (!/^[ewi] /.test(line)) break
    lines.push(line)
  }
  return lines
}

function withDetail(lines: readonly string[]): { detail?: string } {
  return lines.length > 0 ? { detail: lines.join('; ') } : {}
}

/** Runs `FSCONFIG_CMD_CREATE` on a worker; rejects with the kernel's log in the message. */
export async function fsconfigCreate(fd: number): Promise<void> {
  checkFd('fsconfig', fd)
  try {
    await callBlocking(
      'syscall',
      [SYS.fsconfig, 'int', fd, 'unsigned int', FSCONFIG_CMD_CREATE, 'const char *', null, 'const void *', null, 'int', 0],
      'fsconfig',
      { detail: 'create' },
    )
  } catch (err) {
    if (err instanceof SyscallError) {
      throw new SyscallError('fsconfig', err.errno, withDetail(['create', ...readFsContextLog(fd)]), { cause: err })
    }
    throw err
  }
}
