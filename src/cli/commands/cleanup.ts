import { UsageError, type Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import { emit, withStore } from '../store.js'

/** `layerctl cleanup`: the store's orphan sweep, on demand; prints what it removed. */
export const cleanupCommand: Command = {
  name: 'cleanup',
  summary: 'remove what crashed or interrupted operations left; prints what was removed',
  usage: 'cleanup',
  examples: ['layerctl cleanup', 'layerctl cleanup --json'],
  options: {},
  async run(ctx) {
    if (ctx.positionals.length > 0) throw new UsageError(`unexpected argument '${ctx.positionals[0]}'`)
    // The open already sweeps; report both its work and a second pass (normally empty).
    const [atOpen, now] = await withStore(ctx, async (store) => [store.openCleanup, await store.cleanup()] as const)
    const reports = [atOpen, now].filter((r) => r !== undefined)
    const all = {
      removedPaths: reports.flatMap((r) => r.removedPaths),
      removedDriverIDs: reports.flatMap((r) => r.removedDriverIDs),
      deletedLayers: reports.flatMap((r) => r.deletedLayers.map((d) => d.chainID)),
      droppedHolders: reports.flatMap((r) => r.droppedHolders),
      staleMounts: reports.flatMap((r) => r.staleMounts),
      brokenLayers: reports.flatMap((r) => r.brokenLayers.map((b) => ({ chainID: b.chainID, error: b.error.message }))),
      failures: reports.flatMap((r) => r.failures.map((f) => ({ target: f.target, error: f.error.message }))),
    }
    emit(ctx, all, () => {
      const lines = [
        ...all.removedPaths.map((p) => `removed ${p}`),
        ...all.removedDriverIDs.map((id) => `removed driver layer ${id}`),
        ...all.deletedLayers.map((id) => `deleted layer ${id}`),
        ...all.droppedHolders.map((h) => `dropped ${h.count} reference(s) of ${h.holder} on ${h.record}`),
        ...all.staleMounts.map((m) => `reset stale mount count of ${m}`),
        ...all.brokenLayers.map((b) => `broken layer ${b.chainID} (kept): ${b.error}`),
        ...all.failures.map((f) => `could not remove ${f.target}: ${f.error}`),
      ]
      return lines.length === 0 && !ctx.quiet ? ['nothing to clean up'] : lines
    })
    return all.failures.length > 0 ? EXIT.failure : EXIT.ok
  },
}
