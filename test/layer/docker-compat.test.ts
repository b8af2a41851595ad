/**
 * Docker compatibility (issue 6): a real Docker overlay2 data root, made by Debian's dockerd
 * 20.10 on a temporary `--data-root`, opened with the library as any store is
 * (`LayerStore.open({ root, driver: 'overlay2', readOnly: true })`) and with `layerctl
 * --read-only`. Its layers, chain IDs and parents are listed, each layer's `tarStream()` must
 * equal, byte for byte, the layer tar that `docker save` produced, and the root must be left
 * exactly as it was: the same names, sizes and mtimes, and no mount.
 *
 * Fixtures: two layers made with GNU tar here (GNU format, then POSIX/pax), covering a
 * hardlink, a symlink, an empty file, a big file (streamed by `assemble` rather than read
 * whole), a long name, a UTF-8 name, a setuid file, a non-root owner, and in layer 2 a
 * modified file, a whiteout and an opaque dir; and a container created (not started) on the
 * image, so that the root holds an RW layer and its init layer too. Skips with a printed
 * reason only when dockerd is absent or cannot start.
 */
import { execFile, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chown, link, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Readable, Writable } from 'node:stream'
import { gunzipSync } from 'node:zlib'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestContext } from 'vitest'
import { hasCode } from '../../src/errors.js'
import { overlay2DriverFactory, OverlayDriver } from '../../src/drivers/overlay/index.js'
import { chainIDOf, LayerStore } from '../../src/layer/index.js'
import type { ChainID } from '../../src/metadata/index.js'
import { parseDiffID } from '../../src/metadata/index.js'
import { readDockerManifest, writeDockerArchive } from '../helpers/docker-archive.js'
import { DockerdUnavailableError, dockerdSkipReason, startDockerd } from '../helpers/dockerd.js'
import type { Dockerd } from '../helpers/dockerd.js'
import { diffTrees, snapshotTree } from '../helpers/tree.js'
import { JsonPacker, disassemble } from '../../src/tarsplit/index.js'
import { lgetxattr } from '../../src/native/index.js'
import { mountsUnder } from '../mounts.js'

const run = promisify(execFile)
const TAG = 'layerstore-compat:test'
const LAYERCTL = fileURLToPath(new URL('../../bin/layerctl', import.meta.url))
const BUILT = existsSync(fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url)))
if (!BUILT) console.warn('skipping the layerctl --read-only test: dist/ is not built (npx tsc -p tsconfig.build.json)')

/** Opens the Docker root as the issue asks: read-only, with Docker's driver name. */
function openDockerRoot(root: string): Promise<LayerStore> {
  return LayerStore.open({ root, driver: 'overlay2', readOnly: true })
}

/** Our overlay driver on the root's `overlay2/`, opened read-only (for its layout helpers). */
async function dockerDriver(root: string): Promise<OverlayDriver> {
  const driver = await overlay2DriverFactory.openReadOnly!({ home: join(root, 'overlay2') })
  if (!(driver instanceof OverlayDriver)) throw new Error('overlay2 did not open an OverlayDriver')
  return driver
}

/** Names, sizes and mtimes of everything under `dir` (symlinks not followed). */
function namesSizesMtimes(dir: string): string[] {
  return [...snapshotTree(dir)].map(([path, e]) => `${path} ${e.type} ${e.size ?? '-'} ${e.mtime}`)
}

const absent = await dockerdSkipReason()
if (absent) console.warn(`skipping Docker compatibility tests: ${absent}`)

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** The tar-split JSON lines (not gzipped) our disassembler writes for `tar`. */
async function tarSplitJSON(tar: Buffer, options: { emptyFinalSegment: boolean }): Promise<Buffer> {
  const chunks: Buffer[] = []
  const out = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk)
      callback()
    },
  })
  const packer = new JsonPacker(out)
  for await (const member of disassemble(Readable.from([tar]), { sink: packer, ...options })) {
    for await (const _ of member.content) void _
  }
  await packer.finish()
  return Buffer.concat(chunks)
}

/** Makes layer 1's tree under `dir` (see the file comment). */
async function makeLayer1(dir: string): Promise<void> {
  await mkdir(join(dir, 'etc'), { recursive: true })
  await mkdir(join(dir, 'usr/bin'), { recursive: true })
  await mkdir(join(dir, 'gone'))
  await mkdir(join(dir, 'opq/old'), { recursive: true })
  await writeFile(join(dir, 'etc/hello'), 'hello from layer 1\n')
  await link(join(dir, 'etc/hello'), join(dir, 'etc/hello-hardlink'))
  await symlink('../../etc/hello', join(dir, 'usr/bin/hello-symlink'))
  await writeFile(join(dir, 'empty'), '')
  // Past assemble's 1 MiB verify-before-release bound, so it streams.
  await writeFile(join(dir, 'usr/bin/big'), randomBytes(3 * 1024 * 1024 + 17))
  await writeFile(join(dir, 'usr/bin/setuid'), '#!/bin/sh\n', { mode: 0o4755 })
  await writeFile(join(dir, 'café-ünïcode.txt'), 'utf-8 name\n')
  const long = join(dir, 'a'.repeat(60), 'b'.repeat(60))
  await mkdir(long, { recursive: true })
  await writeFile(join(long, 'long-name.txt'), 'a name over 100 bytes\n')
  await writeFile(join(dir, 'etc/owned'), 'owned by 1000\n')
  await chown(join(dir, 'etc/owned'), 1000, 1000)
  await writeFile(join(dir, 'gone/file'), 'deleted in layer 2\n')
  await writeFile(join(dir, 'opq/old/file'), 'hidden by the opaque dir in layer 2\n')
}

/** Makes layer 2's tree under `dir`: changes on layer 1, whiteouts AUFS-style as in layer tars. */
async function makeLayer2(dir: string): Promise<void> {
  await mkdir(join(dir, 'etc'), { recursive: true })
  await mkdir(join(dir, 'opq'))
  await writeFile(join(dir, 'etc/hello'), 'hello from layer 2, changed\n')
  await writeFile(join(dir, '.wh.gone'), '')
  await writeFile(join(dir, 'opq/.wh..wh..opq'), '')
  await writeFile(join(dir, 'opq/new'), 'new in layer 2\n')
  await writeFile(join(dir, 'added'), randomBytes(4096))
}

/** State shared by the tests: what dockerd made and saved. */
interface Scenario {
  readonly daemon: Dockerd
  readonly work: string
  /** The diff IDs of the layers, base first. */
  readonly diffIDs: readonly string[]
  /** The layer tars `docker save` wrote, base first. */
  readonly saved: readonly Buffer[]
  /** The layer tars we loaded, base first. */
  readonly input: readonly Buffer[]
  /** The ID of the container created on the image (never started). */
  readonly container: string
}

describe.skipIf(absent !== undefined)('a Docker overlay2 data root, read-only', () => {
  let scenario: Scenario | undefined
  let unavailable: string | undefined
  let daemon: Dockerd | undefined
  let work: string | undefined

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ls-docker-compat-'))
    try {
      daemon = await startDockerd()
    } catch (err) {
      if (!(err instanceof DockerdUnavailableError)) throw err
      unavailable = err.skipReason
      console.warn(`skipping Docker compatibility tests: ${unavailable}`)
      return
    }
    const trees = [join(work, 'l1'), join(work, 'l2')]
    await makeLayer1(trees[0]!)
    await makeLayer2(trees[1]!)
    const tars = [join(work, 'layer1.tar'), join(work, 'layer2.tar')]
    const mtime = ['--mtime=@1577836800', '--sort=name', '--numeric-owner']
    await run('tar', ['--format=gnu', ...mtime, '-C', trees[0]!, '-cf', tars[0]!, '.'])
    await run('tar', ['--format=posix', '--pax-option=delete=atime,delete=ctime', ...mtime, '-C', trees[1]!, '-cf', tars[1]!, '.'])
    const archive = join(work, 'image.tar')
    const { diffIDs } = await writeDockerArchive(archive, TAG, tars)

    await daemon.docker('load', '-i', archive)
    const container = (await daemon.docker('create', TAG, '/no-such-command')).toString().trim()
    const savedArchive = join(work, 'saved.tar')
    await daemon.docker('save', '-o', savedArchive, TAG)
    await daemon.stop()

    const savedDir = join(work, 'saved')
    await mkdir(savedDir)
    await run('tar', ['-xf', savedArchive, '-C', savedDir])
    const [entry] = await readDockerManifest(savedDir)
    if (!entry) throw new Error('docker save wrote an empty manifest.json')
    const saved = await Promise.all(entry.Layers.map((p) => readFile(join(savedDir, p))))
    const input = await Promise.all(tars.map((p) => readFile(p)))
    scenario = { daemon, work, diffIDs, saved, input, container }
  })

  afterAll(async () => {
    try {
      await daemon?.dispose()
    } finally {
      if (work) await rm(work, { recursive: true, force: true })
    }
  })

  /** The scenario, or skips the test (printed reason) when dockerd could not start. */
  function need(ctx: TestContext): Scenario {
    if (!scenario) {
      ctx.skip(`dockerd could not start: ${unavailable ?? 'see above'}`)
      throw new Error('unreachable')
    }
    return scenario
  }

  it('docker save returns the loaded layer tars unchanged (the premise)', (ctx) => {
    const { saved, input, diffIDs } = need(ctx)
    expect(saved).toHaveLength(2)
    for (const [i, tar] of saved.entries()) {
      expect(sha256(tar)).toBe(diffIDs[i])
      expect(tar.equals(input[i]!)).toBe(true)
    }
  })

  it('lists the layers: chain IDs from the diff IDs, parents, cache IDs in overlay2/', async (ctx) => {
    const { daemon, diffIDs } = need(ctx)
    const root = await openDockerRoot(daemon.root)
    const driver = await dockerDriver(daemon.root)
    try {
      expect(root.readOnly).toBe(true)
      expect(root.driverName).toBe('overlay2')
      const layers = await root.map()
      const [d1, d2] = diffIDs.map((d) => parseDiffID(d))
      // OCI: chainID(L1) = diffID(L1); chainID(L2) = sha256("<chainID(L1)> <diffID(L2)>").
      const c1 = d1! as string as ChainID
      const c2 = sha256(Buffer.from(`${c1} ${d2}`)) as ChainID
      expect(chainIDOf(null, d1!)).toBe(c1)
      expect(chainIDOf(c1, d2!)).toBe(c2)
      expect([...layers.keys()].sort()).toEqual([c1, c2].sort())
      const l1 = layers.get(c1)!
      const l2 = layers.get(c2)!
      expect(l1.diffID).toBe(d1)
      expect(l1.parent).toBeNull()
      expect(l2.diffID).toBe(d2)
      expect(l2.parent?.chainID).toBe(c1)
      expect(l2.depth).toBe(2)
      for (const l of [l1, l2]) {
        expect(l.cacheID).toMatch(/^[0-9a-f]{64}$/)
        expect(await driver.exists(l.cacheID)).toBe(true)
        expect(l.diffSize).toBeGreaterThan(0)
      }
      expect(l2.size).toBe(l1.diffSize + l2.diffSize)
      const got = await root.get(c2)
      expect(got).toMatchObject({ chainID: c2, diffID: d2, cacheID: l2.cacheID, depth: 2 })
      expect(await root.release(got)).toEqual([])
      // moby's layers carry no references of ours: nobody we know of holds them.
      expect(await root.references(c2)).toMatchObject({ children: [], rwLayers: [expect.any(String)] })
      expect((await root.references(c2)).holders.size).toBe(0)
      expect(Object.fromEntries(await root.driverStatus())).toMatchObject({ 'Mount API': 'none (opened read-only)' })
    } finally {
      await root.close()
    }
  })

  it('tarStream() of each layer equals the layer tar docker save wrote, byte for byte', async (ctx) => {
    const { daemon, diffIDs, saved } = need(ctx)
    const root = await openDockerRoot(daemon.root)
    try {
      const byDiffID = new Map([...(await root.map()).values()].map((l) => [l.diffID as string, l.chainID]))
      for (const [i, diffID] of diffIDs.entries()) {
        const bytes = await collect(await (await root.get(byDiffID.get(diffID)!)).tarStream())
        expect(sha256(bytes)).toBe(diffID)
        expect(bytes.length).toBe(saved[i]!.length)
        expect(bytes.equals(saved[i]!)).toBe(true)
      }
    } finally {
      await root.close()
    }
  })

  it('our disassembler writes the same tar-split JSON as Docker 20.10 stored', async (ctx) => {
    const { daemon, input, diffIDs } = need(ctx)
    const root = await openDockerRoot(daemon.root)
    try {
      const byDiffID = new Map([...(await root.map()).values()].map((l) => [l.diffID as string, l.chainID]))
      for (const [i, diffID] of diffIDs.entries()) {
        const hex = byDiffID.get(diffID)!.slice('sha256:'.length)
        const stored = join(daemon.root, 'image/overlay2/layerdb/sha256', hex, 'tar-split.json.gz')
        const theirs = gunzipSync(await readFile(stored))
        // Docker 20.10 vendors tar-split 0.11, which ends with one empty segment.
        const ours = await tarSplitJSON(input[i]!, { emptyFinalSegment: true })
        expect(ours.toString('utf8')).toBe(theirs.toString('utf8'))
      }
    } finally {
      await root.close()
    }
  })

  it("reads Docker's overlay2 layout with our overlay driver (link, lower, l/, whiteouts)", async (ctx) => {
    const { daemon, diffIDs, container } = need(ctx)
    const root = await openDockerRoot(daemon.root)
    const driver = await dockerDriver(daemon.root)
    try {
      const layers = [...(await root.map()).values()]
      const base = layers.find((l) => l.diffID === diffIDs[0])!
      const top = layers.find((l) => l.diffID === diffIDs[1])!
      const baseInfo = await driver.layerInfo(base.cacheID)
      const topInfo = await driver.layerInfo(top.cacheID)
      expect(baseInfo.lowers).toEqual([])
      expect(topInfo.lowers).toEqual([`l/${baseInfo.link}`])
      // Docker marks a layer committed only once a child is made on it: the container's init
      // layer made the image's top layer one, but the container's own layer is not (a get
      // would mount it read-write, which is why a read-only store never mounts).
      expect(baseInfo.committed).toBe(true)
      expect(topInfo.committed).toBe(true)
      const rw = await root.getRWLayer(container)
      expect((await driver.layerInfo(rw.mountID)).committed).toBe(false)
      expect(await driver.lowerDirs(topInfo)).toEqual([driver.layout.diffDir(base.cacheID)])
      // Whiteouts as overlayfs keeps them, so our native diff half reads Docker's layers too.
      const changes = await driver.changes(top.cacheID, base.cacheID)
      const kinds = Object.fromEntries(changes.map((c) => [c.path, c.kind]))
      expect(kinds).toMatchObject({
        '/gone': 'deleted',
        '/etc/hello': 'modified',
        '/opq/new': 'added',
        '/opq/old': 'deleted',
        '/added': 'added',
      })
      const opaque = await lgetxattr(join(driver.layout.diffDir(top.cacheID), 'opq'), 'trusted.overlay.opaque')
      expect(opaque?.toString()).toBe('y')
    } finally {
      await root.close()
    }
  })

  it("reads the container's RW layer (on its init layer) without mounting it", async (ctx) => {
    const { daemon, container } = need(ctx)
    const root = await openDockerRoot(daemon.root)
    try {
      expect(await root.listRWLayers()).toEqual([container])
      const rw = await root.getRWLayer(container)
      expect(rw.initID).toBe(`${rw.mountID}-init`)
      // The init layer's placeholders (/etc/hosts, /.dockerenv…) are not the container's changes.
      expect(await rw.changes()).toEqual([])
      expect(await rw.size()).toBe(0)
      expect(await collect(await rw.tarStream())).toEqual(Buffer.alloc(1024))
      await expect(rw.mount()).rejects.toMatchObject({ code: 'ERR_STORE_READ_ONLY' })
      await expect(root.releaseHolder(rw.parent!.chainID, 'x')).rejects.toMatchObject({ code: 'ERR_STORE_READ_ONLY' })
      await expect(root.register(Buffer.alloc(1024))).rejects.toMatchObject({ code: 'ERR_STORE_READ_ONLY' })
      await expect(root.cleanup()).rejects.toMatchObject({ code: 'ERR_STORE_READ_ONLY', kind: 'invalid-argument' })
    } finally {
      await root.close()
    }
  })

  it('leaves the Docker root exactly as it was: names, sizes, mtimes, no lock file, no mount', async (ctx) => {
    const { daemon, container } = need(ctx)
    const before = snapshotTree(daemon.root)
    const listing = namesSizesMtimes(daemon.root)
    const mounts = await mountsUnder(daemon.root)
    const root = await openDockerRoot(daemon.root)
    try {
      const layers = [...(await root.map()).values()]
      expect(layers).toHaveLength(2)
      for (const layer of layers) await collect(await (await root.get(layer.chainID)).tarStream())
      const rw = await root.getRWLayer(container)
      await rw.changes()
      await collect(await rw.tarStream())
      await root.driverStatus()
    } finally {
      await root.close()
    }
    expect(namesSizesMtimes(daemon.root)).toEqual(listing)
    expect(diffTrees(before, snapshotTree(daemon.root))).toEqual([])
    expect(existsSync(join(daemon.root, 'layerstore.lock'))).toBe(false)
    expect(await mountsUnder(daemon.root)).toEqual(mounts)
  })

  it.skipIf(!BUILT)('layerctl --driver overlay2 --read-only ls, inspect and export read it too', (ctx) => {
    const { daemon, diffIDs, saved } = need(ctx)
    const listing = namesSizesMtimes(daemon.root)
    const layerctl = (...args: string[]) => {
      const r = spawnSync(process.execPath, [LAYERCTL, '--root', daemon.root, '--driver', 'overlay2', '--read-only', ...args], { maxBuffer: 64 << 20 })
      return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() }
    }
    const ls = layerctl('ls', '--json')
    expect(ls.stderr).toBe('')
    expect(ls.status).toBe(0)
    const rows = (JSON.parse(ls.stdout.toString()) as { layers: Array<{ chainID: string; diffID: string; depth: number }> }).layers
    expect(rows.map((r) => r.diffID)).toEqual(diffIDs)
    const top = rows[1]!
    const inspect = layerctl('inspect', top.chainID, '--json')
    expect(inspect.status).toBe(0)
    expect(JSON.parse(inspect.stdout.toString())).toMatchObject({ chainID: top.chainID, diffID: diffIDs[1], driver: 'overlay2' })
    const exported = layerctl('export', top.chainID)
    expect(exported.status).toBe(0)
    expect(exported.stdout.equals(saved[1]!)).toBe(true)
    // Without --read-only, a Docker root is refused before anything is read.
    const r = spawnSync(process.execPath, [LAYERCTL, '--root', daemon.root, '--driver', 'overlay2', 'ls'])
    expect(r.status).not.toBe(0)
    expect(r.stderr.toString()).toMatch(/ERR_DRIVER_READ_ONLY_ONLY/)
    expect(namesSizesMtimes(daemon.root)).toEqual(listing)
  })

  // Runs last: it damages the root the tests above read.
  it('a file changed in diff/ fails the stream with a typed error, not wrong bytes', async (ctx) => {
    const { daemon, diffIDs } = need(ctx)
    const root = await openDockerRoot(daemon.root)
    const driver = await dockerDriver(daemon.root)
    try {
      const base = [...(await root.map()).values()].find((l) => l.diffID === diffIDs[0])!
      const path = join(driver.layout.diffDir(base.cacheID), 'etc/hello')
      const text = await readFile(path, 'utf8')
      await writeFile(path, text.toUpperCase()) // same size: only the checksum can tell
      const error = await collect(await (await root.get(base.chainID)).tarStream()).then(
        () => undefined,
        (err: unknown) => err,
      )
      expect(hasCode(error, 'ERR_TARSPLIT_CHECKSUM_MISMATCH')).toBe(true)
    } finally {
      await root.close()
    }
  })

  it('a dockerd that cannot start gives a skip reason and leaves nothing behind', async (ctx) => {
    const { work } = need(ctx)
    const parentDir = join(work, 'failed-start')
    await mkdir(parentDir)
    const error = await startDockerd({ storageDriver: 'no-such-driver', parentDir }).then(
      async (d) => {
        await d.dispose()
        return undefined
      },
      (err: unknown) => err,
    )
    expect(error).toBeInstanceOf(DockerdUnavailableError)
    // dockerd names the driver, or (log tail cut by its grpc noise) only says it is not supported.
    expect((error as DockerdUnavailableError).skipReason).toMatch(/no-such-driver|driver not supported/)
    expect(await readdir(parentDir)).toEqual([])
  })
})
