/**
 * The state and per-member work of one apply (see apply.ts for the semantics).
 *
 * Per member, in tar order: clean the name; skip AUFS bookkeeping; make the member's
 * directories (0755 when implied); handle a whiteout, or replace whatever is at the path
 * (an existing path is unlinked and created anew, never opened for writing, so a file
 * hard-linked with another layer never changes; only a directory over a directory is
 * merged); then ownership, xattrs, mode and times, in that order (chown clears setuid,
 * setgid and `security.capability`). Directory times are set last, after every member,
 * since creating entries inside a directory moves its mtime.
 *
 * Why synchronous fs calls: the per-member calls (open, mkdir, symlink, fchown, futimes…)
 * each take a few microseconds in the kernel, while an async node:fs call adds a thread-pool
 * round trip of 10–20 µs; on a layer of 55,000 small files that is the difference between
 * keeping up with GNU tar and being twice as slow. A new file's content is the exception:
 * it is written on the thread pool while the parser reads the next members, and the file's
 * attributes are set through its descriptor once that is done (file-writer.ts). A member without content
 * is applied without creating a promise, and so is a small file whose content is at hand in
 * the input (`TarMember.lentNow`): most files of most layers.
 */
import { isAscii } from 'node:buffer'
import fs from 'node:fs'
import os from 'node:os'
import { isKindedError } from '../errors.js'
import { SyscallError, copyXattrs, lsetxattr, mknod, timeSpecOfNs } from '../native/index.js'
import type { TarHeader, TarMember } from '../tarsplit/index.js'
import { baseRel, bytesOfText, fsPath, joinRel, parentRel } from './byte-path.js'
import { ApplyEntryError, UnsafePathError, UnsupportedMemberError } from './errors.js'
import { NodeDefaults } from './node-defaults.js'
import type { CreatorIds } from './node-defaults.js'
import { LowerView, isWhiteout } from './lower-view.js'
import { removeTree } from './remove-tree.js'
import { PathGuard, cleanName } from './safe-path.js'
import {
  OVERLAY_OPAQUE_VALUE,
  OVERLAY_OPAQUE_XATTR,
  WHITEOUT_META_PREFIX,
  WHITEOUT_OPAQUE,
  WHITEOUT_PREFIX,
  classifyWhiteout,
  isOverlayXattr,
} from './whiteout.js'
import { FileWriter } from './file-writer.js'
import { checkDevice, checkOwner, permOf, setTimesFd, setTimesPath, setXattrs, timesOf } from './write-entry.js'
import type { Times, XattrPolicy } from './write-entry.js'

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, S_IFCHR, S_IFBLK, S_IFIFO } = fs.constants
/** O_EXCL: never open an existing file (nor follow a symlink left at the path). */
const CREATE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW

/** Options the applier needs (see ApplyOptions). */
export interface ApplierOptions {
  readonly overlay: boolean
  readonly bestEffortXattrs: boolean
  /** The layers below the target, top first (overlay mode); resolved when first needed. */
  readonly lowers: readonly string[]
}

/** One apply's state: the path guard, what this layer wrote, directory times owed. */
export class Applier {
  readonly #guard: PathGuard
  readonly #defaults: NodeDefaults
  readonly #overlay: boolean
  /** The layers below the target (overlay mode), as given. */
  readonly #lowers: readonly string[]
  /** The target over them, where a hardlink's target is looked up: made when first needed. */
  #mergedView: LowerView | null = null
  readonly #xattrs: XattrPolicy
  /**
   * Naive mode, what an opaque directory keeps: the paths this apply wrote in directories it
   * did not create, with their ancestors. Whatever is in a directory of `#fresh` is ours, so
   * only directories of the target below (usually few) make entries here, not every path.
   */
  readonly #written: Set<string> | null
  /** Naive mode: directories this apply created (mkdir), not removed since. */
  readonly #fresh: Set<string> | null
  /** The directory of the last member marked, and whether it is fresh (see #markWritten). */
  #markedDir: string | null = null
  #markedFresh = false
  /** Directory times to set at the end, by path; the last member for a path wins. */
  readonly #dirTimes = new Map<string, Times>()
  /** Writes file contents while the parser reads on (file-writer.ts). */
  readonly #writer = new FileWriter()
  /** The target's path is ASCII (see #apply). */
  readonly #rootAscii: boolean
  /** The step under way, for ApplyEntryError. */
  #op = ''
  size = 0
  members = 0
  skippedXattrs = 0

  /**
   * @param root byte string of the target's real path
   * @param rootStat its lstat
   */
  constructor(root: string, rootStat: fs.Stats, ids: CreatorIds, options: ApplierOptions) {
    this.#defaults = new NodeDefaults(ids)
    const defaults = this.#defaults
    this.#guard = new PathGuard(root, {
      seen: (rel, st, path) => defaults.seen(rel, st, path),
      made: (rel) => {
        if (this.#copyUp(rel)) return
        defaults.made(rel)
        if (this.#fresh === null) return
        this.#fresh.add(rel)
        // What is in it is kept by its first ancestor that is not fresh: mark the way there.
        this.#markDirs(parentRel(rel))
      },
    })
    this.#defaults.seen('', rootStat, fsPath(root))
    this.#rootAscii = typeof fsPath(root) === 'string'
    this.#overlay = options.overlay
    this.#lowers = options.lowers
    this.#xattrs = { dropOverlay: options.overlay, bestEffort: options.bestEffortXattrs }
    this.#written = options.overlay ? null : new Set()
    this.#fresh = options.overlay ? null : new Set()
  }

  /** Applies one member; a promise only when there is content to read. */
  apply(member: TarMember): Promise<void> | undefined {
    this.#writer.check()
    const h = member.header
    this.members++
    this.size += h.size
    try {
      const pending = this.#apply(h, member)
      return pending === undefined ? undefined : pending.catch((err: unknown) => this.#fail(h, err))
    } catch (err) {
      return this.#fail(h, err)
    }
  }

  /**
   * After a failure: waits for the deferred writes to settle (their descriptors to close).
   * Returns the failure of a deferred file, if one failed: it came before the member that
   * failed now, so it is the one to report (one full disk fails many files).
   */
  async abandon(): Promise<unknown> {
    return this.#writer.drain().then(
      () => undefined,
      (err: unknown) => err,
    )
  }

  /** Our typed errors and the parser's pass through; failed calls get the member's name. */
  #fail(h: TarHeader, err: unknown, op = this.#op): never {
    throw wrapFailure(h, err, op)
  }

  /**
   * Waits for the deferred file writes, then sets the directory times owed, on directories
   * still in place (never through a symlink). Throws the first deferred failure.
   */
  async finish(): Promise<void> {
    await this.#writer.drain()
    this.#op = 'directory times'
    for (const [rel, t] of this.#dirTimes) {
      if (this.#guard.isVerified(rel)) setTimesPath(fsPath(this.#guard.abs(rel)), t)
    }
  }

  #apply(h: TarHeader, member: TarMember): Promise<void> | undefined {
    switch (h.type) {
      case 'pax-global':
      case 'gnu-volume':
        return
      case 'other':
        throw new UnsupportedMemberError(h.name, h.typeflag)
    }
    this.#op = 'name'
    const rel = cleanName(h.name.toString('latin1'), h.name, 'parent-traversal')
    if (rel === '') return this.#root(h)
    // AUFS bookkeeping at the root; only the root's opaque marker means something to us.
    if (rel.startsWith(WHITEOUT_META_PREFIX)) {
      if (rel === WHITEOUT_OPAQUE) this.#opaque('', rel, h)
      return
    }
    const dir = parentRel(rel)
    // Whiteouts are rare: most names do not even contain the prefix.
    if (rel.includes(WHITEOUT_PREFIX)) {
      const wh = classifyWhiteout(baseRel(rel))
      if (wh.kind === 'opaque') return this.#opaque(dir, rel, h)
      if (wh.kind === 'delete') return this.#whiteout(dir, wh.name, h)
    }
    checkOwner(h)
    this.#op = 'parent directories'
    this.#guard.ensureDir(dir, h.name)
    this.#markWritten(rel, dir)
    const abs = this.#guard.abs(rel)
    // Cleaning a name only drops bytes, so an ASCII name gives an ASCII path under an ASCII
    // root: one native check of the name instead of a regex over the absolute path.
    const p = this.#rootAscii && isAscii(h.name) ? abs : fsPath(abs)
    switch (h.type) {
      case 'directory':
      // A GNU incremental dumpdir is a directory whose data lists its entries; the listing
      // only matters to `tar -g` restores, the directory itself is applied as GNU tar does.
      case 'gnu-dumpdir':
        return this.#directory(rel, dir, p, h)
      case 'file':
        return this.#file(rel, dir, p, h, member)
      case 'symlink':
        this.#create(rel, p, () => fs.symlinkSync(h.linkname, p))
        return this.#finishNode(dir, p, h, null)
      case 'hardlink':
        return this.#hardlink(rel, p, h)
      case 'char-device':
      case 'block-device':
      case 'fifo': {
        checkDevice(h)
        const type = h.type === 'fifo' ? S_IFIFO : h.type === 'char-device' ? S_IFCHR : S_IFBLK
        this.#create(rel, p, () => mknod(p, type | permOf(h), h.devmajor, h.devminor))
        return this.#finishNode(dir, p, h, permOf(h))
      }
    }
  }

  /** `./`: the target itself takes a directory's attributes; anything else is refused. */
  #root(h: TarHeader): undefined {
    if (h.type !== 'directory' && h.type !== 'gnu-dumpdir') {
      throw new UnsafePathError(h.name, 'root-replaced', `a ${h.type} cannot replace the target directory`)
    }
    checkOwner(h)
    this.#dirAttributes('', fsPath(this.#guard.root), h, true, true)
  }

  #directory(rel: string, dir: string, p: string | Buffer, h: TarHeader): undefined {
    this.#op = 'mkdir'
    const perm = permOf(h)
    const exact = this.#defaults.modeIsDefault(dir, perm)
    let fresh = true
    try {
      fs.mkdirSync(p, exact ? perm : 0o700)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      // A directory over a directory merges (taking the header's attributes); anything else
      // at the path is replaced.
      if (fs.lstatSync(p).isDirectory()) fresh = false
      else {
        this.#replace(rel, p)
        fs.mkdirSync(p, exact ? perm : 0o700)
        // What it replaced (a whiteout, or a file this apply wrote) hid the layers below
        // at this path: so must the directory, or a deleted directory's files resurface
        // (overlayfs marks a directory made over a whiteout opaque too).
        if (this.#overlay) lsetxattr(p, OVERLAY_OPAQUE_XATTR, OVERLAY_OPAQUE_VALUE)
      }
    }
    if (fresh) this.#fresh?.add(rel)
    this.#guard.addDir(rel)
    const chown = !fresh || !this.#defaults.ownerIsDefault(dir, h)
    this.#dirAttributes(rel, p, h, chown, !fresh || !exact)
    this.#defaults.set(rel, h)
  }

  #dirAttributes(rel: string, p: string | Buffer, h: TarHeader, chown: boolean, chmod: boolean): void {
    if (chown) {
      this.#op = 'chown'
      fs.lchownSync(p, h.uid, h.gid)
    }
    this.#op = 'xattr'
    if (h.xattrs.size > 0) this.skippedXattrs += setXattrs(p, h, this.#xattrs)
    if (chmod) {
      this.#op = 'chmod'
      fs.chmodSync(p, permOf(h))
    }
    this.#dirTimes.set(rel, timesOf(h))
  }

  /** Content is read lent when offered: the writer copies what it defers (file-writer.ts). */
  #file(rel: string, dir: string, p: string | Buffer, h: TarHeader, member: TarMember): Promise<void> | undefined {
    const perm = permOf(h)
    const exact = this.#defaults.modeIsDefault(dir, perm)
    const chown = !this.#defaults.ownerIsDefault(dir, h)
    const fd = this.#create(rel, p, () => fs.openSync(p, CREATE_FLAGS, exact ? perm : 0o600))
    this.#op = 'write'
    const lent = member.lent !== undefined
    return this.#writer.write(
      fd,
      h.size === 0 ? null : (member.lent ?? member.content),
      h.size,
      h.sparse,
      () => this.#fileAttributes(fd, h, chown, !exact),
      (err) => wrapFailure(h, err, 'write'),
      lent,
      // Most files of a layer are small and lie whole in the input chunk at hand.
      member.lentNow,
    )
  }

  /** Owner, xattrs, mode, times of a file, through its descriptor; may run deferred. */
  #fileAttributes(fd: number, h: TarHeader, chown: boolean, chmod: boolean): void {
    let op = 'chown'
    try {
      if (chown) fs.fchownSync(fd, h.uid, h.gid)
      op = 'xattr'
      if (h.xattrs.size > 0) this.skippedXattrs += setXattrs(fd, h, this.#xattrs)
      op = 'chmod'
      if (chmod) fs.fchmodSync(fd, permOf(h))
      op = 'times'
      setTimesFd(fd, timesOf(h))
    } catch (err) {
      throw wrapFailure(h, err, op)
    }
  }

  /**
   * A hardlink: the target is cleaned like a name (an absolute one is taken inside the
   * target, as moby does for kaniko's tars) and must not be the root nor reached through a
   * symlink. link(2) does not follow a final symlink, so linking to one stays inside. The
   * link gets no attributes of its own: it shares its target's inode. A target missing from
   * the target tree is looked up in the lower layers, if any: the merged view never follows
   * a symlink either (a symlinked directory hides what is below it).
   */
  #hardlink(rel: string, p: string | Buffer, h: TarHeader): undefined {
    this.#op = 'hardlink target'
    const to = cleanName(h.linkname.toString('latin1'), h.name, 'hardlink-target')
    if (to === '') throw new UnsafePathError(h.name, 'hardlink-target', 'a hardlink to the root directory')
    this.#guard.probeDir(parentRel(to), h.name)
    const from = fsPath(this.#guard.abs(to))
    // In overlay mode a whiteout is a deleted path, not a device to link to.
    if (this.#overlay && isWhiteoutAt(from)) throw new SyscallError('link', os.constants.errno.ENOENT, { path: from, dest: p })
    this.#create(rel, p, () => {
      try {
        fs.linkSync(from, p)
      } catch (err) {
        const merged = (err as { code?: unknown }).code === 'ENOENT' ? this.#mergedFile(to) : null
        if (merged === null) throw err
        fs.linkSync(merged, p)
      }
    })
  }

  /**
   * The target over its lower layers (null if none were given). Their real paths are looked
   * up only now: most applies never need them, and a deep stack would cost a call per layer.
   */
  #merged(): LowerView | null {
    if (this.#lowers.length === 0) return null
    this.#mergedView ??= LowerView.root([this.#guard.root, ...this.#lowers.map((dir) => bytesOfText(fs.realpathSync.native(dir)))])
    return this.#mergedView
  }

  /**
   * Overlay mode with lower layers: a directory this apply implied (a member inside it, no
   * member for it) takes the owner, mode, xattrs and times the layers below show for it, as
   * overlayfs's copy-up does, rather than 0755 (moby's overlay2). True if it did.
   */
  #copyUp(rel: string): boolean {
    // The merged view's first directory at `rel` is the one just made; the next is below.
    const below = this.#merged()?.descend(rel).dirs[1]
    if (below === undefined) return false
    this.#op = 'copy up directory'
    const from = fsPath(below)
    const to = fsPath(this.#guard.abs(rel))
    const st = fs.lstatSync(from, { bigint: true })
    fs.lchownSync(to, Number(st.uid), Number(st.gid))
    fs.chmodSync(to, Number(st.mode) & 0o7777)
    copyXattrs(from, to, isOverlayXattr)
    this.#dirTimes.set(rel, { atime: timeSpecOfNs(st.atimeNs), mtime: timeSpecOfNs(st.mtimeNs) })
    this.#defaults.seen(rel, fs.lstatSync(to), to)
    return true
  }

  /**
   * The non-directory the target over its lower layers shows at `to` (whiteouts and opaque
   * directories of this apply count), null if none or if that is the target's own path.
   */
  #mergedFile(to: string): Buffer | string | null {
    const view = this.#merged()?.descend(to)
    if (view?.top == null || view.topStat?.isDirectory() !== false) return null
    return view.top === this.#guard.abs(to) ? null : fsPath(view.top)
  }

  /** A new symlink or device: owner, xattrs, mode (`perm`, none for symlinks) and times. */
  #finishNode(dir: string, p: string | Buffer, h: TarHeader, perm: number | null): undefined {
    if (!this.#defaults.ownerIsDefault(dir, h)) {
      this.#op = 'chown'
      fs.lchownSync(p, h.uid, h.gid)
    }
    this.#op = 'xattr'
    if (h.xattrs.size > 0) this.skippedXattrs += setXattrs(p, h, this.#xattrs)
    if (perm !== null && !this.#defaults.modeIsDefault(dir, perm)) {
      this.#op = 'chmod'
      fs.chmodSync(p, perm)
    }
    this.#op = 'times'
    setTimesPath(p, timesOf(h))
  }

  /** Runs `make`; if something is at `p`, removes it and runs `make` again. */
  #create<T>(rel: string, p: string | Buffer, make: () => T): T {
    this.#op = 'create'
    try {
      return make()
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EEXIST') throw err
    }
    this.#replace(rel, p)
    this.#op = 'create'
    return make()
  }

  /** Removes what is at a path that this member is about to take: it stays written. */
  #replace(rel: string, p: string | Buffer): void {
    this.#remove(rel, p)
    this.#written?.add(rel)
  }

  /** Removes a path and all under it, forgetting what we knew about each removed path. */
  #remove(rel: string, p: string | Buffer): void {
    this.#op = 'remove existing'
    removeTree(typeof p === 'string' ? p : p.toString('latin1'), rel, (r) => this.#forget(r))
  }

  #forget(rel: string): void {
    this.#guard.forget(rel)
    this.#defaults.forget(rel)
    this.#written?.delete(rel)
    this.#fresh?.delete(rel)
    this.#markedDir = null
    this.#dirTimes.delete(rel)
  }

  /**
   * Records `rel` and its directories as written by this apply (naive mode only), unless
   * `dir` is fresh: then `dir`, hence all in it, is kept by its first non-fresh ancestor.
   */
  #markWritten(rel: string, dir: string): void {
    const written = this.#written
    if (written === null) return
    // Members come grouped by directory: its freshness and ancestors are looked up once.
    if (dir !== this.#markedDir) {
      this.#markedDir = dir
      this.#markedFresh = this.#fresh!.has(dir)
      this.#markDirs(dir)
    }
    if (!this.#markedFresh) written.add(rel)
  }

  /** Marks `dir` and its ancestors written, up to a fresh or already marked one (naive mode). */
  #markDirs(dir: string): void {
    const written = this.#written!
    const fresh = this.#fresh!
    for (let r = dir; r !== '' && !fresh.has(r) && !written.has(r); r = parentRel(r)) written.add(r)
  }

  /** `.wh.NAME` in `dir`. */
  #whiteout(dir: string, name: string, h: TarHeader): undefined {
    if (name === '' || name === '.' || name === '..') {
      throw new UnsafePathError(h.name, 'whiteout-name', `${JSON.stringify(`.wh.${name}`)} names no entry of its directory`)
    }
    const rel = joinRel(dir, name)
    this.#op = 'whiteout'
    if (!this.#overlay) {
      // Nothing to delete under a missing directory; never delete through a symlink.
      if (this.#guard.probeDir(dir, h.name) === 'dir') this.#remove(rel, fsPath(this.#guard.abs(rel)))
      return
    }
    checkOwner(h)
    this.#guard.ensureDir(dir, h.name)
    const p = fsPath(this.#guard.abs(rel))
    this.#create(rel, p, () => mknod(p, S_IFCHR, 0, 0))
    // As moby: a whiteout device keeps root ownership unless the header says otherwise.
    if (h.uid !== 0 || h.gid !== 0) fs.lchownSync(p, h.uid, h.gid)
  }

  /** `.wh..wh..opq` in `dir` (`''`: the root). */
  #opaque(dir: string, rel: string, h: TarHeader): undefined {
    this.#op = 'opaque directory'
    this.#guard.ensureDir(dir, h.name)
    if (this.#overlay) {
      lsetxattr(fsPath(this.#guard.abs(dir)), OVERLAY_OPAQUE_XATTR, OVERLAY_OPAQUE_VALUE)
      return
    }
    this.#markWritten(rel, dir)
    this.#hideLower(dir)
  }

  /**
   * Removes what this apply did not write from `dir`, descending into what it did; a
   * directory this apply created holds nothing else.
   */
  #hideLower(dir: string): void {
    const written = this.#written!
    const fresh = this.#fresh!
    if (fresh.has(dir)) return
    const abs = this.#guard.abs(dir)
    for (const d of fs.readdirSync(fsPath(abs), { encoding: 'latin1', withFileTypes: true })) {
      const rel = joinRel(dir, d.name)
      if (fresh.has(rel)) continue
      if (!written.has(rel)) this.#remove(rel, fsPath(this.#guard.abs(rel)))
      else if (d.isDirectory()) this.#hideLower(rel)
    }
  }
}

/** Our typed errors and the parser's pass through; failed calls get the member's name. */
function wrapFailure(h: TarHeader, err: unknown, op: string): unknown {
  if (isKindedError(err) && !(err instanceof SyscallError)) return err
  return new ApplyEntryError(h.name, op, err)
}

function isWhiteoutAt(path: string | Buffer): boolean {
  const st = fs.lstatSync(path, { bigint: true, throwIfNoEntry: false })
  return st !== undefined && isWhiteout(st)
}
