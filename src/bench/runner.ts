/**
 * `runBench`: the whole driver benchmark as one call returning `results.json`'s document.
 *
 * Method (PEERS.md): every repetition gets fresh roots and fresh plain directories, and
 * nothing is deleted until every repetition's registers are done: on these journal-less ext4
 * roots, creating files within minutes of deleting many is several times slower (ext4's
 * inode allocator skips inodes freed recently, and checks each one it skips: `perf` shows
 * `recently_deleted` as most of `tar -x`'s time then). Each input is read
 * right before it is timed, after a `sync`, so that both we and the reference start with
 * a warm page cache and no writeback of the previous run; ours and the reference alternate,
 * their order rotated each repetition. Phases:
 *
 *   1. register   every repetition first, per workload: the reference (tar -x + sha256sum
 *                 into fresh dirs) and each driver's `register` in a child. The chain,
 *                 besides a `register` per layer, again on a fresh root with one
 *                 `registerChain` call (register-chain, read against the same reference run)
 *
 * then per repetition (these delete files):
 *
 *   1b. register-existing  the last layer of each workload again, present already, without
 *                 its diff ID (read and compared with the layer, not applied), beside
 *                 sha256sum of it
 *   2. rw         per driver, on its chain root: create / mount / unmount / remove of RW
 *                 layers at each depth, through the store, then through the bare driver
 *   3. changes    per workload step: a RW layer filled with the step's tar, its changes and
 *                 commit, beside find and tar -c | sha256sum | tar -x on the plain dir
 *   4. export     per workload step: `tarStream` read to the last byte, beside tar -c | cat
 *
 * and after all repetitions, 5. release of each chain (deleting it) beside rm -rf.
 */
import { stat } from 'node:fs/promises'
import createDebug from 'debug'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LAYERCTL_NODE_FLAGS } from '../cli/node-flags.js'
import type { DriverSpec } from './driver-spec.js'
import { BenchInterruptedError, BenchStepError } from './errors.js'
import { syncAll, timeCommand, warm } from './measure.js'
import type { ChildJob } from './bench-child.js'
import type { RWCycle } from './operations.js'
import { peerStatus } from './peers.js'
import { createEach, digest, extractAndDigest, gnuTarVersion, REFERENCE_NAMES, removeTrees, tarDigestExtract, walk } from './references.js'
import { describeMachine, layerstoreVersion, summarizeSamples, type BenchResults, type Operation, type Sample } from './results.js'
import { Scratch } from './scratch.js'
import { countEntries, type Workload, type WorkloadStep } from './workloads.js'

const debug = createDebug('layerstore:bench')

const CHILD = fileURLToPath(new URL('./bench-child.js', import.meta.url))

/** The depths of the RW operations: moby's limit is 125 image layers below a RW layer. */
export const DEFAULT_DEPTHS: readonly number[] = Object.freeze([1, 16, 64, 125])

/** The phases of a run (see the file comment), as `--only` names them. */
export const PHASES = Object.freeze(['register', 'rw', 'changes', 'export', 'release'] as const)

/** One phase of a run. */
export type Phase = (typeof PHASES)[number]

/** Options of {@link runBench}. */
export interface BenchOptions {
  readonly drivers: readonly DriverSpec[]
  /** Workloads in order; a workload named `chain` also feeds the RW and release operations. */
  readonly workloads: readonly Workload[]
  /** Repetitions (fresh roots each); medians are reported. */
  readonly reps: number
  /** Timed cycles of each RW operation per repetition and depth. */
  readonly cycles: number
  /** Chain depths for the RW operations (each at most the chain's length). */
  readonly depths: readonly number[]
  /** Where the scratch directory goes: on the filesystem a store would use. */
  readonly scratchParent: string
  /**
   * The phases to run besides register, which always runs (the others need its layers).
   * Default: all of {@link PHASES}.
   */
  readonly phases?: readonly Phase[]
  /** Report the peers' status (none is run yet: see peers.ts). */
  readonly peers?: boolean
  /** Progress lines (default: none). */
  readonly progress?: (line: string) => void
  /**
   * Called with the results before the scratch roots are deleted: deleting them can take
   * minutes (a filesystem mounted with `discard`), and a report should be on disk first.
   */
  readonly onResults?: (results: BenchResults) => Promise<void>
}

/**
 * Runs the suite (see the file comment) and resolves to its results. Everything it made is
 * unmounted and deleted before it settles, also after SIGINT/SIGTERM, when it rejects with
 * `BenchInterruptedError`. A failing step rejects with `BenchStepError`.
 */
export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const progress = options.progress ?? (() => undefined)
  const started = new Date().toISOString()
  const loadStart = loadavg()
  const scratch = await Scratch.create(options.scratchParent)
  const samples: Sample[] = []
  const skipped: { what: string; why: string }[] = []
  const { drivers, reps } = options
  const phases = new Set<Phase>(options.phases ?? PHASES)
  try {
    const facts = new Map<string, { bytes: number; entries: number }>()
    for (const step of options.workloads.flatMap((w) => w.steps)) {
      progress(`counting the members of ${step.name}`)
      let bytes = 0
      let entries = 0
      for (const l of step.layers) {
        bytes += (await stat(l.tar)).size
        entries += await countEntries(l.tar)
      }
      facts.set(step.name, { bytes, entries })
    }
    const chain = options.workloads.find((w) => w.name === 'chain')
    const chainLength = chain?.steps[0]?.layers.length ?? 0
    const depths = options.depths.filter((d) => d <= chainLength)
    if (!chain) {
      if (phases.has('rw') || phases.has('release')) skipped.push({ what: 'rw-*, release', why: 'they run on the chain workload, which was not selected (--workload chain)' })
    } else if (phases.has('rw')) {
      for (const d of options.depths.filter((x) => x > chainLength)) skipped.push({ what: `rw-* at depth ${d}`, why: `the chain has ${chainLength} layers` })
    }
    if (options.peers) for (const p of await peerStatus()) skipped.push({ what: p.name, why: p.why })

    const add = (s: Omit<Sample, 'rep'>, rep: number): void => void samples.push({ ...s, rep: rep + 1 })
    const check = (): void => {
      if (scratch.signal.aborted) throw scratch.signal.reason as BenchInterruptedError
    }
    const child = async (job: ChildJob): Promise<unknown> => {
      check()
      debug('child %s %s on %s', job.op, job.spec.label, job.root)
      // With layerctl's node flags: the child is what `layerctl register` would be.
      const run = await timeCommand([process.execPath, ...LAYERCTL_NODE_FLAGS, CHILD, JSON.stringify(job)], { keepStdout: true, signal: scratch.signal })
      return JSON.parse(run.stdout ?? 'null') as unknown
    }
    const prepare = async (tars: readonly string[]): Promise<void> => {
      check()
      await syncAll()
      for (const t of tars) await warm(t)
    }
    // plain[rep][step] = GNU tar's directories; roots[rep][driver][workload] = our root and chain IDs.
    const plain = new Map<string, string[]>()
    const roots = new Map<string, { root: string; chainIDs: Map<string, string[]> }>()
    const key = (...parts: (string | number)[]): string => parts.join('\0')

    for (let rep = 0; rep < reps; rep++) {
      const tools = rotate(['reference', ...drivers.map((d) => d.label)], rep)
      // 1. register
      for (const wl of options.workloads) {
        const operation: Operation = wl.name === 'chain' ? 'chain' : 'register'
        for (const tool of tools) {
          const spec = drivers.find((d) => d.label === tool)
          if (!spec) {
            for (const step of wl.steps) {
              progress(`rep ${rep + 1}/${reps} ${operation} ${step.name}: reference`)
              const dirs = await Promise.all(step.layers.map((l) => scratch.fresh(`gnu/r${rep}/${wl.name}/${l.id}`)))
              await prepare(step.layers.map((l) => l.tar))
              const run = await extractAndDigest(step.layers.map((l, i) => ({ tar: l.tar, dir: dirs[i] as string })), scratch.signal)
              add({ operation, driver: null, workload: step.name, tool: 'reference', seconds: run.seconds, maxRssMiB: run.maxRssMiB, ...facts.get(step.name)! }, rep)
              // GNU tar has one way to do it: the same run is register-chain's reference.
              if (operation === 'chain') add({ operation: 'register-chain', driver: null, workload: step.name, tool: 'reference', seconds: run.seconds, maxRssMiB: run.maxRssMiB, ...facts.get(step.name)! }, rep)
              plain.set(key(rep, step.name), dirs)
            }
            continue
          }
          progress(`rep ${rep + 1}/${reps} ${operation} ${wl.name}: ${tool}`)
          const root = await scratch.fresh(`${safe(tool)}/r${rep}/${wl.name}`)
          await prepare(wl.steps.flatMap((s) => s.layers.map((l) => l.tar)))
          const answer = (await child({ op: 'register', root, spec, parent: null, steps: wl.steps.map((s) => ({ name: s.name, tars: s.layers.map((l) => l.tar) })) })) as {
            steps: { name: string; seconds: number; chainIDs: string[]; maxRssMiB: number }[]
          }
          const chainIDs = new Map(answer.steps.map((s) => [s.name, s.chainIDs]))
          roots.set(key(rep, tool, wl.name), { root, chainIDs })
          for (const s of answer.steps) add({ operation, driver: tool, workload: s.name, tool: 'layerstore', seconds: s.seconds, maxRssMiB: s.maxRssMiB, ...facts.get(s.name)! }, rep)
          if (operation === 'chain') {
            // The same tars with one registerChain call, on a root of its own (the later phases use the first).
            progress(`rep ${rep + 1}/${reps} register-chain ${wl.name}: ${tool}`)
            const chainRoot = await scratch.fresh(`${safe(tool)}/r${rep}/${wl.name}-register-chain`)
            await prepare(wl.steps.flatMap((s) => s.layers.map((l) => l.tar)))
            const one = (await child({ op: 'register', root: chainRoot, spec, parent: null, chain: true, steps: wl.steps.map((s) => ({ name: s.name, tars: s.layers.map((l) => l.tar) })) })) as typeof answer
            for (const s of one.steps) add({ operation: 'register-chain', driver: tool, workload: s.name, tool: 'layerstore', seconds: s.seconds, maxRssMiB: s.maxRssMiB, ...facts.get(s.name)! }, rep)
          }
        }
      }
    }
    // The phases that delete files (a register of a present layer discards its copy; read-write
    // layers are removed) come after every repetition's registers: on ext4, creating files
    // within minutes of deleting many is several times slower (see the file comment).
    for (let rep = 0; rep < reps; rep++) {
      const tools = rotate(['reference', ...drivers.map((d) => d.label)], rep)
      // 1b. register-existing
      for (const wl of options.workloads) {
        const last = wl.steps.at(-1)?.layers.at(-1)
        if (!last || wl.name === 'chain') continue
        const name = lastStep(wl).name
        for (const tool of tools) {
          const spec = drivers.find((d) => d.label === tool)
          progress(`rep ${rep + 1}/${reps} register-existing ${name}: ${tool}`)
          await prepare([last.tar])
          if (!spec) {
            const run = await digest(last.tar, scratch.signal)
            add({ operation: 'register-existing', driver: null, workload: name, tool: 'reference', seconds: run.seconds, maxRssMiB: run.maxRssMiB, ...facts.get(name)! }, rep)
            continue
          }
          const r = roots.get(key(rep, tool, wl.name))!
          const all = [...r.chainIDs.values()].flat()
          const again = (await child({ op: 'register', root: r.root, spec, parent: all.at(-2) ?? null, steps: [{ name, tars: [last.tar] }] })) as {
            steps: { name: string; seconds: number; maxRssMiB: number }[]
          }
          const s = again.steps[0]
          if (!s) throw new BenchStepError('register-existing', 'the child answered no step')
          add({ operation: 'register-existing', driver: tool, workload: s.name, tool: 'layerstore', seconds: s.seconds, maxRssMiB: s.maxRssMiB, ...facts.get(s.name)! }, rep)
        }
      }
      // 2. rw
      if (chain && depths.length > 0 && phases.has('rw')) {
        for (const spec of rotate([...drivers], rep)) {
          const r = roots.get(key(rep, spec.label, 'chain'))
          const ids = r?.chainIDs.get('chain') ?? []
          progress(`rep ${rep + 1}/${reps} rw depths ${depths.join(',')}: ${spec.label}`)
          await prepare([])
          const answer = (await child({ op: 'rw', root: r!.root, spec, cycles: options.cycles, depths: depths.map((depth) => ({ depth, chainID: ids[depth - 1]! })) })) as {
            depths: { depth: number; store: RWCycle[]; driver: RWCycle[] }[]
            maxRssMiB: number
          }
          for (const d of answer.depths) {
            for (const [tool, cycles] of [['layerstore', d.store], ['reference', d.driver]] as const) {
              for (const c of cycles) {
                for (const op of ['create', 'mount', 'unmount', 'remove'] as const) {
                  add({ operation: `rw-${op}`, driver: spec.label, workload: `depth-${d.depth}`, tool, seconds: c[op], maxRssMiB: tool === 'layerstore' ? answer.maxRssMiB : null, bytes: null, entries: null }, rep)
                }
              }
            }
          }
        }
      }
      // 3. changes and commit, 4. export
      // On each workload's first step only: a later step holds whiteouts, which GNU tar would
      // extract into the RW layer as plain .wh. files.
      const steps = phases.has('changes') ? options.workloads.filter((w) => w !== chain).flatMap((w) => w.steps.slice(0, 1)) : []
      for (const step of steps) {
        const tar = step.layers[0]?.tar
        if (!tar || step.layers.length !== 1) continue
        for (const tool of tools) {
          const spec = drivers.find((d) => d.label === tool)
          progress(`rep ${rep + 1}/${reps} changes+commit ${step.name}: ${tool}`)
          const facts1 = facts.get(step.name)!
          if (!spec) {
            const dir = plain.get(key(rep, step.name))?.[0]
            if (!dir) continue
            await prepare([])
            const w = await walk(dir, scratch.signal)
            add({ operation: 'changes', driver: null, workload: step.name, tool: 'reference', seconds: w.seconds, maxRssMiB: w.maxRssMiB, bytes: null, entries: facts1.entries }, rep)
            const into = await scratch.fresh(`gnu/r${rep}/commit-${step.name}`)
            await prepare([])
            const c = await tarDigestExtract(dir, join(scratch.dir, `gnu/r${rep}/commit-${step.name}.tar`), into, scratch.signal)
            add({ operation: 'commit', driver: null, workload: step.name, tool: 'reference', seconds: c.seconds, maxRssMiB: c.maxRssMiB, ...facts1 }, rep)
            continue
          }
          const root = await scratch.fresh(`${safe(tool)}/r${rep}/changes-${step.name}`)
          await prepare([tar])
          const a = (await child({ op: 'changes', root, spec, tar, name: `bench-changes-${step.name}` })) as { changesSeconds: number; changes: number; commitSeconds: number; maxRssMiB: number }
          add({ operation: 'changes', driver: tool, workload: step.name, tool: 'layerstore', seconds: a.changesSeconds, maxRssMiB: a.maxRssMiB, bytes: null, entries: a.changes }, rep)
          add({ operation: 'commit', driver: tool, workload: step.name, tool: 'layerstore', seconds: a.commitSeconds, maxRssMiB: a.maxRssMiB, ...facts1 }, rep)
        }
      }
      for (const wl of phases.has('export') ? options.workloads : []) {
        for (const tool of tools) {
          const spec = drivers.find((d) => d.label === tool)
          for (const step of wl.steps) {
            progress(`rep ${rep + 1}/${reps} export ${step.name}: ${tool}`)
            await prepare([])
            if (!spec) {
              const run = await createEach(plain.get(key(rep, step.name)) ?? [], scratch.signal)
              add({ operation: 'export', driver: null, workload: step.name, tool: 'reference', seconds: run.seconds, maxRssMiB: run.maxRssMiB, ...facts.get(step.name)! }, rep)
              continue
            }
            const r = roots.get(key(rep, tool, wl.name))!
            const a = (await child({ op: 'export', root: r.root, spec, steps: [{ name: step.name, chainIDs: r.chainIDs.get(step.name) ?? [] }] })) as { steps: { name: string; seconds: number; bytes: number; maxRssMiB: number }[] }
            const s = a.steps[0]!
            add({ operation: 'export', driver: tool, workload: step.name, tool: 'layerstore', seconds: s.seconds, maxRssMiB: s.maxRssMiB, bytes: s.bytes, entries: facts.get(step.name)!.entries }, rep)
          }
        }
      }
    }
    // 5. release: deletions last, after every other timed run.
    if (chain && phases.has('release')) {
      for (let rep = 0; rep < reps; rep++) {
        for (const tool of rotate(['reference', ...drivers.map((d) => d.label)], rep)) {
          const spec = drivers.find((d) => d.label === tool)
          progress(`rep ${rep + 1}/${reps} release chain: ${tool}`)
          await prepare([])
          if (!spec) {
            const run = await removeTrees(plain.get(key(rep, 'chain')) ?? [], scratch.signal)
            add({ operation: 'release', driver: null, workload: 'chain', tool: 'reference', seconds: run.seconds, maxRssMiB: run.maxRssMiB, bytes: null, entries: chainLength }, rep)
            continue
          }
          const r = roots.get(key(rep, tool, 'chain'))!
          const ids = r.chainIDs.get('chain') ?? []
          if (ids.length === 0) continue
          const a = (await child({ op: 'release', root: r.root, spec, chain: ids })) as { seconds: number; deleted: number; maxRssMiB: number }
          add({ operation: 'release', driver: tool, workload: 'chain', tool: 'layerstore', seconds: a.seconds, maxRssMiB: a.maxRssMiB, bytes: null, entries: a.deleted }, rep)
        }
      }
    }
    const results = await collectResults()
    await options.onResults?.(results)
    return results
  } catch (err) {
    // A killed child fails with its exit status; what the caller must know is the signal.
    throw scratch.signal.aborted ? (scratch.signal.reason as BenchInterruptedError) : err
  } finally {
    progress(`cleanup: unmounting and deleting ${scratch.dir}`)
    await scratch.cleanup()
  }

  async function collectResults(): Promise<BenchResults> {
    const references: Partial<Record<Operation, string>> = {
      ...REFERENCE_NAMES,
      'rw-create': REFERENCE_NAMES.rw,
      'rw-mount': REFERENCE_NAMES.rw,
      'rw-unmount': REFERENCE_NAMES.rw,
      'rw-remove': REFERENCE_NAMES.rw,
    }
    return {
      schema: 'layerstore-bench/1',
      started,
      finished: new Date().toISOString(),
      machine: await describeMachine(options.scratchParent, loadStart),
      versions: { node: process.version, layerstore: await layerstoreVersion(), gnuTar: await gnuTarVersion() },
      options: {
        drivers: drivers.map((d) => d.label),
        workloads: options.workloads.map((w) => w.name),
        reps,
        cycles: options.cycles,
        depths: [...options.depths],
        peers: options.peers ?? false,
      },
      skipped,
      samples,
      summary: summarizeSamples(samples, references),
    }
  }
}

function lastStep(wl: Workload): WorkloadStep {
  const s = wl.steps.at(-1)
  if (!s) throw new BenchStepError(wl.name, 'the workload has no step')
  return s
}

function rotate<T>(list: readonly T[], by: number): T[] {
  const k = by % list.length
  return [...list.slice(k), ...list.slice(0, k)]
}

function safe(label: string): string {
  return label.replace(/[^A-Za-z0-9_.-]+/g, '_')
}
