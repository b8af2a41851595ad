/**
 * A register in flight holds its parent through its live write set (metadata's
 * write-set-parents.ts), not through a reference in the parent's `references.json`: another
 * store (another owner, as another process is) must not delete the parent meanwhile, and a
 * failed register must delete the parent it leaves unheld, as moby's release would.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { LayerStore, RegisteredLayer } from '../../src/layer/index.js'
import { expectNoOrphans, makeTar, openStore, tempRoot } from './helpers.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('in-flight reference tests skipped: they need root')

const DRIVER = 'vfs'

describe.skipIf(!isRoot)('a register in flight', () => {
  let root: string
  let removeRoot: () => Promise<void>
  let stores: LayerStore[]

  beforeEach(async () => {
    const t = await tempRoot('layerstore-in-flight-')
    root = t.dir
    removeRoot = t.remove
    stores = []
  })

  afterEach(async () => {
    for (const s of stores) await s.close().catch(() => undefined)
    await removeRoot()
  })

  const open = async (): Promise<LayerStore> => {
    const s = await openStore(root, DRIVER)
    stores.push(s)
    return s
  }

  /** Resolves once a write set naming a parent exists: the register holds its parent. */
  const writeSetHoldingParent = async (): Promise<void> => {
    const tmp = join(root, 'image', DRIVER, 'layerdb', 'tmp')
    for (let i = 0; i < 2000; i++) {
      for (const name of await readdir(tmp)) {
        if (!name.startsWith('write-set-')) continue
        if ((await readdir(join(tmp, name)).catch((): string[] => [])).includes('parent')) return
      }
      await new Promise((r) => setTimeout(r, 5))
    }
    throw new Error('no write set with a parent appeared')
  }

  /**
   * A base held by name, and a register of a child on it through `writer`, in flight (its
   * write set holds the base) until `input` ends.
   */
  const registerInFlight = async (writer: LayerStore): Promise<{ base: RegisteredLayer; input: PassThrough; child: Promise<RegisteredLayer> }> => {
    const base = await writer.register(await makeTar([{ name: 'base.txt', content: 'base' }]), null, { holder: 'base' })
    const input = new PassThrough()
    const child = writer.register(input, base.chainID, { holder: 'child' })
    await writeSetHoldingParent()
    return { base, input, child }
  }

  it('holds its parent against a release by another store, and hands the hold to its record', async () => {
    const writer = await open()
    const other = await open()
    const { base, input, child } = await registerInFlight(writer)
    // The parent's last named holder goes while the child is being registered.
    expect(await other.releaseHolder(base.chainID, 'base')).toEqual([])
    expect(await other.has(base.chainID)).toBe(true)
    // No session reference was written into the parent to hold it.
    expect(Object.fromEntries((await other.references(base.chainID)).holders)).toEqual({})
    input.end(await makeTar([{ name: 'child.txt', content: 'child' }]))
    const layer = await child
    expect(layer.parent?.chainID).toBe(base.chainID)
    expect((await other.references(base.chainID)).children).toEqual([layer.chainID])
    // The child's record holds the parent now: releasing the child deletes both.
    const deleted = await other.releaseHolder(layer.chainID, 'child')
    expect(deleted.map((l) => l.chainID)).toEqual([layer.chainID, base.chainID])
    await writer.close()
    await other.close()
    await expectNoOrphans(root, DRIVER)
  })

  it('deletes the parent it leaves unheld when it fails', async () => {
    const writer = await open()
    const other = await open()
    const { base, input, child } = await registerInFlight(writer)
    await other.releaseHolder(base.chainID, 'base')
    // The caller's own stream: its error event is the caller's to handle.
    input.on('error', () => undefined)
    input.destroy(new Error('the source broke'))
    await expect(child).rejects.toThrow()
    expect(await other.has(base.chainID)).toBe(false)
    await writer.close()
    await other.close()
    await expectNoOrphans(root, DRIVER)
  })

  it('keeps a parent that is still held when it fails', async () => {
    const writer = await open()
    const { base, input, child } = await registerInFlight(writer)
    // The caller's own stream: its error event is the caller's to handle.
    input.on('error', () => undefined)
    input.destroy(new Error('the source broke'))
    await expect(child).rejects.toThrow()
    expect(await writer.has(base.chainID)).toBe(true)
    expect(Object.fromEntries((await writer.references(base.chainID)).holders)).toEqual({ base: 1 })
    await writer.close()
    await expectNoOrphans(root, DRIVER)
  })
})
