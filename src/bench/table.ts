/** The terminal table of a run: one line per operation × driver × workload. */
import type { SummaryRow } from './results.js'

/** Formats the summary as an aligned Markdown table (what the README pastes). */
export function formatTable(rows: readonly SummaryRow[]): string {
  const peers = [...new Set(rows.flatMap((r) => Object.keys(r.peers)))]
  const header = ['operation', 'driver', 'workload', 'median s', 'min s', 'max s', 'reference s', 'ratio', 'MB/s', 'entries/s', 'peak RSS MiB', ...peers.map((p) => `${p} s`)]
  const body = rows.map((r) => [
    r.operation,
    r.driver,
    r.workload,
    seconds(r.seconds.median),
    seconds(r.seconds.min),
    seconds(r.seconds.max),
    seconds(r.referenceSeconds?.median),
    r.ratio === null ? '-' : `${r.ratio.toFixed(2)}×`,
    fixed(r.mbPerSecond, r.mbPerSecond !== null && r.mbPerSecond < 10 ? 2 : 0),
    fixed(r.entriesPerSecond, 0),
    fixed(r.maxRssMiB, 0),
    ...peers.map((p) => seconds(r.peers[p])),
  ])
  const cells = [header, ...body]
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)))
  const line = (row: readonly string[]): string =>
    `| ${row.map((c, i) => (i < 3 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`
  const rule = `|${widths.map((w, i) => (i < 3 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`
  return [line(header), rule, ...body.map(line)].join('\n') + '\n'
}

// Milliseconds get 4 decimals, whole seconds 3: RW operations take well under a millisecond.
function seconds(value: number | null | undefined): string {
  if (value == null || !Number.isFinite(value)) return '-'
  return value < 0.1 ? value.toFixed(4) : value.toFixed(3)
}

function fixed(value: number | null | undefined, digits: number): string {
  return value == null || !Number.isFinite(value) ? '-' : value.toFixed(digits)
}
