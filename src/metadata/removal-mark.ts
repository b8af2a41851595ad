/**
 * Deleting a record in two steps, as moby's `deleteLayer` does but with the durability it
 * lacks: first rename it to a `-removing` name (under the exclusive lock; fsynced, so it
 * stays gone across a power loss before any driver data is touched), then, after the lock is
 * released and the driver data removed, delete the marked directory.
 */
import { randomBytes } from 'node:crypto'
import { readdir, rmdir, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import createDebug from 'debug'
import { renameat2 } from '../native/index.js'
import type { CrashPointHook } from './crash-points.js'
import { errnoOf, fsyncDir, ioError, removeTree } from './durable-fs.js'
import type { CacheID, MountID } from './ids.js'
import { LayerDbLayout } from './layout.js'

const debug = createDebug('layerstore:metadata')

/**
 * A record renamed to its `-removing` name: no longer listed, not yet deleted. Hand it to
 * `FileMetadataStore.removeMarked` once the driver data is gone.
 */
export interface RemovalMark {
  readonly recordKind: 'layer' | 'mount'
  /** The chain ID or the mount name. */
  readonly record: string
  /** The `-removing` directory. */
  readonly path: string
  /** The driver IDs to remove: the cache ID, or the mount ID and init ID. */
  readonly driverIDs: readonly (CacheID | MountID)[]
}

/**
 * Renames `from` to `to(token)`, where the token is our owner ID plus 32 random hex digits,
 * so that a scan leaves the mark alone while we live. Retries on a name clash.
 */
export async function renameToRemoving(
  from: string,
  to: (token: string) => string,
  owner: string,
  crash: CrashPointHook,
  missing: () => Error,
): Promise<string> {
  crash?.('remove:before-mark')
  for (;;) {
    const target = to(owner + randomBytes(16).toString('hex'))
    try {
      renameat2(from, target, 'noreplace')
    } catch (err) {
      const code = errnoOf(err)
      if (code === 'EEXIST') continue
      if (code === 'ENOENT') throw missing()
      throw ioError('rename', from, err)
    }
    // Durable before any driver data goes: otherwise a power loss could bring the record
    // back while its data is deleted.
    await fsyncDir(dirname(target))
    crash?.('remove:after-mark')
    return target
  }
}

/** Deletes a marked directory: its files first, then the directory. Missing is fine. */
export async function deleteMarked(layout: LayerDbLayout, mark: RemovalMark, crash: CrashPointHook): Promise<void> {
  const [parent, parse] =
    mark.recordKind === 'layer'
      ? [layout.sha256Dir, LayerDbLayout.parseLayerDirName]
      : [layout.mountsDir, LayerDbLayout.parseMountDirName]
  if (dirname(mark.path) !== parent || parse(basename(mark.path)).type !== 'removing') {
    throw new RangeError(`${mark.path} is not a removal mark of ${layout.root}`)
  }
  let files: string[]
  try {
    files = await readdir(mark.path)
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return
    throw ioError('readdir', mark.path, err)
  }
  for (const [i, file] of files.entries()) {
    const path = join(mark.path, file)
    await unlink(path).catch(async (err: unknown) => {
      const code = errnoOf(err)
      if (code === 'EISDIR' || code === 'EPERM') await removeTree(path)
      else if (code !== 'ENOENT') throw ioError('unlink', path, err)
    })
    if (i === 0) crash?.('remove:mid-delete')
  }
  await rmdir(mark.path).catch((err: unknown) => {
    if (errnoOf(err) !== 'ENOENT') throw ioError('rmdir', mark.path, err)
  })
  crash?.('remove:after-delete')
  debug('removed %s %s', mark.recordKind, mark.record)
}
