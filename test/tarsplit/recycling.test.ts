/**
 * The disassembler over a recycling source that poisons each buffer the moment it may be
 * reused: tar-split metadata identical to a plain source's, content read through `lent`
 * (copied at once, as a prompt consumer does) and through `content` (kept for good, as a
 * consumer unaware of recycling does) both exact, and the reassembly byte for byte.
 */
import fs from 'node:fs'
import { Readable, Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileChunks } from '../../src/io/index.js'
import { JsonPacker, assemble, disassemble, mapGetter, readEntries } from '../../src/tarsplit/index.js'
import { makeMixedTars, type MixedTars } from '../io/mixed-tars.js'
import { denseContent } from './disassemble-helpers.js'

let tars: MixedTars
beforeAll(() => {
  tars = makeMixedTars()
})
afterAll(() => tars?.remove())

async function disassembleAll(
  source: AsyncIterable<Uint8Array>,
  read: 'lent' | 'content',
): Promise<{ json: Buffer; files: [Buffer, Buffer][] }> {
  const json: Buffer[] = []
  const packer = new JsonPacker(new Writable({ write: (c: Buffer, _e, cb) => (json.push(c), cb()) }), { gzip: false })
  const files: [Buffer, Buffer][] = []
  for await (const m of disassemble(source, { sink: packer })) {
    const parts: Buffer[] = []
    // lent: copy each piece before asking for the next; content: keep the views themselves.
    for await (const c of read === 'lent' ? m.lent! : m.content) parts.push(read === 'lent' ? Buffer.from(c) : c)
    if (m.header.type === 'file' && m.header.size > 0) files.push([m.header.name, denseContent(m, Buffer.concat(parts))])
  }
  await packer.finish()
  return { json: Buffer.concat(json), files }
}

async function reassemble(json: Buffer, files: [Buffer, Buffer][]): Promise<Buffer> {
  const out: Buffer[] = []
  for await (const c of assemble(readEntries(Readable.from([json])), mapGetter(files))) out.push(Buffer.from(c as Buffer))
  return Buffer.concat(out)
}

describe('disassemble over a poisoning, recycling source', () => {
  for (const format of ['gnu', 'pax'] as const) {
    for (const chunkSize of [1000, 4099, 65536]) {
      it(`${format} tar, ${chunkSize}-byte chunks: same metadata, exact content, byte-exact round trip`, async () => {
        const tar = fs.readFileSync(tars[format])
        const plain = await disassembleAll(Readable.from([tar]), 'content')
        for (const read of ['lent', 'content'] as const) {
          const src = readFileChunks(tars[format], { chunkSize, buffers: 2, poison: true })
          const got = await disassembleAll(src, read)
          expect(got.json.equals(plain.json), `${read}: metadata`).toBe(true)
          expect(got.files.length).toBe(plain.files.length)
          for (let i = 0; i < got.files.length; i++) {
            expect(got.files[i]![1].equals(plain.files[i]![1]), `${read}: ${got.files[i]![0].toString()}`).toBe(true)
          }
          expect((await reassemble(got.json, got.files)).equals(tar), `${read}: reassembly`).toBe(true)
          if (read === 'lent') expect(src.buffersAllocated, 'the lent read recycles').toBeLessThanOrEqual(3)
          else expect(src.buffersAllocated, 'kept views are never recycled').toBeGreaterThan(tar.length / chunkSize / 2)
        }
      })
    }
  }

  it('without a sink: the same members and content, no checksums needed', async () => {
    const src = readFileChunks(tars.pax, { chunkSize: 4099, buffers: 2, poison: true })
    const names: string[] = []
    let bytes = 0
    for await (const m of disassemble(src, {})) {
      names.push(m.header.name.toString())
      for await (const c of m.lent!) bytes += c.length
    }
    const plain: string[] = []
    let plainBytes = 0
    for await (const m of disassemble(Readable.from([fs.readFileSync(tars.pax)]), { sink: { add() {} } })) {
      plain.push(m.header.name.toString())
      for await (const c of m.content) plainBytes += c.length
    }
    expect(names).toEqual(plain)
    expect(bytes).toBe(plainBytes)
  })
})
