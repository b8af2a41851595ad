/**
 * The overlay driver: its mount planning (pure, no root), the conformance suite once per
 * mount interface (`lowerdir+` and the forced mount(2) short-link fallback, the latter under
 * a home path of more than 100 characters), and overlay-only behaviour: the overlay2 layout,
 * depth-125 mounts under a long home in both modes, whiteouts in `diff/`, `index=off`,
 * read-only views, adoption of a stale mount, repair of a lost `l/` link, the recorded probe,
 * the cache of committed layers' bookkeeping.
 */
import { mkdirSync, rmSync } from 'node:fs'
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { runDriverConformance } from '../../src/graphdriver/conformance.js'
import { members, opaque, whiteout } from '../../src/graphdriver/conformance-members.js'
import { mountPointsUnder, unmountAll } from '../../src/graphdriver/index.js'
import {
  formatLower,
  generateLinkID,
  isLinkID,
  MAX_LOWERS,
  OverlayDriver,
  overlayDriverFactory,
  parseLink,
  parseLower,
  planOverlayMount,
  PROBE_XATTR,
} from '../../src/drivers/overlay/index.js'
import type { OverlayMountInput } from '../../src/drivers/overlay/index.js'
import { isOverlaySupported, lgetxattr, lsetxattr, MNT_DETACH, mount, readMountInfo, supportsLowerdirAppend, umount } from '../../src/native/index.js'

const isRoot = process.getuid?.() === 0
const overlayOK = isRoot && (await isOverlaySupported())
const appendOK = overlayOK && (await supportsLowerdirAppend().catch(() => false))
if (!isRoot) console.warn('[overlay] driver tests skipped: they mount, which needs root')
else if (!overlayOK) console.warn('[overlay] driver tests skipped: overlayfs is not in /proc/filesystems')
else if (!appendOK) console.warn('[overlay] lowerdir+ tests skipped: this kernel lacks lowerdir+ (Linux 6.8+)')

/** A directory whose absolute path is at least 100 characters long. */
function longDir(base: string): string {
  const pad = 'long-home-path-for-the-overlay-mount-budget-'
  let dir = join(base, pad)
  while (dir.length < 100) dir = join(dir, pad)
  return dir
}

// ---------------------------------------------------------------------------------------
// Pure: link ids, `lower` files, mount plans.

describe('overlay layout codecs', () => {
  it('makes 26-char base32 link ids', () => {
    const ids = new Set(Array.from({ length: 200 }, () => generateLinkID()))
    expect(ids.size).toBe(200)
    for (const id of ids) {
      expect(id).toMatch(/^[A-Z2-7]{26}$/)
      expect(isLinkID(id)).toBe(true)
    }
  })

  it('reads and writes lower files as l/A:l/B, refusing anything else', () => {
    const a = generateLinkID()
    const b = generateLinkID()
    expect(formatLower([`l/${a}`, `l/${b}`])).toBe(`l/${a}:l/${b}`)
    expect(parseLower(`l/${a}:l/${b}`)).toEqual([`l/${a}`, `l/${b}`])
    expect(parseLower('')).toBeNull()
    expect(parseLower(`l/${a}:/etc`)).toBeNull()
    expect(parseLower(`l/${a}::l/${b}`)).toBeNull()
    expect(parseLower(`../l/${a}`)).toBeNull()
    expect(parseLink(`${a}\n`)).toBe(a)
    expect(parseLink('')).toBeNull()
    expect(parseLink('short')).toBeNull()
  })
})

describe('planOverlayMount', () => {
  const id = 'f'.repeat(64)
  const link = 'A'.repeat(26)
  const lowers = (n: number): string[] => Array.from({ length: n }, (_, i) => `l/${String(i).padStart(26, 'B')}`)
  const base = (over: Partial<OverlayMountInput>): OverlayMountInput => ({
    home: '/var/lib/layerstore/overlay',
    id,
    link,
    lowers: lowers(3),
    readOnly: false,
    options: ['index=off'],
    api: 'lowerdir+',
    ...over,
  })

  it('bind-mounts a base layer, read-only when asked', () => {
    expect(planOverlayMount(base({ lowers: [], readOnly: true }))).toEqual({
      method: 'bind',
      source: `/var/lib/layerstore/overlay/${id}/diff`,
      target: `/var/lib/layerstore/overlay/${id}/merged`,
      readOnly: true,
    })
  })

  it('gives lowerdir+ the short links as absolute paths, upper and work for a rw layer', () => {
    const plan = planOverlayMount(base({}))
    expect(plan).toMatchObject({
      method: 'lowerdir+',
      lowerDirs: lowers(3).map((l) => `/var/lib/layerstore/overlay/${l}`),
      upperDir: `/var/lib/layerstore/overlay/${id}/diff`,
      workDir: `/var/lib/layerstore/overlay/${id}/work`,
      options: ['index=off'],
      readOnly: false,
    })
  })

  it('makes a read-only layer its own top lower, with no upper', () => {
    const plan = planOverlayMount(base({ readOnly: true }))
    expect(plan.method).toBe('lowerdir+')
    if (plan.method !== 'lowerdir+') return
    expect(plan.lowerDirs[0]).toBe(`/var/lib/layerstore/overlay/l/${link}`)
    expect(plan.lowerDirs).toHaveLength(4)
    expect(plan.upperDir).toBeUndefined()
    expect(plan.readOnly).toBe(true)
  })

  it('uses absolute mount(2) data while it fits a page', () => {
    const plan = planOverlayMount(base({ api: 'mount-data', lowers: lowers(40) }))
    expect(plan).toMatchObject({ method: 'mount-data', cwd: null })
    if (plan.method !== 'mount-data') return
    expect(plan.data.startsWith('index=off,lowerdir=/var/lib/layerstore/overlay/l/')).toBe(true)
    expect(plan.data.endsWith(`,upperdir=/var/lib/layerstore/overlay/${id}/diff,workdir=/var/lib/layerstore/overlay/${id}/work`)).toBe(true)
    expect(plan.data.length).toBeLessThan(4096)
  })

  it('goes relative to home for 128 lowers under a long home, within one page', () => {
    const home = longDir('/var/lib')
    for (const readOnly of [false, true]) {
      const plan = planOverlayMount(base({ home, api: 'mount-data', lowers: lowers(MAX_LOWERS), readOnly }))
      expect(plan).toMatchObject({ method: 'mount-data', cwd: home, target: `${id}/merged` })
      if (plan.method !== 'mount-data') return
      expect(Buffer.byteLength(plan.data) + 1).toBeLessThanOrEqual(4096)
      expect(plan.data).not.toContain(home)
      expect(plan.data).toContain(`lowerdir=${readOnly ? `l/${link}:` : ''}l/`)
    }
  })

  it('falls back from lowerdir+ to mount(2) when a path is too long for fsconfig', () => {
    const home = `/${'h'.repeat(240)}`
    // Absolute paths still fit one page for two lowers; with 128 they must go relative.
    expect(planOverlayMount(base({ home, lowers: lowers(2) }))).toMatchObject({ method: 'mount-data', cwd: null })
    expect(planOverlayMount(base({ home, lowers: lowers(MAX_LOWERS) }))).toMatchObject({ method: 'mount-data', cwd: home })
  })

  it('goes relative when home holds a character the option string gives a meaning', () => {
    const plan = planOverlayMount(base({ home: '/srv/a,b:c', api: 'mount-data' }))
    expect(plan).toMatchObject({ method: 'mount-data', cwd: '/srv/a,b:c' })
  })

  it('reports too-long when not even relative paths fit', () => {
    const plan = planOverlayMount(base({ api: 'mount-data', lowers: lowers(MAX_LOWERS), pageSize: 2048 }))
    expect(plan.method).toBe('too-long')
    if (plan.method === 'too-long') expect(plan.length).toBeGreaterThan(2048)
  })

  it('adds the SELinux label as a context option', () => {
    const plan = planOverlayMount(base({ mountLabel: 'system_u:object_r:container_file_t:s0' }))
    expect(plan).toMatchObject({ options: ['index=off', 'context="system_u:object_r:container_file_t:s0"'] })
  })
})

// ---------------------------------------------------------------------------------------
// The conformance suite, once per mount interface. The forced mount(2) run lives under a
// home of more than 100 characters, so its deep-chain check needs the relative-path way.

const longTmp = longDir(join(tmpdir(), 'layerstore-overlay-long'))
if (overlayOK) mkdirSync(longTmp, { recursive: true })
afterAll(() => rmSync(join(tmpdir(), 'layerstore-overlay-long'), { recursive: true, force: true }))

if (appendOK) {
  runDriverConformance('overlay (lowerdir+)', async (home) => ({
    driver: await overlayDriverFactory.create({ home, options: { 'overlay.mount_api': 'lowerdir+' } }),
  }))
}
if (overlayOK) {
  runDriverConformance(
    'overlay (mount(2), short links, long home)',
    async (home) => ({ driver: await overlayDriverFactory.create({ home, options: { 'overlay.mount_api': 'mount-data' } }) }),
    { tmpDir: longTmp },
  )
}

// ---------------------------------------------------------------------------------------
// Overlay-only behaviour.

describe.skipIf(!overlayOK)('overlay driver', () => {
  let tmp: string
  let drivers: OverlayDriver[]

  beforeAll(() => {
    expect(longTmp.length).toBeGreaterThanOrEqual(100)
  })

  afterEach(async () => {
    for (const d of drivers) await d.cleanup().catch(() => undefined)
    if (tmp) {
      await unmountAll(tmp)
      await rm(tmp, { recursive: true, force: true })
    }
  })

  async function open(home: string, api: 'lowerdir+' | 'mount-data' | 'auto' = 'auto'): Promise<OverlayDriver> {
    const d = (await overlayDriverFactory.create({ home, options: { 'overlay.mount_api': api } })) as OverlayDriver
    drivers = [...(drivers ?? []), d]
    return d
  }

  async function fresh(parent = tmpdir()): Promise<string> {
    drivers = []
    tmp = await mkdtemp(join(parent, 'layerstore-overlay-'))
    return join(tmp, 'overlay')
  }

  it('keeps the overlay2 layout: link files, l/ links, lower files, work dirs, committed', async () => {
    const home = await fresh()
    const d = await open(home)
    await d.create('a', null)
    await d.create('b', 'a')
    await d.createReadWrite('c', 'b')
    const link = async (id: string): Promise<string> => readFile(join(home, id, 'link'), 'utf8')
    for (const id of ['a', 'b', 'c']) {
      const l = await link(id)
      expect(l).toMatch(/^[A-Z2-7]{26}$/)
      expect(await readlink(join(home, 'l', l))).toBe(`../${id}/diff`)
      expect((await stat(join(home, id, 'diff'))).isDirectory()).toBe(true)
    }
    await expect(stat(join(home, 'a', 'lower'))).rejects.toMatchObject({ code: 'ENOENT' })
    await expect(stat(join(home, 'a', 'work'))).rejects.toMatchObject({ code: 'ENOENT' })
    expect(await readFile(join(home, 'b', 'lower'), 'utf8')).toBe(`l/${await link('a')}`)
    expect(await readFile(join(home, 'c', 'lower'), 'utf8')).toBe(`l/${await link('b')}:l/${await link('a')}`)
    expect((await stat(join(home, 'c', 'work'))).isDirectory()).toBe(true)
    // An image layer is committed by having no work/ (a base one by the marker); the
    // read-write leaf has work/ and no marker. (More in overlay/image-layers.test.ts.)
    expect((await stat(join(home, 'a', 'committed'))).isFile()).toBe(true)
    await expect(stat(join(home, 'b', 'work'))).rejects.toMatchObject({ code: 'ENOENT' })
    for (const id of ['b', 'c']) await expect(stat(join(home, id, 'committed'))).rejects.toMatchObject({ code: 'ENOENT' })
    expect((await stat(home)).mode & 0o777).toBe(0o710)
    expect((await stat(join(home, 'l'))).mode & 0o777).toBe(0o700)
    const meta = await d.getMetadata('c')
    expect(meta).toEqual({
      WorkDir: join(home, 'c', 'work'),
      MergedDir: join(home, 'c', 'merged'),
      UpperDir: join(home, 'c', 'diff'),
      LowerDir: `${join(home, 'b', 'diff')}:${join(home, 'a', 'diff')}`,
    })
  })

  it('stores whiteouts as 0/0 character devices and opaque dirs as xattrs in diff/', async () => {
    const home = await fresh()
    const d = await open(home)
    await d.create('a', null)
    await d.applyDiff('a', null, members([{ name: 'd', type: 'directory' }, { name: 'd/x', content: 'x' }, { name: 'f', content: 'f' }]))
    await d.create('b', 'a')
    await d.applyDiff('b', 'a', members([whiteout('f'), { name: 'd', type: 'directory' }, opaque('d'), { name: 'd/y', content: 'y' }]))
    const wh = await lstat(join(home, 'b', 'diff', 'f'))
    expect(wh.isCharacterDevice()).toBe(true)
    expect(wh.rdev).toBe(0)
    expect(lgetxattr(join(home, 'b', 'diff', 'd'), 'trusted.overlay.opaque')?.toString()).toBe('y')
    await expect(lstat(join(home, 'b', 'diff', '.wh.f'))).rejects.toMatchObject({ code: 'ENOENT' })
    const view = await d.get('b')
    try {
      await expect(lstat(join(view, 'f'))).rejects.toMatchObject({ code: 'ENOENT' })
      await expect(lstat(join(view, 'd', 'x'))).rejects.toMatchObject({ code: 'ENOENT' })
      expect(await readFile(join(view, 'd', 'y'), 'utf8')).toBe('y')
      // Read-only: committed layers are mounted without an upper.
      await expect(writeFile(join(view, 'new'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
    } finally {
      await d.put('b')
    }
    // A base layer's read-only view is a read-only bind.
    const base = await d.get('a')
    try {
      await expect(writeFile(join(base, 'new'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
    } finally {
      await d.put('a')
    }
  })

  for (const api of ['lowerdir+', 'mount-data'] as const) {
    it.skipIf(api === 'lowerdir+' && !appendOK)(`mounts depth 125 under a home of 100+ chars (${api})`, async () => {
      const home = join(await fresh(longTmp), 'overlay')
      expect(home.length).toBeGreaterThanOrEqual(100)
      const d = await open(home, api)
      const depth = 125
      for (let i = 0; i < depth; i++) {
        const id = `layer${i}`
        await d.create(id, i === 0 ? null : `layer${i - 1}`)
        await writeFile(join(home, id, 'diff', `file${i}`), String(i))
      }
      await d.createReadWrite('rw', `layer${depth - 1}`)
      const plan = await d.planMount('rw')
      if (api === 'lowerdir+') expect(plan).toMatchObject({ method: 'lowerdir+', options: expect.arrayContaining(['index=off']) })
      else {
        expect(plan.method === 'mount-data' && plan.data.split(',')).toContain('index=off')
        // Absolute paths would take 125 × ~130 bytes: only the relative way fits.
        expect(plan).toMatchObject({ method: 'mount-data', cwd: home, target: 'rw/merged' })
        if (plan.method === 'mount-data') expect(plan.data.length).toBeLessThan(4096)
      }
      const view = await d.get('rw')
      try {
        const names = await readdir(view)
        expect(names).toHaveLength(depth)
        expect(await readFile(join(view, 'file0'), 'utf8')).toBe('0')
        expect(await readFile(join(view, `file${depth - 1}`), 'utf8')).toBe(String(depth - 1))
        await writeFile(join(view, 'written'), 'rw')
        expect(await readFile(join(home, 'rw', 'diff', 'written'), 'utf8')).toBe('rw')
        const info = (await readMountInfo()).find((m) => m.mountPoint === view)
        expect(info?.fstype).toBe('overlay')
        // The kernel lists non-default options only; index=off is passed (the plan), never on.
        expect(info?.superOptions.split(',')).not.toContain('index=on')
        expect(info?.superOptions).toContain(api === 'lowerdir+' ? 'lowerdir+=' : 'lowerdir=')
        // The process's own cwd never moved (the fallback mounts from a helper thread).
        expect(process.cwd()).not.toBe(home)
      } finally {
        await d.put('rw')
      }
      expect((await readMountInfo()).some((m) => m.mountPoint === view)).toBe(false)
    })
  }

  it('refuses a layer deeper than 128 lowers', async () => {
    const home = await fresh()
    const d = await open(home)
    for (let i = 0; i <= MAX_LOWERS; i++) await d.create(`l${i}`, i === 0 ? null : `l${i - 1}`)
    await expect(d.create('too-deep', `l${MAX_LOWERS}`)).rejects.toMatchObject({
      code: 'ERR_MAX_DEPTH_EXCEEDED',
      depth: MAX_LOWERS + 1,
    })
    expect(await d.exists('too-deep')).toBe(false)
  })

  it('adopts a mount a crashed process left, and unmounts it with the last put', async () => {
    const home = await fresh()
    const crashed = await open(home)
    await crashed.create('a', null)
    await crashed.createReadWrite('b', 'a')
    const view = await crashed.get('b')
    drivers = [] // the "crashed" instance never puts nor cleans up
    const d = await open(home)
    const mountsOn = async (): Promise<number> => (await readMountInfo()).filter((m) => m.mountPoint === view).length
    await expect(d.remove('b')).rejects.toMatchObject({ code: 'ERR_DRIVER_LAYER_IN_USE', mountPoint: view })
    expect(await d.get('b')).toBe(view)
    expect(await mountsOn()).toBe(1) // adopted, not mounted twice
    await d.put('b')
    expect(await mountsOn()).toBe(1) // the adopted holder remains
    await d.put('b')
    expect(await mountsOn()).toBe(0)
    await expect(d.put('b')).rejects.toMatchObject({ code: 'ERR_DRIVER_LAYER_NOT_MOUNTED' })
    await d.remove('b')
    expect(await d.exists('b')).toBe(false)
  })

  it('re-creates a lost l/ link at start and names a damaged lower file', async () => {
    const home = await fresh()
    const d = await open(home)
    await d.create('a', null)
    await d.create('b', 'a')
    const link = await readFile(join(home, 'a', 'link'), 'utf8')
    await unlink(join(home, 'l', link))
    await open(home) // init repairs
    expect(await readlink(join(home, 'l', link))).toBe('../a/diff')
    // Damage of this kind is a crash's (moby/moby#46498), read by the next process: a new
    // driver. (A running driver trusts the committed layers it read: layer-info-cache.ts.)
    await writeFile(join(home, 'b', 'lower'), '')
    const restarted = await open(home)
    await expect(restarted.get('b')).rejects.toMatchObject({ code: 'ERR_OVERLAY_LAYER_CORRUPT', path: join(home, 'b', 'lower') })
  })

  it('reads a committed layer once, and again when it was made anew under the same id', async () => {
    const home = await fresh()
    const d = await open(home)
    const other = await open(home)
    await d.create('a', null)
    await d.create('x', null)
    await d.create('b', 'a')
    const first = await d.findLayerInfo('b')
    expect(first?.committed).toBe(true)
    // Known, not read again: the same frozen object.
    expect(await d.findLayerInfo('b')).toBe(first)
    expect(Object.isFrozen(first)).toBe(true)
    // Another instance (as another process would) removes b and makes it again on x.
    await other.remove('b')
    expect(await d.findLayerInfo('b')).toBeUndefined()
    await other.create('b', 'x')
    const again = await d.findLayerInfo('b')
    expect(again?.lowers).toEqual([`l/${(await readFile(join(home, 'x', 'link'), 'utf8')).trim()}`])
    expect((await d.changes('b', 'x')).length).toBe(0)
    // A read-write layer is read each time (its marker may come later), and so is its view.
    await d.createReadWrite('c', 'b')
    expect((await d.findLayerInfo('c'))?.committed).toBe(false)
    await other.create('d', 'c')
    expect((await d.findLayerInfo('c'))?.committed).toBe(true)
    expect(await d.findLayerInfo('missing')).toBeUndefined()
  })

  it('records a passed probe on home, and probes again where the record does not hold', async () => {
    const home = await fresh()
    const recorded = (dir: string): string | undefined => lgetxattr(dir, PROBE_XATTR)?.toString('utf8')
    // A fresh root: probed in the parent, recorded once init made home.
    await open(home)
    const key = recorded(home)
    expect(JSON.parse(key ?? '{}')).toMatchObject({ api: appendOK ? 'lowerdir+' : 'mount-data', dev: (await stat(home)).dev })
    // No scratch dir, no mount, no file left behind by the probe: home holds l/ only.
    expect((await readdir(tmp)).filter((n) => n.includes('~'))).toEqual([])
    expect(await readdir(home)).toEqual(['l'])
    expect(await mountPointsUnder(tmp)).toEqual([])
    // Opened again: the record matches, so no probe (which would set the attribute again,
    // changing home's ctime).
    const before = await stat(home, { bigint: true })
    const again = await open(home)
    expect((await stat(home, { bigint: true })).ctimeNs).toBe(before.ctimeNs)
    expect(await again.list()).toEqual([])
    // A record made elsewhere (another kernel, device or option set) does not match: probed.
    lsetxattr(home, PROBE_XATTR, Buffer.from((key ?? '').replace('"dev":', '"dev":1')))
    await open(home)
    expect(recorded(home)).toBe(key)
    // The same record on another filesystem (a tmpfs home) does not hold there either.
    const other = join(tmp, 'tmpfs')
    await mkdir(other)
    await mount('tmpfs', other, 'tmpfs', 0)
    try {
      const otherHome = join(other, 'overlay')
      await mkdir(otherHome)
      lsetxattr(otherHome, PROBE_XATTR, Buffer.from(key ?? ''))
      // Probed: either recorded anew, or refused (a kernel whose tmpfs cannot be an upper).
      if (await open(otherHome).then(() => true, () => false)) expect(recorded(otherHome)).not.toBe(key)
    } finally {
      for (const d of drivers) await d.cleanup().catch(() => undefined)
      await umount(other, MNT_DETACH)
    }
  })

  it('refuses unknown driver options and storage options', async () => {
    const home = await fresh()
    await expect(overlayDriverFactory.create({ home, options: { 'overlay.size': '10G' } })).rejects.toMatchObject({
      code: 'ERR_DRIVER_INVALID_OPTION',
    })
    const d = await open(home)
    await expect(d.create('a', null, { storageOpt: { size: '1G' } })).rejects.toMatchObject({ code: 'ERR_DRIVER_INVALID_OPTION' })
    await expect(d.createReadWrite('a', null, { storageOpt: { size: '1G' } })).rejects.toMatchObject({
      code: 'ERR_DRIVER_INVALID_OPTION',
    })
    expect(await d.exists('a')).toBe(false)
  })
})
