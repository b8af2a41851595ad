/**
 * Performing a mount plan (mount-plan.ts); undoing it is graphdriver's `unmountTarget`, shared
 * by every driver. The only place the overlay driver calls mount(2) or the new mount API.
 */
import { stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import createDebug from 'debug'
import { bindMount } from '../../graphdriver/index.js'
import { isMountPoint, mount, mountOverlay, mountSync, MS_RDONLY } from '../../native/index.js'
import type { RelativeMounter } from '../../native/index.js'
import type { OverlayMountPlan } from './mount-plan.js'

const debug = createDebug('layerstore:overlay')

/** How {@link performMountPlan} calls the kernel. */
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
      await bindMount(plan.source, plan.target, plan.readOnly, { inline })
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
