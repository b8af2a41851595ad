import type { Command, CommandContext } from '../command.js'
import { UsageError } from '../command.js'
import { EXIT } from '../exit-status.js'
import type { LayerStore } from '../../layer/index.js'
import { emit, humanBytes, shortID, table, withStore } from '../store.js'

/** `layerctl ls`: the read-only layers (or, with `--rw`, the RW layers). */
export const lsCommand: Command = {
  name: 'ls',
  summary: 'list layers (chain ID, parent, size, references, depth); --rw lists RW layers',
  usage: 'ls [--rw] [--no-trunc]',
  examples: ['layerctl ls', 'layerctl ls --rw --json'],
  options: {
    rw: { type: 'boolean', help: 'list RW layers instead' },
    'no-trunc': { type: 'boolean', help: 'print full chain IDs' },
  },
  async run(ctx) {
    if (ctx.positionals.length > 0) throw new UsageError(`unexpected argument '${ctx.positionals[0]}'`)
    await withStore(ctx, (store) => (ctx.values.rw === true ? listRW(ctx, store) : listLayers(ctx, store)))
    return EXIT.ok
  },
}

interface LayerRow {
  chainID: string
  diffID: string
  parent: string | null
  size: number
  diffSize: number
  depth: number
  references: number
  holders: Record<string, number>
  children: number
  rwLayers: number
}

async function listLayers(ctx: CommandContext, store: LayerStore): Promise<void> {
  const rows: LayerRow[] = []
  for (const info of (await store.map()).values()) {
    const refs = await store.references(info.chainID)
    rows.push({
      chainID: info.chainID,
      diffID: info.diffID,
      parent: info.parent?.chainID ?? null,
      size: info.size,
      diffSize: info.diffSize,
      depth: info.depth,
      references: [...refs.holders.values()].reduce((a, b) => a + b, 0),
      holders: Object.fromEntries(refs.holders),
      children: refs.children.length,
      rwLayers: refs.rwLayers.length,
    })
  }
  // Base layers first, then by chain ID: a stable order that reads top-down like a chain.
  rows.sort((a, b) => a.depth - b.depth || (a.chainID < b.chainID ? -1 : 1))
  const id = (s: string | null): string => (ctx.values['no-trunc'] === true ? s ?? '-' : shortID(s))
  emit(ctx, { layers: rows }, () =>
    ctx.quiet
      ? rows.map((r) => r.chainID)
      : table([
          ['CHAIN ID', 'PARENT', 'SIZE', 'REFS', 'CHILDREN', 'RW', 'DEPTH'],
          ...rows.map((r) => [id(r.chainID), id(r.parent), humanBytes(r.diffSize), String(r.references), String(r.children), String(r.rwLayers), String(r.depth)]),
        ]),
  )
}

async function listRW(ctx: CommandContext, store: LayerStore): Promise<void> {
  const rows: Array<{ name: string; mountID: string; initID: string | null; parent: string | null; size: number }> = []
  for (const name of (await store.listRWLayers()).sort()) {
    // Not released: releasing the last live handle removes the RW layer. close() gives the
    // handle back without removing anything.
    const rw = await store.getRWLayer(name)
    rows.push({ name, mountID: rw.mountID, initID: rw.initID, parent: rw.parent?.chainID ?? null, size: await rw.size() })
  }
  const id = (s: string | null): string => (ctx.values['no-trunc'] === true ? s ?? '-' : shortID(s))
  emit(ctx, { rwLayers: rows }, () =>
    ctx.quiet
      ? rows.map((r) => r.name)
      : table([['NAME', 'PARENT', 'SIZE', 'INIT', 'MOUNT ID'], ...rows.map((r) => [r.name, id(r.parent), humanBytes(r.size), r.initID ? 'yes' : 'no', r.mountID])]),
  )
}
