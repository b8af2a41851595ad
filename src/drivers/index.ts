/**
 * The built-in drivers, listed explicitly (no import side effects): one line per driver.
 * `new DriverRegistry(builtinDrivers)` makes a registry holding them all.
 */
import type { DriverFactory } from '../graphdriver/index.js'
import { vfsDriverFactory } from './vfs/index.js'
import { overlayDriverFactory } from './overlay/index.js'
import { bindDriverFactory } from './bind/index.js'

/** Every built-in driver factory, in registration order. */
export const builtinDrivers: readonly DriverFactory[] = Object.freeze([
  vfsDriverFactory,
  overlayDriverFactory,
  bindDriverFactory,
])

export { vfsDriverFactory } from './vfs/index.js'
export { overlayDriverFactory } from './overlay/index.js'
export { bindDriverFactory } from './bind/index.js'
