import type { Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import type { LayerStore } from '../../layer/index.js'
import { chainIDArg, emit, looksLikeChainID, onePositional, withStore } from '../store.js'

/** `layerctl inspect`: everything the store knows about one layer, or one RW layer by name. */
export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'everything the store knows about one layer (by chain ID) or RW layer (by name)',
  usage: 'inspect CHAINID|NAME',
  examples: ['layerctl inspect sha256:4fc2…', 'layerctl inspect --json web1'],
  options: {},
  async run(ctx) {
    const arg = onePositional(ctx, 'CHAINID or NAME')
    const doc = await withStore(ctx, (store) => (looksLikeChainID(arg) ? inspectLayer(store, arg) : inspectRW(store, arg)))
    emit(ctx, doc, () => lines(doc))
    return EXIT.ok
  },
}

async function inspectLayer(store: LayerStore, arg: string): Promise<Record<string, unknown>> {
  const chainID = chainIDArg(arg)
  // A session reference, given back at close: it keeps the layer while we read it.
  const layer = await store.get(chainID)
  const refs = await store.references(chainID)
  const chain: string[] = []
  for (let p = layer.parent; p; p = p.parent) chain.push(p.chainID)
  return {
    type: 'layer',
    chainID: layer.chainID,
    diffID: layer.diffID,
    parent: layer.parent?.chainID ?? null,
    ancestors: chain,
    size: layer.size,
    diffSize: layer.diffSize,
    depth: layer.depth,
    cacheID: layer.cacheID,
    driver: store.driverName,
    // Our own inspection reference is not one the user made.
    holders: Object.fromEntries([...refs.holders].filter(([h]) => h !== store.sessionHolder)),
    children: refs.children,
    rwLayers: refs.rwLayers,
    ...(layer.descriptor ? { descriptor: layer.descriptor } : {}),
    driverMetadata: await layer.metadata(),
  }
}

async function inspectRW(store: LayerStore, name: string): Promise<Record<string, unknown>> {
  // Not released: releasing the last live handle would remove the RW layer.
  const rw = await store.getRWLayer(name)
  return {
    type: 'rw-layer',
    name: rw.name,
    mountID: rw.mountID,
    initID: rw.initID,
    parent: rw.parent?.chainID ?? null,
    driver: store.driverName,
    size: await rw.size(),
    changes: (await rw.changes()).length,
    driverMetadata: await rw.metadata(),
  }
}

function lines(doc: Record<string, unknown>): string[] {
  const out: string[] = []
  for (const [key, value] of Object.entries(doc)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const entries = Object.entries(value)
      out.push(`${key}:${entries.length === 0 ? ' -' : ''}`)
      for (const [k, v] of entries) out.push(`  ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    } else if (Array.isArray(value)) {
      out.push(`${key}:${value.length === 0 ? ' -' : ''}`)
      for (const v of value) out.push(`  ${String(v)}`)
    } else {
      out.push(`${key}: ${value === null ? '-' : String(value)}`)
    }
  }
  return out
}
