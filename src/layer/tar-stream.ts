/**
 * A read-only layer's tar, rebuilt byte for byte: its tar-split entries, the file contents
 * from the driver, through `tarsplit.assemble`, hashed as the bytes go out and checked
 * against the diff ID at the end (moby's `verifiedReadCloser`).
 */
import { createHash } from 'node:crypto'
import { Transform } from 'node:stream'
import type { Readable, TransformCallback } from 'node:stream'
import createDebug from 'debug'
import { hasDiffGetter } from '../graphdriver/index.js'
import type { Driver } from '../graphdriver/index.js'
import type { FileMetadataStore } from '../metadata/index.js'
import { assemble, directoryGetter, readEntries } from '../tarsplit/index.js'
import type { FileGetter } from '../tarsplit/index.js'
import { LayerDigestMismatchError } from './errors.js'
import type { LayerInfo, TarStreamOptions } from './layer.js'

const debug = createDebug('layerstore:layer')

/** A getter over a layer's files and what releases it. */
export interface HeldGetter {
  readonly getter: FileGetter
  close(): Promise<void>
}

/** The driver's getter for `cacheID`: its own `diffGetter`, else a path getter on `get`. */
export async function layerGetter(driver: Driver, cacheID: string): Promise<HeldGetter> {
  if (hasDiffGetter(driver)) return driver.diffGetter(cacheID)
  const root = await driver.get(cacheID)
  let closed = false
  return {
    getter: directoryGetter(root),
    close: async () => {
      if (closed) return
      closed = true
      await driver.put(cacheID)
    },
  }
}

/**
 * Opens the verified tar stream of `layer`. The stream holds the driver's view of the
 * layer's files until it closes (end, error or destroy), then releases it.
 */
export async function verifiedTarStream(
  metadata: FileMetadataStore,
  driver: Driver,
  layer: LayerInfo,
  options: TarStreamOptions = {},
): Promise<Readable> {
  const tarSplit = await metadata.openTarSplit(layer.chainID)
  let held: HeldGetter
  try {
    held = await layerGetter(driver, layer.cacheID)
  } catch (err) {
    tarSplit.destroy()
    throw err
  }
  const assembled = assemble(readEntries(tarSplit), held.getter)
  const verifier = new DigestVerifier(layer.diffID, options.onProgress)
  // Errors of the assembly become the verifier's, so the caller sees one stream.
  assembled.on('error', (err) => verifier.destroy(err))
  verifier.on('close', () => {
    assembled.destroy()
    tarSplit.destroy()
    held.close().catch((err: unknown) => debug('releasing the files of %s failed: %s', layer.chainID, err))
  })
  return assembled.pipe(verifier)
}

/** Passes bytes through, hashing them; fails at the end when the digest is not `expected`. */
class DigestVerifier extends Transform {
  readonly #expected: string
  readonly #hash = createHash('sha256')
  readonly #onProgress: TarStreamOptions['onProgress']
  #bytes = 0

  constructor(expected: string, onProgress: TarStreamOptions['onProgress']) {
    super()
    this.#expected = expected
    this.#onProgress = onProgress
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk)
    this.#bytes += chunk.length
    this.#onProgress?.({ bytes: this.#bytes, inputBytes: this.#bytes })
    callback(null, chunk)
  }

  override _flush(callback: TransformCallback): void {
    const actual = `sha256:${this.#hash.digest('hex')}`
    if (actual !== this.#expected) {
      callback(new LayerDigestMismatchError(this.#expected, actual, 'tar-stream'))
      return
    }
    callback()
  }
}
