/**
 * A read-only reader of a Docker data root (`/var/lib/docker` layout, overlay2 driver), built
 * only on the public faces of our modules: the layerdb through `FileMetadataStore` opened
 * read-only, layer files through the overlay driver's `diffGetter`, bytes through
 * `tarsplit.readEntries` + `assemble`, checked against the diff ID as they stream.
 *
 * It lives in test/helpers until the `LayerStore` can do the same
 * (`LayerStore.open({ root, driver: 'overlay2', readOnly: true })`); see the report of
 * issue 6. What it must never do to a Docker root, and why it does not:
 * - write: the metadata store is opened with `readOnly` (no owner token, no `tmp/`, no
 *   orphan cleanup), and the driver is constructed without `init()` (which makes `l/`,
 *   sweeps scratch dirs and re-creates links) and without `probeOverlay` (a probe mount in a
 *   scratch dir under home);
 * - mount: Docker marks a layer `committed` only when a child is created on it, so its top
 *   layers would be mounted read-write (upperdir = `diff/`, `work/` touched) by the driver's
 *   `get`. The reader only uses `diffGetter`, which reads `diff/` without mounting: a
 *   layer's tar-split asks for the contents of the layer's own regular files only, and those
 *   are all in its `diff/` (whiteouts and opaque markers are size-0 entries, never fetched).
 */
import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import type { Readable, TransformCallback } from 'node:stream'
import { OverlayDriver } from '../../src/drivers/overlay/index.js'
import type { OverlayFeatures } from '../../src/drivers/overlay/index.js'
import { FileMetadataStore, parseChainID } from '../../src/metadata/index.js'
import type { ChainID, LayerRecord } from '../../src/metadata/index.js'
import { LayerDigestMismatchError } from '../../src/layer/index.js'
import { assemble, readEntries } from '../../src/tarsplit/index.js'

/** Docker's name for its overlay driver: the layerdb is `image/overlay2/`, the home `overlay2/`. */
export const DOCKER_OVERLAY_DRIVER = 'overlay2'

// The driver is never asked to mount (see the file comment), so nothing reads these; they
// stand in for a probe that would write into the Docker root.
const NO_MOUNT_FEATURES: OverlayFeatures = Object.freeze({
  backingFs: 'unknown (not probed: read-only)',
  lowerdirAppend: false,
  api: 'mount-data',
  options: Object.freeze([]),
})

/** The Docker root is not an overlay2 root (no layerdb or no driver home). */
export class NotADockerRootError extends Error {
  override readonly name = 'NotADockerRootError'
  readonly code = 'ERR_NOT_A_DOCKER_ROOT'
  readonly kind = 'not-found'
  constructor(readonly root: string, readonly missing: string, options?: ErrorOptions) {
    super(`${root} is not a Docker overlay2 data root: ${missing} is missing`, options)
  }
}

/** A Docker overlay2 data root, opened read-only. See the file comment. */
export class DockerRoot {
  /** The data root (`--data-root`). */
  readonly root: string
  /** The overlay driver over `<root>/overlay2`, used for `diffGetter` and layer files only. */
  readonly driver: OverlayDriver
  readonly #metadata: FileMetadataStore

  private constructor(root: string, metadata: FileMetadataStore, driver: OverlayDriver) {
    this.root = root
    this.#metadata = metadata
    this.driver = driver
  }

  /**
   * Opens `root` read-only: nothing under it is created, changed or mounted.
   *
   * @throws NotADockerRootError when `image/overlay2/layerdb` or `overlay2/` is not a directory.
   */
  static async open(root: string): Promise<DockerRoot> {
    const home = join(root, DOCKER_OVERLAY_DRIVER)
    const metadata = await FileMetadataStore.open(root, DOCKER_OVERLAY_DRIVER, { readOnly: true })
    for (const dir of [metadata.layout.root, home]) {
      const isDir = await stat(dir).then(
        (s) => s.isDirectory(),
        () => false,
      )
      if (!isDir) throw new NotADockerRootError(root, dir)
    }
    return new DockerRoot(root, metadata, new OverlayDriver({ home, features: NO_MOUNT_FEATURES }))
  }

  /** Every layer of the root by chain ID, as its layerdb record says (moby's validation). */
  async map(): Promise<ReadonlyMap<ChainID, LayerRecord>> {
    const out = new Map<ChainID, LayerRecord>()
    for (const id of (await this.#metadata.list()).layers) out.set(id, await this.#metadata.getLayer(id))
    return out
  }

  /** One layer's record. @throws LayerDoesNotExistError, CorruptMetadataError */
  get(chainID: ChainID | string): Promise<LayerRecord> {
    return this.#metadata.getLayer(parseChainID(chainID))
  }

  /**
   * The layer's tar, byte for byte as it was imported: its tar-split entries and the files of
   * its `diff/`, verified against its diff ID at the end (`LayerDigestMismatchError`).
   */
  async tarStream(chainID: ChainID | string): Promise<Readable> {
    const record = await this.get(chainID)
    const held = await this.driver.diffGetter(record.cacheID)
    let tarSplit: Readable
    try {
      tarSplit = await this.#metadata.openTarSplit(record.chainID)
    } catch (err) {
      await held.close()
      throw err
    }
    const assembled = assemble(readEntries(tarSplit), held.getter)
    const verifier = new DigestVerifier(record.diffID)
    assembled.on('error', (err) => verifier.destroy(err))
    verifier.on('close', () => {
      assembled.destroy()
      tarSplit.destroy()
      void held.close()
    })
    return assembled.pipe(verifier)
  }

  /** Closes the metadata store. Idempotent. */
  close(): Promise<void> {
    return this.#metadata.close()
  }
}

/** Passes bytes through; fails at the end when their sha256 is not `expected`. */
class DigestVerifier extends Transform {
  readonly #expected: string
  readonly #hash = createHash('sha256')

  constructor(expected: string) {
    super()
    this.#expected = expected
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk)
    callback(null, chunk)
  }

  override _flush(callback: TransformCallback): void {
    const actual = `sha256:${this.#hash.digest('hex')}`
    callback(actual === this.#expected ? null : new LayerDigestMismatchError(this.#expected, actual, 'tar-stream'))
  }
}
