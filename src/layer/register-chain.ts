/**
 * `LayerStore.register` and `LayerStore.registerChain`: layers prepared one after the other,
 * each on the one before (register-layer.ts), then published together under the lock with
 * metadata's group commit: **one** flush of the filesystems for the whole chain, then each
 * record renamed into place in order, with its own fsync of `sha256/`. A register is a
 * chain of one.
 *
 * Why a chain: the flush is most of a small layer's register (a syncfs costs milliseconds,
 * as much as extracting a small layer), and an image's layers arrive together (a load, a
 * pull). Each layer of a chain is still atomic, and a crash leaves a prefix of the chain
 * registered, as a crash between `register` calls would.
 *
 * Layers that exist already are referenced instead: unread when their diff ID is given; else
 * read and compared with the registered layers they could be, not applied
 * (match-existing.ts). One found to exist only at the publish (registered meanwhile) was
 * applied, and its copy is discarded. Before a layer is made on the previous one, the
 * previous one is looked up under the lock: if another process registered it meanwhile, its
 * copy is used as the parent and ours discarded, so the chain never builds on a copy it may
 * have to drop. A layer registered by another process between that look and the publish is
 * referenced then, and ours discarded; if a layer of ours was already made on it, the
 * chain cannot be published as made: `LayerChainConflictError`, nothing stored (rare: two
 * processes registering the same new layers at the same moment; registering again finds
 * them).
 *
 * On failure nothing of the call is left: prepared layers are removed, references taken on
 * existing layers are released, and a parent that only our write sets held is deleted (as
 * moby's release of the parent would). The one exception is an I/O error in the middle of
 * the publish: the layers renamed into place before it stay registered, as after a crash.
 */
import createDebug from 'debug'
import { settleAll } from '../settle-all.js'
import type { ChainID } from '../metadata/index.js'
import { Transaction, parseChainID, parseDiffID } from '../metadata/index.js'
import { chainIDOf } from './chain-id.js'
import { classifyError, LayerChainConflictError } from './errors.js'
import type { ChainLayerInput, LayerInfo, RegisterChainOptions, StreamProgress } from './layer.js'
import { discard, discardPrepared, prepareLayer } from './register-layer.js'
import type { ParentLayer, PreparedLayer } from './register-layer.js'
import type { StoreCore } from './store-core.js'

const debug = createDebug('layerstore:layer')

/** What happened to one entry. */
export interface RegisterOutcome {
  readonly info: LayerInfo
  /** True when the chain ID was registered already (by this call's time): only a reference was added. */
  readonly existed: boolean
}

type Step = { existing: LayerInfo } | { prepared: PreparedLayer }

/** Registers `entries` in order on `parent` for `holder`; see the file comment. */
export async function registerLayers(
  core: StoreCore,
  entries: Iterable<ChainLayerInput> | AsyncIterable<ChainLayerInput>,
  parent: ChainID | null,
  holder: string,
  options: Omit<RegisterChainOptions, 'holder'> = {},
): Promise<RegisterOutcome[]> {
  const { metadata } = core
  const base = parent === null ? null : parseChainID(parent)
  const steps: Step[] = []
  /** Existing layers this call took a reference on: released again after a failure. */
  const referenced: ChainID[] = []
  let heldBase = false
  let published = false
  /**
   * A reference to `chainID` for `holder`, if it is registered. Looked at first without the
   * lock (the common answer, no, needs none: a layer that appears later is found at the
   * publish), then again under it.
   */
  const referenceExisting = async (chainID: ChainID): Promise<LayerInfo | undefined> => {
    if (!(await metadata.hasLayer(chainID))) return undefined
    return core.exclusive(async () => {
      if (!(await metadata.hasLayer(chainID))) return undefined
      const info = await core.describe(chainID)
      await core.addHolder(chainID, holder, 1)
      referenced.push(chainID)
      return info
    })
  }
  /** The layer the next entry is made on. */
  const parentOfNext = (): ParentLayer | null => {
    const last = steps.at(-1)
    if (last === undefined) return base === null ? null : { committed: base }
    return 'existing' in last ? { committed: last.existing.chainID } : { pending: last.prepared.info }
  }
  try {
    for await (const entry of entries) {
      // An abort between two layers (the next tar may take a while to arrive) stops here.
      options.signal?.throwIfAborted()
      const index = steps.length
      // The previous layer, if prepared: adopt a copy registered meanwhile (see the file comment).
      const previous = steps.at(-1)
      if (previous !== undefined && 'prepared' in previous) {
        const existing = await referenceExisting(previous.prepared.chainID)
        if (existing) {
          debug('layer %s exists: discarding the copy just extracted', existing.chainID)
          await discardPrepared(core, previous.prepared)
          steps[steps.length - 1] = { existing }
        }
      }
      const on = parentOfNext()
      const expected = entry.diffID === undefined ? undefined : parseDiffID(entry.diffID)
      if (expected !== undefined && (on === null || 'committed' in on)) {
        const existing = await referenceExisting(chainIDOf(on?.committed ?? null, expected))
        if (existing) {
          discard(entry.tar)
          debug('layer %s exists: referenced without reading the input', existing.chainID)
          steps.push({ existing })
          continue
        }
      }
      // Without a diff ID, the input itself tells whether it is a layer we have (match-existing.ts).
      const mayExist = expected === undefined && (on === null || 'committed' in on)
      const made = await prepareLayer(
        core,
        entry.tar,
        on,
        {
          holder,
          ...(expected !== undefined ? { diffID: expected } : {}),
          ...(entry.descriptor ? { descriptor: entry.descriptor } : {}),
          ...(options.onProgress ? { onProgress: (p: StreamProgress) => options.onProgress?.(p, index) } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
          ...(mayExist ? { referenceExisting } : {}),
        },
        () => void (heldBase ||= on !== null && 'committed' in on && on.committed === base),
      )
      steps.push('existing' in made ? { existing: made.existing } : { prepared: made })
    }
    // Aborted after the last layer was made: still nothing stored.
    options.signal?.throwIfAborted()
    const outcomes = await publish(core, steps, holder, referenced)
    published = true
    return outcomes
  } catch (err) {
    throw classifyError(err, steps.length > 1 ? 'register a chain of layers' : 'register a layer')
  } finally {
    if (!published) await undo(core, steps, holder, referenced, heldBase ? base : null)
  }
}

/**
 * Under the lock: each prepared layer that appeared meanwhile is referenced instead (its copy
 * discarded after); the others are committed with one group commit.
 */
async function publish(core: StoreCore, steps: Step[], holder: string, referenced: ChainID[]): Promise<RegisterOutcome[]> {
  const { driver, metadata } = core
  const prepared = steps.flatMap((s) => ('prepared' in s ? [s.prepared] : []))
  // Every set's files are written before the lock is taken (see register-layer.ts).
  await settleAll(prepared.map((p) => p.written))
  const dropped: PreparedLayer[] = []
  const outcomes = await core.exclusive(async () => {
    const exists = await Promise.all(prepared.map((p) => metadata.hasLayer(p.chainID)))
    const taken = new Set(prepared.filter((_, i) => exists[i]).map((p) => p.chainID))
    for (const p of prepared) {
      if (!taken.has(p.chainID)) continue
      // A child taken too is discarded with it; a child of ours that stays was made on our copy.
      const child = prepared.find((q) => q.parentCacheID === p.info.cacheID && !taken.has(q.chainID))
      if (child) throw new LayerChainConflictError(p.chainID, child.chainID)
    }
    const fresh = prepared.filter((p) => !taken.has(p.chainID))
    if (fresh.length) {
      await Transaction.commitLayers(
        fresh.map((p) => ({ transaction: p.tx, chainID: p.chainID })),
        { syncfsPaths: [driver.home] },
      )
    }
    core.crash('register:after-commit')
    const out: RegisterOutcome[] = []
    for (const step of steps) {
      if ('existing' in step) {
        out.push({ info: step.existing, existed: true })
      } else if (taken.has(step.prepared.chainID)) {
        // Registered meanwhile: ours is discarded; that record names the same parent.
        await core.addHolder(step.prepared.chainID, holder, 1)
        referenced.push(step.prepared.chainID)
        dropped.push(step.prepared)
        out.push({ info: await core.describe(step.prepared.chainID), existed: true })
      } else {
        out.push({ info: step.prepared.info, existed: false })
      }
    }
    return out
  })
  for (const p of dropped) {
    debug('layer %s exists: discarding the copy just extracted', p.chainID)
    await discardPrepared(core, p)
  }
  for (const p of prepared) if (!dropped.includes(p)) debug('registered %s (diff %s, %d bytes, %s)', p.chainID, p.info.diffID, p.bytes, p.compression)
  return outcomes
}

/**
 * After a failure: removes the prepared layers not committed, releases the references taken on
 * existing layers, and deletes the parent if only our write sets held it. Never throws: a
 * leftover is deleted by the next release or cleanup.
 */
async function undo(core: StoreCore, steps: readonly Step[], holder: string, referenced: readonly ChainID[], heldBase: ChainID | null): Promise<void> {
  for (const step of steps.slice().reverse()) {
    if ('prepared' in step && step.prepared.tx.state !== 'committed') await discardPrepared(core, step.prepared)
  }
  for (const chainID of referenced.slice().reverse()) {
    await core.dropHolder(chainID, holder).catch((err: unknown) => debug('releasing %s failed: %s', chainID, err))
  }
  if (heldBase !== null) {
    await core.deleteIfUnheld(heldBase).catch((err: unknown) => debug('deleting the unheld %s failed: %s', heldBase, err))
  }
}
