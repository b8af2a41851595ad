#!/usr/bin/env node
// bench/apply: applying a layer tar to a directory (src/archive applyTar), side by side in the
// same run with GNU `tar -x --numeric-owner`, and with our tar parser alone (the tar-split
// disassembler as applyTar runs it: no sink, so no CRCs).
// Usage: node bench/apply.mjs [--reps N] [WORKLOAD…]   (default: debian, small-files, big-files)
//
// Every run extracts into a fresh directory of one scratch dir under the workloads' filesystem;
// nothing is deleted until all timings are done (see ../shared/bench/PEERS.md: on these
// journal-less ext4 roots, creating files right after deleting many is several times slower).
// Our apply runs in a child process over the built dist/ (bench/lib/apply-runner.mjs), so that
// GNU time reports its own peak RSS.
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, printTable, timeCommand, warm, workload, WORKLOADS } from './lib/measure.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const repsAt = args.indexOf('--reps')
const reps = repsAt >= 0 ? Number(args.splice(repsAt, 2)[1]) : 3
const names = args.length > 0 ? args : ['debian.tar', 'small-files.tar', 'big-files.tar']

const runner = join(root, 'bench/lib/apply-runner.mjs')

const scratch = mkdtempSync(join(WORKLOADS, '.bench-apply-'))
const rows = []
let n = 0
const fresh = () => {
  const dir = join(scratch, String(n++))
  mkdirSync(dir)
  return dir
}
try {
  for (const name of names) {
    const tar = workload(name)
    const mib = statSync(tar).size / (1 << 20)
    const tools = {
      'GNU tar -x': () => ['tar', '-x', '--numeric-owner', '-C', fresh(), '-f', tar],
      'layerstore applyTar': () => [process.execPath, runner, 'apply', tar, fresh()],
      '(our parser alone)': () => [process.execPath, runner, 'parse', tar, ''],
    }
    const samples = Object.fromEntries(Object.keys(tools).map((k) => [k, []]))
    for (let rep = 0; rep < reps; rep++) {
      // Interleaved, so that drift on a noisy machine hits every tool alike.
      for (const [tool, argv] of Object.entries(tools)) {
        warm(tar)
        samples[tool].push(await timeCommand(argv()))
      }
    }
    const gnu = median(samples['GNU tar -x'].map((r) => r.seconds))
    for (const [tool, runs] of Object.entries(samples)) {
      const s = median(runs.map((r) => r.seconds))
      rows.push([name, tool, s.toFixed(3), (s / gnu).toFixed(2), (mib / s).toFixed(0), Math.max(...runs.map((r) => r.maxRssMiB)).toFixed(1)])
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
console.log(`\nApply a layer tar, median of ${reps} (wall seconds from the parent incl. process start, peak RSS from GNU time)\n`)
printTable(['workload', 'tool', 'seconds', 'ratio to GNU tar', 'MiB/s', 'peak RSS MiB'], rows)
