/**
 * Applying a layer tar to a directory, with moby's UnpackLayer semantics (see
 * research/moby.md §6.2), whiteouts in either of two formats, and breakout protection
 * (safe-path.ts). The per-member work is in applier.ts.
 */
import fs from 'node:fs'
import type { Readable } from 'node:stream'
import createDebug from 'debug'
import { disassemble } from '../tarsplit/index.js'
import type { TarMember } from '../tarsplit/index.js'
import { Applier } from './applier.js'
import { bytesOfText } from './byte-path.js'
import { InvalidTargetError } from './errors.js'
import { creatorIds } from './node-defaults.js'

const log = createDebug('layerstore:archive')

/** How whiteouts in the tar are applied. */
export type WhiteoutFormat = 'naive' | 'overlay'

/** Options of {@link applyLayer} and {@link applyTar}. */
export interface ApplyOptions {
  /**
   * `'naive'` (AUFS semantics, for a target that is a full copy of the parent layer):
   * `.wh.NAME` deletes NAME recursively, `.wh..wh..opq` empties its directory of everything
   * this apply did not write. `'overlay'` (for an empty overlayfs upper directory):
   * `.wh.NAME` becomes a character device 0/0 NAME, `.wh..wh..opq` the xattr
   * `trusted.overlay.opaque=y` on its directory; overlayfs's own xattrs in the tar are dropped.
   */
  readonly whiteouts: WhiteoutFormat
  /** Tolerate xattrs the filesystem does not support (ENOTSUP) instead of failing. Default false. */
  readonly bestEffortXattrs?: boolean
  /**
   * `'overlay'` only: the layer directories below `target`, top first. A hardlink whose
   * target is not in `target` is then made to the file these show at that path (see
   * `LowerView`), as a flattened tree would have it; without them it fails, as it does on
   * moby's overlay2.
   */
  readonly lowers?: readonly string[]
}

/** What an apply did. */
export interface ApplyResult {
  /** Sum of the members' sizes (a sparse file counts its real size), as moby's ApplyDiff. */
  readonly size: number
  /** Members read, including skipped ones (global headers, whiteouts…). */
  readonly members: number
  /** Xattrs not set (EPERM, or ENOTSUP with `bestEffortXattrs`, or overlay-private ones). */
  readonly skippedXattrs: number
}

/**
 * Applies tar members to `target`, an existing directory, as one layer.
 *
 * Guarantees: no member creates, changes or deletes anything outside `target` (names that
 * climb out, symlinks in a member's directories, hardlinks through or to outside, bad
 * whiteout names: `UnsafePathError`); the apply stops at the first error, leaving `target`
 * partly applied (the caller discards it). Other failures: `UnsupportedMemberError` (a type
 * a layer cannot hold), `InvalidMemberError`, `ApplyEntryError` wrapping the failed call,
 * `InvalidTargetError`, and the parser's errors (`TruncatedArchiveError`…) as they are.
 *
 * Cost: one pass; file data is written from the input's chunks as they come; memory holds
 * the set of paths written (naive mode) and the directories' times until the end.
 *
 * Differences from moby: symlinks in a member's directories are refused, not followed
 * (safe-path.ts); a hardlink member gets no attributes of its own (it shares its target's
 * inode, which its own member set; GNU tar does the same); times before 1970 are kept, not
 * reset to the epoch; a whiteout of a missing directory creates nothing; a root entry (`./`)
 * gives the target its attributes (GNU tar does too; moby skips it); a GNU dumpdir member
 * (`D`) is a directory, as to GNU tar (moby fails on it). Global headers and volume labels
 * are skipped. In overlay mode, a directory made where a whiteout (or a non-directory) was
 * is marked opaque, as overlayfs marks it (moby's leaves the deleted directory's lower
 * contents visible), a hardlink to a whiteout fails as a missing target, and, given
 * `lowers`, an implied directory takes the lower one's attributes (moby's: 0755).
 */
export async function applyLayer(
  members: AsyncIterable<TarMember>,
  target: string,
  options: ApplyOptions,
): Promise<ApplyResult> {
  const overlay = options.whiteouts === 'overlay'
  const { root, stat } = realDirectory(target)
  const ids = creatorIds()
  const applier = new Applier(root, stat, ids, {
    overlay,
    bestEffortXattrs: options.bestEffortXattrs ?? false,
    lowers: overlay ? (options.lowers ?? []) : [],
  })
  try {
    for await (const member of members) {
      const pending = applier.apply(member)
      if (pending !== undefined) await pending
    }
  } catch (err) {
    throw (await applier.abandon()) ?? err
  }
  await applier.finish()
  log('applied %d members (%d bytes) to %s', applier.members, applier.size, target)
  return { size: applier.size, members: applier.members, skippedXattrs: applier.skippedXattrs }
}

/**
 * Parses a tar stream (with the tar-split disassembler, metadata discarded: no checksums, no
 * segments) and applies it with {@link applyLayer}. Parse errors are the disassembler's typed
 * errors. Give it `io.readFileChunks(path)` for a file: its buffers are then reused as the
 * apply goes (flat memory); any other chunk source works too.
 */
export function applyTar(
  tar: AsyncIterable<Uint8Array> | Readable,
  target: string,
  options: ApplyOptions,
): Promise<ApplyResult> {
  return applyLayer(disassemble(tar, {}), target, options)
}

/**
 * The byte-string real path of `target`, which must be a directory, and its lstat.
 * Synchronous: lookups cost microseconds, less than two round trips through the thread pool,
 * which a chain of small layers pays at every layer (issue #6).
 */
function realDirectory(target: string): { root: string; stat: fs.Stats } {
  try {
    const real = fs.realpathSync.native(target)
    const stat = fs.lstatSync(real)
    if (!stat.isDirectory()) throw new InvalidTargetError(target, 'is not a directory')
    return { root: bytesOfText(real), stat }
  } catch (err) {
    if (err instanceof InvalidTargetError) throw err
    throw new InvalidTargetError(target, 'cannot be opened', err)
  }
}
