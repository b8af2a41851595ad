/**
 * A layer registered again without its diff ID (src/layer/match-existing.ts): the input is
 * compared with the layers it could be, and when it is one of them it is referenced without
 * being applied (the driver creates nothing). When it differs, at whatever byte, it must be
 * registered exactly as it would have been: its own diff ID, its own bytes back from
 * `tarStream()`, the existing layer untouched, nothing left behind.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { builtinDrivers } from '../../src/drivers/index.js'
import { DriverRegistry } from '../../src/graphdriver/index.js'
import { readFileChunks } from '../../src/io/index.js'
import type { DriverFactory, ProtoDriver } from '../../src/graphdriver/index.js'
import { chainIDOf, diffIDFromHex } from '../../src/layer/index.js'
import type { LayerStore } from '../../src/layer/index.js'
import { driverNames, expectNoOrphans, makeTar, readAll, sha256, slices, tempRoot } from './helpers.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('register-existing tests skipped: they need root (drivers mount, files get owners)')

/** What the wrapped driver was asked to make. */
interface Calls {
  create: number
  applyDiff: number
}

/** The built-in factory `name`, its drivers counting the layers they are asked to make. */
function countingFactory(name: string, calls: Calls): DriverFactory {
  const inner = builtinDrivers.find((f) => f.name === name)
  if (!inner) throw new Error(`no built-in driver ${name}`)
  const count = (driver: ProtoDriver): ProtoDriver =>
    new Proxy(driver, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target)
        if (typeof value !== 'function') return value
        const method = value as (...args: unknown[]) => unknown
        return (...args: unknown[]) => {
          if (prop === 'create' || prop === 'applyDiff') calls[prop]++
          return method.apply(target, args)
        }
      },
    })
  return {
    ...inner,
    name,
    create: async (options) => count(await inner.create(options)),
  }
}

/** Four files of a few KiB each: enough 512-byte blocks for a difference to fall late. */
const FILES = [
  { name: 'etc/', type: 'directory' as const },
  { name: 'etc/a.conf', content: 'a'.repeat(3000) },
  { name: 'etc/b.conf', content: 'b'.repeat(5000) },
  { name: 'usr/', type: 'directory' as const },
  { name: 'usr/c.bin', content: Buffer.alloc(7000, 0xc3) },
  { name: 'usr/d.txt', content: 'd'.repeat(4100) },
]

describe.skipIf(!isRoot).each(driverNames())('a layer registered again without its diff ID, on %s', (driverName) => {
  let root: Awaited<ReturnType<typeof tempRoot>>
  let store: LayerStore
  const calls: Calls = { create: 0, applyDiff: 0 }

  beforeEach(async () => {
    root = await tempRoot('layerstore-existing-')
    store = await open()
  })

  afterEach(async () => {
    await store.close().catch(() => undefined)
    await root.remove()
  })

  const open = async (): Promise<LayerStore> => {
    const { LayerStore } = await import('../../src/layer/index.js')
    return LayerStore.open({ root: root.dir, driver: driverName, registry: new DriverRegistry([countingFactory(driverName, calls)]) })
  }

  /** Resolves once a live write set names `chainID` as its parent: a hold on it. */
  const writeSetNaming = async (chainID: string): Promise<void> => {
    const tmp = join(root.dir, 'image', driverName, 'layerdb', 'tmp')
    for (let i = 0; i < 2000; i++) {
      for (const name of await readdir(tmp)) {
        const parent = await readFile(join(tmp, name, 'parent'), 'utf8').catch(() => '')
        if (parent === chainID) return
      }
      await new Promise((r) => setTimeout(r, 5))
    }
    throw new Error(`no write set holds ${chainID}`)
  }

  /** Driver calls made by `fn`. */
  const made = async (fn: () => Promise<unknown>): Promise<Calls> => {
    const before = { ...calls }
    await fn()
    return { create: calls.create - before.create, applyDiff: calls.applyDiff - before.applyDiff }
  }

  it('is referenced without being applied, on no parent and on a parent, plain or gzipped', async () => {
    const baseTar = await makeTar(FILES)
    const childTar = await makeTar([{ name: 'etc/a.conf', content: 'changed' }, { name: '.wh.usr', content: '' }])
    const base = await store.register(slices(baseTar, 321), null, { holder: 'one' })
    const child = await store.register(slices(childTar, 321), base.chainID, { holder: 'one' })
    for (const [tar, parent, want] of [
      [baseTar, null, base],
      [childTar, base.chainID, child],
      [gzipSync(baseTar), null, base],
    ] as const) {
      let again
      expect(await made(async () => (again = await store.register(slices(tar, 700), parent, { holder: 'two' })))).toEqual({ create: 0, applyDiff: 0 })
      expect(again).toMatchObject({ chainID: want.chainID, cacheID: want.cacheID, existed: true })
    }
    expect(Object.fromEntries((await store.references(base.chainID)).holders)).toEqual({ one: 1, two: 2 })
    expect(Object.fromEntries((await store.references(child.chainID)).holders)).toEqual({ one: 1, two: 1 })
    expect(await readAll(await child.tarStream())).toEqual(childTar)
    await store.close()
    await expectNoOrphans(root.dir, driverName)
  })

  it('is registered as it would have been when it differs, wherever the difference falls', async () => {
    const baseTar = await makeTar([{ name: 'base.txt', content: 'base' }])
    const childTar = await makeTar(FILES)
    const base = await store.register(baseTar, null, { holder: 'h' })
    const child = await store.register(childTar, base.chainID, { holder: 'h' })
    const lastFile = childTar.lastIndexOf(Buffer.from('dddd'))
    const variants: Record<string, Buffer> = {
      'in the first header': await makeTar([{ name: 'other.txt', content: 'other' }, ...FILES.slice(1)]),
      'in the content of the last file': Buffer.concat([childTar.subarray(0, lastFile), Buffer.from('e'), childTar.subarray(lastFile + 1)]),
      'in a later header (a mode)': await makeTar([...FILES.slice(0, 4), { name: 'usr/c.bin', content: Buffer.alloc(7000, 0xc3), mode: 0o755 }, FILES[5]!]),
      'after its end (trailing bytes)': Buffer.concat([childTar, Buffer.from('trailing junk')]),
      'after its end (more zero blocks)': Buffer.concat([childTar, Buffer.alloc(1024)]),
    }
    for (const [where, tar] of Object.entries(variants)) {
      expect(tar.equals(childTar), where).toBe(false)
      let layer
      const calls = await made(async () => (layer = await store.register(slices(tar, 321), base.chainID, { holder: 'h' })))
      expect(calls, where).toEqual({ create: 1, applyDiff: 1 })
      expect(layer, where).toMatchObject({ diffID: sha256(tar), chainID: chainIDOf(base.chainID, diffIDFromHex(sha256(tar).slice('sha256:'.length))), existed: false })
      expect(await readAll(await layer!.tarStream()), where).toEqual(tar)
    }
    expect(await readAll(await child.tarStream())).toEqual(childTar)
    await store.close()
    await expectNoOrphans(root.dir, driverName)
  })

  it('differing late, rebuilds a long prefix through the lease of recycled (poisoned) buffers', async () => {
    const big = (seed: number): Buffer => {
      const b = Buffer.allocUnsafe(400_000)
      for (let i = 0; i < b.length; i++) b[i] = (i * seed + (i >> 9)) & 0xff
      return b
    }
    const files = [1, 3, 5].map((seed) => ({ name: `f${seed}`, content: big(seed) }))
    const tar = await makeTar(files)
    const layer = await store.register(tar, null, { holder: 'h' })
    const variant = Buffer.from(tar)
    const last = tar.indexOf(files[2]!.content) + 399_000
    variant[last] = variant[last]! ^ 0xff
    const path = join(root.dir, 'variant.tar')
    await writeFile(path, variant)
    let registered
    expect(await made(async () => (registered = await store.register(readFileChunks(path, { chunkSize: 65536, poison: true }), null, { holder: 'h' })))).toEqual({
      create: 1,
      applyDiff: 1,
    })
    expect(registered).toMatchObject({ diffID: sha256(variant), existed: false })
    expect((await readAll(await registered!.tarStream())).equals(variant)).toBe(true)
    expect((await readAll(await layer.tarStream())).equals(tar)).toBe(true)
    await store.close()
    await expectNoOrphans(root.dir, driverName)
  })

  it('refuses a truncated copy of a registered layer with a typed error, storing nothing', async () => {
    const tar = await makeTar(FILES)
    await store.register(tar, null, { holder: 'h' })
    const before = [...(await store.map()).keys()]
    await expect(store.register(slices(tar.subarray(0, 2048 + 100), 321), null, { holder: 'h' })).rejects.toMatchObject({ code: 'ERR_TAR_TRUNCATED' })
    expect([...(await store.map()).keys()]).toEqual(before)
    await store.close()
    await expectNoOrphans(root.dir, driverName)
  })

  it('tells apart candidates that begin alike', async () => {
    const first = await makeTar([FILES[0]!, { name: 'etc/x', content: 'one' }])
    const second = await makeTar([FILES[0]!, { name: 'etc/x', content: 'two' }])
    const third = await makeTar([FILES[0]!, { name: 'etc/x', content: 'six' }])
    const a = await store.register(first, null, { holder: 'h' })
    const b = await store.register(second, null, { holder: 'h' })
    let again
    expect(await made(async () => (again = await store.register(slices(second, 100), null, { holder: 'h' })))).toEqual({ create: 0, applyDiff: 0 })
    expect(again).toMatchObject({ chainID: b.chainID, existed: true })
    let fresh
    expect(await made(async () => (fresh = await store.register(slices(third, 100), null, { holder: 'h' })))).toEqual({ create: 1, applyDiff: 1 })
    expect(fresh).toMatchObject({ diffID: sha256(third), existed: false })
    expect(await readAll(await a.tarStream())).toEqual(first)
    await store.close()
    await expectNoOrphans(root.dir, driverName)
  })

  it('holds the layer it compares with against a release by another store', async () => {
    const tar = await makeTar(FILES)
    const layer = await store.register(tar, null, { holder: 'going' })
    const other = await open()
    try {
      const input = new PassThrough()
      const again = store.register(input, null, { holder: 'staying' })
      // Half the input compared: the comparison holds the layer.
      input.write(tar.subarray(0, 4096))
      await writeSetNaming(layer.chainID)
      expect(await other.releaseHolder(layer.chainID, 'going')).toEqual([])
      input.end(tar.subarray(4096))
      expect(await again).toMatchObject({ chainID: layer.chainID, existed: true })
      expect(Object.fromEntries((await other.references(layer.chainID)).holders)).toEqual({ staying: 1 })
    } finally {
      await other.close()
    }
    await store.close()
    await expectNoOrphans(root.dir, driverName)
  })
})
