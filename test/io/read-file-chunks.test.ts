/**
 * readFileChunks: the bytes of the file exactly, buffers reused only after their release,
 * never for a consumer that releases nothing, and lease misuse reported.
 */
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ChunkLeaseError, POISON_BYTE, readFileChunks } from '../../src/io/index.js'

let dir: string | null = null
afterEach(() => {
  if (dir !== null) fs.rmSync(dir, { recursive: true, force: true })
  dir = null
})

function file(bytes: Buffer): string {
  dir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'layerstore-io-'))
  const p = path.join(dir, `f${bytes.length}`)
  fs.writeFileSync(p, bytes)
  return p
}

describe('readFileChunks', () => {
  for (const size of [0, 1, 4095, 4096, 4097, 3 * 4096, 100_000]) {
    it(`yields a ${size}-byte file exactly, recycling 2 buffers when each chunk is released`, async () => {
      const data = randomBytes(size)
      const src = readFileChunks(file(data), { chunkSize: 4096, buffers: 2, poison: true })
      const got: Buffer[] = []
      for await (const c of src) {
        expect(c.length).toBeLessThanOrEqual(4096)
        got.push(Buffer.from(c))
        src.recycler.release(c)
      }
      expect(Buffer.concat(got).equals(data)).toBe(true)
      expect(src.buffersAllocated).toBeLessThanOrEqual(2)
    })
  }

  it('never reuses a chunk that is not released: a consumer unaware of the lease keeps its views', async () => {
    const data = randomBytes(50_000)
    const src = readFileChunks(file(data), { chunkSize: 4096, buffers: 2, poison: true })
    const views: Buffer[] = []
    for await (const c of src) views.push(c)
    expect(Buffer.concat(views).equals(data)).toBe(true)
    // One buffer per chunk, none more: the short last chunk ends the file.
    expect(src.buffersAllocated).toBe(Math.ceil(data.length / 4096))
  })

  it('reads a file smaller than a chunk into one buffer', async () => {
    const data = randomBytes(3000)
    const src = readFileChunks(file(data), { chunkSize: 4096 })
    const got: Buffer[] = []
    for await (const c of src) got.push(Buffer.from(c))
    expect(Buffer.concat(got).equals(data)).toBe(true)
    expect(src.buffersAllocated).toBe(1)
  })

  it('poisons a buffer at its last release, not before; holds count', async () => {
    const data = Buffer.alloc(8192, 0x41)
    const src = readFileChunks(file(data), { chunkSize: 4096, buffers: 2, poison: true })
    const it = src[Symbol.asyncIterator]()
    const first = (await it.next()).value as Buffer
    const view = first.subarray(10, 20)
    src.recycler.hold(view)
    src.recycler.release(first)
    expect(view.every((b) => b === 0x41)).toBe(true)
    src.recycler.release(view)
    expect(first.every((b) => b === POISON_BYTE)).toBe(true)
    expect(() => src.recycler.release(first)).toThrow(ChunkLeaseError)
    expect(() => src.recycler.hold(first)).toThrow(ChunkLeaseError)
    // Memory the source did not hand out is ignored.
    src.recycler.release(Buffer.alloc(10))
    await it.return!()
  })

  it('throws ENOENT from the first next(), and return() closes the file', async () => {
    const missing = readFileChunks(path.join(os.tmpdir(), 'layerstore-no-such-file-xyz'))
    await expect(missing[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'ENOENT' })
    const data = randomBytes(20_000)
    const fdsBefore = fs.readdirSync('/proc/self/fd').length
    const src = readFileChunks(file(data), { chunkSize: 4096 })
    for await (const c of src) {
      void c
      break
    }
    expect(fs.readdirSync('/proc/self/fd').length).toBe(fdsBefore)
  })

  it('refuses nonsense options', () => {
    expect(() => readFileChunks('x', { buffers: 1 })).toThrow(RangeError)
    expect(() => readFileChunks('x', { chunkSize: 0 })).toThrow(RangeError)
  })
})
