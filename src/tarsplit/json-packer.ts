/**
 * The JSON packer: numbers entries and writes them as Go's `storage.NewJSONPacker` does, one
 * JSON object per line, optionally gzipped (moby stores `tar-split.json.gz`).
 */
import { Writable } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import { constants as zlib, createGzip, gzipSync } from 'node:zlib'
import createDebug from 'debug'
import { FILE_TYPE, SEGMENT_TYPE } from './entry.js'
import type { EntryInput, EntrySink } from './entry.js'
import { DuplicatePathError } from './errors.js'
import { lineText } from './go-json.js'
import { writeLine } from './line-writer.js'
import { goClean } from './go-path.js'
import { PathSet } from './path-set.js'

const debug = createDebug('layerstore:tarsplit')

/**
 * Lines are copied into a buffer of this size and written when the next one might not fit: a
 * layer of 55k files makes 110k entries, and one zlib call per line costs more than the
 * encoding itself. Copied, not gathered as a Buffer per line: objects held across many
 * allocations survive V8's scavenges, and survivors make it grow its young generation (see
 * path-set.ts); a line's string dies as soon as it is copied.
 */
const BATCH_BYTES = 64 * 1024

/**
 * zlib's fastest level, where Go's `gzip.NewWriter` takes the default (6): on a chain layer's
 * 32 KiB of JSON, 68 us against 258 us, for 17 % more bytes (1,687 against 1,439), and a
 * layer of 55k files has 30 MiB of JSON to compress. Nothing reads these bytes but a gunzip.
 */
const GZIP_LEVEL = zlib.Z_BEST_SPEED

/** Options of {@link JsonPacker}. */
export interface JsonPackerOptions {
  /**
   * Gzip the output (at {@link GZIP_LEVEL}; any gzip reader takes it): the form
   * moby stores as `tar-split.json.gz`. Default false.
   */
  readonly gzip?: boolean
}

/** The batch after `finish`: never written into (add() refuses by then). */
const NO_BATCH = Buffer.alloc(0)

/**
 * Writes entries to a Writable as tar-split JSON lines, byte for byte as Go writes them.
 *
 * Positions are numbered from 0 in the order of `add` calls. A FileEntry whose name cleans
 * (Go `path.Clean`) to the name of an earlier FileEntry is refused with `DuplicatePathError`,
 * without writing it or using up its position (Go's `ErrDuplicatePath`); segments are never
 * checked. After an error the packer stays usable, but callers normally abandon the layer.
 *
 * @example
 * ```ts
 * const packer = new JsonPacker(createWriteStream('tar-split.json.gz'), { gzip: true })
 * await packer.add({ type: 2, payload: headerBytes })
 * await packer.add({ type: 1, name: Buffer.from('a.txt'), size: 6, payload: crc })
 * await packer.finish()
 * ```
 */
export class JsonPacker implements EntrySink {
  readonly #out: Writable
  /**
   * Where lines go: `#out`, or with gzip the zlib stream in front of it, made at the first
   * write (see {@link #sink}); null until then.
   */
  #target: Writable | null
  #done: Promise<void>
  readonly #seen = new PathSet()
  #position = 0
  #batch = Buffer.allocUnsafe(BATCH_BYTES)
  #batchBytes = 0
  #failure: Error | undefined
  #finished = false

  /**
   * @param out where the JSON (or gzip) bytes go. The packer ends it in {@link finish}.
   */
  constructor(out: Writable, options: JsonPackerOptions = {}) {
    this.#out = out
    this.#target = options.gzip ? null : out
    this.#done = this.#watch(finished(out))
  }

  /** Remembers the first stream error so that the next add() reports it; never unhandled. */
  #watch(done: Promise<void>): Promise<void> {
    done.catch((err: unknown) => {
      this.#failure ??= err instanceof Error ? err : new Error(String(err))
    })
    return done
  }

  /**
   * The stream to write to. With gzip, the zlib stream is made only when a first batch is
   * full: a small layer's lines fit in one batch, which `finish` compresses in one
   * synchronous call. Setting up and tearing down a zlib stream costs about 0.5 ms, which a
   * chain of 125 small layers paid at every layer (issue #6).
   */
  #sink(): Writable {
    if (this.#target === null) {
      const gzip = createGzip({ level: GZIP_LEVEL })
      this.#target = gzip
      this.#done = this.#watch(pipeline(gzip, this.#out))
    }
    return this.#target
  }

  /** How many entries were written so far (the next entry's position). */
  get count(): number {
    return this.#position
  }

  /**
   * Numbers and writes one entry. Returns a promise only when the output needs draining
   * (backpressure); await it before adding more.
   *
   * @throws DuplicatePathError for a FileEntry whose cleaned name was seen before.
   * @throws MetadataFormatError for an entry that cannot be encoded (negative size…).
   * @throws the output stream's error once it has failed, and an Error after `finish`.
   */
  add(entry: EntryInput): void | Promise<void> {
    if (this.#failure) throw this.#failure
    if (this.#finished) throw new Error('JsonPacker.add() after finish()')
    // Encode before recording the name, so that a refused entry leaves no trace: into the
    // batch (its bytes count only once #batchBytes moves), or as a string when it is rare.
    let end = writeLine(entry, this.#position, this.#batch, this.#batchBytes)
    let full = false
    if (end === -1) {
      full = this.#writeBatch()
      end = writeLine(entry, this.#position, this.#batch, 0)
    }
    const text = end < 0 ? lineText(entry, this.#position) : undefined
    if (entry.type === FILE_TYPE && !this.#seen.add(goClean(entry.name))) throw new DuplicatePathError(entry.name)
    this.#position++
    if (text === undefined) {
      this.#batchBytes = end
    } else {
      // Segment lines are ASCII (base64); a file line's UTF-16 unit takes at most 3 UTF-8 bytes.
      const encoding = entry.type === SEGMENT_TYPE ? 'latin1' : 'utf8'
      const most = encoding === 'latin1' ? text.length : 3 * text.length
      if (this.#batchBytes + most > BATCH_BYTES) full = this.#writeBatch() || full
      // A line longer than a batch (a segment of up to 1 MiB of trailing data) goes alone.
      if (most > BATCH_BYTES) full = !this.#sink().write(Buffer.from(text, encoding)) || full
      else this.#batchBytes += this.#batch.write(text, this.#batchBytes, encoding)
    }
    if (full) return this.#drain()
  }

  /**
   * Writes what is buffered, ends the output and resolves once it has flushed (and, for a
   * file, closed). Rejects with the output's error if it failed. A second call returns the
   * same outcome without writing anything.
   */
  async finish(): Promise<void> {
    if (!this.#finished) {
      this.#finished = true
      if (!this.#failure) await this.#end()
      debug('packed %d entries', this.#position)
    }
    await this.#done
  }

  /** Writes what is buffered and ends the output. */
  async #end(): Promise<void> {
    if (this.#target !== null) {
      await this.#flush()
      this.#target.end()
      return
    }
    // Gzip, and every line is still in the batch (see #sink).
    const gz = gzipSync(this.#batch.subarray(0, this.#batchBytes), { level: GZIP_LEVEL })
    this.#batch = NO_BATCH
    this.#batchBytes = 0
    this.#out.end(gz)
  }

  /**
   * Writes what is buffered, if anything; true when the output asks us to wait for 'drain'.
   * `last`: nothing follows (`finish`), so no fresh batch is needed.
   */
  #writeBatch(last = false): boolean {
    if (this.#batchBytes === 0) return false
    // The output keeps the chunk until zlib or the file took it: a fresh buffer for the next.
    const chunk = this.#batch.subarray(0, this.#batchBytes)
    this.#batch = last ? NO_BATCH : Buffer.allocUnsafe(BATCH_BYTES)
    this.#batchBytes = 0
    return !this.#sink().write(chunk)
  }

  #flush(): void | Promise<void> {
    if (this.#writeBatch(true)) return this.#drain()
  }

  /** Waits for 'drain' of the stream a write just filled. */
  #drain(): Promise<void> {
    const target = this.#target ?? this.#out
    return new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        target.off('error', onError)
        target.off('close', onClose)
        resolve()
      }
      const onError = (err: Error): void => {
        target.off('drain', onDrain)
        target.off('close', onClose)
        reject(err)
      }
      // A stream destroyed while we wait never drains; fail rather than hang.
      const onClose = (): void => {
        target.off('drain', onDrain)
        target.off('error', onError)
        reject(this.#failure ?? new Error('the tar-split output closed before it drained'))
      }
      target.once('drain', onDrain)
      target.once('error', onError)
      target.once('close', onClose)
    })
  }
}

/**
 * Packs entries into memory and returns the bytes (plain JSON lines, or gzip). Meant for tests
 * and small tools; a layer's metadata should be streamed with {@link JsonPacker}.
 */
export async function packToBuffer(
  entries: Iterable<EntryInput> | AsyncIterable<EntryInput>,
  options: JsonPackerOptions = {},
): Promise<Buffer> {
  const chunks: Buffer[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk)
      callback()
    },
  })
  const packer = new JsonPacker(sink, options)
  try {
    for await (const entry of entries) await packer.add(entry)
  } catch (err) {
    sink.destroy()
    throw err
  }
  await packer.finish()
  return Buffer.concat(chunks)
}
