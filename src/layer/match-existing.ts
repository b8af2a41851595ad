/**
 * Registering a layer that is registered already, without its diff ID, and without applying
 * it again. Its chain ID is known only once the whole input was read; applying it and then
 * discarding the copy costs every file written and deleted again (small-files: 55,803 of
 * each, and on ext4 the deletions slow every create for minutes after). So when the parent
 * has registered children (or, for a base layer, when base layers exist), the input is first
 * compared byte for byte with their tars, rebuilt from tar-split and files as `tarStream()`
 * rebuilds them:
 *
 * - every byte equal, to the end of both, and the digests equal: it is that layer, and
 *   nothing was written;
 * - a difference (usually in the first header): the bytes compared until then were the
 *   candidate's, so they are rebuilt from it again and handed on, followed by the rest of the
 *   input, and the register goes on as it would have. The input is still read once, and its
 *   digest still covers exactly its own bytes (taken upstream, in `openInput`).
 *
 * ```
 * input ─► openInput (sha256) ─► compare with candidates ─┬─► same to the end: existing layer
 *                                                         └─► differs: candidate prefix + rest ─► register
 * ```
 *
 * Candidates are first narrowed to those whose first tar-split segment (the first header)
 * agrees with the input's first bytes, and at most {@link MAX_COMPARED} are compared. Each is
 * held while it is read, as a register holds its parent (an open write set naming it, see
 * metadata's write-set-parents.ts), so a concurrent release cannot delete files whose bytes
 * are still needed; {@link MatchResult.release} gives the holds back.
 */
import type { Readable } from 'node:stream'
import createDebug from 'debug'
import type { ChainID, Transaction } from '../metadata/index.js'
import { readEntries, SEGMENT_TYPE } from '../tarsplit/index.js'
import { LayerDigestMismatchError } from './errors.js'
import type { LayerInfo } from './layer.js'
import type { OpenedInput } from './register.js'
import type { StoreCore } from './store-core.js'
import { verifiedTarStream } from './tar-stream.js'

const debug = createDebug('layerstore:layer')

/** Candidates compared at once, at most (each holds a stream and the driver's view). */
export const MAX_COMPARED = 4
/** Input bytes read before choosing candidates: one tar header. */
const PEEK_BYTES = 512

/** What {@link matchExisting} found. */
export interface MatchResult {
  /** The registered layer the input is, read to its end; undefined when it is none. */
  readonly existing: ChainID | undefined
  /**
   * The input to register when `existing` is undefined (or turns out gone): the bytes
   * compared so far, rebuilt from a candidate, then the rest. Its digest is the input's.
   */
  readonly input: OpenedInput
  /**
   * Gives the holds on the candidates back. Call it once, after `input` is done with (read
   * or abandoned); never throws.
   */
  release(): Promise<void>
}

/** A candidate being compared: its rebuilt tar, read as far as the input was. */
interface Candidate {
  readonly info: LayerInfo
  readonly stream: Readable
  readonly it: AsyncIterator<Buffer>
  /** Bytes read from the stream and not compared yet. */
  rest: Buffer
  alive: boolean
}

/**
 * Compares `input` with the registered layers it could be on `parent` (see the file
 * comment). Reads nothing when no candidate exists.
 */
export async function matchExisting(core: StoreCore, input: OpenedInput, parent: ChainID | null): Promise<MatchResult> {
  const names = await core.childrenOf(parent)
  if (names.length === 0) return { existing: undefined, input, release: async () => undefined }
  const it = input.bytes[Symbol.asyncIterator]()
  const peeked: Buffer[] = []
  let peekedLength = 0
  let ended = false
  while (peekedLength < PEEK_BYTES) {
    const next = await it.next()
    if (next.done) {
      ended = true
      break
    }
    peeked.push(next.value)
    peekedLength += next.value.length
  }
  const head = Buffer.concat(peeked)
  const chosen = (await Promise.all(names.map(async (id) => ((await startsWith(core, id, head)) ? id : undefined)))).filter(
    (id): id is ChainID => id !== undefined,
  )
  const held: { readonly info: LayerInfo; readonly hold: Transaction }[] = []
  const candidates: Candidate[] = []
  const release = async (): Promise<void> => {
    for (const c of candidates) c.stream.destroy()
    for (const { info, hold } of held.splice(0)) {
      await hold.cancel().catch((err: unknown) => debug('cancelling %s failed: %s', hold.path, err))
      // Released by another process while we held it: ours was its last hold.
      await core.deleteIfUnheld(info.chainID).catch((err: unknown) => debug('deleting the unheld %s failed: %s', info.chainID, err))
    }
  }
  /** The input from here on: `prefix` bytes of a candidate's tar, the chunks kept, then the rest. */
  const rebuilt = (from: LayerInfo | undefined, prefix: number, kept: readonly Buffer[]): OpenedInput => ({
    ...input,
    bytes: (async function* (): AsyncGenerator<Buffer> {
      if (from !== undefined && prefix > 0) yield* prefixOf(core, from, prefix)
      yield* kept
      if (ended) return
      for (;;) {
        const next = await it.next()
        if (next.done) return
        yield next.value
      }
    })(),
  })
  try {
    await core.exclusive(async () => {
      for (const id of chosen.slice(0, MAX_COMPARED)) {
        if (!(await core.metadata.hasLayer(id))) continue
        const info = await core.describe(id)
        const hold = await core.metadata.startTransaction()
        held.push({ info, hold })
        await hold.setParent(id)
      }
    })
    for (const { info } of held) {
      let stream: Readable
      try {
        stream = await verifiedTarStream(core.metadata, core.driver, info)
      } catch (err) {
        debug('not comparing with %s: %s', info.chainID, err)
        continue
      }
      // A rebuilt tar that fails (a corrupt candidate) is only a candidate less.
      stream.on('error', (err) => debug('comparing with %s: %s', info.chainID, err))
      candidates.push({ info, stream, it: stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>, rest: Buffer.alloc(0), alive: true })
    }
    if (candidates.length === 0) return { existing: undefined, input: rebuilt(undefined, 0, peeked), release }
    debug('comparing the input with %d registered layer(s) on %s', candidates.length, parent ?? 'no parent')
    let compared = 0
    const pending = [...peeked]
    for (;;) {
      const chunk = pending.shift() ?? (ended ? undefined : await nextChunk(it, () => (ended = true)))
      if (chunk === undefined) break
      const before = candidates.filter((c) => c.alive)
      for (const c of before) c.alive = await sameNext(c, chunk)
      if (!candidates.some((c) => c.alive)) {
        debug('the input differs from every candidate after %d bytes: registering it', compared)
        // Every byte before this chunk was the last survivors' too.
        return { existing: undefined, input: rebuilt(before[0]?.info, compared, [chunk, ...pending]), release }
      }
      compared += chunk.length
      input.recycler?.release(chunk)
    }
    for (const c of candidates.filter((c) => c.alive)) {
      if ((await atEnd(c)) && input.digest() === c.info.diffID) {
        debug('the input is layer %s, byte for byte: not applied again', c.info.chainID)
        return { existing: c.info.chainID, input: rebuilt(c.info, compared, []), release }
      }
    }
    // The input is a prefix of a candidate's tar, or a candidate failed at its end.
    const survivor = candidates.find((c) => c.alive) ?? candidates[0]
    return { existing: undefined, input: rebuilt(survivor?.info, compared, []), release }
  } catch (err) {
    await release()
    throw err
  }
}

async function nextChunk(it: AsyncIterator<Buffer>, onEnd: () => void): Promise<Buffer | undefined> {
  const next = await it.next()
  if (next.done) {
    onEnd()
    return undefined
  }
  return next.value
}

/** True when the first tar-split segment of `id` agrees with `head` (as far as both go). */
async function startsWith(core: StoreCore, id: ChainID, head: Buffer): Promise<boolean> {
  let tarSplit: Readable | undefined
  try {
    tarSplit = await core.metadata.openTarSplit(id)
    for await (const entry of readEntries(tarSplit)) {
      if (entry.type !== SEGMENT_TYPE || entry.payload === null) return true
      const n = Math.min(entry.payload.length, head.length)
      return entry.payload.subarray(0, n).equals(head.subarray(0, n))
    }
    return head.length === 0
  } catch (err) {
    // Gone or unreadable: not a candidate (the register goes on as if it did not exist).
    debug('not comparing with %s: %s', id, err)
    return false
  } finally {
    tarSplit?.destroy()
  }
}

/** Compares the candidate's next `chunk.length` bytes with `chunk`; false on a difference, its end or its failure. */
async function sameNext(c: Candidate, chunk: Buffer): Promise<boolean> {
  let at = 0
  try {
    while (at < chunk.length) {
      if (c.rest.length === 0) {
        const next = await c.it.next()
        if (next.done) return false
        c.rest = next.value
      }
      const n = Math.min(c.rest.length, chunk.length - at)
      if (!c.rest.subarray(0, n).equals(chunk.subarray(at, at + n))) return false
      c.rest = c.rest.subarray(n)
      at += n
    }
    return true
  } catch {
    return false
  }
}

/** True when the candidate's tar ends here and verified (its digest is checked at its end). */
async function atEnd(c: Candidate): Promise<boolean> {
  if (c.rest.length > 0) return false
  try {
    for (;;) {
      const next = await c.it.next()
      if (next.done) return true
      if (next.value.length > 0) return false
    }
  } catch {
    return false
  }
}

/** The first `length` bytes of a layer's rebuilt tar. */
async function* prefixOf(core: StoreCore, info: LayerInfo, length: number): AsyncGenerator<Buffer> {
  const stream = await verifiedTarStream(core.metadata, core.driver, info)
  let left = length
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const part = chunk.length > left ? chunk.subarray(0, left) : chunk
      left -= part.length
      yield part
      if (left === 0) return
    }
    // Its files changed since they were compared (they are never written once committed).
    throw new LayerDigestMismatchError(info.diffID, `a tar ${left} bytes shorter on a second read`, 'tar-stream')
  } finally {
    stream.destroy()
  }
}
