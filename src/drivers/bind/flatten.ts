/**
 * `flattenLayers`: a layer's complete tree, made from a stack of layer directories, at almost
 * no disk cost. The stack is the layer's own diff over its ancestors' (overlay format:
 * whiteout devices, opaque xattrs), down to the first ancestor whose complete tree exists,
 * and the result is what an overlay mount of that stack would show (see `LowerView`).
 *
 * Directories and symlinks are re-created (owner, mode, xattrs, nanosecond times; a
 * directory's from the topmost layer that has it, without overlayfs's own xattrs); every
 * other entry (regular files, devices, FIFOs, sockets) becomes a hard link to the inode the
 * stack shows, so hard-link groups stay groups.
 *
 * Why sharing inodes is safe: a read-only layer's files never change once applied, and the
 * tree is served through a read-only bind mount. Directories cannot be hard-linked, and a
 * symlink's owner and times could be changed in place (lchown, lutimes), which would reach
 * the layer it came from.
 *
 * An inode at the filesystem's hard-link limit (EMLINK; 65 000 on ext4) is copied instead.
 * The per-entry calls are synchronous, as in the archive module (a flattened tree is tens of
 * thousands of them), yielding to the event loop every few hundred entries.
 */
import fs, { constants as fsConstants } from 'node:fs'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import createDebug from 'debug'
import { LowerView, bytesOfText, isOverlayXattr } from '../../archive/index.js'
import { copyMetadata } from '../../graphdriver/index.js'

const debug = createDebug('layerstore:bind')

const SLASH = Buffer.from('/')
const YIELD_EVERY = 256

/** What {@link flattenLayers} made. */
export interface FlattenStats {
  dirs: number
  symlinks: number
  links: number
  /** Inodes at the hard-link limit, copied instead. */
  copies: number
}

/**
 * Makes `dst` (an existing empty directory, on the layers' filesystem) the merged tree of
 * `layers` (absolute paths, top first); `dst` takes the top layer's root attributes, its
 * times included, so it should not be a scratch directory judged by its age. Fails on the
 * first error, leaving a partial tree the caller removes. Cost: O(entries of the merged tree
 * + entries each layer hides), no data.
 */
export async function flattenLayers(layers: readonly string[], dst: string): Promise<FlattenStats> {
  const state = { stats: { dirs: 0, symlinks: 0, links: 0, copies: 0 }, seen: 0 }
  const root = Buffer.from(dst)
  await flattenDir(LowerView.root(layers.map(bytesOfText)), root, state)
  const top = Buffer.from(layers[0] ?? dst)
  copyMetadata(top, root, fs.lstatSync(top, { bigint: true }), isOverlayXattr)
  debug('flattened %d layers into %s: %o', layers.length, dst, state.stats)
  return state.stats
}

interface FlattenState {
  readonly stats: FlattenStats
  seen: number
}

async function flattenDir(view: LowerView, dst: Buffer, state: FlattenState): Promise<void> {
  for (const name of view.names()) {
    if (++state.seen % YIELD_EVERY === 0) await yieldToLoop()
    const entry = view.child(name)
    const st = entry.topStat
    if (entry.top === null || st === null) continue
    const from = Buffer.from(entry.top, 'latin1')
    const to = Buffer.concat([dst, SLASH, Buffer.from(name, 'latin1')])
    if (st.isDirectory()) {
      fs.mkdirSync(to, { mode: 0o700 })
      await flattenDir(entry, to, state)
      // After the children: making them bumps the directory's mtime.
      copyMetadata(from, to, st, isOverlayXattr)
      state.stats.dirs++
    } else if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(from, { encoding: 'buffer' }), to)
      copyMetadata(from, to, st)
      state.stats.symlinks++
    } else {
      linkOrCopy(from, to, st, state.stats)
    }
  }
}

function linkOrCopy(from: Buffer, to: Buffer, st: fs.BigIntStats, stats: FlattenStats): void {
  try {
    fs.linkSync(from, to)
    stats.links++
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EMLINK' || !st.isFile()) throw err
    fs.copyFileSync(from, to, fsConstants.COPYFILE_FICLONE)
    copyMetadata(from, to, st)
    stats.copies++
  }
}
