/**
 * Driver selection (moby's `graphdriver.New`), with the prior-driver check: a root whose
 * layers belong to one driver is never silently switched to another, or the user's images
 * would "disappear".
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import createDebug from 'debug'
import { isKind } from '../errors.js'
import type { Driver, DriverFactory } from './driver.js'
import { DriverReadOnlyOnlyError, MultiplePriorDriversError, NoSupportedDriverError, PriorDriverError } from './errors.js'
import type { DriverRegistry } from './registry.js'

const debug = createDebug('layerstore:graphdriver')

/** Options of {@link selectDriver}. */
export interface SelectDriverOptions {
  /** The store root; each driver's home is `<root>/<name>`. */
  readonly root: string
  /** Where the candidates come from. */
  readonly registry: DriverRegistry
  /** The driver asked for by name; absent: choose automatically. */
  readonly driver?: string
  /** Driver options passed to the chosen factory (`--driver-opt k=v`). */
  readonly options?: Readonly<Record<string, string>>
  /**
   * Start the driver for a read-only store (the factory's `openReadOnly`: nothing is
   * created, probed or mounted). Auto-selection is then refused: a read-only open needs a
   * driver named or found prior, since an empty root has nothing to read.
   */
  readonly readOnly?: boolean
}

/** How the driver was chosen. */
export type SelectionReason = 'explicit' | 'prior' | 'auto'

/** What {@link selectDriver} returns. */
export interface SelectedDriver {
  readonly driver: Driver
  readonly name: string
  readonly reason: SelectionReason
  /** Drivers tried before it in auto mode and why each was skipped. */
  readonly skipped: ReadonlyArray<{ readonly driver: string; readonly reason: string }>
}

/**
 * Chooses and starts a driver for `root`:
 * 1. **Prior drivers**: registered drivers whose home under `root` holds layers.
 * 2. **Explicit name**: started as asked; if another driver is prior (and the asked one is
 *    not), `PriorDriverError` names both. Its own errors propagate.
 * 3. **Prior** (no name): one prior driver is started, and if it fails that error propagates
 *    (never a switch); several are `MultiplePriorDriversError`.
 * 4. **Auto**: drivers with a priority, lowest first; a `'not-supported'` error skips to the
 *    next, any other error aborts. None left: `NoSupportedDriverError` with every reason.
 */
export async function selectDriver(options: SelectDriverOptions): Promise<SelectedDriver> {
  const { root, registry } = options
  const prior = await findPriorDrivers(root, registry)
  const start = (name: string): Promise<Driver> => {
    const init = { home: join(root, name), ...(options.options ? { options: options.options } : {}) }
    return options.readOnly ? registry.createReadOnly(name, init) : registry.create(name, init)
  }

  if (options.driver !== undefined) {
    registry.get(options.driver) // UnknownDriverError before anything else
    const other = prior.find((p) => p !== options.driver)
    if (other !== undefined && !prior.includes(options.driver)) {
      throw new PriorDriverError(root, options.driver, other)
    }
    return { driver: await start(options.driver), name: options.driver, reason: 'explicit', skipped: [] }
  }

  if (prior.length > 1) throw new MultiplePriorDriversError(root, prior)
  const only = prior[0]
  if (only !== undefined) {
    debug('using prior driver %s in %s', only, root)
    return { driver: await start(only), name: only, reason: 'prior', skipped: [] }
  }

  const skipped: Array<{ driver: string; reason: string }> = []
  if (options.readOnly) {
    throw new NoSupportedDriverError(root, [{ driver: '*', reason: 'no driver home under the root holds layers, and a read-only open creates none' }])
  }
  for (const factory of registry.byPriority()) {
    try {
      const driver = await start(factory.name)
      debug('selected driver %s for %s', factory.name, root)
      return { driver, name: factory.name, reason: 'auto', skipped }
    } catch (err) {
      if (!isKind(err, 'not-supported')) throw err
      const reason = err instanceof Error ? err.message : String(err)
      debug('driver %s skipped: %s', factory.name, reason)
      skipped.push({ driver: factory.name, reason })
    }
  }
  throw new NoSupportedDriverError(root, skipped)
}

/**
 * For a writable open, before anything is created under `root`: refuses a `readOnlyOnly`
 * driver asked for by name or found prior (a Docker root) with `DriverReadOnlyOnlyError`.
 */
export async function refuseReadOnlyOnly(root: string, registry: DriverRegistry, driver: string | undefined): Promise<void> {
  const names = driver !== undefined ? [driver] : await findPriorDrivers(root, registry)
  for (const name of names) {
    if (registry.has(name) && registry.get(name).readOnlyOnly) throw new DriverReadOnlyOnlyError(name, join(root, name))
  }
}

/**
 * The registered drivers whose home under `root` holds layers (by the factory's
 * `holdsLayers`, else by being a non-empty directory; an unreadable home counts as holding
 * layers, as in moby), in priority order then registration order.
 */
export async function findPriorDrivers(root: string, registry: DriverRegistry): Promise<string[]> {
  const ordered = orderForPrior(registry)
  const found: string[] = []
  for (const factory of ordered) {
    if (await holdsLayers(factory, join(root, factory.name))) found.push(factory.name)
  }
  return found
}

function orderForPrior(registry: DriverRegistry): DriverFactory[] {
  const byPriority = registry.byPriority()
  const rest = registry
    .names()
    .filter((n) => !byPriority.some((f) => f.name === n))
    .map((n) => registry.get(n))
  return [...byPriority, ...rest]
}

async function holdsLayers(factory: DriverFactory, home: string): Promise<boolean> {
  if (factory.holdsLayers) return factory.holdsLayers(home)
  try {
    return (await readdir(home)).length > 0
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT'
  }
}
