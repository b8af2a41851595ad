import type { Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import { emit, onePositional, refOf, withStore } from '../store.js'

/** `layerctl commit`: registers RW layer NAME's changes as a new read-only layer on its parent. */
export const commitCommand: Command = {
  name: 'commit',
  summary: "register RW layer NAME's changes as a new read-only layer; the RW layer stays",
  usage: 'commit NAME [--ref REF]',
  examples: ['layerctl commit web1 --ref web:v2'],
  options: {
    ref: { type: 'string', arg: 'REF', help: "who holds the new layer (default 'layerctl')" },
  },
  async run(ctx) {
    const name = onePositional(ctx, 'NAME')
    const holder = refOf(ctx)
    const layer = await withStore(ctx, async (store) => store.commit(await store.getRWLayer(name), { holder }))
    emit(
      ctx,
      { name, chainID: layer.chainID, diffID: layer.diffID, parent: layer.parent?.chainID ?? null, size: layer.size, diffSize: layer.diffSize, depth: layer.depth, ref: holder },
      () => (ctx.quiet ? [layer.chainID] : [`committed ${name}: ${layer.chainID}`, `diff ID: ${layer.diffID}`, `size:    ${layer.diffSize} bytes`, `ref:     ${holder}`]),
    )
    return EXIT.ok
  },
}
