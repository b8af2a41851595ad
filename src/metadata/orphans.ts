/**
 * The orphan scan: what a crash or a failed removal left behind in the layerdb, and which
 * driver directories no metadata references any more.
 *
 * Orphans are intents whose owner is gone (see owner.ts): write sets and temp files in
 * `tmp/`, `-removing` markers in `sha256/` and `mounts/`; plus RW-layer records that cannot
 * be used (a broken `mount-id`, a parent layer that is gone, or a driver directory that is
 * gone). Committed layers are never orphans: a broken one is reported, not removed, and
 * while any committed layer's `cache-id` is unreadable no driver directory is offered for
 * removal, because the sweep cannot tell whether that layer uses it (containerd#3671: a
 * sweep must not delete data just because the index is unreadable).
 *
 * Metadata never calls the driver: the caller passes the driver IDs it has and removes the
 * ones reported unreferenced itself.
 */
import { readdir } from 'node:fs/promises'
import type { Dirent } from 'node:fs'
import { join } from 'node:path'
import createDebug from 'debug'
import { errnoOf, ioError, removeTree } from './durable-fs.js'
import { CorruptMetadataError } from './errors.js'
import type { ChainID } from './ids.js'
import { LAYER_FILES, LayerDbLayout } from './layout.js'
import type { OwnerProbe } from './owner.js'
import { readDriverIDs, readLayerRecord, readMountRecord } from './record-reader.js'

const debug = createDebug('layerstore:metadata')

/** An abandoned write set in `tmp/`, with the driver IDs it had set up. */
export interface OrphanWriteSet {
  readonly path: string
  readonly driverIDs: readonly string[]
}

/** An abandoned `-removing` marker. */
export interface OrphanRemoval {
  readonly path: string
  readonly recordKind: 'layer' | 'mount'
  /** The chain ID (layer) or mount name it was. */
  readonly record: string
  readonly driverIDs: readonly string[]
}

/** A RW-layer record that cannot be used, with why. */
export interface OrphanMount {
  readonly path: string
  readonly name: string
  readonly reason: 'broken' | 'parent-missing' | 'driver-missing'
  readonly detail: string
  readonly driverIDs: readonly string[]
}

/** A committed layer whose record does not validate. Reported only, never removed. */
export interface BrokenLayer {
  readonly chainID: ChainID
  readonly error: Error
}

/** What {@link scanOrphans} found. Everything but `brokenLayers` is removable. */
export interface OrphanReport {
  readonly writeSets: readonly OrphanWriteSet[]
  readonly removals: readonly OrphanRemoval[]
  /** Abandoned `tmp/atomic-*` files, dead owners' lock files and unknown entries of `tmp/`. */
  readonly tempFiles: readonly string[]
  readonly mounts: readonly OrphanMount[]
  readonly brokenLayers: readonly BrokenLayer[]
  /** Driver IDs that nothing references: the caller removes them from the driver. */
  readonly unreferencedDriverIDs: readonly string[]
  /**
   * Driver IDs that look unreferenced but are kept because a committed layer's `cache-id`
   * could not be read (see `brokenLayers`): repair or remove that layer first.
   */
  readonly withheldDriverIDs: readonly string[]
}

/** What {@link removeOrphans} did. */
export interface CleanupResult {
  /** Paths removed from the layerdb. */
  readonly removed: readonly string[]
  /** Paths that could not be removed (the sweep goes on past them). */
  readonly failures: ReadonlyArray<{ readonly path: string; readonly error: Error }>
}

async function list(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true })
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return []
    throw ioError('readdir', dir, err)
  }
}

/**
 * Scans the layerdb. Call it under the exclusive store lock: renames by other writers
 * during the scan could hide a record from it. `tmp/` is read before `sha256/` and `mounts/`
 * so that a commit racing the scan anyway is seen on one side of its rename.
 *
 * @param knownDriverIDs every ID the driver has a directory for; when absent only the IDs
 *   named by abandoned intents are candidates for `unreferencedDriverIDs`.
 */
export async function scanOrphans(
  layout: LayerDbLayout,
  owners: OwnerProbe,
  knownDriverIDs?: Iterable<string>,
): Promise<OrphanReport> {
  const referenced = new Set<string>()
  const named = new Set<string>()
  const writeSets: OrphanWriteSet[] = []
  const removals: OrphanRemoval[] = []
  const tempFiles: string[] = []
  const mounts: OrphanMount[] = []
  const brokenLayers: BrokenLayer[] = []
  let withhold = false

  for (const entry of await list(layout.tmpDir)) {
    const path = join(layout.tmpDir, entry.name)
    const parsed = LayerDbLayout.parseTmpName(entry.name)
    const alive = parsed.type !== 'foreign' && (await owners.isAlive(parsed.owner))
    if (parsed.type === 'write-set' || (parsed.type === 'foreign' && entry.isDirectory())) {
      const ids = await readDriverIDs(path)
      if (alive) for (const id of ids) referenced.add(id)
      else {
        writeSets.push({ path, driverIDs: ids })
        for (const id of ids) named.add(id)
      }
    } else if (!alive) {
      tempFiles.push(path)
    }
  }

  const layerDirs = await list(layout.sha256Dir)
  const liveLayers = new Set<string>()
  const children: Array<[ChainID, ChainID, string]> = []
  for (const entry of layerDirs) {
    const parsed = LayerDbLayout.parseLayerDirName(entry.name)
    if (!entry.isDirectory() || parsed.type === 'other') continue
    const path = join(layout.sha256Dir, entry.name)
    if (parsed.type === 'removing') {
      const ids = await readDriverIDs(path)
      if (await owners.isAlive(parsed.owner)) for (const id of ids) referenced.add(id)
      else {
        removals.push({ path, recordKind: 'layer', record: LayerDbLayout.chainIDOfDir(parsed.name), driverIDs: ids })
        for (const id of ids) named.add(id)
      }
      continue
    }
    const chainID = LayerDbLayout.chainIDOfDir(parsed.name)
    liveLayers.add(chainID)
    try {
      const record = await readLayerRecord(layout, chainID)
      referenced.add(record.cacheID)
      if (record.parent) children.push([chainID, record.parent, path])
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err))
      brokenLayers.push({ chainID, error })
      // Protect what it names if it names anything usable; otherwise protect everything.
      const ids = await readDriverIDs(path)
      if (ids.length) for (const id of ids) referenced.add(id)
      else withhold = true
    }
  }

  // moby skips a layer whose parent does not load; say so instead of failing later.
  for (const [chainID, parent, path] of children) {
    if (!liveLayers.has(parent)) {
      const file = join(path, LAYER_FILES.parent)
      brokenLayers.push({
        chainID,
        error: new CorruptMetadataError('layer', chainID, LAYER_FILES.parent, file, 'invalid', `layer ${parent} is gone`),
      })
    }
  }

  const known = knownDriverIDs ? new Set(knownDriverIDs) : undefined
  for (const entry of await list(layout.mountsDir)) {
    const parsed = LayerDbLayout.parseMountDirName(entry.name)
    if (!entry.isDirectory() || parsed.type === 'other') continue
    const path = join(layout.mountsDir, entry.name)
    const ids = await readDriverIDs(path)
    if (parsed.type === 'removing') {
      if (await owners.isAlive(parsed.owner)) for (const id of ids) referenced.add(id)
      else {
        removals.push({ path, recordKind: 'mount', record: parsed.name, driverIDs: ids })
        for (const id of ids) named.add(id)
      }
      continue
    }
    const orphan = await checkMount(layout, parsed.name, liveLayers, known)
    if (orphan) {
      mounts.push({ path, name: parsed.name, ...orphan, driverIDs: ids })
      for (const id of ids) named.add(id)
    } else {
      for (const id of ids) referenced.add(id)
    }
  }

  const candidates = known ?? named
  const unreferenced = [...candidates].filter((id) => !referenced.has(id)).sort()
  const report: OrphanReport = {
    writeSets,
    removals,
    tempFiles,
    mounts,
    brokenLayers,
    unreferencedDriverIDs: withhold ? [] : unreferenced,
    withheldDriverIDs: withhold ? unreferenced : [],
  }
  debug(
    'orphan scan of %s: %d write sets, %d removals, %d temp files, %d mounts, %d broken layers, %d unreferenced driver IDs%s',
    layout.root,
    writeSets.length,
    removals.length,
    tempFiles.length,
    mounts.length,
    brokenLayers.length,
    unreferenced.length,
    withhold ? ' (withheld)' : '',
  )
  return report
}

async function checkMount(
  layout: LayerDbLayout,
  name: string,
  layers: ReadonlySet<string>,
  known: ReadonlySet<string> | undefined,
): Promise<Pick<OrphanMount, 'reason' | 'detail'> | undefined> {
  let record
  try {
    record = await readMountRecord(layout, name)
  } catch (err) {
    return { reason: 'broken', detail: err instanceof Error ? err.message : String(err) }
  }
  if (record.parent && !layers.has(record.parent)) {
    return { reason: 'parent-missing', detail: `parent layer ${record.parent} does not exist` }
  }
  if (known) {
    const gone = [record.mountID, ...(record.initID ? [record.initID] : [])].filter((id) => !known.has(id))
    if (gone.length) return { reason: 'driver-missing', detail: `driver has no ${gone.join(', ')}` }
  }
  return undefined
}

/** True when the report has nothing to remove (broken layers and withheld IDs aside). */
export function isCleanReport(report: OrphanReport): boolean {
  return (
    report.writeSets.length === 0 &&
    report.removals.length === 0 &&
    report.tempFiles.length === 0 &&
    report.mounts.length === 0 &&
    report.unreferencedDriverIDs.length === 0
  )
}

/**
 * Removes the layerdb orphans of a report (not driver directories, which are the caller's),
 * continuing past failures, and logs each removal. Call it under the exclusive store lock,
 * right after the scan that made the report.
 */
export async function removeOrphans(report: OrphanReport): Promise<CleanupResult> {
  const paths = [
    ...report.writeSets.map((w) => w.path),
    ...report.removals.map((r) => r.path),
    ...report.mounts.map((m) => m.path),
    ...report.tempFiles,
  ]
  const removed: string[] = []
  const failures: Array<{ path: string; error: Error }> = []
  for (const path of paths) {
    try {
      await removeTree(path)
      removed.push(path)
      debug('removed orphan %s', path)
    } catch (err) {
      failures.push({ path, error: err instanceof Error ? err : new Error(String(err)) })
      debug('could not remove orphan %s: %s', path, err)
    }
  }
  return { removed, failures }
}
