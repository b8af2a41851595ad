/**
 * File calls Node lacks or does lossily: mknod, utimensat with exact nanoseconds, renameat2,
 * syncfs, FICLONE and copy_file_range.
 *
 * mknod, utimensat and renameat2 are synchronous: the layer apply makes them per file, where
 * a sync FFI call costs about a microsecond and a worker round trip a hundred times more.
 * syncfs, ficlone and copyFileRange are async: they move or flush whole files and may take
 * seconds, so they run off this thread (ficlone and copyFileRange on the native worker,
 * async-call.ts, whose errno their fallbacks need; syncfs on the libuv pool, see there).
 */
import { callBlocking } from './async-call.js'
import { errnoValue, NativeArgumentError, SyscallError } from './errors.js'
import type { PathLike } from './errors.js'
import { AT_FDCWD, check, checkFd, cPath, func, int64Struct, lastErrno } from './libc.js'

/**
 * glibc's `makedev`: a 64-bit dev_t from a major and minor number (each up to 32 bits),
 * the same encoding as `stat.rdev` and tar's devmajor/devminor.
 */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0)
  const mi = BigInt(minor >>> 0)
  return ((ma & 0xfffn) << 8n) | ((ma & 0xfffff000n) << 32n) | (mi & 0xffn) | ((mi & 0xffffff00n) << 12n)
}

/** The major number of a dev_t (`stat.rdev`), glibc's `major()`. */
export function devMajor(dev: number | bigint): number {
  const d = BigInt(dev)
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & 0xfffff000n))
}

/** The minor number of a dev_t (`stat.rdev`), glibc's `minor()`. */
export function devMinor(dev: number | bigint): number {
  const d = BigInt(dev)
  return Number((d & 0xffn) | ((d >> 12n) & 0xffffff00n))
}

/**
 * mknod(2): makes a device node, fifo or socket at `path`. `mode` holds the file type
 * (`fs.constants.S_IFCHR`, `S_IFBLK`, `S_IFIFO`…) and the permission bits, from which the
 * kernel removes the process umask (chmod afterwards for exact bits). A char device 0/0 is
 * an overlayfs whiteout. Throws a {@link SyscallError} (EEXIST, EPERM without CAP_MKNOD…).
 */
export function mknod(path: PathLike, mode: number, major = 0, minor = 0): void {
  const fn = func('int mknod(const char *path, uint32_t mode, uint64_t dev)')
  check(fn(cPath('mknod', path), mode, makedev(major, minor)), 'mknod', { path })
}

/** A timestamp for {@link utimensat}: seconds since the epoch (may be negative) + nanoseconds. */
export interface TimeSpec {
  sec: number | bigint
  /** 0 to 999 999 999. */
  nsec: number
}

/** A stat's nanoseconds since the epoch (`atimeNs`, `mtimeNs`) as a TimeSpec: before 1970, nsec stays in 0…999 999 999 as utimensat requires. */
export function timeSpecOfNs(ns: bigint): TimeSpec {
  const sec = ns / 1_000_000_000n
  const nsec = ns % 1_000_000_000n
  return nsec < 0n ? { sec: Number(sec - 1n), nsec: Number(nsec + 1_000_000_000n) } : { sec: Number(sec), nsec: Number(nsec) }
}

/** A time to set: exact, the current time, or leave as it is. */
export type TimeSpecArg = TimeSpec | 'now' | 'omit'

/** Options of {@link utimensat}. */
export interface UtimensatOptions {
  /** Change a symlink itself, not its target (AT_SYMLINK_NOFOLLOW). */
  noFollow?: boolean
  /** Resolve a relative `path` from this directory fd instead of the cwd. */
  dirFd?: number
}

const AT_SYMLINK_NOFOLLOW = 0x100
// From <linux/stat.h>: tv_nsec values that mean "now" and "leave unchanged".
const UTIME_NOW = (1 << 30) - 1
const UTIME_OMIT = (1 << 30) - 2

function timespecFields(time: TimeSpecArg, argument: string): [bigint, number] {
  if (time === 'now') return [0n, UTIME_NOW]
  if (time === 'omit') return [0n, UTIME_OMIT]
  if (!Number.isInteger(time.nsec) || time.nsec < 0 || time.nsec > 999_999_999) {
    throw new NativeArgumentError('utimensat', argument, `nsec ${time.nsec} is not in 0..999999999`)
  }
  if (typeof time.sec === 'number' && !Number.isInteger(time.sec)) {
    throw new NativeArgumentError('utimensat', argument, `sec ${time.sec} is not an integer`)
  }
  return [BigInt(time.sec), time.nsec]
}

/**
 * utimensat(2): sets access and modification times with nanosecond precision (Node's
 * `utimes` goes through a double and loses them). With `noFollow` a symlink's own times
 * change. Throws a {@link SyscallError} (ENOENT…) or {@link NativeArgumentError} for a bad nsec.
 */
export function utimensat(path: PathLike, atime: TimeSpecArg, mtime: TimeSpecArg, options: UtimensatOptions = {}): void {
  const [as, ans] = timespecFields(atime, 'atime')
  const [ms, mns] = timespecFields(mtime, 'mtime')
  const fn = func('int utimensat(int dirfd, const char *path, const void *times, int flags)')
  const ret = fn(
    options.dirFd ?? AT_FDCWD,
    cPath('utimensat', path),
    int64Struct([as, ans, ms, mns]),
    options.noFollow ? AT_SYMLINK_NOFOLLOW : 0,
  )
  check(ret, 'utimensat', { path })
}

/** futimens(3): {@link utimensat} on an open fd. */
export function futimens(fd: number, atime: TimeSpecArg, mtime: TimeSpecArg): void {
  const [as, ans] = timespecFields(atime, 'atime')
  const [ms, mns] = timespecFields(mtime, 'mtime')
  const fn = func('int futimens(int fd, const void *times)')
  check(fn(checkFd('futimens', fd), int64Struct([as, ans, ms, mns])), 'futimens')
}

/** How {@link renameat2} renames. */
export type RenameMode = 'noreplace' | 'exchange' | 'whiteout'

const RENAME_FLAGS: Readonly<Record<RenameMode, number>> = { noreplace: 0x1, exchange: 0x2, whiteout: 0x4 }
const EINVAL = errnoValue('EINVAL')

/**
 * renameat2(2). `'noreplace'`: fail with EEXIST (kind already-exists) instead of replacing
 * `newPath`. `'exchange'`: swap the two paths atomically (both must exist). `'whiteout'`:
 * leave an overlay whiteout at `oldPath`. A filesystem that cannot do the mode answers
 * EINVAL, reported as kind not-supported.
 */
export function renameat2(oldPath: PathLike, newPath: PathLike, mode: RenameMode): void {
  const fn = func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)')
  const ret = fn(AT_FDCWD, cPath('renameat2', oldPath, 'oldPath'), AT_FDCWD, cPath('renameat2', newPath, 'newPath'), RENAME_FLAGS[mode])
  if (ret === -1) {
    const errno = lastErrno()
    const kind = errno === EINVAL ? 'not-supported' : undefined
    throw new SyscallError('renameat2', errno, { path: oldPath, dest: newPath, ...(kind ? { kind, detail: `mode ${mode}` } : {}) })
  }
}


/**
 * syncfs(2): flushes the whole filesystem that holds `fd` (cheaper than an fsync per file
 * after a layer apply). It waits for writeback, so it runs off this thread; not on the
 * native worker but on the libuv thread pool (koffi's async call): a register needs no other
 * blocking call, and a worker would cost its process ~13 MiB (an isolate and koffi), all of
 * register's memory margin (issue #6). A pool thread keeps its errno, so a failure (rare) is
 * asked again on the native worker, which reads errno, without blocking this thread; since a
 * writeback error is reported once per open file, the second call may pass, and the failure
 * is then the writeback error: EIO. While it waits, a syncfs holds one of libuv's threads.
 */
export async function syncfs(fd: number): Promise<void> {
  const fn = func(SYNCFS)
  const ret = await new Promise<number>((resolve, reject) => {
    fn.async(checkFd('syncfs', fd), (err: unknown, result: number) => (err ? reject(err) : resolve(result)))
  })
  if (ret === 0) return
  await callBlocking('syncfs', [fd], 'syncfs')
  throw new SyscallError('syncfs', errnoValue('EIO'), { detail: 'a writeback error, reported once' })
}

const SYNCFS = 'int syncfs(int fd)'

// _IOW(0x94, 9, int) from <linux/fs.h>.
const FICLONE = 0x40049409
const NOT_SUPPORTED_CLONE = new Set(['EOPNOTSUPP', 'EXDEV', 'EINVAL', 'ENOTTY', 'ENOSYS'])

/**
 * ioctl(FICLONE): makes `destFd` share all of `srcFd`'s extents (a reflink; btrfs, xfs with
 * reflink, bcachefs). Where the filesystem cannot (ext4, overlay, tmpfs) or the files are on
 * two filesystems, rejects with a {@link SyscallError} of kind not-supported (EOPNOTSUPP,
 * EXDEV…), and the caller copies instead.
 */
export async function ficlone(destFd: number, srcFd: number): Promise<void> {
  try {
    await callBlocking('ioctl', [checkFd('ficlone', destFd, 'destFd'), FICLONE, 'int', checkFd('ficlone', srcFd, 'srcFd')], 'ioctl')
  } catch (err) {
    throw cloneError(err)
  }
}

/**
 * {@link ficlone} on the calling thread: for a small file, whose reflink (or the refusal of a
 * filesystem that cannot) is a few microseconds of metadata, not worth a native worker's
 * start (~13 MiB) and round trip. Same errors.
 */
export function ficloneSync(destFd: number, srcFd: number): void {
  const fn = func('int ioctl(int fd, unsigned long request, ...)')
  try {
    check(fn(checkFd('ficlone', destFd, 'destFd'), FICLONE, 'int', checkFd('ficlone', srcFd, 'srcFd')), 'ioctl')
  } catch (err) {
    throw cloneError(err)
  }
}

/** A FICLONE refusal by a filesystem that cannot reflink is of kind not-supported. */
function cloneError(err: unknown): unknown {
  if (err instanceof SyscallError && NOT_SUPPORTED_CLONE.has(err.code)) {
    return new SyscallError('ioctl', err.errno, { kind: 'not-supported', detail: 'FICLONE' }, { cause: err })
  }
  return err
}

/**
 * copy_file_range(2): copies up to `length` bytes in the kernel (and server-side or by
 * reflink where the filesystem can). An offset of null means the fd's own position, which
 * then advances; a number leaves the position alone. Resolves with the bytes copied, which
 * may be fewer than asked (0 at end of file): loop. EXDEV (files on two filesystems) and
 * EOPNOTSUPP are kind not-supported; then read and write instead.
 */
export async function copyFileRange(
  fdIn: number,
  offIn: number | null,
  fdOut: number,
  offOut: number | null,
  length: number,
): Promise<number> {
  if (!Number.isSafeInteger(length) || length < 0) throw new NativeArgumentError('copy_file_range', 'length', `${length}`)
  try {
    return await callBlocking(
      'copy_file_range',
      [
        checkFd('copy_file_range', fdIn, 'fdIn'),
        offIn === null ? null : int64Struct([offIn]),
        checkFd('copy_file_range', fdOut, 'fdOut'),
        offOut === null ? null : int64Struct([offOut]),
        length,
        0,
      ],
      'copy_file_range',
    )
  } catch (err) {
    if (err instanceof SyscallError && err.code === 'EXDEV') {
      throw new SyscallError('copy_file_range', err.errno, { kind: 'not-supported' }, { cause: err })
    }
    throw err
  }
}
