/**
 * Reading layer and mount records back with moby's validation (moby.md §1.11), each failure a
 * `CorruptMetadataError` naming the file.
 */
import { lstat } from 'node:fs/promises'
import { join } from 'node:path'
import { CorruptMetadataError, LayerDoesNotExistError, MountDoesNotExistError } from './errors.js'
import { errnoOf, ioError, readOptional } from './durable-fs.js'
import { parseCacheID, parseChainID, parseDiffID, parseMountID } from './ids.js'
import type { CacheID, ChainID, DiffID, MountID } from './ids.js'
import { isJsonObject } from './json.js'
import type { JsonObject } from './json.js'
import { LAYER_FILES, MOUNT_FILES } from './layout.js'
import type { LayerDbLayout } from './layout.js'

/** A committed read-only layer, as its directory under `sha256/` describes it. */
export interface LayerRecord {
  readonly chainID: ChainID
  readonly diffID: DiffID
  /** Bytes written by this layer's apply (`size`); moby's `DiffSize`. */
  readonly size: number
  readonly cacheID: CacheID
  /** The parent's chain ID; absent for a base layer. */
  readonly parent?: ChainID
  /** `descriptor.json` when present and not `null`. */
  readonly descriptor?: JsonObject
}

/** A committed RW layer, as its directory under `mounts/` describes it. */
export interface MountRecord {
  readonly name: string
  readonly mountID: MountID
  /** The init layer's driver ID (`<mountID>-init`); absent when created without one. */
  readonly initID?: MountID
  /** The read-only parent's chain ID; absent for a RW layer on nothing. */
  readonly parent?: ChainID
}

/** Go's `strconv.ParseInt(s, 10, 64)` syntax, without trimming (moby does not trim `size`). */
const SIZE_RE = /^[+-]?[0-9]+$/

async function checkDir(path: string, missing: () => Error): Promise<void> {
  try {
    if ((await lstat(path)).isDirectory()) return
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT' && errnoOf(err) !== 'ENOTDIR') throw ioError('stat', path, err)
  }
  throw missing()
}

/** Reads one file of a record; `parse` turns its text into a value or throws. */
async function field<T>(
  kind: 'layer' | 'mount',
  record: string,
  dir: string,
  file: string,
  required: boolean,
  parse: (text: string) => T,
): Promise<T | undefined> {
  const path = join(dir, file)
  const bytes = await readOptional(path)
  if (bytes === undefined) {
    if (required) throw new CorruptMetadataError(kind, record, file, path, 'missing', '')
    return undefined
  }
  try {
    return parse(bytes.toString('utf8'))
  } catch (err) {
    throw new CorruptMetadataError(kind, record, file, path, 'invalid', err instanceof Error ? err.message : String(err), {
      cause: err,
    })
  }
}

function parseSize(text: string): number {
  if (!SIZE_RE.test(text)) throw new Error(`size ${JSON.stringify(text)} is not a decimal integer`)
  const value = Number(text)
  if (!Number.isSafeInteger(value)) throw new Error(`size ${text} is out of range`)
  return value
}

function parseDescriptor(text: string): JsonObject | null {
  const value: unknown = JSON.parse(text)
  // Go unmarshals `null` into an empty descriptor; anything but an object is an error.
  if (value === null) return null
  if (!isJsonObject(value)) throw new Error('descriptor.json is not a JSON object')
  return value
}

/**
 * Reads and validates a committed layer.
 *
 * @throws LayerDoesNotExistError when `sha256/<hex>` is not a directory.
 * @throws CorruptMetadataError naming the file that is missing or invalid.
 */
export async function readLayerRecord(layout: LayerDbLayout, chainID: ChainID): Promise<LayerRecord> {
  const id = parseChainID(chainID)
  const dir = layout.layerDir(id)
  await checkDir(dir, () => new LayerDoesNotExistError(id))
  const [diffID, size, cacheID, parent, descriptor] = await Promise.all([
    field('layer', id, dir, LAYER_FILES.diff, true, parseDiffID),
    field('layer', id, dir, LAYER_FILES.size, true, parseSize),
    field('layer', id, dir, LAYER_FILES.cacheID, true, parseCacheID),
    field('layer', id, dir, LAYER_FILES.parent, false, parseChainID),
    field('layer', id, dir, LAYER_FILES.descriptor, false, parseDescriptor),
  ])
  return Object.freeze({
    chainID: id,
    diffID: diffID!,
    size: size!,
    cacheID: cacheID!,
    ...(parent ? { parent } : {}),
    ...(descriptor ? { descriptor } : {}),
  })
}

/**
 * Reads and validates a committed RW layer (moby's `loadMount` checks).
 *
 * @throws MountDoesNotExistError when `mounts/<name>` is not a directory.
 * @throws CorruptMetadataError naming the file that is missing or invalid.
 */
export async function readMountRecord(layout: LayerDbLayout, name: string): Promise<MountRecord> {
  const dir = layout.mountDir(name)
  await checkDir(dir, () => new MountDoesNotExistError(name))
  const [mountID, initID, parent] = await Promise.all([
    field('mount', name, dir, MOUNT_FILES.mountID, true, (t) => parseMountID(t)),
    field('mount', name, dir, MOUNT_FILES.initID, false, (t) => parseMountID(t, 'init-id')),
    field('mount', name, dir, MOUNT_FILES.parent, false, parseChainID),
  ])
  return Object.freeze({
    name,
    mountID: mountID!,
    ...(initID ? { initID } : {}),
    ...(parent ? { parent } : {}),
  })
}

/**
 * The driver IDs a directory names (`cache-id`, `mount-id`, `init-id`), read leniently: for
 * the orphan scan, which must protect whatever a live intent names and report whatever an
 * abandoned one names, even half-written.
 */
export async function readDriverIDs(dir: string): Promise<string[]> {
  const ids: string[] = []
  for (const file of [LAYER_FILES.cacheID, MOUNT_FILES.mountID, MOUNT_FILES.initID]) {
    const bytes = await readOptional(join(dir, file)).catch(() => undefined)
    const text = bytes?.toString('utf8').trim()
    if (text && text !== '.' && text !== '..' && !/[/\0]/.test(text)) ids.push(text)
  }
  return ids
}
