/**
 * `naiveDiff(proto)`: the diff half of the contract for a driver that keeps no record of its
 * changes (moby's `NaiveDiffDriver`). Everything is computed on top of `get`: changes by
 * walking and comparing the layer's tree with its parent's, diffs by exporting those changes,
 * applies by extracting into a writable view with AUFS (`.wh.`) whiteouts applied physically.
 *
 * Unlike moby, diffs do not sleep until the next second after export: `changes` compares
 * mtimes to the nanosecond, so a change made within the same second is still seen.
 */
import { lstat } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import createDebug from 'debug'
import { applyLayer, changes as treeChanges, exportChanges } from '../archive/index.js'
import type { FileGetter, TarMember } from '../tarsplit/index.js'
import { directoryGetter } from '../tarsplit/index.js'
import type {
  Change,
  CreateOptions,
  DiffGetterDriver,
  DriverCapabilities,
  DriverLayerID,
  DriverStatus,
  GetOptions,
  ProtoDriver,
} from './driver.js'

const debug = createDebug('layerstore:graphdriver')

/**
 * Wraps `proto` into a complete driver whose diff methods are computed naively on top of its
 * `get`/`put`. `proto`'s own methods are passed through unchanged, and so is its
 * `diffGetter` if it has one (files read in place, without the mount a `get` may make);
 * `capabilities.nativeDiff` becomes false. Costs: `changes`, `diff` and `diffSize` walk both trees fully; `applyDiff`
 * writes through `get(id, { writable: true })`.
 */
export function naiveDiff(proto: ProtoDriver): DiffGetterDriver {
  return new NaiveDiffDriver(proto)
}

class NaiveDiffDriver implements DiffGetterDriver {
  readonly #proto: ProtoDriver
  readonly capabilities: DriverCapabilities

  constructor(proto: ProtoDriver) {
    this.#proto = proto
    this.capabilities = Object.freeze({ ...proto.capabilities, nativeDiff: false })
  }

  get name(): string {
    return this.#proto.name
  }

  get home(): string {
    return this.#proto.home
  }

  create(id: DriverLayerID, parent: DriverLayerID | null, options?: CreateOptions): Promise<void> {
    return this.#proto.create(id, parent, options)
  }

  createReadWrite(id: DriverLayerID, parent: DriverLayerID | null, options?: CreateOptions): Promise<void> {
    return this.#proto.createReadWrite(id, parent, options)
  }

  remove(id: DriverLayerID): Promise<void> {
    return this.#proto.remove(id)
  }

  get(id: DriverLayerID, options?: GetOptions): Promise<string> {
    return this.#proto.get(id, options)
  }

  put(id: DriverLayerID): Promise<void> {
    return this.#proto.put(id)
  }

  exists(id: DriverLayerID): Promise<boolean> {
    return this.#proto.exists(id)
  }

  list(): Promise<DriverLayerID[]> {
    return this.#proto.list()
  }

  status(): Promise<DriverStatus> {
    return this.#proto.status()
  }

  getMetadata(id: DriverLayerID): Promise<Readonly<Record<string, string>>> {
    return this.#proto.getMetadata(id)
  }

  cleanup(): Promise<void> {
    return this.#proto.cleanup()
  }

  async diff(id: DriverLayerID, parent: DriverLayerID | null): Promise<Readable> {
    const layerDir = await this.#proto.get(id)
    let stream: Readable
    try {
      const list = await this.#changesBetween(layerDir, parent)
      stream = exportChanges(layerDir, list, {})
    } catch (err) {
      await this.#proto.put(id)
      throw err
    }
    // The layer stays held while the tar streams from it; 'close' comes after 'end', after
    // an error and after the consumer's destroy(), so exactly one put follows.
    stream.once('close', () => {
      // The stream is over: nobody is left to receive an error, so a failed put is logged.
      this.#proto.put(id).catch((err: unknown) => debug('put of %s after diff failed: %O', id, err))
    })
    return stream
  }

  async changes(id: DriverLayerID, parent: DriverLayerID | null): Promise<Change[]> {
    const layerDir = await this.#proto.get(id)
    try {
      return await this.#changesBetween(layerDir, parent)
    } finally {
      await this.#proto.put(id)
    }
  }

  async applyDiff(id: DriverLayerID, _parent: DriverLayerID | null, members: AsyncIterable<TarMember>): Promise<number> {
    // The layer already starts as its parent's tree (the proto driver made it so on create),
    // so the parent is not needed here: whiteouts delete from that copy.
    const target = await this.#proto.get(id, { writable: true })
    try {
      const { size } = await applyLayer(members, target, { whiteouts: 'naive' })
      return size
    } finally {
      await this.#proto.put(id)
    }
  }

  async diffSize(id: DriverLayerID, parent: DriverLayerID | null): Promise<number> {
    const layerDir = await this.#proto.get(id)
    try {
      const list = await this.#changesBetween(layerDir, parent)
      return await changesSize(layerDir, list)
    } finally {
      await this.#proto.put(id)
    }
  }

  async diffGetter(id: DriverLayerID): Promise<{ readonly getter: FileGetter; close(): Promise<void> }> {
    // The proto's own, when it can read its files without a mount (vfs).
    const own = (this.#proto as Partial<Pick<DiffGetterDriver, 'diffGetter'>>).diffGetter
    if (typeof own === 'function') return own.call(this.#proto, id)
    // A naive driver's view is the whole tree, whose files at the names of this layer's
    // members are this layer's versions: what tar-split reassembly needs.
    const dir = await this.#proto.get(id)
    let closed = false
    return {
      getter: directoryGetter(dir),
      close: async () => {
        if (closed) return
        closed = true
        await this.#proto.put(id)
      },
    }
  }

  async #changesBetween(layerDir: string, parent: DriverLayerID | null): Promise<Change[]> {
    if (parent === null) return sortChanges(await treeChanges(layerDir, null))
    const parentDir = await this.#proto.get(parent)
    try {
      return sortChanges(await treeChanges(layerDir, parentDir))
    } finally {
      await this.#proto.put(parent)
    }
  }
}

/**
 * moby's `ChangesSize`: the lstat sizes of added and modified non-directories under `dir`,
 * each hard-linked inode counted once.
 */
export async function changesSize(dir: string, list: readonly Change[]): Promise<number> {
  const seen = new Set<string>()
  let total = 0
  for (const change of list) {
    if (change.kind === 'deleted') continue
    let st
    try {
      st = await lstat(joinChangePath(dir, change.path))
    } catch (err) {
      // A file removed after the walk is no longer part of the diff.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw err
    }
    if (st.isDirectory()) continue
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`
      if (seen.has(key)) continue
      seen.add(key)
    }
    total += st.size
  }
  return total
}

/**
 * `dir` + a change path (`/a/b`) as a path fs accepts. The archive module gives paths as byte
 * strings (one char per byte, latin1), which must reach fs as those bytes, not as UTF-8.
 */
function joinChangePath(dir: string, path: string | Buffer): string | Buffer {
  const rel = typeof path === 'string' ? Buffer.from(path, 'latin1') : path
  const slash = rel[0] === 0x2f ? '' : '/'
  if (typeof path === 'string' && /^[\x00-\x7f]*$/.test(path)) return dir + slash + path
  return Buffer.concat([Buffer.from(dir + slash), rel])
}

// Byte order of the paths, whichever form they come in.
function sortChanges(list: Change[]): Change[] {
  const key = (c: Change): Buffer => (typeof c.path === 'string' ? Buffer.from(c.path, 'latin1') : (c.path as Buffer))
  return list.sort((a, b) => Buffer.compare(key(a), key(b)))
}
