/**
 * MurmurHash3, x86 128-bit variant (Austin Appleby's public-domain MurmurHash3_x86_128):
 * a fast, well-mixed 128-bit hash for keying tables, not a cryptographic one. Pure 32-bit
 * arithmetic, so it runs in JavaScript without BigInt.
 */

const C1 = 0x239b961b
const C2 = 0xab0e9789
const C3 = 0x38b34ae5
const C4 = 0xa1e38b93

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r))
}

function fmix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** Little-endian 32-bit word of `key` at `i`. */
function word(key: Uint8Array, i: number): number {
  return key[i]! | (key[i + 1]! << 8) | (key[i + 2]! << 16) | (key[i + 3]! << 24)
}

/**
 * Hashes `key` with `seed` into `out[0..3]` (h1…h4 of the reference, each an unsigned
 * 32-bit word; as bytes, little-endian words, the reference's 16-byte digest).
 */
export function murmur3x86_128(key: Uint8Array, seed: number, out: Uint32Array): void {
  const len = key.length
  const blocks = len & ~15
  let h1 = seed | 0
  let h2 = seed | 0
  let h3 = seed | 0
  let h4 = seed | 0
  for (let i = 0; i < blocks; i += 16) {
    let k1 = word(key, i)
    let k2 = word(key, i + 4)
    let k3 = word(key, i + 8)
    let k4 = word(key, i + 12)

    k1 = Math.imul(rotl(Math.imul(k1, C1), 15), C2)
    h1 ^= k1
    h1 = rotl(h1, 19) + h2
    h1 = (Math.imul(h1, 5) + 0x561ccd1b) | 0

    k2 = Math.imul(rotl(Math.imul(k2, C2), 16), C3)
    h2 ^= k2
    h2 = rotl(h2, 17) + h3
    h2 = (Math.imul(h2, 5) + 0x0bcaa747) | 0

    k3 = Math.imul(rotl(Math.imul(k3, C3), 17), C4)
    h3 ^= k3
    h3 = rotl(h3, 15) + h4
    h3 = (Math.imul(h3, 5) + 0x96cd1c35) | 0

    k4 = Math.imul(rotl(Math.imul(k4, C4), 18), C1)
    h4 ^= k4
    h4 = rotl(h4, 13) + h1
    h4 = (Math.imul(h4, 5) + 0x32ac3b17) | 0
  }

  // The tail: up to 15 bytes, into k4…k1 from the highest byte down, as the reference's switch.
  let k1 = 0
  let k2 = 0
  let k3 = 0
  let k4 = 0
  const tail = len & 15
  for (let j = tail - 1; j >= 0; j--) {
    const b = key[blocks + j]!
    const shift = (j & 3) * 8
    if (j >= 12) k4 ^= b << shift
    else if (j >= 8) k3 ^= b << shift
    else if (j >= 4) k2 ^= b << shift
    else k1 ^= b << shift
  }
  if (tail > 12) h4 ^= Math.imul(rotl(Math.imul(k4, C4), 18), C1)
  if (tail > 8) h3 ^= Math.imul(rotl(Math.imul(k3, C3), 17), C4)
  if (tail > 4) h2 ^= Math.imul(rotl(Math.imul(k2, C2), 16), C3)
  if (tail > 0) h1 ^= Math.imul(rotl(Math.imul(k1, C1), 15), C2)

  h1 ^= len
  h2 ^= len
  h3 ^= len
  h4 ^= len
  h1 = (h1 + h2 + h3 + h4) | 0
  h2 = (h2 + h1) | 0
  h3 = (h3 + h1) | 0
  h4 = (h4 + h1) | 0
  h1 = fmix(h1)
  h2 = fmix(h2)
  h3 = fmix(h3)
  h4 = fmix(h4)
  h1 = (h1 + h2 + h3 + h4) | 0
  h2 = (h2 + h1) | 0
  h3 = (h3 + h1) | 0
  h4 = (h4 + h1) | 0
  out[0] = h1
  out[1] = h2
  out[2] = h3
  out[3] = h4
}
