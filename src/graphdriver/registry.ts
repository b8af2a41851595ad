/**
 * The driver registry: built-in factories and third-party plugin modules, by name. There is no
 * global registry (moby's `Register` map is package state); the store or `layerctl` makes one,
 * e.g. `new DriverRegistry(builtinDrivers)`, and loads plugins into it.
 *
 * A plugin is an ES module whose `default` export (or `driverFactory` export) is a
 * {@link DriverFactory}. It is loaded by module specifier: a path (absolute, `./`, `../`, or a
 * `file:` URL, resolved against `from`) or a package name (resolved from `from`'s
 * `node_modules`, then from layerstore's own).
 */
import { stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { isAbsolute, resolve as resolvePath } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import createDebug from 'debug'
import { isKindedError } from '../errors.js'
import type { Driver, DriverFactory, DriverInitOptions, ProtoDriver } from './driver.js'
import { isDiffDriver } from './driver.js'
import { DriverAlreadyRegisteredError, DriverInitError, PluginLoadError, ReadOnlyNotSupportedError, UnknownDriverError } from './errors.js'
import { naiveDiff } from './naive-diff.js'

const debug = createDebug('layerstore:graphdriver')

// A driver name is its home's base name, so it must be a plain, portable directory name.
const DRIVER_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/

/** Options of {@link DriverRegistry.loadPlugin}. */
export interface LoadPluginOptions {
  /** Directory that relative paths and package names resolve from. Default: `process.cwd()`. */
  readonly from?: string
}

/** Named driver factories; see the module doc. */
export class DriverRegistry {
  readonly #factories = new Map<string, DriverFactory>()
  readonly #sources = new Map<string, string>()

  /** A registry holding `factories` (e.g. the built-ins), registered in order. */
  constructor(factories: Iterable<DriverFactory> = []) {
    for (const f of factories) this.register(f)
  }

  /**
   * Adds `factory`. `DriverAlreadyRegisteredError` if its name is taken;
   * `PluginLoadError` ('invalid-factory') if it is not a factory or its name is not
   * `[a-z0-9][a-z0-9_.-]*`. `source` (a plugin specifier) only improves messages.
   */
  register(factory: DriverFactory, source = 'built-in'): void {
    const problem = factoryProblem(factory)
    if (problem) throw new PluginLoadError(source, 'invalid-factory', problem)
    if (this.#factories.has(factory.name)) throw new DriverAlreadyRegisteredError(factory.name, source)
    this.#factories.set(factory.name, factory)
    this.#sources.set(factory.name, source)
    debug('registered driver %s from %s', factory.name, source)
  }

  /** True if a driver of that name is registered. */
  has(name: string): boolean {
    return this.#factories.has(name)
  }

  /** The factory named `name`; `UnknownDriverError` (listing the known names) otherwise. */
  get(name: string): DriverFactory {
    const f = this.#factories.get(name)
    if (!f) throw new UnknownDriverError(name, this.names())
    return f
  }

  /** Where the driver `name` came from: `'built-in'` or the plugin specifier. */
  source(name: string): string | undefined {
    return this.#sources.get(name)
  }

  /** Registered names, in registration order. */
  names(): string[] {
    return [...this.#factories.keys()]
  }

  /** Factories with a priority, lowest first (ties keep registration order): the auto order. */
  byPriority(): DriverFactory[] {
    return [...this.#factories.values()]
      .filter((f) => typeof f.priority === 'number')
      .sort((a, b) => (a.priority ?? 0) - (b.priority ?? 0))
  }

  /**
   * Imports the plugin module `specifier`, registers its factory and returns it.
   * `PluginLoadError` with reason `'not-found'` (nothing at that path or package name),
   * `'import-failed'` (the module threw while loading; the cause has its error), `'no-factory'`
   * or `'invalid-factory'`; `DriverAlreadyRegisteredError` if the name is taken.
   */
  async loadPlugin(specifier: string, options: LoadPluginOptions = {}): Promise<DriverFactory> {
    const from = options.from ?? process.cwd()
    const url = await resolvePlugin(specifier, from)
    let mod: Record<string, unknown>
    try {
      mod = (await import(url)) as Record<string, unknown>
    } catch (err) {
      throw new PluginLoadError(specifier, 'import-failed', errorText(err), { cause: err })
    }
    const factory = mod['default'] ?? mod['driverFactory']
    if (factory === undefined) {
      throw new PluginLoadError(specifier, 'no-factory', 'the module has neither a default nor a driverFactory export')
    }
    this.register(factory as DriverFactory, specifier)
    return factory as DriverFactory
  }

  /**
   * Starts driver `name` on `options.home` and returns a complete driver: a {@link ProtoDriver}
   * without diff methods is wrapped in `naiveDiff`. Errors: `UnknownDriverError`; the
   * factory's own typed errors as they are (`DriverNotSupportedError` lets selection try the
   * next); any other error wrapped in `DriverInitError`.
   */
  async create(name: string, options: DriverInitOptions): Promise<Driver> {
    const factory = this.get(name)
    return this.#start(name, options, () => factory.create(options))
  }

  /**
   * Starts driver `name` on an existing `options.home` for a read-only store, through its
   * factory's `openReadOnly` (which creates, probes and mounts nothing). Errors as
   * {@link create}, plus `ReadOnlyNotSupportedError` when the factory has no `openReadOnly`.
   */
  async createReadOnly(name: string, options: DriverInitOptions): Promise<Driver> {
    const factory = this.get(name)
    const open = factory.openReadOnly
    if (typeof open !== 'function') {
      throw new ReadOnlyNotSupportedError(name, 'open', 'cannot be opened read-only: its factory has no openReadOnly (starting it may write to its home)')
    }
    return this.#start(name, options, () => open.call(factory, options))
  }

  async #start(name: string, options: DriverInitOptions, make: () => Promise<ProtoDriver | Driver>): Promise<Driver> {
    let driver
    try {
      driver = await make()
    } catch (err) {
      if (isKindedError(err)) throw err
      throw new DriverInitError(name, options.home, { cause: err })
    }
    if (driver.name !== name) {
      throw new DriverInitError(name, options.home, {
        cause: new Error(`the factory returned a driver named ${JSON.stringify(driver.name)}`),
      })
    }
    return isDiffDriver(driver) ? driver : naiveDiff(driver)
  }
}

function factoryProblem(factory: unknown): string | null {
  if (typeof factory !== 'object' || factory === null) return 'the export is not an object'
  const f = factory as Partial<DriverFactory>
  if (typeof f.name !== 'string' || !DRIVER_NAME.test(f.name)) {
    return `the factory's name ${JSON.stringify(f.name)} is not [a-z0-9][a-z0-9_.-]* (up to 64 characters)`
  }
  if (typeof f.create !== 'function') return `the factory ${f.name} has no create() function`
  if (f.priority !== undefined && (typeof f.priority !== 'number' || !Number.isFinite(f.priority))) {
    return `the factory ${f.name} has a priority that is not a finite number`
  }
  return null
}

function isPathSpecifier(spec: string): boolean {
  return isAbsolute(spec) || spec.startsWith('./') || spec.startsWith('../') || spec.startsWith('file:')
}

async function resolvePlugin(specifier: string, from: string): Promise<string> {
  if (specifier === '') throw new PluginLoadError(specifier, 'not-found', 'empty specifier')
  if (isPathSpecifier(specifier)) {
    const path = specifier.startsWith('file:') ? fileURLToPath(specifier) : resolvePath(from, specifier)
    try {
      if (!(await stat(path)).isFile()) throw new Error(`${path} is not a file`)
    } catch (err) {
      throw new PluginLoadError(specifier, 'not-found', `no module file at ${path}`, { cause: err })
    }
    return pathToFileURL(path).href
  }
  // A package name: first from the caller's directory, as a plugin is usually installed
  // beside the application; then from layerstore's own module (a dependency of ours).
  try {
    return pathToFileURL(createRequire(resolvePath(from, 'noop.js')).resolve(specifier)).href
  } catch (first) {
    try {
      return import.meta.resolve(specifier)
    } catch {
      throw new PluginLoadError(specifier, 'not-found', `no package ${specifier} from ${from}`, { cause: first })
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
