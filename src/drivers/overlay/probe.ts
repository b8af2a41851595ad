/**
 * Overlay feature detection, run once when a driver starts (moby's overlay2 `init`): probe,
 * never assume. A kernel or backing filesystem that cannot host the driver is reported as
 * `DriverNotSupportedError`, so that selection moves on to the next driver.
 *
 * What is probed, and how:
 * - overlayfs is known to the kernel (/proc/filesystems);
 * - `lowerdir+` (Linux 6.8+), by the native module's no-mount probe;
 * - which parameters the kernel has (`index`, `redirect_dir`, `metacopy` in
 *   /sys/module/overlay/parameters): each one it has is passed as `=off`. `index=off` avoids
 *   EBUSY "upperdir is in-use" when the kernel defaults to index=on (moby/moby#34538);
 *   `redirect_dir=off` and `metacopy=off` keep the upper dir a complete record of the
 *   layer's changes, which native diffs read (moby only detects them: moby/moby#34342,
 *   docker/for-linux#480);
 * - that the home's filesystem takes an overlay upper: a real mount in a scratch dir under
 *   home with two lowers, an upper and a work dir, through the mount interface the driver
 *   will use; a file written and one deleted through it must land in the upper as a file
 *   and as a 0/0 character device (a whiteout).
 *
 * A passed probe mount is recorded on home (probe-cache.ts) under a key of kernel, boot,
 * user, device, filesystem and features, and not repeated while all of them match; the
 * cheap probes above run every time. With `lowerdir+`, the mount is `volatile` and made on
 * the main thread, so that an open neither flushes the filesystem nor waits for the native
 * worker to start.
 *
 * Not probed: d_type. Node resolves DT_UNKNOWN entries with lstat, so a backing filesystem
 * without d_type (xfs ftype=0) cannot be told apart from here; the kernel then logs
 * "upper fs needs to support d_type" at mount time. TODO(#5): a getdents64 probe in native/.
 */
import { access, lstat, mkdir, rm, unlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import createDebug from 'debug'
import { backingFsName, DriverNotSupportedError, unmountTarget } from '../../graphdriver/index.js'
import { isOverlaySupported, supportsLowerdirAppend } from '../../native/index.js'
import { scratchName } from './layout.js'
import { performMountPlan } from './mounts.js'
import { probeCacheKey, probeRecorded, recordProbe } from './probe-cache.js'

const debug = createDebug('layerstore:overlay')

/** Which mount interface the driver uses (driver option `overlay.mount_api`). */
export type OverlayMountAPI = 'lowerdir+' | 'mount-data'

/** What the probes found; fixed for the driver's lifetime. */
export interface OverlayFeatures {
  /** The backing filesystem's name (`extfs`, `xfs`, …), for `status`. */
  readonly backingFs: string
  /** The kernel takes `lowerdir+` through fsconfig. */
  readonly lowerdirAppend: boolean
  /** The interface mounts go through: `lowerdir+` when available (or forced), else mount(2). */
  readonly api: OverlayMountAPI
  /** Overlay parameters every mount gets, e.g. `['index=off', 'redirect_dir=off']`. */
  readonly options: readonly string[]
}

const PARAMETERS_DIR = '/sys/module/overlay/parameters'
// Parameters passed as "<name>=off" when the kernel has them; see the file comment.
const OFF_PARAMETERS = ['index', 'redirect_dir', 'metacopy'] as const

/**
 * Probes the kernel and the filesystem of `home` (or of its parent, if home does not exist
 * yet) for the driver. `api` forces a mount interface (`'auto'`: `lowerdir+` when the kernel
 * has it). Rejects with `DriverNotSupportedError` when overlay cannot work here.
 */
export async function probeOverlay(home: string, api: OverlayMountAPI | 'auto', driverName: string): Promise<OverlayFeatures> {
  if (!(await isOverlaySupported())) {
    throw new DriverNotSupportedError(driverName, 'overlay is not in /proc/filesystems (modprobe overlay?)')
  }
  let lowerdirAppend: boolean
  try {
    lowerdirAppend = await supportsLowerdirAppend()
  } catch (err) {
    throw new DriverNotSupportedError(driverName, 'cannot use the mount API (not root?)', { cause: err })
  }
  if (api === 'lowerdir+' && !lowerdirAppend) {
    throw new DriverNotSupportedError(driverName, 'overlay.mount_api=lowerdir+ asked for, but this kernel lacks lowerdir+ (6.8+)')
  }
  const options: string[] = []
  for (const name of OFF_PARAMETERS) {
    if (await exists(join(PARAMETERS_DIR, name))) options.push(`${name}=off`)
  }
  const features: OverlayFeatures = {
    backingFs: await backingFsName(home),
    lowerdirAppend,
    api: api === 'auto' ? (lowerdirAppend ? 'lowerdir+' : 'mount-data') : api,
    options,
  }
  // Undefined for a home not made yet: the factory records the probe once init made it.
  const key = await probeCacheKey(home, features)
  if (key !== undefined && probeRecorded(home, key)) {
    debug('features of %s (probe mount recorded): %o', home, features)
    return features
  }
  await probeMount(home, features, driverName)
  if (key !== undefined) recordProbe(home, key)
  debug('features of %s: %o', home, features)
  return features
}

/**
 * Records the probe of a home that did not exist when {@link probeOverlay} ran (it probed
 * in the parent directory, on the same filesystem), once the driver made home.
 */
export async function recordProbeOfNewHome(home: string, features: OverlayFeatures): Promise<void> {
  const key = await probeCacheKey(home, features)
  if (key !== undefined) recordProbe(home, key)
}

async function probeMount(home: string, features: OverlayFeatures, driverName: string): Promise<void> {
  const base = (await exists(home)) ? home : dirname(home)
  const dir = join(base, scratchName('overlay', 'probe'))
  const merged = join(dir, 'merged')
  // With lowerdir+ (6.8+) the probe is `volatile` (below), so mounting and detaching it take
  // about a millisecond: on this thread, so that an open need not start the native worker
  // (~100 ms, most of an open's fixed cost). Without, its unmount flushes the whole upper
  // filesystem (volatile may be missing, < 5.10), which must not block the event loop.
  const inline = features.api === 'lowerdir+'
  let mounted = false
  try {
    for (const sub of ['lower1', 'lower2', 'upper', 'work', 'merged']) await mkdir(join(dir, sub), { recursive: true })
    await writeFile(join(dir, 'lower2', 'gone'), '')
    const lowers = [join(dir, 'lower1'), join(dir, 'lower2')]
    const upper = join(dir, 'upper')
    const work = join(dir, 'work')
    await performMountPlan(
      features.api === 'lowerdir+'
        ? {
            method: 'lowerdir+',
            lowerDirs: lowers,
            upperDir: upper,
            workDir: work,
            target: merged,
            // Unmounting an overlay with an upper syncs the whole upper filesystem (overlayfs'
            // sync_fs), measured 20-350 ms on a busy root; `volatile` (5.10+, so present where
            // lowerdir+ is) skips that for this throwaway mount, and changes nothing probed.
            options: [...features.options, 'volatile'],
            readOnly: false,
          }
        : {
            method: 'mount-data',
            data: [...features.options, `lowerdir=${lowers.join(':')}`, `upperdir=${upper}`, `workdir=${work}`].join(','),
            target: merged,
            cwd: null,
            readOnly: false,
          },
      undefined,
      { inline },
    )
    mounted = true
    await writeFile(join(merged, 'new'), 'x')
    await unlink(join(merged, 'gone'))
    const [added, whiteout] = await Promise.all([lstat(join(upper, 'new')), lstat(join(upper, 'gone'))])
    if (!added.isFile() || !whiteout.isCharacterDevice() || whiteout.rdev !== 0) {
      throw new Error('writes through the probe mount did not reach the upper dir as overlayfs stores them')
    }
  } catch (err) {
    throw new DriverNotSupportedError(
      driverName,
      `a test overlay mount in ${base} (${features.backingFs}) failed: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    )
  } finally {
    if (mounted) await unmountTarget(merged, { inline }).catch(() => undefined)
    await rm(dir, { recursive: true, force: true }).catch(() => undefined)
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}
