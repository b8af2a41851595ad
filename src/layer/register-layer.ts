/**
 * One layer of a register, up to its commit (moby's `registerWithDescriptor`, reordered for
 * crash safety and short locks); register-chain.ts publishes what this prepares.
 *
 * 1. Under the lock (a committed parent): the parent must exist and be shallower than the
 *    limit; a transaction is opened and the parent written into it, so that the live write
 *    set holds the parent (as the committed child will; see metadata's write-set-parents.ts)
 *    while we work unlocked. That hold costs no durable write: it dies with the process, as
 *    the set does. A parent prepared by the same chain is ours alone: no lock is needed.
 * 2. Record the new cache ID in the set (beside the parent, under the same lock) **before**
 *    the driver creates that directory (a concurrent orphan scan then leaves it alone, and
 *    after a crash finds it). Without a diff ID to look the layer up by, the input is first
 *    compared with the registered layers it could be (match-existing.ts): if it is one, that
 *    one is referenced, the set cancelled, and nothing made. Outside the lock: create; stream
 *    the input once into the driver and the tar-split, starting the writeback of what the
 *    driver wrote as it goes (metadata's flush-ahead.ts), so the commit's syncfs is short.
 * 3. Write `diff`, `size`, our `references.json` (the caller's holder) into the set. These
 *    writes and the end of the tar-split are not waited for here (`written`): the publish
 *    waits for them, so a chain makes its next layer while they finish.
 *
 * On failure everything of its own is removed: the driver layer first (while the write set
 * names it, no scan deletes it), then the set.
 */
import createDebug from 'debug'
import { settleAll } from '../settle-all.js'
import type { CacheID, ChainID, DiffID, JsonObject, Transaction } from '../metadata/index.js'
import { FlushAhead, REFERENCES_FILE, newCacheID } from '../metadata/index.js'
import { chainIDOf } from './chain-id.js'
import { LayerDigestMismatchError, MaxDepthExceededError } from './errors.js'
import type { LayerInfo, LayerInput, StreamProgress } from './layer.js'
import { holdersJson } from './references.js'
import { openInput, streamLayer } from './register.js'
import { matchExisting } from './match-existing.js'
import type { MatchResult } from './match-existing.js'
import type { OpenedInput } from './register.js'
import type { StoreCore } from './store-core.js'

const debug = createDebug('layerstore:layer')

/**
 * The layer a prepared layer is made on: a committed one (checked under the lock), or an
 * earlier layer of the same chain, prepared but not committed yet (ours alone).
 */
export type ParentLayer = { readonly committed: ChainID } | { readonly pending: LayerInfo }

/** A layer applied into its own driver layer and described in an open write set. */
export interface PreparedLayer {
  readonly tx: Transaction
  readonly chainID: ChainID
  /** How it will be described once committed (its depth counts a pending parent). */
  readonly info: LayerInfo
  /** The driver layer it was made on, if any. */
  readonly parentCacheID: CacheID | null
  /**
   * Settles once the tar-split and the record files are written and the background writeback
   * of the layer's files (metadata's flush-ahead.ts) is done (rejects with their first
   * failure; never unhandled). Await it before the commit, and before a discard.
   */
  readonly written: Promise<void>
  /** Uncompressed bytes read and how they were compressed (for the log). */
  readonly bytes: number
  readonly compression: string
}

/** What {@link prepareLayer} needs besides the input. */
export interface PrepareOptions {
  readonly holder: string
  readonly diffID?: DiffID
  readonly descriptor?: JsonObject
  readonly onProgress?: (progress: StreamProgress) => void
  readonly signal?: AbortSignal
  /**
   * Given when the layer may be registered already (no diff ID to look it up by): the input
   * is first compared with the layers it could be (match-existing.ts), and when it is one of
   * them, this takes the reference on it (undefined if it is gone meanwhile).
   */
  readonly referenceExisting?: (chainID: ChainID) => Promise<LayerInfo | undefined>
}

/** What {@link prepareLayer} found the input to be: a layer registered already, referenced. */
export interface ExistingLayer {
  readonly existing: LayerInfo
}

/** Destroys an input that will not be read (a stream would otherwise hold its source open). */
export function discard(input: LayerInput): void {
  const destroy = (input as { destroy?: unknown }).destroy
  if (typeof destroy === 'function') (destroy as () => void).call(input)
}

/**
 * Steps 1–3 of the file comment for `tar` on `parent`. `onHold` is called, under the lock,
 * once the write set holds a committed parent (the caller then owes it a check after a
 * failure: see `StoreCore.deleteIfUnheld`).
 *
 * @throws MaxDepthExceededError, LayerDoesNotExistError (a committed parent gone),
 *   LayerDigestMismatchError, the input's and the driver's errors. Nothing of this layer is
 *   left behind.
 */
export async function prepareLayer(
  core: StoreCore,
  tar: LayerInput,
  parent: ParentLayer | null,
  options: PrepareOptions,
  onHold: () => void,
): Promise<PreparedLayer | ExistingLayer> {
  const { driver, metadata } = core
  const cacheID = newCacheID()
  let created = false
  let tx: Transaction | undefined
  let pending: Promise<unknown> | undefined
  let match: MatchResult | undefined
  try {
    const checkDepth = (info: LayerInfo): void => {
      if (info.depth >= core.maxDepth) throw new MaxDepthExceededError(info.chainID, info.depth, core.maxDepth)
    }
    let parentInfo: LayerInfo | null
    let set: Transaction
    if (parent !== null && 'committed' in parent) {
      ;({ parentInfo, set } = await core.exclusive(async () => {
        const info = await core.describe(parent.committed)
        checkDepth(info)
        const opened = (tx = await metadata.startTransaction())
        onHold()
        await settleAll([opened.setParent(info.chainID), opened.setCacheID(cacheID)])
        return { parentInfo: info, set: opened }
      }))
    } else {
      if (parent !== null) checkDepth(parent.pending)
      parentInfo = parent?.pending ?? null
      set = tx = await metadata.startTransaction()
      await settleAll([...(parentInfo ? [set.setParent(parentInfo.chainID)] : []), set.setCacheID(cacheID)])
    }
    let input: LayerInput | OpenedInput = tar
    if (options.referenceExisting) {
      // Read after the parent is held: a release elsewhere cannot delete it meanwhile.
      const opened = await openInput(tar, {
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      })
      match = await matchExisting(core, opened, parentInfo?.chainID ?? null)
      const existing = match.existing === undefined ? undefined : await options.referenceExisting(match.existing)
      if (existing) {
        await set.cancel()
        return { existing }
      }
      input = match.input
    }
    const parentCacheID = parentInfo?.cacheID ?? null
    await driver.create(cacheID, parentCacheID)
    created = true
    core.crash('register:after-create')
    const packer = set.tarSplitPacker()
    // The commit's syncfs will find most of the layer written back already (see flush-ahead.ts).
    const ahead = new FlushAhead(driver.home)
    let streamed
    try {
      streamed = await streamLayer(input, (members) => driver.applyDiff(cacheID, parentCacheID, members), {
        sink: packer,
        onApplying: (bytes) => ahead.progress(bytes),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      })
    } catch (err) {
      // Close the tar-split file; the transaction is cancelled below.
      await packer.finish().catch(() => undefined)
      await ahead.settle().catch(() => undefined)
      throw err
    }
    // The tar-split's end and the record files are independent writes, which the publish
    // waits for (`written`): a chain makes its next layer meanwhile.
    const tarSplitDone = packer.finish()
    tarSplitDone.catch(() => undefined)
    pending = tarSplitDone
    core.crash('register:after-apply')
    if (options.diffID !== undefined && streamed.diffID !== options.diffID) {
      throw new LayerDigestMismatchError(options.diffID, streamed.diffID, 'register')
    }
    const chainID = chainIDOf(parentInfo?.chainID ?? null, streamed.diffID)
    const written = settleAll([
      tarSplitDone,
      ahead.settle(),
      set.setDiffID(streamed.diffID),
      set.setSize(streamed.size),
      ...(options.descriptor ? [set.setDescriptor(options.descriptor)] : []),
      set.setExtra(REFERENCES_FILE, holdersJson(new Map([[options.holder, 1]]))),
    ]).then(() => core.crash('register:before-commit'))
    written.catch(() => undefined)
    pending = written
    const record = {
      chainID,
      diffID: streamed.diffID,
      size: streamed.size,
      cacheID,
      ...(parentInfo ? { parent: parentInfo.chainID } : {}),
      // A copy, as a read would give: the caller may change its object later.
      ...(options.descriptor ? { descriptor: JSON.parse(JSON.stringify(options.descriptor)) as JsonObject } : {}),
    }
    // Described without reading it back (a discarded one's cache ID never comes back).
    const info = core.describeRecord(record, parentInfo)
    return { tx: set, chainID, info, parentCacheID, written, bytes: streamed.bytes, compression: streamed.compression }
  } catch (err) {
    // Writes still in flight end first: the set is removed under none of them.
    await pending?.catch(() => undefined)
    if (created) await driver.remove(cacheID).catch((e: unknown) => debug('removing %s failed: %s', cacheID, e))
    await tx?.cancel().catch((e: unknown) => debug('cancelling %s failed: %s', tx?.path, e))
    throw err
  } finally {
    discard(tar)
    // After the reference above, and after the rebuilt input was read: the holds keep the
    // candidates until then.
    await match?.release()
  }
}

/** Removes a prepared layer that will not be committed (the driver layer first, as above). */
export async function discardPrepared(core: StoreCore, layer: PreparedLayer): Promise<void> {
  const { cacheID } = layer.info
  await layer.written.catch(() => undefined)
  await core.driver.remove(cacheID).catch((err: unknown) => debug('removing %s failed: %s', cacheID, err))
  await layer.tx.cancel().catch((err: unknown) => debug('cancelling %s failed: %s', layer.tx.path, err))
}
