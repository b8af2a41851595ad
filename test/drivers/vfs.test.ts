/**
 * The vfs driver: the conformance suite (with and without read-only mounts) and what is
 * vfs's own: the home layout, options and read-only views as bind mounts. Its copier is
 * graphdriver's `copyDir` (test/graphdriver/copy-dir.test.ts).
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { vfsDriverFactory } from '../../src/drivers/vfs/index.js'
import { members, runDriverConformance } from '../../src/graphdriver/conformance.js'
import type { Driver } from '../../src/graphdriver/index.js'
import { hasDiffGetter, unmountAll } from '../../src/graphdriver/index.js'
import { FILE_TYPE } from '../../src/tarsplit/index.js'
import type { FileEntry } from '../../src/tarsplit/index.js'
import { isMountPoint, readMountInfo } from '../../src/native/index.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('vfs: read-only mount and ownership tests skipped: they need root')

runDriverConformance('vfs', async (home) => ({ driver: await vfsDriverFactory.create({ home }) }))
runDriverConformance('vfs (vfs.ro_mounts=false)', async (home) => ({
  driver: await vfsDriverFactory.create({ home, options: { 'vfs.ro_mounts': 'false' } }),
}))

let tmp: string
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'layerstore-vfs-'))
})
afterEach(async () => {
  await unmountAll(tmp)
  await rm(tmp, { recursive: true, force: true })
})

async function start(options?: Record<string, string>): Promise<Driver> {
  return (await vfsDriverFactory.create({ home: join(tmp, 'vfs'), ...(options ? { options } : {}) })) as Driver
}

describe('vfs driver', () => {
  it('keeps moby’s layout: dir/<id> holds the complete tree', async () => {
    const d = await start()
    try {
      await d.create('a', null)
      await d.applyDiff('a', null, members([{ name: 'f', content: 'x' }]))
      await d.create('b', 'a')
      expect(await readdir(join(tmp, 'vfs', 'dir'))).toEqual(['a', 'b'])
      expect(await readFile(join(tmp, 'vfs', 'dir', 'b', 'f'), 'utf8')).toBe('x')
      expect(await d.getMetadata('b')).toEqual({ SourceDir: join(tmp, 'vfs', 'dir', 'b') })
      expect(await d.status()).toEqual(
        expect.arrayContaining([
          ['Layers', '2'],
          ['Backing Filesystem', expect.any(String)],
        ]),
      )
      // Nothing half-made is left in tmp/.
      expect(await readdir(join(tmp, 'vfs', 'tmp'))).toEqual([])
    } finally {
      await d.cleanup()
    }
  })

  it('serves a layer’s files by name for tar-split reassembly (diffGetter)', async () => {
    const d = await start()
    try {
      await d.create('a', null)
      await d.applyDiff('a', null, members([{ name: 'dir', type: 'directory' }, { name: 'dir/f', content: 'payload' }]))
      expect(hasDiffGetter(d)).toBe(true)
      if (!hasDiffGetter(d)) return
      const { getter, close } = await d.diffGetter('a')
      try {
        const chunks: Buffer[] = []
        const entry: FileEntry = { type: FILE_TYPE, name: Buffer.from('dir/f'), size: 7, payload: null, position: 1 }
        for await (const c of await getter(Buffer.from('dir/f'), entry)) chunks.push(c)
        expect(Buffer.concat(chunks).toString()).toBe('payload')
      } finally {
        await close()
      }
      await d.remove('a') // close released the layer
    } finally {
      await d.cleanup()
    }
  })

  it('refuses unknown and malformed options', async () => {
    await expect(start({ 'vfs.nope': '1' })).rejects.toMatchObject({ code: 'ERR_DRIVER_INVALID_OPTION', kind: 'invalid-argument' })
    await expect(start({ 'vfs.ro_mounts': 'maybe' })).rejects.toMatchObject({ code: 'ERR_DRIVER_INVALID_OPTION' })
    const d = await start()
    await expect(d.createReadWrite('rw', null, { storageOpt: { size: '1G' } })).rejects.toMatchObject({
      code: 'ERR_DRIVER_INVALID_OPTION',
    })
    expect(await d.exists('rw')).toBe(false)
  })

  describe.skipIf(!isRoot)('read-only views', () => {
    it('serves a read-only layer through a read-only bind mount and a read-write layer as its directory', async () => {
      const d = await start()
      try {
        await d.create('ro', null)
        await d.applyDiff('ro', null, members([{ name: 'f', content: 'x' }]))
        await d.createReadWrite('rw', 'ro')
        const ro = await d.get('ro')
        expect(ro).toBe(join(tmp, 'vfs', 'mnt', 'ro'))
        expect(await isMountPoint(ro)).toBe(true)
        const info = (await readMountInfo()).find((m) => m.mountPoint === ro)
        expect(info?.options.split(',')).toContain('ro')
        expect(await d.get('rw')).toBe(join(tmp, 'vfs', 'dir', 'rw'))
        // The writable view for applyDiff is the directory itself, never the mount.
        expect(await d.get('ro', { writable: true })).toBe(join(tmp, 'vfs', 'dir', 'ro'))
        await d.put('ro')
        await d.put('ro')
        expect(await isMountPoint(ro)).toBe(false)
        await d.put('rw')
      } finally {
        await d.cleanup()
      }
    })

    it('adopts a read-only mount left by a crashed process and unmounts it on cleanup', async () => {
      const crashed = await start()
      await crashed.create('ro', null)
      const path = await crashed.get('ro') // never put: the process "dies" here
      const d = await start()
      try {
        expect(await d.get('ro')).toBe(path)
        expect((await readMountInfo()).filter((m) => m.mountPoint === path)).toHaveLength(1)
        await d.put('ro')
        expect(await isMountPoint(path)).toBe(true) // the crashed holder is still counted
        await expect(d.remove('ro')).rejects.toMatchObject({ code: 'ERR_DRIVER_LAYER_IN_USE', mountPoint: path })
      } finally {
        await d.cleanup()
      }
      expect(await isMountPoint(path)).toBe(false)
      await d.remove('ro')
      expect(await d.exists('ro')).toBe(false)
    })
  })
})
