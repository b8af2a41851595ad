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
 * The stream pulls: a file is read chunk by chunk only as the consumer reads, never whole.
 */
import fs from 'node:fs'
import { Readable } from 'node:stream'
import createDebug from 'debug'
import { devMajor, devMinor } from '../native/index.js'
import { baseRel, bytesOfText, fsPath, joinRel, parentRel } from './byte-path.js'
import type { Change } from './changes.js'
import { readXattrs } from './changes.js'
import { InvalidTargetError, TreeReadError } from './errors.js'
import { END_OF_ARCHIVE, encodeHeader, padding } from './tar-writer.js'
import type { ExportHeader, ExportType } from './tar-writer.js'
import { WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './whiteout.js'

const log = createDebug('layerstore:archive')

/** Options of {@link exportChanges}. */
export interface ExportOptions {
  /** Which xattrs to write, by name. Default: all (overlayfs's own are never written). */
  readonly xattrs?: (name: string) => boolean
}

/** File content is read and handed on in pieces of at most this many bytes. */
const READ_CHUNK = 1 << 20

/**
 * A layer tar of `changes` (paths as in {@link Change}) with the contents and attributes
 * found under `dir`. Errors (a path that vanished, an unreadable file) destroy the stream
 * with a `TreeReadError`, or an `InvalidTargetError` when `dir` itself is unusable.
 */
export function exportChanges(dir: string, changes: readonly Change[], options: ExportOptions = {}): Readable {
  return Readable.from(new Exporter(dir, changes, options).members(), { objectMode: false, highWaterMark: READ_CHUNK })
}

class Exporter {
  readonly #dir: string
  readonly #changes: readonly Change[]
  readonly #keepXattr: (name: string) => boolean
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
    this.#keepXattr = options.xattrs ?? (() => true)
  }

  async *members(): AsyncGenerator<Buffer> {
    this.#root = await realDir(this.#dir)
    for (const c of this.#changes) {
      const rel = c.path.replace(/^\/+|\/+$/g, '')
      if (rel === '') continue
      if (c.kind === 'deleted') {
        if (this.#underOpaque(rel)) continue
        yield* this.#parents(rel, true)
        yield whiteout(rel)
        continue
      }
      yield* this.#parents(rel, false)
      yield* this.#member(rel, c.opaque === true)
    }
    yield END_OF_ARCHIVE
  }

  #underOpaque(rel: string): boolean {
    for (let p = parentRel(rel); p !== ''; p = parentRel(p)) if (this.#opaque.has(p)) return true
    return false
  }

  /** The directories above `rel` not written yet, top first (missing ones end it if allowed). */
  async *#parents(rel: string, missingOk: boolean): AsyncGenerator<Buffer> {
    const missing: string[] = []
    for (let p = parentRel(rel); !this.#dirs.has(p); p = parentRel(p)) missing.push(p)
    for (const p of missing.reverse()) {
      if (missingOk && this.#lstat(p, true) === null) return
      yield* this.#member(p, false)
    }
  }

  async *#member(rel: string, opaque: boolean): AsyncGenerator<Buffer> {
    const st = this.#lstat(rel, false)!
    const type = typeOf(st)
    if (type === null) {
      log('skipping %o: sockets cannot be in a layer', rel)
      return
    }
    const abs = this.#abs(rel)
    let name = Buffer.from(type === 'directory' ? `${rel}/` : rel, 'latin1')
    let header: ExportHeader = {
      name,
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: type === 'file' ? Number(st.size) : 0,
      mtime: { sec: Number(st.mtimeNs / NS), nsec: Number(st.mtimeNs % NS) },
      linkname: type === 'symlink' ? this.#read(rel, 'readlink', () => fs.readlinkSync(abs, { encoding: 'buffer' })) : EMPTY,
      devmajor: type === 'char-device' || type === 'block-device' ? devMajor(st.rdev) : 0,
      devminor: type === 'char-device' || type === 'block-device' ? devMinor(st.rdev) : 0,
      xattrs: this.#xattrs(rel, abs),
    }
    if (header.mtime.nsec < 0) header = { ...header, mtime: { sec: header.mtime.sec - 1, nsec: header.mtime.nsec + 1e9 } }
    if (type === 'file' && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`
      const first = this.#links.get(key)
      if (first !== undefined) header = { ...header, type: 'hardlink', size: 0, linkname: first }
      else this.#links.set(key, name)
    }
    yield this.#encode(rel, header)
    if (header.type === 'file') yield* this.#content(rel, abs, header.size)
    if (type === 'directory') {
      this.#dirs.add(rel)
      if (opaque) {
        this.#opaque.add(rel)
        name = Buffer.from(joinRel(rel, WHITEOUT_OPAQUE), 'latin1')
        yield this.#encode(rel, { ...header, name, type: 'file', mode: header.mode & 0o777, xattrs: NO_XATTRS })
      }
    }
  }

  async *#content(rel: string, abs: string | Buffer, size: number): AsyncGenerator<Buffer> {
    const fh = await this.#open(rel, abs)
    try {
      for (let left = size; left > 0; ) {
        const buf = Buffer.allocUnsafe(Math.min(left, READ_CHUNK))
        let n: number
        try {
          n = (await fh.read(buf, 0, buf.length, null)).bytesRead
        } catch (err) {
          throw new TreeReadError(`/${rel}`, 'read', err)
        }
        if (n === 0) throw new TreeReadError(`/${rel}`, 'read', new Error(`file shrank below its size ${size} while exported`))
        yield n === buf.length ? buf : buf.subarray(0, n)
        left -= n
      }
    } finally {
      await fh.close()
    }
    const pad = padding(size)
    if (pad.length > 0) yield pad
  }

  async #open(rel: string, abs: string | Buffer): Promise<fs.promises.FileHandle> {
    try {
      // O_NOFOLLOW: a file swapped for a symlink since the lstat is not read through.
      return await fs.promises.open(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
    } catch (err) {
      throw new TreeReadError(`/${rel}`, 'open', err)
    }
  }

  #abs(rel: string): string | Buffer {
    return fsPath(`${this.#root}/${rel}`)
  }

  #lstat(rel: string, missingOk: boolean): fs.BigIntStats | null {
    const st = this.#read(rel, 'lstat', () => fs.lstatSync(this.#abs(rel), { bigint: true, throwIfNoEntry: !missingOk }))
    return st ?? null
  }

  #xattrs(rel: string, abs: string | Buffer): Map<string, Buffer> {
    const all = this.#read(rel, 'xattrs', () => readXattrs(abs))
    for (const name of all.keys()) if (!this.#keepXattr(name)) all.delete(name)
    return all
  }

  #encode(rel: string, header: ExportHeader): Buffer {
    return this.#read(rel, 'encode header', () => encodeHeader(header))
  }

  #read<T>(rel: string, operation: string, fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      throw new TreeReadError(`/${rel}`, operation, err)
    }
  }
}

const NS = 1_000_000_000n
const EMPTY = Buffer.alloc(0)
const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map()

/** The whiteout member for a deleted `rel`. */
function whiteout(rel: string): Buffer {
  const name = Buffer.from(joinRel(parentRel(rel), WHITEOUT_PREFIX + baseRel(rel)), 'latin1')
  return encodeHeader({
    name,
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
  })
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

