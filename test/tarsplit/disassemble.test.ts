import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  closeSync,
  ftruncateSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Crc64, crc64 } from '../../src/tarsplit/crc64.js'
import { disassemble, TRAILING_CHUNK_SIZE } from '../../src/tarsplit/disassemble.js'
import type { EntryInput, FileEntry, SegmentEntry } from '../../src/tarsplit/entry.js'
import { DuplicatePathError, HeaderTooLargeError, InvalidHeaderError, TruncatedArchiveError } from '../../src/tarsplit/errors.js'
import { JsonPacker, packToBuffer } from '../../src/tarsplit/json-packer.js'
import { collect, corpusBytes, replay, slices } from './disassemble-helpers.js'
import { END, base256, headerBlock, member, padding, paxHeader, paxRecord } from './tar-build.js'

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const isFile = (e: EntryInput): e is Omit<FileEntry, 'position'> => e.type === 1
const isSeg = (e: EntryInput): e is Omit<SegmentEntry, 'position'> => e.type === 2
/** A compact view of entries: "S<bytes>" or "F<name>:<size>:<crc hex|null>". */
const shape = (entries: EntryInput[]): string[] =>
  entries.map((e) => (isSeg(e) ? `S${e.payload?.length ?? 0}` : `F${e.name.toString('latin1')}:${e.size}:${e.payload?.toString('hex') ?? null}`))

async function failure(data: Buffer, chunk = 65536): Promise<Error> {
  try {
    await collect(data, chunk)
  } catch (err) {
    return err as Error
  }
  throw new Error('disassembly succeeded')
}

// §7 of the tar-split notes: a two-member USTAR archive, 3072 bytes, verified against Go.
const GOLDEN = Buffer.concat([
  member({ name: 'a.txt', data: 'hello\n', mode: 0o644, mtime: 1700000000 }),
  member({ name: 'dir/b.txt', data: 'some test data', mode: 0o644, mtime: 1700000000 }),
  END,
])

describe('the golden example', () => {
  it('is the archive of the notes', () => {
    expect(GOLDEN.length).toBe(3072)
    expect(sha256(GOLDEN)).toBe('b3e812599ca785a3aa237eb2eba6499856ec2f567f452284d91ef3d463cdad54')
  })

  it("gives Go's entries, and Go's JSON through the packer", async () => {
    const c = await collect(GOLDEN)
    expect(shape(c.entries)).toEqual(['S512', 'Fa.txt:6:614c3eeee2d81000', 'S1018', 'Fdir/b.txt:14:8d84b9d5e5c55072', 'S1522'])
    const json = await packToBuffer(c.entries)
    expect(json.length).toBe(4338)
    expect(sha256(json)).toBe('8ee47fc59ac666e1d09f00f1a97141e6f0acb3103e912fc1b2bd0e02ec043a50')
    expect(c.members.map((m) => [m.header.name.toString(), m.content.toString()])).toEqual([
      ['a.txt', 'hello\n'],
      ['dir/b.txt', 'some test data'],
    ])
  })

  it('keeps bytes after the end marker', async () => {
    const junk = Buffer.concat([GOLDEN, Buffer.from('JUNK'.repeat(5))])
    const c = await collect(junk)
    expect(shape(c.entries).slice(-2)).toEqual(['S1522', 'S20'])
    expect(sha256(await packToBuffer(c.entries))).toBe('90e9fc64121c1d43c254c7fe7613d6049e93595f4a39b6c34970247d46d45e4a')
    expect(replay(c).equals(junk)).toBe(true)
  })
})

describe('end of archive and truncation (§3.5)', () => {
  it('accepts an archive without end blocks, or with one', async () => {
    expect(shape((await collect(GOLDEN.subarray(0, 2048))).entries).at(-1)).toBe('S498')
    expect(shape((await collect(GOLDEN.subarray(0, 2560))).entries).at(-1)).toBe('S1010')
  })

  it('gives no entries for empty input', async () => {
    expect(await collect(Buffer.alloc(0))).toEqual({ entries: [], members: [] })
  })

  it('refuses truncation anywhere, padding included (Go loses those bytes)', async () => {
    for (const [cut, where] of [
      [1224, 'header'],
      [515, 'payload'],
      [618, 'padding'],
      [518, 'padding'],
      [11, 'header'],
      [2560 + 100, 'header'],
    ] as const) {
      const err = await failure(GOLDEN.subarray(0, cut))
      expect(err).toBeInstanceOf(TruncatedArchiveError)
      expect(err).toMatchObject({ where, offset: cut, code: 'ERR_TAR_TRUNCATED', kind: 'bad-input' })
    }
    expect((await failure(GOLDEN.subarray(0, 515))) as TruncatedArchiveError).toMatchObject({ member: Buffer.from('a.txt') })
  })

  it('refuses a lone zero block followed by anything but zeros', async () => {
    const junk = Buffer.concat([GOLDEN.subarray(0, 2560), Buffer.alloc(512, 1)])
    expect(await failure(junk)).toMatchObject({ reason: 'data-after-zero-block', offset: 2560 })
    // Even a valid header: Go refuses it too (GNU tar would only warn).
    const header = Buffer.concat([GOLDEN.subarray(0, 2560), GOLDEN.subarray(0, 1024), END])
    const err = await failure(header)
    expect(err).toBeInstanceOf(InvalidHeaderError)
    expect(err.message).toMatch(/a tar header follows a lone zero block/)
  })

  it('refuses a bad checksum, and non-tar input', async () => {
    const bad = Buffer.from(GOLDEN)
    bad[1024 + 5] = bad[1024 + 5]! ^ 1
    expect(await failure(bad)).toMatchObject({ reason: 'checksum', offset: 1024 })
    expect(await failure(Buffer.alloc(2048, 0x41))).toMatchObject({ reason: 'not-a-tar', offset: 0 })
  })
})

/** Archives of every member kind, for the tests that feed them in slices. */
const ARCHIVES: Record<string, () => Buffer> = {
  golden: () => GOLDEN,
  'go-sparse-formats': () => corpusBytes('go-sparse-formats.tar'),
  'go-pax-global-records': () => corpusBytes('go-pax-global-records.tar'),
  'go-gnu-incremental': () => corpusBytes('go-gnu-incremental.tar'),
  'tarsplit-extranils': () => corpusBytes('tarsplit-extranils.tar.gz'),
  'tarsplit-longlink': () => corpusBytes('tarsplit-longlink.tar.gz'),
  'gtar-sparse-posix10': () => corpusBytes('libarchive-test_read_format_gtar_sparse_1_17_posix10.tar'),
}

describe('streaming', () => {
  for (const [name, make] of Object.entries(ARCHIVES)) {
    it(`gives the same entries fed in slices of 1, 321 and 65536 bytes: ${name}`, async () => {
      const data = make()
      const reference = await collect(data, 65536)
      expect(replay(reference).equals(data)).toBe(true)
      for (const size of [1, 321]) {
        const c = await collect(data, size)
        expect(c.entries).toEqual(reference.entries)
        expect(c.members.map((m) => m.content)).toEqual(reference.members.map((m) => m.content))
      }
    })
  }

  it('drains content the caller does not read, with the same entries', async () => {
    const data = corpusBytes('go-sparse-formats.tar')
    const read = await collect(data, 100)
    const unread = await collect(data, 100, { readContent: false })
    expect(unread.entries).toEqual(read.entries)
  })

  it('does not read ahead while the sink applies backpressure', async () => {
    let pulled = 0
    async function* source(): AsyncGenerator<Buffer> {
      for (let i = 0; i < GOLDEN.length; i += 512) {
        pulled++
        yield GOLDEN.subarray(i, i + 512)
      }
    }
    let blocking = true
    let release = (): void => undefined
    const sink = { add: () => (blocking ? new Promise<void>((resolve) => (release = resolve)) : undefined) }
    const it = disassemble(source(), { sink })
    const first = it.next()
    await new Promise((r) => setTimeout(r, 20))
    // Blocked on the first segment: one header block read, nothing more.
    expect(pulled).toBe(1)
    blocking = false
    release()
    expect((await first).done).toBe(false)
    expect(pulled).toBe(1)
    while (!(await it.next()).done);
    expect(pulled).toBe(6)
  })
})

describe('without a sink (the promise-free path for plain members)', () => {
  /** Headers and contents read without a sink, fed in `chunk`-byte slices. */
  async function sinkless(data: Buffer, chunk: number, read: 'content' | 'now' | 'skip' = 'content') {
    const got: { header: unknown; content: Buffer }[] = []
    for await (const m of disassemble(slices(data, chunk), {})) {
      const parts: Buffer[] = []
      if (read === 'now') {
        const whole = m.lentNow?.()
        if (whole !== undefined) parts.push(Buffer.from(whole))
        else for await (const b of m.content) parts.push(Buffer.from(b))
      } else if (read === 'content') for await (const b of m.content) parts.push(Buffer.from(b))
      got.push({ header: m.header, content: Buffer.concat(parts) })
    }
    return got
  }

  const names = ['golden', 'go-sparse-formats', 'go-pax-global-records', 'go-gnu-incremental', 'tarsplit-longlink']
  for (const name of names) {
    const make = ARCHIVES[name]!
    it(`gives the members a sink sees, whatever the chunking and however content is read: ${name}`, async () => {
      const data = make()
      const reference = (await collect(data, 65536)).members
      for (const size of [1, 321, 1 << 20]) {
        for (const read of ['content', 'now', 'skip'] as const) {
          const got = await sinkless(data, size, read)
          expect(got.map((m) => m.header), `${size}/${read}`).toEqual(reference.map((m) => m.header))
          if (read !== 'skip') expect(got.map((m) => m.content), `${size}/${read}`).toEqual(reference.map((m) => m.content))
        }
      }
    })
  }

  it('fails alike on either path: truncation, a bad checksum, a negative size', async () => {
    const bad = Buffer.from(GOLDEN)
    bad[1024 + 5] = bad[1024 + 5]! ^ 1
    const negative = Buffer.concat([GOLDEN.subarray(0, 1024), headerBlock({ name: 'n', size: base256(-1n, 12) }), END])
    for (const [data, expected] of [
      [GOLDEN.subarray(0, 1224), { where: 'header', offset: 1224 }],
      [GOLDEN.subarray(0, 515), { where: 'payload', offset: 515 }],
      [bad, { reason: 'checksum', offset: 1024 }],
      [negative, { reason: 'negative-size', offset: 1024 }],
    ] as const) {
      for (const size of [7, 1 << 20]) {
        const err = await sinkless(data, size).catch((e: unknown) => e)
        expect(err, `chunk ${size}`).toMatchObject(expected)
      }
    }
  })

  it('lentNow: the whole dense content when it is at hand, else undefined with nothing read', async () => {
    const tar = Buffer.concat([
      member({ name: 'a', data: 'x'.repeat(1000) }),
      member({ name: 'b', data: 'y'.repeat(600) }),
      member({ name: 'd/', typeflag: '5' }),
      END,
    ])
    // All in one chunk: each file whole, once; not after its content was read.
    const whole: (string | undefined)[] = []
    for await (const m of disassemble(slices(tar, 1 << 20), {})) {
      const now = m.lentNow?.()
      whole.push(now?.toString())
      if (now !== undefined) expect(m.lentNow!()).toBeUndefined()
    }
    expect(whole).toEqual(['x'.repeat(1000), 'y'.repeat(600), undefined])
    // Cut in 700-byte chunks: `a` straddles a chunk edge, so it is read the usual way.
    for await (const m of disassemble(slices(tar, 700), {})) {
      if (m.header.name.toString() !== 'a') continue
      expect(m.lentNow!()).toBeUndefined()
      const parts: Buffer[] = []
      for await (const c of m.content) parts.push(Buffer.from(c))
      expect(Buffer.concat(parts).toString()).toBe('x'.repeat(1000))
    }
  })
})

describe('members Go gets wrong', () => {
  it('header-only types with a size field have no data and an empty F entry', async () => {
    const tar = Buffer.concat([
      headerBlock({ name: 'sl', typeflag: '2', linkname: 'target', size: 5 }),
      headerBlock({ name: 'd/', typeflag: 0, format: 'v7', size: 1 }),
      member({ name: 'f', data: 'x' }),
      END,
    ])
    const c = await collect(tar)
    expect(shape(c.entries)).toEqual(['S512', 'Fsl:0:null', 'S512', 'Fd/:0:null', 'S512', 'Ff:1:' + crc64(Buffer.from('x')).toString('hex'), 'S1535'])
    expect(c.members.map((m) => [m.header.type, m.header.size])).toEqual([
      ['symlink', 0],
      ['directory', 0],
      ['file', 1],
    ])
    expect(replay(c).equals(tar)).toBe(true)
  })

  it('keeps non-file data (a dumpdir, unknown types) in segments with a size-0 F entry', async () => {
    const listing = Buffer.from('Nfile1\0Dsub\0\0')
    const tar = Buffer.concat([
      member({ name: 'dir/', typeflag: 'D', format: 'gnu', data: listing }),
      member({ name: 'label', typeflag: 'V', format: 'gnu', data: 'Volume 1' }),
      member({ name: 'f', data: 'abc' }),
      END,
    ])
    const c = await collect(tar)
    expect(shape(c.entries)).toEqual(['S512', 'Fdir/:0:null', 'S1024', 'Flabel:0:null', 'S1024', 'Ff:3:' + crc64(Buffer.from('abc')).toString('hex'), 'S1533'])
    // The caller still sees the bytes.
    expect(c.members[0]!.header).toMatchObject({ type: 'gnu-dumpdir', size: listing.length })
    expect(c.members[0]!.content).toEqual(listing)
    expect(replay(c).equals(tar)).toBe(true)
  })

  it('refuses sizes beyond 2^53 - 1 and negative ones (but not on header-only types)', async () => {
    const huge = Buffer.concat([headerBlock({ format: 'gnu', size: base256(1n << 60n, 12) }), END])
    expect(await failure(huge)).toMatchObject({ reason: 'size-too-large', offset: 0 })
    const negative = Buffer.concat([headerBlock({ format: 'gnu', size: base256(-1n, 12) }), END])
    expect(await failure(negative)).toMatchObject({ reason: 'negative-size' })
    const dir = Buffer.concat([headerBlock({ format: 'gnu', typeflag: '5', name: 'd/', size: base256(-1n, 12) }), END])
    expect((await collect(dir)).members[0]!.header.size).toBe(0)
    const pax = Buffer.concat([paxHeader([['size', '9007199254740992']]), headerBlock(), END])
    expect(await failure(pax)).toMatchObject({ reason: 'size-too-large', offset: 1024 })
  })
})

describe('extension headers', () => {
  it('merges PAX records and GNU long names into one segment, as Go does', async () => {
    const long = 'd/'.repeat(80) + 'file'
    const tar = Buffer.concat([
      paxHeader([['path', long], ['mtime', '1350244992.023960108'], ['SCHILY.xattr.user.k', Buffer.from([0, 1])]]),
      member({ name: 'short', data: 'abc' }),
      member({ name: '././@LongLink', typeflag: 'L', format: 'gnu', data: Buffer.from('gnu/' + long + '\0') }),
      member({ name: 'x', format: 'gnu', data: '' }),
      END,
    ])
    const c = await collect(tar)
    expect(shape(c.entries).map((s) => s.slice(0, 40))).toEqual([
      'S1536',
      `F${long}:3:${crc64(Buffer.from('abc')).toString('hex')}`.slice(0, 40),
      'S2045',
      `Fgnu/${long}:0:null`.slice(0, 40),
      'S1024',
    ])
    const h = c.members[0]!.header
    expect(h.mtime).toEqual({ sec: 1350244992, nsec: 23960108 })
    expect(h.format).toBe('pax')
    expect(h.xattrs.get('user.k')).toEqual(Buffer.from([0, 1]))
    expect(replay(c).equals(tar)).toBe(true)
  })

  it('returns a global header as a pseudo-member named as Go names it, and applies it to metadata only', async () => {
    const global = paxHeader([['path', 'global1'], ['uid', '4242'], ['mtime', '5.5']], 'g', 'pax_global_header')
    const globalData = paxRecord('path', 'global1').length + paxRecord('uid', '4242').length + paxRecord('mtime', '5.5').length
    const tar = Buffer.concat([
      global,
      member({ name: 'file1', data: 'a', uid: 7 }),
      paxHeader([['uid', '']], 'g', 'second_global'),
      member({ name: 'file2', data: 'b', uid: 7 }),
      END,
    ])
    const c = await collect(tar)
    expect(shape(c.entries)[1]).toBe('Fglobal1:0:null')
    // The global header's padding opens the next segment.
    expect((c.entries[0] as SegmentEntry).payload!.length).toBe(512 + globalData)
    expect((c.entries[2] as SegmentEntry).payload!.length).toBe(padding(globalData).length + 512)
    const [g, f1, g2, f2] = c.members.map((m) => m.header)
    expect(g).toMatchObject({ type: 'pax-global', size: 0 })
    expect(f1!.name.toString()).toBe('file1')
    expect(f1).toMatchObject({ uid: 4242, mtime: { sec: 5, nsec: 500000000 } })
    expect(g2!.name.toString()).toBe('second_global')
    expect(f2).toMatchObject({ uid: 7, mtime: { sec: 5, nsec: 500000000 } })
    expect(replay(c).equals(tar)).toBe(true)
  })

  it('keeps a PAX header that no member follows (valid, as in Go)', async () => {
    const tar = Buffer.concat([paxHeader([['path', 'nothing']]), END])
    const c = await collect(tar)
    expect(shape(c.entries)).toEqual(['S2048'])
    expect(c.members).toEqual([])
  })

  it('refuses extension headers over the limit, and honours a custom limit', async () => {
    const big = Buffer.concat([paxHeader([['comment', 'x'.repeat(1100 * 1024)]]), member({ name: 'f', data: 'a' }), END])
    expect(await failure(big)).toBeInstanceOf(HeaderTooLargeError)
    const c = await collect(big, 65536, { maxHeaderSize: 2 << 20 })
    expect(replay(c).equals(big)).toBe(true)
    const longName = Buffer.concat([member({ name: '././@LongLink', typeflag: 'L', format: 'gnu', data: 'n'.repeat(5000) }), member({ name: 'f' }), END])
    expect(await collect(longName, 65536, { maxHeaderSize: 4096 }).catch((e: unknown) => e)).toBeInstanceOf(HeaderTooLargeError)
  })
})

describe('errors', () => {
  it('are sticky and release the source', async () => {
    let finished = false
    async function* source(): AsyncGenerator<Buffer> {
      try {
        yield GOLDEN.subarray(0, 1024)
        const bad = Buffer.from(GOLDEN.subarray(1024, 1536))
        bad[0] = bad[0]! ^ 1
        yield bad
        yield Buffer.alloc(1 << 20)
      } finally {
        finished = true
      }
    }
    const it = disassemble(source(), { sink: { add: () => undefined } })
    expect((await it.next()).done).toBe(false)
    const err = await it.next().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InvalidHeaderError)
    expect(finished).toBe(true)
    expect(await it.next().catch((e: unknown) => e)).toBe(err)
  })

  it("surface the sink's refusal: duplicate paths through the JSON packer", async () => {
    const tar = Buffer.concat([member({ name: 'f', data: 'a' }), member({ name: './f', data: 'b' }), END])
    const chunks: Buffer[] = []
    const { Writable } = await import('node:stream')
    const packer = new JsonPacker(new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }))
    const err = await (async () => {
      for await (const m of disassemble(slices(tar, 512), { sink: packer })) for await (const _ of m.content);
    })().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DuplicatePathError)
  })

  it('stopping early releases the source', async () => {
    let finished = false
    async function* source(): AsyncGenerator<Buffer> {
      try {
        yield* slices(GOLDEN, 512)
      } finally {
        finished = true
      }
    }
    for await (const _ of disassemble(source(), { sink: { add: () => undefined } })) break
    expect(finished).toBe(true)
  })
})

describe('flat memory', () => {
  /** RSS growth while iterating `source`, sampled every member chunk. */
  async function run(source: AsyncIterable<Buffer>, entries: EntryInput[]): Promise<number> {
    globalThis.gc?.()
    const start = process.memoryUsage().rss
    let peak = start
    const sink = { add: (e: EntryInput) => void entries.push(isSeg(e) ? { ...e, payload: Buffer.from(e.payload!.subarray(0, 8)) } : e) }
    for await (const m of disassemble(source, { sink })) {
      for await (const _ of m.content) peak = Math.max(peak, process.memoryUsage().rss)
      peak = Math.max(peak, process.memoryUsage().rss)
    }
    return Math.max(peak, process.memoryUsage().rss) - start
  }

  it('streams a 2 GiB member from a generator', async () => {
    const size = 2 ** 31
    const zeros = Buffer.alloc(1 << 20)
    async function* source(): AsyncGenerator<Buffer> {
      yield headerBlock({ name: 'big', size })
      for (let i = 0; i < size; i += zeros.length) yield zeros
      yield END
    }
    const entries: EntryInput[] = []
    const growth = await run(source(), entries)
    expect(growth).toBeLessThan(64 << 20)
    const f = entries.find(isFile)!
    expect(f.size).toBe(size)
    expect(f.payload).toEqual(new Crc64().updateZeros(size).digest())
  }, 120_000)

  it('cuts 256 MiB of trailing zeros into 1 MiB segments', async () => {
    const chunk = Buffer.alloc(65536)
    async function* source(): AsyncGenerator<Buffer> {
      yield GOLDEN
      for (let i = 0; i < 256 * 16; i++) yield chunk
      yield chunk.subarray(0, 100)
    }
    const entries: EntryInput[] = []
    const growth = await run(source(), entries)
    expect(growth).toBeLessThan(64 << 20)
    const trailing = entries.slice(5)
    expect(trailing).toHaveLength(257)
    expect(trailing.slice(0, 256).every((e) => isSeg(e) && e.payload!.length === 8)).toBe(true)
  }, 120_000)

  it('cuts trailing bytes at exactly 1 MiB whatever the input chunking', async () => {
    const tail = Buffer.alloc(3_000_000, 7)
    const data = Buffer.concat([GOLDEN, tail])
    for (const size of [1000, 65536, 4 << 20]) {
      const c = await collect(data, size)
      expect(c.entries.slice(5).map((e) => (isSeg(e) ? e.payload!.length : -1))).toEqual([TRAILING_CHUNK_SIZE, TRAILING_CHUNK_SIZE, 3_000_000 - 2 * TRAILING_CHUNK_SIZE])
      expect(replay(c).equals(data)).toBe(true)
    }
  })
})

/** Python's tarfile, PAX format with a global header, of the tree given as argv[1]. */
const PYTHON_PAX = [
  'import sys, tarfile, io',
  'b = io.BytesIO()',
  't = tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"})',
  't.add(sys.argv[1], arcname="root")',
  't.close()',
  'sys.stdout.buffer.write(b.getvalue())',
].join('\n')

// Archives from the real writers on this machine (GNU tar in every format, sparse variants,
// bsdtar, Python's tarfile, git archive), disassembled and replayed.
describe('real writers', () => {
  let dir = ''
  let tree = ''
  const logical = new Map<string, Buffer>()
  const have = (cmd: string): boolean => {
    try {
      execFileSync(cmd, ['--version'], { stdio: 'ignore' })
      return true
    } catch {
      console.warn(`disassemble.test: ${cmd} is not installed; its archives are skipped`)
      return false
    }
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'disasm-writers-'))
    tree = join(dir, 'tree')
    mkdirSync(join(tree, 'sub', 'deeper'), { recursive: true })
    writeFileSync(join(tree, 'hello.txt'), 'hello\n')
    writeFileSync(join(tree, 'empty'), '')
    writeFileSync(join(tree, 'sub', 'deeper', 'x'.repeat(120)), Buffer.alloc(70000, 0x61))
    writeFileSync(join(tree, Buffer.from('caf\xe9', 'latin1').toString('latin1')), 'latin')
    symlinkSync('hello.txt', join(tree, 'link'))
    linkSync(join(tree, 'hello.txt'), join(tree, 'hard'))
    // A sparse file: data at 0, 1 MiB and 3 MiB + 5, a trailing hole to 4 MiB.
    const fd = openSync(join(tree, 'sparse.img'), 'w')
    writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 0)
    writeSync(fd, Buffer.alloc(8192, 2), 0, 8192, 1 << 20)
    writeSync(fd, Buffer.from('tail'), 0, 4, 3 * (1 << 20) + 5)
    ftruncateSync(fd, 4 << 20)
    closeSync(fd)
    logical.set('sparse.img', readFileSync(join(tree, 'sparse.img')))
  })
  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  })

  const writers: Record<string, string[]> = {
    'gnu tar (gnu)': ['tar', '--format=gnu', '-C', '', '-cf', '-', '.'],
    'gnu tar (oldgnu)': ['tar', '--format=oldgnu', '-C', '', '-cf', '-', '.'],
    'gnu tar (ustar)': ['tar', '--format=ustar', '-C', '', '-cf', '-', 'hello.txt', 'link', 'hard', 'sparse.img', '--no-recursion', 'sub'],
    'gnu tar (v7)': ['tar', '--format=v7', '-C', '', '-cf', '-', 'hello.txt', 'link', 'hard'],
    'gnu tar (posix)': ['tar', '--format=posix', '-C', '', '-cf', '-', '.'],
    'gnu tar --sparse (gnu)': ['tar', '--sparse', '--format=gnu', '-C', '', '-cf', '-', '.'],
    'gnu tar --sparse (posix 0.0)': ['tar', '--sparse', '--sparse-version=0.0', '--format=posix', '-C', '', '-cf', '-', '.'],
    'gnu tar --sparse (posix 0.1)': ['tar', '--sparse', '--sparse-version=0.1', '--format=posix', '-C', '', '-cf', '-', '.'],
    'gnu tar --sparse (posix 1.0)': ['tar', '--sparse', '--sparse-version=1.0', '--format=posix', '-C', '', '-cf', '-', '.'],
    'bsdtar (pax)': ['bsdtar', '--format=pax', '-C', '', '-cf', '-', '.'],
    'bsdtar (ustar)': ['bsdtar', '--format=ustar', '-C', '', '-cf', '-', 'hello.txt', 'link'],
    'python tarfile (pax)': ['python3', '-c', PYTHON_PAX, ''],
  }

  for (const [name, argv] of Object.entries(writers)) {
    it.skipIf(!have(argv[0]!))(name, async () => {
      const args = argv.slice(1).map((a) => (a === '' ? tree : a))
      const tar = execFileSync(argv[0]!, args, { maxBuffer: 64 << 20 })
      const c = await collect(tar, 321)
      expect(replay(c).equals(tar)).toBe(true)
      expect(c.entries).toEqual((await collect(tar, 65536)).entries)
      const sparse = c.members.find((m) => m.header.name.toString().endsWith('sparse.img'))
      if (sparse !== undefined) {
        const f = c.entries.filter(isFile).find((e) => e.name.toString().endsWith('sparse.img'))!
        const content = logical.get('sparse.img')!
        expect(f.size).toBe(content.length)
        expect(f.payload).toEqual(crc64(content))
        // GNU tar stores holes only when told (--sparse); bsdtar's pax format always does.
        if (name.includes('--sparse') || name.includes('bsdtar (pax)')) {
          expect(sparse.header.sparse?.realSize).toBe(content.length)
          expect(f.sparse!.length).toBeGreaterThan(1)
          // The stored bytes are exactly the extents of the logical file.
          const extents = Buffer.concat(f.sparse!.map((e) => content.subarray(e.offset, e.offset + e.length)))
          expect(sparse.content.equals(extents)).toBe(true)
        } else {
          expect(f.sparse).toBeUndefined()
          expect(sparse.content.equals(content)).toBe(true)
        }
      }
    })
  }

  it.skipIf(!have('git'))('git archive (a global header with the commit id)', async () => {
    const repo = join(dir, 'repo')
    mkdirSync(repo)
    const git = (...a: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@t', ...a])
    git('init', '-q')
    writeFileSync(join(repo, 'a.txt'), 'a\n')
    git('add', '.')
    git('commit', '-qm', 'x')
    const tar = git('archive', '--format=tar', 'HEAD')
    const c = await collect(tar, 321)
    expect(c.members[0]!.header.type).toBe('pax-global')
    expect(shape(c.entries)[1]).toBe('Fpax_global_header:0:null')
    expect(replay(c).equals(tar)).toBe(true)
  })

  it.skipIf(!have('tar'))('gnu tar --listed-incremental (dumpdir members)', async () => {
    const tar = execFileSync('tar', ['--listed-incremental=' + join(dir, 'snar'), '-C', tree, '-cf', '-', 'sub'])
    const c = await collect(tar, 321)
    const dumpdirs = c.members.filter((m) => m.header.type === 'gnu-dumpdir')
    expect(dumpdirs.length).toBeGreaterThan(0)
    for (const d of dumpdirs) {
      const f = c.entries.filter(isFile).find((e) => e.name.equals(d.header.name))!
      expect(f).toMatchObject({ size: 0, payload: null })
    }
    expect(replay(c).equals(tar)).toBe(true)
  })
})
