/**
 * The child side of the runner: one job of operations.ts in a process of its own, so that
 * its peak RSS is its own and a crash or leak cannot touch the next job. Started by
 * runner.ts as `node bench-child.js JOB_JSON`; prints one JSON answer on stdout.
 *
 * Peak RSS per operation is the process's peak so far (`resourceUsage().maxRSS`) right after
 * it: the jobs run their biggest operation first or alone.
 */
import { join } from 'node:path'
import type { layer } from '../index.js'
import type { DriverSpec } from './driver-spec.js'
import { changesAndCommit, driverRWCycles, exportLayers, openDriver, openStore, registerChain, registerLayers, releaseChain, storeRWCycles } from './operations.js'

type ChainID = layer.ChainID

/** A job for the child. Every job names the store root and the driver. */
export type ChildJob = { readonly root: string; readonly spec: DriverSpec } & (
  | {
      readonly op: 'register'
      readonly parent: string | null
      readonly steps: readonly { readonly name: string; readonly tars: readonly string[] }[]
      /** Each step with one `registerChain` call, timed as one, instead of a `register` per tar. */
      readonly chain?: boolean
    }
  | { readonly op: 'rw'; readonly depths: readonly { readonly depth: number; readonly chainID: string }[]; readonly cycles: number }
  | { readonly op: 'changes'; readonly tar: string; readonly name: string }
  | { readonly op: 'export'; readonly steps: readonly { readonly name: string; readonly chainIDs: readonly string[] }[] }
  | { readonly op: 'release'; readonly chain: readonly string[] }
)

/** Peak RSS of this process so far, in MiB. */
function peakMiB(): number {
  return process.resourceUsage().maxRSS / 1024
}

async function runJob(job: ChildJob): Promise<unknown> {
  const store = await openStore(job.root, job.spec)
  let closed = false
  try {
    switch (job.op) {
      case 'register': {
        let parent = job.parent as ChainID | null
        const steps = []
        for (const step of job.steps) {
          if (job.chain) {
            const t = await registerChain(store, step.tars, parent)
            parent = t.chainIDs.at(-1) ?? parent
            steps.push({ name: step.name, seconds: t.seconds, chainIDs: t.chainIDs, existed: t.existed, maxRssMiB: peakMiB() })
            continue
          }
          const timings = await registerLayers(store, step.tars, parent)
          parent = timings.at(-1)?.chainID ?? parent
          steps.push({
            name: step.name,
            seconds: timings.reduce((s, t) => s + t.seconds, 0),
            chainIDs: timings.map((t) => t.chainID),
            existed: timings.some((t) => t.existed),
            maxRssMiB: peakMiB(),
          })
        }
        return { steps }
      }
      case 'rw': {
        const parents = []
        for (const d of job.depths) {
          const l = await store.get(d.chainID as ChainID)
          parents.push({ ...d, cacheID: l.cacheID })
          await store.release(l)
        }
        const results = []
        for (const d of parents) results.push({ depth: d.depth, store: await storeRWCycles(store, d.chainID as ChainID, job.cycles, `bench-rw-${d.depth}`) })
        const storeRss = peakMiB()
        const home = join(store.root, store.driverName)
        closed = true
        await store.close()
        // The bare driver on the same home, with the store closed (a driver's cleanup unmounts
        // everything of its home, the store's mounts included).
        const driver = await openDriver(home, job.spec)
        try {
          for (const [i, d] of parents.entries()) {
            const cycles = await driverRWCycles(driver, d.cacheID, job.cycles, `bench-ref-rw-${d.depth}`)
            results[i] = { ...(results[i] as { depth: number; store: unknown }), driver: cycles }
          }
        } finally {
          await driver.cleanup()
        }
        return { depths: results, maxRssMiB: storeRss }
      }
      case 'changes': {
        const t = await changesAndCommit(store, job.tar, job.name)
        return { ...t, maxRssMiB: peakMiB() }
      }
      case 'export': {
        const steps = []
        for (const step of job.steps) steps.push({ name: step.name, ...(await exportLayers(store, step.chainIDs as ChainID[])), maxRssMiB: peakMiB() })
        return { steps }
      }
      case 'release': {
        return { ...(await releaseChain(store, job.chain as ChainID[])), maxRssMiB: peakMiB() }
      }
    }
  } finally {
    if (!closed) await store.close()
  }
}

const jobText = process.argv[2]
if (jobText === undefined) {
  process.stderr.write('usage: bench-child.js JOB_JSON\n')
  process.exitCode = 2
} else {
  // The runner stopped (Ctrl-C): stop too, before it deletes our files.
  process.on('SIGTERM', () => process.exit(143))
  const job = JSON.parse(jobText) as ChildJob
  runJob(job).then(
    (answer) => process.stdout.write(JSON.stringify(answer) + '\n'),
    (err: unknown) => {
      process.stderr.write(`${(err as { code?: string }).code ?? 'ERR'}: ${err instanceof Error ? err.message : String(err)}\n`)
      process.exitCode = 1
    },
  )
}
