import { describe, expect, it } from 'vitest'
import { HeaderTooLargeError, InvalidHeaderError } from '../../src/tarsplit/errors.js'
import { parsePaxRecords } from '../../src/tarsplit/pax.js'
import {
  SparseMap1x0Reader,
  dataExtents,
  decodeOldGnuSparseExtension,
  decodeOldGnuSparseHeader,
  detectPaxSparse,
  isDense,
  parseSparseMap0x,
  readOldGnuSparseMap,
  readSparseMap1x0,
  storedSize,
  validateSparseMap,
} from '../../src/tarsplit/sparse.js'
import { headerBlock, paxRecord } from './tar-build.js'

const octal12 = (n: number): string => n.toString(8).padStart(11, '0') + '\0'
const records = (...r: Array<[string, string]>) => parsePaxRecords(Buffer.concat(r.map(([k, v]) => paxRecord(k, v))), 0)

/** An old GNU 'S' header with inline entries, real size and the "extended" flag. */
function sparseHeader(entries: Array<[number, number]>, realSize: number, extended: boolean): Buffer {
  const patch: Array<[number, string | Buffer]> = entries.map(([o, l], i) => [386 + 24 * i, octal12(o) + octal12(l)])
  patch.push([483, octal12(realSize)])
  if (extended) patch.push([482, Buffer.from([1])])
  return headerBlock({ format: 'gnu', typeflag: 'S', patch })
}

function extensionBlock(entries: Array<[number, number]>, extended: boolean): Buffer {
  const b = Buffer.alloc(512)
  entries.forEach(([o, l], i) => b.write(octal12(o) + octal12(l), 24 * i, 'latin1'))
  if (extended) b[504] = 1
  return b
}

function mapBlocks(text: string): Buffer[] {
  const data = Buffer.from(text)
  const padded = Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)])
  const out: Buffer[] = []
  for (let i = 0; i < padded.length; i += 512) out.push(padded.subarray(i, i + 512))
  return out
}

function feeder(blocks: Buffer[]): () => Promise<Buffer> {
  let i = 0
  return async () => {
    const b = blocks[i++]
    if (b === undefined) throw new Error('read past the test blocks')
    return b
  }
}

describe('old GNU sparse maps', () => {
  it('reads inline entries and stops at an entry whose offset starts with NUL', () => {
    const h = decodeOldGnuSparseHeader(sparseHeader([[0, 512], [4096, 100]], 10000, false), 0)
    expect(h).toEqual({ realSize: 10000, entries: [{ offset: 0, length: 512 }, { offset: 4096, length: 100 }], isExtended: false })
  })

  it('follows extension blocks of 21 entries', async () => {
    const ext1 = Array.from({ length: 21 }, (_, i): [number, number] => [(i + 4) * 1024, 10])
    const blocks = [extensionBlock(ext1, true), extensionBlock([[50 * 1024, 1]], false)]
    const layout = await readOldGnuSparseMap(
      sparseHeader([[0, 1], [1024, 1], [2048, 1], [3072, 1]], 60 * 1024, true),
      0,
      1 << 20,
      feeder(blocks),
    )
    expect(layout.map).toHaveLength(4 + 21 + 1)
    expect(layout.map.at(-1)).toEqual({ offset: 50 * 1024, length: 1 })
    expect(decodeOldGnuSparseExtension(blocks[1]!, 0, [])).toBe(false)
  })

  it('bounds the extension blocks (a hostile chain of "extended" flags)', async () => {
    const endless = async (): Promise<Buffer> => extensionBlock([], true)
    await expect(readOldGnuSparseMap(sparseHeader([], 1, true), 0, 4096, endless)).rejects.toBeInstanceOf(HeaderTooLargeError)
  })

  it('refuses malformed numbers', () => {
    expect(() => decodeOldGnuSparseHeader(headerBlock({ format: 'gnu', typeflag: 'S', patch: [[386, '0000000x000\0']] }), 0)).toThrow(
      InvalidHeaderError,
    )
  })
})

describe('PAX sparse detection and 0.x maps', () => {
  it("follows Go's version rules", () => {
    expect(detectPaxSparse(records(['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', 'a'], ['GNU.sparse.realsize', '99']), 0)).toEqual({
      version: '1.0',
      name: Buffer.from('a'),
      realSize: 99,
    })
    expect(detectPaxSparse(records(['GNU.sparse.major', '0'], ['GNU.sparse.minor', '1'], ['GNU.sparse.size', '7']), 0)).toMatchObject({ version: '0.x', realSize: 7 })
    // No version: a map means 0.0/0.1.
    expect(detectPaxSparse(records(['GNU.sparse.map', '0,1']), 0)).toEqual({ version: '0.x' })
    // Unknown versions are plain files.
    expect(detectPaxSparse(records(['GNU.sparse.major', '2'], ['GNU.sparse.map', '0,1']), 0)).toBeNull()
    expect(detectPaxSparse(records(['path', 'x']), 0)).toBeNull()
    expect(() => detectPaxSparse(records(['GNU.sparse.map', '0,1'], ['GNU.sparse.size', 'x']), 0)).toThrow(InvalidHeaderError)
  })

  it('reads a 0.1 map and checks its count', () => {
    expect(parseSparseMap0x(records(['GNU.sparse.numblocks', '2'], ['GNU.sparse.map', '0,5,10,3']), 0)).toEqual([
      { offset: 0, length: 5 },
      { offset: 10, length: 3 },
    ])
    expect(parseSparseMap0x(records(['GNU.sparse.numblocks', '0'], ['GNU.sparse.map', '']), 0)).toEqual([])
    for (const [n, m] of [['3', '0,5,10,3'], ['', '0,1'], ['-1', ''], ['1', '0,x'], ['999999999999999999', '0,1']]) {
      expect(() => parseSparseMap0x(records(['GNU.sparse.numblocks', n!], ['GNU.sparse.map', m!]), 0)).toThrow(InvalidHeaderError)
    }
  })
})

describe('PAX 1.0 maps', () => {
  it('reads a map spanning blocks and reports the blocks it took', async () => {
    const entries = Array.from({ length: 100 }, (_, i) => `${i * 100000}\n${i + 1}\n`).join('')
    const blocks = mapBlocks(`100\n${entries}`)
    expect(blocks.length).toBeGreaterThan(1)
    const { map, bytes } = await readSparseMap1x0(1 << 20, 0, 1 << 20, feeder([...blocks, Buffer.alloc(512, 0x41)]))
    expect(bytes).toBe(blocks.length * 512)
    expect(map).toHaveLength(100)
    expect(map[99]).toEqual({ offset: 9900000, length: 100 })
  })

  it('stops at the block holding the last newline', () => {
    const r = new SparseMap1x0Reader(0, 1 << 20)
    expect(r.feed(mapBlocks('1\n0\n5\n')[0]!)).toBe(true)
    expect(r.result).toEqual([{ offset: 0, length: 5 }])
    expect(r.bytes).toBe(512)
  })

  it('refuses a map that runs past the data section, or past the limit', async () => {
    const blocks = mapBlocks(`3\n0\n1\n2\n1\n4\n1\n`)
    await expect(readSparseMap1x0(0, 0, 1 << 20, feeder(blocks))).rejects.toMatchObject({ reason: 'sparse-map' })
    // A hostile count must not make us read (or allocate) without bound.
    const huge = async (): Promise<Buffer> => mapBlocks('1\n'.repeat(256))[0]!
    const first = async (): Promise<Buffer> => mapBlocks('999999999999\n')[0]!
    let calls = 0
    const next = (): Promise<Buffer> => (calls++ === 0 ? first() : huge())
    await expect(readSparseMap1x0(2 ** 40, 0, 1 << 20, next)).rejects.toBeInstanceOf(HeaderTooLargeError)
    expect(calls).toBe(2048)
  })

  it('refuses malformed counts and numbers', async () => {
    for (const text of ['x\n', '-1\n', '1\n0\nx\n', '1\n\n5\n']) {
      await expect(readSparseMap1x0(1 << 20, 0, 1 << 20, feeder(mapBlocks(text)))).rejects.toBeInstanceOf(InvalidHeaderError)
    }
  })
})

describe('validation', () => {
  const e = (offset: number, length: number) => ({ offset, length })
  it("accepts sorted, disjoint extents within the size (Go's and bsdtar's rules)", () => {
    expect(() => validateSparseMap([e(0, 5), e(5, 5), e(20, 0), e(30, 10)], 40, 0)).not.toThrow()
    expect(() => validateSparseMap([], 0, 0)).not.toThrow()
  })

  it('refuses negative, overlapping, unsorted or out-of-range extents', () => {
    const cases = [
      [[e(-1, 5)], 10],
      [[e(0, -5)], 10],
      [[e(0, 6), e(5, 5)], 20],
      [[e(10, 1), e(0, 1)], 20],
      [[e(0, 11)], 10],
      [[e(2 ** 60, 2 ** 60)], 10],
      [[], -1],
    ] as const
    for (const [map, size] of cases) {
      expect(() => validateSparseMap(map, size, 7)).toThrow(expect.objectContaining({ reason: 'sparse-map', offset: 7 }))
    }
  })

  it('computes stored bytes, data extents and density', () => {
    const map = [e(0, 5), e(5, 0), e(10, 3)]
    expect(storedSize(map)).toBe(8)
    expect(dataExtents(map)).toEqual([e(0, 5), e(10, 3)])
    expect(isDense(map, 13)).toBe(false)
    expect(isDense([e(0, 5), e(5, 5), e(10, 0)], 10)).toBe(true)
    expect(isDense([], 0)).toBe(true)
    expect(isDense([e(0, 0)], 10)).toBe(false)
  })
})
