import { describe, expect, it } from 'vitest'
import { PathSet } from '../../src/tarsplit/path-set.js'

describe('PathSet', () => {
  it('adds a name once and reports it seen afterwards', () => {
    const set = new PathSet()
    expect(set.has(Buffer.from('a/b'))).toBe(false)
    expect(set.add(Buffer.from('a/b'))).toBe(true)
    expect(set.add(Buffer.from('a/b'))).toBe(false)
    expect(set.has(Buffer.from('a/b'))).toBe(true)
    expect(set.has(Buffer.from('a/b/'))).toBe(false)
    expect(set.size).toBe(1)
  })

  it('keeps byte strings apart that text would merge (invalid UTF-8, the empty name)', () => {
    const set = new PathSet()
    const keys = [Buffer.from([0xff]), Buffer.from([0xfe]), Buffer.from('\ufffd'), Buffer.alloc(0), Buffer.from([0])]
    for (const k of keys) expect(set.add(k)).toBe(true)
    for (const k of keys) expect(set.add(Buffer.from(k))).toBe(false)
    expect(set.size).toBe(keys.length)
  })

  it('stays exact across its growth (100k names, each found once)', () => {
    const set = new PathSet()
    const n = 100_000
    for (let i = 0; i < n; i++) expect(set.add(Buffer.from(`dir${i % 97}/file-${i}`))).toBe(true)
    expect(set.size).toBe(n)
    for (let i = 0; i < n; i += 7) expect(set.add(Buffer.from(`dir${i % 97}/file-${i}`))).toBe(false)
    expect(set.has(Buffer.from(`dir0/file-${n}`))).toBe(false)
    expect(set.size).toBe(n)
  })
})
