/** The charts and the summary they draw from: pure functions, on made-up samples. */
import { describe, expect, it } from 'vitest'
import { summarizeSamples, type Sample } from '../../src/bench/results.js'
import { esc, renderChart } from '../../src/bench/svg-chart.js'
import { formatTable } from '../../src/bench/table.js'
import { checkXml } from './check-xml.js'

const base = { maxRssMiB: 10, bytes: 1e6, entries: 100 } as const

function sample(s: Partial<Sample> & Pick<Sample, 'operation' | 'driver' | 'workload' | 'tool' | 'seconds'>): Sample {
  return { rep: 1, ...base, ...s }
}

const samples: Sample[] = [
  sample({ operation: 'register', driver: null, workload: 'a&b', tool: 'reference', seconds: 1 }),
  sample({ operation: 'register', driver: null, workload: 'a&b', tool: 'reference', seconds: 3 }),
  sample({ operation: 'register', driver: 'vfs', workload: 'a&b', tool: 'layerstore', seconds: 2 }),
  sample({ operation: 'register', driver: 'vfs', workload: 'a&b', tool: 'layerstore', seconds: 4 }),
  sample({ operation: 'register', driver: 'vfs', workload: 'a&b', tool: 'layerstore', seconds: 9 }),
  sample({ operation: 'register', driver: 'overlay:k=<v>', workload: 'a&b', tool: 'layerstore', seconds: 1 }),
  // RW references are per driver: vfs's must not count for overlay.
  sample({ operation: 'rw-mount', driver: 'vfs', workload: 'depth-1', tool: 'reference', seconds: 0.00001 }),
  sample({ operation: 'rw-mount', driver: 'vfs', workload: 'depth-1', tool: 'layerstore', seconds: 0.01 }),
  sample({ operation: 'rw-mount', driver: 'overlay', workload: 'depth-1', tool: 'reference', seconds: 0.001 }),
  sample({ operation: 'rw-mount', driver: 'overlay', workload: 'depth-1', tool: 'layerstore', seconds: 0.002 }),
]

describe('summarizeSamples', () => {
  const rows = summarizeSamples(samples, { register: 'tar -x', 'rw-mount': 'driver' })

  it('gives median, min, max and the ratio of medians to the reference', () => {
    const vfs = rows.find((r) => r.operation === 'register' && r.driver === 'vfs')
    expect(vfs?.seconds).toEqual({ n: 3, median: 4, min: 2, max: 9 })
    expect(vfs?.referenceSeconds?.median).toBe(2)
    expect(vfs?.ratio).toBe(2)
    expect(vfs?.mbPerSecond).toBeCloseTo(0.25)
    expect(vfs?.entriesPerSecond).toBe(25)
    expect(vfs?.reference).toBe('tar -x')
  })

  it('reads a per-driver reference only against its own driver', () => {
    expect(rows.find((r) => r.operation === 'rw-mount' && r.driver === 'overlay')?.ratio).toBe(2)
    expect(rows.find((r) => r.operation === 'rw-mount' && r.driver === 'vfs')?.ratio).toBeCloseTo(1000)
  })

  it('orders rows by operation', () => {
    expect(rows.map((r) => r.operation)).toEqual(['register', 'register', 'rw-mount', 'rw-mount'])
  })

  it('prints one table line per row', () => {
    expect(formatTable(rows).trim().split('\n')).toHaveLength(2 + rows.length)
  })
})

describe('renderChart', () => {
  const rows = summarizeSamples(samples, { register: 'tar -x', 'rw-mount': 'driver' })

  it('is well-formed SVG with escaped labels, one bar per driver and a 1.0 line', () => {
    const svg = renderChart('register', rows)
    expect(checkXml(svg)).toBe('svg')
    expect(svg).toContain('a&amp;b')
    expect(svg).toContain('overlay:k=&lt;v&gt;')
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(2)
    expect(svg).toContain('1.0 = reference')
    expect(svg).not.toContain('log scale')
  })

  it('switches to a log axis when the ratios span more than 50×', () => {
    const svg = renderChart('rw-mount', rows)
    expect(checkXml(svg)).toBe('svg')
    expect(svg).toContain('log scale')
    expect(svg).toContain('1000×')
  })

  it('says so when nothing was measured', () => {
    const svg = renderChart('release', rows)
    expect(checkXml(svg)).toBe('svg')
    expect(svg).toContain('no measurements with a reference')
  })

  it('escapes the five XML specials it may meet', () => {
    expect(esc('<a href="x">&</a>')).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;')
  })
})
