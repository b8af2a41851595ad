import { describe, expect, it } from 'vitest'
import { InvalidHeaderError } from '../../src/tarsplit/errors.js'
import { applyGlobalRecords, interpretPax, parseGoInt, parsePaxRecords, parsePaxTime } from '../../src/tarsplit/pax.js'
import { paxRecord } from './tar-build.js'

const records = (...r: Array<[string, string | Buffer]>): Buffer => Buffer.concat(r.map(([k, v]) => paxRecord(k, v)))

function refused(data: Buffer | string): InvalidHeaderError {
  try {
    parsePaxRecords(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, 1536)
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidHeaderError)
    expect(err).toMatchObject({ reason: 'pax-record', offset: 1536, kind: 'bad-input' })
    return err as InvalidHeaderError
  }
  throw new Error('accepted')
}

describe('parsePaxRecords', () => {
  it('parses records in order, values as raw bytes, last duplicate wins', () => {
    const xattr = Buffer.from([0, 1, 2, 0xff, 0x0a, 0x3d])
    const r = parsePaxRecords(
      records(['path', 'a/b'], ['SCHILY.xattr.user.bin', xattr], ['mtime', '1.5'], ['path', 'c'], ['comment', 'x=y=z']),
      0,
    )
    expect([...r.keys()]).toEqual(['path', 'SCHILY.xattr.user.bin', 'mtime', 'comment'])
    expect(r.get('path')!.toString()).toBe('c')
    expect(r.get('SCHILY.xattr.user.bin')).toEqual(xattr)
    expect(r.get('comment')!.toString()).toBe('x=y=z')
  })

  it('accepts an empty value (it means "unset")', () => {
    expect(parsePaxRecords(Buffer.from('9 uname=\n'), 0).get('uname')).toEqual(Buffer.alloc(0))
  })

  it('refuses the zero-length record of CVE-2019-20907 instead of looping', () => {
    refused('0 X=\n')
    refused('0 ')
    refused('4 a=\n')
  })

  it('refuses bad lengths, a missing newline or "=", an empty key', () => {
    refused('30 path=short\n') // longer than the data
    refused('11 path=abc ') // no newline at the stated end
    refused('10 pathabc\n')
    refused('6 =ab\n')
    refused('x path=a\n')
    refused('path=a\n') // no length at all
    refused('3 a\n') // length shorter than its own field
    refused('12 path=abc\n\0\0') // trailing NULs are a record without a length
  })

  it('refuses NUL in a path, linkpath, uname or gname value and in any key', () => {
    for (const key of ['path', 'linkpath', 'uname', 'gname']) refused(records([key, 'a\0b']))
    refused(records(['SCHILY.xattr.a\0b', 'v']))
    // NUL in other values is fine: xattr values are binary.
    expect(parsePaxRecords(records(['SCHILY.xattr.user.x', 'a\0b']), 0).get('SCHILY.xattr.user.x')!.length).toBe(3)
  })

  it('folds GNU sparse 0.0 offset/numbytes pairs into GNU.sparse.map', () => {
    const r = parsePaxRecords(
      records(
        ['GNU.sparse.size', '100'],
        ['GNU.sparse.numblocks', '2'],
        ['GNU.sparse.offset', '0'],
        ['GNU.sparse.numbytes', '5'],
        ['GNU.sparse.offset', '50'],
        ['GNU.sparse.numbytes', '7'],
      ),
      0,
    )
    expect(r.get('GNU.sparse.map')!.toString()).toBe('0,5,50,7')
    expect(r.has('GNU.sparse.offset')).toBe(false)
    refused(records(['GNU.sparse.numbytes', '5']))
    refused(records(['GNU.sparse.offset', '0'], ['GNU.sparse.offset', '1']))
    refused(records(['GNU.sparse.offset', '0,1']))
  })
})

describe('interpretPax', () => {
  it('reads the fields Go merges, skipping empty values', () => {
    const f = interpretPax(
      parsePaxRecords(
        records(
          ['path', 'long/name'],
          ['linkpath', 'target'],
          ['uname', ''],
          ['uid', '4294967296'],
          ['gid', '-1'],
          ['size', '+12'],
          ['mtime', '1350244992.023960108'],
          ['atime', '-1.5'],
          ['SCHILY.xattr.security.capability', Buffer.from([1, 0, 0, 2])],
          ['SCHILY.xattr.user.empty', ''],
        ),
        0,
      ),
      0,
    )
    expect(f.path!.toString()).toBe('long/name')
    expect(f.linkpath!.toString()).toBe('target')
    expect(f.uname).toBeUndefined()
    expect(f).toMatchObject({ uid: 2 ** 32, gid: -1, size: 12 })
    expect(f.mtime).toEqual({ sec: 1350244992, nsec: 23960108 })
    expect(f.atime).toEqual({ sec: -2, nsec: 500000000 })
    expect([...f.xattrs.keys()]).toEqual(['security.capability'])
    expect(f.xattrs.get('security.capability')).toEqual(Buffer.from([1, 0, 0, 2]))
  })

  it('refuses malformed numbers and times', () => {
    for (const [k, v] of [['size', '12a'], ['size', '99999999999999999999'], ['uid', ' 1'], ['mtime', '999xxx9324.43'], ['ctime', '1.5a'], ['atime', '.5']]) {
      expect(() => interpretPax(parsePaxRecords(records([k!, v!]), 0), 512)).toThrow(InvalidHeaderError)
    }
  })
})

describe('parsePaxTime', () => {
  it('keeps nanoseconds exactly, cutting or padding the fraction', () => {
    expect(parsePaxTime('1350244992.023960108')).toEqual({ sec: 1350244992, nsec: 23960108 })
    expect(parsePaxTime('1.5')).toEqual({ sec: 1, nsec: 500000000 })
    expect(parsePaxTime('1.1234567891234')).toEqual({ sec: 1, nsec: 123456789 })
    expect(parsePaxTime('1.')).toEqual({ sec: 1, nsec: 0 })
    expect(parsePaxTime('0')).toEqual({ sec: 0, nsec: 0 })
  })

  it('counts the fraction of a negative time down from its seconds', () => {
    expect(parsePaxTime('-1.5')).toEqual({ sec: -2, nsec: 500000000 })
    expect(parsePaxTime('-0.25')).toEqual({ sec: -1, nsec: 750000000 })
    expect(parsePaxTime('-5')).toEqual({ sec: -5, nsec: 0 })
    expect(parsePaxTime('-5.000')).toEqual({ sec: -5, nsec: 0 })
  })

  it('refuses what Go refuses', () => {
    for (const s of ['', '.5', 'a', '1.5.5', '1.-5', '1e3', ' 1']) expect(parsePaxTime(s)).toBeNull()
  })
})

describe('parseGoInt', () => {
  it('is strconv.ParseInt(s, 10, 64)', () => {
    expect(parseGoInt('0')).toBe(0)
    expect(parseGoInt('+7')).toBe(7)
    expect(parseGoInt('-7')).toBe(-7)
    expect(parseGoInt('0009')).toBe(9)
    expect(parseGoInt('9223372036854775807')).toBeGreaterThan(Number.MAX_SAFE_INTEGER)
    for (const s of ['', '+', '-', '1_000', ' 1', '1 ', '0x10', '9223372036854775808', '-9223372036854775809']) {
      expect(parseGoInt(s)).toBeNaN()
    }
    expect(parseGoInt('-9223372036854775808')).toBeLessThan(0)
  })
})

describe('applyGlobalRecords', () => {
  it('replaces earlier values and deletes on an empty value', () => {
    const g1 = applyGlobalRecords(new Map(), parsePaxRecords(records(['uid', '5'], ['comment', 'x']), 0))
    const g2 = applyGlobalRecords(g1, parsePaxRecords(records(['uid', '6'], ['comment', '']), 0))
    expect([...g2.entries()].map(([k, v]) => [k, v.toString()])).toEqual([['uid', '6']])
    expect(g1.get('comment')!.toString()).toBe('x') // not mutated
  })
})
