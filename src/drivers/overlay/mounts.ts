/**
 * Performing a mount plan (mount-plan.ts) and undoing it. The only place the overlay driver
 * calls mount(2), umount2(2) or the new mount API.
 */
import { rmdir, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import createDebug from 'debug'
import { isMountPoint, MNT_DETACH, mount, mountOverlay, mountSync, MS_BIND, MS_RDONLY, MS_REMOUNT, umount, umountSync } from '../../native/index.js'
import type { RelativeMounter } from '../../native/index.js'
import type { OverlayMountPlan } from './mount-plan.js'

const debug = createDebug('layerstore:overlay')

/** How {@link performMountPlan} and {@link unmountTarget} call the kernel. */
export interface MountCallOptions {
  /**
   * Make the slow calls on this thread instead of the native worker: only for a mount of a
   * few empty dirs (the probe), where the worker's start would cost ~100 times the call.
   */
  readonly inline?: boolean
}

/**
 * Mounts `plan` on its target (which must exist). A plan relative to a directory needs a
 * `mounter` whose directory that is. Leaves nothing mounted when it rejects. Rejects with the
 * native layer's `SyscallError` of the failing step.
 */
export async function performMountPlan(plan: OverlayMountPlan, mounter?: RelativeMounter, options: MountCallOptions = {}): Promise<void> {
  const inline = options.inline === true
  switch (plan.method) {
    case 'bind':
      await mount(plan.source, plan.target, null, MS_BIND)
      if (plan.readOnly) {
        try {
          // MS_RDONLY on the bind itself is ignored: read-only takes a remount of the bind.
          await mount(null, plan.target, null, MS_REMOUNT | MS_BIND | MS_RDONLY)
        } catch (err) {
          await umount(plan.target, MNT_DETACH)
          throw err
        }
      }
      break
    case 'lowerdir+':
      await mountOverlay({
        lowerDirs: plan.lowerDirs,
        ...(plan.upperDir !== undefined ? { upperDir: plan.upperDir } : {}),
        ...(plan.workDir !== undefined ? { workDir: plan.workDir } : {}),
        target: plan.target,
        options: plan.options,
        readOnly: plan.readOnly,
        inline,
      })
      break
    case 'mount-data': {
      const flags = plan.readOnly ? MS_RDONLY : 0
      if (plan.cwd === null && inline) mountSync('overlay', plan.target, 'overlay', flags, plan.data)
      else if (plan.cwd === null) await mount('overlay', plan.target, 'overlay', flags, plan.data)
      else {
        if (mounter === undefined) throw new TypeError(`a mount relative to ${plan.cwd} needs a RelativeMounter there`)
        await mounter.mount('overlay', plan.target, 'overlay', flags, plan.data)
      }
      break
    }
  }
  debug('mounted %s by %s', plan.target, plan.method === 'mount-data' && plan.cwd ? 'mount(2) from home' : plan.method)
}

/**
 * Detaches the mount on `target` and removes the mount point. The rmdir also makes the
 * kernel drop copies of the mount that leaked into other mount namespaces (moby/moby#34948),
 * so its failure (a namespace still holds it busy) is not ours to report. A target that is
 * no longer mounted (EINVAL) counts as unmounted.
 */
export async function unmountTarget(target: string, options: MountCallOptions = {}): Promise<void> {
  try {
    if (options.inline) umountSync(target, MNT_DETACH)
    else await umount(target, MNT_DETACH)
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EINVAL') throw err
  }
  await rmdir(target).catch(() => undefined)
}

/**
 * True if something is mounted on `target`, a layer's mount point. Cheap in the usual
 * cases: a missing mount point (put removes it) is not mounted, and an overlay has a device
 * number of its own; only a same-device directory (a bind of the home's own filesystem, or
 * an unmounted dir) costs a read of /proc/self/mountinfo, which grows by the full lower list
 * of every mounted overlay (~16 KiB each at depth 125).
 */
export async function isLayerMounted(target: string): Promise<boolean> {
  let st
  try {
    st = await stat(target)
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return false
    throw err
  }
  if (st.dev !== (await stat(dirname(target))).dev) return true
  return isMountPoint(target)
}
