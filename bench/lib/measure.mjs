// Measuring helpers shared by the benchmarks: wall time from the parent, peak RSS from GNU time.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, existsSync, openSync, readSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Where the workloads of ../shared/bench/make-workloads.sh live. */
export const WORKLOADS = process.env.LAYERBENCH_DIR ?? '/var/tmp/layerbench'

/** The path of a workload, or exits with how to build it. */
export function workload(name) {
  const path = join(WORKLOADS, name)
  if (!existsSync(path)) {
    console.error(`missing workload ${path}: build it with ../shared/bench/make-workloads.sh ${WORKLOADS}`)
    process.exit(2)
  }
  return path
}

/** Reads a file once so that it is in the page cache (these machines reclaim it proactively). */
export function warm(path) {
  const fd = openSync(path, 'r')
  const buf = Buffer.allocUnsafe(1 << 20)
  while (readSync(fd, buf, 0, buf.length, null) > 0);
  closeSync(fd)
}

/**
 * Runs argv once under /usr/bin/time; resolves to { seconds, maxRssMiB }. stdout goes to the
 * given file descriptor or is piped through a consumer that reads every byte (never /dev/null:
 * GNU tar skips reading file data when it sees /dev/null).
 */
export function timeCommand(argv, { stdin, cwd } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-time-'))
  const out = join(dir, 'time')
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const child = spawn('/usr/bin/time', ['-f', '%M', '-o', out, ...argv], {
      cwd,
      stdio: [stdin === undefined ? 'ignore' : openSync(stdin, 'r'), 'pipe', 'pipe'],
    })
    let bytesOut = 0
    let stderr = ''
    child.stdout.on('data', (c) => (bytesOut += c.length))
    child.stderr.on('data', (c) => (stderr += c))
    child.on('error', reject)
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      const maxRssKiB = Number(readFileSync(out, 'utf8').trim().split('\n').pop())
      rmSync(dir, { recursive: true, force: true })
      if (code !== 0) return reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr.slice(0, 500)}`))
      resolve({ seconds, maxRssMiB: maxRssKiB / 1024, bytesOut })
    })
  })
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Prints rows (arrays of cells) as an aligned Markdown table. */
export function printTable(header, rows) {
  const cells = [header, ...rows].map((r) => r.map(String))
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)))
  const line = (r) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`
  console.log(line(cells[0]))
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|')}|`)
  for (const r of cells.slice(1)) console.log(line(r))
}
