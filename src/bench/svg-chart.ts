/**
 * One chart per operation as a hand-written SVG (no dependency): workloads along the x axis,
 * one bar per driver in each group, the bar's height its median time over the reference's
 * (1.0 drawn as a dashed line: parity with GNU tar, or with the bare driver for RW layers),
 * on a log axis when the ratios span more than 50×. Lower is better. Each bar is labelled with its ratio and, in its tooltip, the seconds.
 */
import { OPERATION_TITLES, type Operation, type SummaryRow } from './results.js'

// A palette that stays distinct for colour-blind readers (Okabe–Ito).
const COLOURS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000']

const WIDTH = 760
const HEIGHT = 420
const MARGIN = { top: 64, right: 20, bottom: 70, left: 60 }

/** The SVG document of `operation`'s chart from the summary rows (others are ignored). */
export function renderChart(operation: Operation, rows: readonly SummaryRow[]): string {
  const mine = rows.filter((r) => r.operation === operation && r.ratio !== null)
  const drivers = [...new Set(mine.map((r) => r.driver))]
  const workloads = [...new Set(mine.map((r) => r.workload))]
  const reference = mine.find((r) => r.reference)?.reference ?? 'no reference'
  const values = mine.map((r) => r.ratio ?? 1)
  const scale = axis(values)
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const y = (v: number): number => MARGIN.top + plotH - scale.fraction(v) * plotH
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(`layerstore bench: ${operation}`)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(`${operation}: ${OPERATION_TITLES[operation]}`)}</text>`,
    `<text x="${WIDTH / 2}" y="40" text-anchor="middle" fill="#444">${esc(`median time ÷ reference (${reference}); lower is better${scale.log ? '; log scale' : ''}`)}</text>`,
  ]
  // Axis and grid.
  for (const tick of scale.ticks) {
    out.push(
      `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${f(y(tick))}" y2="${f(y(tick))}" stroke="#e5e5e5"/>`,
      `<text x="${MARGIN.left - 6}" y="${f(y(tick) + 4)}" text-anchor="end">${tick}×</text>`,
    )
  }
  out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#333"/>`)
  out.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH}" stroke="#333"/>`)
  if (mine.length === 0) {
    out.push(`<text x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle" fill="#888">no measurements with a reference</text>`)
  }
  const groupW = plotW / Math.max(1, workloads.length)
  const barW = Math.min(48, (groupW * 0.8) / Math.max(1, drivers.length))
  workloads.forEach((w, wi) => {
    const groupX = MARGIN.left + wi * groupW + (groupW - barW * drivers.length) / 2
    drivers.forEach((d, di) => {
      const row = mine.find((r) => r.workload === w && r.driver === d)
      if (!row || row.ratio === null) return
      const x = groupX + di * barW
      const h = MARGIN.top + plotH - y(row.ratio)
      const tip = `${d} ${w}: ${row.seconds.median.toPrecision(3)} s vs ${row.referenceSeconds?.median.toPrecision(3) ?? '-'} s (${row.ratio.toFixed(2)}×)`
      out.push(
        `<rect x="${f(x + 1)}" y="${f(y(row.ratio))}" width="${f(barW - 2)}" height="${f(Math.max(h, 0.5))}" fill="${colour(di)}"><title>${esc(tip)}</title></rect>`,
        `<text x="${f(x + barW / 2)}" y="${f(y(row.ratio) - 4)}" text-anchor="middle" font-size="10">${row.ratio >= 100 ? row.ratio.toFixed(0) : row.ratio.toFixed(2)}</text>`,
      )
    })
    out.push(`<text x="${f(MARGIN.left + wi * groupW + groupW / 2)}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${esc(w)}</text>`)
  })
  // Parity line last, so that it stays visible over the bars.
  out.push(
    `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${f(y(1))}" y2="${f(y(1))}" stroke="#c00" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    `<text x="${WIDTH - MARGIN.right - 2}" y="${f(y(1) - 4)}" text-anchor="end" fill="#c00">1.0 = reference</text>`,
  )
  // Legend.
  drivers.forEach((d, di) => {
    const x = MARGIN.left + di * 150
    const ly = HEIGHT - 22
    out.push(`<rect x="${x}" y="${ly - 10}" width="12" height="12" fill="${colour(di)}"/>`, `<text x="${x + 18}" y="${ly}">${esc(d)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}

/** Escapes text for SVG element content and attribute values. */
export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function colour(i: number): string {
  return COLOURS[i % COLOURS.length] ?? '#000000'
}

function f(n: number): string {
  return n.toFixed(1)
}

// 1, 2 or 5 times a power of ten, at least `v`.
function niceCeiling(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p
  return 10 * p
}

// A linear axis from 0, or a log axis by powers of ten when the ratios span more than 50×
// (a RW mount against a bare vfs `get`, which is a path lookup, can be 1000×).
function axis(values: readonly number[]): { log: boolean; ticks: number[]; fraction: (v: number) => number } {
  const max = Math.max(1, ...values)
  const min = Math.min(1, ...values.filter((v) => v > 0))
  if (max / min <= 50) {
    const top = niceCeiling(max * 1.1)
    const step = niceCeiling(top / 6)
    const ticks: number[] = []
    for (let t = 0; t <= top + 1e-9; t += step) ticks.push(Number(t.toPrecision(6)))
    return { log: false, ticks, fraction: (v) => v / top }
  }
  const lo = Math.floor(Math.log10(min))
  const hi = Math.ceil(Math.log10(max * 1.5))
  const ticks: number[] = []
  for (let e = lo; e <= hi; e++) ticks.push(Number((10 ** e).toPrecision(6)))
  return { log: true, ticks, fraction: (v) => (Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo) }
}
