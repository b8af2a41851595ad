import { UsageError, type Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import { emit, table, withStore } from '../store.js'

/** `layerctl status`: the driver's status lines and the store's counts. */
export const statusCommand: Command = {
  name: 'status',
  summary: "the driver's status lines and the store's counts",
  usage: 'status',
  examples: ['layerctl status', 'layerctl --root /tmp/ls status --json'],
  options: {},
  async run(ctx) {
    if (ctx.positionals.length > 0) throw new UsageError(`unexpected argument '${ctx.positionals[0]}'`)
    const doc = await withStore(ctx, async (store) => {
      const layers = [...(await store.map()).values()]
      return {
        root: store.root,
        driver: store.driverName,
        driverStatus: (await store.driverStatus()).map(([label, value]) => ({ label, value })),
        layers: layers.length,
        bytes: layers.reduce((a, l) => a + l.diffSize, 0),
        rwLayers: (await store.listRWLayers()).length,
        maxDepth: store.maxDepth,
      }
    })
    emit(ctx, doc, () => [
      ...table([
        ['Root:', doc.root],
        ['Driver:', doc.driver],
        ...doc.driverStatus.map((s) => [` ${s.label}:`, s.value]),
        ['Layers:', String(doc.layers)],
        ['Layer bytes:', String(doc.bytes)],
        ['RW layers:', String(doc.rwLayers)],
        ['Max depth:', String(doc.maxDepth)],
      ]),
    ])
    return EXIT.ok
  },
}
