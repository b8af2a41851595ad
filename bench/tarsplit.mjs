#!/usr/bin/env node
// bench/tarsplit: disassembly throughput and peak RSS of `layerctl tar-split disasm`, side by
// side in the same run with Go's `tar-split disasm --no-stdout` and `sha256sum`.
// Usage: node bench/tarsplit.mjs [--reps N] [WORKLOAD…]   (after `npm install`)
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gunzipSync } from 'node:zlib'
import { median, printTable, timeCommand, warm, workload } from './lib/measure.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const repsAt = args.indexOf('--reps')
const reps = repsAt >= 0 ? Number(args.splice(repsAt, 2)[1]) : 3
const names = args.length > 0 ? args : ['big-files.tar', 'small-files.tar']

const haveGo = (() => {
  try {
    execFileSync('tar-split', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
if (!haveGo) console.error("Go's tar-split is not installed (apt-get install tar-split): its column is left out")

const scratch = mkdtempSync(join(tmpdir(), 'bench-tarsplit-'))
const rows = []
try {
  for (const name of names) {
    const tar = workload(name)
    const mib = statSync(tar).size / (1 << 20)
    const tools = {
      layerctl: (out) => [process.execPath, join(root, 'bin/layerctl'), 'tar-split', 'disasm', '--compat', '0.11', '--no-stdout', '-o', out, tar],
      ...(haveGo ? { 'go tar-split': (out) => ['tar-split', 'disasm', '--no-stdout', '--output', out, tar] } : {}),
      sha256sum: () => ['sha256sum', tar],
    }
    const samples = Object.fromEntries(Object.keys(tools).map((k) => [k, []]))
    for (let rep = 0; rep < reps; rep++) {
      // Interleave the tools so that drift on a noisy machine hits them alike.
      for (const [tool, argv] of Object.entries(tools)) {
        warm(tar)
        samples[tool].push(await timeCommand(argv(join(scratch, `${tool.replace(' ', '-')}.json.gz`))))
      }
    }
    for (const [tool, runs] of Object.entries(samples)) {
      const s = median(runs.map((r) => r.seconds))
      rows.push([name, tool, s.toFixed(3), (mib / s).toFixed(0), Math.max(...runs.map((r) => r.maxRssMiB)).toFixed(1)])
    }
    if (haveGo) {
      const ours = gunzipSync(readFileSync(join(scratch, 'layerctl.json.gz')))
      const go = gunzipSync(readFileSync(join(scratch, 'go-tar-split.json.gz')))
      console.error(`${name}: metadata ${ours.equals(go) ? 'identical to' : 'DIFFERENT from'} Go's`)
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
console.log(`\ntar-split disassembly, median of ${reps} (wall seconds from the parent, peak RSS from GNU time)\n`)
printTable(['workload', 'tool', 'seconds', 'MiB/s', 'peak RSS MiB'], rows)
