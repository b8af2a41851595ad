/**
 * The graph driver module: the driver contract, the registry of built-in and plugin drivers,
 * selection with the prior-driver check, the mount reference counter and the naive diff
 * wrapper. The conformance suite is NOT exported here (it imports vitest): import it from
 * `layerstore/conformance` (src/graphdriver/conformance.ts).
 * One `export … from` line per file, so that parallel additions merge trivially.
 */
export * from './backing-fs.js'
export * from './bind-mount.js'
export * from './copy-dir.js'
export * from './driver.js'
export * from './errors.js'
export * from './layer-id.js'
export * from './mount-counter.js'
export * from './mount-mode.js'
export * from './unmount-all.js'
export * from './naive-diff.js'
export * from './registry.js'
export * from './scratch.js'
export * from './select.js'
export * from './errno.js'
