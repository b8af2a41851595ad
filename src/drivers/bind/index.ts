/**
 * The bind driver's factory: options and wiring. The driver is bind-driver.ts, its tree
 * flattener flatten.ts, its probes probe.ts. The bind driver takes no driver options.
 */
import type { DriverFactory, DriverInitOptions } from '../../graphdriver/index.js'
import { InvalidDriverOptionError } from '../../graphdriver/index.js'
import { BIND_DRIVER_NAME, BindDriver, bindHoldsLayers } from './bind-driver.js'
import { probeBind } from './probe.js'

export { BindDriver, BIND_DRIVER_NAME, bindHoldsLayers } from './bind-driver.js'
export type { BindDriverOptions } from './bind-driver.js'
export { BindMountError } from './errors.js'
export { flattenLayers } from './flatten.js'
export type { FlattenStats } from './flatten.js'
export { probeBind } from './probe.js'

/** The bind factory: after overlay, before vfs in auto-selection (it needs root). */
export const bindDriverFactory: DriverFactory = Object.freeze({
  name: BIND_DRIVER_NAME,
  priority: 50,
  async create(init: DriverInitOptions) {
    const key = Object.keys(init.options ?? {})[0]
    if (key !== undefined) throw new InvalidDriverOptionError(BIND_DRIVER_NAME, key, 'unknown option for bind (it takes none)')
    await probeBind(init.home, BIND_DRIVER_NAME)
    const driver = new BindDriver({ home: init.home })
    await driver.init()
    return driver
  },
  /** No probe mount, no scratch sweep: `get` hands out the layer trees themselves. */
  async openReadOnly(init: DriverInitOptions) {
    const key = Object.keys(init.options ?? {})[0]
    if (key !== undefined) throw new InvalidDriverOptionError(BIND_DRIVER_NAME, key, 'unknown option for bind (it takes none)')
    return new BindDriver({ home: init.home, readOnly: true })
  },
  holdsLayers: bindHoldsLayers,
})
