/**
 * The per-member filesystem work of the apply that does not depend on where the member
 * lands: the attributes a header carries.
 *
 * Order matters and is moby's: ownership first (chown clears setuid/setgid and
 * `security.capability`), then xattrs, then the mode, then times (any later write would move
 * the mtime). These calls are synchronous on purpose: see apply.ts.
 */
import fs from 'node:fs'
import createDebug from 'debug'
import { fsetxattr, futimens, lsetxattr, utimensat } from '../native/index.js'
import type { TimeSpec } from '../native/index.js'
import type { TarHeader, TarTime } from '../tarsplit/index.js'
import { InvalidMemberError } from './errors.js'
import { isOverlayXattr } from './whiteout.js'

const log = createDebug('layerstore:archive')

/** Largest uid/gid we set: 2^32 − 1 would mean "leave unchanged" to chown(2). */
const MAX_ID = 0xfffffffe
/** Device numbers are 32 bits each in a Linux dev_t; moby refuses larger ones. */
const MAX_DEV = 0xffffffff

/** How xattrs from the tar are applied. */
export interface XattrPolicy {
  /** Drop overlayfs's private xattrs (an overlay upper dir must not take them from a tar). */
  readonly dropOverlay: boolean
  /** Tolerate ENOTSUP/EOPNOTSUPP (a filesystem without xattrs) as well as EPERM. */
  readonly bestEffort: boolean
}

/** Checks that the header's owner fits chown(2). */
export function checkOwner(h: TarHeader): void {
  if (!isId(h.uid) || !isId(h.gid)) {
    throw new InvalidMemberError(h.name, 'owner', `uid ${h.uid} / gid ${h.gid} do not fit 32 bits`)
  }
}

/** Checks that the header's device numbers fit a Linux dev_t. */
export function checkDevice(h: TarHeader): void {
  if (!isDev(h.devmajor) || !isDev(h.devminor)) {
    throw new InvalidMemberError(h.name, 'device-number', `device ${h.devmajor}:${h.devminor} does not fit 32 bits`)
  }
}

function isId(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_ID
}

function isDev(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_DEV
}

/** The permission bits to set: mode & 07777 (setuid, setgid and sticky included). */
export function permOf(h: TarHeader): number {
  return h.mode & 0o7777
}

/**
 * The times to set, as moby does: the mtime exactly (nanoseconds from PAX), and the atime
 * from the header when it has one not older than the mtime, else the mtime.
 */
export function timesOf(h: TarHeader): { atime: TimeSpec; mtime: TimeSpec } {
  const mtime = spec(h.mtime)
  const a = h.atime
  const atime = a !== undefined && (a.sec > h.mtime.sec || (a.sec === h.mtime.sec && a.nsec >= h.mtime.nsec)) ? spec(a) : mtime
  return { atime, mtime }
}

function spec(t: TarTime): TimeSpec {
  return { sec: t.sec, nsec: t.nsec }
}

/** Member times as {@link timesOf} gives them. */
export type Times = ReturnType<typeof timesOf>

/**
 * True when Node's own utimes calls set these times exactly: whole, non-negative seconds
 * (a double holds them exactly; Node turns negative times into "now" and rounds fractions
 * to microseconds). Most layer tars have whole-second times, and Node's call costs a few
 * microseconds less than the FFI one, which adds up over 50,000 files.
 */
function nodeExact(t: Times): boolean {
  return t.mtime.nsec === 0 && t.atime.nsec === 0 && Number(t.mtime.sec) >= 0 && Number(t.atime.sec) >= 0
}

/** Sets the times of an open file, to the nanosecond. */
export function setTimesFd(fd: number, t: Times): void {
  if (nodeExact(t)) fs.futimesSync(fd, Number(t.atime.sec), Number(t.mtime.sec))
  else futimens(fd, t.atime, t.mtime)
}

/** Sets the times of a path, not following a final symlink, to the nanosecond. */
export function setTimesPath(path: string | Buffer, t: Times): void {
  if (nodeExact(t)) fs.lutimesSync(path, Number(t.atime.sec), Number(t.mtime.sec))
  else utimensat(path, t.atime, t.mtime, { noFollow: true })
}

/**
 * Sets the header's xattrs on `target` (an fd, or a path not followed if it is a symlink).
 * EPERM is tolerated, as moby does (`user.*` on a symlink, `trusted.*` without
 * CAP_SYS_ADMIN); ENOTSUP only with `bestEffort`. Returns how many were skipped.
 */
export function setXattrs(target: number | string | Buffer, h: TarHeader, policy: XattrPolicy): number {
  let skipped = 0
  for (const [name, value] of h.xattrs) {
    if (policy.dropOverlay && isOverlayXattr(name)) {
      log('dropping overlay xattr %s of %o', name, h.name.toString('latin1'))
      skipped++
      continue
    }
    try {
      if (typeof target === 'number') fsetxattr(target, name, value)
      else lsetxattr(target, name, value)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (code === 'EPERM' || (policy.bestEffort && (code === 'ENOTSUP' || code === 'EOPNOTSUPP'))) {
        log('skipping xattr %s of %o: %s', name, h.name.toString('latin1'), code)
        skipped++
        continue
      }
      throw err
    }
  }
  return skipped
}
