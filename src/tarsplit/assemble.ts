/**
 * Reassembly: tar-split entries plus member content → the original tar bytes, as Go's
 * `asm.WriteOutputTarStream` produces them, but verified before or while they are released.
 */
import { Readable } from 'node:stream'
import createDebug from 'debug'
import { Crc64 } from './crc64.js'
import { FILE_TYPE, SEGMENT_TYPE } from './entry.js'
import type { Entry, FileEntry, SparseExtent } from './entry.js'
import { ChecksumMismatchError, MetadataFormatError } from './errors.js'
import type { FileGetter } from './file-getter.js'

const debug = createDebug('layerstore:tarsplit')

/** Options of {@link assemble}. */
export interface AssembleOptions {
  /**
   * Members with at most this many content bytes are read whole and verified before any of
   * their bytes is released; bigger ones stream and fail at their end. Default 1 MiB.
   */
  readonly verifyBeforeRelease?: number
  /**
   * How many upcoming small members may be fetched ahead, concurrently, while earlier
   * bytes are consumed (a layer of many small files is bound by open/read/close latency,
   * not bandwidth). At most this many × `verifyBeforeRelease` bytes are held. Default 16;
   * 0 fetches strictly in order.
   */
  readonly prefetch?: number
}

const DEFAULT_VERIFY_BEFORE_RELEASE = 1024 * 1024
const DEFAULT_PREFETCH = 16

/**
 * Rebuilds a tar stream: each segment's bytes verbatim, then for each file entry with
 * `size > 0` its content from `getter`, in stream order (positions are ignored, as in Go).
 *
 * Guarantees: every member's content has exactly its logical size (for a sparse member, the
 * extents' bytes, holes counted as zeros) and the CRC-64 recorded at disassembly. A member of
 * up to `verifyBeforeRelease` bytes is checked before its first byte is pushed; a bigger one
 * streams, so a mismatch is found only at its end, after its bytes went out. That is why the
 * layer store also checks the sha256 of the whole stream against the diffID.
 *
 * The stream is lazy (nothing is read before the first `read`) and follows backpressure.
 * Failures destroy it with a typed error: `ChecksumMismatchError` (content differs, too long
 * or too short; no valid checksum recorded), `MissingFileError`, `UnsafeNameError` (from the
 * getter), `MetadataFormatError` or `DuplicatePathError` (from the entries). Destroying it
 * early stops the entries and the current file.
 */
export function assemble(entries: AsyncIterable<Entry>, getter: FileGetter, options: AssembleOptions = {}): Readable {
  return Readable.from(assembleChunks(entries, getter, options), { objectMode: false, highWaterMark: 64 * 1024 })
}

/** An entry read ahead, with its content already being fetched when it is a small file. */
interface Pending {
  readonly entry: Entry
  readonly content?: Promise<Buffer[]>
}

async function* assembleChunks(
  entries: AsyncIterable<Entry>,
  getter: FileGetter,
  options: AssembleOptions,
): AsyncGenerator<Buffer> {
  const small = options.verifyBeforeRelease ?? DEFAULT_VERIFY_BEFORE_RELEASE
  const ahead = options.prefetch ?? DEFAULT_PREFETCH
  const it = entries[Symbol.asyncIterator]()
  const queue: Pending[] = []
  let fetching = 0
  let exhausted = false
  let members = 0
  let bytes = 0

  const isSmall = (e: Entry): boolean => e.type === FILE_TYPE && e.size > 0 && dataLength(e) <= small
  const fetchSmall = (e: FileEntry): Promise<Buffer[]> => {
    fetching++
    const p = readVerified(e, getter).finally(() => fetching--)
    // Seen later by the loop; until then a failure must not count as unhandled.
    p.catch(() => undefined)
    return p
  }
  // Reads entries ahead, starting the fetch of small files while there is room; one entry
  // at least when the queue is empty. Only one fill runs at a time (`pump`), so entries
  // join the queue in stream order.
  const fill = async (): Promise<void> => {
    while (!exhausted && (queue.length === 0 || (queue.length <= ahead && fetching < ahead))) {
      const r = await it.next()
      if (r.done) {
        exhausted = true
        return
      }
      const e = checkEntry(r.value)
      queue.push(e.type === FILE_TYPE && ahead > 0 && isSmall(e) && fetching < ahead ? { entry: e, content: fetchSmall(e) } : { entry: e })
    }
  }
  let filling: Promise<void> | undefined
  let failure: { readonly error: unknown } | undefined
  const pump = (): Promise<void> => {
    filling ??= fill().then(
      () => {
        filling = undefined
      },
      (error: unknown) => {
        // Kept and thrown once the entries before the failure have been written.
        failure = { error }
        filling = undefined
      },
    )
    return filling
  }

  try {
    for (;;) {
      while (queue.length === 0) {
        if (failure) throw failure.error
        if (exhausted) break
        await pump()
      }
      const next = queue.shift()
      if (!next) break
      const { entry, content } = next
      if (entry.type === SEGMENT_TYPE) {
        if (entry.payload && entry.payload.length > 0) {
          bytes += entry.payload.length
          yield entry.payload
        }
        continue
      }
      if (entry.size === 0) continue // Go writes nothing and opens nothing for these
      members++
      // Look ahead while this member is written.
      if (ahead > 0) void pump()
      if (content || isSmall(entry)) {
        for (const chunk of await (content ?? readVerified(entry, getter))) {
          bytes += chunk.length
          yield chunk
        }
        continue
      }
      // A big member: release bytes as they come, verify at the end.
      const check = new ContentCheck(entry)
      for await (const chunk of await getter(entry.name, entry)) {
        check.add(chunk)
        bytes += chunk.length
        yield chunk
      }
      check.finish()
    }
    debug('reassembled %d members, %d bytes', members, bytes)
  } finally {
    // Let a running fill settle first: returning an iterator with a next() in flight is
    // not allowed for every iterator.
    await filling
    await it.return?.()
  }
}

/** Validates what the decoder guarantees, for entries that come from elsewhere. */
function checkEntry(e: Entry): Entry {
  if (e.type === SEGMENT_TYPE) return e
  if (e.type !== FILE_TYPE) {
    throw new MetadataFormatError(`unknown entry type ${String((e as { type: unknown }).type)} at position ${String((e as { position: unknown }).position)}`)
  }
  if (!Number.isSafeInteger(e.size) || e.size < 0) {
    throw new MetadataFormatError(`invalid size ${e.size} for member at position ${e.position}`)
  }
  if (e.sparse) {
    let end = 0
    for (const x of e.sparse) {
      if (!Number.isSafeInteger(x.offset) || !Number.isSafeInteger(x.length) || x.offset < end || x.length < 0 || x.offset + x.length > e.size) {
        throw new MetadataFormatError(`invalid sparse map for member at position ${e.position}`)
      }
      end = x.offset + x.length
    }
  }
  return e
}

/** Bytes the getter must return for a member: all of it, or the sum of its extents. */
function dataLength(e: FileEntry): number {
  if (!e.sparse) return e.size
  let n = 0
  for (const x of e.sparse) n += x.length
  return n
}

/** Reads a small member whole and verifies it before anything is released. */
async function readVerified(entry: FileEntry, getter: FileGetter): Promise<Buffer[]> {
  const check = new ContentCheck(entry)
  const chunks: Buffer[] = []
  for await (const chunk of await getter(entry.name, entry)) {
    check.add(chunk)
    chunks.push(chunk)
  }
  check.finish()
  return chunks
}

/**
 * Running length and CRC-64 check of one member's content. For a sparse member the CRC
 * covers the logical file: the holes before, between and after the extents count as zeros
 * (added in O(log n), a hole may be tens of GiB).
 */
class ContentCheck {
  readonly #entry: FileEntry
  readonly #expected: number
  readonly #crc = new Crc64()
  readonly #extents: readonly SparseExtent[] | undefined
  #count = 0
  #k = 0 // current extent
  #inExtent = 0 // bytes of it seen
  #logical = 0 // logical offset reached (end of the data seen, holes included)

  constructor(entry: FileEntry) {
    this.#entry = entry
    this.#expected = dataLength(entry)
    this.#extents = entry.sparse
    // Fail before reading anything when the metadata cannot possibly match.
    if (entry.payload === null || entry.payload.length !== 8) {
      throw new ChecksumMismatchError(entry.name, 'the metadata records no valid CRC-64 for it')
    }
  }

  add(chunk: Buffer): void {
    if (this.#count + chunk.length > this.#expected) {
      throw new ChecksumMismatchError(
        this.#entry.name,
        `the file has more than the ${this.#expected} bytes recorded${this.#extents ? ' in its extents' : ''}`,
      )
    }
    this.#count += chunk.length
    const extents = this.#extents
    if (!extents) {
      this.#crc.update(chunk)
      return
    }
    let off = 0
    while (off < chunk.length) {
      const e = extents[this.#k]!
      if (this.#inExtent === 0) {
        this.#crc.updateZeros(e.offset - this.#logical)
        this.#logical = e.offset
      }
      const take = Math.min(e.length - this.#inExtent, chunk.length - off)
      this.#crc.update(chunk.subarray(off, off + take))
      off += take
      this.#inExtent += take
      this.#logical += take
      if (this.#inExtent === e.length) {
        this.#k++
        this.#inExtent = 0
      }
      // Empty extents select nothing; skip them so that the loop always progresses.
      while (this.#k < extents.length && extents[this.#k]!.length === 0) this.#k++
    }
  }

  finish(): void {
    if (this.#count < this.#expected) {
      throw new ChecksumMismatchError(
        this.#entry.name,
        `the file has ${this.#count} bytes, ${this.#expected} were recorded${this.#extents ? ' in its extents' : ''}`,
      )
    }
    if (this.#extents) this.#crc.updateZeros(this.#entry.size - this.#logical)
    if (!this.#crc.digest().equals(this.#entry.payload!)) {
      throw new ChecksumMismatchError(this.#entry.name)
    }
  }
}
