/**
 * RW layers (moby's `mountedLayer` and the RW half of `layerStore`): create, get, release,
 * mount counting, and the diff operations of the handles.
 *
 * A RW layer is a committed record under `mounts/<name>/` (mount ID, init ID, parent, all
 * published with one rename) plus our `references.json` (live handles, per session) and
 * `mount-state.json` (outstanding `mount()` calls, for this boot). Operations on one name are
 * serialised within this store instance (moby's per-name locker); the store lock orders them
 * across processes.
 */
import { Transform } from 'node:stream'
import type { Readable } from 'node:stream'
import createDebug from 'debug'
import { settleAll } from '../settle-all.js'
import { hasCode } from '../errors.js'
import type { Change } from '../graphdriver/index.js'
import type { ChainID, MountRecord, Transaction } from '../metadata/index.js'
import { MountNameConflictError, REFERENCES_FILE, checkMountName, initIDFor, newMountID, parseChainID } from '../metadata/index.js'
import { classifyError, RWLayerMountedError, RWLayerNotMountedError, RWLayerNotRetainedError } from './errors.js'
import type { CreateRWLayerOptions, LayerInfo, LayerInput, LayerMetadata, RWLayerReleaseResult, RWMountOptions, TarStreamOptions } from './layer.js'
import { adjust, holdersJson, readHolders, readMountCount, writeHolders, writeMountCount } from './references.js'
import { streamLayer } from './register.js'
import { RWLayerHandle } from './rw-layer.js'
import type { RWLayerOps } from './rw-layer.js'
import type { StoreCore, Victim } from './store-core.js'

const debug = createDebug('layerstore:layer')

/** See the file comment. */
export class RWLayerManager implements RWLayerOps {
  readonly #core: StoreCore
  /** Live handles made by this instance. */
  readonly #handles = new Set<RWLayerHandle>()
  /** `driver.get`s this instance holds for `mount()` calls, per RW layer name. */
  readonly #holds = new Map<string, number>()
  readonly #queues = new Map<string, Promise<unknown>>()

  constructor(core: StoreCore) {
    this.#core = core
  }

  checkOpen(): void {
    this.#core.checkOpen()
  }

  /**
   * See `LayerStore.createRWLayer`. The parent is held the way register holds it (metadata's
   * write-set-parents.ts): the write set is opened and the parent written into it under the
   * lock that checked the parent, so the live set holds it while the slow part runs
   * unlocked, and the committed record holds it after. No durable session reference is added
   * to the parent and dropped again (two atomic replacements, four fsyncs per create).
   */
  async create(name: string, parent: ChainID | null, options: CreateRWLayerOptions): Promise<RWLayerHandle> {
    checkMountName(name)
    const core = this.#core
    const { driver, metadata, session } = core
    const parentID = parent === null ? null : parseChainID(parent)
    const mountID = newMountID()
    const initID = options.initFunc ? initIDFor(mountID) : null
    const made: string[] = []
    let committed = false
    // Once set, our write set holds the parent (if any): a failure must give it back.
    let tx: Transaction | undefined
    try {
      const { parentInfo, set } = await core.exclusive(async () => {
        if (await this.#exists(name)) throw new MountNameConflictError(name)
        const info = parentID === null ? null : await core.describe(parentID)
        const set = (tx = await metadata.startTransaction())
        // The IDs are recorded before the driver makes them, so a scan never takes them for
        // orphans; the parent, under the lock that found it, so that no deletion takes it.
        await settleAll([
          set.setMountID(mountID),
          ...(initID ? [set.setInitID(initID)] : []),
          ...(parentID ? [set.setParent(parentID)] : []),
          set.setExtra(REFERENCES_FILE, holdersJson(new Map([[session.holder, 1]]))),
        ])
        return { parentInfo: info, set }
      })
      let base: string | null = parentInfo?.cacheID ?? null
      if (initID && options.initFunc) {
        await driver.createReadWrite(initID, base, {
          ...(options.mountLabel ? { mountLabel: options.mountLabel } : {}),
          ...(options.storageOpt ? { storageOpt: options.storageOpt } : {}),
        })
        made.push(initID)
        const root = await driver.get(initID, options.mountLabel ? { mountLabel: options.mountLabel } : undefined)
        try {
          await options.initFunc(root)
        } finally {
          await driver.put(initID)
        }
        base = initID
        core.crash('rw-create:after-init')
      }
      await driver.createReadWrite(mountID, base, options.storageOpt ? { storageOpt: options.storageOpt } : undefined)
      made.push(mountID)
      core.crash('rw-create:after-create')
      await core.exclusive(async () => {
        await set.commitMount(name, { syncfsPaths: [driver.home] })
        committed = true
        core.crash('rw-create:after-commit')
      })
      debug('created RW layer %s (mount %s, parent %s)', name, mountID, parentID ?? '-')
      return this.#handle({ name, mountID, ...(initID ? { initID } : {}), ...(parentID ? { parent: parentID } : {}) }, parentInfo)
    } catch (err) {
      throw classifyError(err, `create RW layer ${JSON.stringify(name)}`)
    } finally {
      if (!committed) {
        // The driver layers go first: while the write set names them, no scan deletes them.
        for (const id of made.reverse()) await driver.remove(id).catch((err: unknown) => debug('removing %s failed: %s', id, err))
        await tx?.cancel().catch((err: unknown) => debug('cancelling %s failed: %s', tx?.path, err))
        // Our set held the parent; without it, the parent may be unheld now (as after a failed
        // register). Never masks the operation's own error: a parent left behind is deleted
        // by the next release or cleanup.
        const held = tx !== undefined ? parentID : null
        if (held !== null) await core.deleteIfUnheld(held).catch((err: unknown) => debug('deleting the unheld %s failed: %s', held, err))
      }
    }
  }

  /**
   * See `LayerStore.getRWLayer`. In a read-only store the handle is not persisted (it holds
   * nothing, and only reads work through it).
   */
  async get(name: string): Promise<RWLayerHandle> {
    const core = this.#core
    if (core.readOnly) {
      const { record, parent } = await core.shared(async () => {
        const record = await core.metadata.getMount(name)
        return { record, parent: record.parent ? await core.describe(record.parent) : null }
      })
      return this.#handle(record, parent)
    }
    const { record, parent } = await core.exclusive(async () => {
      const record = await core.metadata.getMount(name)
      const holders = (await readHolders(core.metadata, { mount: name })) ?? new Map<string, number>()
      adjust(holders, core.session.holder, 1)
      await writeHolders(core.metadata, { mount: name }, holders)
      return { record, parent: record.parent ? await core.describe(record.parent) : null }
    })
    return this.#handle(record, parent)
  }

  /** See `LayerStore.releaseRWLayer`. */
  async release(handle: RWLayerHandle): Promise<RWLayerReleaseResult> {
    if (!handle.belongsTo(this) || !handle.take()) throw new RWLayerNotRetainedError(handle.name)
    const core = this.#core
    if (core.readOnly) {
      // A read-only handle persisted nothing: dropping it changes nothing either.
      this.#handles.delete(handle)
      return { removed: false, remainingHandles: 0, deleted: [] }
    }
    let plan: { remaining: number; record?: MountRecord; mark?: Awaited<ReturnType<typeof core.metadata.markMountRemoving>>; victims: Victim[] }
    try {
      plan = await this.#serial(handle.name, () =>
        core.exclusive(async () => {
          const name = handle.name
          const record = await core.metadata.getMount(name)
          const holders = (await readHolders(core.metadata, { mount: name })) ?? new Map<string, number>()
          adjust(holders, core.session.holder, -1)
          const alive = core.session.probe()
          let remaining = 0
          for (const [holder, count] of holders) if (await alive(holder)) remaining += count
          if (remaining > 0) {
            await writeHolders(core.metadata, { mount: name }, holders)
            return { remaining, victims: [] }
          }
          const mounts = await readMountCount(core.metadata, name)
          if (mounts > 0) throw new RWLayerMountedError(name, mounts)
          const mark = await core.metadata.markMountRemoving(name)
          core.crash('delete:after-mark')
          const victims = record.parent ? await core.markUnheld(await core.graph(), [record.parent]) : []
          return { remaining: 0, record, mark, victims }
        }),
      )
    } catch (err) {
      handle.restore()
      throw err
    }
    this.#handles.delete(handle)
    if (!plan.record || !plan.mark) return { removed: false, remainingHandles: plan.remaining, deleted: [] }
    try {
      await core.driver.remove(plan.record.mountID)
      if (plan.record.initID) await core.driver.remove(plan.record.initID)
      core.crash('delete:after-driver-remove')
      await core.metadata.removeMarked(plan.mark)
    } catch (err) {
      // The record is gone already; its marked remains are swept by cleanup().
      debug('removing the files of RW layer %s failed, left for cleanup: %s', handle.name, err)
    }
    await core.removeVictims(plan.victims)
    debug('removed RW layer %s', handle.name)
    return { removed: true, remainingHandles: 0, deleted: plan.victims.map((v): LayerMetadata => v.metadata) }
  }

  async mount(handle: RWLayerHandle, options: RWMountOptions): Promise<string> {
    const { driver, metadata } = this.#core
    this.#core.checkWritable('mount a RW layer')
    const getOptions = {
      ...(options.mountLabel ? { mountLabel: options.mountLabel } : {}),
      ...(options.readOnly ? { readOnly: true } : {}),
    }
    return this.#serial(handle.name, () =>
      this.#core.exclusive(async () => {
        await metadata.getMount(handle.name)
        const count = await readMountCount(metadata, handle.name)
        const path = await driver.get(handle.mountID, getOptions)
        try {
          await writeMountCount(metadata, handle.name, count + 1)
        } catch (err) {
          await driver.put(handle.mountID)
          throw err
        }
        this.#holds.set(handle.name, (this.#holds.get(handle.name) ?? 0) + 1)
        return path
      }),
    )
  }

  async unmount(handle: RWLayerHandle): Promise<void> {
    await this.#serial(handle.name, () => this.#core.exclusive(() => this.#unmountLocked(handle.name, handle.mountID)))
  }

  async #unmountLocked(name: string, mountID: string): Promise<void> {
    const { driver, metadata } = this.#core
    const count = await readMountCount(metadata, name)
    if (count < 1) throw new RWLayerNotMountedError(name)
    const held = this.#holds.get(name) ?? 0
    if (held > 0) {
      await driver.put(mountID)
      if (held === 1) this.#holds.delete(name)
      else this.#holds.set(name, held - 1)
    } else if (count === 1) {
      // The last mount was made by another process (`layerctl mount`): our driver adopts it
      // from mountinfo and unmounts it. A driver that mounts nothing has nothing to release.
      await driver.put(mountID).catch((err: unknown) => {
        if (!hasCode(err, 'ERR_DRIVER_LAYER_NOT_MOUNTED')) throw err
      })
    }
    await writeMountCount(metadata, name, count - 1)
  }

  changes(handle: RWLayerHandle): Promise<Change[]> {
    return this.#serial(handle.name, () => this.#core.driver.changes(handle.mountID, handle.diffBase))
  }

  size(handle: RWLayerHandle): Promise<number> {
    return this.#serial(handle.name, () => this.#core.driver.diffSize(handle.mountID, handle.diffBase))
  }

  async tarStream(handle: RWLayerHandle, options: TarStreamOptions): Promise<Readable> {
    const stream = await this.#serial(handle.name, () => this.#core.driver.diff(handle.mountID, handle.diffBase))
    const onProgress = options.onProgress
    if (!onProgress) return stream
    let bytes = 0
    // A counting pass-through, not a 'data' listener: that would start the flow before the
    // caller reads. Destroying the counter destroys the diff (which releases the layer).
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length
        onProgress({ bytes, inputBytes: bytes })
        callback(null, chunk)
      },
    })
    stream.on('error', (err) => counter.destroy(err))
    counter.on('close', () => stream.destroy())
    return stream.pipe(counter)
  }

  async applyDiff(handle: RWLayerHandle, tar: LayerInput): Promise<number> {
    this.#core.checkWritable('apply a diff to a RW layer')
    return this.#serial(handle.name, async () => {
      const { size } = await streamLayer(tar, (members) => this.#core.driver.applyDiff(handle.mountID, handle.diffBase, members))
      return size
    })
  }

  metadata(handle: RWLayerHandle): Promise<Readonly<Record<string, string>>> {
    return this.#core.driver.getMetadata(handle.mountID)
  }

  /**
   * At close: gives back this instance's mounts (unless `keepMounts`) and its handles'
   * references. The RW layers themselves stay.
   */
  async close(keepMounts: boolean): Promise<void> {
    const core = this.#core
    const names = new Map<string, number>()
    for (const handle of this.#handles) {
      handle.take()
      names.set(handle.name, (names.get(handle.name) ?? 0) + 1)
    }
    this.#handles.clear()
    // A read-only store mounted nothing and persisted no handle.
    if (core.readOnly) return
    await core.exclusiveWhileClosing(async () => {
      if (!keepMounts) {
        for (const [name, held] of [...this.#holds]) {
          const record = await core.metadata.getMount(name).catch(() => undefined)
          for (let i = 0; record && i < held; i++) {
            await this.#unmountLocked(name, record.mountID).catch((err: unknown) => debug('unmounting %s at close failed: %s', name, err))
          }
        }
      }
      for (const [name, count] of names) {
        const holders = await readHolders(core.metadata, { mount: name }).catch(() => undefined)
        if (!holders) continue
        adjust(holders, core.session.holder, -count)
        await writeHolders(core.metadata, { mount: name }, holders).catch((err: unknown) => debug('dropping handles of %s failed: %s', name, err))
      }
    })
  }

  /** Names of every committed RW layer. */
  async list(): Promise<string[]> {
    return this.#core.shared(async () => [...(await this.#core.metadata.list()).mounts])
  }

  #handle(record: Pick<MountRecord, 'name' | 'mountID' | 'initID' | 'parent'>, parent: LayerInfo | null): RWLayerHandle {
    const handle = new RWLayerHandle(this, { name: record.name, mountID: record.mountID, initID: record.initID ?? null, parent })
    this.#handles.add(handle)
    return handle
  }

  async #exists(name: string): Promise<boolean> {
    try {
      await this.#core.metadata.getMount(name)
      return true
    } catch (err) {
      if (hasCode(err, 'ERR_MOUNT_DOES_NOT_EXIST')) return false
      // A record that does not validate still takes the name (cleanup removes it).
      if (hasCode(err, 'ERR_METADATA_CORRUPT')) return true
      throw err
    }
  }

  // One promise chain per RW layer name: each operation waits for the previous one.
  #serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#queues.get(name) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.then(
      () => undefined,
      () => undefined,
    )
    this.#queues.set(name, tail)
    void tail.then(() => {
      if (this.#queues.get(name) === tail) this.#queues.delete(name)
    })
    return run
  }
}

