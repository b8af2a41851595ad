/**
 * The overlay driver's factory: options parsing, probing and wiring. The driver is
 * overlay-driver.ts (with its diff half in overlay-diff.ts), its probes probe.ts, its mount
 * planning mount-plan.ts and mounting mounts.ts.
 *
 * Two factories: `overlay` (our layout under `<root>/overlay`) and `overlay2` (the same driver
 * under Docker's name, read-only only; see {@link overlay2DriverFactory}).
 *
 * Driver options (`--driver-opt k=v`):
 * - `overlay.mount_api=auto|lowerdir+|mount-data`: how layers are mounted. `auto` (default)
 *   uses the new mount API with one `lowerdir+` per layer where the kernel has it (6.8+),
 *   else mount(2) with short `l/` links, relative to home when absolute paths do not fit one
 *   page. `mount-data` forces the latter (for old kernels, and to test it).
 */
import { access } from 'node:fs/promises'
import type { DriverFactory, DriverInitOptions } from '../../graphdriver/index.js'
import { backingFsName, DriverReadOnlyOnlyError, InvalidDriverOptionError } from '../../graphdriver/index.js'
import { overlayHoldsLayers } from './layer-files.js'
import { OVERLAY_DRIVER_NAME, OverlayDriver } from './overlay-driver.js'
import type { OverlayMountAPI } from './probe.js'
import { probeOverlay, recordProbeOfNewHome } from './probe.js'
import type { OverlayFeatures } from './probe.js'

export { OverlayDriver, OVERLAY_DRIVER_NAME, MAX_LOWERS } from './overlay-driver.js'
export type { OverlayDriverOptions } from './overlay-driver.js'
export { overlayHoldsLayers, readLayerInfo, resolveLowerDirs } from './layer-files.js'
export type { OverlayLayerInfo } from './layer-files.js'
export * from './errors.js'
export * from './layout.js'
export * from './mount-plan.js'
export { probeOverlay } from './probe.js'
export { backingFsName } from '../../graphdriver/index.js'
export { PROBE_XATTR } from './probe-cache.js'
export type { OverlayFeatures, OverlayMountAPI } from './probe.js'

/** Options of the overlay driver, parsed from the driver options. */
export interface OverlayOptions {
  /** See the file comment. Default `'auto'`. */
  readonly mountAPI: OverlayMountAPI | 'auto'
}

/** Parses driver options; `InvalidDriverOptionError` for an unknown key or a bad value. */
export function parseOverlayOptions(options: Readonly<Record<string, string>>): OverlayOptions {
  let mountAPI: OverlayMountAPI | 'auto' = 'auto'
  for (const [key, value] of Object.entries(options)) {
    if (key !== 'overlay.mount_api') {
      throw new InvalidDriverOptionError(OVERLAY_DRIVER_NAME, key, 'unknown option for overlay (known: overlay.mount_api)')
    }
    if (value !== 'auto' && value !== 'lowerdir+' && value !== 'mount-data') {
      throw new InvalidDriverOptionError(OVERLAY_DRIVER_NAME, `${key}=${value}`, 'expected auto, lowerdir+ or mount-data')
    }
    mountAPI = value
  }
  return { mountAPI }
}

/** Docker's name for its overlay driver: home `<root>/overlay2`, layerdb `image/overlay2/`. */
export const OVERLAY2_DRIVER_NAME = 'overlay2'

/**
 * A read-only instance: no probe (it mounts in a scratch dir under home), no `init` (it
 * makes `l/`, sweeps and re-links); only the backing filesystem's name is read, for status.
 */
async function openOverlayReadOnly(name: string, init: DriverInitOptions): Promise<OverlayDriver> {
  parseOverlayOptions(init.options ?? {})
  const features: OverlayFeatures = Object.freeze({
    backingFs: await backingFsName(init.home),
    lowerdirAppend: false,
    api: 'mount-data',
    options: Object.freeze([]),
  })
  return new OverlayDriver({ name, home: init.home, features, readOnly: true })
}

/** The overlay factory: first in auto-selection where the kernel and filesystem allow it. */
export const overlayDriverFactory: DriverFactory = Object.freeze({
  name: OVERLAY_DRIVER_NAME,
  priority: 10,
  async create(init: DriverInitOptions) {
    const { mountAPI } = parseOverlayOptions(init.options ?? {})
    const newHome = await access(init.home).then(
      () => false,
      () => true,
    )
    const features = await probeOverlay(init.home, mountAPI, OVERLAY_DRIVER_NAME)
    const driver = new OverlayDriver({ home: init.home, features })
    await driver.init()
    if (newHome) await recordProbeOfNewHome(init.home, features)
    return driver
  },
  openReadOnly: (init: DriverInitOptions) => openOverlayReadOnly(OVERLAY_DRIVER_NAME, init),
  holdsLayers: overlayHoldsLayers,
})

/**
 * `overlay2`: our overlay driver under Docker's name, so that a Docker data root
 * (`/var/lib/docker`) opens with `{ driver: 'overlay2', readOnly: true }` (issue 6). Never
 * auto-selected, and never opened writable (`readOnlyOnly`): a Docker root belongs
 * to dockerd, which knows nothing of our lock, and our cleanup would take its containers'
 * layers for orphans.
 */
export const overlay2DriverFactory: DriverFactory = Object.freeze({
  name: OVERLAY2_DRIVER_NAME,
  readOnlyOnly: true,
  async create(init: DriverInitOptions): Promise<OverlayDriver> {
    throw new DriverReadOnlyOnlyError(OVERLAY2_DRIVER_NAME, init.home)
  },
  openReadOnly: (init: DriverInitOptions) => openOverlayReadOnly(OVERLAY2_DRIVER_NAME, init),
  holdsLayers: overlayHoldsLayers,
})
