/**
 * The changes between two trees (naive: a layer's full tree against its parent's), and the
 * changes an overlayfs upper directory records. Semantics follow moby's `ChangesDirs`
 * (research/moby.md §6.4) where not said otherwise:
 *
 * - a path only in the new tree is `added`, and so is everything under it;
 * - a path only in the old tree is `deleted`, its descendants are not listed;
 * - a path in both is `modified` when its type, mode, owner, device number, xattrs, symlink
 *   target, or (non-directories) size or mtime differ; directory sizes and mtimes are
 *   ignored (they move whenever an entry inside changes), and a path with the same inode on
 *   the same device in both trees is unchanged with all below it (hard-linked copies);
 * - a directory with a changed descendant is `modified` too (an exported layer needs its
 *   parents), listed before its descendants; the root itself is never listed.
 *
 * Differences from moby: mtimes compare to the nanosecond (moby accepts one side having no
 * sub-second part) and all xattrs count, not only `security.capability`; when two regular
 * files agree on everything but their mtime has no sub-second part (a tar extraction, a
 * coarse filesystem: an edit within that second cannot be told from a copy), their contents
 * are compared (`content: 'unsure'`, the default).
 *
 * The walk uses synchronous lstat/readdir (a diff is tens of thousands of them; see apply.ts
 * for the cost of async calls) and yields to the event loop every few hundred paths.
 */
import fs from 'node:fs'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { llistxattr, lgetxattr } from '../native/index.js'
import { bytesOfText, fsPath, joinRel } from './byte-path.js'
import { InvalidTargetError, TreeReadError } from './errors.js'
import { LowerView, isOpaqueDir, isWhiteout } from './lower-view.js'
import { isOverlayXattr } from './whiteout.js'

/** What happened to a path. */
export type ChangeKind = 'added' | 'modified' | 'deleted'

/** One changed path of a layer. */
export interface Change {
  /**
   * Absolute path in the layer (`/etc/passwd`), as a *byte string*: one char per byte of the
   * file name (Latin-1 decoding), because names are bytes and need not be UTF-8. Compare
   * with `<` for byte order; turn into bytes with {@link changePathBytes}.
   */
  readonly path: string
  readonly kind: ChangeKind
  /**
   * Set by {@link overlayChanges} on a directory whose lower contents are hidden (an opaque
   * directory); the export writes it as `.wh..wh..opq`. The hidden paths are still listed
   * as `deleted`.
   */
  readonly opaque?: boolean
}

/** Options of {@link changes}. */
export interface ChangesOptions {
  /**
   * When to compare regular files' contents: `'unsure'` (default) when all their metadata
   * agree but the mtime has no sub-second part; `'always'` whenever all metadata agree;
   * `'never'`.
   */
  readonly content?: 'unsure' | 'always' | 'never'
}

const YIELD_EVERY = 512

/**
 * The changes that turn `parentDir` into `dir` (everything under `dir` is `added` when
 * `parentDir` is null), sorted by path in byte order.
 *
 * @throws InvalidTargetError when a directory is missing; TreeReadError when reading fails
 */
export async function changes(dir: string, parentDir: string | null, options: ChangesOptions = {}): Promise<Change[]> {
  const walker = new TreeDiff(await rootOf(dir), parentDir === null ? null : await rootOf(parentDir), options.content ?? 'unsure')
  await walker.run()
  return walker.out
}

async function rootOf(dir: string): Promise<string> {
  try {
    const st = await fs.promises.stat(dir)
    if (!st.isDirectory()) throw new InvalidTargetError(dir, 'is not a directory')
    return bytesOfText(await fs.promises.realpath(dir))
  } catch (err) {
    if (err instanceof InvalidTargetError) throw err
    throw new InvalidTargetError(dir, 'cannot be read', err)
  }
}

/** One path's lstat, or null when missing. */
type Stat = fs.BigIntStats | null

class TreeDiff {
  readonly out: Change[] = []
  #seen = 0
  /** Two buffers for content comparisons, reused: a diff may compare thousands of files. */
  #scratch: [Buffer, Buffer] | null = null

  constructor(
    readonly newRoot: string,
    readonly oldRoot: string | null,
    readonly content: 'unsure' | 'always' | 'never',
  ) {}

  async run(): Promise<void> {
    await this.#dir('')
  }

  /** Compares the children of `rel`, a directory in the new tree. True if anything changed. */
  async #dir(rel: string): Promise<boolean> {
    const inNew = readTypedNames(this.newRoot, rel)
    const oldNames = this.oldRoot === null ? [] : readNames(this.oldRoot, rel, true)
    const inOld = new Set(oldNames)
    const names = [...new Set([...inNew.keys(), ...oldNames])].sort()
    let changed = false
    for (const name of names) {
      if (++this.#seen % YIELD_EVERY === 0) await yieldToLoop()
      const child = joinRel(rel, name)
      const isDir = inNew.get(name)
      if (isDir === undefined) {
        this.#emit(child, 'deleted')
        changed = true
        continue
      }
      if (!inOld.has(name)) {
        // Only in the new tree: the directory entry's type is all we need, no lstat.
        await this.#added(child, isDir)
        changed = true
        continue
      }
      const n = lstatOf(this.newRoot, child)!
      const o = lstatOf(this.oldRoot!, child)
      if (o === null) {
        await this.#added(child, n.isDirectory())
        changed = true
        continue
      }
      if (n.dev === o.dev && n.ino === o.ino) continue
      const mark = this.out.length
      const differs = this.#differs(child, n, o)
      if (differs) this.#emit(child, 'modified')
      // A directory that was a non-directory: what is under it is all new.
      const below = n.isDirectory() ? (o.isDirectory() ? await this.#dir(child) : await this.#addedBelow(child)) : false
      if (below && !differs) this.out.splice(mark, 0, { path: `/${child}`, kind: 'modified' })
      changed ||= differs || below
    }
    return changed
  }

  async #added(rel: string, isDir: boolean): Promise<void> {
    this.#emit(rel, 'added')
    if (isDir) await this.#addedBelow(rel)
  }

  async #addedBelow(rel: string): Promise<boolean> {
    const entries = byName(readEntries(this.newRoot, rel))
    for (const e of entries) {
      if (++this.#seen % YIELD_EVERY === 0) await yieldToLoop()
      await this.#added(joinRel(rel, e.name), e.isDirectory())
    }
    return entries.length > 0
  }

  #differs(rel: string, n: fs.BigIntStats, o: fs.BigIntStats): boolean {
    if (n.mode !== o.mode || n.uid !== o.uid || n.gid !== o.gid || n.rdev !== o.rdev) return true
    if (!n.isDirectory()) {
      if (n.size !== o.size || n.mtimeNs !== o.mtimeNs) return true
      if (n.isSymbolicLink() && !readLink(this.newRoot, rel).equals(readLink(this.oldRoot!, rel))) return true
    }
    if (!sameXattrs(this.newRoot, this.oldRoot!, rel)) return true
    if (n.isFile() && this.content !== 'never' && (this.content === 'always' || n.mtimeNs % 1_000_000_000n === 0n)) {
      this.#scratch ??= [Buffer.allocUnsafe(COMPARE_CHUNK), Buffer.allocUnsafe(COMPARE_CHUNK)]
      return !sameContent(this.newRoot, this.oldRoot!, rel, Number(n.size), this.#scratch)
    }
    return false
  }

  #emit(rel: string, kind: ChangeKind): void {
    this.out.push({ path: `/${rel}`, kind })
  }
}

// ── overlay ──────────────────────────────────────────────────────────────────────────────

/**
 * The changes an overlayfs upper directory holds over its lower directories (top first, each
 * itself an overlay-format layer directory: whiteout devices and opaque xattrs are honoured
 * in them too). A character device 0/0 is a `deleted` path; a directory with
 * `trusted.overlay.opaque=y` is `opaque` and every path of the lower view under it that the
 * upper lacks is `deleted`; any other upper path is `modified` when the lower view has it,
 * else `added`. Sorted by path in byte order. Assumes the mount did not use `redirect_dir` or
 * `metacopy` (a renamed directory or a metadata-only copy-up would be misread).
 */
export async function overlayChanges(upperDir: string, lowerDirs: readonly string[]): Promise<Change[]> {
  const upper = await rootOf(upperDir)
  const lowers = await Promise.all(lowerDirs.map(rootOf))
  const out: Change[] = []
  let seen = 0
  const walk = async (rel: string, view: LowerView): Promise<void> => {
    for (const entry of byName(readEntries(upper, rel))) {
      if (++seen % YIELD_EVERY === 0) await yieldToLoop()
      const name = entry.name
      const child = joinRel(rel, name)
      // Only a character device can be a whiteout: the entry's type spares the others an lstat.
      if (entry.isCharacterDevice() && isWhiteout(lstatOf(upper, child)!)) {
        out.push({ path: `/${child}`, kind: 'deleted' })
        continue
      }
      const below = view.child(name)
      const kind: ChangeKind = below.exists ? 'modified' : 'added'
      if (!entry.isDirectory()) {
        out.push({ path: `/${child}`, kind })
        continue
      }
      const opaque = isOpaqueDir(`${upper}/${child}`)
      out.push(opaque ? { path: `/${child}`, kind, opaque: true } : { path: `/${child}`, kind })
      if (opaque) hiddenBelow(child, below, out)
      await walk(child, opaque ? LowerView.EMPTY : below)
    }
  }
  // Paths of the lower view that an opaque directory hides, and the upper does not replace.
  const hiddenBelow = (rel: string, view: LowerView, into: Change[]): void => {
    const upperDirs = readTypedNames(upper, rel)
    for (const name of view.names()) {
      const child = joinRel(rel, name)
      const isDir = upperDirs.get(name)
      if (isDir === undefined) into.push({ path: `/${child}`, kind: 'deleted' })
      else if (isDir) hiddenBelow(child, view.child(name), into)
    }
  }
  await walk('', LowerView.root(lowers))
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

// ── reading helpers (sync, see the file comment) ─────────────────────────────────────────

function readNames(root: string, rel: string, missingOk = false): string[] {
  const abs = rel === '' ? root : `${root}/${rel}`
  try {
    return fs.readdirSync(fsPath(abs), { encoding: 'latin1' })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (missingOk && (code === 'ENOENT' || code === 'ENOTDIR')) return []
    throw new TreeReadError(`/${rel}`, 'readdir', err)
  }
}

/**
 * The entries of a directory with their types (d_type): one readdir instead of an lstat per
 * name. Where the filesystem gives no type, Node lstats the entry itself.
 */
function readEntries(root: string, rel: string): fs.Dirent[] {
  const abs = rel === '' ? root : `${root}/${rel}`
  try {
    return fs.readdirSync(fsPath(abs), { encoding: 'latin1', withFileTypes: true })
  } catch (err) {
    throw new TreeReadError(`/${rel}`, 'readdir', err)
  }
}

/** The names in a directory, each with whether it is a directory (see {@link readEntries}). */
function readTypedNames(root: string, rel: string): Map<string, boolean> {
  const out = new Map<string, boolean>()
  for (const e of readEntries(root, rel)) out.set(e.name, e.isDirectory())
  return out
}

/** Entries sorted by name, in byte order. */
function byName(entries: fs.Dirent[]): fs.Dirent[] {
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

function lstatOf(root: string, rel: string): Stat {
  try {
    return fs.lstatSync(fsPath(`${root}/${rel}`), { bigint: true, throwIfNoEntry: false }) ?? null
  } catch (err) {
    throw new TreeReadError(`/${rel}`, 'lstat', err)
  }
}

function readLink(root: string, rel: string): Buffer {
  return fs.readlinkSync(fsPath(`${root}/${rel}`), { encoding: 'buffer' })
}

/** Xattrs of a path, sorted by name; overlayfs's own are not part of a layer. */
export function readXattrs(abs: string | Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  for (const name of llistxattr(abs).sort()) {
    if (isOverlayXattr(name)) continue
    const value = lgetxattr(abs, name)
    if (value !== null) out.set(name, value)
  }
  return out
}

function sameXattrs(a: string, b: string, rel: string): boolean {
  const x = readXattrs(fsPath(`${a}/${rel}`))
  const y = readXattrs(fsPath(`${b}/${rel}`))
  if (x.size !== y.size) return false
  for (const [name, value] of x) if (!y.get(name)?.equals(value)) return false
  return true
}

const COMPARE_CHUNK = 1 << 20

function sameContent(a: string, b: string, rel: string, size: number, [ba, bb]: [Buffer, Buffer]): boolean {
  if (size === 0) return true
  const fa = fs.openSync(fsPath(`${a}/${rel}`), 'r')
  try {
    const fb = fs.openSync(fsPath(`${b}/${rel}`), 'r')
    try {
      const len = Math.min(size, ba.length)
      for (let pos = 0; pos < size; ) {
        const na = fs.readSync(fa, ba, 0, len, pos)
        const nb = fs.readSync(fb, bb, 0, len, pos)
        if (na !== nb || ba.compare(bb, 0, nb, 0, na) !== 0) return false
        if (na === 0) break
        pos += na
      }
      return true
    } finally {
      fs.closeSync(fb)
    }
  } finally {
    fs.closeSync(fa)
  }
}
