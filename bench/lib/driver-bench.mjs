// runDriverBench: the whole graph driver benchmark (issue 5) as one call returning plain,
// JSON-able results, beside GNU tar in the same run; bench/drivers.mjs prints them as tables.
//
// Phases, in this order so that nothing is deleted before a timed run (PEERS.md):
//   1. apply   per rep, per workload step, every tool in turn (the order rotated each rep):
//              GNU tar -x into fresh plain dirs, each driver's register-like applyDiff into a
//              fresh home, in a child process; a `sync` (untimed) before each run, so that one
//              run's writeback does not land on the next;
//   2. disk    du of the last rep's homes and plain dirs;
//   3. export  `diff` of every layer applied, from the last rep's homes, in a child piped to
//              us, beside `tar -c` of GNU tar's plain dirs;
//   4. rw      in-process: create+mount of read-write layers at each depth of the chain, and
//              mount/unmount cycles, on the last rep's chain home (a `sync` before each depth);
// then everything is unmounted and deleted (also on Ctrl-C, see scratch.mjs).
import { execFileSync } from 'node:child_process'
import { loadavg, release } from 'node:os'
import { statSync } from 'node:fs'
import { applyInChild, applyLayers, diskUsage, exportInChild, mountCycle, openDriver, rwCreateMount } from './driver-ops.mjs'
import { gnuCreateEach, gnuExtractEach, gnuTarVersion } from './gnu-tar.mjs'
import { chainLayerID, layerWorkload } from './layer-workloads.mjs'
import { median, warm, WORKLOADS } from './measure.mjs'
import { makeScratch } from './scratch.mjs'
import { summarize } from './stats.mjs'

/** The label of the reference rows. */
export const GNU_TAR = 'GNU tar'

/** The issue's depths for read-write create+mount (1 / 16 / 64 / 125 image layers below). */
export const DEFAULT_DEPTHS = Object.freeze([1, 16, 64, 125])

/**
 * Runs the benchmark and resolves to its results (see the file comment for the phases):
 * `{ meta, apply, disk, export, rw }`, every time in seconds (apply, export) or milliseconds
 * (rw), every sample kept beside its summary.
 * @param {object} options
 * @param {readonly { label: string, name: string, options: Record<string, string> }[]} options.drivers
 * @param {readonly string[]} options.workloads names known to layer-workloads.mjs
 * @param {number} options.reps repetitions of the apply and export runs (medians reported)
 * @param {number} options.cycles timed cycles of each in-process read-write loop
 * @param {readonly number[]} [options.depths] chain depths for the read-write loops
 * @param {string} [options.scratchParent] where the scratch dir goes (default: the workloads'
 *   directory, the filesystem a store would be on)
 * @param {(line: string) => void} [options.progress] progress lines (default: stderr)
 * Rejects with an Error of code `ERR_BENCH_INTERRUPTED` (and an `exitCode`) after SIGINT or
 * SIGTERM, once everything it made is unmounted and deleted.
 */
export async function runDriverBench(options) {
  const { drivers, reps, cycles } = options
  const depths = options.depths ?? DEFAULT_DEPTHS
  const progress = options.progress ?? ((line) => console.error(line))
  const workloads = options.workloads.map(layerWorkload)
  const scratch = makeScratch(options.scratchParent ?? WORKLOADS, '.bench-drivers-')
  const results = {
    meta: {
      started: new Date().toISOString(),
      node: process.version,
      kernel: release(),
      gnuTar: gnuTarVersion(),
      loadavgStart: loadavg(),
      reps,
      cycles,
      depths: [...depths],
      drivers: drivers.map((d) => d.label),
      workloads: workloads.map((w) => w.name),
    },
    apply: [],
    disk: [],
    export: [],
    rw: [],
  }
  try {
    // homes[label][workload] and plain[workload][layer id] of the last rep.
    const homes = {}
    const plain = {}
    const samples = new Map()
    const record = (step, tool, run) => {
      const key = `${step}\0${tool}`
      if (!samples.has(key)) samples.set(key, { workload: step, tool, runs: [] })
      samples.get(key).runs.push(run)
    }
    const tools = [GNU_TAR, ...drivers.map((d) => d.label)]
    for (let rep = 0; rep < reps; rep++) {
      for (const wl of workloads) {
        for (const tool of rotate(tools, rep)) {
          const spec = drivers.find((d) => d.label === tool)
          const home = spec && `${scratch.fresh(`${safeName(tool)}/r${rep}/${wl.name}`)}/${spec.name}`
          let parent = null
          for (const step of wl.steps) {
            scratch.signal.throwIfAborted()
            progress(`apply  rep ${rep + 1}/${reps}  ${step.name.padEnd(11)} ${tool}`)
            prepare(step.layers.map((l) => l.tar))
            if (spec) {
              record(step.name, tool, await applyInChild(spec, home, step.layers, parent))
              parent = step.layers.at(-1).id
            } else {
              const dirs = step.layers.map((l) => scratch.fresh(`gnu/r${rep}/${l.id}`))
              record(step.name, tool, await gnuExtractEach(step.layers.map((l, i) => ({ tar: l.tar, dir: dirs[i] }))))
              step.layers.forEach((l, i) => ((plain[wl.name] ??= {})[l.id] = dirs[i]))
            }
          }
          if (spec) (homes[tool] ??= {})[wl.name] = home
        }
      }
    }
    for (const { workload, tool, runs } of samples.values()) {
      const step = workloads.flatMap((w) => w.steps).find((s) => s.name === workload)
      const members = runs.find((r) => r.members !== undefined)?.members
      results.apply.push({
        workload,
        tool,
        layers: step.layers.length,
        tarBytes: step.layers.reduce((n, l) => n + statSync(l.tar).size, 0),
        members: members ?? null,
        seconds: median(runs.map((r) => r.seconds)),
        inProcessSeconds: tool === GNU_TAR ? null : median(runs.map((r) => r.inProcessSeconds)),
        maxRssMiB: Math.max(...runs.map((r) => r.maxRssMiB)),
        runs,
      })
    }
    // GNU tar has no member count of its own: it extracted the same tar.
    for (const row of results.apply) row.members ??= results.apply.find((r) => r.workload === row.workload && r.members !== null)?.members ?? null

    progress('disk   du of the last rep')
    for (const tool of tools) {
      const row = { tool }
      for (const wl of workloads) {
        const paths = tool === GNU_TAR ? Object.values(plain[wl.name]) : [homes[tool][wl.name]]
        row[wl.name] = { bytes: diskUsage(paths), layers: wl.steps.flatMap((s) => s.layers).length }
      }
      results.disk.push(row)
    }

    const exportSamples = new Map()
    for (let rep = 0; rep < reps; rep++) {
      for (const wl of workloads) {
        for (const tool of rotate(tools, rep)) {
          const spec = drivers.find((d) => d.label === tool)
          let parent = null
          for (const step of wl.steps) {
            scratch.signal.throwIfAborted()
            progress(`export rep ${rep + 1}/${reps}  ${step.name.padEnd(11)} ${tool}`)
            const pairs = step.layers.map((l) => {
              const pair = { id: l.id, parent }
              parent = l.id
              return pair
            })
            const run = spec
              ? await exportInChild(spec, homes[tool][wl.name], pairs)
              : await gnuCreateEach(step.layers.map((l) => plain[wl.name][l.id]))
            const key = `${step.name}\0${tool}`
            if (!exportSamples.has(key)) exportSamples.set(key, { workload: step.name, tool, runs: [] })
            exportSamples.get(key).runs.push(run)
          }
        }
      }
    }
    for (const { workload, tool, runs } of exportSamples.values()) {
      results.export.push({
        workload,
        tool,
        seconds: median(runs.map((r) => r.seconds)),
        inProcessSeconds: tool === GNU_TAR ? null : median(runs.map((r) => r.inProcessSeconds)),
        bytesOut: median(runs.map((r) => r.bytesOut)),
        maxRssMiB: Math.max(...runs.map((r) => r.maxRssMiB)),
        runs,
      })
    }

    const chain = layerWorkload('chain').steps[0].layers
    for (const spec of drivers) {
      let home = homes[spec.label]?.chain
      const driver = await openDriver(spec, home ?? `${scratch.fresh(`${safeName(spec.label)}/rw`)}/${spec.name}`)
      try {
        if (!home) {
          progress(`rw     ${spec.label}: applying the chain first (untimed)`)
          await applyLayers(driver, chain.slice(0, Math.max(...depths)), null, scratch.signal)
        }
        for (const depth of depths) {
          progress(`rw     ${spec.label} depth ${depth}: ${cycles} create+mount, ${cycles} mount/unmount`)
          // The earlier phases leave GiBs to write back, and the loops' metadata syscalls can
          // wait behind it (a trial without this sync, after debian, measured 3× the p50).
          prepare([])
          const made = await rwCreateMount(driver, chainLayerID(depth), { cycles, prefix: `rw${depth}`, signal: scratch.signal })
          const cycled = await mountCycle(driver, made.ids[0], { cycles, signal: scratch.signal })
          results.rw.push({
            tool: spec.label,
            depth,
            createMount: { ...summarize(made.createMount), samples: made.createMount },
            firstUnmount: { ...summarize(made.unmount), samples: made.unmount },
            mount: { ...summarize(cycled.mount), samples: cycled.mount },
            unmount: { ...summarize(cycled.unmount), samples: cycled.unmount },
          })
        }
      } finally {
        await driver.cleanup()
      }
    }
  } catch (err) {
    // A killed child fails with its exit status; what the caller must know is the signal.
    throw scratch.signal.aborted ? scratch.signal.reason : err
  } finally {
    results.meta.loadavgEnd = loadavg()
    results.meta.finished = new Date().toISOString()
    progress(`cleanup: unmounting and deleting ${scratch.dir}`)
    await scratch.cleanup()
    scratch.dispose()
  }
  return results
}

// Before every timed run: flush what the previous run left dirty, then read the input into the
// page cache (these machines reclaim it proactively).
function prepare(tars) {
  execFileSync('sync')
  for (const tar of tars) warm(tar)
}

function rotate(list, by) {
  const k = by % list.length
  return [...list.slice(k), ...list.slice(0, k)]
}

function safeName(label) {
  return label.replace(/[^A-Za-z0-9_.-]+/g, '_')
}
