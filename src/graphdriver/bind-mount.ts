/**
 * A bind mount of a layer's directory, read-only if asked: what vfs's views and overlay's
 * base layers are.
 */
import { MNT_DETACH, mount, mountSync, MS_BIND, MS_RDONLY, MS_REMOUNT, umount, umountSync } from '../native/index.js'

/**
 * Bind-mounts `source` on `target` (which must exist), read-only when `readOnly`. A bind
 * mount ignores MS_RDONLY when it is made: read-only takes a second, remounting call.
 * Nothing is left mounted when it rejects (with the failing syscall's error). `inline`
 * makes the calls on this thread instead of the native worker: for a probe, where starting
 * the worker (~100 ms, ~13 MiB for the life of the process) costs far more than the calls.
 */
export async function bindMount(source: string, target: string, readOnly: boolean, options: { readonly inline?: boolean } = {}): Promise<void> {
  const [mountCall, umountCall] = options.inline ? [mountSync, umountSync] : [mount, umount]
  await mountCall(source, target, null, MS_BIND)
  if (!readOnly) return
  try {
    await mountCall(null, target, null, MS_REMOUNT | MS_BIND | MS_RDONLY)
  } catch (err) {
    await umountCall(target, MNT_DETACH)
    throw err
  }
}
