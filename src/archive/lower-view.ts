/**
 * `LowerView`: one path as a stack of overlay-format layer directories shows it merged, top
 * first, without mounting anything. What overlayfs does at lookup, done with lstat: a
 * whiteout (character device 0/0) or a non-directory hides everything below it, and an
 * opaque directory (`trusted.overlay.opaque=y`) hides the layers below it. A layer's own
 * data is taken as overlay format too: a device 0/0 is a whiteout wherever it is.
 *
 * Used to read an upper directory's changes against its lowers (changes.ts), to find a
 * hardlink's target in the layers below an apply (applier.ts), and by drivers that flatten
 * a stack of layer directories into one tree.
 *
 * Paths are byte strings (one char per byte, see byte-path.ts); the calls are synchronous,
 * like every per-entry call of the archive module (see apply.ts for why).
 */
import fs from 'node:fs'
import { lgetxattr } from '../native/index.js'
import { fsPath } from './byte-path.js'
import { OVERLAY_OPAQUE_VALUE, OVERLAY_OPAQUE_XATTR } from './whiteout.js'

/** One path of the merged view. */
export class LowerView {
  static readonly EMPTY = new LowerView([], null, null)

  private constructor(
    /** Absolute byte-string paths of this path in each contributing layer, top first: set only for a directory. */
    readonly dirs: readonly string[],
    /** The absolute path of what the view shows here (the topmost entry), null if nothing. */
    readonly top: string | null,
    /** Its lstat (null at the root, which is never looked up). */
    readonly topStat: fs.BigIntStats | null,
  ) {}

  /** True if the merged view has something at this path. */
  get exists(): boolean {
    return this.top !== null
  }

  /**
   * The root of a stack of layer directories (absolute byte strings, top first). A layer
   * whose root is opaque hides the layers below it, as its tar's `.wh..wh..opq` meant
   * (overlayfs itself ignores the mark on a mount's root).
   */
  static root(layers: readonly string[]): LowerView {
    const opaque = layers.findIndex(isOpaqueDir)
    const dirs = opaque < 0 ? layers : layers.slice(0, opaque + 1)
    return new LowerView(dirs, layers[0] ?? null, null)
  }

  /** The entry `name` of this directory (nothing, if this is not a directory). */
  child(name: string): LowerView {
    const dirs: string[] = []
    let top: string | null = null
    let topStat: fs.BigIntStats | null = null
    for (const dir of this.dirs) {
      const abs = `${dir}/${name}`
      const st = fs.lstatSync(fsPath(abs), { bigint: true, throwIfNoEntry: false })
      if (st === undefined) continue
      if (isWhiteout(st)) break
      if (top === null) {
        top = abs
        topStat = st
      }
      if (!st.isDirectory()) break
      dirs.push(abs)
      if (isOpaqueDir(abs)) break
    }
    return new LowerView(dirs, top, topStat)
  }

  /** The path `rel` (`a/b/c`) below this one, walked a name at a time. */
  descend(rel: string): LowerView {
    let view: LowerView = this
    for (const name of rel.split('/')) view = view.child(name)
    return view
  }

  /** The names visible in this directory of the view, sorted in byte order. */
  names(): string[] {
    const visible = new Set<string>()
    const hidden = new Set<string>()
    for (const dir of this.dirs) {
      for (const entry of fs.readdirSync(fsPath(dir), { encoding: 'latin1', withFileTypes: true })) {
        const name = entry.name
        if (visible.has(name) || hidden.has(name)) continue
        // Only a character device can be a whiteout: the entry's type spares the others an lstat.
        const whiteout = entry.isCharacterDevice() && isWhiteout(fs.lstatSync(fsPath(`${dir}/${name}`), { bigint: true }))
        if (whiteout) hidden.add(name)
        else visible.add(name)
      }
    }
    return [...visible].sort()
  }
}

/** True for an overlay whiteout: a character device 0/0. */
export function isWhiteout(st: fs.BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n
}

/** True if the directory at `abs` (a byte string) is marked opaque. */
export function isOpaqueDir(abs: string): boolean {
  const value = lgetxattr(fsPath(abs), OVERLAY_OPAQUE_XATTR)
  return value !== null && value.equals(OVERLAY_OPAQUE_VALUE)
}
