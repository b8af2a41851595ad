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
import { ChunkPool } from '../io/chunk-pool.js'
import type { PoolSlot } from '../io/chunk-pool.js'
import { readEntries, SEGMENT_TYPE } from '../tarsplit/index.js'
import type { ChunkRecycler } from '../tarsplit/index.js'
import { LayerDigestMismatchError } from './errors.js'
import type { LayerInfo } from './layer.js'
import type { OpenedInput } from './register.js'
import type { StoreCore } from './store-core.js'
import { layerGetter } from './tar-stream.js'
import type { HeldGetter } from './tar-stream.js'

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
  /** Its bytes, as views of one lent buffer: each valid until the next is asked for. */
  readonly it: AsyncGenerator<Buffer>
  /** Bytes read and not compared yet. */
  rest: Buffer
  alive: boolean
}

/** Bytes a candidate's file reads go through (see `FileGetter`'s `into`). */
const COMPARE_BUFFER = 1024 * 1024
/** The buffers a rebuilt prefix is copied into, as `io.readFileChunks` reads a file. */
const PREFIX_CHUNK = 256 * 1024
const PREFIX_BUFFERS = 4

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
    for (const c of candidates) await c.it.return(undefined).catch(() => undefined)
    for (const { info, hold } of held.splice(0)) {
      await hold.cancel().catch((err: unknown) => debug('cancelling %s failed: %s', hold.path, err))
      // Released by another process while we held it: ours was its last hold.
      await core.deleteIfUnheld(info.chainID).catch((err: unknown) => debug('deleting the unheld %s failed: %s', info.chainID, err))
    }
  }
  const pool = new ChunkPool(PREFIX_CHUNK, PREFIX_BUFFERS)
  // The disassembler gives back the prefix's chunks and the input's through one lease.
  const recycler: ChunkRecycler = {
    hold: (chunk) => {
      pool.hold(chunk)
      input.recycler?.hold(chunk)
    },
    release: (chunk) => {
      pool.release(chunk)
      input.recycler?.release(chunk)
    },
  }
  /** The input from here on: `prefix` bytes of a candidate's tar, the chunks kept, then the rest. */
  const rebuilt = (from: LayerInfo | undefined, prefix: number, kept: readonly Buffer[]): OpenedInput => ({
    ...input,
    recycler,
    bytes: (async function* (): AsyncGenerator<Buffer> {
      if (from !== undefined && prefix > 0) yield* prefixOf(core, from, prefix, pool)
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
      candidates.push({ info, it: rebuiltTar(core, info, Buffer.allocUnsafe(COMPARE_BUFFER)), rest: Buffer.alloc(0), alive: true })
    }
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
  } catch (err) {
    // A candidate that cannot be read (its files damaged) is only a candidate less.
    debug('comparing with %s: %s', c.info.chainID, err)
    return false
  }
}

/** True when the candidate's tar ends here (its digest is the caller's to check). */
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

/**
 * A layer's tar rebuilt from its tar-split and its files, unverified: this is what the input
 * is compared with, and the comparison (then the input's digest against the layer's diff ID)
 * is the check. With `into`, file bytes are views of it, each valid until the next chunk is
 * asked for; without, every chunk is the caller's to keep.
 */
async function* rebuiltTar(core: StoreCore, info: LayerInfo, into?: Buffer): AsyncGenerator<Buffer> {
  const tarSplit = await core.metadata.openTarSplit(info.chainID)
  let held: HeldGetter | undefined
  try {
    held = await layerGetter(core.driver, info.cacheID)
    for await (const entry of readEntries(tarSplit)) {
      if (entry.type === SEGMENT_TYPE) {
        if (entry.payload !== null && entry.payload.length > 0) yield entry.payload
      } else if (entry.size > 0) {
        yield* await held.getter(entry.name, entry, into)
      }
    }
  } finally {
    tarSplit.destroy()
    await held?.close()
  }
}

/**
 * The first `length` bytes of a layer's rebuilt tar: what was compared, read again, copied
 * into `pool`'s buffers (each lent with one hold, given back through the input's recycler),
 * so that even a long prefix costs a few buffers, not a garbage buffer per read.
 */
async function* prefixOf(core: StoreCore, info: LayerInfo, length: number, pool: ChunkPool): AsyncGenerator<Buffer> {
  let left = length
  let slot: PoolSlot | undefined
  let used = 0
  try {
    for await (const chunk of rebuiltTar(core, info, Buffer.allocUnsafe(COMPARE_BUFFER))) {
      let part = chunk.length > left ? chunk.subarray(0, left) : chunk
      left -= part.length
      while (part.length > 0) {
        slot ??= pool.take()
        const n = part.copy(slot.buf, used)
        used += n
        part = part.subarray(n)
        if (used === slot.buf.length) {
          const full = slot
          slot = undefined
          used = 0
          yield pool.lend(full, full.buf.length)
        }
      }
      if (left === 0) break
    }
    if (slot !== undefined && used > 0) {
      const last = slot
      slot = undefined
      yield pool.lend(last, used)
    }
  } finally {
    if (slot !== undefined) pool.recycle(slot)
  }
  // Its files changed since they were compared (they are never written once committed).
  if (left > 0) throw new LayerDigestMismatchError(info.diffID, `a tar ${left} bytes shorter on a second read`, 'tar-stream')
}
