/**
 * The export as a stream: output in full 1 MiB chunks whatever the member sizes, the same
 * bytes as before the batching rewrite (a golden digest of a tree with every member kind),
 * members read only as the consumer reads (backpressure), files closed when the consumer
 * stops early, a file shrinking while read, and event-loop turns during long sync stretches.
 * The chunk writer underneath is tested on its own first.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { TreeReadError, changes, exportChanges } from '../../src/archive/index.js'
import type { Change } from '../../src/archive/index.js'
import { ChunkWriter } from '../../src/archive/chunk-writer.js'
import { lsetxattr, mknod, utimensat } from '../../src/native/index.js'
import { disassemble } from '../../src/tarsplit/index.js'
import { diffTrees, formatTree, snapshotTree } from '../helpers/tree.js'
import { applyBuffer, isRoot, useTempDirs } from './craft-tar.js'

const MiB = 1 << 20

/** Deterministic content: byte i of file `seed` is (i * 31 + seed) & 0xff. */
function content(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size)
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

async function chunksOf(stream: Readable): Promise<Buffer[]> {
  const out: Buffer[] = []
  for await (const c of stream) out.push(c as Buffer)
  return out
}

/** Name → content of every regular file member, read back with our tar parser. */
async function filesIn(tar: Buffer): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>()
  for await (const m of disassemble(Readable.from([tar]), { sink: { add() {} } })) {
    const parts: Buffer[] = []
    for await (const p of m.content) parts.push(p)
    if (m.header.type === 'file') files.set(m.header.name.toString('latin1'), Buffer.concat(parts))
  }
  return files
}

/** Resolves once `stream` has closed (after its generator's cleanup ran). */
async function closed(stream: Readable): Promise<void> {
  if (!stream.closed) await new Promise((resolve) => stream.once('close', resolve))
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length
}

describe('ChunkWriter', () => {
  it('cuts writes, zeros and file reads into full chunks, straddling their ends', () => {
    const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'layerstore-chunks-'))
    try {
      const file = path.join(dir, 'f')
      fs.writeFileSync(file, content(250, 3))
      const w = new ChunkWriter(100)
      const expected: Buffer[] = []
      w.write(content(30, 1))
      expected.push(content(30, 1))
      w.zeros(95)
      expected.push(Buffer.alloc(95))
      const fd = fs.openSync(file, 'r')
      try {
        w.readSync(fd, 250)
      } finally {
        fs.closeSync(fd)
      }
      expected.push(content(250, 3))
      expect(w.hasReady).toBe(true)
      const first = w.take()
      expect(w.hasReady).toBe(false)
      w.write(content(7, 9))
      expected.push(content(7, 9))
      w.flush()
      const chunks = [...first, ...w.take()]
      expect(chunks.map((c) => c.length)).toEqual([100, 100, 100, 82])
      expect(Buffer.concat(chunks).equals(Buffer.concat(expected))).toBe(true)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('readSync fails when the file ends before the count', () => {
    const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'layerstore-chunks-'))
    const fd = fs.openSync(path.join(dir, 'short'), fs.constants.O_RDWR | fs.constants.O_CREAT)
    try {
      fs.writeSync(fd, Buffer.from('abc'), 0, 3, 0)
      expect(() => new ChunkWriter(64).readSync(fd, 10)).toThrow(/ended 7 bytes before its size 10/)
    } finally {
      fs.closeSync(fd)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('exportChanges as a stream', () => {
  const tempDir = useTempDirs()

  it('hands on full 1 MiB chunks whatever the member sizes, contents exact', async () => {
    const dir = tempDir('d')
    // Around every threshold: the block, the sync-read limit (64 KiB), the chunk (1 MiB).
    const sizes = [0, 1, 511, 512, 513, 65_535, 65_536, 65_537, MiB - 1, MiB, MiB + 1, 3 * MiB + 7, 100, 2 * MiB - 300]
    sizes.forEach((size, i) => fs.writeFileSync(path.join(dir, `f${String(i).padStart(2, '0')}`), content(size, i)))
    const list = sizes.map((_, i): Change => ({ path: `/f${String(i).padStart(2, '0')}`, kind: 'added' }))
    const chunks = await chunksOf(exportChanges(dir, list))
    const last = chunks.pop()!
    for (const c of chunks) expect(c.length).toBe(MiB)
    expect(last.length).toBeGreaterThan(0)
    expect(last.length).toBeLessThanOrEqual(MiB)
    const files = await filesIn(Buffer.concat([...chunks, last]))
    expect([...files.keys()]).toEqual(list.map((c) => c.path.slice(1)))
    sizes.forEach((size, i) => expect(files.get(`f${String(i).padStart(2, '0')}`)!.equals(content(size, i)), `f${i}`).toBe(true))
  })

  it('reads members only as the consumer reads: a file deleted while the stream waits is missed', async () => {
    const dir = tempDir('d')
    const n = 200 // 200 × 60 KiB: 12 MiB of small (synchronously read) files
    for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, `f${String(i).padStart(3, '0')}`), content(60 << 10, i))
    const stream = exportChanges(dir, (await changes(dir, null)))
    const it = stream[Symbol.asyncIterator]()
    expect((await it.next()).done).toBe(false)
    await sleep(50) // the stream fills its buffer, and must stop there
    expect(stream.readableLength).toBeLessThanOrEqual(2 * MiB)
    fs.rmSync(path.join(dir, `f${n - 1}`))
    const err = await (async () => {
      for (let r = await it.next(); !r.done; r = await it.next());
    })().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TreeReadError)
    expect((err as TreeReadError).path).toBe(`/f${n - 1}`)
    expect((err as TreeReadError).operation).toBe('lstat')
  })

  it('closes the file it was reading when the consumer stops early', async () => {
    const dir = tempDir('d')
    fs.writeFileSync(path.join(dir, 'big'), Buffer.alloc(0))
    fs.truncateSync(path.join(dir, 'big'), 64 * MiB) // sparse: no disk, reads as zeros
    const before = openFds()
    const stream = exportChanges(dir, [{ path: '/big', kind: 'added' }])
    for await (const _ of stream) break // destroys the stream after the first chunk
    await closed(stream)
    expect(stream.destroyed).toBe(true)
    expect(openFds()).toBe(before)
  })

  it('fails with TreeReadError when a large file shrinks while it is read', async () => {
    const dir = tempDir('d')
    const big = path.join(dir, 'big')
    fs.writeFileSync(big, Buffer.alloc(0))
    fs.truncateSync(big, 16 * MiB)
    const before = openFds()
    const stream = exportChanges(dir, [{ path: '/big', kind: 'added' }])
    const it = stream[Symbol.asyncIterator]()
    expect((await it.next()).done).toBe(false)
    fs.truncateSync(big, 0)
    const err = await (async () => {
      for (let r = await it.next(); !r.done; r = await it.next());
    })().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TreeReadError)
    expect((err as TreeReadError).message).toMatch(/shrank/)
    await closed(stream)
    expect(openFds()).toBe(before)
  })

  it('gives the event loop turns during a long run of synchronous members', async () => {
    const dir = tempDir('d')
    // 3000 whiteouts: no file is opened, nothing async happens but the chunk hand-offs.
    const list = Array.from({ length: 3000 }, (_, i): Change => ({ path: `/gone-${i}`, kind: 'deleted' }))
    let turns = 0
    let ticking = true
    const tick = (): void => {
      turns++
      if (ticking) setImmediate(tick)
    }
    setImmediate(tick)
    const stream = exportChanges(dir, list)
    let bytes = 0
    stream.on('data', (c: Buffer) => (bytes += c.length))
    await new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject))
    ticking = false
    expect(bytes).toBe(3000 * 512 + 1024)
    expect(turns).toBeGreaterThan(2)
  })
})

describe.skipIf(!isRoot)('exportChanges bytes (root: owners, devices, trusted xattrs)', () => {
  const tempDir = useTempDirs()
  if (!isRoot) console.warn('export-stream: byte tests skipped, need root (chown, mknod)')

  /** A tree whose every attribute is fixed, so its export has one digest forever. */
  function buildFixed(root: string): Change[] {
    const p = (rel: string): string => path.join(root, rel)
    const dirs = ['bin', 'dev', 'etc', 'usr', 'usr/lib', `long-${'d'.repeat(120)}`]
    for (const d of dirs) fs.mkdirSync(p(d))
    const files: [string, number][] = [
      ['bin/ping', 3],
      ['etc/hosts', 20],
      ['usr/lib/libbig.so', 200_000],
      ['usr/lib/libmid.so', 65_537],
      ['usr/lib/libedge.so', 65_536],
      [`long-${'d'.repeat(120)}/${'f'.repeat(90)}`, 700],
    ]
    files.forEach(([rel, size], i) => fs.writeFileSync(p(rel), content(size, i)))
    fs.writeFileSync(Buffer.from(`${root}/etc/caf\xe9`, 'latin1'), 'latin1 name')
    fs.linkSync(p('usr/lib/libmid.so'), p('usr/lib/libmid.so.1'))
    fs.symlinkSync('usr/lib', p('lib'))
    mknod(p('dev/null'), fs.constants.S_IFCHR | 0o666, 1, 3)
    mknod(p('dev/fifo'), fs.constants.S_IFIFO | 0o600, 0, 0)
    fs.chmodSync(p('bin/ping'), 0o4755)
    fs.chownSync(p('etc/hosts'), 3_000_000, 7)
    const cap = Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    lsetxattr(p('bin/ping'), 'security.capability', cap)
    lsetxattr(p('etc'), 'user.note', Buffer.from([0, 0xff, 0x80]))
    lsetxattr(p('usr'), 'trusted.overlay.opaque', Buffer.from('y')) // never written
    const all = [...files.map(([rel]) => rel), 'etc/caf\xe9', 'usr/lib/libmid.so.1', 'lib', 'dev/null', 'dev/fifo', ...[...dirs].reverse()]
    all.forEach((rel, i) => {
      const t = { sec: 1_600_000_000 + i, nsec: i % 2 === 0 ? 0 : 123_456_789 }
      utimensat(Buffer.from(`${root}/${rel}`, 'latin1'), t, t, { noFollow: true })
    })
    return [
      ...all.filter((rel) => rel !== 'usr').map((rel): Change => ({ path: `/${rel}`, kind: 'added' })),
      { path: '/usr', kind: 'modified', opaque: true },
      { path: '/var/gone', kind: 'deleted' },
      { path: '/usr/old', kind: 'deleted' }, // hidden by the opaque marker
      { path: '/etc/old', kind: 'deleted' },
    ]
  }

  it('writes the same bytes as the unbatched exporter did (golden digest)', async () => {
    const root = tempDir('fixed')
    const list = buildFixed(root)
    const tar = Buffer.concat(await chunksOf(exportChanges(root, list)))
    // Digest of the exporter before the batching rewrite, on this very tree.
    expect(createHash('sha256').update(tar).digest('hex')).toBe('c06569ebea2055387ee275d272ed7e2fe772dfad5c0f05dcd55e1ebae55593bc')
    const again = Buffer.concat(await chunksOf(exportChanges(root, [...list].reverse())))
    expect(again.equals(tar)).toBe(true)
  })

  it('round trip of random trees: export of everything, applied to an empty dir, gives the tree', async () => {
    const sizes = fc.oneof(
      fc.constantFrom(0, 1, 511, 512, 513, 65_535, 65_536, 65_537, MiB - 100, MiB + 100),
      fc.integer({ min: 0, max: 300_000 }),
    )
    const member = fc.record({
      name: fc.stringMatching(/^[a-z]{1,12}$/),
      dir: fc.constantFrom('', 'a', 'a/b', 'c'),
      kind: fc.constantFrom('file', 'file', 'file', 'link', 'symlink'),
      size: sizes,
      latin1: fc.boolean(),
    })
    await fc.assert(
      fc.asyncProperty(fc.array(member, { minLength: 1, maxLength: 25 }), async (members) => {
        const src = tempDir('src')
        const made: string[] = []
        members.forEach((m, i) => {
          const rel = `${m.dir === '' ? '' : `${m.dir}/`}${m.name}${m.latin1 ? '\xe9' : ''}${i}`
          const abs = Buffer.from(`${src}/${rel}`, 'latin1')
          fs.mkdirSync(path.join(src, m.dir), { recursive: true })
          if (m.kind === 'link' && made.length > 0) fs.linkSync(Buffer.from(`${src}/${made[i % made.length]}`, 'latin1'), abs)
          else if (m.kind === 'symlink') fs.symlinkSync(`target-${i}`, abs)
          else {
            fs.writeFileSync(abs, content(m.size, i))
            made.push(rel)
          }
        })
        const tar = Buffer.concat(await chunksOf(exportChanges(src, await changes(src, null))))
        const target = tempDir('target')
        await applyBuffer(tar, target, { whiteouts: 'naive' })
        const expected = snapshotTree(src)
        expect(diffTrees(expected, snapshotTree(target), { ignore: (p) => p === '' }), formatTree(expected)).toEqual([])
      }),
      { numRuns: 12 },
    )
  })
})
