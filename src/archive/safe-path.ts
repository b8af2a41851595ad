/**
 * Breakout protection for the apply: member names are cleaned lexically, and every directory
 * a member is created in is checked to be a real directory inside the target.
 *
 * How names are read (moby's UnpackLayer does the same): leading `/`s are stripped, so
 * `/etc/passwd` means `etc/passwd` inside the target, as every layer tar writer intends;
 * then `.` and `..` are resolved lexically; a name that climbs above the root is refused.
 *
 * Where we are stricter than moby: moby follows symlinks found in a member's directories,
 * re-rooting absolute ones at the target (a lower layer's `lib -> usr/lib` makes
 * `lib/x.so` land in `usr/lib`). We never follow them: each directory component must be a
 * real directory, else the member is refused with `UnsafePathError` ('symlink-in-path').
 * This closes every symlink trick (one the tar made itself, one a lower layer had, `..`
 * after a link) without resolution code to get wrong, at the cost of refusing tars that
 * write through a symlink, which layer writers (moby, buildkit) never produce.
 *
 * Directories are checked once and remembered (`#verified`); whatever this apply removes or
 * replaces is forgotten, so a directory replaced by a symlink is checked again. The check is
 * in user space with `lstat`, so it assumes nobody else changes the target during the
 * apply (true for a store's private directories); the kernel does not re-check it.
 */
import fs from 'node:fs'
import { fsPath, parentRel } from './byte-path.js'
import { InvalidMemberError, UnsafePathError } from './errors.js'
import type { UnsafePathReason } from './errors.js'

/** Names that need more than stripping a trailing `/`: `.`/`..` components, `//`. */
const NEEDS_CLEAN = /(?:^|\/)\.\.?(?:\/|$)|\/\//

/**
 * Cleans a member name (or a hardlink target) into a path relative to the target: `''` is
 * the root itself. Throws {@link UnsafePathError} when the name climbs above the root.
 *
 * @param name the byte string of the name
 * @param member the member's raw name, for the error
 * @param reason the reason the error gives (a name, or a hardlink target)
 */
export function cleanName(name: string, member: Buffer, reason: UnsafePathReason): string {
  let start = 0
  while (start < name.length && name.charCodeAt(start) === 0x2f) start++
  let end = name.length
  while (end > start && name.charCodeAt(end - 1) === 0x2f) end--
  const s = start === 0 && end === name.length ? name : name.slice(start, end)
  // Most names have no component starting with a dot and no `//`: two scans, no regex.
  if (s.charCodeAt(0) !== 0x2e && !s.includes('/.') && !s.includes('//')) return s
  if (!NEEDS_CLEAN.test(s)) return s
  const out: string[] = []
  for (const part of s.split('/')) {
    if (part === '' || part === '.') continue
    if (part !== '..') out.push(part)
    else if (out.pop() === undefined) {
      throw new UnsafePathError(member, reason, `${JSON.stringify(name)} climbs above the root`)
    }
  }
  return out.join('/')
}

/** What {@link PathGuard.probeDir} found. */
export type DirState = 'dir' | 'missing' | 'not-dir'

/** Told about each directory the guard finds on disk or makes. */
export interface DirObserver {
  /** An existing directory, with its lstat and path. */
  seen(rel: string, st: fs.Stats, path: string | Buffer): void
  /** A directory the guard made (mode 0755). */
  made(rel: string): void
}

/** Checks and creates directories inside one root, remembering what it verified. */
export class PathGuard {
  /** Byte string of the root's real path, without a trailing `/`. */
  readonly root: string
  /** Relative paths known to be real directories whose ancestors are too (`''`: the root). */
  readonly #verified = new Set<string>([''])
  /** The last directory ensured: members come grouped by directory, so most checks stop here. */
  #last = ''
  readonly #observer: DirObserver | undefined

  /**
   * @param root byte string of the target's real path (no symlinks in it)
   * @param observer told about each directory found or made
   */
  constructor(root: string, observer?: DirObserver) {
    this.root = root.endsWith('/') && root.length > 1 ? root.slice(0, -1) : root
    this.#observer = observer
  }

  /** The absolute byte-string path of `rel`. */
  abs(rel: string): string {
    return rel === '' ? this.root : this.root === '/' ? `/${rel}` : `${this.root}/${rel}`
  }

  /** True when `rel` is a directory verified (or made) by this apply and not removed since. */
  isVerified(rel: string): boolean {
    return this.#verified.has(rel)
  }

  /** Records that `rel` is now a real directory (its parent must be verified). */
  addDir(rel: string): void {
    this.#verified.add(rel)
  }

  /** Forgets `rel` (it was removed or replaced); the caller forgets its descendants too. */
  forget(rel: string): void {
    if (rel === '') return
    this.#verified.delete(rel)
    this.#last = ''
  }

  /**
   * Makes sure `dir` and each of its ancestors is a real directory, creating the missing
   * ones with mode 0755 (moby's implied-directory mode, exact whatever the umask).
   *
   * @throws UnsafePathError when a component is a symlink; InvalidMemberError when it is
   *   another non-directory
   */
  ensureDir(dir: string, member: Buffer): void {
    if (dir === this.#last || this.#verified.has(dir)) {
      this.#last = dir
      return
    }
    for (const rel of this.#unverifiedChain(dir)) {
      const p = fsPath(this.abs(rel))
      const st = fs.lstatSync(p, { throwIfNoEntry: false })
      if (st === undefined) {
        fs.mkdirSync(p, 0o755)
        fs.chmodSync(p, 0o755)
        this.#observer?.made(rel)
      } else {
        this.#check(st, rel, member)
        this.#observer?.seen(rel, st, p)
      }
      this.#verified.add(rel)
    }
    this.#last = dir
  }

  /**
   * Whether `dir` is a real directory, without creating anything (for whiteouts and
   * hardlink targets). A missing component gives 'missing', a non-directory one 'not-dir'.
   *
   * @throws UnsafePathError when a component is a symlink
   */
  probeDir(dir: string, member: Buffer): DirState {
    if (this.#verified.has(dir)) return 'dir'
    for (const rel of this.#unverifiedChain(dir)) {
      const p = fsPath(this.abs(rel))
      const st = fs.lstatSync(p, { throwIfNoEntry: false })
      if (st === undefined) return 'missing'
      if (st.isSymbolicLink()) this.#check(st, rel, member)
      if (!st.isDirectory()) return 'not-dir'
      this.#observer?.seen(rel, st, p)
      this.#verified.add(rel)
    }
    return 'dir'
  }

  /** The ancestors of `dir` (itself included) below the deepest verified one, top first. */
  #unverifiedChain(dir: string): string[] {
    const chain: string[] = []
    for (let rel = dir; !this.#verified.has(rel); rel = parentRel(rel)) chain.push(rel)
    return chain.reverse()
  }

  #check(st: fs.Stats, rel: string, member: Buffer): void {
    if (st.isDirectory()) return
    if (st.isSymbolicLink()) {
      throw new UnsafePathError(
        member,
        'symlink-in-path',
        `${JSON.stringify(rel)} is a symlink; directories of a member are never followed`,
      )
    }
    throw new InvalidMemberError(member, 'parent-not-directory', `${JSON.stringify(rel)} exists and is not a directory`)
  }
}
