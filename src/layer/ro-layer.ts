/**
 * The handle of a read-only layer (moby's `referencedCacheLayer`): one per `register`/`get`
 * call, so that `release(handle)` knows which reference let go, and a second release of the
 * same handle is an error rather than a silent success.
 */
import type { Readable } from 'node:stream'
import type { CacheID, ChainID, DiffID, JsonObject } from '../metadata/index.js'
import { LayerNotRetainedError } from './errors.js'
import type { Layer, LayerInfo, TarStreamOptions } from './layer.js'
import type { StoreCore } from './store-core.js'
import { verifiedTarStream } from './tar-stream.js'

/** See the file comment. Made only by the store; callers see the `Layer` interface. */
export class ROLayerHandle implements Layer {
  readonly chainID: ChainID
  readonly diffID: DiffID
  readonly parent: LayerInfo | null
  readonly size: number
  readonly diffSize: number
  readonly depth: number
  readonly cacheID: CacheID
  readonly descriptor?: JsonObject
  readonly holder: string
  readonly #core: StoreCore
  #retained = true

  constructor(core: StoreCore, info: LayerInfo, holder: string) {
    this.chainID = info.chainID
    this.diffID = info.diffID
    this.parent = info.parent
    this.size = info.size
    this.diffSize = info.diffSize
    this.depth = info.depth
    this.cacheID = info.cacheID
    if (info.descriptor) this.descriptor = info.descriptor
    this.holder = holder
    this.#core = core
  }

  get retained(): boolean {
    return this.#retained && !this.#core.closed
  }

  /** True when this handle belongs to `core` (a store instance only releases its own). */
  belongsTo(core: StoreCore): boolean {
    return this.#core === core
  }

  /**
   * Marks the handle released; returns false if it already was. The store calls this before
   * persisting the release and {@link restore}s it if that fails.
   */
  take(): boolean {
    if (!this.#retained) return false
    this.#retained = false
    return true
  }

  /** Undoes {@link take} after a failed release. */
  restore(): void {
    this.#retained = true
  }

  async tarStream(options?: TarStreamOptions): Promise<Readable> {
    this.#check()
    return verifiedTarStream(this.#core.metadata, this.#core.driver, this, options)
  }

  async metadata(): Promise<Readonly<Record<string, string>>> {
    this.#check()
    return this.#core.driver.getMetadata(this.cacheID)
  }

  #check(): void {
    this.#core.checkOpen()
    if (!this.#retained) throw new LayerNotRetainedError(this.chainID, this.holder)
  }
}
