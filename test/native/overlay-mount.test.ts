import { mkdtemp, mkdir, rm, writeFile, readFile, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  isMountPoint,
  isOverlaySupported,
  MNT_DETACH,
  mountOverlay,
  NativeArgumentError,
  readMountInfo,
  supportsLowerdirAppend,
  umount,
} from '../../src/native/index.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('skipping overlay mount tests: they need root (CAP_SYS_ADMIN)')

describe('overlay probes', () => {
  it('finds overlay in /proc/filesystems when the kernel has it', async () => {
    expect(typeof (await isOverlaySupported())).toBe('boolean')
  })
})

describe.skipIf(!isRoot)('mountOverlay', () => {
  let canAppend = false
  let dir: string
  const mounted: string[] = []

  beforeAll(async () => {
    canAppend = (await isOverlaySupported()) && (await supportsLowerdirAppend())
    if (!canAppend) console.warn('overlay lowerdir+ (Linux 6.8+) is missing: only the not-supported path is checked')
  })
  beforeEach(async () => {
    // A deep temp dir, so that 125 lower dir paths would overflow mount(2)'s one page.
    const base = await mkdtemp(join(tmpdir(), 'native-overlay-'))
    dir = join(base, 'a-rather-long-directory-name-to-make-every-layer-path-long'.repeat(2))
    await mkdir(dir)
    expect(dir.length).toBeGreaterThanOrEqual(100)
  })
  afterEach(async () => {
    for (const target of mounted.splice(0).reverse()) await umount(target, MNT_DETACH).catch(() => {})
    await rm(join(dir, '..'), { recursive: true, force: true })
  })

  async function layers(count: number): Promise<string[]> {
    const dirs: string[] = []
    for (let i = 0; i < count; i++) {
      const layer = join(dir, `layer-${String(i).padStart(3, '0')}`)
      await mkdir(layer)
      await writeFile(join(layer, `only-${i}`), `${i}`)
      await writeFile(join(layer, 'shadowed'), `${i}`)
      dirs.push(layer)
    }
    return dirs
  }

  it('mounts 2 layers with an upper dir: top shadows bottom, writes go up', async () => {
    const [bottom, top] = await layers(2)
    const upper = join(dir, 'upper')
    const work = join(dir, 'work')
    const merged = join(dir, 'merged')
    await mkdir(upper)
    await mkdir(work)
    await mkdir(merged)
    const attempt = mountOverlay({
      lowerDirs: [top!, bottom!],
      upperDir: upper,
      workDir: work,
      target: merged,
      options: ['index=off', 'uuid=off'],
    })
    if (!canAppend) {
      await expect(attempt).rejects.toMatchObject({ kind: 'not-supported' })
      return
    }
    await attempt
    mounted.push(merged)
    expect(await readFile(join(merged, 'only-0'), 'utf8')).toBe('0')
    expect(await readFile(join(merged, 'only-1'), 'utf8')).toBe('1')
    expect(await readFile(join(merged, 'shadowed'), 'utf8')).toBe('1')
    await writeFile(join(merged, 'new'), 'up')
    expect(await readdir(upper)).toEqual(['new'])
    const info = (await readMountInfo()).find((m) => m.mountPoint === merged)
    expect(info?.fstype).toBe('overlay')
    expect(info?.superOptions).toContain('uuid=off') // index=off is this kernel's default, so not shown
    await umount(merged)
    mounted.pop()
    expect(await isMountPoint(merged)).toBe(false)
  })

  it('creates the superblock on the calling thread when asked (inline), as on the worker', async () => {
    const [bottom, top] = await layers(2)
    const merged = join(dir, 'merged')
    await mkdir(merged)
    const attempt = mountOverlay({ lowerDirs: [top!, bottom!], target: merged, readOnly: true, inline: true })
    if (!canAppend) {
      await expect(attempt).rejects.toMatchObject({ kind: 'not-supported' })
      return
    }
    await attempt
    mounted.push(merged)
    expect(await readFile(join(merged, 'shadowed'), 'utf8')).toBe('1')
    await umount(merged)
    mounted.pop()
    // A refusal from the inline create is the same typed error as the worker's.
    // (A work dir inside the upper dir is refused when the superblock is made, not before.)
    const upper = join(dir, 'upper')
    await mkdir(join(upper, 'work'), { recursive: true })
    const err = await mountOverlay({ lowerDirs: [top!, bottom!], upperDir: upper, workDir: join(upper, 'work'), target: merged, inline: true }).catch(
      (e: unknown) => e,
    )
    expect(err).toMatchObject({ syscall: 'fsconfig', code: 'EINVAL' })
    expect(await isMountPoint(merged)).toBe(false)
  })

  it('mounts 125 lower dirs with long absolute paths, read-only', async () => {
    const dirs = await layers(125)
    const lowerdirOption = `lowerdir=${[...dirs].reverse().join(':')}`
    expect(lowerdirOption.length).toBeGreaterThan(4096) // what mount(2) could not take
    const merged = join(dir, 'merged')
    await mkdir(merged)
    const attempt = mountOverlay({ lowerDirs: [...dirs].reverse(), target: merged, readOnly: true })
    if (!canAppend) {
      await expect(attempt).rejects.toMatchObject({ kind: 'not-supported' })
      return
    }
    await attempt
    mounted.push(merged)
    expect(await readFile(join(merged, 'only-0'), 'utf8')).toBe('0')
    expect(await readFile(join(merged, 'only-124'), 'utf8')).toBe('124')
    expect(await readFile(join(merged, 'shadowed'), 'utf8')).toBe('124')
    expect((await readdir(merged)).length).toBe(126)
    await expect(writeFile(join(merged, 'x'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
  })

  it('fails with typed errors and mounts nothing', async () => {
    const merged = join(dir, 'merged')
    await mkdir(merged)
    await expect(mountOverlay({ lowerDirs: [], target: merged })).rejects.toBeInstanceOf(NativeArgumentError)
    await expect(
      mountOverlay({ lowerDirs: [dir], upperDir: join(dir, 'u'), target: merged }),
    ).rejects.toBeInstanceOf(NativeArgumentError)
    if (!canAppend) return
    const missing = join(dir, 'missing-layer')
    const err = await mountOverlay({ lowerDirs: [missing, dir], target: merged }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ENOENT', kind: 'not-found', syscall: 'fsconfig', path: missing })
    const bad = await mountOverlay({ lowerDirs: [dir], target: merged, options: ['no_such_option'] }).catch(
      (e: unknown) => e,
    )
    expect(bad).toMatchObject({ code: 'EINVAL', syscall: 'fsconfig' })
    expect((bad as Error).message).toContain('no_such_option')
    expect(await isMountPoint(merged)).toBe(false)
  })
})
