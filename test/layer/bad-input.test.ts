/**
 * Bad input to `register`: truncated, corrupt and hostile tars, broken compression, a missing
 * parent, a wrong known diff ID, an abort, and a full disk (a small tmpfs mounted here). Each
 * must fail with a typed error, leave the store as it was and leave no orphan.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MNT_DETACH, mount, umount } from '../../src/native/index.js'
import type { ChainID, DiffID, LayerStore } from '../../src/layer/index.js'
import { driverIDs, driverNames, expectNoOrphans, ls, makeTar, openStore, sha256, slices, storeFixture, tempRoot } from './helpers.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('layer bad-input tests skipped: they need root (tmpfs mounts, drivers)')

/** What must not change when a register fails. */
async function state(root: string, store: LayerStore): Promise<unknown> {
  const layerdb = join(root, 'image', store.driverName, 'layerdb')
  return {
    layers: [...(await store.map()).keys()].sort(),
    mounts: await ls(join(layerdb, 'mounts')),
    // Owner locks of open stores are not state.
    tmp: (await ls(join(layerdb, 'tmp'))).filter((n) => !n.startsWith('owner-')),
    sha256: await ls(join(layerdb, 'sha256')),
  }
}

/** A tar whose member header checksum is wrong. */
function corruptChecksum(tar: Buffer): Buffer {
  const bad = Buffer.from(tar)
  bad[148] = bad[148] === 0x30 ? 0x31 : 0x30
  return bad
}

describe.skipIf(!isRoot).each(driverNames())('register with bad input on %s', (driverName) => {
  const fx = storeFixture(driverName)
  let base: ChainID
  let baseCacheID: string

  beforeEach(async () => {
    const layer = await fx.store.register(await makeTar([{ name: 'base.txt', content: 'base' }]), null, { holder: 'base' })
    base = layer.chainID
    baseCacheID = layer.cacheID
  })

  const expectRefused = async (input: AsyncIterable<Uint8Array> | Buffer, expected: object, parent: ChainID | null = base, extra = {}): Promise<void> => {
    const before = await state(fx.root, fx.store)
    const source = Buffer.isBuffer(input) ? slices(input, 321) : input
    await expect(fx.store.register(source, parent, extra)).rejects.toMatchObject(expected)
    expect(await state(fx.root, fx.store)).toEqual(before)
    // The parent got its reference back: only the holder 'base' holds it.
    expect((await fx.store.references(base)).holders).toEqual(new Map([['base', 1]]))
    expect(await driverIDs(fx.root, driverName)).toEqual([baseCacheID])
  }

  it('refuses a tar cut inside a member', async () => {
    const tar = await makeTar([{ name: 'big.bin', content: Buffer.alloc(10_000, 7) }])
    await expectRefused(tar.subarray(0, 3000), { code: 'ERR_TAR_TRUNCATED', kind: 'bad-input' })
  })

  it('refuses a corrupt header and non-tar bytes', async () => {
    const tar = await makeTar([{ name: 'a.txt', content: 'a' }])
    await expectRefused(corruptChecksum(tar), { kind: 'bad-input' })
    await expectRefused(Buffer.from('this is not a tar archive at all '.repeat(40)), { kind: 'bad-input' })
  })

  it('refuses a path that climbs out of the layer, touching nothing outside', async () => {
    const victim = join(fx.root, 'victim')
    await mkdir(victim)
    await expectRefused(await makeTar([{ name: '../../victim/pwned', content: 'x' }]), { kind: 'unsafe-path' })
    await expectRefused(
      await makeTar([
        { name: 'escape', type: 'symlink', linkname: '../../../../victim' },
        { name: 'escape/pwned', content: 'x' },
      ]),
      { kind: 'unsafe-path' },
    )
    expect(await ls(victim)).toEqual([])
  })

  it('refuses duplicate paths (tar-split cannot replay them)', async () => {
    const tar = await makeTar([
      { name: 'dup.txt', content: 'one' },
      { name: './dup.txt', content: 'two' },
    ])
    await expectRefused(tar, { code: 'ERR_TAR_DUPLICATE_PATH', kind: 'bad-input' })
  })

  it('refuses truncated or corrupt compression, and compressions it cannot read', async () => {
    const tar = await makeTar([{ name: 'c.txt', content: 'compress me '.repeat(5000) }])
    const gz = gzipSync(tar)
    await expectRefused(gz.subarray(0, gz.length - 40), { code: 'ERR_LAYER_INPUT_CORRUPT', kind: 'bad-input', truncated: true })
    const zst = execFileSync('zstd', ['-q', '-c'], { input: tar })
    await expectRefused(zst.subarray(0, zst.length >> 1), { code: 'ERR_LAYER_INPUT_CORRUPT', kind: 'bad-input' })
    const bz = Buffer.concat([Buffer.from('BZh91AY&SY'), Buffer.alloc(100)])
    await expectRefused(bz, { code: 'ERR_COMPRESSION_NOT_SUPPORTED', kind: 'not-supported' })
  })

  it('refuses a missing parent', async () => {
    const missing = sha256(Buffer.from('nothing')) as ChainID
    await expectRefused(await makeTar([{ name: 'a', content: 'a' }]), { code: 'ERR_LAYER_DOES_NOT_EXIST', kind: 'not-found' }, missing)
  })

  it('refuses input that does not hash to the diff ID the caller expects', async () => {
    const tar = await makeTar([{ name: 'a', content: 'a' }])
    const wrong = sha256(Buffer.from('other')) as DiffID
    await expectRefused(tar, { code: 'ERR_LAYER_DIGEST_MISMATCH', kind: 'bad-input', expected: wrong }, base, { diffID: wrong })
  })

  it('stops at an abort', async () => {
    const tar = await makeTar([{ name: 'a', content: Buffer.alloc(200_000, 1) }])
    const controller = new AbortController()
    const source = (async function* () {
      let n = 0
      for await (const chunk of slices(tar, 4096)) {
        if (++n === 5) controller.abort(Object.assign(new Error('stop'), { code: 'ABORT_TEST', kind: 'invalid-argument' }))
        yield chunk
      }
    })()
    await expectRefused(source, { code: 'ABORT_TEST' }, base, { signal: controller.signal })
  })

  it('leaves no orphan after all that', async () => {
    await fx.store.close()
    const report = await expectNoOrphans(fx.root, driverName)
    expect(report?.removedDriverIDs).toEqual([])
  })
})

describe.skipIf(!isRoot).each(driverNames())('register on a full disk on %s', (driverName) => {
  let dir: string
  let removeDir: () => Promise<void>
  let root: string
  let mounted = false

  beforeEach(async () => {
    const t = await tempRoot()
    dir = t.dir
    removeDir = t.remove
    root = join(dir, 'small')
    await mkdir(root)
    await mount('tmpfs', root, 'tmpfs', 0, 'size=3m,mode=0700')
    mounted = true
  })

  afterEach(async () => {
    if (mounted) await umount(root, MNT_DETACH).catch(() => undefined)
    mounted = false
    await removeDir()
  })

  it('fails with a no-space error, changes nothing and leaves no orphan', async () => {
    const store = await openStore(root, driverName)
    try {
      const small = await store.register(await makeTar([{ name: 's.txt', content: 'small' }]), null, { holder: 'keep' })
      const before = await state(root, store)
      const big = await makeTar([{ name: 'big.bin', content: Buffer.alloc(8 << 20, 0x5a) }])
      await expect(store.register(slices(big, 65536), small.chainID)).rejects.toMatchObject({ kind: 'no-space' })
      expect(await state(root, store)).toEqual(before)
      expect(await driverIDs(root, driverName)).toEqual([small.cacheID])
      // Space came back: a layer that fits registers.
      const fits = await store.register(await makeTar([{ name: 'f.txt', content: 'fits' }]), small.chainID)
      expect((await readFile(join(root, 'image', store.driverName, 'layerdb', 'sha256', fits.chainID.slice(7), 'diff'), 'utf8'))).toBe(fits.diffID)
    } finally {
      await store.close()
    }
    await expectNoOrphans(root, driverName)
    expect((await stat(root)).isDirectory()).toBe(true)
  })
})
