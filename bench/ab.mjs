#!/usr/bin/env node
// bench/ab: one change against another. Registers a workload as one chain (registerChain)
// with each given build of the package, beside GNU tar -x + sha256sum of the same tars, in
// the same run: interleaved, order rotated every repetition, each of ours in a fresh node
// process (bench/lib/ab-runner.mjs).
//
//   node bench/ab.mjs [--build NAME=DIST…] [--driver NAME] [--workload NAME] [--reps N] [--fresh-fs GIB]
//
//   --build     a built package (`npx tsc -p tsconfig.build.json --outDir DIR` in a worktree
//               of the commit to compare); default: this checkout's dist/
//   --workload  a tar, or a directory of tars registered in name order (default: chain)
//   --fresh-fs  run on a new journal-less ext4 of that many GiB (a loop file beside the
//               workloads, removed at the end; needs root). On a disk that saw many files
//               deleted in the last minutes, ext4 creates files several times slower
//               (`recently_deleted` in its inode allocator) and paired runs vary 2-5x; on a
//               fresh filesystem they vary by a few per cent.
//
// Nothing is deleted until every run is done.
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, printTable, warm, workload, WORKLOADS } from './lib/measure.mjs'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..')
const runner = join(repo, 'bench/lib/ab-runner.mjs')
// What layerctl runs node with (src/cli/node-flags.ts).
const NODE_FLAGS = ['--max-semi-space-size=2']

const args = process.argv.slice(2)
const take = (flag) => {
  const out = []
  for (let i = args.indexOf(flag); i >= 0; i = args.indexOf(flag)) out.push(args.splice(i, 2)[1])
  return out
}
const builds = take('--build').map((b) => b.split('='))
if (builds.length === 0) builds.push(['current', join(repo, 'dist')])
const driver = take('--driver').at(-1) ?? 'overlay'
const reps = Number(take('--reps').at(-1) ?? 5)
const freshGiB = take('--fresh-fs').at(-1)
const source = workload(take('--workload').at(-1) ?? 'chain')
if (args.length > 0) {
  console.error(`unknown arguments: ${args.join(' ')}`)
  process.exit(2)
}
const tars = statSync(source).isDirectory()
  ? readdirSync(source).filter((n) => n.endsWith('.tar')).sort().map((n) => join(source, n))
  : [source]

const run = (argv, what) => {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${what} failed: ${r.stderr}`)
  return r.stdout
}

let image = null
let mountPoint = null
let scratch = null
const samples = Object.fromEntries(['GNU tar -x + sha256sum', ...builds.map(([name]) => name)].map((k) => [k, []]))
try {
  if (freshGiB !== undefined) {
    image = join(WORKLOADS, `.bench-ab-${process.pid}.img`)
    mountPoint = mkdtempSync(join(WORKLOADS, '.bench-ab-mnt-'))
    run(['truncate', '-s', `${freshGiB}G`, image], 'truncate')
    run(['mkfs.ext4', '-q', '-F', '-O', '^has_journal', '-E', 'lazy_itable_init=0,nodiscard', image], 'mkfs.ext4')
    run(['mount', '-o', 'loop', image, mountPoint], 'mount')
  }
  scratch = mkdtempSync(join(mountPoint ?? WORKLOADS, '.bench-ab-'))
  let n = 0
  const fresh = () => {
    const dir = join(scratch, String(n++))
    mkdirSync(dir)
    return dir
  }
  for (let rep = 0; rep < reps; rep++) {
    const order = Object.keys(samples)
    for (let i = 0; i < rep % order.length; i++) order.push(order.shift())
    for (const tool of order) {
      spawnSync('sync')
      for (const tar of tars) warm(tar)
      const build = builds.find(([name]) => name === tool)
      if (!build) {
        const pairs = tars.flatMap((tar) => [fresh(), tar])
        const started = performance.now()
        run(['sh', '-c', 'while [ $# -gt 0 ]; do tar -x --numeric-owner -C "$1" -f "$2" && sha256sum "$2" >/dev/null || exit 1; shift 2; done', 'sh', ...pairs], 'GNU tar')
        samples[tool].push({ seconds: (performance.now() - started) / 1000, maxRssMiB: null })
        continue
      }
      const out = run([process.execPath, ...NODE_FLAGS, runner, build[1], driver, fresh(), ...tars], tool)
      samples[tool].push(JSON.parse(out.trim().split('\n').at(-1)))
    }
  }
} finally {
  if (scratch !== null) rmSync(scratch, { recursive: true, force: true })
  if (mountPoint !== null) {
    spawnSync('umount', [mountPoint])
    rmSync(mountPoint, { recursive: true, force: true })
  }
  if (image !== null) rmSync(image, { force: true })
}
const reference = median(samples['GNU tar -x + sha256sum'].map((s) => s.seconds))
const rows = Object.entries(samples).map(([tool, runs]) => {
  const s = median(runs.map((r) => r.seconds))
  const rss = runs.some((r) => r.maxRssMiB !== null) ? Math.max(...runs.map((r) => r.maxRssMiB)).toFixed(1) : '-'
  return [tool, s.toFixed(3), (s / reference).toFixed(2), runs.map((r) => r.seconds.toFixed(2)).join(' '), rss]
})
console.log(`\n${tars.length} tar(s) from ${source} on ${driver}, one registerChain per fresh process; median of ${reps}${freshGiB ? `, on a fresh ${freshGiB} GiB ext4` : ''}\n`)
printTable(['tool', 'seconds', 'ratio to GNU tar', 'runs', 'peak RSS MiB'], rows)
