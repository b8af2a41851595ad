/**
 * `LayerStore.registerChain` (src/layer/register-chain.ts): an image's layers registered in
 * order with one flush for all. It must give what that many `register` calls give (chain
 * IDs, tar streams, references, views through every driver), reference layers that exist,
 * and after any failure leave the store as it was. Races with another process are made
 * deterministic with a second store on the same root, driven from the progress callback.
 */
import { describe, expect, it } from 'vitest'
import { hasCode } from '../../src/errors.js'
import type { ChainLayerInput, LayerStore } from '../../src/layer/index.js'
import { chainIDOf, diffIDFromHex } from '../../src/layer/index.js'
import { driverIDs, driverNames, expectNoOrphans, makeTar, openStore, readAll, sha256, storeFixture } from './helpers.js'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('registerChain tests skipped: they need root')

/** Three layers: a base, a child that changes and deletes base files, a grandchild. */
async function threeLayers(): Promise<Buffer[]> {
  return [
    await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/os', content: 'base' },
      { name: 'gone.txt', content: 'deleted by layer 2' },
    ]),
    await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/os', content: 'layer 2' },
      { name: '.wh.gone.txt', content: '' },
      { name: 'app/', type: 'directory' },
      { name: 'app/run', content: 'layer 2 app' },
    ]),
    await makeTar([{ name: 'app/', type: 'directory' }, { name: 'app/conf', content: 'layer 3' }]),
  ]
}

const diffOf = (tar: Buffer) => diffIDFromHex(sha256(tar).slice('sha256:'.length))

/** The chain IDs of `tars` registered in order on nothing. */
function chainIDsOf(tars: readonly Buffer[]): string[] {
  const ids: string[] = []
  let parent: string | null = null
  for (const t of tars) ids.push((parent = chainIDOf(parent as never, diffOf(t))))
  return ids
}

async function holders(store: LayerStore, id: string): Promise<Record<string, number>> {
  return Object.fromEntries((await store.references(id as never)).holders)
}

/** A tar input that fails the test if it is read. */
function unread(): ChainLayerInput['tar'] {
  return {
    [Symbol.asyncIterator]() {
      throw new Error('this input must not be read')
    },
  }
}

describe.skipIf(!isRoot).each(driverNames())('registerChain on %s', (driverName) => {
  const fx = storeFixture(driverName)

  /** Runs `fn` with a second store on the test's root: "another process", driven by the test. */
  async function withOtherStore(fn: (other: LayerStore) => Promise<void>): Promise<void> {
    const other = await openStore(fx.root, driverName)
    try {
      await fn(other)
    } finally {
      await other.close()
    }
  }

  it('gives what as many register calls give, and the top layer shows every layer', async () => {
    const tars = await threeLayers()
    const layers = await fx.store.registerChain(tars.map((tar) => ({ tar })), null, { holder: 'img' })
    const ids = chainIDsOf(tars)
    expect(layers.map((l) => l.chainID)).toEqual(ids)
    expect(layers.map((l) => l.existed)).toEqual([false, false, false])
    expect(layers.map((l) => l.parent?.chainID ?? null)).toEqual([null, ids[0], ids[1]])
    expect(layers.map((l) => l.diffSize)).toEqual([0, 1, 2].map((i) => layers[i]!.size - (layers[i - 1]?.size ?? 0)))
    for (const [i, l] of layers.entries()) {
      expect(await readAll(await l.tarStream())).toEqual(tars[i])
      expect(await holders(fx.store, l.chainID)).toEqual({ img: 1 })
    }
    const rw = await fx.store.createRWLayer('top', ids[2] as never)
    const root = await rw.mount()
    try {
      expect(await readFile(join(root, 'etc/os'), 'utf8')).toBe('layer 2')
      expect(await readFile(join(root, 'app/run'), 'utf8')).toBe('layer 2 app')
      expect(await readFile(join(root, 'app/conf'), 'utf8')).toBe('layer 3')
      await expect(readFile(join(root, 'gone.txt'))).rejects.toMatchObject({ code: 'ENOENT' })
    } finally {
      await rw.unmount()
      await fx.store.releaseRWLayer(rw)
    }
    // Reopened, the records read back as committed.
    await fx.store.close()
    const again = await fx.reopen()
    expect((await again.get(ids[2] as never)).parent?.parent?.chainID).toBe(ids[0])
    expect([...(await again.map()).keys()].sort()).toEqual([...ids].sort())
  })

  it('references the layers that exist, reading none whose diff ID is given', async () => {
    const tars = await threeLayers()
    const ids = chainIDsOf(tars)
    await fx.store.register(tars[0]!, null, { holder: 'other' })
    const layers = await fx.store.registerChain(
      [{ tar: unread(), diffID: diffOf(tars[0]!) }, { tar: tars[1]! }, { tar: tars[2]! }],
      null,
      { holder: 'img' },
    )
    expect(layers.map((l) => l.existed)).toEqual([true, false, false])
    expect(await holders(fx.store, ids[0]!)).toEqual({ other: 1, img: 1 })
    // Registered again without diff IDs: applied, found present, discarded; nothing left over.
    const twice = await fx.store.registerChain(tars.map((tar) => ({ tar })), null, { holder: 'again' })
    expect(twice.map((l) => l.existed)).toEqual([true, true, true])
    expect(await holders(fx.store, ids[2]!)).toEqual({ img: 1, again: 1 })
    expect((await driverIDs(fx.root, driverName)).length).toBe(3)
    expect(await fx.store.registerChain([], ids[2] as never)).toEqual([])
  })

  it('leaves the store as it was after bad input in the middle of the chain', async () => {
    const tars = await threeLayers()
    const ids = chainIDsOf(tars)
    await fx.store.register(tars[0]!, null, { holder: 'other' })
    const before = await driverIDs(fx.root, driverName)
    const truncated = tars[2]!.subarray(0, 700)
    const err = await fx.store
      .registerChain([{ tar: tars[0]! }, { tar: tars[1]! }, { tar: truncated }], null, { holder: 'img' })
      .catch((e: unknown) => e)
    expect(hasCode(err, 'ERR_TAR_TRUNCATED')).toBe(true)
    expect([...(await fx.store.map()).keys()]).toEqual([ids[0]])
    expect(await holders(fx.store, ids[0]!)).toEqual({ other: 1 })
    expect(await driverIDs(fx.root, driverName)).toEqual(before)
    // A wrong diff ID is refused the same way.
    const mismatch = await fx.store
      .registerChain([{ tar: tars[1]! }, { tar: tars[2]!, diffID: diffOf(tars[1]!) }], ids[0] as never, { holder: 'img' })
      .catch((e: unknown) => e)
    expect(hasCode(mismatch, 'ERR_LAYER_DIGEST_MISMATCH')).toBe(true)
    expect([...(await fx.store.map()).keys()]).toEqual([ids[0]])
    await fx.store.close()
    await expectNoOrphans(fx.root, driverName)
    await fx.reopen()
  })

  it('stores nothing when aborted after its last layer was made, with the signal\'s reason', async () => {
    const tars = await threeLayers()
    const controller = new AbortController()
    // Asked for a fourth layer, the caller gives up: three layers are made, none is published.
    async function* entries(): AsyncGenerator<ChainLayerInput> {
      for (const tar of tars) yield { tar }
      controller.abort(new Error('stop here'))
    }
    const err = await fx.store.registerChain(entries(), null, { holder: 'img', signal: controller.signal }).catch((e: unknown) => e)
    expect(err).toMatchObject({ message: 'stop here' })
    expect((await fx.store.map()).size).toBe(0)
    expect(await driverIDs(fx.root, driverName)).toEqual([])
  })

  it('refuses a chain that would pass the depth limit, storing nothing', async () => {
    await fx.store.close()
    const store = await fx.reopen({ maxDepth: 2 })
    const tars = await threeLayers()
    const err = await store.registerChain(tars.map((tar) => ({ tar })), null, { holder: 'img' }).catch((e: unknown) => e)
    expect(hasCode(err, 'ERR_MAX_DEPTH_EXCEEDED')).toBe(true)
    expect((await store.map()).size).toBe(0)
    expect(await driverIDs(fx.root, driverName)).toEqual([])
  })

  it('adopts the layers another process registers meanwhile, and drops its own copies of them', async () => {
    const tars = await threeLayers()
    const ids = chainIDsOf(tars)
    await withOtherStore(async (other) => {
      // Asked for layer 3, layers 1 and 2 (ours made, not committed) appear elsewhere first:
      // layer 3 is then made on their layer 2, and our copies are dropped.
      async function* entries(): AsyncGenerator<ChainLayerInput> {
        yield { tar: tars[0]! }
        yield { tar: tars[1]! }
        const a = await other.register(tars[0]!, null, { holder: 'other' })
        await other.register(tars[1]!, a.chainID, { holder: 'other' })
        yield { tar: tars[2]! }
      }
      const layers = await fx.store.registerChain(entries(), null, { holder: 'img' })
      expect(layers.map((l) => l.chainID)).toEqual(ids)
      expect(layers.map((l) => l.existed)).toEqual([true, true, false])
      for (const [i, l] of layers.entries()) {
        expect(await readAll(await l.tarStream())).toEqual(tars[i])
        expect(await holders(fx.store, l.chainID)).toEqual(i < 2 ? { other: 1, img: 1 } : { img: 1 })
      }
      expect((await driverIDs(fx.root, driverName)).length).toBe(3)
    })
  })

  it('with a layer registered elsewhere after its child was made on our copy: typed error, nothing stored', async () => {
    const tars = await threeLayers()
    const ids = chainIDsOf(tars)
    await withOtherStore(async (other) => {
      // Layer 1 appears after it was looked up, once layer 2 was made on our copy of it.
      async function* entries(): AsyncGenerator<ChainLayerInput> {
        yield { tar: tars[0]! }
        yield { tar: tars[1]! }
        await other.register(tars[0]!, null, { holder: 'other' })
      }
      const err = await fx.store.registerChain(entries(), null, { holder: 'img' }).catch((e: unknown) => e)
      expect(hasCode(err, 'ERR_LAYER_CHAIN_CONFLICT')).toBe(true)
      expect([...(await fx.store.map()).keys()]).toEqual([ids[0]])
      expect(await holders(fx.store, ids[0]!)).toEqual({ other: 1 })
      expect((await driverIDs(fx.root, driverName)).length).toBe(1)
      // Registering again references theirs.
      const again = await fx.store.registerChain([{ tar: tars[0]! }, { tar: tars[1]! }], null, { holder: 'img' })
      expect(again.map((l) => l.existed)).toEqual([true, false])
    })
  })
})
