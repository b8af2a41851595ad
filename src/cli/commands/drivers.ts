import { builtinDrivers } from '../../drivers/index.js'
import { DriverRegistry, findPriorDrivers, selectDriver } from '../../graphdriver/index.js'
import { UsageError, type Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import { emit, rootOf, table } from '../store.js'

/** `layerctl drivers`: the built-in and loaded drivers, which one the root selects, and why. */
export const driversCommand: Command = {
  name: 'drivers',
  summary: 'list built-in and plugin drivers, and which one the root selects and why',
  usage: 'drivers',
  examples: ['layerctl drivers', 'layerctl --root /tmp/ls --driver-plugin ./my-driver.js drivers --json'],
  options: {},
  async run(ctx) {
    if (ctx.positionals.length > 0) throw new UsageError(`unexpected argument '${ctx.positionals[0]}'`)
    const root = rootOf(ctx)
    const registry = new DriverRegistry(builtinDrivers)
    const plugins = ctx.values['driver-plugin']
    for (const plugin of Array.isArray(plugins) ? plugins : []) await registry.loadPlugin(plugin)
    const prior = await findPriorDrivers(root, registry)
    // The same selection LayerStore.open makes (it starts the driver, then we let it go).
    const selected = await selectDriver({ root, registry, ...(typeof ctx.values.driver === 'string' ? { driver: ctx.values.driver } : {}) })
    await selected.driver.cleanup()
    const rows = registry.names().map((name) => {
      const factory = registry.get(name)
      return {
        name,
        source: registry.source(name) ?? 'built-in',
        priority: factory.priority ?? null,
        prior: prior.includes(name),
        selected: name === selected.name,
        skipped: selected.skipped.find((s) => s.driver === name)?.reason ?? null,
      }
    })
    const why = { explicit: 'asked for with --driver', prior: 'the root already holds its layers', auto: 'the first supported driver by priority' }[selected.reason]
    emit(ctx, { root, selected: selected.name, reason: selected.reason, drivers: rows }, () => [
      ...table([
        ['NAME', 'SOURCE', 'PRIORITY', 'NOTE'],
        ...rows.map((r) => [r.name, r.source, r.priority === null ? '-' : String(r.priority), r.selected ? '* selected' : r.skipped ? `skipped: ${r.skipped}` : r.prior ? 'holds layers' : '']),
      ]),
      '',
      `selected: ${selected.name} (${selected.reason}: ${why})`,
    ])
    return EXIT.ok
  },
}
