/**
 * The persisted bookkeeping of the store, beside moby's files: reference holders of layers and
 * RW layers (`references.json`), mount counts of RW layers (`mount-state.json`), and the
 * graph of who holds whom (children, RW layers), derived from moby's `parent` files.
 *
 * Nothing here is a counter that could drift from the records: a layer's children and RW
 * layers are counted from the committed records themselves, which appear and disappear with
 * one rename each; only holders and mount counts are stored, each in one atomic file.
 */
import { readFile } from 'node:fs/promises'
import createDebug from 'debug'
import type { ChainID, DiffID, FileMetadataStore, JsonValue, MountRecord, RecordRef } from '../metadata/index.js'
import { CorruptMetadataError, LayerDoesNotExistError, REFERENCES_FILE, isJsonObject } from '../metadata/index.js'

const debug = createDebug('layerstore:layer')

/** Our file of a RW layer's mount count. */
export const MOUNT_STATE_FILE = 'mount-state.json'

/** Holder name → references held. Absent (undefined) when the record has no file: legacy. */
export type Holders = Map<string, number>

/** Reads a record's holders; undefined when it has no `references.json` (a layer moby made). */
export async function readHolders(metadata: FileMetadataStore, ref: RecordRef): Promise<Holders | undefined> {
  const value = await metadata.readExtra(ref, REFERENCES_FILE)
  if (value === undefined) return undefined
  const raw = isJsonObject(value) ? value['holders'] : undefined
  const holders: Holders = new Map()
  const bad = (detail: string): never => {
    if ('layer' in ref) {
      throw new CorruptMetadataError('layer', ref.layer, REFERENCES_FILE, metadata.layout.layerFile(ref.layer, REFERENCES_FILE), 'invalid', detail)
    }
    throw new CorruptMetadataError('mount', ref.mount, REFERENCES_FILE, metadata.layout.mountFile(ref.mount, REFERENCES_FILE), 'invalid', detail)
  }
  if (!isJsonObject(raw)) return bad('want {"holders": {name: count}}')
  for (const [holder, count] of Object.entries(raw)) {
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count <= 0) bad(`count of ${holder} is not a positive integer`)
    holders.set(holder, count as number)
  }
  return holders
}

/** The JSON of a holder map, sorted (as `FileMetadataStore.setReferences` writes it). */
export function holdersJson(holders: ReadonlyMap<string, number>): JsonValue {
  const sorted = [...holders].filter(([, n]) => n > 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return { holders: Object.fromEntries(sorted) }
}

/** Replaces a record's holders atomically (an empty map is written: "nobody holds it"). */
export async function writeHolders(metadata: FileMetadataStore, ref: RecordRef, holders: ReadonlyMap<string, number>): Promise<void> {
  await metadata.writeExtra(ref, REFERENCES_FILE, holdersJson(holders))
}

/** Adds `n` (may be negative) to a holder's count; a count reaching 0 removes the holder. */
export function adjust(holders: Holders, holder: string, n: number): number {
  const next = (holders.get(holder) ?? 0) + n
  if (next > 0) holders.set(holder, next)
  else holders.delete(holder)
  return next
}

/** A RW layer's persisted mount count, valid for the boot that made it. */
export interface MountState {
  readonly count: number
  readonly bootID: string
}

let bootIDCache: Promise<string> | undefined

/**
 * The kernel's boot ID: mounts do not survive a reboot, so a mount count recorded under
 * another boot ID is stale (containers/storage keeps its counts on a tmpfs for this reason).
 */
export function currentBootID(): Promise<string> {
  bootIDCache ??= readFile('/proc/sys/kernel/random/boot_id', 'utf8').then(
    (s) => s.trim(),
    () => 'unknown',
  )
  return bootIDCache
}

/** Reads a RW layer's mount count; 0 when none is recorded or the record is from another boot. */
export async function readMountCount(metadata: FileMetadataStore, name: string): Promise<number> {
  const value = await metadata.readExtra({ mount: name }, MOUNT_STATE_FILE)
  if (!isJsonObject(value)) return 0
  const { count, bootID } = value
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) return 0
  if (bootID !== (await currentBootID())) {
    debug('mount count of %s is from another boot: ignored', name)
    return 0
  }
  return count
}

/** Records a RW layer's mount count for the current boot. */
export async function writeMountCount(metadata: FileMetadataStore, name: string, count: number): Promise<void> {
  const state: MountState = { count, bootID: await currentBootID() }
  await metadata.writeExtra({ mount: name }, MOUNT_STATE_FILE, { ...state })
}

/**
 * What the graph needs of a layer record. All of it is a function of the chain ID alone (the
 * chain ID hashes the parent's; the diff and its apply size follow from the same bytes), so
 * it stays true across a delete and a re-register of the same chain ID and can be cached;
 * the cache ID, which changes, is not part of it.
 */
export interface GraphLayer {
  readonly chainID: ChainID
  readonly diffID: DiffID
  readonly size: number
  readonly parent?: ChainID
}

/** Every committed record and who holds whom, read under the store lock. */
export interface LayerGraph {
  readonly layers: ReadonlyMap<ChainID, GraphLayer>
  readonly mounts: ReadonlyMap<string, MountRecord>
  /** Parent chain ID → its children's chain IDs. */
  readonly children: ReadonlyMap<ChainID, ChainID[]>
  /** Parent chain ID → names of the RW layers on it. */
  readonly rwLayers: ReadonlyMap<ChainID, string[]>
  /**
   * Parent chain ID → live write sets that hold it: registers and RW-layer creates in flight
   * on it, in any process (metadata's `writeSetParents`). They hold it as a child would.
   */
  readonly pendingChildren: ReadonlyMap<ChainID, number>
  /** Layers whose record does not validate; they hold nothing we can see. */
  readonly broken: readonly ChainID[]
}

/** How many records are read at once while scanning. */
const SCAN_CONCURRENCY = 32

async function mapLimited<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, items.length) }, worker))
  return out
}

/**
 * Reads the graph: one listing, plus the records not seen before (`cache`, kept by the
 * caller across scans, is updated). Mount records are always read (names are reused with
 * other parents). Call under the store lock.
 */
export async function scanGraph(metadata: FileMetadataStore, cache: Map<ChainID, GraphLayer> = new Map()): Promise<LayerGraph> {
  const pendingChildren = await metadata.writeSetParents()
  const listing = await metadata.list()
  const listed = new Set(listing.layers)
  for (const id of [...cache.keys()]) if (!listed.has(id)) cache.delete(id)
  const broken: ChainID[] = []
  await mapLimited(
    listing.layers.filter((id) => !cache.has(id)),
    async (id) => {
      try {
        const { chainID, diffID, size, parent } = await metadata.getLayer(id)
        cache.set(id, Object.freeze({ chainID, diffID, size, ...(parent ? { parent } : {}) }))
      } catch (err) {
        // Corrupt: it holds nothing we can see (cleanup reports it). Any other failure stops
        // the scan: deciding on a partial graph could delete a layer something still holds.
        if (!(err instanceof CorruptMetadataError)) throw err
        broken.push(id)
      }
    },
  )
  const layers = new Map<ChainID, GraphLayer>()
  const children = new Map<ChainID, ChainID[]>()
  for (const id of listing.layers) {
    const record = cache.get(id)
    if (!record) continue
    layers.set(id, record)
    if (record.parent) children.set(record.parent, [...(children.get(record.parent) ?? []), id])
  }
  const mounts = new Map<string, MountRecord>()
  const rwLayers = new Map<ChainID, string[]>()
  const mountRecords = await mapLimited(listing.mounts, (name) =>
    metadata.getMount(name).catch((err: unknown) => {
      if (!(err instanceof CorruptMetadataError)) throw err
      return undefined
    }),
  )
  for (const record of mountRecords) {
    if (!record) continue
    mounts.set(record.name, record)
    if (record.parent) rwLayers.set(record.parent, [...(rwLayers.get(record.parent) ?? []), record.name])
  }
  return { layers, mounts, children, rwLayers, pendingChildren, broken }
}

/**
 * The committed layers whose parent is `parent` (the base layers, for null), read without
 * the store lock: a layer that vanishes while it is read is left out, so the answer is a
 * hint, good for a look (match-existing.ts), never for a decision to delete. `cache` is the
 * one {@link scanGraph} keeps.
 */
export async function childrenOf(metadata: FileMetadataStore, cache: Map<ChainID, GraphLayer>, parent: ChainID | null): Promise<ChainID[]> {
  const { layers } = await metadata.list()
  const records = await mapLimited(layers, async (id) => {
    const known = cache.get(id)
    if (known) return known
    try {
      const { chainID, diffID, size, parent: p } = await metadata.getLayer(id)
      const record: GraphLayer = Object.freeze({ chainID, diffID, size, ...(p ? { parent: p } : {}) })
      cache.set(id, record)
      return record
    } catch (err) {
      if (err instanceof CorruptMetadataError || err instanceof LayerDoesNotExistError) return undefined
      throw err
    }
  })
  return records.flatMap((r) => (r !== undefined && (r.parent ?? null) === parent ? [r.chainID] : []))
}

