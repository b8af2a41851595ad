/**
 * The metadata module: moby's layerdb (transactions, atomic writes, orphan detection) and the
 * store lock. The only module that knows layerdb paths. Internal helpers (durable-fs, the
 * scan functions) stay private; the store's methods are the way in. Owner tokens are public:
 * the layer store ties its session references to one, so a dead process's are found.
 */
export * from './errors.js'
export * from './ids.js'
export * from './json.js'
export * from './layout.js'
export * from './crash-points.js'
export type { LayerRecord, MountRecord } from './record-reader.js'
export * from './transaction.js'
export type { RemovalMark } from './removal-mark.js'
export { isCleanReport } from './orphans.js'
export type { BrokenLayer, CleanupResult, OrphanMount, OrphanRemoval, OrphanReport, OrphanWriteSet } from './orphans.js'
export * from './file-store.js'
export { FLUSH_AHEAD_STEP, FlushAhead } from './flush-ahead.js'
export * from './store-lock.js'
export { OwnerProbe, OwnerToken } from './owner.js'
