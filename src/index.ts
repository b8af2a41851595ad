/**
 * layerstore's public API. Modules are exported as namespaces so that each keeps its own
 * vocabulary (`tarsplit.assemble`, `archive.applyLayer`, …); the error convention is flat.
 */
export * from './errors.js'
export * as tarsplit from './tarsplit/index.js'
export * as native from './native/index.js'
export * as metadata from './metadata/index.js'
export * as graphdriver from './graphdriver/index.js'
export * as drivers from './drivers/index.js'
export * as layer from './layer/index.js'
export * as archive from './archive/index.js'
export * as io from './io/index.js'
