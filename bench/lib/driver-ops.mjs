// Graph driver operations as benchmark pieces: each runs one operation through the public API
// of the BUILT package (dist/), as a user would, and returns its samples. The in-process ones
// take a driver; the `…InChild` ones run driver-runner.mjs under /usr/bin/time, so that wall
// time includes what a CLI pays (process start, driver probe) and peak RSS is the driver's own.
import { execFileSync } from 'node:child_process'
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { drivers, graphdriver, tarsplit } from '../../dist/index.js'
import { timeCommand } from './measure.mjs'
import { msSince } from './stats.mjs'

const RUNNER = join(dirname(fileURLToPath(import.meta.url)), 'driver-runner.mjs')

// Read-ahead of the layer tars, as bench/apply.mjs reads them.
const READ_CHUNK = 1 << 20

/**
 * A driver to benchmark: `NAME` or `NAME:key=value[,key=value…]` (driver options, e.g.
 * `overlay:overlay.mount_api=mount-data`). The whole spec is its label in the tables.
 * @param {string} spec
 * @returns {{ label: string, name: string, options: Record<string, string> }}
 */
export function parseDriverSpec(spec) {
  const colon = spec.indexOf(':')
  const name = colon < 0 ? spec : spec.slice(0, colon)
  /** @type {Record<string, string>} */
  const options = {}
  if (colon >= 0) {
    for (const option of spec.slice(colon + 1).split(',')) {
      const kv = graphdriver.parseOptionKeyValue(option)
      if (kv === null) throw new Error(`driver option ${JSON.stringify(option)} in ${JSON.stringify(spec)} is not key=value`)
      options[kv[0]] = kv[1]
    }
  }
  return { label: spec, name, options }
}

/** The names of the built-in drivers, the default set to benchmark. */
export function builtinDriverNames() {
  return new graphdriver.DriverRegistry(drivers.builtinDrivers).names()
}

/**
 * Starts the driver of `spec` on `home` (created if missing) through the registry, as the
 * store does; the caller must `cleanup()` it.
 * @param {{ name: string, options: Record<string, string> }} spec
 * @param {string} home
 */
export function openDriver(spec, home) {
  return new graphdriver.DriverRegistry(drivers.builtinDrivers).create(spec.name, { home, options: spec.options })
}

/**
 * Registers layers the way the store does, minus its metadata: `create(id, parent)`, then
 * `applyDiff` of the tar streamed through the tar-split disassembler (its entries counted and
 * dropped, not gzipped to disk; no sha256 of the stream). Each layer goes on the one before,
 * the first on `parent`.
 * @param {import('../../dist/index.js').graphdriver.Driver} driver
 * @param {readonly { id: string, tar: string }[]} layers
 * @param {string | null} parent
 * @param {AbortSignal} [signal] checked before each layer
 * @returns {Promise<{ ms: number[], members: number, size: number }>} ms per layer; members
 *   applied; the sum of their header sizes (what applyDiff returns)
 */
export async function applyLayers(driver, layers, parent, signal) {
  const ms = []
  let members = 0
  let size = 0
  const sink = {
    add(entry) {
      if (entry.type === tarsplit.FILE_TYPE) members++
    },
  }
  for (const { id, tar } of layers) {
    signal?.throwIfAborted()
    const start = process.hrtime.bigint()
    await driver.create(id, parent)
    size += await driver.applyDiff(id, parent, tarsplit.disassemble(createReadStream(tar, { highWaterMark: READ_CHUNK }), { sink }))
    ms.push(msSince(start))
    parent = id
  }
  return { ms, members, size }
}

/**
 * What a container start costs the driver: `createReadWrite(rw, parent)` then `get(rw)`, timed
 * together, `cycles` times on fresh ids (`<prefix>-NN`), each followed by a `put` timed apart
 * (the first unmount). Nothing is removed: a delete just before the next create would measure
 * ext4's inode reuse delay, not the driver (PEERS.md). `warmup` cycles run first, untimed
 * (JIT, a driver's lazily started helpers).
 * @param {import('../../dist/index.js').graphdriver.Driver} driver
 * @param {string} parent
 * @param {{ cycles: number, warmup?: number, prefix: string, signal?: AbortSignal }} options
 *   `signal` is checked before each cycle
 * @returns {Promise<{ createMount: number[], unmount: number[], ids: string[] }>}
 */
export async function rwCreateMount(driver, parent, { cycles, warmup = 2, prefix, signal }) {
  const createMount = []
  const unmount = []
  const ids = []
  for (let i = 0; i < warmup + cycles; i++) {
    signal?.throwIfAborted()
    const id = `${prefix}-${i < warmup ? `w${i}` : String(i - warmup).padStart(2, '0')}`
    const start = process.hrtime.bigint()
    await driver.createReadWrite(id, parent)
    await driver.get(id)
    const made = msSince(start)
    const put = process.hrtime.bigint()
    await driver.put(id)
    if (i < warmup) continue
    createMount.push(made)
    unmount.push(msSince(put))
    ids.push(id)
  }
  return { createMount, unmount, ids }
}

/**
 * The mount/unmount cycle of an existing layer: `get(id)` then `put(id)`, each timed,
 * `cycles` times after `warmup` untimed ones. The layer must not be held.
 * @param {import('../../dist/index.js').graphdriver.Driver} driver
 * @param {string} id
 * @param {{ cycles: number, warmup?: number, signal?: AbortSignal }} options `signal` is
 *   checked before each cycle
 * @returns {Promise<{ mount: number[], unmount: number[] }>}
 */
export async function mountCycle(driver, id, { cycles, warmup = 2, signal }) {
  const mount = []
  const unmount = []
  for (let i = 0; i < warmup + cycles; i++) {
    signal?.throwIfAborted()
    const start = process.hrtime.bigint()
    await driver.get(id)
    const mounted = msSince(start)
    const put = process.hrtime.bigint()
    await driver.put(id)
    if (i < warmup) continue
    mount.push(mounted)
    unmount.push(msSince(put))
  }
  return { mount, unmount }
}

/**
 * Writes `driver.diff(id, parent)` of each pair, in order, to `out` (backpressure honoured).
 * @param {import('../../dist/index.js').graphdriver.Driver} driver
 * @param {readonly { id: string, parent: string | null }[]} pairs
 * @param {NodeJS.WritableStream} out
 * @returns {Promise<{ bytes: number }>}
 */
export async function exportDiffs(driver, pairs, out) {
  let bytes = 0
  for (const { id, parent } of pairs) {
    const stream = await driver.diff(id, parent)
    for await (const chunk of stream) {
      bytes += chunk.length
      if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve))
    }
  }
  return { bytes }
}

/**
 * Allocated bytes of `paths` together, each inode counted once even when hard-linked from
 * several of them (`du -s -c -B1`, which is what a disk fills with).
 * @param {readonly string[]} paths
 */
export function diskUsage(paths) {
  const out = execFileSync('du', ['-s', '-c', '-B1', ...paths], { encoding: 'utf8' })
  const total = out.trim().split('\n').pop()
  return Number(total.split('\t')[0])
}

/**
 * `applyLayers` in a child process under /usr/bin/time (a fresh driver instance on `home`,
 * which may already hold `parent`). Resolves to the wall seconds seen from here, the peak RSS,
 * and the child's own view: `inProcessSeconds` (first create to last applyDiff), `members`.
 * @param {{ name: string, options: Record<string, string> }} spec
 * @param {string} home
 * @param {readonly { id: string, tar: string }[]} layers
 * @param {string | null} parent
 */
export function applyInChild(spec, home, layers, parent) {
  return inChild({ op: 'apply', spec, home, layers, parent })
}

/**
 * `exportDiffs` in a child process under /usr/bin/time, its stdout piped to this process,
 * which reads every byte (`bytesOut`). Also resolves to `inProcessSeconds` and peak RSS.
 * @param {{ name: string, options: Record<string, string> }} spec
 * @param {string} home
 * @param {readonly { id: string, parent: string | null }[]} pairs
 */
export function exportInChild(spec, home, pairs) {
  return inChild({ op: 'export', spec, home, pairs })
}

async function inChild(job) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-driver-'))
  const result = join(dir, 'result.json')
  try {
    const run = await timeCommand([process.execPath, RUNNER, JSON.stringify(job), result])
    return { ...run, ...JSON.parse(readFileSync(result, 'utf8')) }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
