/**
 * `copyDir`: the tree copier the copying drivers share (vfs starts every child layer as a copy
 * of its parent; bind starts read-write layers so). A copy keeps everything a layer can carry:
 * owners, modes (setuid/setgid/sticky), nanosecond times, every xattr (moby copies only
 * `security.capability`, losing `user.*` and `trusted.*`), device nodes, FIFOs, sockets,
 * symlinks, hard links within the tree, sparse holes and non-UTF-8 names (paths stay Buffers
 * throughout).
 *
 * File content goes by reflink (`FICLONE`: instant and shared on btrfs/xfs), else, for a
 * file above {@link SYNC_COPY_MAX}, by libuv's copyfile (`copy_file_range`: in-kernel, no
 * user-space buffers), else by a plain read/write loop. The
 * first failure of a method disables it for the rest of the copy, as moby does, so an ext4
 * tree does not pay a failing ioctl per file. A sparse source skips `copy_file_range`, which
 * would fill its holes; the plain loop keeps holes by not writing zero blocks.
 *
 * Speed: the walk and the per-entry metadata calls are synchronous, and so is the content of
 * small files, and every reflink (a copy never starts the native worker, ~13 MiB). An async
 * fs call costs a thread-pool hop
 * (~10–20 µs) and an async native call a worker round trip, against ~1–5 µs for the same call
 * made directly; a copy makes about ten such calls per entry. On a 5,300-file Debian tree the
 * all-async version took 8–15 s where `cp -a` took 0.5–0.7 s. To keep the event loop
 * responsive the copy yields to it every {@link YIELD_EVERY} entries, and files above
 * {@link SYNC_COPY_MAX} are copied with async calls.
 */
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  linkSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  symlinkSync,
  ftruncateSync,
  writeSync,
} from 'node:fs'
import type { BigIntStats } from 'node:fs'
import { copyFile as fsCopyFile, open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import createDebug from 'debug'
import { copyXattrs, devMajor, devMinor, ficloneSync, mknod, timeSpecOfNs, utimensat } from '../native/index.js'

const debug = createDebug('layerstore:graphdriver')

const SLASH = Buffer.from('/')
const CHUNK = 1024 * 1024
/** Files up to this size are copied with blocking reads and writes (see the module doc). */
export const SYNC_COPY_MAX = 256 * 1024
/** Entries copied between two yields to the event loop. */
export const YIELD_EVERY = 256
// Holes are found at this granularity: the usual filesystem block size.
const HOLE_BLOCK = 4096
const ZERO_BLOCK = Buffer.alloc(HOLE_BLOCK)
const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW

/** How the file contents of one copy were made (for tests and the debug log). */
export interface CopyStats {
  files: number
  reflinked: number
  rangeCopied: number
  plainCopied: number
  hardlinks: number
}

/** Options of {@link copyDir}. */
export interface CopyDirOptions {
  /** Try FICLONE first. Default true. */
  readonly reflink?: boolean
  /** Try copy_file_range before a plain copy. Default true. */
  readonly copyFileRange?: boolean
}

interface CopyState {
  clone: boolean
  range: boolean
  /** (dev:ino) of a multiply-linked source inode → the path of its first copy. */
  readonly links: Map<string, Buffer>
  readonly stats: CopyStats
  entries: number
  /**
   * The read/write loop's buffer, 1 MiB whatever the files: a block that big is its own
   * mmap, unmapped when collected. A 64 KiB one per copy came from malloc's heap instead, and
   * the chain on vfs (125 copies) peaked at 84 MiB against 76 (issue #6).
   */
  readonly buf: Buffer
}

/**
 * Copies the tree at `src` into the existing empty directory `dst` (whose own owner, mode,
 * xattrs and times become `src`'s). Fails on the first error, leaving a partial tree the
 * caller removes. Cost: O(files + bytes) without reflink; O(files) with it.
 */
export async function copyDir(src: string | Buffer, dst: string | Buffer, options: CopyDirOptions = {}): Promise<CopyStats> {
  const state: CopyState = {
    clone: options.reflink ?? true,
    range: options.copyFileRange ?? true,
    links: new Map(),
    stats: { files: 0, reflinked: 0, rangeCopied: 0, plainCopied: 0, hardlinks: 0 },
    entries: 0,
    buf: Buffer.allocUnsafe(CHUNK),
  }
  const s = toBuffer(src)
  const d = toBuffer(dst)
  await copyChildren(s, d, state)
  copyMetadata(s, d, lstatSync(s, { bigint: true }))
  debug('copied %s: %o', s.toString(), state.stats)
  return state.stats
}

async function copyChildren(srcDir: Buffer, dstDir: Buffer, state: CopyState): Promise<void> {
  for (const name of readdirSync(srcDir, { encoding: 'buffer' })) {
    await copyEntry(Buffer.concat([srcDir, SLASH, name]), Buffer.concat([dstDir, SLASH, name]), state)
    if (++state.entries % YIELD_EVERY === 0) await yieldToLoop()
  }
}

async function copyEntry(from: Buffer, to: Buffer, state: CopyState): Promise<void> {
  const st = lstatSync(from, { bigint: true })
  const type = Number(st.mode) & fsConstants.S_IFMT
  if (type === fsConstants.S_IFDIR) {
    mkdirSync(to, { mode: 0o700 })
    await copyChildren(from, to, state)
    // After the children: creating them would bump the directory's mtime again.
    copyMetadata(from, to, st)
    return
  }
  if (st.nlink > 1n) {
    const key = `${st.dev}:${st.ino}`
    const first = state.links.get(key)
    if (first) {
      linkSync(first, to)
      state.stats.hardlinks++
      return
    }
    state.links.set(key, to)
  }
  switch (type) {
    case fsConstants.S_IFREG:
      await copyFile(from, to, st, state)
      break
    case fsConstants.S_IFLNK:
      symlinkSync(readlinkSync(from, { encoding: 'buffer' }), to)
      break
    case fsConstants.S_IFCHR:
    case fsConstants.S_IFBLK:
      mknod(to, Number(st.mode), devMajor(st.rdev), devMinor(st.rdev))
      break
    case fsConstants.S_IFIFO:
    case fsConstants.S_IFSOCK:
      // A socket node is only a name (no listener survives a copy); keeping its type keeps
      // the trees equal, where moby turns it into a FIFO.
      mknod(to, Number(st.mode), 0, 0)
      break
    default:
      throw new Error(`unknown file type 0o${type.toString(8)} at ${from.toString()}`)
  }
  copyMetadata(from, to, st)
}

async function copyFile(from: Buffer, to: Buffer, st: BigIntStats, state: CopyState): Promise<void> {
  state.stats.files++
  const size = Number(st.size)
  // Allocated bytes below the size mean holes, which copy_file_range would fill in.
  const sparse = Number(st.blocks) * 512 < size
  if (size <= SYNC_COPY_MAX) {
    copySmallFile(from, to, size, sparse, state)
    return
  }
  const src = await open(from, 'r')
  try {
    const dst = await open(to, CREATE_FLAGS, 0o600)
    try {
      // A reflink is metadata whatever the size: on this thread too (see copySmallFile).
      if (state.clone) {
        try {
          ficloneSync(dst.fd, src.fd)
          state.stats.reflinked++
          return
        } catch (err) {
          disableClone(state, err)
        }
      }
      if (state.range && !sparse) {
        // libuv's copyfile: copy_file_range on the thread pool (sendfile where it cannot),
        // without starting the native worker (~13 MiB) for the few big files of a tree.
        await fsCopyFile(from, to)
        state.stats.rangeCopied++
        return
      }
      await plainCopy(src, dst, size, sparse, state.buf)
      state.stats.plainCopied++
    } finally {
      await dst.close()
    }
  } finally {
    await src.close()
  }
}

/** The first failed reflink disables them for the rest of the copy (EXDEV: copy_file_range too). */
function disableClone(state: CopyState, err: unknown): void {
  state.clone = false
  if (errCode(err) === 'EXDEV') state.range = false
  debug('reflink disabled: %s', errCode(err) ?? err)
}

function copySmallFile(from: Buffer, to: Buffer, size: number, sparse: boolean, state: CopyState): void {
  const src = openSync(from, 'r')
  try {
    const dst = openSync(to, CREATE_FLAGS, 0o600)
    try {
      // Reflinks are tried on the first file (on this thread: a small file's answer costs
      // microseconds, where the worker the async call needs costs ~13 MiB to start).
      if (state.clone && size > 0) {
        try {
          ficloneSync(dst, src)
          state.stats.reflinked++
          return
        } catch (err) {
          disableClone(state, err)
        }
      }
      let pos = 0
      while (pos < size) {
        const n = readSync(src, state.buf, 0, Math.min(CHUNK, size - pos), pos)
        if (n === 0) break
        const data = state.buf.subarray(0, n)
        for (const [start, end] of sparse ? dataRuns(data) : [[0, n] as const]) {
          let off = start
          while (off < end) off += writeSync(dst, data, off, end - off, pos + off)
        }
        pos += n
      }
      if (sparse) ftruncateSync(dst, size)
      if (size > 0) state.stats.plainCopied++
    } finally {
      closeSync(dst)
    }
  } finally {
    closeSync(src)
  }
}

async function plainCopy(src: FileHandle, dst: FileHandle, size: number, sparse: boolean, buf: Buffer): Promise<void> {
  let pos = 0
  while (pos < size) {
    const { bytesRead } = await src.read(buf, 0, Math.min(CHUNK, size - pos), pos)
    if (bytesRead === 0) break
    const data = buf.subarray(0, bytesRead)
    for (const [start, end] of sparse ? dataRuns(data) : [[0, bytesRead] as const]) {
      let off = start
      while (off < end) off += (await dst.write(data, off, end - off, pos + off)).bytesWritten
    }
    pos += bytesRead
  }
  // Trailing holes are never written, so the size comes from truncate.
  if (sparse) await dst.truncate(size)
}

/** The [start, end) runs of `data` that are not whole zero blocks. */
function dataRuns(data: Buffer): Array<readonly [number, number]> {
  const runs: Array<readonly [number, number]> = []
  let start = -1
  for (let off = 0; off < data.length; off += HOLE_BLOCK) {
    const block = data.subarray(off, off + HOLE_BLOCK)
    const zero = block.equals(ZERO_BLOCK.subarray(0, block.length))
    if (!zero && start < 0) start = off
    if (zero && start >= 0) {
      runs.push([start, off])
      start = -1
    }
  }
  if (start >= 0) runs.push([start, data.length])
  return runs
}

/**
 * Gives `to` the metadata of `from` (whose lstat is `st`): owner, then mode, then xattrs,
 * then times, since chown clears setuid/setgid and `security.capability`, and every other
 * step would bump the times. Symlinks are never followed. Synchronous, as the copy's other
 * per-entry calls (see the module doc); bind's flattening uses it too, with `skipXattr` to
 * leave out overlayfs's own xattrs (its layers' opaque markers).
 */
export function copyMetadata(from: Buffer, to: Buffer, st: BigIntStats, skipXattr?: (name: string) => boolean): void {
  const isLink = (Number(st.mode) & fsConstants.S_IFMT) === fsConstants.S_IFLNK
  lchownSync(to, Number(st.uid), Number(st.gid))
  if (!isLink) chmodSync(to, Number(st.mode) & 0o7777)
  copyXattrs(from, to, skipXattr)
  utimensat(to, timeSpecOfNs(st.atimeNs), timeSpecOfNs(st.mtimeNs), { noFollow: true })
}

function toBuffer(p: string | Buffer): Buffer {
  return typeof p === 'string' ? Buffer.from(p) : p
}

function errCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' ? code : undefined
}
