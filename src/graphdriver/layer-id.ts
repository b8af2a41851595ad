/**
 * Layer id validation, shared by every driver: an id becomes a path component under the
 * driver's home, so anything but a plain name is refused before it reaches the filesystem.
 */
import { readdir } from 'node:fs/promises'
import { hasErrno } from './errno.js'
import { InvalidLayerIDError } from './errors.js'

// Cache IDs are 64 hex chars; moby's drivers also accept `<id>-init`. 255 is NAME_MAX.
const LAYER_ID = /^[0-9A-Za-z_.-]{1,255}$/

/** True if `id` is usable as a layer id: `[0-9A-Za-z_.-]{1,255}`, not `.` or `..`. */
export function isValidLayerID(id: string): boolean {
  return LAYER_ID.test(id) && id !== '.' && id !== '..'
}

/**
 * Throws `InvalidLayerIDError` (naming `driver`) unless `id` is a valid layer id and none of
 * the driver's `reserved` names (its own bookkeeping beside the layers, e.g. overlay's `l`).
 */
export function assertLayerID(driver: string, id: string, reserved: readonly string[] = []): void {
  if (!isValidLayerID(id) || reserved.includes(id)) throw new InvalidLayerIDError(driver, id)
}

/**
 * The layer ids among the directories of `dir`, for a driver's `list()`: directories whose
 * names are valid ids and not one of `reserved`. Scratch names (a `~` is never in an id) and
 * foreign entries such as a filesystem's `lost+found` drop out. A missing `dir` holds none.
 */
export async function listLayerDirs(dir: string, reserved: readonly string[] = []): Promise<string[]> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    if (hasErrno(err, 'ENOENT')) return []
    throw err
  }
  return entries.filter((e) => e.isDirectory() && isValidLayerID(e.name) && !reserved.includes(e.name)).map((e) => e.name)
}
