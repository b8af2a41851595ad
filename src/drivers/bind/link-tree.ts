/**
 * `linkTree`: a child layer's starting tree, at almost no disk cost. Directories and symlinks
 * are re-created (with owner, mode, xattrs and nanosecond times); every other entry (regular
 * files, devices, FIFOs, sockets) becomes a hard link to the parent's inode. Hard-link groups
 * inside the parent stay groups, since every name links to the same inode.
 *
 * Why directories and symlinks are not shared: a directory cannot be hard-linked, and a
 * child's apply creates and deletes entries in its own directories; a symlink's owner and
 * times could be changed in place (lchown, lutimes), which would reach the parent. A
 * regular file is never changed in place by the archive's naive apply, which unlinks a path
 * and creates a new inode for every member, so sharing it is safe: the parent's files keep
 * their content, mode, owner and times whatever the child's layer does.
 *
 * An inode at the filesystem's hard-link limit (EMLINK; 65 000 on ext4) is copied instead.
 */
import { constants as fsConstants } from 'node:fs'
import { copyFile, link, lstat, mkdir, readdir, readlink, symlink } from 'node:fs/promises'
import createDebug from 'debug'
import { copyMetadata } from '../../graphdriver/index.js'

const debug = createDebug('layerstore:bind')

const SLASH = Buffer.from('/')
// Links made at once within one directory: enough to overlap the syscalls' latency,
// few enough not to exhaust file descriptors or the thread pool.
const PARALLEL = 16

/** What {@link linkTree} made. */
export interface LinkTreeStats {
  dirs: number
  symlinks: number
  links: number
  /** Inodes at the hard-link limit, copied instead. */
  copies: number
}

/**
 * Makes `dst` (an existing empty directory) a tree equal to `src` whose non-directory,
 * non-symlink entries are hard links to `src`'s (see the file comment). `dst` gets `src`'s
 * own owner, mode, xattrs and times. Both must be on one filesystem. Fails on the first
 * error, leaving a partial tree the caller removes. Cost: O(entries), no file data.
 */
export async function linkTree(src: string | Buffer, dst: string | Buffer): Promise<LinkTreeStats> {
  const stats: LinkTreeStats = { dirs: 0, symlinks: 0, links: 0, copies: 0 }
  const s = Buffer.from(src)
  const d = Buffer.from(dst)
  await linkChildren(s, d, stats)
  copyMetadata(s, d, await lstat(s, { bigint: true }))
  debug('linked %s into %s: %o', s.toString(), d.toString(), stats)
  return stats
}

async function linkChildren(srcDir: Buffer, dstDir: Buffer, stats: LinkTreeStats): Promise<void> {
  // With the entries' types: a file (most entries) is linked without an lstat of its own.
  const entries = await readdir(srcDir, { encoding: 'buffer', withFileTypes: true })
  for (let i = 0; i < entries.length; i += PARALLEL) {
    await Promise.all(
      entries
        .slice(i, i + PARALLEL)
        .map((entry) => linkEntry(Buffer.concat([srcDir, SLASH, entry.name]), Buffer.concat([dstDir, SLASH, entry.name]), entry, stats)),
    )
  }
}

/** What a directory listing says of an entry's type (all false: not reported). */
interface EntryType {
  isFile(): boolean
  isBlockDevice(): boolean
  isCharacterDevice(): boolean
  isFIFO(): boolean
  isSocket(): boolean
}

async function linkEntry(from: Buffer, to: Buffer, entry: EntryType, stats: LinkTreeStats): Promise<void> {
  // A directory or symlink needs its stat for its metadata; so does an entry whose type the
  // filesystem did not report (every is*() false), to learn it.
  const known = entry.isFile() || entry.isBlockDevice() || entry.isCharacterDevice() || entry.isFIFO() || entry.isSocket()
  const st = known ? null : await lstat(from, { bigint: true })
  const type = st === null ? null : Number(st.mode) & fsConstants.S_IFMT
  if (st !== null && type === fsConstants.S_IFDIR) {
    await mkdir(to, { mode: 0o700 })
    await linkChildren(from, to, stats)
    // After the children: making them bumps the directory's mtime.
    copyMetadata(from, to, st)
    stats.dirs++
    return
  }
  if (st !== null && type === fsConstants.S_IFLNK) {
    await symlink(await readlink(from, { encoding: 'buffer' }), to)
    copyMetadata(from, to, st)
    stats.symlinks++
    return
  }
  try {
    await link(from, to)
    stats.links++
  } catch (err) {
    const regular = type === null ? entry.isFile() : type === fsConstants.S_IFREG
    if ((err as { code?: unknown }).code !== 'EMLINK' || !regular) throw err
    await copyFile(from, to, fsConstants.COPYFILE_FICLONE)
    copyMetadata(from, to, st ?? (await lstat(from, { bigint: true })))
    stats.copies++
  }
}
