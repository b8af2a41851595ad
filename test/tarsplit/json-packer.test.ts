import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createWriteStream } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { gunzipSync } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { JsonPacker, packToBuffer } from '../../src/tarsplit/json-packer.js'
import { encodeLine } from '../../src/tarsplit/go-json.js'
import { DuplicatePathError } from '../../src/tarsplit/errors.js'
import { hasCode, isKind } from '../../src/errors.js'
import type { EntryInput } from '../../src/tarsplit/entry.js'
import { GOLDEN_JSON_SHA256, goldenEntries, sha256 } from './golden-example.js'

const f = (name: string): EntryInput => ({ type: 1, name: Buffer.from(name), size: 0, payload: null })
const seg = (s: string): EntryInput => ({ type: 2, payload: Buffer.from(s) })

describe('JsonPacker', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tarsplit-packer-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('writes the golden JSON, plain and gzipped, to a file', async () => {
    for (const gzip of [false, true]) {
      const path = join(dir, gzip ? 'tar-split.json.gz' : 'tar-split.json')
      const packer = new JsonPacker(createWriteStream(path), { gzip })
      for (const e of goldenEntries()) await packer.add(e)
      expect(packer.count).toBe(5)
      await packer.finish()
      const raw = await readFile(path)
      const json = gzip ? gunzipSync(raw) : raw
      expect(sha256(json)).toBe(GOLDEN_JSON_SHA256)
      if (gzip) expect([raw[0], raw[1]]).toEqual([0x1f, 0x8b])
    }
  })

  it('refuses duplicates by Go Clean rules without writing or using a position', async () => {
    const chunks: Buffer[] = []
    const out = new PassThrough()
    out.on('data', (c: Buffer) => chunks.push(c))
    const packer = new JsonPacker(out)
    await packer.add(f('./hurr.txt'))
    for (const dup of ['./hurr.txt', 'hurr.txt', 'hurr.txt/', 'x/../hurr.txt', './/hurr.txt/.']) {
      let caught: unknown
      try {
        await packer.add(f(dup))
      } catch (err) {
        caught = err
      }
      expect(caught, dup).toBeInstanceOf(DuplicatePathError)
      expect(hasCode(caught, 'ERR_TAR_DUPLICATE_PATH')).toBe(true)
      expect(isKind(caught, 'bad-input')).toBe(true)
      expect((caught as DuplicatePathError).member.toString()).toBe(dup)
    }
    // Segments are never checked; '/hurr.txt' is a different path; the position was not used.
    await packer.add(seg('x'))
    await packer.add(seg('x'))
    await packer.add(f('/hurr.txt'))
    await packer.finish()
    expect(Buffer.concat(chunks).toString()).toBe(
      '{"type":1,"name":"./hurr.txt","position":0,"payload":null}\n'.replace(',"position":0,"payload":null', ',"payload":null,"position":0') +
        '{"type":2,"payload":"eA==","position":1}\n' +
        '{"type":2,"payload":"eA==","position":2}\n' +
        '{"type":1,"name":"/hurr.txt","payload":null,"position":3}\n',
    )
  })

  it('treats a directory and a file of the same name as duplicates (a/ vs a)', async () => {
    await expect(packToBuffer([f('a/'), f('a')])).rejects.toBeInstanceOf(DuplicatePathError)
    await expect(packToBuffer([f('./'), f('.')])).rejects.toBeInstanceOf(DuplicatePathError)
  })

  it('applies backpressure: add() returns a promise while the output is full', async () => {
    let release: (() => void) | undefined
    const written: Buffer[] = []
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, cb) {
        written.push(chunk)
        release = cb
      },
    })
    const packer = new JsonPacker(slow)
    const big: EntryInput = { type: 2, payload: Buffer.alloc(100 * 1024) }
    const first = packer.add(big)
    expect(first).toBeInstanceOf(Promise)
    let drained = false
    void (first as Promise<void>).then(() => (drained = true))
    await new Promise((r) => setImmediate(r))
    expect(drained).toBe(false)
    release!()
    await first
    expect(drained).toBe(true)
    const done = packer.finish()
    await new Promise((r) => setImmediate(r))
    release?.()
    await done
    expect(Buffer.concat(written).toString()).toMatch(/^\{"type":2,"payload":"A+=*","position":0\}\n$/)
  })

  it('reports an output failure on the next add and in finish', async () => {
    const failing = new Writable({
      write(_c, _e, cb) {
        cb(new Error('disk on fire'))
      },
    })
    const packer = new JsonPacker(failing)
    await packer.add({ type: 2, payload: Buffer.alloc(70 * 1024) })?.catch(() => undefined)
    await new Promise((r) => setImmediate(r))
    expect(() => packer.add(seg('x'))).toThrow('disk on fire')
    await expect(packer.finish()).rejects.toThrow('disk on fire')
  })

  it('gzips a small output in one piece at finish, and still reports the output failing', async () => {
    const chunks: Buffer[] = []
    const collecting = new Writable({
      write(chunk: Buffer, _e, cb) {
        chunks.push(chunk)
        cb()
      },
    })
    const small = new JsonPacker(collecting, { gzip: true })
    await small.add(seg('x'))
    await small.add(f('a'))
    expect(chunks).toHaveLength(0)
    await small.finish()
    expect(chunks).toHaveLength(1)
    expect(gunzipSync(chunks[0]!).toString().split('\n')).toHaveLength(3)

    // An output that fails at its first write (a full disk), and one that was destroyed before.
    const failing = new Writable({
      write(_c, _e, cb) {
        cb(new Error('disk on fire'))
      },
    })
    const packer = new JsonPacker(failing, { gzip: true })
    await packer.add(f('b'))
    await expect(packer.finish()).rejects.toThrow('disk on fire')
    const gone = new Writable({ write: (_c, _e, cb) => cb() })
    const late = new JsonPacker(gone, { gzip: true })
    gone.destroy(new Error('closed under us'))
    await new Promise((r) => setImmediate(r))
    expect(() => late.add(f('c'))).toThrow('closed under us')
    await expect(late.finish()).rejects.toThrow('closed under us')
  })

  it('packs into memory (plain and gzip)', async () => {
    const plain = await packToBuffer(goldenEntries())
    expect(sha256(plain)).toBe(GOLDEN_JSON_SHA256)
    const gz = await packToBuffer(goldenEntries(), { gzip: true })
    expect(gunzipSync(gz)).toEqual(plain)
  })

  it('writes every line as encodeLine does, whichever way each goes into the batch', async () => {
    // Plain names and segments are written into the batch in place; names to escape, invalid
    // UTF-8, sparse entries and lines larger than a batch go through strings. Mixed, in order,
    // across many batch boundaries, with and without gzip.
    const entries: EntryInput[] = []
    for (let i = 0; i < 3000; i++) {
      entries.push({ type: 2, payload: Buffer.alloc(512 + (i % 3), i) })
      const name = [`dir/file-${i}`, `a<b>&"${i}"`, `é/日本/${i}`][i % 3]!
      entries.push({ type: 1, name: Buffer.from(name), size: i, payload: i % 5 === 0 ? null : Buffer.alloc(8, i) })
      if (i % 500 === 0) {
        entries.push({ type: 1, name: Buffer.from([0x6e, 0xff, i & 0x7f]), size: 0, payload: null })
        entries.push({ type: 1, name: Buffer.from(`sparse-${i}`), size: 9, payload: Buffer.alloc(8), sparse: [{ offset: 1, length: 2 }] })
        entries.push({ type: 2, payload: Buffer.alloc(200 * 1024 + i, 7) })
      }
    }
    const expected = Buffer.concat(entries.map((e, i) => encodeLine(e, i)))
    // Digests: a deep toEqual of megabytes is slow.
    expect(sha256(await packToBuffer(entries))).toBe(sha256(expected))
    expect(sha256(gunzipSync(await packToBuffer(entries, { gzip: true })))).toBe(sha256(expected))
  })

  it('packs 110k entries quickly enough (a 55k-file layer; reported, not asserted)', async () => {
    const entries: EntryInput[] = []
    const header = Buffer.alloc(512, 0x41)
    for (let i = 0; i < 55_000; i++) {
      entries.push({ type: 2, payload: header })
      entries.push({ type: 1, name: Buffer.from(`usr/share/doc/pkg${i % 500}/file-${i}.txt`), size: 100, payload: Buffer.alloc(8, i) })
    }
    const t0 = performance.now()
    const gz = await packToBuffer(entries, { gzip: true })
    console.info(`packed 110k entries in ${(performance.now() - t0).toFixed(0)} ms, ${gz.length} bytes gzipped`)
    expect(gunzipSync(gz).toString().split('\n').length).toBe(110_001)
  })
})
