/**
 * The sample third-party plugin (test/fixtures/sample-plugin/) loaded through the registry by
 * file path, as `--driver-plugin ./path` would, and run through the conformance suite.
 */
import { join, resolve } from 'node:path'
import { DriverRegistry } from '../../src/graphdriver/index.js'
import { runDriverConformance } from '../../src/graphdriver/conformance.js'

const PLUGIN = join(resolve(import.meta.dirname, '../..'), 'test/fixtures/sample-plugin/index.ts')

let registry: Promise<DriverRegistry> | undefined
function loaded(): Promise<DriverRegistry> {
  registry ??= (async () => {
    const r = new DriverRegistry()
    await r.loadPlugin(PLUGIN)
    return r
  })()
  return registry
}

runDriverConformance('copy (sample plugin)', async (home) => ({
  driver: await (await loaded()).create('copy', { home }),
}))
