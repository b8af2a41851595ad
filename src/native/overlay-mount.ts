/**
 * Mounting overlayfs through the new mount API, one `lowerdir+` parameter per layer.
 *
 * mount(2) takes overlay options as one string capped at a page (4096 bytes with its NUL),
 * so 125 lower dirs under a long root do not fit; moby works around it with short symlinks
 * (`l/<26 chars>`). Since Linux 6.8 overlayfs also takes `fsconfig(FSCONFIG_SET_STRING,
 * "lowerdir+", dir)` once per layer, each value a full path of its own, with no length
 * budget and no escaping of ',' or ':'. We use that when the kernel has it and otherwise
 * fail with kind not-supported, leaving the short-link fallback to the overlay driver.
 */
import { closeSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import createDebug from 'debug'
import { errnoValue, NativeArgumentError, SyscallError } from './errors.js'
import type { PathLike } from './errors.js'
import {
  attachMount,
  FSCONFIG_CMD_CREATE,
  FSCONFIG_SET_FLAG,
  FSCONFIG_SET_STRING,
  fsconfig,
  fsconfigCreate,
  fsmount,
  FSMOUNT_CLOEXEC,
  fsopen,
  MOUNT_ATTR_RDONLY,
} from './mount.js'

const debug = createDebug('layerstore:native')

/** What {@link mountOverlay} mounts. */
export interface OverlayMountOptions {
  /** The read-only layers, **top first** (as in `lowerdir=top:…:bottom`). At least one. */
  lowerDirs: readonly PathLike[]
  /** The writable layer; with {@link workDir}, or neither (a read-only overlay). */
  upperDir?: PathLike
  /** overlayfs' scratch dir, empty, on the same filesystem as {@link upperDir}. */
  workDir?: PathLike
  /** Where to attach the overlay. */
  target: PathLike
  /**
   * More overlay parameters: `'key=value'` (e.g. `'index=off'`, `'redirect_dir=off'`) or a
   * bare flag (e.g. `'userxattr'`, `'volatile'`). Applied after the dirs, in order; for
   * overlayfs the last value of a key wins.
   */
  options?: readonly string[]
  /** Attach the mount read-only (MOUNT_ATTR_RDONLY). */
  readOnly?: boolean
  /**
   * Create the superblock on the calling thread instead of a worker: for a tiny overlay (a
   * probe of empty dirs), where the kernel takes about a millisecond and the worker's first
   * start ~100 ms. Blocks the event loop meanwhile, so never for real layers (an overlay
   * looks up every lower dir). Default false.
   */
  inline?: boolean
}

// Probed once per process: the kernel does not change under a running process.
let lowerdirAppend: Promise<boolean> | undefined

/**
 * True when this kernel's overlayfs takes `lowerdir+` (Linux 6.8+), so that
 * {@link mountOverlay} works. Probes once per process by opening an overlay context and
 * appending `/` as a layer (nothing is mounted). Rejects with a {@link SyscallError} when the
 * probe itself is refused (EPERM without CAP_SYS_ADMIN), since that answers nothing.
 */
export function supportsLowerdirAppend(): Promise<boolean> {
  lowerdirAppend ??= probeLowerdirAppend().catch((err: unknown) => {
    lowerdirAppend = undefined // a refused probe may succeed later with privileges
    throw err
  })
  return lowerdirAppend
}

async function probeLowerdirAppend(): Promise<boolean> {
  let fd: number
  try {
    fd = fsopen('overlay')
  } catch (err) {
    // ENOSYS: no new mount API (< 5.2); ENODEV: no overlayfs at all.
    if (err instanceof SyscallError && (err.code === 'ENOSYS' || err.code === 'ENODEV')) return false
    throw err
  }
  try {
    fsconfig(fd, FSCONFIG_SET_STRING, 'lowerdir+', '/')
    return true
  } catch (err) {
    // Older overlayfs refuses the unknown parameter with EINVAL.
    if (err instanceof SyscallError && err.code === 'EINVAL') {
      debug('overlay lacks lowerdir+: %s', err.message)
      return false
    }
    throw err
  } finally {
    closeSync(fd)
  }
}

/**
 * True when the kernel lists overlayfs in /proc/filesystems (built in or module loaded).
 * False does not rule out a module that `modprobe overlay` would load.
 */
export async function isOverlaySupported(): Promise<boolean> {
  let text: string
  try {
    text = await readFile('/proc/filesystems', 'utf8')
  } catch {
    return false
  }
  return text.split('\n').some((line) => line.split('\t')[1]?.trim() === 'overlay')
}

/**
 * Mounts overlayfs on `target` with one `lowerdir+` per layer (see the file comment), so
 * the number and length of lower dirs is bounded only by overlayfs itself (500 layers).
 * Rejects with a {@link SyscallError}: kind not-supported (EOPNOTSUPP) when the kernel lacks
 * `lowerdir+`; otherwise the errno of the step that failed, with the kernel's explanation
 * in the message (e.g. "overlay: failed to resolve '…': -2"). Every fd it opens is closed,
 * also on failure; nothing is left mounted when it rejects.
 */
export async function mountOverlay(options: OverlayMountOptions): Promise<void> {
  const { lowerDirs, upperDir, workDir, target } = options
  if (lowerDirs.length === 0) throw new NativeArgumentError('mountOverlay', 'lowerDirs', 'needs at least one dir')
  if ((upperDir === undefined) !== (workDir === undefined)) {
    throw new NativeArgumentError('mountOverlay', 'upperDir/workDir', 'give both or neither')
  }
  if (!(await supportsLowerdirAppend())) {
    throw new SyscallError('fsconfig', errnoValue('EOPNOTSUPP'), {
      path: target,
      kind: 'not-supported',
      detail: 'overlayfs lacks lowerdir+ (Linux 6.8+); use short lowerdir links with mount(2)',
    })
  }
  debug('mountOverlay %s: %d lower dirs, upper %s', target, lowerDirs.length, upperDir ?? '-')
  const contextFd = fsopen('overlay')
  try {
    for (const dir of lowerDirs) fsconfig(contextFd, FSCONFIG_SET_STRING, 'lowerdir+', dir)
    if (upperDir !== undefined && workDir !== undefined) {
      fsconfig(contextFd, FSCONFIG_SET_STRING, 'upperdir', upperDir)
      fsconfig(contextFd, FSCONFIG_SET_STRING, 'workdir', workDir)
    }
    for (const option of options.options ?? []) {
      const eq = option.indexOf('=')
      if (eq < 0) fsconfig(contextFd, FSCONFIG_SET_FLAG, option)
      else fsconfig(contextFd, FSCONFIG_SET_STRING, option.slice(0, eq), option.slice(eq + 1))
    }
    if (options.inline) fsconfig(contextFd, FSCONFIG_CMD_CREATE)
    else await fsconfigCreate(contextFd)
    const mountFd = fsmount(contextFd, FSMOUNT_CLOEXEC, options.readOnly ? MOUNT_ATTR_RDONLY : 0)
    try {
      attachMount(mountFd, target)
    } finally {
      // Closing a detached mount's fd that was never attached unmounts it.
      closeSync(mountFd)
    }
  } finally {
    closeSync(contextFd)
  }
}
