/**
 * /proc/self/mountinfo: a pure parser and the helpers the drivers need (is this path a
 * mount point, what is mounted under this dir).
 *
 * One line per mount (proc(5)):
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 *   id parent maj:min root mount-point options [optional fields…] - fstype source super-options
 * The kernel escapes space, tab, newline and backslash in paths as octal (`\040`), and
 * writes any other byte raw, so names that are not UTF-8 come through as bytes.
 */
import { readFile, realpath } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'

/** One mount, as /proc/self/mountinfo describes it. */
export interface MountInfo {
  /** Unique mount ID (may be reused after unmount). */
  readonly id: number
  /** ID of the parent mount (itself for the root of the mount tree). */
  readonly parent: number
  /** Device major number of files on this filesystem. */
  readonly major: number
  /** Device minor number. */
  readonly minor: number
  /** The directory of the filesystem mounted here (not `/` for bind mounts of a subtree). */
  readonly root: string
  /** Where it is mounted, relative to this process's root. */
  readonly mountPoint: string
  /**
   * {@link mountPoint} as the kernel's bytes: pass this to `umount` when the name may not be
   * UTF-8 (then `mountPoint` holds the bytes as latin1 characters and names another path).
   */
  readonly mountPointBytes: Buffer
  /** Per-mount options (`rw,nosuid,relatime`). */
  readonly options: string
  /** Optional fields such as `shared:1`, `master:2`, `unbindable`. */
  readonly optionalFields: readonly string[]
  /** Filesystem type (`ext4`, `overlay`, `fuse.sshfs`). */
  readonly fstype: string
  /** Filesystem-specific source (`/dev/vda`, `overlay`, `none`). */
  readonly source: string
  /** Per-superblock options (for overlay: `lowerdir=…,upperdir=…`). */
  readonly superOptions: string
}

/** Undoes the kernel's `\NNN` octal escapes; works on a latin1 string (one char per byte). */
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8) & 0xff))
}

/** A latin1 (byte) string back to text: UTF-8 when the bytes are UTF-8, else the bytes as is. */
function bytesToText(latin1: string): string {
  const bytes = Buffer.from(latin1, 'latin1')
  const text = bytes.toString('utf8')
  return Buffer.from(text, 'utf8').equals(bytes) ? text : latin1
}

/**
 * Parses the text of a mountinfo file. Pure. Buffers are read as bytes, so raw non-UTF-8
 * names survive (decoded as UTF-8 where valid, latin1 otherwise); a string is taken as
 * already-decoded text. Lines that do not have the shape of a mountinfo line are skipped.
 */
export function parseMountInfo(text: string | Buffer): MountInfo[] {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text
  const mounts: MountInfo[] = []
  for (const line of bytes.toString('latin1').split('\n')) {
    if (line === '') continue
    const fields = line.split(' ')
    const separator = fields.indexOf('-', 6)
    if (fields.length < 10 || separator < 0 || fields.length < separator + 4) continue
    const [id, parent, devices, root, mountPoint, options] = fields as [string, string, string, string, string, string]
    const [major, minor] = devices.split(':')
    const rawMountPoint = unescapeOctal(mountPoint)
    const mount: MountInfo = {
      id: Number(id),
      parent: Number(parent),
      major: Number(major),
      minor: Number(minor),
      root: bytesToText(unescapeOctal(root)),
      mountPoint: bytesToText(rawMountPoint),
      mountPointBytes: Buffer.from(rawMountPoint, 'latin1'),
      options: bytesToText(unescapeOctal(options)),
      optionalFields: fields.slice(6, separator).map((field) => bytesToText(unescapeOctal(field))),
      fstype: bytesToText(unescapeOctal(fields[separator + 1] ?? '')),
      source: bytesToText(unescapeOctal(fields[separator + 2] ?? '')),
      superOptions: bytesToText(unescapeOctal(fields.slice(separator + 3).join(' '))),
    }
    if (!Number.isInteger(mount.id) || !Number.isInteger(mount.parent)) continue
    mounts.push(Object.freeze(mount))
  }
  return mounts
}

/** Reads and parses /proc/self/mountinfo (this process's mount namespace). */
export async function readMountInfo(): Promise<MountInfo[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo'))
}

/** An absolute path with symlinks resolved where it exists, lexically otherwise. */
async function canonical(path: string): Promise<string> {
  try {
    return await realpath(path)
  } catch {
    return resolvePath(path)
  }
}

/**
 * True when something is mounted exactly on `path` (after resolving symlinks), including a
 * bind mount of a directory onto itself, which a device-number comparison would miss.
 */
export async function isMountPoint(path: string): Promise<boolean> {
  const [target, mounts] = await Promise.all([canonical(path), readMountInfo()])
  return mounts.some((mount) => mount.mountPoint === target)
}

/**
 * The mounts on `dir` or below it, deepest first, the order in which to unmount them. Stacked
 * mounts on one point come last-mounted first (mountinfo lists mounts in mount order).
 */
export async function mountsUnder(dir: string): Promise<MountInfo[]> {
  const [root, mounts] = await Promise.all([canonical(dir), readMountInfo()])
  const prefix = root.endsWith('/') ? root : `${root}/`
  const under = mounts
    .map((mount, order) => ({ mount, order }))
    .filter(({ mount }) => mount.mountPoint === root || mount.mountPoint.startsWith(prefix))
  under.sort((a, b) => depth(b.mount.mountPoint) - depth(a.mount.mountPoint) || b.order - a.order)
  return under.map(({ mount }) => mount)
}

function depth(path: string): number {
  return path === '/' ? 0 : path.split('/').length - 1
}
