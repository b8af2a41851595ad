import { resolve } from 'node:path'
import {
  BenchInterruptedError,
  DEFAULT_DEPTHS,
  DEFAULT_WORKLOADS,
  PHASES,
  QUICK_WORKLOADS,
  WORKLOAD_NAMES,
  defaultDriverNames,
  findMakeWorkloads,
  formatTable,
  makeWorkloads,
  parseDriverSpec,
  resolveWorkload,
  runBench,
  tarWorkload,
  workloadDir,
  writeReport,
  type Phase,
  type Workload,
} from '../../bench/index.js'
import { UsageError, type Command, type CommandContext } from '../command.js'
import { EXIT } from '../exit-status.js'
import { emit } from '../store.js'

/** `layerctl bench`: the driver benchmark suite beside GNU tar, with a table, results.json and charts. */
export const benchCommand: Command = {
  name: 'bench',
  summary: 'benchmark graph drivers through the LayerStore beside GNU tar (table, results.json, SVG charts)',
  usage: 'bench [--driver NAME…] [--workload NAME…] [--tar FILE…] [--reps N] [--out DIR] [--quick] [--peers]',
  examples: [
    'layerctl bench --quick',
    'layerctl bench --driver overlay --driver vfs --workload debian --reps 3 --out bench-results',
    'layerctl bench --driver vfs --tar ./my-layer.tar --reps 1',
    'layerctl bench --driver-plugin ./my-driver.js --driver mydriver --quick',
  ],
  options: {
    driver: { type: 'string', multiple: true, arg: 'SPEC', help: 'a driver to measure, NAME or NAME:key=value,… (repeatable; default: every driver)' },
    workload: { type: 'string', multiple: true, arg: 'NAME', help: `${WORKLOAD_NAMES.join(', ')} (repeatable; default: ${DEFAULT_WORKLOADS.join(', ')})` },
    tar: { type: 'string', multiple: true, arg: 'FILE', help: 'a layer tar of your own as a workload (repeatable)' },
    reps: { type: 'string', arg: 'N', help: 'repetitions on fresh roots; medians reported (default 3, --quick 1)' },
    cycles: { type: 'string', arg: 'N', help: 'RW layer cycles per depth and repetition (default 10, --quick 3)' },
    depth: { type: 'string', multiple: true, arg: 'N', help: `chain depths for the RW operations (default ${DEFAULT_DEPTHS.join(',')})` },
    out: { type: 'string', arg: 'DIR', help: "where results.json, table.md and the charts go (default './bench-results')" },
    scratch: { type: 'string', arg: 'DIR', help: 'where the temporary roots go (default: the workloads directory)' },
    only: { type: 'string', multiple: true, arg: 'PHASE', help: `run only these phases: ${PHASES.join(', ')} (register always runs)` },
    quick: { type: 'boolean', help: `a short run: ${QUICK_WORKLOADS.join(' + ')}, 1 rep, 3 cycles` },
    peers: { type: 'boolean', help: 'report dockerd, podman, containerd (installed or not, and why they are not measured)' },
    'make-workloads': { type: 'boolean', help: 'build missing workloads with make-workloads.sh first (minutes; needs network)' },
  },
  async run(ctx) {
    const v = ctx.values
    if (ctx.positionals.length > 0) throw new UsageError(`unexpected argument '${ctx.positionals[0]}' (a layer tar goes after --tar)`)
    const quick = v.quick === true
    const reps = positive(v.reps, '--reps') ?? (quick ? 1 : 3)
    const cycles = positive(v.cycles, '--cycles') ?? (quick ? 3 : 10)
    const depths = list(v.depth).map((d) => positive(d, '--depth') as number)
    const tars = list(v.tar)
    const only = list(v.only)
    for (const p of only) if (!(PHASES as readonly string[]).includes(p)) throw new UsageError(`--only ${p}: not a phase (${PHASES.join(', ')})`)
    const dir = workloadDir()
    const names = list(v.workload)
    for (const n of names) if (!WORKLOAD_NAMES.includes(n)) throw new UsageError(`unknown workload '${n}' (known: ${WORKLOAD_NAMES.join(', ')}; or --tar FILE)`)
    const chosen = names.length > 0 ? names : tars.length > 0 ? [] : [...(quick ? QUICK_WORKLOADS : DEFAULT_WORKLOADS)]
    const plugins = list(v['driver-plugin'])
    // Not split on commas: a driver spec's options are comma-separated.
    const driverArgs = Array.isArray(v.driver) ? v.driver : typeof v.driver === 'string' ? [v.driver] : []
    const specs = (driverArgs.length > 0 ? driverArgs : await defaultDriverNames(plugins)).map((s) => parseDriverSpec(s, plugins))
    if (process.getuid?.() !== 0) {
      ctx.stderr.write('layerctl bench: needs root: the drivers mount (overlay, bind) and restore owners, as GNU tar does beside them\n')
      return EXIT.failure
    }
    if (v['make-workloads'] === true && chosen.length > 0) {
      const script = await findMakeWorkloads()
      if (!script) throw new UsageError('--make-workloads: make-workloads.sh not found (set LAYERBENCH_MAKE to its path)')
      await makeWorkloads(script, dir)
    }
    const workloads: Workload[] = []
    for (const n of chosen) workloads.push(await resolveWorkload(n, dir))
    for (const t of tars) workloads.push(await tarWorkload(t))
    const out = resolve(typeof v.out === 'string' ? v.out : 'bench-results')
    const progress = ctx.quiet ? undefined : (line: string): void => void ctx.stderr.write(`bench: ${line}\n`)
    let results
    let files: Awaited<ReturnType<typeof writeReport>> | undefined
    try {
      results = await runBench({
        drivers: specs,
        workloads,
        reps,
        cycles,
        depths: depths.length > 0 ? depths : [...DEFAULT_DEPTHS],
        scratchParent: resolve(typeof v.scratch === 'string' ? v.scratch : chosen.length > 0 ? dir : out),
        peers: v.peers === true,
        ...(only.length > 0 ? { phases: only as Phase[] } : {}),
        ...(progress ? { progress } : {}),
        onResults: async (r) => {
          files = await writeReport(r, out)
          progress?.(`results written to ${out}`)
        },
      })
    } catch (err) {
      if (err instanceof BenchInterruptedError) {
        ctx.stderr.write(`layerctl bench: ${err.code}: ${err.message}; everything it made was removed\n`)
        return err.exitCode
      }
      throw err
    }
    // runBench hands its results to onResults before it returns: the report is written.
    const written = files!
    emit(ctx, { out, results: written.results, table: written.table, charts: written.charts, skipped: results.skipped, summary: results.summary }, () =>
      report(ctx, results.skipped, formatTable(results.summary), written.results, written.charts.length, out),
    )
    return EXIT.ok
  },
}

function report(ctx: CommandContext, skipped: readonly { what: string; why: string }[], table: string, results: string, charts: number, out: string): string[] {
  const lines = [table.trimEnd(), '', 'ratio: median seconds ÷ the reference\'s median in the same run (lower is better); MB/s and entries/s at the median']
  for (const s of skipped) lines.push(`skipped ${s.what}: ${s.why}`)
  if (!ctx.quiet) lines.push(`results: ${results}; ${charts} SVG charts in ${out}`)
  return lines
}

function list(value: string | boolean | string[] | undefined): string[] {
  if (!Array.isArray(value)) return typeof value === 'string' ? [value] : []
  // `--workload debian,chain` and `--depth 1,16` read as two values.
  return value.flatMap((x) => x.split(',')).filter((x) => x !== '')
}

function positive(value: string | boolean | string[] | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const text = Array.isArray(value) ? value.at(-1) : String(value)
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} ${String(text)}: expected a positive integer`)
  return n
}
