/**
 * `LayerStore.register`, step by step (moby's `registerWithDescriptor`, reordered for crash
 * safety and short locks):
 *
 * 1. A known diff ID whose chain ID exists: add a reference, leave the input unread. Done.
 * 2. Under the lock: the parent must exist and be shallower than the limit; the session
 *    takes a reference on it, so it cannot be deleted while we work.
 * 3. Outside the lock: open a transaction and record the new cache ID in it **before** the
 *    driver creates that directory (a concurrent orphan scan then leaves it alone, and after a
 *    crash finds it); create; stream the input once into the driver and the tar-split.
 * 4. Write `diff`, `size`, `parent`, our `references.json` (the caller's holder) into the set.
 * 5. Under the lock: if the chain ID appeared meanwhile (or existed), reference it and discard
 *    ours; else commit (after a syncfs of the driver's filesystem). Give back the parent hold.
 * 6. On any failure: remove the driver layer, cancel the transaction, give back the parent
 *    hold (which may delete the parent, as moby's release does).
 */
import createDebug from 'debug'
import type { ChainID, Transaction } from '../metadata/index.js'
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
  const { driver, metadata, session } = core
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

  const parentInfo = parentID === null ? null : await core.exclusive(async () => {
    const info = await core.describe(parentID)
    if (info.depth >= core.maxDepth) throw new MaxDepthExceededError(parentID, info.depth, core.maxDepth)
    await core.addHolder(parentID, session.holder, 1)
    return info
  })
  let parentHeld = parentInfo !== null
  const parentCache = parentInfo?.cacheID ?? null
  const cacheID = newCacheID()
  let created = false
  let committed = false
  let tx: Transaction | undefined
  try {
    tx = await metadata.startTransaction()
    await tx.setCacheID(cacheID)
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
    await tx.setDiffID(streamed.diffID)
    await tx.setSize(streamed.size)
    if (parentID) await tx.setParent(parentID)
    if (options.descriptor) await tx.setDescriptor(options.descriptor)
    await tx.setExtra(REFERENCES_FILE, holdersJson(new Map([[holder, 1]])))
    core.crash('register:before-commit')
    const txn = tx
    let existed = false
    const info = await core.exclusive(async () => {
      if (await metadata.hasLayer(chainID)) {
        existed = true
        // Registered meanwhile (or a duplicate without a known diff ID): ours is discarded.
        await core.addHolder(chainID, holder, 1)
        debug('layer %s exists: discarding the copy just extracted', chainID)
      } else {
        await txn.commit(chainID, { syncfsPaths: [driver.home] })
        committed = true
      }
      core.crash('register:after-commit')
      if (parentHeld && parentID) {
        parentHeld = false
        // The new layer's record holds the parent now. A failure here only leaves a session
        // reference (it ends with the session), never a failed register of a committed layer.
        await core.addHolder(parentID, session.holder, -1).catch((err: unknown) => debug('dropping the hold on %s failed: %s', parentID, err))
      }
      return core.describe(chainID)
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
    // Never masks the operation's own error; a hold that stays ends with the session.
    if (parentHeld && parentID) await core.dropHolder(parentID, session.holder).catch((err: unknown) => debug('giving back %s failed: %s', parentID, err))
  }
}
