/**
 * `LayerStore.register`, step by step (moby's `registerWithDescriptor`, reordered for crash
 * safety and short locks):
 *
 * 1. A known diff ID whose chain ID exists: add a reference, leave the input unread. Done.
 * 2. Under the lock: the parent must exist and be shallower than the limit; a transaction is
 *    opened and the parent written into it, so that the live write set holds the parent (as
 *    the committed child will; see metadata's write-set-parents.ts) while we work unlocked.
 *    That hold costs no durable write: it dies with the process, as the set does.
 * 3. Record the new cache ID in the set (beside the parent, under the same lock) **before**
 *    the driver creates that directory (a concurrent orphan scan then leaves it alone, and
 *    after a crash finds it). Outside the lock: create; stream the input once into the
 *    driver and the tar-split.
 * 4. Write `diff`, `size`, our `references.json` (the caller's holder) into the set.
 * 5. Under the lock: if the chain ID appeared meanwhile (or existed), reference it and discard
 *    ours (that layer holds the parent now); else commit (one syncfs of the driver's
 *    filesystem makes the data and the set durable). Our new record holds the parent.
 * 6. On any failure: remove the driver layer, cancel the transaction, and delete the parent
 *    if nothing else holds it any more (as moby's release of the parent would).
 */
import createDebug from 'debug'
import { settleAll } from '../settle-all.js'
import type { ChainID, JsonObject, Transaction } from '../metadata/index.js'
import { REFERENCES_FILE, newCacheID, parseChainID, parseDiffID } from '../metadata/index.js'
import { chainIDOf } from './chain-id.js'
import { classifyError, LayerDigestMismatchError, MaxDepthExceededError } from './errors.js'
import type { LayerInfo, LayerInput, RegisterOptions } from './layer.js'
import { holdersJson } from './references.js'
import { streamLayer } from './register.js'
import type { StreamedLayer } from './register.js'
import type { StoreCore } from './store-core.js'

const debug = createDebug('layerstore:layer')

/** Destroys an input that will not be read (a stream would otherwise hold its source open). */
function discard(input: LayerInput): void {
  const destroy = (input as { destroy?: unknown }).destroy
  if (typeof destroy === 'function') (destroy as () => void).call(input)
}


/** What {@link registerLayer} did. */
export interface RegisterOutcome {
  readonly info: LayerInfo
  /** True when the chain ID was registered already (by this call's time): only a reference was added. */
  readonly existed: boolean
}

/** Registers `tar` on `parent` for `holder`; see the file comment. */
export async function registerLayer(
  core: StoreCore,
  tar: LayerInput,
  parent: ChainID | null,
  holder: string,
  options: RegisterOptions,
): Promise<RegisterOutcome> {
  const { driver, metadata } = core
  const parentID = parent === null ? null : parseChainID(parent)
  const expected = options.diffID === undefined ? undefined : parseDiffID(options.diffID)

  if (expected !== undefined) {
    const chainID = chainIDOf(parentID, expected)
    const existing = await core.exclusive(async () => {
      if (!(await metadata.hasLayer(chainID))) return undefined
      const info = await core.describe(chainID)
      await core.addHolder(chainID, holder, 1)
      return info
    })
    if (existing) {
      discard(tar)
      debug('layer %s exists: referenced without reading the input', chainID)
      return { info: existing, existed: true }
    }
  }

  const cacheID = newCacheID()
  let created = false
  let committed = false
  /** The parent to check after a failure: set once our write set held it. */
  let heldParent: ChainID | null = null
  let tx: Transaction | undefined
  try {
    const parentInfo = parentID === null ? null : await core.exclusive(async () => {
      const info = await core.describe(parentID)
      if (info.depth >= core.maxDepth) throw new MaxDepthExceededError(parentID, info.depth, core.maxDepth)
      const set = (tx = await metadata.startTransaction())
      heldParent = parentID
      await settleAll([set.setParent(parentID), set.setCacheID(cacheID)])
      return info
    })
    if (tx === undefined) {
      tx = await metadata.startTransaction()
      await tx.setCacheID(cacheID)
    }
    const parentCache = parentInfo?.cacheID ?? null
    await driver.create(cacheID, parentCache)
    created = true
    core.crash('register:after-create')
    const packer = tx.tarSplitPacker()
    let streamed: StreamedLayer
    try {
      streamed = await streamLayer(tar, (members) => driver.applyDiff(cacheID, parentCache, members), {
        sink: packer,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      })
    } catch (err) {
      // Close the tar-split file; the transaction is cancelled below.
      await packer.finish().catch(() => undefined)
      throw err
    } finally {
      discard(tar)
    }
    await packer.finish()
    core.crash('register:after-apply')
    if (expected !== undefined && streamed.diffID !== expected) {
      throw new LayerDigestMismatchError(expected, streamed.diffID, 'register')
    }
    const chainID = chainIDOf(parentID, streamed.diffID)
    // Independent files: written at once (the commit makes them durable together).
    await settleAll([
      tx.setDiffID(streamed.diffID),
      tx.setSize(streamed.size),
      ...(options.descriptor ? [tx.setDescriptor(options.descriptor)] : []),
      tx.setExtra(REFERENCES_FILE, holdersJson(new Map([[holder, 1]]))),
    ])
    core.crash('register:before-commit')
    const txn = tx
    let existed = false
    const info = await core.exclusive(async () => {
      if (await metadata.hasLayer(chainID)) {
        existed = true
        // Registered meanwhile (or a duplicate without a known diff ID): ours is discarded.
        // That record names the same parent, so it holds the parent in our set's place.
        heldParent = null
        await core.addHolder(chainID, holder, 1)
        debug('layer %s exists: discarding the copy just extracted', chainID)
        core.crash('register:after-commit')
        return core.describe(chainID)
      }
      await txn.commit(chainID, { syncfsPaths: [driver.home] })
      committed = true
      core.crash('register:after-commit')
      // What we just wrote, without reading it back.
      const record = {
        chainID,
        diffID: streamed.diffID,
        size: streamed.size,
        cacheID,
        ...(parentID ? { parent: parentID } : {}),
        // A copy, as a read would give: the caller may change its object later.
        ...(options.descriptor ? { descriptor: JSON.parse(JSON.stringify(options.descriptor)) as JsonObject } : {}),
      }
      return core.describeRecord(record, parentInfo)
    })
    debug('registered %s (diff %s, %d bytes, %s)', info.chainID, info.diffID, streamed.bytes, streamed.compression)
    return { info, existed }
  } catch (err) {
    throw classifyError(err, 'register a layer')
  } finally {
    if (!committed) {
      // The driver layer goes first: while the write set names it, no scan deletes it.
      if (created) await driver.remove(cacheID).catch((err: unknown) => debug('removing %s failed: %s', cacheID, err))
      await tx?.cancel().catch((err: unknown) => debug('cancelling %s failed: %s', tx?.path, err))
    }
    // Our set held the parent; without it, the parent may be unheld now. Never masks the
    // operation's own error: a parent left behind is deleted by the next release or cleanup.
    const parent: ChainID | null = heldParent
    if (!committed && parent !== null) {
      await core.deleteIfUnheld(parent).catch((err: unknown) => debug('deleting the unheld %s failed: %s', parent, err))
    }
  }
}
