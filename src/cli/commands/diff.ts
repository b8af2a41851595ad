import type { Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import { emit, onePositional, withStore } from '../store.js'

/** Docker's one-letter change kinds (`docker diff`). */
const LETTER = { added: 'A', modified: 'C', deleted: 'D' } as const

/** `layerctl diff`: the paths RW layer NAME changed against its parent. */
export const diffCommand: Command = {
  name: 'diff',
  summary: 'list the paths RW layer NAME changed (A added, C changed, D deleted)',
  usage: 'diff NAME',
  examples: ['layerctl diff web1', 'layerctl diff --json web1'],
  options: {},
  async run(ctx) {
    const name = onePositional(ctx, 'NAME')
    const changes = await withStore(ctx, async (store) => {
      // Not released: releasing the last live handle would remove the RW layer.
      const rw = await store.getRWLayer(name)
      return rw.changes()
    })
    // Paths are byte strings (one char per byte); print them as the bytes they are.
    const text = (p: string): string => Buffer.from(p, 'latin1').toString()
    emit(
      ctx,
      { name, changes: changes.map((c) => ({ path: text(c.path), kind: c.kind })) },
      () => changes.map((c) => `${LETTER[c.kind]} ${text(c.path)}`),
    )
    return EXIT.ok
  },
}
