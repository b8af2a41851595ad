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
 *
 * `openInput` makes the first half; a register that may find its layer registered already
 * puts match-existing.ts between the tap and the disassembler.
 */
import { createHash } from 'node:crypto'
import createDebug from 'debug'
import type { DiffID } from '../metadata/index.js'
import { disassemble, recyclerOf } from '../tarsplit/index.js'
import type { ChunkRecycler, EntrySink, TarMember } from '../tarsplit/index.js'
import { diffIDFromHex } from './chain-id.js'
import { decompress } from './decompress.js'
import type { DecompressOptions } from './decompress.js'
import type { Compression } from './errors.js'
import type { LayerInput, StreamProgress } from './layer.js'

const debug = createDebug('layerstore:layer')

/** Options of {@link openInput}. */
export interface OpenInputOptions {
  readonly onProgress?: (progress: StreamProgress) => void
  readonly signal?: AbortSignal
  /** Seam: how zstd is decompressed (see `decompress`). */
  readonly zstd?: DecompressOptions['zstd']
}

/** Options of {@link streamLayer}. */
export interface StreamLayerOptions extends OpenInputOptions {
  /** Where the tar-split entries go (the transaction's packer); omit to discard them. */
  readonly sink?: EntrySink
  /**
   * Called with the bytes handed on to `apply` so far, as they are: what the driver is
   * writing (a `FlushAhead` starts writeback with it).
   */
  readonly onApplying?: (bytes: number) => void
}

/**
 * A layer input opened for its one pass: decompressed, and each uncompressed chunk hashed,
 * counted, reported and checked for an abort before it is handed on. What reads `bytes` may
 * be something else than the disassembler (see match-existing.ts), which is why the digest
 * is taken here, upstream of it.
 */
export interface OpenedInput {
  /** The uncompressed bytes; iterate once. */
  readonly bytes: AsyncIterable<Buffer>
  /** The lease on the chunks of `bytes` when they may be released for reuse, else undefined. */
  readonly recycler: ChunkRecycler | undefined
  readonly compression: Compression
  /** Uncompressed bytes read so far. */
  bytesRead(): number
  /** The diff ID: sha256 of every uncompressed byte read. Call it after the last one. */
  digest(): DiffID
}

/** Opens `input` for its one pass (see {@link OpenedInput}). */
export async function openInput(input: LayerInput, options: OpenInputOptions = {}): Promise<OpenedInput> {
  let inputBytes = 0
  let bytes = 0
  options.signal?.throwIfAborted()
  const bytesIn: AsyncIterable<Uint8Array> = input instanceof Uint8Array ? (async function* () { yield input })() : input
  const source = await decompress(bytesIn, {
    onInputBytes: (n) => {
      inputBytes = n
    },
    ...(options.zstd ? { zstd: options.zstd } : {}),
  })
  const hash = createHash('sha256')
  let digest: DiffID | undefined
  const { signal, onProgress } = options
  const tap = (async function* (): AsyncGenerator<Buffer> {
    for await (const chunk of source.bytes) {
      signal?.throwIfAborted()
      // Hashed before it is passed on, so the chunk may be recycled once the parser is done.
      hash.update(chunk)
      bytes += chunk.length
      onProgress?.({ bytes, inputBytes })
      yield chunk
    }
  })()
  return {
    bytes: tap,
    // Decompressed bytes are the decompressor's own buffers; only raw input chunks are lent.
    recycler: source.compression === 'none' ? recyclerOf(input) : undefined,
    compression: source.compression,
    bytesRead: () => bytes,
    digest: () => (digest ??= diffIDFromHex(hash.digest('hex'))),
  }
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
  input: LayerInput | OpenedInput,
  apply: (members: AsyncIterable<TarMember>) => Promise<number>,
  options: StreamLayerOptions = {},
): Promise<StreamedLayer> {
  const source = isOpened(input) ? input : await openInput(input, options)
  const members = disassemble(options.onApplying ? counted(source.bytes, options.onApplying) : source.bytes, {
    ...(options.sink !== undefined ? { sink: options.sink } : {}),
    ...(source.recycler !== undefined ? { recycler: source.recycler } : {}),
  })
  const size = await apply(members)
  // Trailing data after the archive end: read to EOF so the digest and the sink see it all.
  for (;;) {
    const next = await members.next()
    if (next.done) break
    for await (const chunk of next.value.lent ?? next.value.content) void chunk
  }
  const diffID = source.digest()
  const bytes = source.bytesRead()
  debug('streamed %d bytes (%s) → %s, apply size %d', bytes, source.compression, diffID, size)
  return { diffID, size, compression: source.compression, bytes }
}

/** Passes `bytes` on unchanged (lent chunks stay lent), reporting their running total. */
async function* counted(bytes: AsyncIterable<Buffer>, report: (total: number) => void): AsyncGenerator<Buffer> {
  let total = 0
  for await (const chunk of bytes) {
    total += chunk.length
    report(total)
    yield chunk
  }
}

function isOpened(input: LayerInput | OpenedInput): input is OpenedInput {
  return typeof (input as Partial<OpenedInput>).digest === 'function' && 'bytes' in input
}
