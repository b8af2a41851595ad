/**
 * Which kind of view (read-only or writable) a mounted layer shows, for drivers whose two
 * views share one mount point: a `get` that finds the mount point already held (by this
 * instance or adopted from another process) must not hand out the other kind of view.
 */
import { access, constants } from 'node:fs/promises'
import { hasErrno } from './errno.js'
import { MountModeConflictError } from './errors.js'

/**
 * True when `path` is on a read-only mount. access(2) with `W_OK` answers `EROFS` for a
 * read-only filesystem whoever asks (root included), without writing anything.
 */
export async function isReadOnlyView(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK)
    return false
  } catch (err) {
    if (hasErrno(err, 'EROFS')) return true
    throw err
  }
}

/**
 * After a `get` that shared an existing mount: checks that the mount is the view asked for.
 * On a mismatch, gives the hold back with `put` and throws `MountModeConflictError`.
 */
export async function checkSharedView(
  driver: string,
  id: string,
  mountPoint: string,
  wantReadOnly: boolean,
  put: () => Promise<void>,
): Promise<void> {
  if ((await isReadOnlyView(mountPoint)) === wantReadOnly) return
  await put()
  throw new MountModeConflictError(driver, id, mountPoint, wantReadOnly)
}
