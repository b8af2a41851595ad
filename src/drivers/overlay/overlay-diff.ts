/**
 * The overlay driver's diff half. A layer's `diff/` is the overlayfs upper dir, which records
 * exactly what the layer changed (with `redirect_dir=off` and `metacopy=off`, see probe.ts),
 * so, when the layer asked about is compared with its own parent:
 *
 * - `applyDiff` extracts straight into the empty `diff/`, whiteouts as overlayfs stores
 *   them (0/0 character devices, `trusted.overlay.opaque=y`); no mount;
 * - `changes` reads the upper dir against the lower dirs (`overlayChanges`), which, unlike
 *   moby's overlay walker (dropped in moby/moby#37313), lists what an opaque dir hides;
 * - `diff` exports those changes from the upper dir, an opaque dir as `.wh..wh..opq`;
 * - `diffSize` sums the sizes of the upper's added and modified non-directories;
 * - `diffGetter` reads member files from `diff/` without mounting (moby has none and mounts
 *   every layer it reassembles).
 *
 * Against any other layer (a squash across several layers, or a full export of a layer that
 * has parents) the answer is not in one upper dir: those calls go to `naiveDiff`, walking
 * the mounted views, as moby's overlay2 does.
 */
import type { Readable } from 'node:stream'
import { applyLayer, exportChanges, overlayChanges } from '../../archive/index.js'
import type { Change } from '../../archive/index.js'
import { changesSize, LayerNotFoundError } from '../../graphdriver/index.js'
import type { DiffGetterDriver, DriverLayerID } from '../../graphdriver/index.js'
import type { FileGetter, TarMember } from '../../tarsplit/index.js'
import { directoryGetter } from '../../tarsplit/index.js'
import { lowerEntry } from './layout.js'
import type { OverlayDriver } from './overlay-driver.js'

/** The native diff operations of one driver, with `naive` for what is not native. */
export class OverlayDiff {
  readonly #driver: OverlayDriver
  readonly #naive: DiffGetterDriver

  constructor(driver: OverlayDriver, naive: DiffGetterDriver) {
    this.#driver = driver
    this.#naive = naive
  }

  /** See `DiffDriver.applyDiff`; native when `parent` is the layer's parent. */
  async applyDiff(id: DriverLayerID, parent: DriverLayerID | null, members: AsyncIterable<TarMember>): Promise<number> {
    if (!(await this.#isParent(id, parent))) return this.#naive.applyDiff(id, parent, members)
    const { size } = await applyLayer(members, this.#driver.layout.diffDir(id), { whiteouts: 'overlay' })
    return size
  }

  /** See `DiffDriver.changes`; from the upper dir when `parent` is the layer's parent. */
  async changes(id: DriverLayerID, parent: DriverLayerID | null): Promise<Change[]> {
    if (!(await this.#isParent(id, parent))) return this.#naive.changes(id, parent)
    return this.#upperChanges(id)
  }

  /** See `DiffDriver.diff`; exported from the upper dir when `parent` is the layer's parent. */
  async diff(id: DriverLayerID, parent: DriverLayerID | null): Promise<Readable> {
    if (!(await this.#isParent(id, parent))) return this.#naive.diff(id, parent)
    return exportChanges(this.#driver.layout.diffDir(id), await this.#upperChanges(id))
  }

  /** See `DiffDriver.diffSize`. */
  async diffSize(id: DriverLayerID, parent: DriverLayerID | null): Promise<number> {
    if (!(await this.#isParent(id, parent))) return this.#naive.diffSize(id, parent)
    return changesSize(this.#driver.layout.diffDir(id), await this.#upperChanges(id))
  }

  /** The layer's own files by member name, read from `diff/`; no mount, nothing to release. */
  async diffGetter(id: DriverLayerID): Promise<{ readonly getter: FileGetter; close(): Promise<void> }> {
    if (!(await this.#driver.exists(id))) throw new LayerNotFoundError(this.#driver.name, id)
    return { getter: directoryGetter(this.#driver.layout.diffDir(id)), close: async () => undefined }
  }

  async #upperChanges(id: string): Promise<Change[]> {
    const info = await this.#driver.layerInfo(id)
    return overlayChanges(this.#driver.layout.diffDir(id), await this.#driver.lowerDirs(info))
  }

  // moby's isParent: the layer's first lower is `parent`'s link (none for a null parent). Both
  // infos come from the driver's cache on a register, which has just read them.
  async #isParent(id: string, parent: string | null): Promise<boolean> {
    const [info, parentInfo] = await Promise.all([
      this.#driver.findLayerInfo(id),
      parent === null ? null : this.#driver.findLayerInfo(parent),
    ])
    if (!info) throw new LayerNotFoundError(this.#driver.name, id)
    if (parent === null) return info.lowers.length === 0
    if (!parentInfo) throw new LayerNotFoundError(this.#driver.name, parent, 'parent')
    return info.lowers[0] === lowerEntry(parentInfo.link)
  }
}
