/**
 * Compression sniffing and streaming decompression of layer input: gzip through zlib, zstd
 * through `zlib.createZstdDecompress` where Node has it (22.15+), else through the `zstd -dc`
 * binary. Nothing is buffered beyond one chunk, and nothing is spooled to disk.
 */
import { spawn } from 'node:child_process'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Transform } from 'node:stream'
import * as zlib from 'node:zlib'
import createDebug from 'debug'
import { CompressionNotSupportedError, CorruptInputError } from './errors.js'
import type { Compression } from './errors.js'

const debug = createDebug('layerstore:layer')

/** Enough bytes to recognise every magic we check (xz has the longest, 6). */
const SNIFF_BYTES = 6

/** The magic numbers of compressed streams at the start of layer input. */
const MAGICS: ReadonlyArray<{ readonly name: string; readonly bytes: readonly number[] }> = [
  { name: 'gzip', bytes: [0x1f, 0x8b] },
  { name: 'zstd', bytes: [0x28, 0xb5, 0x2f, 0xfd] },
  { name: 'bzip2', bytes: [0x42, 0x5a, 0x68] },
  { name: 'xz', bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
]

/** What {@link decompress} returns. */
export interface DecompressedInput {
  /** What the input was compressed with. */
  readonly compression: Compression
  /** The uncompressed bytes; iterate once. Errors are typed (`CorruptInputError`, …). */
  readonly bytes: AsyncIterable<Buffer>
}

/** Options of {@link decompress}. */
export interface DecompressOptions {
  /** Called with the running count of input (compressed) bytes read. */
  readonly onInputBytes?: (total: number) => void
  /**
   * How to run zstd: `'auto'` (zlib if Node has it, else the `zstd` binary), `'zlib'` or
   * `'binary'`. A seam for tests; default `'auto'`.
   */
  readonly zstd?: 'auto' | 'zlib' | 'binary'
}

/**
 * Sniffs the first bytes of `source` and returns its uncompressed bytes: gzip and zstd are
 * decompressed on the fly, anything else is passed through unchanged (it should be a tar).
 *
 * @throws CompressionNotSupportedError for bzip2 or xz input, or zstd without a decompressor
 *   (the message names what to install).
 */
export async function decompress(source: AsyncIterable<Uint8Array>, options: DecompressOptions = {}): Promise<DecompressedInput> {
  const it = source[Symbol.asyncIterator]()
  const head: Buffer[] = []
  let headLength = 0
  let ended = false
  let total = 0
  const count = (chunk: Uint8Array): Buffer => {
    total += chunk.length
    options.onInputBytes?.(total)
    return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)
  }
  while (headLength < SNIFF_BYTES) {
    const next = await it.next()
    if (next.done) {
      ended = true
      break
    }
    if (next.value.length === 0) continue
    head.push(count(next.value))
    headLength += next.value.length
  }
  const raw = (async function* (): AsyncGenerator<Buffer> {
    try {
      yield* head
      head.length = 0
      while (!ended) {
        const next = await it.next()
        if (next.done) ended = true
        else if (next.value.length) yield count(next.value)
      }
    } finally {
      // Stopped early (an error downstream): let the source release what it holds.
      if (!ended) await it.return?.()
    }
  })()
  const prefix = head.length === 1 ? head[0]! : Buffer.concat(head)
  const magic = MAGICS.find((m) => m.bytes.every((b, i) => prefix[i] === b))?.name
  debug('layer input compression: %s', magic ?? 'none')
  switch (magic) {
    case undefined:
      return { compression: 'none', bytes: raw }
    case 'gzip':
      return { compression: 'gzip', bytes: throughTransform(raw, zlib.createGunzip(), 'gzip') }
    case 'zstd': {
      const how = options.zstd ?? 'auto'
      const native = how === 'binary' ? undefined : zlibZstd()
      if (native) return { compression: 'zstd', bytes: throughTransform(raw, native(), 'zstd') }
      if (how !== 'zlib') return { compression: 'zstd', bytes: zstdBinary(raw) }
      await it.return?.()
      throw new CompressionNotSupportedError('zstd', `this Node.js (${process.version}) has no zlib zstd; use Node.js 22.15 or later`)
    }
    default:
      // `raw` never started, so ending it would not reach the source: end the source itself.
      await it.return?.()
      throw new CompressionNotSupportedError(magic, 'only gzip and zstd layers are supported; decompress it first')
  }
}

type ZstdFactory = () => Transform

function zlibZstd(): ZstdFactory | undefined {
  const create = (zlib as unknown as { createZstdDecompress?: ZstdFactory }).createZstdDecompress
  return typeof create === 'function' ? () => create.call(zlib) : undefined
}

function isZlibError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && (code.startsWith('Z_') || code.startsWith('ERR_ZLIB') || code.startsWith('ERR_ZSTD'))
}

/** Classifies a zlib error: an early end is truncation, anything else corruption. */
function zlibError(err: unknown, compression: Compression): Error {
  const e = err as { code?: unknown; message?: unknown }
  const truncated = e.code === 'Z_BUF_ERROR' || /unexpected end/i.test(String(e.message))
  return new CorruptInputError(compression, truncated, String(e.message ?? err), { cause: err })
}

/** Pipes `raw` through a zlib transform and yields its output, with typed errors. */
async function* throughTransform(raw: AsyncGenerator<Buffer>, transform: Transform, compression: Compression): AsyncGenerator<Buffer> {
  const feeding = pipeline(Readable.from(raw, { objectMode: false }), transform)
  // Seen below through the transform's own iteration; never unhandled.
  feeding.catch(() => undefined)
  try {
    for await (const chunk of transform as AsyncIterable<Buffer>) yield chunk
    await feeding
  } catch (err) {
    if (isKindedFromSource(err) || !isZlibError(err)) throw err
    throw zlibError(err, compression)
  } finally {
    // Destroying the transform makes the pipeline destroy the source, which ends `raw`.
    transform.destroy()
    closeQuietly(raw)
  }
}

/**
 * Ends `raw` without waiting: a `return()` queued behind a pending `next()` settles when that
 * does, and the pipeline that owns the pending call is being torn down already.
 */
function closeQuietly(raw: AsyncGenerator<Buffer>): void {
  raw.return(undefined).catch(() => undefined)
}

/** Errors raised by the input itself (already typed) pass through the decompressor unchanged. */
function isKindedFromSource(err: unknown): boolean {
  return typeof (err as { kind?: unknown } | null)?.kind === 'string'
}

/** Runs `zstd -dc` with `raw` on its stdin and yields its stdout. */
async function* zstdBinary(raw: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  const child = spawn('zstd', ['-dc', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < 4096) stderr += s
  })
  const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, error }))
    child.once('close', (code) => resolve({ code }))
  })
  // EPIPE when zstd stops reading early (corrupt input) is reported through its exit status.
  const feeding = pipeline(Readable.from(raw, { objectMode: false }), child.stdin).catch((err: unknown) => err)
  let finished = false
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) yield chunk
    const { code, error } = await exited
    if (error) {
      const missing = (error as { code?: unknown }).code === 'ENOENT'
      throw new CompressionNotSupportedError(
        'zstd',
        missing ? 'Node.js has no zlib zstd and the `zstd` program is not installed; install it (apt-get install zstd)' : error.message,
        { cause: error },
      )
    }
    const fed = await feeding
    if (isKindedFromSource(fed)) throw fed as Error
    if (code !== 0) {
      const truncated = /unexpected end|truncated|premature/i.test(stderr)
      throw new CorruptInputError('zstd', truncated, stderr.trim() || `zstd exited with status ${code}`)
    }
    finished = true
  } finally {
    if (!finished) child.kill('SIGKILL')
    closeQuietly(raw)
  }
}
