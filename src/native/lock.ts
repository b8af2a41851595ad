/**
 * Whole-file advisory locks with flock(2).
 *
 * flock locks belong to the open file description, not the process: two `open()`s of the
 * same file in one process conflict, a dup'd or inherited fd shares the lock, and the kernel
 * drops it when the last fd of the description closes, so also when the process dies. That
 * is what the store lock needs. (fcntl POSIX locks are per process, and a close of any fd of
 * the file drops them: unusable. OFD fcntl locks would do too, at the cost of a struct.)
 *
 * Waiting polls with LOCK_NB and a growing pause instead of blocking a thread in flock():
 * a thread stuck in the kernel cannot be interrupted from JS, and Node joins its threads at
 * exit, so a blocked waiter hangs `process.exit()` (measured, with koffi's async call on the
 * libuv pool, which it would also starve, and with a worker thread). Polling keeps the
 * event loop free, can be aborted, and costs a microsecond per try.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { errnoValue } from './errors.js'
import { checkFd, func, lastErrno, throwErrno } from './libc.js'

const LOCK_SH = 1
const LOCK_EX = 2
const LOCK_NB = 4
const LOCK_UN = 8

const EWOULDBLOCK = errnoValue('EAGAIN')
const EINTR = errnoValue('EINTR')

/** A shared (many readers) or exclusive (one writer) lock. */
export type LockMode = 'shared' | 'exclusive'

/** Options of {@link lockFile}. */
export interface LockFileOptions {
  /** Wait until the lock is free (true) or answer false at once (false). */
  wait: boolean
  /** Stops waiting: the promise rejects with the signal's reason (an AbortError). */
  signal?: AbortSignal
  /** The longest pause between two tries while waiting, in ms (default 50). */
  maxPollIntervalMs?: number
}

function tryFlock(fd: number, operation: number): boolean {
  const flock = func('int flock(int fd, int operation)')
  for (;;) {
    if (flock(fd, operation | LOCK_NB) === 0) return true
    const errno = lastErrno()
    if (errno === EWOULDBLOCK) return false
    if (errno !== EINTR) throwErrno('flock', { detail: `fd ${fd}` })
  }
}

/**
 * Takes a `mode` lock on the file open as `fd`. Resolves true once held; with
 * `wait: false`, false when another open file description holds a conflicting lock. Taking
 * a lock on an fd that already holds one converts it (not atomically: another waiter may get
 * in between). Rejects with a {@link SyscallError} for a bad fd (EBADF), ENOLCK…
 */
export async function lockFile(fd: number, mode: LockMode, options: LockFileOptions): Promise<boolean> {
  checkFd('flock', fd)
  const operation = mode === 'exclusive' ? LOCK_EX : LOCK_SH
  const maxPause = options.maxPollIntervalMs ?? 50
  let pause = 1
  for (;;) {
    options.signal?.throwIfAborted()
    if (tryFlock(fd, operation)) return true
    if (!options.wait) return false
    await sleep(pause, undefined, options.signal ? { signal: options.signal } : {})
    pause = Math.min(pause * 2, maxPause)
  }
}

/**
 * Releases the lock held through `fd` (none held is fine). Synchronous: LOCK_UN never waits.
 * Closing the last fd of the open file description releases it too.
 */
export function unlockFile(fd: number): void {
  checkFd('flock', fd)
  const flock = func('int flock(int fd, int operation)')
  while (flock(fd, LOCK_UN) !== 0) {
    if (lastErrno() !== EINTR) throwErrno('flock', { detail: `fd ${fd} unlock` })
  }
}
