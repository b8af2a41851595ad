import type { Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import { emit, onePositional, withStore } from '../store.js'

/** `layerctl unmount`: gives back one `mount` of RW layer NAME (from any process); the last unmounts. */
export const unmountCommand: Command = {
  name: 'unmount',
  summary: 'give back one mount of RW layer NAME; the last one unmounts it',
  usage: 'unmount NAME',
  examples: ['layerctl unmount web1'],
  options: {},
  async run(ctx) {
    const name = onePositional(ctx, 'NAME')
    await withStore(ctx, async (store) => {
      // Not released: releasing the last live handle would remove the RW layer.
      const rw = await store.getRWLayer(name)
      await rw.unmount()
    })
    emit(ctx, { name, unmounted: true }, () => (ctx.quiet ? [] : [`unmounted ${name}`]))
    return EXIT.ok
  },
}
