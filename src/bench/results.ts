/**
 * The shape of `results.json` and how its summary is computed from the samples. The file
 * keeps every sample, so that anyone can recompute the summary another way; the summary is
 * what the table and the charts show.
 */
import { readFile } from 'node:fs/promises'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ratio, summarize, type Summary } from './stats.js'

/** The operations, in report order. */
export const OPERATIONS = Object.freeze([
  'register',
  'register-existing',
  'chain',
  'register-chain',
  'rw-create',
  'rw-mount',
  'rw-unmount',
  'rw-remove',
  'changes',
  'commit',
  'export',
  'release',
] as const)

/** One operation the suite times. */
export type Operation = (typeof OPERATIONS)[number]

/** What each operation is, one line, for the table and the charts. */
export const OPERATION_TITLES: Readonly<Record<Operation, string>> = Object.freeze({
  register: 'register a layer (LayerStore.register: read once, sha256, tar-split, apply)',
  'register-existing': 'register a layer already present',
  chain: 'register the 125-layer chain, each layer on the previous',
  'register-chain': 'register the 125-layer chain with one registerChain call (one flush)',
  'rw-create': 'create a RW layer on the chain layer at each depth',
  'rw-mount': 'mount a RW layer',
  'rw-unmount': 'unmount a RW layer',
  'rw-remove': 'remove (release) a RW layer',
  changes: 'changes of a RW layer holding the whole workload',
  commit: 'commit that RW layer as a new layer',
  export: 'export (tarStream) read to the last byte',
  release: 'release a whole chain (deletes every layer)',
})

/** Who a sample is from: layerstore, its reference, or a peer (`dockerd`, …). */
export type Tool = 'layerstore' | 'reference' | (string & {})

/** One timed run. */
export interface Sample {
  readonly operation: Operation
  /** The driver label; null for a reference that does not depend on the driver (GNU tar). */
  readonly driver: string | null
  /** The workload step (`debian-app`) or the depth (`depth-125`). */
  readonly workload: string
  readonly tool: Tool
  /** 1-based repetition (fresh roots each). */
  readonly rep: number
  /** Wall seconds: of the call, in-process, for layerstore; of the process for a reference. */
  readonly seconds: number
  /** Peak RSS in MiB (the process's peak by then, for layerstore), null when unknown. */
  readonly maxRssMiB: number | null
  /** Tar bytes the operation read or produced, when that means something. */
  readonly bytes: number | null
  /** Tar members (or changes) it handled, when that means something. */
  readonly entries: number | null
}

/** The summary of one operation × driver × workload. */
export interface SummaryRow {
  readonly operation: Operation
  readonly driver: string
  readonly workload: string
  /** What the reference is (see references.ts); null when there is none. */
  readonly reference: string | null
  readonly seconds: Summary
  readonly referenceSeconds: Summary | null
  /** Median seconds over the reference's median seconds (lower is better; 1.0 is parity). */
  readonly ratio: number | null
  /** Decimal MB/s of tar bytes at the median; null when the operation has no bytes. */
  readonly mbPerSecond: number | null
  readonly entriesPerSecond: number | null
  readonly maxRssMiB: number | null
  readonly referenceMaxRssMiB: number | null
  /** Median seconds of each peer that ran, by name. */
  readonly peers: Readonly<Record<string, number>>
}

/** The machine a run was measured on. */
export interface Machine {
  readonly cpu: string
  readonly cores: number
  readonly memoryBytes: number
  readonly kernel: string
  /** The filesystem type of the scratch directory (where the roots were). */
  readonly filesystem: string
  readonly loadavgStart: readonly number[]
  readonly loadavgEnd: readonly number[]
}

/** `results.json`. */
export interface BenchResults {
  readonly schema: 'layerstore-bench/1'
  readonly started: string
  readonly finished: string
  readonly machine: Machine
  readonly versions: { readonly node: string; readonly layerstore: string; readonly gnuTar: string }
  readonly options: {
    readonly drivers: readonly string[]
    readonly workloads: readonly string[]
    readonly reps: number
    readonly cycles: number
    readonly depths: readonly number[]
    readonly peers: boolean
  }
  /** Operations or peers not measured, and why. */
  readonly skipped: readonly { readonly what: string; readonly why: string }[]
  readonly samples: readonly Sample[]
  readonly summary: readonly SummaryRow[]
}

/** Summarizes samples per operation × driver × workload, in report order. */
export function summarizeSamples(samples: readonly Sample[], references: Readonly<Partial<Record<Operation, string>>>): SummaryRow[] {
  const rows: SummaryRow[] = []
  const ours = samples.filter((s) => s.tool === 'layerstore')
  const keys = new Map<string, { operation: Operation; driver: string; workload: string }>()
  for (const s of ours) keys.set(`${s.operation}\0${s.driver}\0${s.workload}`, { operation: s.operation, driver: s.driver ?? '', workload: s.workload })
  const order = (op: Operation): number => OPERATIONS.indexOf(op)
  for (const { operation, driver, workload } of [...keys.values()].sort((a, b) => order(a.operation) - order(b.operation))) {
    const mine = ours.filter((s) => s.operation === operation && s.driver === driver && s.workload === workload)
    const same = (s: Sample): boolean => s.operation === operation && s.workload === workload && (s.driver === null || s.driver === driver)
    const ref = samples.filter((s) => s.tool === 'reference' && same(s))
    const seconds = summarize(mine.map((s) => s.seconds))
    const referenceSeconds = ref.length ? summarize(ref.map((s) => s.seconds)) : null
    const bytes = mine.find((s) => s.bytes !== null)?.bytes ?? null
    const entries = mine.find((s) => s.entries !== null)?.entries ?? null
    const peers: Record<string, number> = {}
    for (const peer of new Set(samples.filter((s) => s.tool !== 'layerstore' && s.tool !== 'reference' && same(s)).map((s) => s.tool))) {
      peers[peer] = summarize(samples.filter((s) => s.tool === peer && same(s)).map((s) => s.seconds)).median
    }
    rows.push({
      operation,
      driver,
      workload,
      reference: referenceSeconds ? (references[operation] ?? null) : null,
      seconds,
      referenceSeconds,
      ratio: ratio(seconds.median, referenceSeconds?.median),
      mbPerSecond: bytes === null ? null : ratio(bytes / 1e6, seconds.median),
      entriesPerSecond: entries === null ? null : ratio(entries, seconds.median),
      maxRssMiB: maxOf(mine),
      referenceMaxRssMiB: maxOf(ref),
      peers,
    })
  }
  return rows
}

/** The machine's facts; `scratch` is where the roots go (its filesystem is reported). */
export async function describeMachine(scratch: string, loadavgStart: readonly number[]): Promise<Machine> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '')
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown'
  return {
    cpu: model.trim(),
    cores: cpus().length,
    memoryBytes: totalmem(),
    kernel: release(),
    filesystem: await filesystemOf(scratch),
    loadavgStart,
    loadavgEnd: loadavg(),
  }
}

/** The version in this package's package.json ('' when it cannot be read). */
export async function layerstoreVersion(): Promise<string> {
  const pkg = resolve(fileURLToPath(import.meta.url), '..', '..', '..', 'package.json')
  try {
    return String((JSON.parse(await readFile(pkg, 'utf8')) as { version?: unknown }).version ?? '')
  } catch {
    return ''
  }
}

// The mount with the longest mount point that contains `path` (mountinfo field 5; the type
// follows the ' - ' separator).
async function filesystemOf(path: string): Promise<string> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  let best = { point: '', type: 'unknown' }
  for (const line of info.split('\n')) {
    const [left, right] = line.split(' - ')
    const point = left?.split(' ')[4]?.replace(/\\040/g, ' ')
    const type = right?.split(' ')[0]
    if (!point || !type) continue
    const inside = point === '/' || path === point || path.startsWith(point + '/')
    if (inside && point.length >= best.point.length) best = { point, type }
  }
  return best.type
}

function maxOf(samples: readonly Sample[]): number | null {
  const rss = samples.map((s) => s.maxRssMiB).filter((v): v is number => v !== null)
  return rss.length ? Math.max(...rss) : null
}
