import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { Crc64, crc64 } from '../../src/tarsplit/crc64.js'

/** The textbook byte-at-a-time algorithm with BigInt: slow, obviously right, the reference. */
function referenceCrc64(buf: Uint8Array): bigint {
  const poly = 0xd800000000000000n
  const mask = (1n << 64n) - 1n
  const table: bigint[] = []
  for (let i = 0n; i < 256n; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ poly : c >> 1n
    table.push(c)
  }
  let crc = mask
  for (const b of buf) crc = table[Number((crc ^ BigInt(b)) & 0xffn)]! ^ (crc >> 8n)
  return crc ^ mask
}

const hex = (s: string | Uint8Array): string =>
  crc64(typeof s === 'string' ? Buffer.from(s, 'utf8') : s).toString('hex')

describe('crc64', () => {
  it('matches the vectors of the spec (§2.3)', () => {
    expect(hex('foo')).toBe('3c3c303000000000')
    expect(hex('bar')).toBe('2dc416f000000000')
    expect(hex('baz')).toBe('204416f000000000')
    expect(hex('bif')).toBe('300996f000000000')
    expect(hex('123456789')).toBe('b90956c775a41001')
    expect(hex('some test data')).toBe('8d84b9d5e5c55072')
    expect(hex('hello\n')).toBe('614c3eeee2d81000')
    expect(hex('imma hurr til I derp')).toBe('0274a4b1abec6b4e')
    expect(hex('café con leche, por favor')).toBe('7e4859efe6fca0bb')
    expect(hex('')).toBe('0000000000000000')
    expect(crc64(Buffer.from('hello\n')).toString('base64')).toBe('YUw+7uLYEAA=')
    expect(crc64(Buffer.from('some test data')).toString('base64')).toBe('jYS51eXFUHI=')
  })

  it('agrees with a BigInt reference on random data at every alignment', () => {
    const big = randomBytes(4096 + 16)
    for (let off = 0; off < 8; off++) {
      for (const len of [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096]) {
        const view = big.subarray(off, off + len)
        expect(crc64(view).readBigUInt64BE()).toBe(referenceCrc64(view))
      }
    }
  })

  it('is invariant under chunking', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(2000), { maxLength: 10 }), (data, cuts) => {
        const buf = Buffer.from(data)
        const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b)
        const c = new Crc64()
        let prev = 0
        for (const p of [...points, buf.length]) {
          c.update(buf.subarray(prev, p))
          prev = p
        }
        expect(c.digest().equals(crc64(buf))).toBe(true)
      }),
    )
  })

  it('updateZeros(n) equals update(Buffer.alloc(n))', () => {
    const prefix = Buffer.from('prefix bytes')
    const ns = [0, 1, 2, 3, 7, 8, 100, 511, 512, 4095, 4096, 4097, 5000, 65535, 65536, 65537, 123457, 1 << 20, (1 << 20) + 3, 3_333_333]
    for (const n of ns) {
      const a = new Crc64().update(prefix).updateZeros(n).update(prefix).digest()
      const b = new Crc64().update(prefix).update(Buffer.alloc(n)).update(prefix).digest()
      expect(a.toString('hex'), `n=${n}`).toBe(b.toString('hex'))
    }
  })

  it('updateZeros handles holes beyond 4 GiB in constant time', () => {
    // 2^32 + 5 zeros split as two calls must equal one call (linearity of the operators).
    const n = 2 ** 32 + 5
    const a = new Crc64().updateZeros(n).digest()
    const b = new Crc64().updateZeros(2 ** 31).updateZeros(2 ** 31).updateZeros(5).digest()
    expect(a.equals(b)).toBe(true)
    const big = 60 * 2 ** 30 // a 60 GiB hole, as in Go's *-sparse-big.tar testdata
    expect(new Crc64().updateZeros(big).digest().length).toBe(8)
    expect(() => new Crc64().updateZeros(-1)).toThrow(RangeError)
    expect(() => new Crc64().updateZeros(1.5)).toThrow(RangeError)
  })

  it('processes 64 MiB (speed sanity, reported not asserted)', () => {
    const buf = randomBytes(64 << 20)
    const c = new Crc64()
    const t0 = process.hrtime.bigint()
    for (let off = 0; off < buf.length; off += 1 << 16) c.update(buf.subarray(off, off + (1 << 16)))
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    console.info(`crc64: ${(64 / (ms / 1000)).toFixed(0)} MiB/s`)
    expect(c.digest().equals(crc64(buf))).toBe(true)
  })
})
