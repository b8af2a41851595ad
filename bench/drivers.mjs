#!/usr/bin/env node
// bench/drivers: the graph drivers side by side with GNU tar in the same run (issue 5):
// register-like applyDiff of debian then debian-app, of the 125-layer chain and of
// small-files; read-write create+mount at depths 1/16/64/125 and mount/unmount cycles
// (in-process, p50/p95); `diff` export read by a consumer; disk used per layer.
// Usage: node bench/drivers.mjs [--driver SPEC…] [--workload NAME…] [--reps N] [--cycles N]
//                               [--depth N…] [--quick] [--json FILE]
//   SPEC: a driver name, or NAME:key=value[,…] with driver options
//         (e.g. overlay:overlay.mount_api=mount-data). Default: every built-in driver.
//   NAME: debian (then debian-app), chain, small-files, big-files. Default: the first three.
//   --reps N     apply and export repetitions, medians reported (default 3; --quick 1)
//   --cycles N   timed cycles of each read-write loop (default 50; --quick 10)
// Needs root (mounts), the built package (`npx tsc -p tsconfig.build.json`) and the workloads
// of ../shared/bench/make-workloads.sh. See lib/driver-bench.mjs for what is timed how.
import { writeFileSync } from 'node:fs'
import { builtinDriverNames, parseDriverSpec } from './lib/driver-ops.mjs'
import { DEFAULT_DEPTHS, GNU_TAR, runDriverBench } from './lib/driver-bench.mjs'
import { DEFAULT_WORKLOADS, WORKLOAD_NAMES } from './lib/layer-workloads.mjs'
import { printTable } from './lib/measure.mjs'
import { cell } from './lib/stats.mjs'

const MiB = 1 << 20
// The goal for an in-process read-write create+mount at depth 125 on overlay.
const GOAL_MS = 10

const args = parseArgs(process.argv.slice(2))
if (process.getuid?.() !== 0) {
  console.error('bench/drivers needs root: the drivers mount (overlay, bind) and restore owners')
  process.exit(2)
}
let results
try {
  results = await runDriverBench({
    drivers: (args.driver ?? builtinDriverNames()).map(parseDriverSpec),
    workloads: args.workload ?? [...DEFAULT_WORKLOADS],
    reps: args.reps ?? (args.quick ? 1 : 3),
    cycles: args.cycles ?? (args.quick ? 10 : 50),
    depths: args.depth ?? [...DEFAULT_DEPTHS],
  })
} catch (err) {
  if (err?.code !== 'ERR_BENCH_INTERRUPTED') throw err
  process.exit(err.exitCode)
}
if (args.json) writeFileSync(args.json, `${JSON.stringify(results, null, 1)}\n`)
report(results)

function report({ meta, apply, disk, export: exported, rw }) {
  const load = (l) => l.map((x) => x.toFixed(2)).join(' ')
  console.log(`\n# bench/drivers: ${meta.drivers.join(', ')} beside ${meta.gnuTar || 'GNU tar'}`)
  console.log(`node ${meta.node}, kernel ${meta.kernel}; load average ${load(meta.loadavgStart)} at start, ${load(meta.loadavgEnd)} at end`)

  console.log(`\n## Register-like applyDiff, median of ${meta.reps}`)
  console.log('create + applyDiff of the tar-split disassembler\'s members, in a child process; wall seconds from the parent incl. process start and driver probe; in-proc: first create to last applyDiff; GNU tar: tar -x into fresh plain dirs, one process per layer (for the chain, started by one shell). debian-app goes on debian already in the home (vfs copies it and bind links it in create); GNU tar extracts it into an empty dir\n')
  printTable(
    ['workload', 'tool', 'seconds', 'in-proc s', 'ratio to GNU tar', 'MiB/s', 'entries/s', 'peak RSS MiB'],
    apply.map((r) => {
      const gnu = apply.find((g) => g.workload === r.workload && g.tool === GNU_TAR)
      return [
        r.workload,
        r.tool,
        cell(r.seconds, 3),
        cell(r.inProcessSeconds, 3),
        cell(gnu ? r.seconds / gnu.seconds : null, 2),
        cell(r.tarBytes / MiB / r.seconds, 0),
        cell(r.members === null ? null : r.members / r.seconds, 0),
        cell(r.maxRssMiB, 1),
      ]
    }),
  )

  if (rw.length) {
    console.log(`\n## Read-write layer on the chain, in-process, ${meta.cycles} cycles each (ms)`)
    console.log('create+mount: createReadWrite + get of a fresh RW layer on chain layer <depth>; then its put (first unmount); mount/unmount: get / put of one RW layer, repeated\n')
    printTable(
      ['driver', 'depth', 'create+mount p50', 'p95', 'first unmount p50', 'mount p50', 'p95', 'unmount p50', 'p95'],
      rw.map((r) => [
        r.tool,
        r.depth,
        cell(r.createMount.p50, 2),
        cell(r.createMount.p95, 2),
        cell(r.firstUnmount.p50, 2),
        cell(r.mount.p50, 2),
        cell(r.mount.p95, 2),
        cell(r.unmount.p50, 2),
        cell(r.unmount.p95, 2),
      ]),
    )
    for (const r of rw.filter((x) => x.tool.split(':')[0] === 'overlay' && x.depth === 125)) {
      const met = r.createMount.p50 <= GOAL_MS ? 'met' : 'NOT met'
      console.log(`\ngoal (${r.tool}): create+mount at depth 125 ≤ ${GOAL_MS} ms p50: ${met} (${r.createMount.p50.toFixed(2)} ms)`)
    }
  }

  console.log(`\n## Export: diff of each layer from its parent, median of ${meta.reps}`)
  console.log('driver.diff in a child process, stdout piped to the bench, which reads every byte; GNU tar: tar -c of its plain dirs, piped likewise; MiB/s of output\n')
  printTable(
    ['workload', 'tool', 'seconds', 'in-proc s', 'ratio to GNU tar', 'MiB/s', 'MiB out', 'peak RSS MiB'],
    exported.map((r) => {
      const gnu = exported.find((g) => g.workload === r.workload && g.tool === GNU_TAR)
      return [
        r.workload,
        r.tool,
        cell(r.seconds, 3),
        cell(r.inProcessSeconds, 3),
        cell(gnu ? r.seconds / gnu.seconds : null, 2),
        cell(r.bytesOut / MiB / r.seconds, 0),
        cell(r.bytesOut / MiB, 1),
        cell(r.maxRssMiB, 1),
      ]
    }),
  )

  console.log('\n## Disk used after apply (du -s -B1 of the driver home: allocated blocks, each inode once)\n')
  const names = meta.workloads
  const tarRow = ['(layer tars)', ...names.map((n) => perLayer(apply.filter((a) => a.tool === GNU_TAR && stepOf(n, a.workload)).reduce((s, a) => s + a.tarBytes, 0), n, disk))]
  printTable(
    ['tool', ...names.map(diskHeader)],
    [...disk.map((row) => [row.tool, ...names.map((n) => perLayer(row[n]?.bytes, n, disk))]), tarRow],
  )
}

function diskHeader(workload) {
  return workload === 'chain' ? 'chain KiB/layer' : workload === 'debian' ? 'debian + debian-app MiB' : `${workload} MiB`
}

function perLayer(bytes, workload, disk) {
  if (bytes === undefined) return '-'
  if (workload !== 'chain') return cell(bytes / MiB, 1)
  const layers = disk.find((r) => r.chain)?.chain.layers ?? 125
  return cell(bytes / 1024 / layers, 1)
}

// The apply steps that make up a workload (debian is debian + debian-app).
function stepOf(workload, step) {
  return workload === 'debian' ? step === 'debian' || step === 'debian-app' : step === workload
}

function parseArgs(argv) {
  const out = {}
  const lists = { '--driver': 'driver', '--workload': 'workload', '--depth': 'depth' }
  const numbers = { '--reps': 'reps', '--cycles': 'cycles' }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--quick') out.quick = true
    else if (a === '--json') out.json = need(argv, ++i, a)
    else if (a in numbers) out[numbers[a]] = positive(need(argv, ++i, a), a)
    else if (a in lists) {
      const key = lists[a]
      out[key] ??= []
      while (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[key].push(argv[++i])
      if (out[key].length === 0) usage(`${a} needs at least one value`)
    } else if (a === '--help' || a === '-h') usage()
    else usage(`unknown argument ${a}`)
  }
  if (out.depth) out.depth = out.depth.map((d) => positive(d, '--depth'))
  for (const w of out.workload ?? []) if (!WORKLOAD_NAMES.includes(w)) usage(`unknown workload ${w} (known: ${WORKLOAD_NAMES.join(', ')})`)
  for (const d of out.depth ?? []) if (d > 125) usage(`--depth ${d}: the chain has 125 layers`)
  return out
}

function need(argv, i, flag) {
  if (i >= argv.length) usage(`${flag} needs a value`)
  return argv[i]
}

function positive(text, flag) {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1) usage(`${flag} ${text}: expected a positive integer`)
  return n
}

function usage(problem) {
  if (problem) console.error(`bench/drivers: ${problem}`)
  console.error('usage: node bench/drivers.mjs [--driver SPEC…] [--workload NAME…] [--reps N] [--cycles N] [--depth N…] [--quick] [--json FILE]')
  process.exit(problem ? 2 : 0)
}
