import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { posix } from 'node:path'
import { cleanKey, goClean } from '../../src/tarsplit/go-path.js'

const clean = (s: string): string => goClean(Buffer.from(s, 'latin1')).toString('latin1')

describe('goClean', () => {
  // Go's own table for path.Clean (src/path/path_test.go), plus the spec's consequences (§2.4).
  const table: [string, string][] = [
    ['', '.'],
    ['abc', 'abc'],
    ['abc/def', 'abc/def'],
    ['a/b/c', 'a/b/c'],
    ['.', '.'],
    ['..', '..'],
    ['../..', '../..'],
    ['../../abc', '../../abc'],
    ['/abc', '/abc'],
    ['/', '/'],
    ['abc/', 'abc'],
    ['abc/def/', 'abc/def'],
    ['a/b/c/', 'a/b/c'],
    ['./', '.'],
    ['../', '..'],
    ['../../', '../..'],
    ['/abc/', '/abc'],
    ['abc//def//ghi', 'abc/def/ghi'],
    ['//abc', '/abc'],
    ['///abc', '/abc'],
    ['//abc//', '/abc'],
    ['abc//', 'abc'],
    ['abc/./def', 'abc/def'],
    ['/./abc/def', '/abc/def'],
    ['abc/.', 'abc'],
    ['abc/def/ghi/../jkl', 'abc/def/jkl'],
    ['abc/def/../ghi/../jkl', 'abc/jkl'],
    ['abc/def/..', 'abc'],
    ['abc/def/../..', '.'],
    ['/abc/def/../..', '/'],
    ['abc/def/../../..', '..'],
    ['/abc/def/../../..', '/'],
    ['abc/def/../../../ghi/jkl/../../../mno', '../../mno'],
    ['abc/./../def', 'def'],
    ['abc//./../def', 'def'],
    ['abc/../../././../def', '../../def'],
    ['./a', 'a'],
    ['a//', 'a'],
    ['a/./', 'a'],
    ['x/../a', 'a'],
    ['../a', '../a'],
    ['/..', '/'],
    ['/../a', '/a'],
    ['.../a', '.../a'],
    ['..a/b', '..a/b'],
    ['a/.b/', 'a/.b'],
  ]
  it.each(table)('clean(%j) = %j', (input, want) => {
    expect(clean(input)).toBe(want)
  })

  it('treats non-UTF-8 bytes as opaque', () => {
    const name = Buffer.from([0x2e, 0x2f, 0x63, 0x61, 0x66, 0xe9, 0x2f, 0x2f, 0xff, 0x2f])
    expect(goClean(name)).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2f, 0xff]))
    expect(cleanKey(name)).toBe('caf\u00e9/\u00ff')
  })

  it('agrees with posix.normalize minus trailing slashes on dot-free paths, and is idempotent', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'b', '.', '..', '', 'c.d'), { maxLength: 8 }), fc.boolean(), (parts, abs) => {
        const p = (abs ? '/' : '') + parts.join('/')
        const once = clean(p)
        expect(clean(once)).toBe(once)
        if (!parts.includes('..')) {
          let n = posix.normalize(p === '' ? '.' : p)
          if (n.length > 1 && n.endsWith('/')) n = n.slice(0, -1)
          expect(once).toBe(n)
        }
      }),
    )
  })
})
