/**
 * Compression sniffing and streaming decompression of layer input, fed in slices of 1, 321
 * and 65536 bytes (the register path must not depend on how the input is chunked).
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { decompress } from '../../src/layer/index.js'
import { readAll, slices } from './helpers.js'

const haveZstd = (() => {
  try {
    execFileSync('zstd', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
if (!haveZstd) console.warn('zstd decompression tests skipped: the zstd program is not installed')

// Compressible, but not trivially: half random bytes.
const plain = Buffer.concat([randomBytes(100_000), Buffer.alloc(100_000, 0x41)])
/** 1-byte slices cost a stream round trip per byte: those runs get a smaller input. */
const sized = (size: number): Buffer => (size === 1 ? plain.subarray(96_000, 104_000) : plain)

describe('decompress', () => {
  it.each([1, 321, 65536])('passes plain input through unchanged (slices of %i)', async (size) => {
    const input = await decompress(slices(sized(size), size))
    expect(input.compression).toBe('none')
    expect(await readAll(input.bytes)).toEqual(sized(size))
  })

  it.each([1, 321, 65536])('decompresses gzip (slices of %i)', async (size) => {
    const input = await decompress(slices(gzipSync(sized(size)), size))
    expect(input.compression).toBe('gzip')
    expect(await readAll(input.bytes)).toEqual(sized(size))
  })

  it('reads concatenated gzip members to their end', async () => {
    const input = await decompress(slices(Buffer.concat([gzipSync(plain.subarray(0, 1000)), gzipSync(plain.subarray(1000))]), 4096))
    expect(await readAll(input.bytes)).toEqual(plain)
  })

  it.skipIf(!haveZstd).each([1, 321, 65536])('decompresses zstd with the zstd program (slices of %i)', async (size) => {
    const zst = execFileSync('zstd', ['-q', '-c'], { input: sized(size) })
    const input = await decompress(slices(zst, size), { zstd: 'binary' })
    expect(input.compression).toBe('zstd')
    expect(await readAll(input.bytes)).toEqual(sized(size))
  })

  it('names what to use when zlib has no zstd', async () => {
    const zst = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0])
    const hasNative = 'createZstdDecompress' in (await import('node:zlib'))
    if (hasNative) return
    await expect(decompress(slices(zst, 3), { zstd: 'zlib' })).rejects.toMatchObject({ code: 'ERR_COMPRESSION_NOT_SUPPORTED', kind: 'not-supported' })
  })

  it('reports truncated gzip and zstd as such', async () => {
    const gz = gzipSync(plain)
    const cut = await decompress(slices(gz.subarray(0, gz.length - 100), 1000))
    await expect(readAll(cut.bytes)).rejects.toMatchObject({ code: 'ERR_LAYER_INPUT_CORRUPT', kind: 'bad-input', truncated: true, compression: 'gzip' })
    const bad = Buffer.from(gz)
    bad.fill(0x55, 20, 60)
    await expect(readAll((await decompress(slices(bad, 1000))).bytes)).rejects.toMatchObject({ code: 'ERR_LAYER_INPUT_CORRUPT', kind: 'bad-input' })
    if (!haveZstd) return
    const zst = execFileSync('zstd', ['-q', '-c'], { input: plain })
    const zcut = await decompress(slices(zst.subarray(0, zst.length >> 1), 1000), { zstd: 'binary' })
    await expect(readAll(zcut.bytes)).rejects.toMatchObject({ code: 'ERR_LAYER_INPUT_CORRUPT', kind: 'bad-input', compression: 'zstd' })
  })

  it('refuses bzip2 and xz with a typed error', async () => {
    for (const magic of [Buffer.from('BZh9'), Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])]) {
      await expect(decompress(slices(Buffer.concat([magic, Buffer.alloc(64)]), 2))).rejects.toMatchObject({
        code: 'ERR_COMPRESSION_NOT_SUPPORTED',
      })
    }
  })

  it('accepts empty input as plain', async () => {
    const input = await decompress(slices(Buffer.alloc(0), 1))
    expect(input.compression).toBe('none')
    expect(await readAll(input.bytes)).toEqual(Buffer.alloc(0))
  })

  it('passes a source error through unchanged', async () => {
    const boom = Object.assign(new Error('network down'), { code: 'ECONNRESET' })
    const failing = (async function* () {
      yield gzipSync(plain).subarray(0, 5000)
      throw boom
    })()
    await expect(readAll((await decompress(failing)).bytes)).rejects.toBe(boom)
  })
})
