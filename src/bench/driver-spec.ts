/** Which driver a bench run measures, and how to name it in the tables. */
import { drivers, graphdriver } from '../index.js'
import { BenchOptionError } from './errors.js'

/** A driver to benchmark: its name, driver options and the plugin modules that provide it. */
export interface DriverSpec {
  /** The label in tables, charts and results.json: the spec as given (`overlay:k=v`). */
  readonly label: string
  readonly name: string
  readonly options: Readonly<Record<string, string>>
  /** `--driver-plugin` modules to load before the driver is looked up. */
  readonly plugins: readonly string[]
}

/**
 * Parses `NAME` or `NAME:key=value[,key=value…]` (e.g. `overlay:overlay.mount_api=mount-data`).
 * Throws `BenchOptionError` for an option that is not key=value.
 */
export function parseDriverSpec(spec: string, plugins: readonly string[] = []): DriverSpec {
  const colon = spec.indexOf(':')
  const name = colon < 0 ? spec : spec.slice(0, colon)
  if (name === '') throw new BenchOptionError(`--driver ${JSON.stringify(spec)}: no driver name`)
  const options: Record<string, string> = {}
  if (colon >= 0) {
    for (const option of spec.slice(colon + 1).split(',')) {
      const kv = graphdriver.parseOptionKeyValue(option)
      if (kv === null) throw new BenchOptionError(`driver option ${JSON.stringify(option)} in ${JSON.stringify(spec)} is not key=value`)
      options[kv[0]] = kv[1]
    }
  }
  return { label: spec, name, options, plugins }
}

/** The drivers to run without `--driver`: every built-in one and every plugin's. */
export async function defaultDriverNames(plugins: readonly string[]): Promise<string[]> {
  const registry = new graphdriver.DriverRegistry(drivers.builtinDrivers)
  for (const p of plugins) await registry.loadPlugin(p)
  return registry.names()
}
