import type { Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import { chainIDArg, emit, onePositional, refOf, withStore } from '../store.js'

/** `layerctl release`: drops one reference of a holder; prints the layers actually deleted. */
export const releaseCommand: Command = {
  name: 'release',
  summary: 'drop one reference to a layer; prints the layers that were deleted',
  usage: 'release CHAINID [--ref NAME]',
  examples: ['layerctl release sha256:4fc2… --ref alpine'],
  options: {
    ref: { type: 'string', arg: 'NAME', help: "the holder whose reference to drop (default 'layerctl')" },
  },
  async run(ctx) {
    const chainID = chainIDArg(onePositional(ctx, 'CHAINID'))
    const holder = refOf(ctx)
    const deleted = await withStore(ctx, (store) => store.releaseHolder(chainID, holder))
    emit(ctx, { chainID, ref: holder, deleted }, () =>
      deleted.length === 0
        ? ctx.quiet ? [] : [`released ${chainID} (${holder}); still held, nothing deleted`]
        : deleted.map((d) => (ctx.quiet ? d.chainID : `deleted: ${d.chainID} (${d.diffSize} bytes)`)),
    )
    return EXIT.ok
  },
}
