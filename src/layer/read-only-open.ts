/**
 * `LayerStore.open({ readOnly: true })` (issue 6): the store's parts for reading a root
 * without changing anything under it, a Docker data root included (`driver: 'overlay2'`).
 *
 * What a writable open does and this one must not, each of which would write to (or mount
 * in) a root that is not ours: `mkdir` of the root, layerdb skeleton and `tmp/`; the owner
 * token and session file; the orphan cleanup; the driver's start-up (overlay's `init` makes
 * `l/`, sweeps and re-links; its probe mounts in a scratch dir; vfs's probe bind-mounts) —
 * the driver comes from its factory's `openReadOnly` instead, which does none of that.
 *
 * Locking: a root that has our lock file is a layerstore root, whose writers take the lock
 * exclusively to change it, so reads take it shared (a read never sees half a change; a
 * lock file only ever exists already, as every writable open made it). A root without one
 * was never written by layerstore (Docker's), and dockerd knows nothing of our lock: it is
 * read without one, and no lock file is created.
 */
import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import createDebug from 'debug'
import { defaultDrivers } from '../drivers/index.js'
import { DriverRegistry, MAX_LAYER_DEPTH, findPriorDrivers, selectDriver } from '../graphdriver/index.js'
import { FileMetadataStore, StoreLock } from '../metadata/index.js'
import { StoreRootNotFoundError } from './errors.js'
import type { LayerStoreOptions } from './layer.js'
import { SESSION_HOLDER_PREFIX } from './session.js'
import { StoreCore } from './store-core.js'

const debug = createDebug('layerstore:layer')

/**
 * The holder of handles a read-only store hands out without a holder name. Nothing is
 * persisted for it: it names the (in-memory only) session of a read-only store.
 */
export const READ_ONLY_HOLDER = `${SESSION_HOLDER_PREFIX}read-only`

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  )
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  )
}

/**
 * Opens the parts of a read-only store; see the file comment.
 *
 * @throws StoreRootNotFoundError (no root, no layerdb or no driver home: nothing to read),
 *   `ReadOnlyNotSupportedError` (the driver's factory has no `openReadOnly`), the graph
 *   driver module's selection errors (`PriorDriverError`, `UnknownDriverError`, …).
 */
export async function openReadOnlyCore(options: LayerStoreOptions): Promise<StoreCore> {
  const root = resolve(options.root)
  if (!(await isDirectory(root))) throw new StoreRootNotFoundError(root, root)
  const registry = options.registry ?? new DriverRegistry(defaultDrivers)
  for (const plugin of options.driverPlugins ?? []) await registry.loadPlugin(plugin)
  if (options.driver === undefined && (await findPriorDrivers(root, registry)).length === 0) {
    throw new StoreRootNotFoundError(root, `a driver home with layers under ${root} (name the driver to open an empty one)`)
  }
  const lockPath = StoreLock.forRoot(root).path
  const lock = (await isFile(lockPath)) ? StoreLock.forRoot(root) : undefined
  const wait = options.waitForLock ?? true
  const start = async (): Promise<StoreCore> => {
    const selected = await selectDriver({
      root,
      registry,
      readOnly: true,
      ...(options.driver !== undefined ? { driver: options.driver } : {}),
      ...(options.driverOptions ? { options: options.driverOptions } : {}),
    })
    const metadata = await FileMetadataStore.open(root, selected.name, { readOnly: true })
    for (const dir of [metadata.layout.root, selected.driver.home]) {
      if (!(await isDirectory(dir))) {
        await metadata.close()
        throw new StoreRootNotFoundError(root, dir)
      }
    }
    const maxDepth = Math.min(options.maxDepth ?? MAX_LAYER_DEPTH, selected.driver.capabilities.maxDepth)
    return new StoreCore({ root, driver: selected.driver, metadata, lock, session: undefined, readOnly: true, wait, maxDepth })
  }
  const core = lock ? await lock.withShared(start, { wait }) : await start()
  debug('opened %s read-only with driver %s (%s)', root, core.driver.name, lock ? 'shared lock' : 'no lock')
  return core
}
