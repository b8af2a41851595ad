/**
 * The overlay driver's factory: options parsing, probing and wiring. The driver is
 * overlay-driver.ts (with its diff half in overlay-diff.ts), its probes probe.ts, its mount
 * planning mount-plan.ts and mounting mounts.ts.
 *
 * Driver options (`--driver-opt k=v`):
 * - `overlay.mount_api=auto|lowerdir+|mount-data`: how layers are mounted. `auto` (default)
 *   uses the new mount API with one `lowerdir+` per layer where the kernel has it (6.8+),
 *   else mount(2) with short `l/` links, relative to home when absolute paths do not fit one
 *   page. `mount-data` forces the latter (for old kernels, and to test it).
 */
import type { DriverFactory, DriverInitOptions } from '../../graphdriver/index.js'
import { InvalidDriverOptionError } from '../../graphdriver/index.js'
import { overlayHoldsLayers } from './layer-files.js'
import { OVERLAY_DRIVER_NAME, OverlayDriver } from './overlay-driver.js'
import type { OverlayMountAPI } from './probe.js'
import { probeOverlay } from './probe.js'

export { OverlayDriver, OVERLAY_DRIVER_NAME, MAX_LOWERS } from './overlay-driver.js'
export type { OverlayDriverOptions } from './overlay-driver.js'
export { overlayHoldsLayers, readLayerInfo, resolveLowerDirs } from './layer-files.js'
export type { OverlayLayerInfo } from './layer-files.js'
export * from './errors.js'
export * from './layout.js'
export * from './mount-plan.js'
export { probeOverlay, backingFsName } from './probe.js'
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

/** The overlay factory: first in auto-selection where the kernel and filesystem allow it. */
export const overlayDriverFactory: DriverFactory = Object.freeze({
  name: OVERLAY_DRIVER_NAME,
  priority: 10,
  async create(init: DriverInitOptions) {
    const { mountAPI } = parseOverlayOptions(init.options ?? {})
    const features = await probeOverlay(init.home, mountAPI, OVERLAY_DRIVER_NAME)
    const driver = new OverlayDriver({ home: init.home, features })
    await driver.init()
    return driver
  },
  holdsLayers: overlayHoldsLayers,
})
