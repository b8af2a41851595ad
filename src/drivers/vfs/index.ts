/**
 * The vfs driver's factory: options parsing and wiring. The driver itself is vfs-driver.ts;
 * its copier is graphdriver's `copyDir`, shared with bind.
 *
 * Driver options (`--driver-opt k=v`):
 * - `vfs.ro_mounts=true|false`: serve read-only layers through read-only bind mounts.
 *   Default: probed at start (one bind mount of a scratch dir): true where this process may
 *   mount (CAP_SYS_ADMIN), else false, and `capabilities.readOnlyLayers` says which.
 */
import type { DriverFactory, DriverInitOptions } from '../../graphdriver/index.js'
import { InvalidDriverOptionError, naiveDiff } from '../../graphdriver/index.js'
import { canBindReadOnly, initVfsHome, VFS_DRIVER_NAME, VfsDriver, vfsHoldsLayers } from './vfs-driver.js'

export { canBindReadOnly, initVfsHome, VfsDriver, VFS_DRIVER_NAME, vfsHoldsLayers } from './vfs-driver.js'
export type { VfsDriverOptions } from './vfs-driver.js'

/** The vfs factory: last in auto-selection (it works everywhere, at a cost). */
export const vfsDriverFactory: DriverFactory = Object.freeze({
  name: VFS_DRIVER_NAME,
  priority: 100,
  async create(init: DriverInitOptions) {
    const asked = parseOptions(init.options ?? {})
    // The skeleton first: the probe mounts a scratch dir inside it.
    await initVfsHome(init.home)
    const readOnlyMounts = asked ?? (await canBindReadOnly(init.home))
    return naiveDiff(new VfsDriver({ home: init.home, readOnlyMounts }))
  },
  /** No skeleton, no probe mount: `get` hands out plain directories (see `VfsDriver`). */
  async openReadOnly(init: DriverInitOptions) {
    parseOptions(init.options ?? {})
    return naiveDiff(new VfsDriver({ home: init.home, readOnlyMounts: false, readOnly: true }))
  },
  holdsLayers: vfsHoldsLayers,
})

/** The `vfs.ro_mounts` choice, or undefined when not given (then probed). */
function parseOptions(options: Readonly<Record<string, string>>): boolean | undefined {
  let readOnlyMounts: boolean | undefined
  for (const [key, value] of Object.entries(options)) {
    if (key !== 'vfs.ro_mounts') throw new InvalidDriverOptionError(VFS_DRIVER_NAME, key, 'unknown option for vfs')
    if (value !== 'true' && value !== 'false') {
      throw new InvalidDriverOptionError(VFS_DRIVER_NAME, `${key}=${value}`, 'expected true or false')
    }
    readOnlyMounts = value === 'true'
  }
  return readOnlyMounts
}
