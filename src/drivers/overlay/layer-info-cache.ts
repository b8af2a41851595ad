/**
 * What the driver knows of committed layers, so that a register on a parent does not re-read
 * the parent's `link`, `lower` and `committed` three times (create, then both sides of the
 * apply's parent check), nor every ancestor's again for each child.
 *
 * Only committed layers are kept: their `link` and `lower` never change after the create
 * that wrote them, and the marker is never taken away. An entry is keyed by the identity of
 * the layer's directory as one `stat` gives it (device, inode, ctime): a layer removed and
 * made again under the same ID, by this process or another, has a new directory, and a
 * directory whose entries changed (a marker or a `merged/` added) has a new ctime, so such an
 * entry is read again, never trusted. A lookup costs that one `stat`, which also answers
 * whether the layer exists.
 */
import { statSync } from 'node:fs'
import type { BigIntStats } from 'node:fs'
import { hasErrno } from '../../graphdriver/index.js'
import type { OverlayLayerInfo } from './layer-files.js'
import { readLayerInfo } from './layer-files.js'
import type { OverlayLayout } from './layout.js'

// Enough for several 125-layer chains; past it the map starts over (entries are re-read).
const MAX_ENTRIES = 4096

interface Entry {
  readonly key: string
  readonly info: OverlayLayerInfo
}

/** See the file comment. One per driver instance. */
export class LayerInfoCache {
  readonly #layout: OverlayLayout
  readonly #entries = new Map<string, Entry>()

  constructor(layout: OverlayLayout) {
    this.#layout = layout
  }

  /**
   * The layer's info, or undefined when its directory does not exist. Rejects as
   * `readLayerInfo` does (`OverlayLayerCorruptError`) for a directory with a bad `link` or
   * `lower`.
   */
  async find(id: string): Promise<OverlayLayerInfo | undefined> {
    const st = this.#stat(id)
    if (st === undefined) {
      this.#entries.delete(id)
      return undefined
    }
    const key = keyOf(st)
    const entry = this.#entries.get(id)
    if (entry?.key === key) return entry.info
    // The key was taken before the reads: whatever changes meanwhile gives a new key.
    const info = await readLayerInfo(this.#layout, id)
    this.#keep(id, key, info)
    return info
  }

  /**
   * Records the info of a layer this driver just made (its directory in place), so that
   * the apply that follows need not read it back. Costs one `stat`; never fails (a layer
   * not remembered is read when asked for).
   */
  remember(id: string, info: OverlayLayerInfo): void {
    let st: BigIntStats | undefined
    try {
      st = this.#stat(id)
    } catch {
      return
    }
    if (st !== undefined) this.#keep(id, keyOf(st), info)
  }

  /** Drops what is known of `id` (before it is removed). */
  forget(id: string): void {
    this.#entries.delete(id)
  }

  #keep(id: string, key: string, info: OverlayLayerInfo): void {
    if (!info.committed) {
      this.#entries.delete(id)
      return
    }
    if (this.#entries.size >= MAX_ENTRIES) this.#entries.clear()
    // Shared by every caller from now on: frozen, so that none can change another's copy.
    this.#entries.set(id, { key, info: Object.freeze({ ...info, lowers: Object.freeze([...info.lowers]) }) })
  }

  /**
   * Synchronous: a stat of a name the kernel has cached costs microseconds, less than a round
   * trip through the thread pool, and registering a chain asks several per layer (issue #6).
   */
  #stat(id: string): BigIntStats | undefined {
    try {
      const st = statSync(this.#layout.layerDir(id), { bigint: true, throwIfNoEntry: false })
      return st?.isDirectory() ? st : undefined
    } catch (err) {
      if (hasErrno(err, 'ENOTDIR')) return undefined
      throw err
    }
  }
}

function keyOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.ctimeNs}`
}
