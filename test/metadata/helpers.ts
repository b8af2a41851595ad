/**
 * Shared helpers of the metadata tests: temp roots, digests, committing a layer, and running
 * a child process.
 *
 * Child processes: `test/metadata/child.ts` is bundled once per test file (in `beforeAll`,
 * `buildChild()`) with the esbuild that vitest already ships, into one `.mjs` under the OS
 * temp dir, with every npm package left external and imported by absolute path (so koffi's
 * native addon loads from node_modules). Then each child is a plain `node child.mjs`
 * (~0.1 s) instead of a vite-node run (~1.4 s), which makes several crash runs per point
 * affordable. `LAYERSTORE_TEST_CHILD` (JSON) configures it. Running the child directly also
 * works without any bundle: `node_modules/.bin/vite-node test/metadata/child.ts`.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build } from 'esbuild'
import type { CacheID, ChainID, CommitOptions, DiffID, FileMetadataStore, JsonObject } from '../../src/metadata/index.js'

const HERE = dirname(fileURLToPath(import.meta.url))
export const REPO_ROOT = resolve(HERE, '..', '..')
const CHILD = join(HERE, 'child.ts')
let childBundle: { dir: string; file: string } | undefined

/** Bundles child.ts (see the file comment); call in beforeAll, and `removeChild()` in afterAll. */
export async function buildChild(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'layerstore-metadata-child-'))
  const file = join(dir, 'child.mjs')
  const requireHere = createRequire(join(REPO_ROOT, 'package.json'))
  await build({
    entryPoints: [CHILD],
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'error',
    // native's koffiModuleURL resolves koffi from import.meta.url (for the syncfs worker):
    // from the repository, not from the bundle's temp dir.
    define: { 'import.meta.url': JSON.stringify(pathToFileURL(join(REPO_ROOT, 'src', 'native', 'libc.ts')).href) },
    plugins: [
      {
        name: 'npm-packages-by-absolute-path',
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, (args) =>
            args.path.startsWith('node:')
              ? { path: args.path, external: true }
              : { path: pathToFileURL(requireHere.resolve(args.path)).href, external: true },
          )
        },
      },
    ],
  })
  childBundle = { dir, file }
}

export async function removeChild(): Promise<void> {
  if (childBundle) await rm(childBundle.dir, { recursive: true, force: true })
  childBundle = undefined
}

/** Temp directories made by a test, removed by `cleanupTemps()` in afterEach. */
const temps: string[] = []

export async function makeTemp(prefix = 'layerstore-metadata-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  temps.push(dir)
  return dir
}

export async function cleanupTemps(): Promise<void> {
  for (const dir of temps.splice(0)) await rm(dir, { recursive: true, force: true })
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

export function digest(text: string): string {
  return `sha256:${sha256(text)}`
}

export function hexID(seed: string): string {
  return sha256(`id:${seed}`)
}

/** The facts of a layer to commit in a test. */
export interface TestLayer {
  chainID: ChainID
  diffID: DiffID
  cacheID: CacheID
  size: number
  parent?: ChainID
  descriptor?: JsonObject
}

export function testLayer(seed: string, parent?: ChainID): TestLayer {
  return {
    chainID: digest(`chain:${seed}`) as ChainID,
    diffID: digest(`diff:${seed}`) as DiffID,
    cacheID: hexID(`cache:${seed}`) as CacheID,
    size: seed.length * 1000,
    ...(parent ? { parent } : {}),
  }
}

/** Commits `layer` with a small gzipped tar-split. */
export async function commitLayer(store: FileMetadataStore, layer: TestLayer, options?: CommitOptions): Promise<void> {
  const tx = await store.startTransaction()
  try {
    await tx.setDiffID(layer.diffID)
    await tx.setSize(layer.size)
    await tx.setCacheID(layer.cacheID)
    if (layer.parent) await tx.setParent(layer.parent)
    if (layer.descriptor) await tx.setDescriptor(layer.descriptor)
    const packer = tx.tarSplitPacker()
    await packer.add({ type: 2, payload: Buffer.alloc(512, 7) })
    await packer.add({ type: 1, name: Buffer.from('a.txt'), size: 0, payload: null })
    await packer.finish()
    await tx.commit(layer.chainID, options)
  } finally {
    await tx.cancel()
  }
}

/** How a child ended, and what it printed. */
export interface ChildResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** A running child (see child.ts for the configurations it understands). */
export interface RunningChild {
  /** Resolves when the child prints a line equal to `line`. */
  waitFor(line: string): Promise<void>
  kill(signal?: NodeJS.Signals): void
  done: Promise<ChildResult>
}

/** The command line of a child (to run it under another program, e.g. strace). */
export function childArgv(): string[] {
  if (!childBundle) throw new Error('call buildChild() in beforeAll first')
  return [process.execPath, childBundle.file]
}

export function startChild(config: object, wrapper: readonly string[] = []): RunningChild {
  const [command, ...args] = [...wrapper, ...childArgv()]
  const child = spawn(command!, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, LAYERSTORE_TEST_CHILD: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  const watchers: Array<{ line: string; resolve: () => void }> = []
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
    for (const w of watchers.splice(0)) {
      if (stdout.split('\n').includes(w.line)) w.resolve()
      else watchers.push(w)
    }
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const done = new Promise<ChildResult>((resolvePromise, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }))
  })
  return {
    waitFor(line) {
      if (stdout.split('\n').includes(line)) return Promise.resolve()
      return new Promise<void>((resolvePromise, reject) => {
        watchers.push({ line, resolve: resolvePromise })
        done.then((r) => reject(new Error(`child ended (${r.code ?? r.signal}) before "${line}": ${r.stderr}`)), reject)
      })
    },
    kill(signal = 'SIGKILL') {
      child.kill(signal)
    },
    done,
  }
}

export function runChild(config: object, wrapper: readonly string[] = []): Promise<ChildResult> {
  return startChild(config, wrapper).done
}
