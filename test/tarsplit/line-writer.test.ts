import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { EntryInput } from '../../src/tarsplit/entry.js'
import { encodeLine } from '../../src/tarsplit/go-json.js'
import { writeLine } from '../../src/tarsplit/line-writer.js'
import { goldenEntries } from './golden-example.js'

/** What the packer does: the direct writer when it can, else the string encoder. */
function written(entry: EntryInput, position: number): Buffer {
  const out = Buffer.alloc(64 << 10, 0xee)
  const end = writeLine(entry, position, out, 7)
  return end < 0 ? encodeLine(entry, position) : out.subarray(7, end)
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a))
/** Names that stress the choice of path: ASCII, escapes, UTF-8 (U+2028 too), invalid UTF-8. */
const names = fc.oneof(
  fc.string({ maxLength: 40 }).map((s) => Buffer.from(s)),
  fc.constantFrom('a/b.txt', 'x<y>&z', 'q"uo\\te', 'tab\there', 'line\u2028sep', 'p\u2029', 'é/ü/日本', '😀', '\u007f').map((s) => Buffer.from(s)),
  bytes(40),
)
const entries: fc.Arbitrary<EntryInput> = fc.oneof(
  fc.record({ type: fc.constant(2 as const), payload: fc.option(bytes(1500), { nil: null }) }),
  fc.record({
    type: fc.constant(1 as const),
    name: names,
    size: fc.oneof(fc.constant(0), fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
    payload: fc.option(bytes(8), { nil: null }),
  }),
)

describe('writeLine', () => {
  it('writes the golden entries as encodeLine does', () => {
    for (const [i, e] of goldenEntries().entries()) expect(written(e, i)).toEqual(encodeLine(e, i))
  })

  it('writes exactly what encodeLine writes, for any entry and position (property)', () => {
    fc.assert(
      fc.property(entries, fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)), (e, position) => {
        expect(written(e, position).toString('latin1')).toBe(encodeLine(e, position).toString('latin1'))
      }),
      { numRuns: 3000 },
    )
  })

  it('writes plain segments and names itself, in place, and nothing past the line', () => {
    const out = Buffer.alloc(256, 0xee)
    const end = writeLine({ type: 1, name: Buffer.from('a/b'), size: 10, payload: Buffer.alloc(8, 1) }, 12, out, 3)
    expect(out.subarray(3, end).toString()).toBe('{"type":1,"name":"a/b","size":10,"payload":"AQEBAQEBAQE=","position":12}\n')
    expect(out[2]).toBe(0xee)
    expect(out[end]).toBe(0xee)
    expect(writeLine({ type: 2, payload: null }, 0, out, 0)).toBeGreaterThan(0)
  })

  it('says -1 when the line might not fit, -2 for the entries left to the string encoder', () => {
    expect(writeLine({ type: 2, payload: Buffer.alloc(600) }, 1, Buffer.alloc(500), 0)).toBe(-1)
    expect(writeLine({ type: 2, payload: Buffer.alloc(6) }, 1, Buffer.alloc(500), 450)).toBe(-1)
    const big = Buffer.alloc(4096)
    expect(writeLine({ type: 1, name: Buffer.from('a"b'), size: 0, payload: null }, 1, big, 0)).toBe(-2)
    expect(writeLine({ type: 1, name: Buffer.from([0xff]), size: 0, payload: null }, 1, big, 0)).toBe(-2)
    expect(writeLine({ type: 1, name: Buffer.from('s'), size: 5, payload: null, sparse: [{ offset: 0, length: 5 }] }, 1, big, 0)).toBe(-2)
    // Sizes and positions it cannot write go to the encoder, which reports them.
    expect(writeLine({ type: 1, name: Buffer.from('n'), size: -1, payload: null }, 1, big, 0)).toBe(-2)
    expect(writeLine({ type: 2, payload: null }, 1.5, big, 0)).toBe(-2)
  })
})
