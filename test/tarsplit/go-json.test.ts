import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { decodeEntry, encodeEntry } from '../../src/tarsplit/go-json.js'
import { MetadataFormatError } from '../../src/tarsplit/errors.js'
import type { Entry, FileEntry } from '../../src/tarsplit/entry.js'
import { GOLDEN_JSON_BYTES, GOLDEN_JSON_SHA256, goldenEntries, sha256 } from './golden-example.js'

const enc = (e: Entry): string => encodeEntry(e).toString('utf8')
const dec = (s: string | Buffer, line?: number): Entry =>
  decodeEntry(typeof s === 'string' ? Buffer.from(s, 'utf8') : s, line === undefined ? {} : { line })
const file = (name: string | Buffer, size: number, payload: Buffer | null, position: number, sparse?: FileEntry['sparse']): FileEntry => ({
  type: 1,
  name: typeof name === 'string' ? Buffer.from(name, 'utf8') : name,
  size,
  payload,
  position,
  ...(sparse ? { sparse } : {}),
})

function decodeError(s: string): MetadataFormatError {
  try {
    dec(s)
  } catch (err) {
    expect(err).toBeInstanceOf(MetadataFormatError)
    return err as MetadataFormatError
  }
  throw new Error(`decoded without error: ${s}`)
}

describe('encodeEntry', () => {
  it('writes the golden example of §7 byte for byte (4338 bytes)', () => {
    const json = Buffer.concat(goldenEntries().map((e, position) => encodeEntry({ ...e, position } as Entry)))
    expect(json.length).toBe(GOLDEN_JSON_BYTES)
    expect(sha256(json)).toBe(GOLDEN_JSON_SHA256)
    expect(json.toString().split('\n')[1]).toBe('{"type":1,"name":"a.txt","size":6,"payload":"YUw+7uLYEAA=","position":1}')
  })

  it("reproduces the packer sanity check of Go's packer_test (200 bytes)", () => {
    const lines = [
      enc({ type: 2, payload: Buffer.from('how'), position: 0 }),
      enc({ type: 2, payload: Buffer.from("y'all"), position: 1 }),
      enc(file('./hurr.txt', 0, Buffer.from('deadbeef'), 2)),
      enc({ type: 2, payload: Buffer.from('doin'), position: 3 }),
    ].join('')
    expect(lines).toBe(
      '{"type":2,"payload":"aG93","position":0}\n' +
        '{"type":2,"payload":"eSdhbGw=","position":1}\n' +
        '{"type":1,"name":"./hurr.txt","payload":"ZGVhZGJlZWY=","position":2}\n' +
        '{"type":2,"payload":"ZG9pbg==","position":3}\n',
    )
    expect(Buffer.byteLength(lines)).toBe(200)
  })

  it('escapes names as Go >= 1.22 with HTML escaping (§2.4)', () => {
    const name = 'a<b>&c"d\\e\x01f\bg\fh\ti\nj\x7fk\u2028lém'
    expect(enc(file(name, 1, Buffer.from('2070000000000000', 'hex'), 1))).toBe(
      '{"type":1,"name":"a\\u003cb\\u003e\\u0026c\\"d\\\\e\\u0001f\\bg\\fh\\ti\\nj\x7fk\\u2028lém","size":1,"payload":"IHAAAAAAAAA=","position":1}\n',
    )
    expect(enc(file('\x1b\u2029\r😀', 0, null, 0))).toBe('{"type":1,"name":"\\u001b\\u2029\\r😀","payload":null,"position":0}\n')
  })

  it('uses name_raw (base64) for names that are not valid UTF-8', () => {
    const name = Buffer.from('caf\xe9.txt', 'latin1')
    expect(enc(file(name, 1, Buffer.from('2070000000000000', 'hex'), 1))).toBe(
      '{"type":1,"name_raw":"Y2Fm6S50eHQ=","size":1,"payload":"IHAAAAAAAAA=","position":1}\n',
    )
    // A surrogate encoded in UTF-8 (ED A0 80) and an overlong '/' (C0 AF) are not valid UTF-8.
    expect(enc(file(Buffer.from([0xed, 0xa0, 0x80]), 0, null, 0))).toContain('"name_raw":"7aCA"')
    expect(enc(file(Buffer.from([0xc0, 0xaf]), 0, null, 0))).toContain('"name_raw":"wK8="')
  })

  it('applies omitempty: no name, no size 0; payload always present', () => {
    expect(enc(file('dir/', 0, null, 3))).toBe('{"type":1,"name":"dir/","payload":null,"position":3}\n')
    expect(enc(file('', 0, null, 0))).toBe('{"type":1,"payload":null,"position":0}\n')
    expect(enc({ type: 2, payload: Buffer.alloc(0), position: 7 })).toBe('{"type":2,"payload":"","position":7}\n')
    expect(enc({ type: 2, payload: null, position: 7 })).toBe('{"type":2,"payload":null,"position":7}\n')
  })

  it('writes our sparse extension after payload', () => {
    const e = file('s', 100, Buffer.alloc(8), 4, [
      { offset: 0, length: 10 },
      { offset: 50, length: 5 },
    ])
    expect(enc(e)).toBe('{"type":1,"name":"s","size":100,"payload":"AAAAAAAAAAA=","sparse":[[0,10],[50,5]],"position":4}\n')
    expect(enc(file('h', 9, Buffer.alloc(8), 0, []))).toBe('{"type":1,"name":"h","size":9,"payload":"AAAAAAAAAAA=","sparse":[],"position":0}\n')
  })

  it('refuses entries it cannot represent', () => {
    expect(() => encodeEntry(file('x', -1, null, 0))).toThrow(MetadataFormatError)
    expect(() => encodeEntry(file('x', 2 ** 53, null, 0))).toThrow(MetadataFormatError)
    expect(() => encodeEntry(file('x', 1.5, null, 0))).toThrow(MetadataFormatError)
    expect(() => encodeEntry({ type: 3, position: 0 } as unknown as Entry)).toThrow(MetadataFormatError)
  })
})

describe('decodeEntry', () => {
  it('decodes what it encodes (golden)', () => {
    for (const [position, e] of goldenEntries().entries()) {
      const entry = { ...e, position } as Entry
      expect(dec(encodeEntry(entry))).toEqual(entry)
    }
  })

  it("is as lenient as Go's decoder", () => {
    // Case-insensitive keys (with Go's Unicode fold: U+017F long s matches 's').
    expect(dec('{"TYPE":1,"Name":"a","\u017fize":3,"PAYLOAD":"AAAAAAAAAAA=","Position":9}')).toEqual(file('a', 3, Buffer.alloc(8), 9))
    // Unknown keys of any shape are skipped, whitespace anywhere, last duplicate wins.
    expect(
      dec(' {\n "x": {"y": [1, 2.5e3, true, false, null, "s\\""]}, "type" : 2 , "payload":"QUJD", "payload":"REVG","z":-0.0}\n'),
    ).toEqual({ type: 2, payload: Buffer.from('DEF'), position: 0 })
    // Base64 may contain CR/LF (Go's decoder drops them).
    expect(dec('{"type":2,"payload":"QU\\nJ\\r\\nD","position":1}')).toEqual({ type: 2, payload: Buffer.from('ABC'), position: 1 })
    // Old (\u0008) and new (\b) escapes both decode; \/ and surrogate pairs too.
    expect((dec('{"type":1,"name":"\\u0008\\b\\u000c\\f\\/\\ud83d\\ude00","position":0}') as FileEntry).name.toString()).toBe('\b\b\f\f/😀')
    // name_raw wins over name; an empty name_raw does not.
    expect((dec('{"type":1,"name_raw":"Y2Fm6S50eHQ=","name":"other","size":1,"payload":"IHAAAAAAAAA=","position":1}') as FileEntry).name).toEqual(
      Buffer.from('caf\xe9.txt', 'latin1'),
    )
    expect((dec('{"type":1,"name_raw":"","name":"n","position":0}') as FileEntry).name.toString()).toBe('n')
    // null for a number or string field leaves the zero value (Go ignores it).
    expect(dec('{"type":1,"name":null,"size":null,"payload":null,"position":null}')).toEqual(file('', 0, null, 0))
    expect(dec('{"type":2,"payload":"","position":0}')).toEqual({ type: 2, payload: Buffer.alloc(0), position: 0 })
    // Missing position is 0.
    expect(dec('{"type":2,"payload":"QQ=="}')).toEqual({ type: 2, payload: Buffer.from('A'), position: 0 })
  })

  it('replaces each invalid UTF-8 byte of a string by U+FFFD, as Go does', () => {
    const json = Buffer.concat([Buffer.from('{"type":1,"name":"a'), Buffer.from([0xe2, 0x82, 0xff]), Buffer.from('b","position":0}')])
    expect((dec(json) as FileEntry).name.toString()).toBe('a\ufffd\ufffd\ufffdb')
    // A lone surrogate escape becomes U+FFFD too.
    expect((dec('{"type":1,"name":"\\ud800x","position":0}') as FileEntry).name.toString()).toBe('\ufffdx')
  })

  it('returns frozen entries', () => {
    const e = dec('{"type":1,"name":"a","size":1,"payload":"AAAAAAAAAAA=","sparse":[[0,1]],"position":0}') as FileEntry
    expect(Object.isFrozen(e)).toBe(true)
    expect(Object.isFrozen(e.sparse)).toBe(true)
    expect(e.sparse).toEqual([{ offset: 0, length: 1 }])
  })

  it.each([
    ['{"type":3,"position":0}', 'unknown entry type'],
    ['{"position":0}', 'no "type"'],
    ['{"type":0}', 'unknown entry type'],
    ['{"type":"1"}', 'must be a number'],
    ['null', 'top-level null'],
    ['[]', 'expected a JSON object'],
    ['{"type":1,"size":-1}', 'negative size'],
    ['{"type":1,"size":9007199254740992}', 'beyond 2^53'],
    ['{"type":1,"size":9007199254740993}', 'beyond 2^53'],
    ['{"type":1,"size":99999999999999999999}', 'beyond 2^53'],
    ['{"type":1,"size":1.5}', 'must be an integer'],
    ['{"type":1,"size":1e3}', 'must be an integer'],
    ['{"type":1,"size":1.0}', 'must be an integer'],
    ['{"type":1,"size":01}', "expected ',' or '}'"],
    ['{"type":1,"size":true}', 'must be a number'],
    ['{"type":2,"payload":"QUJ"}', 'base64'],
    ['{"type":2,"payload":"QU=J"}', 'base64'],
    ['{"type":2,"payload":"QU J"}', 'base64'],
    ['{"type":2,"payload":5}', 'base64 string'],
    ['{"type":1,"name":5}', 'must be a string'],
    ['{"type":2,"payload":"QQ=="} x', 'unexpected data after'],
    ['{"type":2,"payload":"QQ=="', 'unexpected end of input'],
    ['{"type":2,"payload":"QQ==}', 'unterminated string'],
    ['{"type":1,"name":"a\tb"}', 'control character'],
    ['{"type":1,"name":"\\x"}', 'invalid escape'],
    ['{"type":1,"name":"\\u12"}', '\\u escape'],
    ['{"type":2,}', 'expected a string key'],
    ['{"type":2 "payload":null}', "expected ',' or '}'"],
    ['{"type":2,"x":tru}', 'expected true'],
    ['{"type":2,"x":-}', 'invalid number'],
    ['{"type":2,"x":[1,]}', 'expected a JSON value'],
    ['{"type":2,"x":{"a" 1}}', "expected ':'"],
    ['{"type":1,"size":10,"payload":null,"sparse":[[5,5],[0,1]]}', 'overlap'],
    ['{"type":1,"size":10,"payload":null,"sparse":[[5,6]]}', 'beyond size'],
    ['{"type":1,"size":10,"payload":null,"sparse":[[-1,2]]}', 'non-negative'],
    ['{"type":1,"size":10,"payload":null,"sparse":[[1]]}', 'two numbers'],
    ['{"type":1,"size":10,"payload":null,"sparse":{}}', 'array'],
    ['', 'expected a JSON object'],
  ])('refuses %s', (json, why) => {
    expect(decodeError(json).message).toContain(why)
  })

  it('bounds nesting without recursion (Go: 10000 levels)', () => {
    const ok = `{"type":2,"x":${'['.repeat(9999)}${']'.repeat(9999)}}`
    expect(dec(ok).type).toBe(2)
    const deep = `{"type":2,"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}`
    expect(decodeError(deep).message).toContain('nesting deeper')
  })

})

describe('decodeEntry errors', () => {
  it('name the line of the stream where the fault is', () => {
    try {
      decodeEntry(Buffer.from('{"payload":null,\n"type":\n3}'), { line: 10 })
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(MetadataFormatError)
      expect((err as MetadataFormatError).line).toBe(12)
      expect((err as MetadataFormatError).code).toBe('ERR_TARSPLIT_BAD_METADATA')
      expect((err as MetadataFormatError).kind).toBe('bad-input')
    }
  })
})

describe('encode → decode round trip (property)', () => {
  const bytes = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a))
  const utf8Name = fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => Buffer.from(s, 'utf8'))
  const count = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })
  const segment = fc.record({ type: fc.constant(2 as const), payload: fc.option(bytes, { nil: null }), position: count })
  const fileEntry = fc
    .record({
      type: fc.constant(1 as const),
      name: fc.oneof(bytes, utf8Name),
      size: count,
      payload: fc.option(bytes, { nil: null }),
      position: count,
      extents: fc.option(fc.array(fc.tuple(fc.nat(1000), fc.nat(1000)), { maxLength: 5 }), { nil: undefined }),
    })
    .map(({ extents, ...e }): FileEntry => {
      if (!extents) return e
      let at = 0
      const sparse = extents.map(([gap, length]) => {
        const x = { offset: at + gap, length }
        at = x.offset + length
        return x
      })
      return { ...e, size: Math.max(e.size, at), sparse }
    })
  it('holds for any entry', () => {
    fc.assert(
      fc.property(fc.oneof(segment, fileEntry), (e) => {
        const line = encodeEntry(e)
        expect(line[line.length - 1]).toBe(0x0a)
        expect(line.indexOf(0x0a)).toBe(line.length - 1)
        expect(dec(line)).toEqual(e)
        // Go's encoder output is valid JSON that JSON.parse reads the same way (name only
        // when it is UTF-8).
        const parsed = JSON.parse(line.toString('utf8')) as { name?: string }
        if (e.type === 1 && parsed.name !== undefined) expect(Buffer.from(parsed.name, 'utf8')).toEqual(e.name)
      }),
      { numRuns: 500 },
    )
  })
})

describe('decodeEntry base64', () => {
  it('accepts exactly padded standard base64, whatever path it takes', () => {
    const ok: [string, string][] = [
      ['', ''],
      ['QQ==', '41'],
      ['QUI=', '4142'],
      ['QUJD', '414243'],
      ['QUJ=', '4142'], // non-zero trailing bits: Go's StdEncoding is not strict
      ['Q\\u0055JD', '414243'], // an escape inside the string
      ['QU\\/v', '414fef'],
      ['QUJD\\r\\n', '414243'],
    ]
    for (const [b64, hex] of ok) {
      const e = dec(`{"type":2,"payload":"${b64}","position":0}`)
      expect((e as { payload: Buffer }).payload.toString('hex'), b64).toBe(hex)
    }
  })
  it.each(['Q', 'QQ', 'QQ=', 'Q===', '====', 'QQ=A', 'A=BC', 'QU-_', 'QU*J', 'QU J', 'QUJ\u00e9', 'QQ==QUJD', 'QQ= '])('refuses %j', (b64) => {
    expect(decodeError(`{"type":2,"payload":"${b64}","position":0}`).message).toContain('base64')
  })
})
