import type { Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import { emit, onePositional, withStore } from '../store.js'

/** `layerctl rm`: removes RW layer NAME (refused while mounted); prints layers deleted with it. */
export const rmCommand: Command = {
  name: 'rm',
  summary: 'remove RW layer NAME (it must be unmounted); prints read-only layers deleted with it',
  usage: 'rm NAME',
  examples: ['layerctl unmount web1 && layerctl rm web1'],
  options: {},
  async run(ctx) {
    const name = onePositional(ctx, 'NAME')
    const result = await withStore(ctx, async (store) => store.releaseRWLayer(await store.getRWLayer(name)))
    emit(ctx, { name, ...result }, () => {
      if (ctx.quiet) return []
      if (!result.removed) return [`${name} is still held by ${result.remainingHandles} live handle(s) elsewhere; not removed`]
      return [`removed ${name}`, ...result.deleted.map((d) => `deleted: ${d.chainID}`)]
    })
    return EXIT.ok
  },
}
