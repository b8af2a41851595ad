// Summaries of timing samples: percentiles for the in-process loops (measure.mjs has median).

/**
 * The p-th percentile (0–100) of `values`, nearest-rank on the sorted samples (no
 * interpolation: a p95 of 50 samples is the 48th smallest, a value that was really measured).
 * NaN for no samples.
 * @param {readonly number[]} values
 * @param {number} p
 * @returns {number}
 */
export function percentile(values, p) {
  if (values.length === 0) return Number.NaN
  const s = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * s.length)
  return s[Math.min(s.length, Math.max(1, rank)) - 1]
}

/**
 * p50, p95 and extremes of samples in milliseconds, for the tables and results.json.
 * @param {readonly number[]} ms
 * @returns {{ n: number, p50: number, p95: number, min: number, max: number }}
 */
export function summarize(ms) {
  return {
    n: ms.length,
    p50: percentile(ms, 50),
    p95: percentile(ms, 95),
    min: ms.length ? Math.min(...ms) : Number.NaN,
    max: ms.length ? Math.max(...ms) : Number.NaN,
  }
}

/**
 * Milliseconds elapsed since `start` (a `process.hrtime.bigint()`).
 * @param {bigint} start
 * @returns {number}
 */
export function msSince(start) {
  return Number(process.hrtime.bigint() - start) / 1e6
}

/**
 * A number for a table cell with `digits` decimals, or '-' when it is missing or not finite.
 * @param {number | null | undefined} value
 * @param {number} digits
 * @returns {string}
 */
export function cell(value, digits) {
  return value === null || value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits)
}
