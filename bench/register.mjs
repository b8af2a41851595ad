#!/usr/bin/env node
// bench/register: LayerStore.register (one streaming pass: sha256 + tar-split + the driver's
// applyDiff) per driver, side by side in the same run with `tar -x` + `sha256sum` of the same
// input, the floor of "extract and digest". debian-app is registered on top of debian, the
// chain's 125 layers each on the previous.
// Usage: node bench/register.mjs [--reps N] [--driver NAME…] [--workload NAME…]
//   (after `npm install`; workloads from ../shared/bench/make-workloads.sh)
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execFileSync } from 'node:child_process'
import { builtinDriverNames } from './lib/driver-ops.mjs'
import { layerWorkload } from './lib/layer-workloads.mjs'
import { median, printTable, timeCommand, warm, WORKLOADS } from './lib/measure.mjs'
import { makeScratch } from './lib/scratch.mjs'

const RUNNER = join(dirname(fileURLToPath(import.meta.url)), 'lib/register-runner.mjs')

const args = process.argv.slice(2)
const take = (flag) => {
  const out = []
  for (let i = args.indexOf(flag); i >= 0; i = args.indexOf(flag)) out.push(args.splice(i, 2)[1])
  return out
}
const reps = Number(take('--reps')[0] ?? 3)
const driverNames = take('--driver')
const workloadNames = take('--workload')
const drivers = driverNames.length > 0 ? driverNames : builtinDriverNames()
const workloads = (workloadNames.length > 0 ? workloadNames : ['debian', 'small-files', 'big-files', 'chain']).map(layerWorkload)

/** `tar -x` of each layer into `dir`, then `sha256sum` of each, in one shell. */
function gnuExtractAndDigest(tars, dir) {
  const loop = 'd=$1; shift; for t; do tar -x --numeric-owner -C "$d" -f "$t" || exit 1; sha256sum "$t" >/dev/null || exit 1; done'
  return timeCommand(['sh', '-c', loop, 'sh', dir, ...tars])
}

/** Registers `tars` on `parent` in a child; resolves to the timing and the top chain ID. */
async function registerInChild(root, driver, parent, tars) {
  const resultDir = mkdtempSync(join(tmpdir(), 'bench-register-'))
  try {
    const result = join(resultDir, 'result.json')
    const run = await timeCommand([process.execPath, RUNNER, JSON.stringify({ root, driver, parent, tars }), result])
    return { ...run, ...JSON.parse(readFileSync(result, 'utf8')) }
  } finally {
    rmSync(resultDir, { recursive: true, force: true })
  }
}

const scratch = makeScratch(WORKLOADS, '.bench-register-')
const rows = []
try {
  const samples = new Map() // `${step}\0${tool}` → runs
  const record = (step, tool, run) => {
    const key = `${step}\0${tool}`
    if (!samples.has(key)) samples.set(key, [])
    samples.get(key).push(run)
  }
  for (let rep = 0; rep < reps; rep++) {
    for (const w of workloads) {
      // Each tool gets fresh roots; nothing is deleted until the end (PEERS.md).
      const roots = Object.fromEntries(drivers.map((d) => [d, scratch.fresh(`${d}-${w.name}-${rep}`)]))
      const plain = scratch.fresh(`gnu-${w.name}-${rep}`)
      const parents = Object.fromEntries(drivers.map((d) => [d, null]))
      for (const step of w.steps) {
        const tars = step.layers.map((l) => l.tar)
        const tools = ['GNU tar -x + sha256sum', ...drivers]
        // Rotate the order each rep so drift on a noisy machine hits every tool alike.
        const order = tools.map((_, i) => tools[(i + rep) % tools.length])
        for (const tool of order) {
          for (const t of tars) warm(t)
          execFileSync('sync')
          if (tool === tools[0]) {
            record(step.name, tool, await gnuExtractAndDigest(tars, plain))
          } else {
            const run = await registerInChild(roots[tool], tool, parents[tool], tars)
            parents[tool] = run.top
            record(step.name, tool, run)
          }
          process.stderr.write(`rep ${rep + 1}/${reps} ${step.name} ${tool} done\n`)
        }
      }
    }
  }
  for (const w of workloads) {
    for (const step of w.steps) {
      const ref = median(samples.get(`${step.name}\0GNU tar -x + sha256sum`).map((r) => r.seconds))
      for (const tool of ['GNU tar -x + sha256sum', ...drivers]) {
        const runs = samples.get(`${step.name}\0${tool}`)
        const s = median(runs.map((r) => r.seconds))
        rows.push([step.name, tool, s.toFixed(3), `${(s / ref).toFixed(2)}×`, Math.max(...runs.map((r) => r.maxRssMiB)).toFixed(1)])
      }
    }
  }
} finally {
  await scratch.cleanup()
  scratch.dispose()
}
console.log(`\nregister, median of ${reps} fresh roots (load average ${loadavg().map((l) => l.toFixed(1)).join(' ')})\n`)
printTable(['layer', 'tool', 'seconds', 'ratio to GNU', 'peak RSS MiB'], rows)
