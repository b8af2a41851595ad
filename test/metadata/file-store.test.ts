import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { hasCode, isKind } from '../../src/errors.js'
import {
  CorruptMetadataError,
  FileMetadataStore,
  InvalidIDError,
  LayerDoesNotExistError,
  MountDoesNotExistError,
  REFERENCES_FILE,
} from '../../src/metadata/index.js'
import type { ChainID, MountID } from '../../src/metadata/index.js'
import { readEntries } from '../../src/tarsplit/index.js'
import { cleanupTemps, commitLayer, digest, hexID, makeTemp, testLayer } from './helpers.js'

const stores: FileMetadataStore[] = []
async function openStore(root: string, options = {}): Promise<FileMetadataStore> {
  const store = await FileMetadataStore.open(root, 'vfs', options)
  stores.push(store)
  return store
}

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
  await cleanupTemps()
})

describe('FileMetadataStore layout (moby byte for byte)', () => {
  it('creates layerdb/{tmp,sha256,mounts} and an owner lock that close() removes', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    const layerdb = join(root, 'image', 'vfs', 'layerdb')
    expect(store.layout.root).toBe(layerdb)
    expect((await readdir(layerdb)).sort()).toEqual(['mounts', 'sha256', 'tmp'])
    expect(await readdir(join(layerdb, 'tmp'))).toEqual([expect.stringMatching(/^owner-[0-9a-f]{32}\.lock$/)])
    await store.close()
    expect(await readdir(join(layerdb, 'tmp'))).toEqual([])
    await store.close() // idempotent
  })

  it('writes diff, size, cache-id, parent without newlines, descriptor.json and a gzip tar-split', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    const base = testLayer('base')
    const child = { ...testLayer('child', base.chainID), descriptor: { mediaType: 'x', size: 3 } }
    await commitLayer(store, base)
    await commitLayer(store, child)
    const dir = join(root, 'image/vfs/layerdb/sha256', child.chainID.slice(7))
    expect((await readdir(dir)).sort()).toEqual(['cache-id', 'descriptor.json', 'diff', 'parent', 'size', 'tar-split.json.gz'])
    expect(await readFile(join(dir, 'diff'), 'utf8')).toBe(child.diffID)
    expect(await readFile(join(dir, 'size'), 'utf8')).toBe(String(child.size))
    expect(await readFile(join(dir, 'cache-id'), 'utf8')).toBe(child.cacheID)
    expect(await readFile(join(dir, 'parent'), 'utf8')).toBe(base.chainID)
    expect(JSON.parse(await readFile(join(dir, 'descriptor.json'), 'utf8'))).toEqual({ mediaType: 'x', size: 3 })
    expect(gunzipSync(await readFile(join(dir, 'tar-split.json.gz'))).toString()).toBe(
      `{"type":2,"payload":"${Buffer.alloc(512, 7).toString('base64')}","position":0}\n` +
        '{"type":1,"name":"a.txt","payload":null,"position":1}\n',
    )
    for (const f of await readdir(dir)) expect((await stat(join(dir, f))).mode & 0o777).toBe(0o644)
    const baseDir = join(root, 'image/vfs/layerdb/sha256', base.chainID.slice(7))
    expect((await readdir(baseDir)).sort()).toEqual(['cache-id', 'diff', 'size', 'tar-split.json.gz'])

    expect(await store.getLayer(child.chainID)).toEqual(child)
    expect(await store.getLayer(base.chainID)).toEqual(base)
    expect(await store.list()).toEqual({ layers: [base.chainID, child.chainID].sort(), mounts: [] })
    const entries = []
    for await (const e of readEntries(await store.openTarSplit(child.chainID))) entries.push(e)
    expect(entries.map((e) => e.type)).toEqual([2, 1])
  })

  it('writes mount-id, init-id and parent of a RW layer and reads them back', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    const base = testLayer('base')
    await commitLayer(store, base)
    const mountID = hexID('m1') as MountID
    const tx = await store.startTransaction()
    await tx.setMountID(mountID)
    await tx.setInitID(`${mountID}-init` as MountID)
    await tx.setParent(base.chainID)
    await tx.commitMount('container-1')
    const dir = join(root, 'image/vfs/layerdb/mounts/container-1')
    expect(await readFile(join(dir, 'mount-id'), 'utf8')).toBe(mountID)
    expect(await readFile(join(dir, 'init-id'), 'utf8')).toBe(`${mountID}-init`)
    expect(await readFile(join(dir, 'parent'), 'utf8')).toBe(base.chainID)
    expect(await store.getMount('container-1')).toEqual({
      name: 'container-1',
      mountID,
      initID: `${mountID}-init`,
      parent: base.chainID,
    })
    expect((await store.list()).mounts).toEqual(['container-1'])
    await expect(store.getMount('nope')).rejects.toBeInstanceOf(MountDoesNotExistError)
  })

  it('lists only valid digest directories, ignoring junk and -removing markers', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    const layer = testLayer('a')
    await commitLayer(store, layer)
    const sha = join(root, 'image/vfs/layerdb/sha256')
    await mkdir(join(sha, 'not-a-digest'))
    await mkdir(join(sha, `${'a'.repeat(64)}-${'b'.repeat(64)}-removing`))
    await writeFile(join(sha, 'c'.repeat(64)), 'a file, not a dir')
    await mkdir(join(sha, 'D'.repeat(64)))
    expect((await store.list()).layers).toEqual([layer.chainID])
  })
})

describe('FileMetadataStore validation on read (as moby)', () => {
  const layer = testLayer('v')
  async function corrupt(file: string, content: string | undefined): Promise<unknown> {
    const root = await makeTemp()
    const store = await openStore(root)
    await commitLayer(store, layer)
    const path = join(store.layout.layerDir(layer.chainID), file)
    if (content === undefined) await (await import('node:fs/promises')).rm(path)
    else await writeFile(path, content)
    return store.getLayer(layer.chainID).then(
      () => undefined,
      (err: unknown) => err,
    )
  }

  it('accepts moby-tolerated whitespace in diff, cache-id and parent', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    const child = testLayer('w', digest('p') as ChainID)
    await commitLayer(store, child)
    const dir = store.layout.layerDir(child.chainID)
    await writeFile(join(dir, 'diff'), `  ${child.diffID}\n`)
    await writeFile(join(dir, 'cache-id'), `${child.cacheID}\n`)
    await writeFile(join(dir, 'parent'), `${child.parent!}\n`)
    expect(await store.getLayer(child.chainID)).toEqual(child)
  })

  it.each([
    ['diff', undefined, 'missing'],
    ['diff', 'sha256:abc', 'invalid'],
    ['diff', `sha512:${'a'.repeat(128)}`, 'invalid'],
    ['diff', `SHA256:${'a'.repeat(64)}`, 'invalid'],
    ['size', undefined, 'missing'],
    ['size', '12\n', 'invalid'], // moby's ParseInt does not trim
    ['size', '1.5', 'invalid'],
    ['size', '99999999999999999999', 'invalid'],
    ['cache-id', undefined, 'missing'],
    ['cache-id', ' \n', 'invalid'],
    ['cache-id', '../etc', 'invalid'],
    ['parent', 'sha256:zz', 'invalid'],
    ['descriptor.json', '{not json', 'invalid'],
    ['descriptor.json', '[1]', 'invalid'],
  ])('%s = %j is %s, and the error names the file', async (file, content, reason) => {
    const err = await corrupt(file, content)
    expect(err).toBeInstanceOf(CorruptMetadataError)
    const e = err as CorruptMetadataError
    expect(e.file).toBe(file)
    expect(e.reason).toBe(reason)
    expect(e.record).toBe(layer.chainID)
    expect(e.path.endsWith(`/${file}`)).toBe(true)
    expect(e.message).toContain(file)
    expect(isKind(e, 'bad-input')).toBe(true)
  })

  it('accepts size with a sign (Go ParseInt) and a null descriptor', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    await commitLayer(store, layer)
    const dir = store.layout.layerDir(layer.chainID)
    await writeFile(join(dir, 'size'), '+42')
    await writeFile(join(dir, 'descriptor.json'), 'null')
    const record = await store.getLayer(layer.chainID)
    expect(record.size).toBe(42)
    expect(record.descriptor).toBeUndefined()
  })

  it.each([
    ['mount-id', undefined, 'missing'],
    ['mount-id', 'abc', 'invalid'],
    ['mount-id', 'A'.repeat(64), 'invalid'],
    ['init-id', 'x-init', 'invalid'],
    ['parent', 'nope', 'invalid'],
  ])('mount %s = %j is %s', async (file, content, reason) => {
    const root = await makeTemp()
    const store = await openStore(root)
    const tx = await store.startTransaction()
    await tx.setMountID(hexID('m') as MountID)
    await tx.commitMount('c1')
    const path = join(store.layout.mountDir('c1'), file)
    if (content === undefined) await (await import('node:fs/promises')).rm(path)
    else await writeFile(path, content)
    const err = await store.getMount('c1').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(CorruptMetadataError)
    expect(err).toMatchObject({ file, reason, recordKind: 'mount', record: 'c1' })
  })

  it('accepts a mount-id with an -init suffix and whitespace, as moby isValidID', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    const tx = await store.startTransaction()
    await tx.setMountID(hexID('m') as MountID)
    await tx.commitMount('c1')
    await writeFile(join(store.layout.mountDir('c1'), 'mount-id'), `${hexID('m')}-init\n`)
    expect((await store.getMount('c1')).mountID).toBe(`${hexID('m')}-init`)
  })

  it('reports a missing layer as not-found, and refuses malformed IDs and names', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    const err = await store.getLayer(digest('none') as ChainID).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(LayerDoesNotExistError)
    expect(hasCode(err, 'ERR_LAYER_DOES_NOT_EXIST')).toBe(true)
    await expect(store.openTarSplit(digest('none') as ChainID)).rejects.toBeInstanceOf(LayerDoesNotExistError)
    await expect(store.getLayer('sha256:12' as ChainID)).rejects.toBeInstanceOf(InvalidIDError)
    for (const bad of ['', '.x', 'a/b', 'x-removing', 'x'.repeat(256)]) {
      await expect(store.getMount(bad)).rejects.toBeInstanceOf(InvalidIDError)
    }
  })

  it('refuses a tar-split that is not gzip, naming the file', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    await commitLayer(store, layer)
    await writeFile(store.layout.layerFile(layer.chainID, 'tar-split.json.gz'), '{"type":2}')
    await expect(store.openTarSplit(layer.chainID)).rejects.toMatchObject({ file: 'tar-split.json.gz', reason: 'invalid' })
  })
})

describe('FileMetadataStore removal and extra files', () => {
  it('markRemoving renames to <hex>-<64 hex>-removing; removeMarked deletes; both typed on a missing layer', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    const layer = testLayer('r')
    await commitLayer(store, layer)
    const mark = await store.markRemoving(layer.chainID)
    expect(mark.driverIDs).toEqual([layer.cacheID])
    expect(mark.path).toMatch(new RegExp(`/sha256/${layer.chainID.slice(7)}-[0-9a-f]{64}-removing$`))
    expect((await store.list()).layers).toEqual([])
    expect(await store.hasLayer(layer.chainID)).toBe(false)
    await expect(store.getLayer(layer.chainID)).rejects.toBeInstanceOf(LayerDoesNotExistError)
    await expect(store.markRemoving(layer.chainID)).rejects.toBeInstanceOf(LayerDoesNotExistError)
    // the chain ID can be committed again while the old one is still being removed
    await commitLayer(store, layer)
    await store.removeMarked(mark)
    await store.removeMarked(mark)
    expect(await readdir(store.layout.sha256Dir)).toEqual([layer.chainID.slice(7)])
  })

  it('markMountRemoving frees the name and reports the mount and init IDs', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    const tx = await store.startTransaction()
    await tx.setMountID(hexID('m') as MountID)
    await tx.setInitID(`${hexID('m')}-init` as MountID)
    await tx.commitMount('c1')
    const mark = await store.markMountRemoving('c1')
    expect(mark.driverIDs).toEqual([hexID('m'), `${hexID('m')}-init`])
    expect((await store.list()).mounts).toEqual([])
    await store.removeMarked(mark)
    expect(await readdir(store.layout.mountsDir)).toEqual([])
    await expect(store.markMountRemoving('c1')).rejects.toBeInstanceOf(MountDoesNotExistError)
  })

  it('keeps reference holders in references.json, replaced atomically', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    const layer = testLayer('refs')
    await commitLayer(store, layer)
    expect(await store.getReferences(layer.chainID)).toEqual(new Map())
    await store.setReferences(layer.chainID, new Map([['zeta', 1], ['alpha', 2]]))
    const file = store.layout.layerFile(layer.chainID, REFERENCES_FILE)
    expect(await readFile(file, 'utf8')).toBe('{"holders":{"alpha":2,"zeta":1}}')
    expect(await store.getReferences(layer.chainID)).toEqual(new Map([['alpha', 2], ['zeta', 1]]))
    expect(await readdir(store.layout.tmpDir)).toEqual([expect.stringMatching(/^owner-/)])
    await writeFile(file, '{"holders":{"a":0}}')
    await expect(store.getReferences(layer.chainID)).rejects.toMatchObject({ file: REFERENCES_FILE, reason: 'invalid' })
    await expect(store.setReferences(digest('none') as ChainID, new Map())).rejects.toBeInstanceOf(LayerDoesNotExistError)
    await expect(store.setReferences(layer.chainID, new Map([['a', -1]]))).rejects.toThrow(RangeError)
  })

  it('reads and writes extra files of mounts; refuses moby names and odd names', async () => {
    const root = await makeTemp()
    const store = await openStore(root)
    const tx = await store.startTransaction()
    await tx.setMountID(hexID('m') as MountID)
    await tx.setExtra('mount-state.json', { count: 0 })
    await tx.commitMount('c1')
    expect(await store.readExtra({ mount: 'c1' }, 'mount-state.json')).toEqual({ count: 0 })
    await store.writeExtra({ mount: 'c1' }, 'mount-state.json', { count: 2, path: '/x' })
    expect(await store.readExtra({ mount: 'c1' }, 'mount-state.json')).toEqual({ count: 2, path: '/x' })
    await store.removeExtra({ mount: 'c1' }, 'mount-state.json')
    expect(await store.readExtra({ mount: 'c1' }, 'mount-state.json')).toBeUndefined()
    for (const bad of ['descriptor.json', 'diff', 'X.json', '../a.json', '.a.json']) {
      await expect(store.writeExtra({ mount: 'c1' }, bad, 1)).rejects.toBeInstanceOf(InvalidIDError)
    }
    await expect(store.readExtra({ mount: 'c2' }, 'mount-state.json')).rejects.toBeInstanceOf(MountDoesNotExistError)
  })
})

describe('FileMetadataStore read-only', () => {
  it('creates nothing, reads an existing layerdb, refuses writes', async () => {
    const root = await makeTemp()
    const ro0 = await openStore(join(root, 'absent'), { readOnly: true })
    expect(await ro0.list()).toEqual({ layers: [], mounts: [] })
    await expect(stat(join(root, 'absent'))).rejects.toMatchObject({ code: 'ENOENT' })

    const rw = await openStore(root)
    const layer = testLayer('ro')
    await commitLayer(rw, layer)
    await rw.close()
    const ro = await openStore(root, { readOnly: true })
    expect(await ro.getLayer(layer.chainID)).toEqual(layer)
    expect(await readdir(ro.layout.tmpDir)).toEqual([])
    for (const attempt of [() => ro.startTransaction(), () => ro.markRemoving(layer.chainID), () => ro.cleanup()]) {
      await expect(attempt()).rejects.toMatchObject({ code: 'ERR_METADATA_READ_ONLY' })
    }
    await ro.close()
    await expect(ro.list()).rejects.toMatchObject({ code: 'ERR_METADATA_CLOSED' })
  })
})
