/**
 * The handle of a RW layer (moby's `referencedRWLayer`): one per `createRWLayer`/`getRWLayer`
 * call. Everything it does goes through the store's RW layer manager, which serialises the
 * operations on one RW layer and keeps its mount count.
 */
import type { Readable } from 'node:stream'
import type { Change } from '../graphdriver/index.js'
import type { MountID } from '../metadata/index.js'
import { RWLayerNotRetainedError } from './errors.js'
import type { LayerInfo, LayerInput, RWLayer, RWMountOptions, TarStreamOptions } from './layer.js'

/** What a RW handle asks of its manager. */
export interface RWLayerOps {
  checkOpen(): void
  mount(handle: RWLayerHandle, options: RWMountOptions): Promise<string>
  unmount(handle: RWLayerHandle): Promise<void>
  changes(handle: RWLayerHandle): Promise<Change[]>
  size(handle: RWLayerHandle): Promise<number>
  tarStream(handle: RWLayerHandle, options: TarStreamOptions): Promise<Readable>
  applyDiff(handle: RWLayerHandle, tar: LayerInput): Promise<number>
  metadata(handle: RWLayerHandle): Promise<Readonly<Record<string, string>>>
}

/** The facts of a RW layer a handle carries. */
export interface RWLayerFacts {
  readonly name: string
  readonly mountID: MountID
  readonly initID: MountID | null
  readonly parent: LayerInfo | null
}

/** See the file comment. Made only by the store; callers see the `RWLayer` interface. */
export class RWLayerHandle implements RWLayer {
  readonly name: string
  readonly mountID: MountID
  readonly initID: MountID | null
  readonly parent: LayerInfo | null
  readonly #ops: RWLayerOps
  #retained = true

  constructor(ops: RWLayerOps, facts: RWLayerFacts) {
    this.name = facts.name
    this.mountID = facts.mountID
    this.initID = facts.initID
    this.parent = facts.parent
    this.#ops = ops
  }

  get retained(): boolean {
    return this.#retained
  }

  /** The driver layer diffs are taken against: the init layer, else the parent's files. */
  get diffBase(): string | null {
    return this.initID ?? this.parent?.cacheID ?? null
  }

  /** True when this handle was made by `ops` (a manager only releases its own handles). */
  belongsTo(ops: RWLayerOps): boolean {
    return this.#ops === ops
  }

  /** Marks the handle released; false if it already was. */
  take(): boolean {
    if (!this.#retained) return false
    this.#retained = false
    return true
  }

  /** Undoes {@link take} after a failed release. */
  restore(): void {
    this.#retained = true
  }

  mount(options: RWMountOptions | string = {}): Promise<string> {
    const normalized: RWMountOptions = typeof options === 'string' ? { mountLabel: options } : options
    return this.#run(() => this.#ops.mount(this, normalized))
  }

  unmount(): Promise<void> {
    return this.#run(() => this.#ops.unmount(this))
  }

  changes(): Promise<Change[]> {
    return this.#run(() => this.#ops.changes(this))
  }

  size(): Promise<number> {
    return this.#run(() => this.#ops.size(this))
  }

  tarStream(options: TarStreamOptions = {}): Promise<Readable> {
    return this.#run(() => this.#ops.tarStream(this, options))
  }

  applyDiff(tar: LayerInput): Promise<number> {
    return this.#run(() => this.#ops.applyDiff(this, tar))
  }

  metadata(): Promise<Readonly<Record<string, string>>> {
    return this.#run(() => this.#ops.metadata(this))
  }

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    this.#ops.checkOpen()
    if (!this.#retained) throw new RWLayerNotRetainedError(this.name)
    return fn()
  }
}
