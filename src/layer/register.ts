/**
 * The one streaming pass of a register: the input is read once, and the same bytes feed the
 * decompressor, the sha256 of the diff ID, the tar-split disassembler (whose entries go to
 * the transaction's `tar-split.json.gz`) and the driver's `applyDiff`. Nothing is buffered
 * whole and nothing is spooled to a temporary file.
 *
 * ```
 * input ─► decompress ─► tap (sha256, byte count, progress, abort) ─► disassemble ─► members ─► driver.applyDiff
 *                                                                        └─► sink (tar-split entries)
 * ```
 */
import { createHash } from 'node:crypto'
import createDebug from 'debug'
import type { DiffID } from '../metadata/index.js'
import { disassemble, recyclerOf } from '../tarsplit/index.js'
import type { EntrySink, TarMember } from '../tarsplit/index.js'
import { diffIDFromHex } from './chain-id.js'
import { decompress } from './decompress.js'
import type { DecompressOptions } from './decompress.js'
import type { Compression } from './errors.js'
import type { LayerInput, StreamProgress } from './layer.js'

const debug = createDebug('layerstore:layer')

/** Options of {@link streamLayer}. */
export interface StreamLayerOptions {
  /** Where the tar-split entries go (the transaction's packer); omit to discard them. */
  readonly sink?: EntrySink
  readonly onProgress?: (progress: StreamProgress) => void
  readonly signal?: AbortSignal
  /** Seam: how zstd is decompressed (see `decompress`). */
  readonly zstd?: DecompressOptions['zstd']
}

/** What one pass found. */
export interface StreamedLayer {
  /** sha256 of every uncompressed byte read, trailing padding included. */
  readonly diffID: DiffID
  /** What `apply` returned (the driver's apply size). */
  readonly size: number
  readonly compression: Compression
  /** Uncompressed bytes read. */
  readonly bytes: number
}

/**
 * Reads `input` once and hands its members to `apply` (e.g. `driver.applyDiff` of a fresh
 * cache ID). After `apply` returns, whatever it left unread (trailing bytes after the archive
 * end) is read too, so that the digest and the tar-split entries cover the whole input, as
 * moby drains its stream.
 *
 * When `input` recycles its chunks (`io.readFileChunks`) and is not compressed, the
 * disassembler releases them as it goes (the tap hashes each chunk before passing it on,
 * unchanged), so memory stays flat; compressed input is read as a plain source.
 *
 * Errors: `CorruptInputError`/`CompressionNotSupportedError` from the decompressor, the
 * disassembler's typed errors (`TruncatedArchiveError`, `InvalidHeaderError`,
 * `DuplicatePathError` from the sink), whatever `apply` throws, or the abort reason.
 */
export async function streamLayer(
  input: LayerInput,
  apply: (members: AsyncIterable<TarMember>) => Promise<number>,
  options: StreamLayerOptions = {},
): Promise<StreamedLayer> {
  let inputBytes = 0
  let bytes = 0
  const report = (): void => options.onProgress?.({ bytes, inputBytes })
  options.signal?.throwIfAborted()
  const bytesIn: AsyncIterable<Uint8Array> = input instanceof Uint8Array ? (async function* () { yield input })() : input
  const source = await decompress(bytesIn, {
    onInputBytes: (n) => {
      inputBytes = n
    },
    ...(options.zstd ? { zstd: options.zstd } : {}),
  })
  const hash = createHash('sha256')
  const signal = options.signal
  const tap = (async function* (): AsyncGenerator<Buffer> {
    for await (const chunk of source.bytes) {
      signal?.throwIfAborted()
      // Hashed before it is passed on, so the chunk may be recycled once the parser is done.
      hash.update(chunk)
      bytes += chunk.length
      report()
      yield chunk
    }
  })()
  // Decompressed bytes are the decompressor's own buffers; only raw input chunks are lent.
  const recycler = source.compression === 'none' ? recyclerOf(input) : undefined
  const members = disassemble(tap, {
    ...(options.sink !== undefined ? { sink: options.sink } : {}),
    ...(recycler !== undefined ? { recycler } : {}),
  })
  const size = await apply(members)
  // Trailing data after the archive end: read to EOF so the digest and the sink see it all.
  for (;;) {
    const next = await members.next()
    if (next.done) break
    for await (const chunk of next.value.lent ?? next.value.content) void chunk
  }
  const diffID = diffIDFromHex(hash.digest('hex'))
  debug('streamed %d bytes (%s) → %s, apply size %d', bytes, source.compression, diffID, size)
  return { diffID, size, compression: source.compression, bytes }
}
