import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { InvalidHeaderError } from '../../src/tarsplit/errors.js'
import {
  blockFormat,
  blockPadding,
  computeChecksums,
  decodeHeader,
  isHeaderOnlyType,
  isZeroBlock,
  parseNumeric,
} from '../../src/tarsplit/header.js'
import { base256, headerBlock, setChecksum } from './tar-build.js'

const field = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s)
const num = (s: string | Buffer): number => {
  const b = field(s)
  return parseNumeric(b, 0, b.length)
}

function decodeError(block: Buffer, offset = 512): InvalidHeaderError {
  try {
    decodeHeader(block, offset)
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidHeaderError)
    return err as InvalidHeaderError
  }
  throw new Error('decodeHeader accepted the block')
}

describe('parseNumeric', () => {
  it('reads octal, trimming spaces and NULs at both ends and stopping at an inner NUL', () => {
    expect(num('0000644\0')).toBe(0o644)
    expect(num('   644 ')).toBe(0o644)
    expect(num('\0\0\0\0\0\0\0\x000016')).toBe(0o16) // leading NULs (libarchive timestamp_overflow)
    expect(num('12\x0034')).toBe(0o12)
    expect(num('        ')).toBe(0)
    expect(num('\0\0\0\0')).toBe(0)
    expect(num('')).toBe(0)
  })

  it('refuses non-octal digits and inner spaces, as Go does', () => {
    expect(num('0000648\0')).toBeNaN()
    expect(num('12 34')).toBeNaN()
    expect(num('+123')).toBeNaN()
    expect(num('0x10')).toBeNaN()
  })

  it('reads GNU base-256, positive and negative', () => {
    expect(num(base256(0n, 12))).toBe(0)
    expect(num(base256(1n << 40n, 12))).toBe(2 ** 40)
    expect(num(base256(2n ** 53n - 1n, 12))).toBe(Number.MAX_SAFE_INTEGER)
    expect(num(base256(-1n, 12))).toBe(-1)
    expect(num(base256(-123456789n, 8))).toBe(-123456789)
    expect(num(base256(2n ** 63n - 1n, 12))).toBeGreaterThan(Number.MAX_SAFE_INTEGER)
    expect(num(base256(-(2n ** 63n), 12))).toBeLessThan(-Number.MAX_SAFE_INTEGER)
  })

  it('refuses base-256 values beyond 63 bits (Go: integer overflow)', () => {
    expect(num(base256(2n ** 63n, 12))).toBeNaN()
    const big = Buffer.alloc(12, 0xff)
    big[0] = 0x80 // positive, 2^88 - 1
    expect(num(big)).toBeNaN()
    const neg = Buffer.alloc(12, 0)
    neg[0] = 0xc0 // negative with 95 significant bits
    expect(num(neg)).toBeNaN()
  })
})

describe('checksums and formats', () => {
  it('sums aligned blocks (word at a time) exactly as byte by byte, at any alignment', () => {
    /** The definition: every byte, the checksum field counted as spaces, signed as int8. */
    const reference = (b: Uint8Array): { unsigned: number; signed: number } => {
      let unsigned = 0
      let signed = 0
      for (let i = 0; i < 512; i++) {
        const c = i >= 148 && i < 156 ? 0x20 : b[i]!
        unsigned += c
        signed += c >= 0x80 ? c - 256 : c
      }
      return { unsigned, signed }
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 512, maxLength: 512 }), fc.nat(7), (bytes, shift) => {
        const mem = new Uint8Array(520)
        const block = mem.subarray(shift, shift + 512)
        block.set(bytes)
        expect(computeChecksums(block)).toEqual(reference(block))
      }),
    )
    const ones = new Uint8Array(512).fill(0xff)
    expect(computeChecksums(ones)).toEqual(reference(ones))
  })

  it('accepts the unsigned and the signed (Sun) sum', () => {
    const b = headerBlock({ name: 'caf\xe9', uname: '\xff\xfe' })
    const { unsigned, signed } = computeChecksums(b)
    expect(unsigned).not.toBe(signed)
    expect(blockFormat(setChecksum(Buffer.from(b), unsigned))).toBe('ustar')
    expect(blockFormat(setChecksum(Buffer.from(b), 'signed'))).toBe('ustar')
    expect(blockFormat(setChecksum(Buffer.from(b), unsigned + 1))).toBeNull()
  })

  it('refuses an unparsable checksum field', () => {
    const b = headerBlock()
    b.write('01234x\0 ', 148, 'latin1')
    expect(blockFormat(b)).toBeNull()
  })

  it('tells formats by magic', () => {
    expect(blockFormat(headerBlock({ format: 'ustar' }))).toBe('ustar')
    expect(blockFormat(headerBlock({ format: 'gnu' }))).toBe('gnu')
    expect(blockFormat(headerBlock({ format: 'v7' }))).toBe('v7')
    expect(blockFormat(headerBlock({ format: 'star' }))).toBe('star')
    // "ustar " with the wrong version is neither GNU nor USTAR: V7.
    expect(blockFormat(headerBlock({ format: 'v7', patch: [[257, 'ustar 00']] }))).toBe('v7')
  })

  it('detects zero blocks and header-only types; computes padding', () => {
    expect(isZeroBlock(Buffer.alloc(512))).toBe(true)
    const b = Buffer.alloc(512)
    b[511] = 1
    expect(isZeroBlock(b)).toBe(false)
    expect([...'0123456789'].map((c) => isHeaderOnlyType(c.charCodeAt(0)))).toEqual([
      false, true, true, true, true, true, true, false, false, false,
    ])
    expect([0, 1, 511, 512, 513].map(blockPadding)).toEqual([0, 511, 1, 0, 511])
  })
})

describe('decodeHeader', () => {
  it('decodes a ustar header and joins the prefix', () => {
    const h = decodeHeader(
      headerBlock({ name: 'b.txt', prefix: 'dir/sub', size: 14, mode: 0o755, uid: 1000, gid: 100, typeflag: '0', linkname: 'x', devmajor: 8, devminor: 1 }),
      0,
    )
    expect(h.name.toString()).toBe('dir/sub/b.txt')
    expect(h).toMatchObject({ size: 14, mode: 0o755, uid: 1000, gid: 100, typeflag: 0x30, mtime: 1700000000, devmajor: 8, devminor: 1, format: 'ustar' })
    expect(h.linkname.toString()).toBe('x')
    expect(h.uname.toString()).toBe('root')
  })

  it('keeps name bytes raw (non-UTF-8) and cuts fields at the first NUL', () => {
    const h = decodeHeader(headerBlock({ name: Buffer.from([0x63, 0x61, 0x66, 0xe9, 0, 0x41]) }), 0)
    expect(h.name).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9]))
  })

  it('uses the whole 100-byte name when it has no NUL', () => {
    const name = 'n'.repeat(100)
    expect(decodeHeader(headerBlock({ name }), 0).name.toString()).toBe(name)
  })

  it('V7 headers have no owner names, devices or prefix', () => {
    const h = decodeHeader(headerBlock({ format: 'v7', patch: [[265, 'root'], [345, 'pfx']] }), 0)
    expect(h.format).toBe('v7')
    expect(h.uname.length).toBe(0)
    expect(h.name.toString()).toBe('file.txt')
  })

  it('reads GNU atime/ctime and ignores the prefix area otherwise', () => {
    const h = decodeHeader(headerBlock({ format: 'gnu', patch: [[345, '14524770400\0'], [357, '14524770401\0']] }), 0)
    expect(h).toMatchObject({ format: 'gnu', atime: 1700000000, ctime: 1700000001 })
    expect(h.name.toString()).toBe('file.txt')
  })

  it('falls back to a prefix when GNU times do not parse (pre-Go-1.8 writers, golang/go#12594)', () => {
    const h = decodeHeader(headerBlock({ format: 'gnu', patch: [[345, 'some/prefix']] }), 0)
    expect(h.name.toString()).toBe('some/prefix/file.txt')
    expect(h.atime).toBeUndefined()
    // A non-ASCII prefix is not taken.
    const g = decodeHeader(headerBlock({ format: 'gnu', patch: [[345, Buffer.from('pr\xe9', 'latin1')]] }), 0)
    expect(g.name.toString()).toBe('file.txt')
  })

  it('reads STAR prefix and times', () => {
    const h = decodeHeader(headerBlock({ format: 'star', prefix: 'p', patch: [[476, '00000000001\0'], [488, '00000000002\0']] }), 0)
    expect(h).toMatchObject({ format: 'star', atime: 1, ctime: 2 })
    expect(h.name.toString()).toBe('p/file.txt')
  })

  it('reads base-256 sizes and ids, including negative ones', () => {
    const h = decodeHeader(headerBlock({ format: 'gnu', size: base256(8n << 30n, 12), uid: base256(-5n, 8) }), 0)
    expect(h.size).toBe(8 * 2 ** 30)
    expect(h.uid).toBe(-5)
  })

  it('refuses a bad checksum with the block offset', () => {
    const b = headerBlock()
    b[0] = b[0]! ^ 1
    const err = decodeError(b, 1024)
    expect(err).toMatchObject({ reason: 'checksum', offset: 1024, code: 'ERR_TAR_INVALID_HEADER', kind: 'bad-input' })
    expect(decodeError(b, 0).reason).toBe('not-a-tar')
  })

  it('refuses malformed numbers, naming the fields', () => {
    const err = decodeError(headerBlock({ size: Buffer.from('0000000009x\0'), mtime: base256(1n << 70n, 12) }))
    expect(err.reason).toBe('number')
    expect(err.message).toMatch(/size/)
    expect(err.message).toMatch(/mtime/)
    // Devices count for ustar, not for V7 (which has no such fields).
    expect(decodeError(headerBlock({ devmajor: Buffer.from('zz\0') })).reason).toBe('number')
    expect(decodeHeader(headerBlock({ format: 'v7', patch: [[329, 'zz']] }), 0).devmajor).toBe(0)
  })
})
