/**
 * The built-in drivers, listed explicitly (no import side effects): one line per driver.
 * `new DriverRegistry(builtinDrivers)` makes a registry holding them all.
 */
import type { DriverFactory } from '../graphdriver/index.js'
import { vfsDriverFactory } from './vfs/index.js'
import { overlay2DriverFactory, overlayDriverFactory } from './overlay/index.js'
import { bindDriverFactory } from './bind/index.js'

/** Every built-in driver factory, in registration order. */
export const builtinDrivers: readonly DriverFactory[] = Object.freeze([
  vfsDriverFactory,
  overlayDriverFactory,
  bindDriverFactory,
])

/**
 * Drivers that only read other engines' roots: `overlay2`, a Docker data root's layout,
 * opened read-only only. Apart from {@link builtinDrivers}, which every store can be made with.
 */
export const dockerCompatDrivers: readonly DriverFactory[] = Object.freeze([overlay2DriverFactory])

/**
 * What a store's default registry holds: {@link builtinDrivers} and
 * {@link dockerCompatDrivers}, so that a Docker root is recognised (and refused writable).
 */
export const defaultDrivers: readonly DriverFactory[] = Object.freeze([...builtinDrivers, ...dockerCompatDrivers])

export { vfsDriverFactory } from './vfs/index.js'
export { overlay2DriverFactory, overlayDriverFactory } from './overlay/index.js'
export { bindDriverFactory } from './bind/index.js'
