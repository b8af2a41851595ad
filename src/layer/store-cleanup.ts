/**
 * `LayerStore.cleanup()`: the orphan sweep and garbage collection, at open and on demand.
 *
 * Under the exclusive lock: the metadata store removes abandoned write sets, temp files,
 * `-removing` records of dead owners and unusable RW layer records, and names the driver
 * layers no record references (given the driver's IDs, see driver-ids.ts); then references
 * of dead sessions are dropped, mount counts from another boot forgotten, and layers left
 * held by nothing are marked for deletion (moby never collects them: weak spot 6). After
 * unlocking: the driver layers and the marked records are removed. Never deleted: a
 * committed layer, a driver layer a record or a live write set names, a layer without our
 * `references.json` (one moby made), or anything at all while a committed record's
 * `cache-id` is unreadable (the metadata store withholds the driver IDs then).
 */
import createDebug from 'debug'
import { CorruptMetadataError, isJsonObject } from '../metadata/index.js'
import type { ChainID, RecordRef } from '../metadata/index.js'
import { listDriverIDs } from './driver-ids.js'
import type { LayerMetadata } from './layer.js'
import { MOUNT_STATE_FILE, currentBootID, readHolders, writeHolders, writeMountCount } from './references.js'
import type { DeletionFailure, StoreCore, Victim } from './store-core.js'

const debug = createDebug('layerstore:layer')

/** What a cleanup did. */
export interface StoreCleanupReport {
  /** Paths removed from the layerdb (write sets, `-removing` records, temp files, RW records). */
  readonly removedPaths: readonly string[]
  /** Driver layers removed because no record referenced them. */
  readonly removedDriverIDs: readonly string[]
  /** Layers deleted because nothing held them any more (interrupted releases, dead sessions). */
  readonly deletedLayers: readonly LayerMetadata[]
  /** References dropped because their session's process is gone. */
  readonly droppedHolders: ReadonlyArray<{ readonly record: string; readonly holder: string; readonly count: number }>
  /** RW layers whose mount count was from a previous boot, reset to 0. */
  readonly staleMounts: readonly string[]
  /** Committed layers whose records do not validate: reported, never removed. */
  readonly brokenLayers: ReadonlyArray<{ readonly chainID: ChainID; readonly error: Error }>
  /** Driver IDs kept only because a broken layer might use them. */
  readonly withheldDriverIDs: readonly string[]
  /** What could not be removed (the sweep went on past it). */
  readonly failures: readonly DeletionFailure[]
}

/** True when a cleanup found nothing to do or report. */
export function isEmptyCleanup(report: StoreCleanupReport): boolean {
  return (
    report.removedPaths.length === 0 &&
    report.removedDriverIDs.length === 0 &&
    report.deletedLayers.length === 0 &&
    report.droppedHolders.length === 0 &&
    report.staleMounts.length === 0 &&
    report.brokenLayers.length === 0 &&
    report.failures.length === 0
  )
}

/** Runs the cleanup; see the file comment. */
export async function cleanupStore(core: StoreCore): Promise<StoreCleanupReport> {
  const dropped: Array<{ record: string; holder: string; count: number }> = []
  const staleMounts: string[] = []
  const failures: DeletionFailure[] = []
  const plan = await core.exclusive(async () => {
    const meta = await core.metadata.cleanup(await listDriverIDs(core.driver))
    for (const f of meta.failures) failures.push({ target: f.path, error: f.error })
    const graph = await core.graph()
    const alive = core.session.probe()
    const dropDead = async (ref: RecordRef, record: string): Promise<boolean | undefined> => {
      let holders
      try {
        holders = await readHolders(core.metadata, ref)
      } catch (err) {
        if (err instanceof CorruptMetadataError) {
          failures.push({ target: record, error: err })
          return undefined
        }
        throw err
      }
      if (!holders) return undefined
      let changed = false
      for (const [holder, count] of [...holders]) {
        if (await alive(holder)) continue
        holders.delete(holder)
        dropped.push({ record, holder, count })
        changed = true
      }
      if (changed) await writeHolders(core.metadata, ref, holders)
      return holders.size === 0
    }
    const unheld: ChainID[] = []
    for (const id of graph.layers.keys()) {
      if (await dropDead({ layer: id }, id)) unheld.push(id)
    }
    const boot = await currentBootID()
    for (const name of graph.mounts.keys()) {
      await dropDead({ mount: name }, name)
      const state = await core.metadata.readExtra({ mount: name }, MOUNT_STATE_FILE).catch(() => undefined)
      if (isJsonObject(state) && typeof state['count'] === 'number' && state['count'] > 0 && state['bootID'] !== boot) {
        await writeMountCount(core.metadata, name, 0)
        staleMounts.push(name)
      }
    }
    const victims: Victim[] = await core.markUnheld(graph, unheld)
    return { meta, victims }
  })
  const removedDriverIDs: string[] = []
  for (const id of plan.meta.report.unreferencedDriverIDs) {
    try {
      await core.driver.remove(id)
      removedDriverIDs.push(id)
    } catch (err) {
      failures.push({ target: id, error: err instanceof Error ? err : new Error(String(err)) })
    }
  }
  failures.push(...(await core.removeVictims(plan.victims)))
  const report: StoreCleanupReport = Object.freeze({
    removedPaths: plan.meta.removed,
    removedDriverIDs,
    deletedLayers: plan.victims.map((v) => v.metadata),
    droppedHolders: dropped,
    staleMounts,
    brokenLayers: plan.meta.report.brokenLayers,
    withheldDriverIDs: plan.meta.report.withheldDriverIDs,
    failures,
  })
  debug(
    'cleanup: %d paths, %d driver layers, %d layers deleted, %d dead references, %d stale mounts, %d failures',
    report.removedPaths.length,
    removedDriverIDs.length,
    report.deletedLayers.length,
    dropped.length,
    staleMounts.length,
    failures.length,
  )
  return report
}
