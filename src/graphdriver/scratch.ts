/**
 * Scratch directories, for drivers that keep one directory per layer in their home (bind,
 * overlay): a layer is built under a scratch name and renamed into place last, and renamed
 * to one before it is deleted, so `<id>/` exists exactly while the layer does. A scratch
 * name holds {@link SCRATCH_MARK}, which is never in a layer id, so `list()` and the
 * prior-driver check never take one for a layer.
 */
import { randomBytes } from 'node:crypto'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import createDebug from 'debug'
import { removeTreeAsync } from '../archive/index.js'
import { hasErrno } from './errno.js'
import { mountPointsUnder } from './unmount-all.js'

const debug = createDebug('layerstore:graphdriver')

/** What marks a scratch name: `~` is never in a layer id. */
export const SCRATCH_MARK = '~'

// Scratch dirs older than this are a crashed process's leftovers, never a live create.
const STALE_SCRATCH_MS = 10 * 60 * 1000

/** A scratch directory name for `id` and `purpose`, unique per call. */
export function scratchName(id: string, purpose: 'creating' | 'removing' | 'probe' | 'flattening'): string {
  return `${id}${SCRATCH_MARK}${purpose}-${randomBytes(6).toString('hex')}`
}

/**
 * At a driver's start: removes the scratch entry `name` of `home` if a crashed process left
 * it: a removal always, anything else once older than ten minutes (never a live create),
 * and in both cases only when nothing is mounted under it. A name that is gone by now was a
 * live process's, and is left to it.
 */
export async function sweepScratch(home: string, name: string, now: number): Promise<void> {
  const path = join(home, name)
  const removing = name.includes(`${SCRATCH_MARK}removing-`)
  let mtimeMs: number
  try {
    mtimeMs = (await stat(path)).mtimeMs
  } catch (err) {
    // Another process finished its create (renamed into place) or its removal since readdir.
    if (hasErrno(err, 'ENOENT')) return
    throw err
  }
  const old = now - mtimeMs > STALE_SCRATCH_MS
  if ((removing || old) && (await mountPointsUnder(path)).length === 0) {
    debug('sweeping scratch dir %s', path)
    // A removal's scratch dir is a whole layer tree: not fs.rm, which lists it all at once.
    await removeTreeAsync(path)
  }
}

/**
 * For a factory's `holdsLayers`: true if `home` has an entry, neither scratch nor one of
 * `reserved`, that holds `marker` (a file or dir every layer of the driver has). An
 * unreadable home counts as holding layers; a missing one does not.
 */
export async function holdsLayerDirs(home: string, marker: string, reserved: readonly string[] = []): Promise<boolean> {
  let names: string[]
  try {
    names = await readdir(home)
  } catch (err) {
    return !hasErrno(err, 'ENOENT')
  }
  for (const name of names) {
    if (reserved.includes(name) || name.includes(SCRATCH_MARK)) continue
    if (await stat(join(home, name, marker)).then(() => true, () => false)) return true
  }
  return false
}
