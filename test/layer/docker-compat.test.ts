/**
 * Docker compatibility (issue 6): a real Docker overlay2 data root, made by Debian's dockerd
 * 20.10 on a temporary `--data-root`, opened read-only with our modules. Its layers, chain
 * IDs and parents are listed, and each layer's `tarStream()` must equal, byte for byte, the
 * layer tar that `docker save` produced.
 *
 * Fixtures: two layers made with GNU tar here (GNU format, then POSIX/pax), covering a
 * hardlink, a symlink, an empty file, a big file (streamed by `assemble` rather than read
 * whole), a long name, a UTF-8 name, a setuid file, a non-root owner, and in layer 2 a
 * modified file, a whiteout and an opaque dir. Skips with a printed reason only when dockerd
 * is absent or cannot start.
 */
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { chown, link, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { gunzipSync } from 'node:zlib'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestContext } from 'vitest'
import { hasCode } from '../../src/errors.js'
import { chainIDOf } from '../../src/layer/index.js'
import type { ChainID } from '../../src/metadata/index.js'
import { parseDiffID } from '../../src/metadata/index.js'
import { readDockerManifest, writeDockerArchive } from '../helpers/docker-archive.js'
import { DockerRoot } from '../helpers/docker-root.js'
import { DockerdUnavailableError, dockerdSkipReason, startDockerd } from '../helpers/dockerd.js'
import type { Dockerd } from '../helpers/dockerd.js'
import { diffTrees, snapshotTree } from '../helpers/tree.js'
import { JsonPacker, disassemble } from '../../src/tarsplit/index.js'
import { lgetxattr } from '../../src/native/index.js'

const run = promisify(execFile)
const TAG = 'layerstore-compat:test'

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
    scenario = { daemon, work, diffIDs, saved, input }
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
    const root = await DockerRoot.open(daemon.root)
    try {
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
      expect(l1.parent).toBeUndefined()
      expect(l2.diffID).toBe(d2)
      expect(l2.parent).toBe(c1)
      for (const l of [l1, l2]) {
        expect(l.cacheID).toMatch(/^[0-9a-f]{64}$/)
        expect(await root.driver.exists(l.cacheID)).toBe(true)
        expect(l.size).toBeGreaterThan(0)
      }
      expect(await root.get(c2)).toEqual(l2)
    } finally {
      await root.close()
    }
  })

  it('tarStream() of each layer equals the layer tar docker save wrote, byte for byte', async (ctx) => {
    const { daemon, diffIDs, saved } = need(ctx)
    const root = await DockerRoot.open(daemon.root)
    try {
      const byDiffID = new Map([...(await root.map()).values()].map((l) => [l.diffID as string, l.chainID]))
      for (const [i, diffID] of diffIDs.entries()) {
        const bytes = await collect(await root.tarStream(byDiffID.get(diffID)!))
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
    const root = await DockerRoot.open(daemon.root)
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
    const { daemon, diffIDs } = need(ctx)
    const root = await DockerRoot.open(daemon.root)
    try {
      const layers = [...(await root.map()).values()]
      const base = layers.find((l) => l.diffID === diffIDs[0])!
      const top = layers.find((l) => l.diffID === diffIDs[1])!
      const baseInfo = await root.driver.layerInfo(base.cacheID)
      const topInfo = await root.driver.layerInfo(top.cacheID)
      expect(baseInfo.lowers).toEqual([])
      expect(topInfo.lowers).toEqual([`l/${baseInfo.link}`])
      // Docker marks a layer committed only once a child is made on it: its top layer is not.
      expect(baseInfo.committed).toBe(true)
      expect(topInfo.committed).toBe(false)
      expect(await root.driver.lowerDirs(topInfo)).toEqual([root.driver.layout.diffDir(base.cacheID)])
      // Whiteouts as overlayfs keeps them, so our native diff half reads Docker's layers too.
      const changes = await root.driver.changes(top.cacheID, base.cacheID)
      const kinds = Object.fromEntries(changes.map((c) => [c.path, c.kind]))
      expect(kinds).toMatchObject({
        '/gone': 'deleted',
        '/etc/hello': 'modified',
        '/opq/new': 'added',
        '/opq/old': 'deleted',
        '/added': 'added',
      })
      const opaque = await lgetxattr(join(root.driver.layout.diffDir(top.cacheID), 'opq'), 'trusted.overlay.opaque')
      expect(opaque?.toString()).toBe('y')
    } finally {
      await root.close()
    }
  })

  it('leaves the Docker root exactly as it was', async (ctx) => {
    const { daemon } = need(ctx)
    const before = snapshotTree(daemon.root)
    const root = await DockerRoot.open(daemon.root)
    try {
      const layers = [...(await root.map()).values()]
      expect(layers).toHaveLength(2)
      for (const layer of layers) await collect(await root.tarStream(layer.chainID))
    } finally {
      await root.close()
    }
    expect(diffTrees(before, snapshotTree(daemon.root))).toEqual([])
  })

  // Runs last: it damages the root the tests above read.
  it('a file changed in diff/ fails the stream with a typed error, not wrong bytes', async (ctx) => {
    const { daemon, diffIDs } = need(ctx)
    const root = await DockerRoot.open(daemon.root)
    try {
      const base = [...(await root.map()).values()].find((l) => l.diffID === diffIDs[0])!
      const path = join(root.driver.layout.diffDir(base.cacheID), 'etc/hello')
      const text = await readFile(path, 'utf8')
      await writeFile(path, text.toUpperCase()) // same size: only the checksum can tell
      const error = await collect(await root.tarStream(base.chainID)).then(
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
    expect((error as DockerdUnavailableError).skipReason).toMatch(/no-such-driver/)
    expect(await readdir(parentDir)).toEqual([])
  })
})
