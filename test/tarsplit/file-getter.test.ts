import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, open, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { directoryGetter, mapGetter, sparseExtents } from '../../src/tarsplit/file-getter.js'
import type { FileGetter } from '../../src/tarsplit/file-getter.js'
import { ChecksumMismatchError, MissingFileError, UnsafeNameError } from '../../src/tarsplit/errors.js'
import { isKind } from '../../src/errors.js'
import type { FileEntry, SparseExtent } from '../../src/tarsplit/entry.js'

const entry = (name: Buffer | string, size: number, sparse?: SparseExtent[]): FileEntry => ({
  type: 1,
  name: Buffer.isBuffer(name) ? name : Buffer.from(name),
  size,
  payload: Buffer.alloc(8),
  position: 0,
  ...(sparse ? { sparse } : {}),
})

async function read(getter: FileGetter, name: Buffer | string, size = 0, sparse?: SparseExtent[]): Promise<Buffer> {
  const e = entry(name, size, sparse)
  const chunks: Buffer[] = []
  for await (const c of await getter(e.name, e)) chunks.push(c)
  return Buffer.concat(chunks)
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a failure')
}

async function* chunks(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size)
}

describe.each([
  ['blocking small reads', {}],
  ['asynchronous reads only', { syncReadMax: 0 }],
] as const)('directoryGetter (%s)', (_mode, opts) => {
  let root: string
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'tarsplit-getter-'))
    await mkdir(join(root, 'dir/sub'), { recursive: true })
    await writeFile(join(root, 'a.txt'), 'hello\n')
    await writeFile(join(root, 'dir/sub/b.txt'), 'some test data')
  })
  afterEach(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('reads files by raw names, skipping empty and . components', async () => {
    const get = directoryGetter(root, opts)
    expect((await read(get, 'a.txt')).toString()).toBe('hello\n')
    for (const n of ['dir/sub/b.txt', './dir/sub/b.txt', '/dir//sub/./b.txt', 'dir/sub/b.txt']) {
      expect((await read(get, n)).toString(), n).toBe('some test data')
    }
  })

  it('reads non-UTF-8 names through Buffer paths', async () => {
    const name = Buffer.from('dir/caf\xe9-\xff.txt', 'latin1')
    await writeFile(Buffer.concat([Buffer.from(root + '/'), name]), 'latin-1')
    expect((await read(directoryGetter(Buffer.from(root), opts), name)).toString()).toBe('latin-1')
  })

  it('reads in chunks of at most chunkSize', async () => {
    const data = Buffer.alloc(10_000, 'x')
    await writeFile(join(root, 'big'), data)
    const e = entry('big', data.length)
    const sizes: number[] = []
    for await (const c of await directoryGetter(root, { ...opts, chunkSize: 4096, syncReadMax: 0 })(e.name, e)) sizes.push(c.length)
    expect(sizes).toEqual([4096, 4096, 1808])
  })

  it('reads into a lent buffer: views of it, by halves, each chunk whole until the next is asked for', async () => {
    const data = Buffer.alloc(10_000)
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 251
    await writeFile(join(root, 'big'), data)
    const into = Buffer.alloc(16384)
    const get = directoryGetter(root, opts)
    for (const [name, size] of [['big', data.length], ['a.txt', 6]] as const) {
      const e = entry(name, size)
      const seen: Buffer[] = []
      for await (const c of await get(e.name, e, into)) {
        // A view of the lent buffer (nothing allocated per chunk), copied before the next.
        expect(c.buffer).toBe(into.buffer)
        seen.push(Buffer.from(c))
      }
      expect(Buffer.concat(seen)).toEqual(name === 'big' ? data : Buffer.from('hello\n'))
      // Read whole when small enough for a blocking read, else by halves of the lent buffer.
      if (name === 'big') expect(seen.map((c) => c.length)).toEqual('syncReadMax' in opts ? [8192, 1808] : [10_000])
    }
  })

  it("refuses '..' components and names of the root itself", async () => {
    const get = directoryGetter(join(root, 'dir'), opts)
    for (const n of ['../a.txt', 'sub/../../a.txt', 'sub/..', '.', '', '/', './/.']) {
      const err = await failure(read(get, n))
      expect(err, n).toBeInstanceOf(UnsafeNameError)
      expect(isKind(err, 'unsafe-path')).toBe(true)
    }
  })

  it('refuses a symlink in any component, the last one included', async () => {
    await symlink('a.txt', join(root, 'link.txt'))
    await symlink('dir', join(root, 'dirlink'))
    await symlink('/etc', join(root, 'dir/etc'))
    const get = directoryGetter(root, opts)
    for (const n of ['link.txt', 'dirlink/sub/b.txt', 'dir/etc/hostname']) {
      expect(await failure(read(get, n)), n).toBeInstanceOf(UnsafeNameError)
    }
    // The root itself may be a symlink: it is the caller's.
    await symlink(root, `${root}-rootlink`)
    try {
      expect((await read(directoryGetter(`${root}-rootlink`, opts), 'a.txt')).toString()).toBe('hello\n')
    } finally {
      await rm(`${root}-rootlink`)
    }
  })

  it('reports a missing file with its cause, and refuses non-regular files without blocking', async () => {
    const get = directoryGetter(root, opts)
    const missing = await failure(read(get, 'nope.txt'))
    expect(missing).toBeInstanceOf(MissingFileError)
    expect(isKind(missing, 'not-found')).toBe(true)
    expect((missing.cause as NodeJS.ErrnoException).code).toBe('ENOENT')
    expect(await failure(read(get, 'nodir/x'))).toBeInstanceOf(MissingFileError)
    expect(await failure(read(get, 'a.txt/x'))).toBeInstanceOf(MissingFileError)
    expect(await failure(read(get, 'dir'))).toBeInstanceOf(MissingFileError)
    execFileSync('mkfifo', [join(root, 'fifo')])
    expect(await failure(read(get, 'fifo'))).toBeInstanceOf(MissingFileError)
  })

  it('reads only the extents of a sparse member, by position, from a real sparse file', async () => {
    const path = join(root, 'sparse')
    const fh = await open(path, 'w')
    try {
      await fh.write(Buffer.from('head'), 0, 4, 0)
      await fh.write(Buffer.from('middle'), 0, 6, 1 << 20)
      await fh.truncate(4 << 20) // a hole at the end too
    } finally {
      await fh.close()
    }
    const extents = [
      { offset: 0, length: 4 },
      { offset: 1 << 20, length: 6 },
    ]
    expect((await read(directoryGetter(root, opts), 'sparse', 4 << 20, extents)).toString()).toBe('headmiddle')
    expect((await read(directoryGetter(root, opts), 'sparse', 4 << 20, [])).length).toBe(0)
    const err = await failure(read(directoryGetter(root, opts), 'sparse', 5 << 20, extents))
    expect(err).toBeInstanceOf(ChecksumMismatchError)
  })
})

describe('sparseExtents', () => {
  const dense = Buffer.from('0123456789abcdefghij')
  it.each([1, 3, 7, 100])('selects extents from a dense stream in slices of %i', async (size) => {
    const extents = [
      { offset: 0, length: 2 },
      { offset: 2, length: 0 },
      { offset: 5, length: 6 },
      { offset: 18, length: 2 },
    ]
    const out: Buffer[] = []
    for await (const c of sparseExtents(chunks(dense, size), extents)) out.push(c)
    expect(Buffer.concat(out).toString()).toBe('01' + '56789a' + 'ij')
  })

  it('stops reading after the last extent', async () => {
    let pulled = 0
    async function* counting(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 100; i++) {
        pulled++
        yield Buffer.alloc(10)
      }
    }
    const out: Buffer[] = []
    for await (const c of sparseExtents(counting(), [{ offset: 15, length: 10 }])) out.push(c)
    expect(Buffer.concat(out).length).toBe(10)
    expect(pulled).toBe(3)
  })
})

describe('mapGetter', () => {
  it('serves dense and sparse content and reports missing names', async () => {
    const files = new Map<string | Buffer, Buffer>([
      ['a', Buffer.from('abc')],
      [Buffer.from('caf\xe9', 'latin1'), Buffer.from('latin')],
      ['café', Buffer.from('utf8')],
      ['s', Buffer.from('xx\0\0\0yy')],
    ])
    const get = mapGetter(files)
    expect((await read(get, 'a')).toString()).toBe('abc')
    expect((await read(get, Buffer.from('caf\xe9', 'latin1'))).toString()).toBe('latin')
    expect((await read(get, 'café')).toString()).toBe('utf8')
    const ext = [
      { offset: 0, length: 2 },
      { offset: 5, length: 2 },
    ]
    expect((await read(get, 's', 7, ext)).toString()).toBe('xxyy')
    expect(await failure(read(get, 's', 8, ext))).toBeInstanceOf(ChecksumMismatchError)
    expect(await failure(read(get, 'b'))).toBeInstanceOf(MissingFileError)
  })
})
