/**
 * The child process of the metadata tests (run through vite-node, see helpers.ts). It reads
 * its configuration from `LAYERSTORE_TEST_CHILD` (JSON), which the library never does: here
 * it becomes the `crashPoint` seam, a function that SIGKILLs this process at one point.
 *
 * Modes:
 * - `crash`: run one scenario against a store, dying at `point` (exit 0 if never reached).
 * - `lock`: take the store lock in `lockMode`, print `locked`, and hold it until killed.
 * - `intent`: open a store, start a transaction naming `cacheID`, print `ready`, and wait.
 * - `commit`: commit `layer` with `syncfsPaths` and exit (traced by commit-sync.test.ts).
 * - `flush-ahead`: write `files` files of `fileBytes` into `dir`, reporting the running total
 *   to a `FlushAhead` of `step` bytes after each, then settle (traced by flush-ahead.test.ts).
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FileMetadataStore, FlushAhead, StoreLock } from '../../src/metadata/index.js'
import type { CacheID, ChainID, CrashPoint, MountID } from '../../src/metadata/index.js'
import { commitLayer } from './helpers.js'
import type { TestLayer } from './helpers.js'

type Config =
  | {
      mode: 'crash'
      root: string
      driver: string
      point: CrashPoint
      scenario: 'commit' | 'commit-mount' | 'remove' | 'remove-mount' | 'extra'
      layer?: TestLayer
      chainID?: ChainID
      mountName?: string
      mountID?: MountID
      references?: Record<string, number>
    }
  | { mode: 'lock'; path: string; lockMode: 'shared' | 'exclusive' }
  | { mode: 'intent'; root: string; driver: string; cacheID: CacheID }
  | { mode: 'commit'; root: string; driver: string; layer: TestLayer; syncfsPaths: string[] }
  | { mode: 'flush-ahead'; dir: string; files: number; fileBytes: number; step: number }

const config = JSON.parse(process.env['LAYERSTORE_TEST_CHILD'] ?? '{}') as Config

function holdForever(): void {
  setInterval(() => undefined, 60_000)
}

async function crash(c: Extract<Config, { mode: 'crash' }>): Promise<void> {
  const store = await FileMetadataStore.open(c.root, c.driver, {
    crashPoint: (point) => {
      if (point === c.point) process.kill(process.pid, 'SIGKILL')
    },
  })
  switch (c.scenario) {
    case 'commit':
      await commitLayer(store, c.layer!)
      break
    case 'commit-mount': {
      const tx = await store.startTransaction()
      await tx.setMountID(c.mountID!)
      await tx.setInitID(`${c.mountID!}-init` as MountID)
      await tx.setParent(c.chainID!)
      await tx.commitMount(c.mountName!)
      break
    }
    case 'remove':
      await store.removeMarked(await store.markRemoving(c.chainID!))
      break
    case 'remove-mount':
      await store.removeMarked(await store.markMountRemoving(c.mountName!))
      break
    case 'extra':
      await store.setReferences(c.chainID!, new Map(Object.entries(c.references!)))
      break
  }
  await store.close()
}

async function main(): Promise<void> {
  switch (config.mode) {
    case 'crash':
      await crash(config)
      break
    case 'lock': {
      const lock = new StoreLock(config.path)
      await (config.lockMode === 'shared' ? lock.shared() : lock.exclusive())
      process.stdout.write('locked\n')
      holdForever()
      break
    }
    case 'intent': {
      const store = await FileMetadataStore.open(config.root, config.driver)
      const tx = await store.startTransaction()
      await tx.setCacheID(config.cacheID)
      process.stdout.write('ready\n')
      holdForever()
      break
    }
    case 'commit': {
      const store = await FileMetadataStore.open(config.root, config.driver)
      await commitLayer(store, config.layer, { syncfsPaths: config.syncfsPaths })
      await store.close()
      break
    }
    case 'flush-ahead': {
      const ahead = new FlushAhead(config.dir, config.step)
      const data = Buffer.alloc(config.fileBytes, 1)
      for (let i = 0; i < config.files; i++) {
        writeFileSync(join(config.dir, `f${i}`), data)
        ahead.progress((i + 1) * config.fileBytes)
        // Time for a flush to end, so that only the step keeps the next one from starting.
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      await ahead.settle()
      break
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(2)
})
