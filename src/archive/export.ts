/**
 * Exporting changes as a layer tar: the reverse of the apply. Moby's `ExportChanges`
 * (research/moby.md §6.4, §6.5) with these choices:
 *
 * - members in byte order of their paths, so the same tree and changes give the same bytes;
 * - a `deleted` path becomes an empty file `<dir>/.wh.<name>` (mode 0, owner 0:0, mtime 0:
 *   moby stamps it with the current time, which makes the output differ run to run);
 * - an `opaque` directory is followed by `<dir>/.wh..wh..opq` (the directory's permission
 *   bits, owner and mtime), and the `deleted` paths under it are left out (the marker hides them);
 * - the directories above a changed path are written before it when the list lacks them,
 *   so the layer carries their attributes (moby's change lists always include them);
 * - the second and later paths of an inode (same device and inode number) within the export
 *   are hardlinks to the first;
 * - USTAR + PAX (tar-writer.ts): exact names, numeric owners only, mtimes to the nanosecond,
 *   every xattr but overlayfs's own (moby writes only `security.capability`);
 * - a path that cannot be read fails the stream with `TreeReadError` (moby logs and skips
 *   it, silently producing an incomplete layer); sockets are skipped, as moby does.
 *
 * The stream pulls: members are written only as the consumer reads, in chunks of 1 MiB, a
 * large file a piece at a time, never whole (see the constants below for the costs behind this).
 */
import fs from 'node:fs'
import { Readable } from 'node:stream'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import createDebug from 'debug'
import { devMajor, devMinor } from '../native/index.js'
import { baseRel, bytesOfText, fsPath, joinRel, parentRel } from './byte-path.js'
import type { Change } from './changes.js'
import { readXattrs } from './changes.js'
import { ChunkWriter } from './chunk-writer.js'
import { InvalidTargetError, TreeReadError } from './errors.js'
import { BLOCK_SIZE, END_OF_ARCHIVE, encodeHeaderInto, paddingLength } from './tar-writer.js'
import type { ExportHeader, ExportType } from './tar-writer.js'
import { WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './whiteout.js'

const log = createDebug('layerstore:archive')

/** Options of {@link exportChanges}. */
export interface ExportOptions {
  /** Which xattrs to write, by name. Default: all (overlayfs's own are never written). */
  readonly xattrs?: (name: string) => boolean
}

/**
 * The stream hands on chunks of exactly this many bytes (the last one excepted): headers and
 * contents of many members batched together (see chunk-writer.ts). It is also the stream's
 * high-water mark, so an unread stream holds about two chunks.
 */
const CHUNK = 1 << 20

/**
 * Regular files up to this size are opened, read and closed synchronously, straight into
 * the output chunk. Each async fs call is a thread-pool round trip that costs 5–10× the
 * syscall here, and a layer is mostly small files; a larger file's reads go through the
 * pool, a chunk at a time, so a slow disk does not stall the event loop for long.
 */
const SYNC_READ_MAX = 64 << 10

/** At most this many members go by between two turns of the event loop (see `chunks`). */
const YIELD_EVERY = 512

/**
 * A layer tar of `changes` (paths as in {@link Change}) with the contents and attributes
 * found under `dir`. Errors (a path that vanished, an unreadable file) destroy the stream
 * with a `TreeReadError`, or an `InvalidTargetError` when `dir` itself is unusable.
 */
export function exportChanges(dir: string, changes: readonly Change[], options: ExportOptions = {}): Readable {
  return Readable.from(new Exporter(dir, changes, options).chunks(), { objectMode: false, highWaterMark: CHUNK })
}

/** A regular file opened for an asynchronous read of its contents. */
interface LargeFile {
  readonly rel: string
  readonly fd: number
  readonly size: number
}

class Exporter {
  readonly #dir: string
  readonly #changes: readonly Change[]
  readonly #keepXattr: ((name: string) => boolean) | null
  readonly #out = new ChunkWriter(CHUNK)
  /** Each USTAR header block is encoded here, then copied into the output. */
  readonly #block = Buffer.alloc(BLOCK_SIZE)
  #root = ''
  /** Directories written so far (relative byte strings). */
  readonly #dirs = new Set<string>([''])
  readonly #opaque = new Set<string>()
  /** First name written for each multiply-linked inode, by `dev:ino`. */
  readonly #links = new Map<string, Buffer>()

  constructor(dir: string, changes: readonly Change[], options: ExportOptions) {
    this.#dir = dir
    // Copied and sorted before the first read, so a caller changing its array cannot interfere.
    this.#changes = [...changes].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    this.#keepXattr = options.xattrs ?? null
  }

  /**
   * The archive in chunks. Members are written synchronously into the chunk writer; the
   * generator stops to hand on chunks as they fill (the stream asks for the next only when
   * its reader wants more, which is the backpressure) and for large files' reads.
   */
  async *chunks(): AsyncGenerator<Buffer> {
    this.#root = await realDir(this.#dir)
    let quiet = 0
    for (const c of this.#changes) {
      const rel = trimSlashes(c.path)
      if (rel === '') continue
      if (c.kind === 'deleted') {
        if (this.#underOpaque(rel)) continue
        for (const p of this.#missingParents(rel)) {
          // A deleted path whose parent is gone too: the whiteout alone still says it.
          if (this.#lstat(p, true) === null) break
          const large = this.#member(p, false)
          if (large !== null) yield* this.#largeContent(large)
        }
        this.#header(rel, whiteout(rel))
      } else {
        for (const p of this.#missingParents(rel)) {
          const large = this.#member(p, false)
          if (large !== null) yield* this.#largeContent(large)
        }
        const large = this.#member(rel, c.opaque === true)
        if (large !== null) {
          yield* this.#largeContent(large)
          quiet = 0
        }
      }
      if (this.#out.hasReady) yield* this.#out.take()
      if (++quiet >= YIELD_EVERY) {
        // Only sync calls since the last turn (small files from the page cache, whiteouts),
        // and handing on a chunk is no turn either (a reader in flowing mode takes it at
        // once): let timers and I/O of the rest of the process run.
        quiet = 0
        await yieldToLoop()
      }
    }
    this.#out.write(END_OF_ARCHIVE)
    this.#out.flush()
    yield* this.#out.take()
  }

  #underOpaque(rel: string): boolean {
    if (this.#opaque.size === 0) return false
    for (let p = parentRel(rel); p !== ''; p = parentRel(p)) if (this.#opaque.has(p)) return true
    return false
  }

  /** The directories above `rel` not written yet, top first. */
  #missingParents(rel: string): readonly string[] {
    let p = parentRel(rel)
    if (this.#dirs.has(p)) return NONE
    const missing: string[] = []
    for (; !this.#dirs.has(p); p = parentRel(p)) missing.push(p)
    return missing.reverse()
  }

  /**
   * Writes the member `rel` (header, and contents unless it is a large regular file, which is
   * returned open for {@link #largeContent}).
   */
  #member(rel: string, opaque: boolean): LargeFile | null {
    const st = this.#lstat(rel, false)!
    const type = typeOf(st)
    if (type === null) {
      log('skipping %o: sockets cannot be in a layer', rel)
      return null
    }
    const abs = this.#abs(rel)
    const name = Buffer.from(type === 'directory' ? `${rel}/` : rel, 'latin1')
    const device = type === 'char-device' || type === 'block-device'
    let nsec = Number(st.mtimeNs % NS)
    let sec = Number(st.mtimeNs / NS)
    if (nsec < 0) {
      sec -= 1
      nsec += 1e9
    }
    let header: ExportHeader = {
      name,
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: type === 'file' ? Number(st.size) : 0,
      mtime: { sec, nsec },
      linkname: type === 'symlink' ? this.#read(rel, 'readlink', () => fs.readlinkSync(abs, { encoding: 'buffer' })) : EMPTY,
      devmajor: device ? devMajor(st.rdev) : 0,
      devminor: device ? devMinor(st.rdev) : 0,
      xattrs: this.#xattrs(rel, abs),
    }
    if (type === 'file' && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`
      const first = this.#links.get(key)
      if (first !== undefined) header = { ...header, type: 'hardlink', size: 0, linkname: first }
      else this.#links.set(key, name)
    }
    this.#header(rel, header)
    if (header.type === 'file' && header.size > 0) return this.#content(rel, abs, header.size)
    if (type === 'directory') {
      this.#dirs.add(rel)
      if (opaque) {
        this.#opaque.add(rel)
        const marker = Buffer.from(joinRel(rel, WHITEOUT_OPAQUE), 'latin1')
        this.#header(rel, { ...header, name: marker, type: 'file', mode: header.mode & 0o777, xattrs: NO_XATTRS })
      }
    }
    return null
  }

  /** Writes a small file's contents and padding; opens a large one and returns it. */
  #content(rel: string, abs: string | Buffer, size: number): LargeFile | null {
    const fd = this.#read(rel, 'open', () => fs.openSync(abs, OPEN_FLAGS))
    if (size > SYNC_READ_MAX) return { rel, fd, size }
    try {
      this.#read(rel, 'read', () => this.#out.readSync(fd, size))
    } finally {
      closeQuietly(rel, fd)
    }
    this.#out.zeros(paddingLength(size))
    return null
  }

  /**
   * Reads a large file's contents (and writes its padding), handing on chunks as they fill.
   * The read of the next piece is started before a full chunk is handed on, so the disk (or
   * the page-cache copy, in the thread pool) works while the consumer handles that chunk.
   */
  async *#largeContent(file: LargeFile): AsyncGenerator<Buffer> {
    const { rel, fd, size } = file
    let left = size
    let pending: Promise<number> | null = null
    const readNext = (): Promise<number> => {
      // Up to the end of the current chunk: chunks stay full, whatever the file sizes.
      const space = this.#out.space()
      return readAsync(fd, space.buffer, space.offset, Math.min(space.length, left))
    }
    try {
      pending = readNext()
      while (pending !== null) {
        let n: number
        try {
          n = await pending
        } catch (err) {
          pending = null
          throw new TreeReadError(`/${rel}`, 'read', err)
        }
        pending = null
        if (n === 0) throw new TreeReadError(`/${rel}`, 'read', new Error(`file shrank below its size ${size} while exported`))
        this.#out.advance(n)
        left -= n
        if (left > 0) pending = readNext()
        if (this.#out.hasReady) yield* this.#out.take()
      }
    } finally {
      // The fd must outlive a read in flight (the consumer stopped early): closing it under
      // the read would let the number be reused and the read land on another file.
      if (pending !== null) await pending.catch(() => 0)
      closeQuietly(rel, fd)
    }
    this.#out.zeros(paddingLength(size))
  }

  #abs(rel: string): string | Buffer {
    return fsPath(`${this.#root}/${rel}`)
  }

  #lstat(rel: string, missingOk: boolean): fs.BigIntStats | null {
    const st = this.#read(rel, 'lstat', () => fs.lstatSync(this.#abs(rel), { bigint: true, throwIfNoEntry: !missingOk }))
    return st ?? null
  }

  #xattrs(rel: string, abs: string | Buffer): ReadonlyMap<string, Buffer> {
    const all = this.#read(rel, 'xattrs', () => readXattrs(abs))
    if (all.size === 0) return NO_XATTRS
    const keep = this.#keepXattr
    if (keep !== null) for (const name of all.keys()) if (!keep(name)) all.delete(name)
    return all
  }

  /** Writes the header blocks of a member. */
  #header(rel: string, header: ExportHeader): void {
    const pax = this.#read(rel, 'encode header', () => encodeHeaderInto(header, this.#block))
    if (pax !== null) this.#out.write(pax)
    this.#out.write(this.#block)
  }

  #read<T>(rel: string, operation: string, fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      throw new TreeReadError(`/${rel}`, operation, err)
    }
  }
}

/**
 * O_NOFOLLOW: a file swapped for a symlink since the lstat is not read through. O_NONBLOCK:
 * one swapped for a FIFO does not block the (synchronous) open; reads of regular files
 * ignore it.
 */
const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK
const NONE: readonly string[] = []

function trimSlashes(path: string): string {
  return path.charCodeAt(0) === 0x2f || path.charCodeAt(path.length - 1) === 0x2f ? path.replace(/^\/+|\/+$/g, '') : path
}

function readAsync(fd: number, buffer: Buffer, offset: number, length: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buffer, offset, length, null, (err, n) => (err ? reject(err) : resolve(n)))
  })
}

function closeQuietly(rel: string, fd: number): void {
  try {
    fs.closeSync(fd)
  } catch (err) {
    // A read-only fd: nothing was lost, and an error here must not hide the one being thrown.
    log('closing %o failed: %O', rel, err)
  }
}

const NS = 1_000_000_000n
const EMPTY = Buffer.alloc(0)
const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map()

/** The header of the whiteout member for a deleted `rel`. */
function whiteout(rel: string): ExportHeader {
  return {
    name: Buffer.from(joinRel(parentRel(rel), WHITEOUT_PREFIX + baseRel(rel)), 'latin1'),
    type: 'file',
    mode: 0,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: { sec: 0, nsec: 0 },
    linkname: EMPTY,
    devmajor: 0,
    devminor: 0,
    xattrs: NO_XATTRS,
  }
}

function typeOf(st: fs.BigIntStats): ExportType | null {
  if (st.isFile()) return 'file'
  if (st.isDirectory()) return 'directory'
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isCharacterDevice()) return 'char-device'
  if (st.isBlockDevice()) return 'block-device'
  if (st.isFIFO()) return 'fifo'
  return null
}

async function realDir(dir: string): Promise<string> {
  try {
    const real = await fs.promises.realpath(dir)
    if (!(await fs.promises.stat(real)).isDirectory()) throw new InvalidTargetError(dir, 'is not a directory')
    return bytesOfText(real)
  } catch (err) {
    if (err instanceof InvalidTargetError) throw err
    throw new InvalidTargetError(dir, 'cannot be read', err)
  }
}

