/**
 * The overlay driver's image layers: what `create` and `createReadWrite` leave on disk (an
 * image layer has neither `work/` nor, but for a base layer, `committed`), how a layer is
 * read as committed (the marker, or a parent and no `work/`), and the layers other code
 * wrote: an old-style image layer (both), an old-style read-write base layer (neither), a
 * read-write parent marked when a child is made on it, a writable view of an image layer.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { members } from '../../../src/graphdriver/conformance-members.js'
import { unmountAll } from '../../../src/graphdriver/index.js'
import { OverlayDriver, overlayDriverFactory } from '../../../src/drivers/overlay/index.js'
import { isOverlaySupported } from '../../../src/native/index.js'

const isRoot = process.getuid?.() === 0
const overlayOK = isRoot && (await isOverlaySupported())
if (!isRoot) console.warn('[overlay image layers] skipped: they mount, which needs root')
else if (!overlayOK) console.warn('[overlay image layers] skipped: overlayfs is not in /proc/filesystems')

describe.skipIf(!overlayOK)('overlay image layers', () => {
  let tmp: string | undefined
  let drivers: OverlayDriver[] = []

  afterEach(async () => {
    for (const d of drivers) await d.cleanup().catch(() => undefined)
    drivers = []
    if (tmp) {
      await unmountAll(tmp)
      await rm(tmp, { recursive: true, force: true })
      tmp = undefined
    }
  })

  async function fresh(): Promise<string> {
    tmp = await mkdtemp(join(tmpdir(), 'layerstore-overlay-img-'))
    return join(tmp, 'overlay')
  }

  async function open(home: string): Promise<OverlayDriver> {
    const d = (await overlayDriverFactory.create({ home, options: {} })) as OverlayDriver
    drivers.push(d)
    return d
  }

  const entries = async (dir: string): Promise<string[]> => (await readdir(dir)).sort()

  // Writes a file into the layer's view; the error code when refused.
  async function tryWrite(d: OverlayDriver, id: string, options?: { writable: true }): Promise<string> {
    const view = await d.get(id, options)
    try {
      await writeFile(join(view, 'written'), id)
      return 'ok'
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? String(err)
    } finally {
      await d.put(id)
    }
  }

  it('makes an image layer without work/ and, but for a base layer, without committed', async () => {
    const home = await fresh()
    const d = await open(home)
    await d.create('a', null)
    await d.create('b', 'a')
    await d.create('c', 'b')
    expect(await entries(join(home, 'a'))).toEqual(['committed', 'diff', 'link'])
    for (const id of ['b', 'c']) expect(await entries(join(home, id))).toEqual(['diff', 'link', 'lower'])
    // Read back by another instance (nothing remembered): all committed, all read-only.
    const other = await open(home)
    for (const id of ['a', 'b', 'c']) {
      expect((await other.layerInfo(id)).committed).toBe(true)
      expect(await tryWrite(other, id)).toBe('EROFS')
    }
    // Children made on image layers mark nothing.
    expect(await entries(join(home, 'b'))).toEqual(['diff', 'link', 'lower'])
  })

  it('makes a read-write layer with work/ and no marker, also a base one', async () => {
    const home = await fresh()
    const d = await open(home)
    await d.create('a', null)
    await d.createReadWrite('rw', 'a')
    await d.createReadWrite('rw-base', null)
    expect(await entries(join(home, 'rw'))).toEqual(['diff', 'link', 'lower', 'work'])
    expect(await entries(join(home, 'rw-base'))).toEqual(['diff', 'link', 'work'])
    expect((await stat(join(home, 'rw', 'work'))).mode & 0o777).toBe(0o700)
    const other = await open(home)
    for (const id of ['rw', 'rw-base']) {
      expect((await other.layerInfo(id)).committed).toBe(false)
      expect(await tryWrite(other, id)).toBe('ok')
      expect(await readFile(join(home, id, 'diff', 'written'), 'utf8')).toBe(id)
    }
  })

  it('mounts an old-style image layer (committed and work/) read-only', async () => {
    const home = await fresh()
    const d = await open(home)
    await d.create('a', null)
    await d.create('b', 'a')
    await d.applyDiff('b', 'a', members([{ name: 'f', content: 'b' }]))
    // What the previous code left: both the marker and an empty work/.
    await mkdir(join(home, 'b', 'work'), { mode: 0o700 })
    await writeFile(join(home, 'b', 'committed'), '', { mode: 0o600 })
    const other = await open(home)
    expect((await other.layerInfo('b')).committed).toBe(true)
    const view = await other.get('b')
    try {
      expect(await readFile(join(view, 'f'), 'utf8')).toBe('b')
      await expect(writeFile(join(view, 'new'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
    } finally {
      await other.put('b')
    }
    // A child of it mounts too, and leaves b as it was.
    await other.createReadWrite('c', 'b')
    expect(await tryWrite(other, 'c')).toBe('ok')
    expect(await entries(join(home, 'b'))).toEqual(['committed', 'diff', 'link', 'lower', 'work'])
  })

  it('keeps an old-style read-write base layer (neither work/ nor committed) read-write', async () => {
    const home = await fresh()
    const d = await open(home)
    await d.createReadWrite('rw-base', null)
    await rmdir(join(home, 'rw-base', 'work')) // the previous code made none for a base layer
    const other = await open(home)
    expect((await other.layerInfo('rw-base')).committed).toBe(false)
    expect(await tryWrite(other, 'rw-base')).toBe('ok')
  })

  it('marks a read-write parent committed when a child is made on it', async () => {
    const home = await fresh()
    const d = await open(home)
    await d.create('a', null)
    await d.createReadWrite('p', 'a')
    await d.createReadWrite('p-base', null)
    expect((await d.layerInfo('p')).committed).toBe(false)
    await d.create('k', 'p')
    await d.createReadWrite('k-base', 'p-base')
    for (const id of ['p', 'p-base']) {
      expect((await stat(join(home, id, 'committed'))).isFile()).toBe(true)
      expect((await d.layerInfo(id)).committed).toBe(true)
      expect(await tryWrite(d, id)).toBe('EROFS')
    }
    expect(await entries(join(home, 'k'))).toEqual(['diff', 'link', 'lower'])
  })

  it('gives an image layer work/ (and its marker) for a writable view, and stays read-only', async () => {
    const home = await fresh()
    const d = await open(home)
    await d.create('a', null)
    await d.create('b', 'a')
    await d.applyDiff('a', null, members([{ name: 'fa', content: 'a' }]))
    await d.applyDiff('b', 'a', members([{ name: 'fb', content: 'b' }]))
    const view = await d.get('b', { writable: true })
    try {
      expect(await readFile(join(view, 'fa'), 'utf8')).toBe('a')
      await writeFile(join(view, 'new'), 'x')
    } finally {
      await d.put('b')
    }
    expect(await readFile(join(home, 'b', 'diff', 'new'), 'utf8')).toBe('x')
    expect((await stat(join(home, 'b', 'work'))).mode & 0o777).toBe(0o700)
    expect((await stat(join(home, 'b', 'committed'))).isFile()).toBe(true)
    // Still an image layer for every other get, in this driver and in a new one; a second
    // writable view finds work/ made.
    expect(await tryWrite(d, 'b')).toBe('EROFS')
    expect(await tryWrite(await open(home), 'b')).toBe('EROFS')
    expect(await tryWrite(d, 'b', { writable: true })).toBe('ok')
    // A base image layer's writable view is a bind: it needs no work/.
    expect(await tryWrite(d, 'a', { writable: true })).toBe('ok')
    expect(await entries(join(home, 'a'))).toEqual(['committed', 'diff', 'link'])
    expect(await tryWrite(d, 'a')).toBe('EROFS')
  })
})
