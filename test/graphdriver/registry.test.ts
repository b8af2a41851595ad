import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { builtinDrivers } from '../../src/drivers/index.js'
import type { DriverFactory, ProtoDriver } from '../../src/graphdriver/index.js'
import {
  DriverNotSupportedError,
  DriverRegistry,
  findPriorDrivers,
  isDiffDriver,
  selectDriver,
  unmountAll,
} from '../../src/graphdriver/index.js'
import { hasCode, isKind } from '../../src/errors.js'

const REPO = resolve(import.meta.dirname, '../..')
const SAMPLE = join(REPO, 'test/fixtures/sample-plugin/index.ts')

let tmp: string
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'layerstore-registry-'))
})
afterEach(async () => {
  await unmountAll(tmp)
  await rm(tmp, { recursive: true, force: true })
})

/** A factory for selection tests: a real object whose create fails the way we choose. */
function failing(name: string, priority: number | undefined, err: () => Error): DriverFactory {
  return { name, priority, create: () => Promise.reject(err()) }
}

/** A factory that starts the sample plugin under another name, with a priority. */
async function sampleAs(name: string, priority?: number): Promise<DriverFactory> {
  const registry = new DriverRegistry()
  const sample = await registry.loadPlugin(SAMPLE)
  return {
    name,
    priority,
    async create(init) {
      const d = (await sample.create(init)) as ProtoDriver
      return new Proxy(d, {
        get(target, key) {
          if (key === 'name') return name
          const value: unknown = Reflect.get(target, key, target)
          // Methods run on the real object: its #private fields are not on the proxy.
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
        },
      })
    },
  }
}

async function writeModule(path: string, text: string): Promise<string> {
  await mkdir(join(path, '..'), { recursive: true })
  await writeFile(path, text)
  return path
}

describe('DriverRegistry', () => {
  it('holds the built-ins and refuses a duplicate name', () => {
    const r = new DriverRegistry(builtinDrivers)
    expect(r.names()).toContain('vfs')
    expect(r.source('vfs')).toBe('built-in')
    const vfs = builtinDrivers.find((f) => f.name === 'vfs')
    expect(vfs).toBeDefined()
    let err: unknown
    try {
      r.register(vfs as DriverFactory)
    } catch (e) {
      err = e
    }
    expect(err).toMatchObject({ code: 'ERR_DRIVER_ALREADY_REGISTERED', kind: 'already-exists', driver: 'vfs' })
  })

  it('names the known drivers for an unknown one', async () => {
    const r = new DriverRegistry(builtinDrivers)
    expect(() => r.get('zfs')).toThrow(expect.objectContaining({ code: 'ERR_UNKNOWN_DRIVER', kind: 'not-found', driver: 'zfs' }))
    await expect(r.create('zfs', { home: tmp })).rejects.toMatchObject({ code: 'ERR_UNKNOWN_DRIVER', known: r.names() })
  })

  it('loads a plugin by absolute path, relative path and file URL, and wraps a ProtoDriver in naiveDiff', async () => {
    for (const spec of [SAMPLE, `./${relative(REPO, SAMPLE)}`, pathToFileURL(SAMPLE).href]) {
      const r = new DriverRegistry(builtinDrivers)
      const f = await r.loadPlugin(spec, { from: REPO })
      expect(f.name).toBe('copy')
      expect(r.source('copy')).toBe(spec)
      const driver = await r.create('copy', { home: join(tmp, spec.length.toString()) })
      expect(isDiffDriver(driver)).toBe(true)
      expect(driver.capabilities.nativeDiff).toBe(false)
      await driver.cleanup()
    }
  })

  it('loads a plugin by package name from the caller’s node_modules', async () => {
    const pkg = join(tmp, 'app', 'node_modules', 'layerstore-driver-null')
    await writeModule(join(pkg, 'package.json'), JSON.stringify({ name: 'layerstore-driver-null', type: 'module', main: 'main.js' }))
    await writeModule(
      join(pkg, 'main.js'),
      `export const driverFactory = { name: 'null', priority: 5, async create() { throw new Error('unused') } }\n`,
    )
    const r = new DriverRegistry()
    const f = await r.loadPlugin('layerstore-driver-null', { from: join(tmp, 'app') })
    expect(f.name).toBe('null')
    expect(r.byPriority().map((x) => x.name)).toEqual(['null'])
    await expect(r.loadPlugin('layerstore-driver-absent', { from: join(tmp, 'app') })).rejects.toMatchObject({
      code: 'ERR_DRIVER_PLUGIN_LOAD',
      reason: 'not-found',
      kind: 'not-found',
    })
  })

  it('reports missing, throwing, empty and malformed plugins with typed errors', async () => {
    const r = new DriverRegistry(builtinDrivers)
    const cases: Array<[string, string, string | null]> = [
      ['missing.js', 'not-found', null],
      ['throws.js', 'import-failed', `throw new Error('plugin exploded')\n`],
      ['empty.js', 'no-factory', `export const nothing = 1\n`],
      ['badname.js', 'invalid-factory', `export default { name: 'Bad Name', create() {} }\n`],
      ['nocreate.js', 'invalid-factory', `export default { name: 'nocreate' }\n`],
    ]
    for (const [file, reason, text] of cases) {
      if (text !== null) await writeModule(join(tmp, file), text)
      const err = await r.loadPlugin(join(tmp, file)).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'ERR_DRIVER_PLUGIN_LOAD', reason, specifier: join(tmp, file) })
    }
    const thrown = await r.loadPlugin(join(tmp, 'throws.js')).catch((e: unknown) => e)
    expect((thrown as Error).cause).toMatchObject({ message: 'plugin exploded' })
    // A plugin may not take a built-in's name.
    await writeModule(join(tmp, 'dup.js'), `export default { name: 'vfs', async create() {} }\n`)
    await expect(r.loadPlugin(join(tmp, 'dup.js'))).rejects.toMatchObject({
      code: 'ERR_DRIVER_ALREADY_REGISTERED',
      driver: 'vfs',
      source: join(tmp, 'dup.js'),
    })
  })

  it('wraps a factory’s untyped failure and passes typed ones through', async () => {
    await writeModule(join(tmp, 'crash.js'), `export default { name: 'crash', async create() { throw new TypeError('oops') } }\n`)
    const r = new DriverRegistry()
    await r.loadPlugin(join(tmp, 'crash.js'))
    const err = await r.create('crash', { home: join(tmp, 'h') }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_DRIVER_INIT', kind: 'system', driver: 'crash' })
    expect((err as Error).cause).toBeInstanceOf(TypeError)
    r.register(failing('nope', 1, () => new DriverNotSupportedError('nope', 'no kernel support')))
    await expect(r.create('nope', { home: tmp })).rejects.toBeInstanceOf(DriverNotSupportedError)
  })
})

describe('selectDriver', () => {
  it('auto-selects by priority, skipping drivers that are not supported here', async () => {
    const registry = new DriverRegistry([
      failing('fast', 1, () => new DriverNotSupportedError('fast', 'not in /proc/filesystems')),
      await sampleAs('slow', 50),
    ])
    const sel = await selectDriver({ root: tmp, registry })
    expect(sel).toMatchObject({ name: 'slow', reason: 'auto' })
    expect(sel.skipped).toEqual([{ driver: 'fast', reason: expect.stringContaining('not in /proc/filesystems') }])
    await sel.driver.cleanup()
  })

  it('aborts auto-selection on an error other than not-supported', async () => {
    const registry = new DriverRegistry([
      failing('broken', 1, () => Object.assign(new Error('EIO'), { code: 'EIO', kind: 'system' })),
      await sampleAs('slow', 50),
    ])
    await expect(selectDriver({ root: tmp, registry })).rejects.toMatchObject({ code: 'EIO' })
  })

  it('fails with every reason when nothing is supported', async () => {
    const registry = new DriverRegistry([
      failing('a', 1, () => new DriverNotSupportedError('a', 'reason a')),
      failing('b', 2, () => new DriverNotSupportedError('b', 'reason b')),
    ])
    const err = await selectDriver({ root: tmp, registry }).catch((e: unknown) => e)
    expect(hasCode(err, 'ERR_NO_SUPPORTED_DRIVER')).toBe(true)
    expect(isKind(err, 'not-supported')).toBe(true)
    expect((err as { tried: unknown }).tried).toEqual([
      { driver: 'a', reason: expect.stringContaining('reason a') },
      { driver: 'b', reason: expect.stringContaining('reason b') },
    ])
  })

  it('keeps a root on its prior driver and refuses to switch silently', async () => {
    const registry = new DriverRegistry([await sampleAs('fast', 1), await sampleAs('slow', 50)])
    // The root was used with "slow": it holds a layer there.
    const first = await selectDriver({ root: tmp, registry, driver: 'slow' })
    await first.driver.create('layer1', null)
    await first.driver.cleanup()
    expect(await findPriorDrivers(tmp, registry)).toEqual(['slow'])

    const auto = await selectDriver({ root: tmp, registry })
    expect(auto).toMatchObject({ name: 'slow', reason: 'prior' })
    expect(await auto.driver.exists('layer1')).toBe(true)
    await auto.driver.cleanup()

    const err = await selectDriver({ root: tmp, registry, driver: 'fast' }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_PRIOR_DRIVER', kind: 'conflict', root: tmp, requested: 'fast', prior: 'slow' })
    expect((err as Error).message).toContain('fast')
    expect((err as Error).message).toContain('slow')
  })

  it('does not switch when the prior driver fails to start, even if it is not supported', async () => {
    await mkdir(join(tmp, 'gone', 'layer1'), { recursive: true })
    const registry = new DriverRegistry([
      await sampleAs('fast', 1),
      failing('gone', 20, () => new DriverNotSupportedError('gone', 'module missing')),
    ])
    await expect(selectDriver({ root: tmp, registry })).rejects.toMatchObject({ code: 'ERR_DRIVER_NOT_SUPPORTED', driver: 'gone' })
  })

  it('refuses to guess between several prior drivers', async () => {
    await mkdir(join(tmp, 'a', 'x'), { recursive: true })
    await mkdir(join(tmp, 'b', 'y'), { recursive: true })
    const registry = new DriverRegistry([await sampleAs('a', 1), await sampleAs('b', 2)])
    await expect(selectDriver({ root: tmp, registry })).rejects.toMatchObject({
      code: 'ERR_MULTIPLE_PRIOR_DRIVERS',
      drivers: ['a', 'b'],
    })
    // Naming one of them explicitly is the way out.
    const sel = await selectDriver({ root: tmp, registry, driver: 'b' })
    expect(sel.reason).toBe('explicit')
    await sel.driver.cleanup()
  })

  it('with the built-ins: probes in priority order, then sticks to the prior vfs root', async () => {
    const registry = new DriverRegistry(builtinDrivers)
    const auto = await selectDriver({ root: join(tmp, 'fresh'), registry })
    // The first built-in by priority that its probe did not rule out (overlay where supported).
    const firstTried = registry.byPriority().find((f) => !auto.skipped.some((s) => s.driver === f.name))
    expect(auto.name).toBe(firstTried?.name)
    if (auto.skipped.length === 0) expect(auto.name).toBe('overlay')
    else console.warn(`auto-selection skipped: ${JSON.stringify(auto.skipped)}`)
    await auto.driver.cleanup()

    const root = join(tmp, 'old')
    const vfs = await selectDriver({ root, registry, driver: 'vfs' })
    await vfs.driver.create('layer', null)
    await vfs.driver.cleanup()
    const again = await selectDriver({ root, registry })
    expect(again).toMatchObject({ name: 'vfs', reason: 'prior' })
    await again.driver.cleanup()
    if (auto.name !== 'vfs') {
      await expect(selectDriver({ root, registry, driver: auto.name })).rejects.toMatchObject({
        code: 'ERR_PRIOR_DRIVER',
        requested: auto.name,
        prior: 'vfs',
      })
    }
  })

  it('does not count an empty vfs home as prior (holdsLayers)', async () => {
    const registry = new DriverRegistry(builtinDrivers)
    const sel = await selectDriver({ root: tmp, registry, driver: 'vfs', options: { 'vfs.ro_mounts': 'false' } })
    await sel.driver.cleanup()
    expect(await findPriorDrivers(tmp, registry)).toEqual([])
    await sel.driver.create('l', null)
    expect(await findPriorDrivers(tmp, registry)).toEqual(['vfs'])
    await expect(selectDriver({ root: tmp, registry, driver: 'nonexistent' })).rejects.toMatchObject({
      code: 'ERR_UNKNOWN_DRIVER',
    })
  })
})
