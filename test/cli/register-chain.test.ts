/**
 * `layerctl register FILE…`: several files registered as one chain (`LayerStore.registerChain`),
 * through the real binary (./bin/layerctl over the built dist/; build with
 * `npx tsc -p tsconfig.build.json`) in subprocesses, against temporary roots.
 */
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { pack } from 'tar-stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mountsUnder } from '../mounts.js'

const LAYERCTL = fileURLToPath(new URL('../../bin/layerctl', import.meta.url))
const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('cli/register-chain.test: not root; the overlay driver (mounts) is skipped')

function layerctl(args: string[], opts: { input?: Buffer } = {}) {
  const r = spawnSync(process.execPath, [LAYERCTL, ...args], { input: opts.input ?? Buffer.alloc(0), maxBuffer: 64 << 20 })
  return { status: r.status, out: r.stdout.toString(), stderr: r.stderr.toString() }
}

/** A tar made with tar-stream of `files` (name → content). */
async function makeTar(files: Record<string, string>): Promise<Buffer> {
  const p = pack()
  const chunks: Buffer[] = []
  p.on('data', (c: unknown) => void chunks.push(c as Buffer))
  const done = new Promise<void>((resolve) => p.on('end', () => resolve()))
  for (const [name, content] of Object.entries(files)) {
    await new Promise<void>((resolve, reject) => p.entry({ name, mode: 0o644, mtime: new Date(1_700_000_000_000) }, content, (err) => (err ? reject(err) : resolve())))
  }
  p.finalize()
  await done
  return Buffer.concat(chunks)
}

/** Writes `tar` at `path` with one member of `size` zero bytes, sparse on disk (cheap to make). */
async function writeBigTar(path: string, size: number): Promise<void> {
  const p = pack()
  const header: Buffer[] = []
  p.on('data', (c: unknown) => void header.push(c as Buffer))
  const entry = p.entry({ name: 'big.bin', size, mode: 0o644, mtime: new Date(1_700_000_000_000) })
  entry.on('error', () => undefined)
  await new Promise((r) => setImmediate(r))
  const fd = openSync(path, 'w')
  try {
    const h = Buffer.concat(header)
    writeSync(fd, h)
    // The member's zeros, its padding to 512 and the two zero end blocks: a hole, then one byte.
    const end = h.length + Math.ceil(size / 512) * 512 + 1024
    writeSync(fd, Buffer.alloc(1), 0, 1, end - 1)
  } finally {
    closeSync(fd)
    p.destroy()
  }
}

/** What a failed or interrupted register must not leave: open write sets, records, driver layers. */
function leftovers(root: string, driver: string): string[] {
  const db = join(root, 'image', driver, 'layerdb')
  const list = (d: string): string[] => (existsSync(d) ? readdirSync(d).map((f) => join(d, f)) : [])
  const home = join(root, driver)
  const driverLayers = [home, ...list(home)].flatMap((d) => list(d)).filter((p) => /[0-9a-f]{64}(-init)?$/.test(p))
  return [...list(join(db, 'tmp')).filter((p) => p.includes('write-set-')), ...list(join(db, 'sha256')), ...driverLayers]
}

type Registered = { chainID: string; diffID: string; parent: string | null; depth: number; ref: string; existed: boolean }
type Listed = { layers: Array<{ chainID: string; parent: string | null; depth: number; holders: Record<string, number> }> }

describe.each(['vfs', 'overlay'] as const)('layerctl register FILE… on %s', (driver) => {
  const skip = driver !== 'vfs' && !isRoot
  let dir = ''
  let root = ''
  let g: string[] = []
  let files: string[] = []
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), `cli-register-chain-${driver}-`))
    root = join(dir, 'root')
    g = ['--root', root, '--driver', driver]
    files = []
    for (let i = 1; i <= 3; i++) {
      const tar = await makeTar({ [`l${i}.txt`]: `layer ${i}\n`, 'shared.txt': `from ${i}\n` })
      const file = join(dir, `l${i}.tar${i === 2 ? '.gz' : ''}`)
      writeFileSync(file, i === 2 ? gzipSync(tar) : tar)
      files.push(file)
    }
  })
  afterEach(() => {
    for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m])
    rmSync(dir, { recursive: true, force: true })
  })

  it.skipIf(skip)('three files: three layers, each on the previous, held by --ref; ls and inspect show them', () => {
    const r = layerctl([...g, 'register', '--ref', 'img', ...files])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
    const lines = r.out.trim().split('\n')
    // The single-file block, once per layer, in order.
    expect(lines).toHaveLength(12)
    const ids = lines.filter((l) => l.startsWith('registered: ')).map((l) => l.slice('registered: '.length))
    expect(ids).toHaveLength(3)
    expect(lines.filter((l) => l === 'ref:     img')).toHaveLength(3)

    const ls = JSON.parse(layerctl([...g, '--json', 'ls']).out) as Listed
    const byID = new Map(ls.layers.map((l) => [l.chainID, l]))
    expect(ls.layers).toHaveLength(3)
    for (const [i, id] of ids.entries()) {
      expect(byID.get(id)).toMatchObject({ depth: i + 1, parent: i === 0 ? null : ids[i - 1], holders: { img: 1 } })
      const info = JSON.parse(layerctl([...g, '--json', 'inspect', id]).out) as Record<string, unknown>
      expect(info).toMatchObject({ chainID: id, parent: i === 0 ? null : ids[i - 1], depth: i + 1, holders: { img: 1 }, driver })
    }
    // The top has every layer's files; the gzip'd middle one was decompressed.
    const exported = spawnSync(process.execPath, [LAYERCTL, ...g, 'export', ids[1]!])
    expect(spawnSync('tar', ['-t'], { input: exported.stdout }).stdout.toString().split('\n')).toEqual(expect.arrayContaining(['l2.txt', 'shared.txt']))

    // Again, --json, on the same parent: an array, every layer existed; -q: one ID per line.
    const again = layerctl([...g, '--json', 'register', '--ref', 'img', ...files])
    expect(again.status, again.stderr).toBe(0)
    const docs = JSON.parse(again.out) as Registered[]
    expect(docs.map((d) => d.chainID)).toEqual(ids)
    expect(docs.map((d) => [d.existed, d.depth, d.ref])).toEqual([[true, 1, 'img'], [true, 2, 'img'], [true, 3, 'img']])
    expect(docs.map((d) => d.parent)).toEqual([null, ids[0], ids[1]])
    const quiet = layerctl([...g, '-q', 'register', '--parent', ids[0]!, files[1]!, files[2]!])
    expect(quiet.status, quiet.stderr).toBe(0)
    expect(quiet.out.trim().split('\n')).toEqual(ids.slice(1))
    // One file keeps the single object.
    const one = JSON.parse(layerctl([...g, '--json', 'register', files[0]!]).out) as Registered
    expect(one).toMatchObject({ chainID: ids[0], existed: true, ref: 'layerctl' })
    expect(JSON.parse(layerctl([...g, '--json', 'ls']).out)).toMatchObject({ layers: expect.arrayContaining([expect.objectContaining({ chainID: ids[2], holders: { img: 2, layerctl: 1 } })]) })
  })

  it.skipIf(skip)('a bad file in the middle: exit 4 naming the code, nothing of the chain stored', async () => {
    const before = layerctl([...g, '-q', 'register', '--ref', 'base', files[0]!])
    expect(before.status, before.stderr).toBe(0)
    expect(before.out.trim()).toMatch(/^sha256:[0-9a-f]{64}$/)
    const ls = layerctl([...g, '--json', 'ls']).out
    const kept = leftovers(root, driver)
    const bad = join(dir, 'bad.tar')
    writeFileSync(bad, 'not a tar at all\n'.repeat(64))
    // The first layer exists already (referenced, then released); the second is new (removed).
    const r = layerctl([...g, 'register', '--ref', 'img', files[0]!, files[1]!, bad, files[2]!])
    expect(r.status, r.stderr).toBe(4)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toContain('ERR_TAR_INVALID_HEADER')
    expect(layerctl([...g, '--json', 'ls']).out).toBe(ls)
    expect(leftovers(root, driver)).toEqual(kept)
    // A missing file fails before anything is made (as for one file: the system's ENOENT).
    const missing = layerctl([...g, 'register', files[1]!, join(dir, 'nope.tar')])
    expect(missing.status).not.toBe(0)
    expect(missing.stderr).toContain('ENOENT')
    expect(layerctl([...g, '--json', 'ls']).out).toBe(ls)
  })

  it.skipIf(skip)('SIGINT while the chain is under way: exit 130, nothing stored, the layers made before removed', async () => {
    const big = join(dir, 'big.tar')
    await writeBigTar(big, 512 << 20)
    const child = spawn(process.execPath, [LAYERCTL, ...g, 'register', files[0]!, files[1]!, big], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    const tmp = join(root, 'image', driver, 'layerdb', 'tmp')
    // Every layer's write set exists once the big one is being applied; the two small layers
    // before it are prepared then, waiting for the chain's publish.
    const writeSets = (): number => (existsSync(tmp) ? readdirSync(tmp).filter((n) => n.startsWith('write-set-')).length : 0)
    for (let i = 0; i < 400 && writeSets() < 3; i++) await new Promise((r) => setTimeout(r, 10))
    expect(writeSets()).toBe(3)
    child.kill('SIGINT')
    expect(await exited).toBe(130)
    expect(stderr).toContain('ERR_INTERRUPTED')
    expect(leftovers(root, driver)).toEqual([])
    expect(JSON.parse(layerctl([...g, '--json', 'ls']).out)).toEqual({ layers: [] })
  })
})

describe('layerctl register FILE… (driver-independent)', () => {
  let dir = ''
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it("'-' among files is a usage error (exit 1); nothing is opened", async () => {
    dir = mkdtempSync(join(tmpdir(), 'cli-register-chain-'))
    const file = join(dir, 'l.tar')
    writeFileSync(file, await makeTar({ 'a.txt': 'a' }))
    const g = ['--root', join(dir, 'root'), '--driver', 'vfs']
    for (const args of [[file, '-'], ['-', file]]) {
      const r = layerctl([...g, 'register', ...args], { input: await makeTar({ 'b.txt': 'b' }) })
      expect(r.status, args.join(' ')).toBe(1)
      expect(r.stderr).toMatch(/'-' \(stdin\) is allowed only alone/)
    }
    expect(existsSync(join(dir, 'root'))).toBe(false)
    const help = layerctl(['register', '--help'])
    expect(help.out).toContain('Usage: layerctl register [--parent CHAINID] [--ref NAME] [FILE…|-]')
    expect(help.out).toContain('layer1.tar layer2.tar.gz layer3.tar')
  })
})
