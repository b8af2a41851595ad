/**
 * The set of member names seen so far, kept off the JavaScript heap.
 *
 * Go's packer and unpacker keep a `map[string]struct{}` of cleaned names to refuse duplicates.
 * A `Set<string>` of the same keys costs ~100 bytes a name on the V8 heap, and worse, every key
 * outlives many scavenges: V8 grows its young generation by the bytes that survive one, so a
 * layer of 55k files made a register's young generation grow from 8 to 32 MiB (measured:
 * peak RSS 97 MiB against 78 without the set, issue #6). Here each name is reduced to a
 * 128-bit MurmurHash3 and stored in an open-addressing table of typed arrays: 17 bytes a
 * slot, nothing for the collector to trace or copy.
 *
 * Equal names always give equal digests, so a duplicate is never missed; two different names
 * taken for one another needs a 128-bit collision (odds ~n²/2¹²⁹; a crafted one would only get
 * a layer refused, which its author can do anyway with a real duplicate). The hash is keyed
 * with a random seed per set, so a crafted tar cannot aim its names at one slot and make
 * every probe long. It was the first 128 bits of a SHA-256: a hash object per name cost
 * ~10 µs, the biggest part of this set's time (issue #6).
 */
import { murmur3x86_128 } from './murmur3.js'

/**
 * Slots at the start: 4 KiB of table, enough for a small layer's names. Each layer has a set
 * of its own, and a long chain of small layers would otherwise drop 68 KiB of table per
 * layer on the collector; a big layer doubles the table a few times (log2 of its names / 192).
 */
const INITIAL_SLOTS = 256
/** Four 32-bit words of digest per slot. */
const WORDS = 4

/**
 * A set of byte strings, by the first 128 bits of their SHA-256.
 *
 * @example
 * ```ts
 * const seen = new PathSet()
 * seen.add(Buffer.from('a/b')) // true: new
 * seen.add(Buffer.from('a/b')) // false: seen before
 * ```
 */
export class PathSet {
  // Math.random, not crypto: its state is not observable from a tar, and it costs no syscall.
  readonly #seed = (Math.random() * 2 ** 32) >>> 0
  /** The digest of the last name looked at. */
  readonly #digest = new Uint32Array(WORDS)
  #words = new Uint32Array(INITIAL_SLOTS * WORDS)
  #used = new Uint8Array(INITIAL_SLOTS)
  #size = 0

  /** How many distinct names were added. */
  get size(): number {
    return this.#size
  }

  /** Whether `key` was added before. */
  has(key: Uint8Array): boolean {
    return this.#find(this.#digestOf(key)) < 0
  }

  /** Adds `key`; true when it is new, false (and nothing changes) when it was there. */
  add(key: Uint8Array): boolean {
    const d = this.#digestOf(key)
    const at = this.#find(d)
    if (at < 0) return false
    this.#put(at, d)
    this.#size++
    // Kept at most 3/4 full, so that a probe ends soon.
    if (this.#size * 4 > this.#used.length * 3) this.#grow()
    return true
  }

  /** The slot holding `d` as `-1 - slot`, or the free slot where it belongs. */
  #find(d: Uint32Array): number {
    const words = this.#words
    const used = this.#used
    const mask = used.length - 1
    const w0 = d[0]!
    const w1 = d[1]!
    const w2 = d[2]!
    const w3 = d[3]!
    for (let slot = w0 & mask; ; slot = (slot + 1) & mask) {
      if (used[slot] === 0) return slot
      const o = slot * WORDS
      if (words[o] === w0 && words[o + 1] === w1 && words[o + 2] === w2 && words[o + 3] === w3) return -1 - slot
    }
  }

  #put(slot: number, d: Uint32Array): void {
    const o = slot * WORDS
    for (let i = 0; i < WORDS; i++) this.#words[o + i] = d[i]!
    this.#used[slot] = 1
  }

  #digestOf(key: Uint8Array): Uint32Array {
    murmur3x86_128(key, this.#seed, this.#digest)
    return this.#digest
  }

  #grow(): void {
    const oldWords = this.#words
    const oldUsed = this.#used
    const slots = oldUsed.length * 2
    const mask = slots - 1
    this.#words = new Uint32Array(slots * WORDS)
    this.#used = new Uint8Array(slots)
    for (let s = 0; s < oldUsed.length; s++) {
      if (oldUsed[s] === 0) continue
      const from = s * WORDS
      let slot = oldWords[from]! & mask
      while (this.#used[slot] !== 0) slot = (slot + 1) & mask
      for (let i = 0; i < WORDS; i++) this.#words[slot * WORDS + i] = oldWords[from + i]!
      this.#used[slot] = 1
    }
  }
}
