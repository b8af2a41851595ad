/**
 * The current member's content, for the disassembler: hands it to the caller as `content`,
 * `lent` or `lentNow` (see `disassemble`, "Chunk lifetime"), checksums file content as it
 * passes (a `ContentCursor`), adds other data (dumpdirs, labels) to the pending segment, and
 * drains what the caller left unread before the next header group.
 */
import type { ByteReader } from './byte-reader.js'
import { TRAILING_CHUNK_SIZE, type EntryEmitter } from './entry-emitter.js'
import { TruncatedArchiveError } from './errors.js'
import { ContentCursor, type MemberPlan } from './member-plan.js'
import type { TarMember } from './tar-header.js'

/** The end of an iteration; one frozen object for all. */
export const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined })

/** What content reads share with the disassembler: its sticky error. */
export interface ContentHost {
  /** The error every call throws from now on, or null. */
  failed(): unknown
  /** Makes `err` sticky (unless one is) and releases the source; returns the error to throw. */
  fail(err: unknown): Promise<unknown>
}

/** Reads members' content, one member at a time. */
export class ContentReader {
  readonly #reader: ByteReader
  readonly #out: EntryEmitter
  readonly #host: ContentHost
  /** Content read through `member.content` must keep its chunk (see disassemble). */
  readonly #recycling: boolean
  #cur: ContentCursor | null = null

  constructor(reader: ByteReader, out: EntryEmitter, recycling: boolean, host: ContentHost) {
    this.#reader = reader
    this.#out = out
    this.#recycling = recycling
    this.#host = host
  }

  /** A member is current: its content may be read, and must be ended ({@link end}). */
  get active(): boolean {
    return this.#cur !== null
  }

  /**
   * Makes `plan` the current member and builds what the caller gets. Its segment and (for
   * non-files) its F entry must have been sent already.
   */
  open(plan: MemberPlan): TarMember {
    const cur = new ContentCursor(plan, this.#out.enabled)
    this.#cur = cur
    if (plan.dataSize === 0) return Object.freeze({ header: plan.header, content: EMPTY_CONTENT, lent: EMPTY_CONTENT })
    const escape = this.#recycling
    return Object.freeze({
      header: plan.header,
      content: new Content(() => this.#iterator(cur, escape)),
      lent: new Content(() => this.#iterator(cur, false)),
      lentNow: () => this.#now(cur),
    })
  }

  /**
   * Forgets the current member (after an error, or when the caller stops): its content
   * iterators end, and `lentNow` gives undefined.
   */
  drop(): void {
    this.#cur = null
  }

  /**
   * Without a sink (only then), skips the rest of the current member's content that is in
   * the chunk at hand; content that nobody read is only skipped. True when no member is
   * current any more; false, with only content consumed, when more of it lies beyond the
   * chunk or unreferenced sparse bytes follow it ({@link end} then goes on from here).
   */
  skipNow(): boolean {
    const cur = this.#cur
    if (cur === null) return true
    if (cur.plan.unreferenced > 0) return false
    const r = this.#reader
    while (cur.remaining > 0 && r.ready > 0) this.#consume(cur)
    if (cur.remaining > 0) return false
    this.#cur = null
    return true
  }

  /**
   * Drains what the caller did not read of the current member, then emits its F entry (file
   * members) and any stored bytes its sparse map does not refer to.
   */
  async end(): Promise<void> {
    const cur = this.#cur!
    while (cur.remaining > 0) {
      await this.#fill(cur)
      this.#consume(cur)
      if (this.#out.pending >= TRAILING_CHUNK_SIZE) await this.#out.flush()
    }
    this.#cur = null
    const { plan } = cur
    if (plan.kind === 'file') await this.#out.addFile(plan, cur.digest())
    // Stored bytes no sparse extent refers to: raw bytes, where Go's reader puts skipped data.
    for (let n = plan.unreferenced; n > 0; ) {
      await this.#fill(cur)
      const bytes = this.#reader.take(Math.min(this.#reader.ready, n, TRAILING_CHUNK_SIZE))
      this.#out.push(bytes)
      n -= bytes.length
      if (this.#out.pending >= TRAILING_CHUNK_SIZE) await this.#out.flush()
    }
  }

  /**
   * Reads the next piece of the current member's content from the current chunk (which must
   * not be empty): a view, CRC'd for files, added to the pending segment for other data.
   */
  #consume(cur: ContentCursor): Buffer {
    const file = cur.plan.kind === 'file'
    // Bytes bound for a segment come in pieces of at most 1 MiB, so that one huge input
    // chunk cannot make a huge segment.
    const ready = this.#reader.ready
    const bytes = this.#reader.take(cur.piece(file ? ready : Math.min(ready, TRAILING_CHUNK_SIZE)))
    cur.consumed(bytes)
    if (!file) this.#out.push(bytes)
    return bytes
  }

  /**
   * The whole content of a dense file member, lent, when none of it was read yet and all of
   * it is in the chunk at hand; else undefined, with nothing consumed. (An error drops the
   * current member, so `cur` is no longer current after one.)
   */
  #now(cur: ContentCursor): Buffer | undefined {
    const { plan } = cur
    if (this.#cur !== cur || plan.kind !== 'file' || plan.extents !== null) return undefined
    if (cur.remaining !== plan.dataSize || this.#reader.ready < cur.remaining) return undefined
    return this.#consume(cur)
  }

  /** Makes sure the current chunk has bytes for `cur`, or fails as truncated. */
  async #fill(cur: ContentCursor): Promise<void> {
    if (this.#reader.ready === 0 && !(await this.#reader.pull())) {
      throw new TruncatedArchiveError('payload', this.#reader.offset, cur.plan.entryName)
    }
  }

  /** @param escape the pieces are given for good: their chunks must never be released */
  #iterator(cur: ContentCursor, escape: boolean): AsyncIterator<Buffer> {
    return {
      next: async (): Promise<IteratorResult<Buffer, undefined>> => {
        const failed = this.#host.failed()
        if (failed !== null) throw failed
        if (this.#cur !== cur || cur.remaining === 0) return DONE
        try {
          await this.#fill(cur)
          const bytes = this.#consume(cur)
          if (escape) this.#reader.escape()
          if (this.#out.pending >= TRAILING_CHUNK_SIZE) await this.#out.flush()
          return { done: false, value: bytes }
        } catch (err) {
          throw await this.#host.fail(err)
        }
      },
      return: async (): Promise<IteratorResult<Buffer, undefined>> => DONE,
    }
  }
}

/**
 * A member's content as an iterable. A class, not an object literal: a literal with the
 * computed key `[Symbol.asyncIterator]` is built by a runtime call in V8, about a
 * microsecond per member, which on a layer of 50,000 small files is noticeable.
 */
class Content implements AsyncIterable<Buffer> {
  readonly #open: () => AsyncIterator<Buffer>

  constructor(open: () => AsyncIterator<Buffer>) {
    this.#open = open
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this.#open()
  }
}

const EMPTY_CONTENT: AsyncIterable<Buffer> = Object.freeze({
  [Symbol.asyncIterator]: (): AsyncIterator<Buffer> => ({ next: async () => DONE }),
})
