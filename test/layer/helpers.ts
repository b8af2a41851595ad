/**
 * Helpers of the layer store tests: tars made in memory (tar-stream, so every byte is known),
 * fresh store roots, the moby test helper `createLayer`, checks that a store holds no
 * orphans, and child processes (test/layer/child.mjs).
 */
import { spawn } from 'node:child_process'
import type { ChildProcessByStdio } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { pack } from 'tar-stream'
import { afterEach, beforeEach } from 'vitest'
import { builtinDrivers } from '../../src/drivers/index.js'
import { DriverRegistry } from '../../src/graphdriver/index.js'
import { LayerStore, isEmptyCleanup, listDriverIDs } from '../../src/layer/index.js'
import type { Layer, LayerStoreOptions, StoreCleanupReport } from '../../src/layer/index.js'
import { unmountAll } from '../../src/graphdriver/index.js'

/** One member of a test tar. */
export interface TarFile {
  readonly name: string
  readonly content?: string | Buffer
  readonly type?: 'file' | 'directory' | 'symlink' | 'link'
  readonly mode?: number
  readonly linkname?: string
  readonly mtime?: Date
}

const EPOCH = new Date('2020-01-01T00:00:00Z')

/** A tar of `files` (mtimes fixed, so the same list always gives the same bytes). */
export async function makeTar(files: readonly TarFile[]): Promise<Buffer> {
  const p = pack()
  const chunks: Buffer[] = []
  const done = new Promise<void>((resolve, reject) => {
    p.on('data', (c: unknown) => chunks.push(c as Buffer))
    p.on('end', () => resolve())
    p.on('error', reject)
  })
  for (const f of files) {
    const type = f.type ?? 'file'
    const content = type === 'file' ? Buffer.from(f.content ?? '') : undefined
    await new Promise<void>((resolve, reject) => {
      const header = {
        name: f.name,
        type,
        mode: f.mode ?? (type === 'directory' ? 0o755 : 0o644),
        mtime: f.mtime ?? EPOCH,
        uid: 0,
        gid: 0,
        ...(f.linkname ? { linkname: f.linkname } : {}),
      }
      if (content) p.entry({ ...header, size: content.length }, content, (err) => (err ? reject(err) : resolve()))
      else p.entry(header, (err) => (err ? reject(err) : resolve()))
    })
  }
  p.finalize()
  await done
  return Buffer.concat(chunks)
}

/** `sha256:<hex>` of bytes. */
export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

/** Reads a stream to its end. */
export async function readAll(stream: Readable | AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** Feeds `bytes` in slices of `size` bytes (the register path must not depend on chunking). */
export async function* slices(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield Buffer.from(bytes.subarray(i, i + size))
}

/** The built-in drivers' names, in registration order. */
export function driverNames(): string[] {
  return builtinDrivers.map((f) => f.name)
}

/** The driver of tests that run on one driver only: overlay when built in, else the first. */
export const ONE_DRIVER = driverNames().includes('overlay') ? 'overlay' : driverNames()[0]!

/** A temporary directory and its removal (unmounting anything a failed test left below it). */
export async function tempRoot(prefix = 'layerstore-layer-'): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  return {
    dir,
    async remove() {
      await unmountAll(dir).catch(() => undefined)
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** Opens a store on `root` with driver `driver` (and any extra options). */
export function openStore(root: string, driver: string, options: Partial<LayerStoreOptions> = {}): Promise<LayerStore> {
  return LayerStore.open({ root, driver, registry: new DriverRegistry(builtinDrivers), ...options })
}

/** The store of the running test, on its own temporary root (see `storeFixture`). */
export interface StoreFixture {
  /** The running test's root. */
  readonly root: string
  /** The running test's store: the one opened before it, or the last `reopen`ed. */
  readonly store: LayerStore
  /**
   * Opens a new store on the root (with `options`) and makes it `store`. The test closes the
   * previous one first, as it needs (`keepMounts`, work between close and open).
   */
  reopen(options?: Partial<LayerStoreOptions>): Promise<LayerStore>
}

/**
 * For each test of the calling `describe`: a fresh root with a store open on it (driver
 * `driver`) before, and after, the store closed and the root removed.
 */
export function storeFixture(driver: string): StoreFixture {
  let root: Awaited<ReturnType<typeof tempRoot>> | undefined
  let store: LayerStore | undefined
  beforeEach(async () => {
    root = await tempRoot()
    store = await openStore(root.dir, driver)
  })
  afterEach(async () => {
    await store?.close().catch(() => undefined)
    await root?.remove()
    store = root = undefined
  })
  const running = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('storeFixture: used outside a test')
    return value
  }
  return {
    get root() {
      return running(root).dir
    },
    get store() {
      return running(store)
    },
    async reopen(options = {}) {
      store = await openStore(running(root).dir, driver, options)
      return store
    },
  }
}

/**
 * moby's `createLayer` test helper: a RW layer on `parent`, `fill` run on its mount, its diff
 * registered as a new layer on `parent`, the RW layer released.
 */
export async function createLayer(
  store: LayerStore,
  parent: Layer | null,
  fill: (root: string) => Promise<void>,
): Promise<Layer> {
  const name = `create-${Math.random().toString(16).slice(2)}`
  const rw = await store.createRWLayer(name, parent?.chainID ?? null)
  const root = await rw.mount()
  try {
    await fill(root)
  } finally {
    await rw.unmount()
  }
  const layer = await store.commit(rw)
  await store.releaseRWLayer(rw)
  return layer
}

/**
 * Opens a second store on `root` (cleanup at open), runs a second cleanup and checks that
 * it finds nothing: the first one left no orphan. Returns the open-time report.
 */
export async function expectNoOrphans(root: string, driver: string): Promise<StoreCleanupReport | undefined> {
  const store = await openStore(root, driver)
  try {
    const again = await store.cleanup()
    if (!isEmptyCleanup(again)) throw new Error(`a second cleanup still found work: ${JSON.stringify(again, null, 1)}`)
    return store.openCleanup
  } finally {
    await store.close()
  }
}

/** The names in a directory (empty if missing). */
export async function ls(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [])).sort()
}

/** The store-made layer IDs the driver of `root` holds (a second driver instance looks). */
export async function driverIDs(root: string, driverName: string): Promise<string[]> {
  const driver = await new DriverRegistry(builtinDrivers).create(driverName, { home: join(root, driverName) })
  try {
    return await listDriverIDs(driver)
  } finally {
    await driver.cleanup()
  }
}

/** Whether dist/ is built: test/layer/child.mjs runs the built package. */
export const DIST_BUILT = existsSync(fileURLToPath(new URL('../../dist/layer/index.js', import.meta.url)))

const CHILD = fileURLToPath(new URL('./child.mjs', import.meta.url))

/** test/layer/child.mjs started on `config`; its stderr piped or shown. */
export function spawnChild(config: object, stderr: 'pipe' | 'inherit' = 'pipe'): ChildProcessByStdio<null, Readable, Readable | null> {
  return spawn(process.execPath, [CHILD], {
    env: { ...process.env, LAYERSTORE_TEST_CHILD: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', stderr],
  }) as ChildProcessByStdio<null, Readable, Readable | null>
}

/** How a child process ended, and what it wrote. */
export interface ChildResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs test/layer/child.mjs on `config` to its end. */
export function runChild(config: object): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawnChild(config)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}
