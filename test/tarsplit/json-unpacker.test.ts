import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { readEntries } from '../../src/tarsplit/json-unpacker.js'
import { packToBuffer } from '../../src/tarsplit/json-packer.js'
import { DuplicatePathError, MetadataFormatError } from '../../src/tarsplit/errors.js'
import type { Entry } from '../../src/tarsplit/entry.js'
import { goldenEntries } from './golden-example.js'

async function collect(source: AsyncIterable<Buffer> | Readable, options?: Parameters<typeof readEntries>[1]): Promise<Entry[]> {
  const out: Entry[] = []
  for await (const e of readEntries(source, options)) out.push(e)
  return out
}

/** Feeds `buf` in slices of `size` bytes (tar-stream's chunked-* idea). */
async function* sliced(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size)
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a failure')
}

const golden = (): Entry[] => goldenEntries().map((e, position) => ({ ...e, position }) as Entry)

describe('readEntries', () => {
  it('reads the golden JSON, plain and gzipped, in slices of 1, 321 and 65536 bytes', async () => {
    const plain = await packToBuffer(goldenEntries())
    const gz = await packToBuffer(goldenEntries(), { gzip: true })
    for (const size of [1, 321, 65536]) {
      expect(await collect(sliced(plain, size))).toEqual(golden())
      expect(await collect(sliced(gz, size))).toEqual(golden())
      expect(await collect(sliced(gz, size), { gzip: true })).toEqual(golden())
    }
    expect(await collect(Readable.from([plain]))).toEqual(golden())
  })

  it('accepts values with no separator, or any whitespace, between them', async () => {
    const json = '{"type":2,"payload":"QQ==","position":0}{"type":2,"payload":"Qg==","position":1}\r\n\t {"type":2,"payload":null,"position":2}  \n\n'
    for (const size of [1, 3, 1000]) {
      const entries = await collect(sliced(Buffer.from(json), size))
      expect(entries.map((e) => e.position)).toEqual([0, 1, 2])
    }
    expect(await collect(sliced(Buffer.alloc(0), 1))).toEqual([])
    expect(await collect(sliced(Buffer.from(' \n '), 1))).toEqual([])
  })

  it('handles braces, brackets and escaped quotes inside strings across slices', async () => {
    const json = '{"type":1,"name":"a{[\\"}]\\\\","x":[{"y":"}"}],"position":0}\n{"type":2,"payload":"","position":1}\n'
    for (const size of [1, 2, 5, 7, 1000]) {
      const entries = await collect(sliced(Buffer.from(json), size))
      expect(entries).toHaveLength(2)
      expect((entries[0] as { name: Buffer }).name.toString()).toBe('a{["}]\\')
    }
  })

  it('reads multi-member gzip', async () => {
    const a = gzipSync('{"type":2,"payload":"QQ==","position":0}\n')
    const b = gzipSync('{"type":2,"payload":"Qg==","position":1}\n')
    expect((await collect(sliced(Buffer.concat([a, b]), 7))).map((e) => e.position)).toEqual([0, 1])
  })

  it('refuses duplicates on read (Go checks there too), naming the line', async () => {
    const json = Buffer.from(
      '{"type":1,"name":"./a","position":0}\n{"type":2,"payload":null,"position":1}\n{"type":1,"name":"a/","position":2}\n',
    )
    const seen: Entry[] = []
    const err = await failure(
      (async () => {
        for await (const e of readEntries(sliced(json, 5))) seen.push(e)
      })(),
    )
    expect(err).toBeInstanceOf(DuplicatePathError)
    expect((err as DuplicatePathError).line).toBe(3)
    expect(seen).toHaveLength(2)
  })

  it('names the line of malformed JSON, truncation and garbage', async () => {
    const bad = async (json: string, line: number, size = 4): Promise<void> => {
      const err = await failure(collect(sliced(Buffer.from(json), size)))
      expect(err, json).toBeInstanceOf(MetadataFormatError)
      expect((err as MetadataFormatError).line, json).toBe(line)
    }
    const ok = '{"type":2,"payload":null,"position":0}\n'
    await bad(ok + ok + '{"type":7,"position":2}\n', 3)
    await bad(ok + '{"type":2,\n"payload":"QUJ"}', 3)
    await bad(ok + ok + '{"type":2,"payload":null', 3)
    await bad(ok + 'x', 2)
    await bad(ok + '\n\nnull', 4)
    await bad(ok + '[]', 2)
    await bad('\ufeff' + ok, 1)
  })

  it('bounds one value (a hostile 1 GiB line is refused early)', async () => {
    let produced = 0
    async function* hostile(): AsyncGenerator<Buffer> {
      yield Buffer.from('{"type":2,"payload":"')
      const block = Buffer.alloc(1 << 20, 0x41)
      for (let i = 0; i < 1024; i++) {
        produced += block.length
        yield block
      }
    }
    const err = await failure(collect(hostile(), { maxValueSize: 8 << 20 }))
    expect(err).toBeInstanceOf(MetadataFormatError)
    expect(err.message).toContain('larger than the limit')
    expect(produced).toBeLessThanOrEqual(10 << 20)
    // The default bound admits the largest real entry (a 1 MiB segment, 1.4 MiB of JSON).
    const big = await packToBuffer([{ type: 2, payload: Buffer.alloc(1 << 20, 7) }])
    expect(await collect(sliced(big, 65536))).toHaveLength(1)
  })

  it('refuses invalid gzip', async () => {
    const gz = gzipSync('{"type":2,"payload":null,"position":0}\n')
    const truncated = gz.subarray(0, gz.length - 6)
    expect(await failure(collect(sliced(truncated, 10)))).toBeInstanceOf(MetadataFormatError)
    const corrupt = Buffer.from(gz)
    corrupt[12]! ^= 0xff
    expect(await failure(collect(sliced(corrupt, 10)))).toBeInstanceOf(MetadataFormatError)
    expect(await failure(collect(sliced(Buffer.from('{"type":2}'), 10), { gzip: true }))).toBeInstanceOf(MetadataFormatError)
  })

  it('closes the source when the consumer stops early', async () => {
    let closed = false
    async function* source(): AsyncGenerator<Buffer> {
      try {
        for (let i = 0; ; i++) yield Buffer.from(`{"type":2,"payload":null,"position":${i}}\n`)
      } finally {
        closed = true
      }
    }
    for await (const e of readEntries(source())) if (e.position === 3) break
    expect(closed).toBe(true)
    closed = false
    const gz = gzipSync(Buffer.from('{"type":2,"payload":null,"position":0}\n'.repeat(10_000)))
    async function* gzSource(): AsyncGenerator<Buffer> {
      try {
        yield* sliced(gz, 100)
      } finally {
        closed = true
      }
    }
    for await (const e of readEntries(gzSource())) if (e.position === 0) break
    expect(closed).toBe(true)
  })
})
