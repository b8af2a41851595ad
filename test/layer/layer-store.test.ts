/**
 * The LayerStore against moby's layer tests (moby.md §2: layer_test.go, mount_test.go,
 * layer_unix_test.go, empty_test.go), on every built-in driver, with real files.
 */
import { chmod, copyFile, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { builtinDrivers } from '../../src/drivers/index.js'
import { DriverRegistry } from '../../src/graphdriver/index.js'
import { StoreLock } from '../../src/metadata/index.js'
import { EMPTY_LAYER_DIFF_ID, LayerStore as Store, READ_ONLY_HOLDER, chainIDOf } from '../../src/layer/index.js'
import { diffTrees, snapshotTree } from '../helpers/tree.js'
import type { ChainID, DiffID, Layer, LayerStore, RegisteredLayer } from '../../src/layer/index.js'
import { ONE_DRIVER, createLayer, driverNames, expectNoOrphans, makeTar, openStore, readAll, sha256, slices, storeFixture, tempRoot } from './helpers.js'
import { mountsUnder } from '../mounts.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('layer store tests skipped: they need root (drivers mount, files get owners)')

describe.skipIf(!isRoot).each(driverNames())('LayerStore on %s', (driverName) => {
  const fx = storeFixture(driverName)

  const register = async (files: Parameters<typeof makeTar>[0], parent: Layer | null = null): Promise<{ layer: RegisteredLayer; tar: Buffer }> => {
    const tar = await makeTar(files)
    return { layer: await fx.store.register(slices(tar, 321), parent?.chainID ?? null), tar }
  }

  it('registers a layer in one pass and streams back the exact bytes (TestTarStreamStability)', async () => {
    const { layer: l1, tar: tar1 } = await register([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hosts', content: 'mydomain 10.0.0.1' },
      { name: 'etc/profile', content: 'export PATH=/usr/bin', mode: 0o644 },
    ])
    expect(l1.diffID).toBe(sha256(tar1))
    expect(l1.chainID).toBe(l1.diffID)
    expect(l1.depth).toBe(1)
    // An extra file written into the layer's own files (through the driver, as moby's test
    // does) is invisible in its stream.
    const driver = await new DriverRegistry(builtinDrivers).create(driverName, { home: join(fx.root, driverName) })
    const dir = await driver.get(l1.cacheID, { writable: true })
    await writeFile(join(dir, 'etc', 'shadow'), 'root:x:0', { mode: 0o600 })
    await driver.put(l1.cacheID)
    await driver.cleanup()
    const { layer: l2, tar: tar2 } = await register(
      [
        { name: 'etc/hosts', content: 'mydomain 10.0.0.2' },
        { name: 'etc/profile', content: 'export PATH=/usr/bin', mode: 0o664 },
        { name: 'root/.bashrc', content: 'PATH=/usr/sbin:/usr/bin' },
      ],
      l1,
    )
    expect(l2.diffID).toBe(sha256(tar2))
    expect(l2.chainID).toBe(chainIDOf(l1.chainID, l2.diffID))
    expect(l2.parent?.chainID).toBe(l1.chainID)
    await fx.store.release(l1)
    expect(await readAll(await l2.tarStream())).toEqual(tar2)
    const again = await fx.store.get(l1.chainID)
    expect(await fx.store.release(l2)).toEqual([{ chainID: l2.chainID, diffID: l2.diffID, size: l2.size, diffSize: l2.diffSize }])
    expect(await readAll(await again.tarStream())).toEqual(tar1)
    await fx.store.release(again)
  })

  it('references an existing layer instead of storing it twice (TestRegisterExistingLayer)', async () => {
    const files = [{ name: 'a.txt', content: 'same' }]
    const { layer: first } = await register(files)
    const { layer: second } = await register(files)
    expect(second.chainID).toBe(first.chainID)
    expect(second).not.toBe(first)
    expect([first.existed, second.existed]).toEqual([false, true])
    expect((await fx.store.references(first.chainID)).holders.get(fx.store.sessionHolder)).toBe(2)
    // A caller that knows the diff ID is answered without its input being read.
    let read = false
    const untouched = (async function* () {
      read = true
      yield Buffer.alloc(0)
    })()
    const third = await fx.store.register(untouched, null, { diffID: first.diffID, holder: 'image-a' })
    expect(read).toBe(false)
    expect(third.chainID).toBe(first.chainID)
    expect(third.existed).toBe(true)
    expect(await fx.store.release(first)).toEqual([])
    expect(await fx.store.release(second)).toEqual([])
    expect((await fx.store.release(third)).map((m) => m.chainID)).toEqual([first.chainID])
    expect(await fx.store.has(first.chainID)).toBe(false)
  })

  it('deletes a chain only when nothing holds it, child first (TestLayerRelease)', async () => {
    const { layer: l1 } = await register([{ name: 'layer1.txt', content: 'layer 1 file' }])
    const { layer: l2 } = await register([{ name: 'layer2.txt', content: 'layer 2 file' }], l1)
    await fx.store.release(l1)
    const { layer: l3a } = await register([{ name: 'layer3.txt', content: 'layer 3a file' }], l2)
    const { layer: l3b } = await register([{ name: 'layer3.txt', content: 'layer 3b file' }], l2)
    await fx.store.release(l2)
    expect((await fx.store.map()).size).toBe(4)
    expect((await fx.store.release(l3b)).map((m) => m.chainID)).toEqual([l3b.chainID])
    expect((await fx.store.map()).size).toBe(3)
    const deleted = await fx.store.release(l3a)
    expect(deleted).toEqual([l3a, l2, l1].map((l) => ({ chainID: l.chainID, diffID: l.diffID, size: l.size, diffSize: l.diffSize })))
    expect((await fx.store.map()).size).toBe(0)
  })

  it('refuses a second release of the same handle', async () => {
    const { layer } = await register([{ name: 'x', content: 'x' }])
    const again = await fx.store.get(layer.chainID)
    await fx.store.release(layer)
    await expect(fx.store.release(layer)).rejects.toMatchObject({ code: 'ERR_LAYER_NOT_RETAINED' })
    await expect(layer.tarStream()).rejects.toMatchObject({ code: 'ERR_LAYER_NOT_RETAINED' })
    await fx.store.release(again)
  })

  it('restores layers, RW layers and mounts in a second store (TestStoreRestore)', async () => {
    const { layer: l1 } = await register([{ name: 'layer1.txt', content: 'layer 1 file' }])
    const { layer: l2 } = await register([{ name: 'layer2.txt', content: 'layer 2 file' }], l1)
    const { layer: l3 } = await register([{ name: 'layer3.txt', content: 'layer 3 file' }], l2)
    await fx.store.release(l1)
    await fx.store.release(l2)
    const m = await fx.store.createRWLayer('some-mount_name', l3.chainID)
    const path = await m.mount()
    await writeFile(join(path, 'testfile.txt'), 'nothing here')
    await m.unmount()

    const other = await openStore(fx.root, driverName)
    try {
      const l3b = await other.get(l3.chainID)
      expect([l3b.chainID, l3b.diffID, l3b.size, l3b.cacheID]).toEqual([l3.chainID, l3.diffID, l3.size, l3.cacheID])
      expect(l3b.parent).toEqual(l3.parent)
      await expect(other.createRWLayer('some-mount_name', l3.chainID)).rejects.toMatchObject({ code: 'ERR_MOUNT_NAME_CONFLICT' })
      const m2 = await other.getRWLayer('some-mount_name')
      const p1 = await m2.mount()
      const p2 = await m2.mount()
      expect(p2).toBe(p1)
      expect(await readFile(join(p1, 'testfile.txt'), 'utf8')).toBe('nothing here')
      await m2.unmount()
      await m2.unmount()
      // The first store's handle still holds the RW layer: nothing is removed, visibly.
      expect(await other.releaseRWLayer(m2)).toEqual({ removed: false, remainingHandles: 1, deleted: [] })
      await expect(other.releaseRWLayer(m2)).rejects.toMatchObject({ code: 'ERR_RW_LAYER_NOT_RETAINED' })
      expect(await other.release(l3b)).toEqual([])
    } finally {
      await other.close()
    }
    const result = await fx.store.releaseRWLayer(m)
    expect(result.removed).toBe(true)
    expect(result.deleted).toEqual([])
    expect((await fx.store.release(l3)).map((x) => x.chainID)).toEqual([l3.chainID, l2.chainID, l1.chainID])
  })

  it('fails a stream whose bytes do not hash to the diff ID (TestTarStreamVerification)', async () => {
    const { layer: l1 } = await register([{ name: 'foo', content: 'abcde', mode: 0o644 }])
    const { layer: l2 } = await register([{ name: 'foo', content: 'abcde', mode: 0o600 }])
    const dir = (c: ChainID): string => join(fx.root, 'image', driverName, 'layerdb', 'sha256', c.slice(7))
    await copyFile(join(dir(l1.chainID), 'tar-split.json.gz'), join(dir(l2.chainID), 'tar-split.json.gz'))
    await expect(readAll(await l2.tarStream())).rejects.toMatchObject({ code: 'ERR_LAYER_DIGEST_MISMATCH', kind: 'bad-input' })
  })

  it('mounts a RW layer on a layer and registers its changes (TestMountAndRegister, commit)', async () => {
    const l = await createLayer(fx.store, null, async (dir) => {
      await writeFile(join(dir, 'testfile.txt'), 'some test data', { mode: 0o644 })
    })
    const rw = await fx.store.createRWLayer('new-test-mount', l.chainID)
    const path = await rw.mount()
    expect(await readFile(join(path, 'testfile.txt'), 'utf8')).toBe('some test data')
    await expect(fx.store.releaseRWLayer(rw)).rejects.toMatchObject({ code: 'ERR_RW_LAYER_MOUNTED' })
    await writeFile(join(path, 'more.txt'), 'more')
    await rw.unmount()
    await expect(rw.unmount()).rejects.toMatchObject({ code: 'ERR_RW_LAYER_NOT_MOUNTED' })
    const committed = await fx.store.commit(rw, { holder: 'committed' })
    expect(committed.parent?.chainID).toBe(l.chainID)
    const r = await fx.store.releaseRWLayer(rw)
    expect(r.removed).toBe(true)
    await fx.store.release(l)
    const check = await fx.store.createRWLayer('check', committed.chainID)
    const p = await check.mount()
    expect(await readFile(join(p, 'more.txt'), 'utf8')).toBe('more')
    expect(await readFile(join(p, 'testfile.txt'), 'utf8')).toBe('some test data')
    await check.unmount()
    await fx.store.releaseRWLayer(check)
    expect((await fx.store.releaseHolder(committed.chainID, 'committed')).length).toBe(2)
  })

  it('puts the init layer between the parent and the RW layer (TestMountInit, TestMountSize)', async () => {
    const base = await createLayer(fx.store, null, async (dir) => {
      await writeFile(join(dir, 'testfile.txt'), 'base data!', { mode: 0o644 })
      await writeFile(join(dir, 'file1'), 'File1 contents')
    })
    const rw = await fx.store.createRWLayer('fun-mount', base.chainID, {
      initFunc: async (dir) => {
        await writeFile(join(dir, 'testfile.txt'), 'init data!')
        await chmod(join(dir, 'testfile.txt'), 0o777)
        await writeFile(join(dir, 'file-init'), 'File init contents')
      },
    })
    const path = await rw.mount()
    expect(await readFile(join(path, 'testfile.txt'), 'utf8')).toBe('init data!')
    expect((await stat(join(path, 'testfile.txt'))).mode & 0o777).toBe(0o777)
    await writeFile(join(path, 'file2'), 'Mutable contents')
    expect(await rw.size()).toBe('Mutable contents'.length)
    await rw.unmount()
    expect(rw.initID).toBe(`${rw.mountID}-init`)
    await fx.store.releaseRWLayer(rw)
    await fx.store.release(base)
  })

  it('reports the RW layer changes against the init layer (TestMountChanges)', async () => {
    const base = await createLayer(fx.store, null, async (dir) => {
      for (const n of [1, 2, 3]) await writeFile(join(dir, `testfile${n}.txt`), `base data ${n}`, { mode: 0o644 })
    })
    const rw = await fx.store.createRWLayer('mount-changes', base.chainID, {
      initFunc: async (dir) => {
        await writeFile(join(dir, 'testfile1.txt'), 'init data!')
        await chmod(join(dir, 'testfile1.txt'), 0o777)
      },
    })
    const path = await rw.mount()
    await chmod(join(path, 'testfile1.txt'), 0o755)
    await writeFile(join(path, 'testfile1.txt'), 'mount data!')
    await unlink(join(path, 'testfile2.txt'))
    await chmod(join(path, 'testfile3.txt'), 0o755)
    await writeFile(join(path, 'testfile4.txt'), 'mount data!', { mode: 0o644 })
    const changes = await rw.changes()
    expect(changes.map((c) => [String(c.path), c.kind])).toEqual([
      ['/testfile1.txt', 'modified'],
      ['/testfile2.txt', 'deleted'],
      ['/testfile3.txt', 'modified'],
      ['/testfile4.txt', 'added'],
    ])
    await rw.unmount()
    await fx.store.releaseRWLayer(rw)
    await fx.store.release(base)
  })

  it('applies another layer into a RW layer (TestMountApply)', async () => {
    const base = await createLayer(fx.store, null, async (dir) => writeFile(join(dir, 'testfile.txt'), 'some data'))
    const other = await createLayer(fx.store, null, async (dir) => writeFile(join(dir, 'newfile.txt'), 'new data!', { mode: 0o755 }))
    const rw = await fx.store.createRWLayer('apply', base.chainID)
    await rw.applyDiff(await other.tarStream())
    const path = await rw.mount()
    expect(await readFile(join(path, 'newfile.txt'), 'utf8')).toBe('new data!')
    await rw.unmount()
    await fx.store.releaseRWLayer(rw)
    await fx.store.release(base)
    await fx.store.release(other)
  })

  it('sizes a layer and its chain (TestLayerSize)', async () => {
    const { layer: l1 } = await register([{ name: 'file1', content: 'This is file1' }])
    const { layer: l2 } = await register([{ name: 'file2', content: 'This is file 2' }], l1)
    expect(l1.size).toBe(13)
    expect(l1.diffSize).toBe(13)
    expect(l2.diffSize).toBe(14)
    expect(l2.size).toBe(27)
  })

  it('stores the empty tar as an ordinary layer with moby\'s empty digest (TestEmptyLayer)', async () => {
    const empty = Buffer.alloc(1024)
    const layer = await fx.store.register(slices(empty, 1))
    expect(layer.diffID).toBe(EMPTY_LAYER_DIFF_ID)
    expect(layer.size).toBe(0)
    expect(sha256(await readAll(await layer.tarStream()))).toBe(EMPTY_LAYER_DIFF_ID)
  })

  it('decompresses gzip and zstd input on the fly', async () => {
    const { gzipSync } = await import('node:zlib')
    const { execFileSync } = await import('node:child_process')
    const tar = await makeTar([{ name: 'z.txt', content: 'compressed '.repeat(1000) }])
    const gz = await fx.store.register(slices(gzipSync(tar), 100))
    expect(gz.diffID).toBe(sha256(tar))
    const zst = execFileSync('zstd', ['-q', '-c'], { input: tar })
    const z = await fx.store.register(slices(zst, 7), null, { holder: 'zstd' })
    expect(z.chainID).toBe(gz.chainID)
    expect(await readAll(await z.tarStream())).toEqual(tar)
  })

  // The whole 125-layer chain costs ~125 registers (≈10 s, all fsyncs): built once, on the
  // driver where the limit matters most (overlay: 125 lowers + init + RW must mount); the
  // others check the same logic with a small limit (the `maxDepth` option).
  const fullDepth = driverName === ONE_DRIVER
  it(`refuses a parent at the depth limit (${fullDepth ? 125 : 4}), and changes nothing`, async () => {
    if (!fullDepth) {
      await fx.store.close()
      await fx.reopen({ maxDepth: 4 })
    }
    let parent: Layer | null = null
    for (let i = 0; i < fx.store.maxDepth; i++) {
      const { layer } = await register([{ name: `f${i}`, content: String(i) }], parent)
      if (parent) await fx.store.release(parent)
      parent = layer
    }
    const top = parent!
    expect(top.depth).toBe(fullDepth ? 125 : 4)
    const before = (await fx.store.map()).size
    await expect(register([{ name: 'deep', content: 'x' }], top)).rejects.toMatchObject({
      code: 'ERR_MAX_DEPTH_EXCEEDED',
      kind: 'invalid-argument',
      depth: top.depth,
    })
    expect((await fx.store.map()).size).toBe(before)
    expect((await fx.store.references(top.chainID)).holders).toEqual(new Map([[fx.store.sessionHolder, 1]]))
    // A container still fits on top: init layer + RW layer over the whole chain.
    const rw = await fx.store.createRWLayer('deepest', top.chainID, { initFunc: async (dir) => writeFile(join(dir, 'init'), 'i') })
    const path = await rw.mount()
    expect(await readFile(join(path, 'f0'), 'utf8')).toBe('0')
    expect(await readFile(join(path, `f${fx.store.maxDepth - 1}`), 'utf8')).toBe(String(fx.store.maxDepth - 1))
    await rw.unmount()
    await fx.store.releaseRWLayer(rw)
    const deleted = await fx.store.release(top)
    expect(deleted.length).toBe(fx.store.maxDepth)
  }, 120_000)

  it('keeps named references across processes until released by name', async () => {
    const tar = await makeTar([{ name: 'img', content: 'image layer' }])
    const layer = await fx.store.register(slices(tar, 65536), null, { holder: 'docker.io/library/x:1' })
    await fx.store.close()
    await fx.reopen()
    expect(await fx.store.has(layer.chainID)).toBe(true)
    await expect(fx.store.releaseHolder(layer.chainID, 'someone-else')).rejects.toMatchObject({ code: 'ERR_LAYER_NOT_RETAINED' })
    expect((await fx.store.releaseHolder(layer.chainID, 'docker.io/library/x:1')).map((m) => m.chainID)).toEqual([layer.chainID])
    expect(await fx.store.has(layer.chainID)).toBe(false)
  })

  it('fails at once with a typed error when told not to wait for a busy store', async () => {
    await fx.store.close()
    await fx.reopen({ waitForLock: false })
    const other = StoreLock.forRoot(fx.root)
    const held = await other.exclusive()
    try {
      await expect(fx.store.register(await makeTar([{ name: 'a', content: 'a' }]))).rejects.toMatchObject({ code: 'ERR_STORE_LOCKED', kind: 'locked' })
      await expect(fx.store.has(EMPTY_LAYER_DIFF_ID as string as ChainID)).rejects.toMatchObject({ code: 'ERR_STORE_LOCKED' })
    } finally {
      await held.release()
    }
    expect(await fx.store.has(EMPTY_LAYER_DIFF_ID as string as ChainID)).toBe(false)
  })

  it('releases the session references at close, and leaves no orphan', async () => {
    const { layer } = await register([{ name: 'a', content: 'a' }])
    await fx.store.close()
    await expectNoOrphans(fx.root, driverName)
    await fx.reopen()
    expect(await fx.store.has(layer.chainID)).toBe(false)
  })
})

describe.skipIf(!isRoot).each(driverNames())('a read-only LayerStore on %s (issue 6)', (driverName) => {
  let root: string
  let removeRoot: () => Promise<void>
  let writer: LayerStore
  let reader: LayerStore | undefined

  beforeEach(async () => {
    const t = await tempRoot()
    root = t.dir
    removeRoot = t.remove
    writer = await openStore(root, driverName)
  })

  afterEach(async () => {
    await reader?.close().catch(() => undefined)
    reader = undefined
    await writer.close().catch(() => undefined)
    await removeRoot()
  })

  it('reads layers, chains, references and RW layers while a writer has the root open, and changes nothing', async () => {
    const tar1 = await makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/hosts', content: 'one' }])
    const tar2 = await makeTar([{ name: 'etc/hosts', content: 'two' }, { name: 'usr/', type: 'directory' }])
    const l1 = await writer.register(tar1, null, { holder: 'img' })
    const l2 = await writer.register(tar2, l1.chainID, { holder: 'img' })
    const rw = await writer.createRWLayer('ctr', l2.chainID)
    const path = await rw.mount()
    await writeFile(join(path, 'added'), 'x')
    await rw.unmount()
    const before = snapshotTree(root)
    const mountsBefore = await mountsUnder(root)

    reader = await openStore(root, driverName, { readOnly: true, waitForLock: false })
    expect(reader.readOnly).toBe(true)
    expect(reader.driverName).toBe(driverName)
    const map = await reader.map()
    expect([...map.keys()].sort()).toEqual([l1.chainID, l2.chainID].sort())
    expect(map.get(l2.chainID)?.parent?.chainID).toBe(l1.chainID)
    expect(await reader.has(l2.chainID)).toBe(true)
    expect((await reader.references(l1.chainID)).children).toEqual([l2.chainID])
    expect((await reader.references(l2.chainID)).holders.get('img')).toBe(1)
    const got = await reader.get(l2.chainID)
    expect(got.holder).toBe(READ_ONLY_HOLDER)
    expect(await readAll(await got.tarStream())).toEqual(tar2)
    expect(await readAll(await (await reader.get(l1.chainID, { holder: 'peek' })).tarStream())).toEqual(tar1)
    expect(await reader.listRWLayers()).toEqual(['ctr'])
    const ctr = await reader.getRWLayer('ctr')
    expect((await ctr.changes()).map((c) => `${c.kind} ${String(c.path)}`)).toEqual(['added /added'])
    expect((await reader.driverStatus()).length).toBeGreaterThan(0)

    // Every change is refused with the same typed error, and changes nothing.
    const readOnly = { code: 'ERR_STORE_READ_ONLY', kind: 'invalid-argument' }
    await expect(reader.register(tar1)).rejects.toMatchObject(readOnly)
    await expect(reader.releaseHolder(l2.chainID, 'img')).rejects.toMatchObject(readOnly)
    await expect(reader.createRWLayer('other', l2.chainID)).rejects.toMatchObject(readOnly)
    await expect(reader.commit(ctr)).rejects.toMatchObject(readOnly)
    await expect(reader.cleanup()).rejects.toMatchObject(readOnly)
    await expect(ctr.mount()).rejects.toMatchObject(readOnly)
    await expect(ctr.mount({ readOnly: true })).rejects.toMatchObject(readOnly)
    await expect(ctr.applyDiff(tar1)).rejects.toMatchObject(readOnly)
    // Handles hold nothing, so giving them back changes nothing either (but is checked).
    expect(await reader.release(got)).toEqual([])
    await expect(reader.release(got)).rejects.toMatchObject({ code: 'ERR_LAYER_NOT_RETAINED' })
    expect(await reader.releaseRWLayer(ctr)).toMatchObject({ removed: false })
    await reader.close()

    expect(diffTrees(before, snapshotTree(root))).toEqual([])
    expect(await mountsUnder(root)).toEqual(mountsBefore)
    // The writer never noticed.
    expect(await readAll(await l2.tarStream())).toEqual(tar2)
  })

  it('takes the store lock shared: a writer holding it blocks reads, other readers do not', async () => {
    const l1 = await writer.register(await makeTar([{ name: 'a', content: 'a' }]), null, { holder: 'img' })
    reader = await openStore(root, driverName, { readOnly: true, waitForLock: false })
    const other = StoreLock.forRoot(root)
    const shared = await other.shared()
    try {
      expect(await reader.has(l1.chainID)).toBe(true)
    } finally {
      await shared.release()
    }
    const exclusive = await other.exclusive()
    try {
      await expect(reader.map()).rejects.toMatchObject({ code: 'ERR_STORE_LOCKED' })
    } finally {
      await exclusive.release()
    }
    expect((await reader.map()).size).toBe(1)
  })
})

describe.skipIf(!isRoot)('read-only open: what it refuses', () => {
  let root: string
  let removeRoot: () => Promise<void>

  beforeEach(async () => {
    const t = await tempRoot()
    root = t.dir
    removeRoot = t.remove
  })

  afterEach(async () => removeRoot())

  it('a root with no store is StoreRootNotFoundError, and nothing is created', async () => {
    const missing = join(root, 'nothing-here')
    await expect(Store.open({ root: missing, readOnly: true })).rejects.toMatchObject({ code: 'ERR_STORE_ROOT_NOT_FOUND', kind: 'not-found' })
    await expect(stat(missing)).rejects.toMatchObject({ code: 'ENOENT' })
    await expect(Store.open({ root, readOnly: true })).rejects.toMatchObject({ code: 'ERR_STORE_ROOT_NOT_FOUND' })
    await expect(Store.open({ root, driver: 'vfs', readOnly: true })).rejects.toMatchObject({ code: 'ERR_STORE_ROOT_NOT_FOUND' })
    expect(snapshotTree(root).size).toBe(1)
  })

  it('overlay2 (a Docker root) opens read-only only; a plugin without openReadOnly is refused', async () => {
    await mkdir(join(root, 'overlay2', 'l'), { recursive: true })
    await mkdir(join(root, 'image', 'overlay2', 'layerdb', 'sha256'), { recursive: true })
    const before = snapshotTree(root)
    const store = await Store.open({ root, driver: 'overlay2', readOnly: true })
    expect(store.driverName).toBe('overlay2')
    expect((await store.map()).size).toBe(0)
    await store.close()
    expect(diffTrees(before, snapshotTree(root))).toEqual([])
    // Writable: refused before the root (or a lock file in it) is made; as the prior driver too.
    await expect(Store.open({ root: join(root, 'w'), driver: 'overlay2' })).rejects.toMatchObject({ code: 'ERR_DRIVER_READ_ONLY_ONLY' })
    await expect(stat(join(root, 'w'))).rejects.toMatchObject({ code: 'ENOENT' })
    await mkdir(join(root, 'overlay2', 'abc', 'diff'), { recursive: true })
    await writeFile(join(root, 'overlay2', 'abc', 'link'), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')
    const withLayer = snapshotTree(root)
    await expect(Store.open({ root })).rejects.toMatchObject({ code: 'ERR_DRIVER_READ_ONLY_ONLY', kind: 'invalid-argument' })
    expect(diffTrees(withLayer, snapshotTree(root))).toEqual([])
    const registry = new DriverRegistry([{ name: 'writer', create: builtinDrivers[0]!.create }])
    await mkdir(join(root, 'writer'))
    await mkdir(join(root, 'image', 'writer', 'layerdb'), { recursive: true })
    await expect(Store.open({ root, driver: 'writer', registry, readOnly: true })).rejects.toMatchObject({
      code: 'ERR_DRIVER_READ_ONLY_NOT_SUPPORTED',
      kind: 'not-supported',
    })
  })
})

describe('chain IDs', () => {
  it('follow the OCI image spec', async () => {
    const a = sha256(Buffer.from('a')) as DiffID
    const b = sha256(Buffer.from('b')) as DiffID
    expect(chainIDOf(null, a)).toBe(a)
    expect(chainIDOf(a as string as ChainID, b)).toBe('sha256:51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676')
    expect(EMPTY_LAYER_DIFF_ID).toBe(sha256(Buffer.alloc(1024)))
  })
})
