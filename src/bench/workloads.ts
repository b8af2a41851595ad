/**
 * The benchmark's workloads: layer tars to register, in order. A workload has one or more
 * steps, each timed on its own: `debian` is debian.tar, then debian-app.tar on top of it
 * (layer 1 present), as PEERS.md times them; `chain` is 125 small layers, each on the one
 * before, registered as one step. A `--tar FILE` is a one-step workload of its own.
 * The tars come from `make-workloads.sh` (../shared/bench/ beside this repo).
 */
import { execFile } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { access, readFile, readdir, stat } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tarsplit } from '../index.js'
import { BenchOptionError, WorkloadMissingError } from './errors.js'

/** One layer to register: an id unique in its workload and the tar's path. */
export interface LayerTar {
  readonly id: string
  readonly tar: string
}

/** Layers registered (and timed) together, each on the previous; the first on the step before. */
export interface WorkloadStep {
  /** The column in the table and charts, e.g. `debian-app`. */
  readonly name: string
  readonly layers: readonly LayerTar[]
}

/** A named workload. */
export interface Workload {
  readonly name: string
  readonly steps: readonly WorkloadStep[]
}

/** Every workload name the suite knows (besides `--tar` files). */
export const WORKLOAD_NAMES: readonly string[] = Object.freeze(['debian', 'chain', 'small-files', 'big-files'])

/** What `layerctl bench` runs without `--workload` or `--tar`. big-files (1 GiB) only when asked. */
export const DEFAULT_WORKLOADS: readonly string[] = Object.freeze(['debian', 'small-files', 'chain'])

/** What `--quick` runs. */
export const QUICK_WORKLOADS: readonly string[] = Object.freeze(['debian', 'chain'])

/** The workloads' directory: `$LAYERBENCH_DIR`, else `/var/tmp/layerbench`. */
export function workloadDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['LAYERBENCH_DIR'] || '/var/tmp/layerbench'
}

/** The id of chain layer `n` (1-based): depths name their layer by it. */
export function chainLayerID(n: number): string {
  return `chain-${String(n).padStart(3, '0')}`
}

/**
 * Resolves workload `name` from `dir`. Throws `BenchOptionError` for an unknown name and
 * `WorkloadMissingError` (saying how to build it) when its tars are missing.
 */
export async function resolveWorkload(name: string, dir: string): Promise<Workload> {
  const single = async (step: string, file: string): Promise<WorkloadStep> => ({ name: step, layers: [{ id: step, tar: await need(name, join(dir, file), dir) }] })
  switch (name) {
    case 'debian':
      return { name, steps: [await single('debian', 'debian.tar'), await single('debian-app', 'debian-app.tar')] }
    case 'small-files':
    case 'big-files':
      return { name, steps: [await single(name, `${name}.tar`)] }
    case 'chain': {
      const tars = await chainTars(dir)
      return { name, steps: [{ name: 'chain', layers: tars.map((tar, i) => ({ id: chainLayerID(i + 1), tar })) }] }
    }
    default:
      throw new BenchOptionError(`unknown workload ${JSON.stringify(name)} (known: ${WORKLOAD_NAMES.join(', ')}; or --tar FILE)`)
  }
}

/** A user's layer tar as a one-step workload, named after the file (`app.tar` → `app`). */
export async function tarWorkload(path: string): Promise<Workload> {
  const tar = resolve(path)
  try {
    if (!(await stat(tar)).isFile()) throw new Error('not a file')
  } catch {
    throw new WorkloadMissingError(basename(tar), tar, 'give --tar the path of an uncompressed layer tar')
  }
  const name = basename(tar).replace(/\.tar$/, '') || 'tar'
  return { name, steps: [{ name, layers: [{ id: name, tar }] }] }
}

/** Members (tar entries) in `tar`, counted once, untimed, by the tar-split disassembler. */
export async function countEntries(tar: string): Promise<number> {
  let n = 0
  const members = tarsplit.disassemble(createReadStream(tar, { highWaterMark: 1 << 20 }), { sink: { add: () => undefined } })
  for await (const member of members) {
    for await (const _ of member.content);
    n++
  }
  return n
}

/**
 * Where `make-workloads.sh` is: `$LAYERBENCH_MAKE`, else `../shared/bench/` beside the
 * package or the working directory. Undefined when not found.
 */
export async function findMakeWorkloads(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
  const candidates = [env['LAYERBENCH_MAKE'], join(pkg, '..', 'shared', 'bench', 'make-workloads.sh'), join(process.cwd(), '..', 'shared', 'bench', 'make-workloads.sh')]
  for (const c of candidates) {
    if (!c) continue
    try {
      await access(c)
      return c
    } catch {
      // Not there.
    }
  }
  return undefined
}

/** Runs make-workloads.sh into `dir` (idempotent: it keeps what exists), its output on stderr. */
export function makeWorkloads(script: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('bash', [script, dir], { maxBuffer: 64 << 20 }, (err) => (err ? reject(err) : resolve()))
    child.stderr?.pipe(process.stderr)
  })
}

async function need(workload: string, path: string, dir: string): Promise<string> {
  try {
    await access(path)
    return path
  } catch {
    const script = await findMakeWorkloads()
    const hint = script
      ? `build the workloads with 'bash ${script} ${dir}' or pass --make-workloads`
      : `build the workloads with make-workloads.sh (../shared/bench/ in the project) into ${dir}, or set LAYERBENCH_DIR`
    throw new WorkloadMissingError(workload, path, hint)
  }
}

// images.json lists the chain bottom-first; without it, the file names sort the same way.
async function chainTars(dir: string): Promise<string[]> {
  const images = join(dir, 'images.json')
  let listed: unknown
  try {
    listed = (JSON.parse(await readFile(images, 'utf8')) as { chain?: { layers?: unknown } }).chain?.layers
  } catch {
    listed = undefined
  }
  if (Array.isArray(listed) && listed.length > 0) {
    return Promise.all(listed.map((file) => need('chain', join(dir, String(file)), dir)))
  }
  const chainDir = await need('chain', join(dir, 'chain'), dir)
  const names = (await readdir(chainDir)).filter((n) => /^layer-\d+\.tar$/.test(n)).sort()
  if (names.length === 0) throw new WorkloadMissingError('chain', join(chainDir, 'layer-001.tar'), 'the chain directory holds no layer-NNN.tar')
  return names.map((n) => join(chainDir, n))
}
