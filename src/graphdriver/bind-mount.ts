/**
 * A bind mount of a layer's directory, read-only if asked: what vfs's views and overlay's
 * base layers are.
 */
import { MNT_DETACH, mount, MS_BIND, MS_RDONLY, MS_REMOUNT, umount } from '../native/index.js'

/**
 * Bind-mounts `source` on `target` (which must exist), read-only when `readOnly`. A bind
 * mount ignores MS_RDONLY when it is made: read-only takes a second, remounting call.
 * Nothing is left mounted when it rejects (with the failing syscall's error).
 */
export async function bindMount(source: string, target: string, readOnly: boolean): Promise<void> {
  await mount(source, target, null, MS_BIND)
  if (!readOnly) return
  try {
    await mount(null, target, null, MS_REMOUNT | MS_BIND | MS_RDONLY)
  } catch (err) {
    await umount(target, MNT_DETACH)
    throw err
  }
}
