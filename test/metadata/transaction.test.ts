import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { isKind } from '../../src/errors.js'
import {
  FileMetadataStore,
  IncompleteTransactionError,
  LayerAlreadyExistsError,
  MountNameConflictError,
  TransactionStateError,
} from '../../src/metadata/index.js'
import type { MountID } from '../../src/metadata/index.js'
import { cleanupTemps, commitLayer, hexID, makeTemp, testLayer } from './helpers.js'

const stores: FileMetadataStore[] = []
async function openStore(): Promise<FileMetadataStore> {
  const store = await FileMetadataStore.open(await makeTemp(), 'overlay2')
  stores.push(store)
  return store
}

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
  await cleanupTemps()
})

async function writeSets(store: FileMetadataStore): Promise<string[]> {
  return (await readdir(store.layout.tmpDir)).filter((n) => n.startsWith('write-set-'))
}

describe('Transaction', () => {
  it('lives in tmp/write-set-<owner>-<rand> until commit, which renames it into sha256/', async () => {
    const store = await openStore()
    const layer = testLayer('t1')
    const tx = await store.startTransaction()
    expect(tx.path).toMatch(/\/tmp\/write-set-[0-9a-f]{32}-[0-9a-f]{16}$/)
    expect(tx.state).toBe('open')
    await tx.setDiffID(layer.diffID)
    await tx.setSize(layer.size)
    await tx.setCacheID(layer.cacheID)
    // setters replace atomically: no temp names stay behind in the set
    expect((await readdir(tx.path)).sort()).toEqual(['cache-id', 'diff', 'size'])
    expect(await store.hasLayer(layer.chainID)).toBe(false)
    await tx.commit(layer.chainID, { syncfsPaths: [store.layout.root] })
    expect(tx.state).toBe('committed')
    expect(await writeSets(store)).toEqual([])
    expect((await stat(store.layout.layerDir(layer.chainID))).isDirectory()).toBe(true)
    await tx.cancel() // no-op after commit
    expect(await store.getLayer(layer.chainID)).toEqual(layer)
    await expect(tx.setSize(1)).rejects.toBeInstanceOf(TransactionStateError)
  })

  it('cancel removes the write set and leaves no layer', async () => {
    const store = await openStore()
    const tx = await store.startTransaction()
    await tx.setCacheID(testLayer('c').cacheID)
    await tx.cancel()
    await tx.cancel()
    expect(tx.state).toBe('cancelled')
    expect(await writeSets(store)).toEqual([])
    expect(await store.list()).toEqual({ layers: [], mounts: [] })
    await expect(tx.commit(testLayer('c').chainID)).rejects.toBeInstanceOf(TransactionStateError)
  })

  it('refuses a commit without diff, size or cache-id', async () => {
    const store = await openStore()
    const tx = await store.startTransaction()
    await tx.setDiffID(testLayer('i').diffID)
    const err = await tx.commit(testLayer('i').chainID).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(IncompleteTransactionError)
    expect((err as IncompleteTransactionError).missing).toEqual(['size', 'cache-id'])
    expect(isKind(err, 'invalid-argument')).toBe(true)
    expect(tx.state).toBe('open')
    await tx.cancel()
  })

  it('refuses a commit onto an existing chain ID, and stays open for cancel', async () => {
    const store = await openStore()
    const layer = testLayer('dup')
    await commitLayer(store, layer)
    const tx = await store.startTransaction()
    await tx.setDiffID(layer.diffID)
    await tx.setSize(1)
    await tx.setCacheID(testLayer('other').cacheID)
    const err = await tx.commit(layer.chainID).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(LayerAlreadyExistsError)
    expect(isKind(err, 'already-exists')).toBe(true)
    expect(tx.state).toBe('open')
    await tx.cancel()
    expect(await writeSets(store)).toEqual([])
    expect(await store.getLayer(layer.chainID)).toEqual(layer)
  })

  it('refuses commit while the tar-split writer is open; stores raw bytes given to tarSplitWriter', async () => {
    const store = await openStore()
    const layer = testLayer('ts')
    const tx = await store.startTransaction()
    await tx.setDiffID(layer.diffID)
    await tx.setSize(layer.size)
    await tx.setCacheID(layer.cacheID)
    const writer = tx.tarSplitWriter()
    const gz = gzipSync('{"type":2,"payload":null,"position":0}\n')
    writer.write(gz)
    await expect(tx.commit(layer.chainID)).rejects.toBeInstanceOf(TransactionStateError)
    await new Promise<void>((resolve) => writer.end(resolve))
    await tx.commit(layer.chainID)
    expect(await readFile(store.layout.layerFile(layer.chainID, 'tar-split.json.gz'))).toEqual(gz)
  })

  it('commits a mount record with all files at once; a name conflict is typed', async () => {
    const store = await openStore()
    const mk = async (seed: string) => {
      const tx = await store.startTransaction()
      await tx.setMountID(hexID(seed) as MountID)
      await tx.setParent(testLayer('p').chainID)
      return tx
    }
    const tx1 = await mk('a')
    await tx1.commitMount('web')
    const tx2 = await mk('b')
    const err = await tx2.commitMount('web').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(MountNameConflictError)
    expect(isKind(err, 'already-exists')).toBe(true)
    await tx2.cancel()
    expect((await store.getMount('web')).mountID).toBe(hexID('a'))
    expect(await writeSets(store)).toEqual([])
  })

  it('keeps layer and mount records apart', async () => {
    const store = await openStore()
    const tx = await store.startTransaction()
    await tx.setMountID(hexID('m') as MountID)
    await expect(tx.commit(testLayer('x').chainID)).rejects.toBeInstanceOf(IncompleteTransactionError)
    const tx2 = await store.startTransaction()
    await tx2.setCacheID(testLayer('x').cacheID)
    await expect(tx2.commitMount('m')).rejects.toBeInstanceOf(IncompleteTransactionError)
    await tx.cancel()
    await tx2.cancel()
  })

  it('a commit waits for setters in flight; a second concurrent commit is refused', async () => {
    const store = await openStore()
    const layer = testLayer('race')
    const tx = await store.startTransaction()
    const sets = [tx.setDiffID(layer.diffID), tx.setSize(layer.size), tx.setCacheID(layer.cacheID)]
    const first = tx.commit(layer.chainID)
    const second = tx.commit(layer.chainID).catch((e: unknown) => e)
    await Promise.all(sets)
    await first
    expect(await second).toBeInstanceOf(TransactionStateError)
    expect(await store.getLayer(layer.chainID)).toEqual(layer)
  })

  it('validates what setters are given', async () => {
    const store = await openStore()
    const tx = await store.startTransaction()
    await expect(tx.setDiffID('sha256:1' as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ID' })
    await expect(tx.setMountID('abc' as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ID' })
    await expect(tx.setExtra('diff', 1)).rejects.toMatchObject({ code: 'ERR_INVALID_ID' })
    await expect(tx.setSize(-1)).rejects.toThrow(RangeError)
    await expect(tx.setSize(1.5)).rejects.toThrow(RangeError)
    await tx.cancel()
    expect(await readdir(join(store.layout.tmpDir))).toHaveLength(1) // the owner lock only
  })
})
