/**
 * CRC-64/GO-ISO: Go's `crc64.MakeTable(crc64.ISO)`, the checksum tar-split stores in a file
 * entry's `payload` (8 bytes, big-endian).
 *
 * Parameters: reflected polynomial constant `0xD800000000000000` (x⁶⁴+x⁴+x³+x+1), reflected
 * in and out, init and xorout all ones. Check value: `"123456789"` → `b90956c775a41001`.
 *
 * Speed without BigInt: the 64-bit register is kept as two 32-bit halves. The body folds
 * eight bytes at a time with shifts only (see `advance`); the ragged ends go byte by byte
 * through a 256-entry table whose entries' low 32 bits are all zero (the polynomial's bits
 * sit at 59–63 and eight right shifts move them no lower than bit 52), so the table holds
 * high halves only.
 */

/** The reflected ISO polynomial, high 32 bits (the low 32 bits are zero). */
const POLY_HI = 0xd8000000

/** Byte table, high halves only (low halves are all zero for ISO). */
function makeByteTable(): Int32Array {
  const t = new Int32Array(256)
  for (let i = 0; i < 256; i++) {
    let hi = 0
    let lo = i
    for (let k = 0; k < 8; k++) {
      const out = lo & 1
      lo = (lo >>> 1) | ((hi & 1) << 31)
      hi = hi >>> 1
      if (out) hi ^= POLY_HI
    }
    // lo is now zero for every i: the property the tables below rely on.
    t[i] = hi
  }
  return t
}

// An immutable lookup table, computed once at load; a constant, not state.
const T8 = makeByteTable()
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/**
 * Advances the (complemented) register over `buf[start, end)` and leaves [hi, lo] in `out`
 * (an out-parameter, to allocate nothing per call).
 */
function advance(hi: number, lo: number, buf: Uint8Array, start: number, end: number, out: Uint32Array): void {
  let i = start
  // Byte steps until the address is 4-aligned, so that the body can read through an
  // Int32Array view of the same memory.
  while (i < end && ((buf.byteOffset + i) & 3) !== 0) {
    const idx = (lo ^ buf[i]!) & 0xff
    lo = (lo >>> 8) | (hi << 24)
    hi = (hi >>> 8) ^ T8[idx]!
    i++
  }
  const pairs = LITTLE_ENDIAN ? (end - i) >>> 3 : 0
  if (pairs > 0) {
    const w = new Int32Array(buf.buffer, buf.byteOffset + i, pairs * 2)
    for (let k = 0; k < w.length; k += 2) {
      // Eight bytes in one fold, no tables: the ISO polynomial x^64 + x^4 + x^3 + x + 1 is
      // so sparse that multiplying by x^64 and reducing is four shifted XORs each way. With
      // V = register ^ word: F = V ^ V<<60 ^ V<<61 ^ V<<63, register = F ^ F>>1 ^ F>>3 ^ F>>4
      // (measured ~1.1 GB/s against ~290 MB/s for slicing-by-8 over tables).
      const vl = lo ^ w[k]!
      const vh = hi ^ w[k + 1]!
      const fh = vh ^ (vl << 28) ^ (vl << 29) ^ (vl << 31)
      hi = fh ^ (fh >>> 1) ^ (fh >>> 3) ^ (fh >>> 4)
      lo = vl ^ ((vl >>> 1) | (fh << 31)) ^ ((vl >>> 3) | (fh << 29)) ^ ((vl >>> 4) | (fh << 28))
    }
    i += pairs << 3
  }
  for (; i < end; i++) {
    const idx = (lo ^ buf[i]!) & 0xff
    lo = (lo >>> 8) | (hi << 24)
    hi = (hi >>> 8) ^ T8[idx]!
  }
  out[0] = hi
  out[1] = lo
}

/*
 * Zeros in O(log n): feeding a zero byte is a linear map on the register (GF(2)), so n zero
 * bytes are the n-th power of a 64×64 bit matrix. ZERO_OPS[k] is the operator for 2^k zero
 * bytes, built by squaring; a matrix is 64 columns of [hi, lo] (column j = image of bit j,
 * bit j counted from the least significant end of lo).
 */
type Matrix = Uint32Array // 128 words: column j at [2j] = hi, [2j + 1] = lo

function applyMatrix(m: Matrix, hi: number, lo: number, out: Uint32Array): void {
  let rh = 0
  let rl = 0
  for (let j = 0; lo !== 0; j++, lo >>>= 1) {
    if (lo & 1) {
      rh ^= m[2 * j]!
      rl ^= m[2 * j + 1]!
    }
  }
  for (let j = 32; hi !== 0; j++, hi >>>= 1) {
    if (hi & 1) {
      rh ^= m[2 * j]!
      rl ^= m[2 * j + 1]!
    }
  }
  out[0] = rh
  out[1] = rl
}

function squareMatrix(m: Matrix): Matrix {
  const r = new Uint32Array(128)
  const tmp = new Uint32Array(2)
  for (let j = 0; j < 64; j++) {
    applyMatrix(m, m[2 * j]!, m[2 * j + 1]!, tmp)
    r[2 * j] = tmp[0]!
    r[2 * j + 1] = tmp[1]!
  }
  return r
}

/** Operators for 2^0 … 2^52 zero bytes (2^53 − 1 is the largest size we accept). */
const ZERO_OPS: readonly Matrix[] = (() => {
  const one = new Uint32Array(128)
  const zero = new Uint8Array(1)
  const tmp = new Uint32Array(2)
  for (let j = 0; j < 64; j++) {
    const hi = j >= 32 ? (1 << (j - 32)) >>> 0 : 0
    const lo = j < 32 ? (1 << j) >>> 0 : 0
    advance(hi, lo, zero, 0, 1, tmp)
    one[2 * j] = tmp[0]!
    one[2 * j + 1] = tmp[1]!
  }
  const ops: Matrix[] = [one]
  for (let k = 1; k <= 52; k++) ops.push(squareMatrix(ops[k - 1]!))
  return ops
})()

/** Below this many zero bytes, running them through the table is cheaper than the matrices. */
const ZEROS_DIRECT_MAX = 4096
const ZERO_BLOCK = new Uint8Array(ZEROS_DIRECT_MAX)

/**
 * An incremental CRC-64/GO-ISO. Feeding data in any chunking gives the same digest.
 *
 * @example
 * ```ts
 * new Crc64().update(Buffer.from('123456789')).digest().toString('hex') // 'b90956c775a41001'
 * ```
 */
export class Crc64 {
  // The register with the initial complement applied (Go complements on entry and exit).
  #hi = 0xffffffff
  #lo = 0xffffffff
  readonly #tmp = new Uint32Array(2)

  /** Adds `buf` to the checksum. */
  update(buf: Uint8Array): this {
    if (buf.length === 0) return this
    advance(this.#hi, this.#lo, buf, 0, buf.length, this.#tmp)
    this.#hi = this.#tmp[0]!
    this.#lo = this.#tmp[1]!
    return this
  }

  /**
   * Adds `n` zero bytes in O(log n) time without touching memory proportional to `n`: a
   * sparse member's hole may be tens of GiB. `n` must be a non-negative safe integer.
   */
  updateZeros(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`updateZeros: invalid length ${n}`)
    if (n <= ZEROS_DIRECT_MAX) return n === 0 ? this : this.update(ZERO_BLOCK.subarray(0, n))
    const tmp = this.#tmp
    let hi = this.#hi
    let lo = this.#lo
    // Walk the bits of n without 32-bit overflow (n may exceed 2^32).
    let rest = n
    for (let k = 0; rest > 0; k++) {
      if (rest % 2 === 1) {
        applyMatrix(ZERO_OPS[k]!, hi, lo, tmp)
        hi = tmp[0]!
        lo = tmp[1]!
      }
      rest = Math.floor(rest / 2)
    }
    this.#hi = hi
    this.#lo = lo
    return this
  }

  /** The checksum so far, as 8 bytes big-endian (Go's `Sum(nil)`). Does not reset. */
  digest(): Buffer {
    const out = Buffer.allocUnsafe(8)
    out.writeUInt32BE(~this.#hi >>> 0, 0)
    out.writeUInt32BE(~this.#lo >>> 0, 4)
    return out
  }
}

/** CRC-64/GO-ISO of one buffer, as 8 bytes big-endian. */
export function crc64(buf: Uint8Array): Buffer {
  return new Crc64().update(buf).digest()
}
