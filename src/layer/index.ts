/**
 * The layer module: the `LayerStore` (register / get / release / RW layers / mounts / tar
 * streams / cleanup), chain IDs, the empty layer, and the store's typed errors.
 * One `export … from` line per file, so that parallel additions merge trivially.
 */
export * from './layer.js'
export * from './errors.js'
export * from './chain-id.js'
export * from './crash-points.js'
export { LayerStore } from './layer-store.js'
export { READ_ONLY_HOLDER } from './read-only-open.js'
export { isEmptyCleanup } from './store-cleanup.js'
export type { StoreCleanupReport } from './store-cleanup.js'
export type { DeletionFailure } from './store-core.js'
export { SESSION_HOLDER_PREFIX, MAX_HOLDER_LENGTH, checkHolder } from './session.js'
export { decompress } from './decompress.js'
export type { DecompressedInput, DecompressOptions } from './decompress.js'
export { listDriverIDs } from './driver-ids.js'
