/**
 * The driver benchmark suite behind `layerctl bench`, built on the public API only: it is
 * also the example of how to benchmark a driver (a plugin's too) against GNU tar.
 */
export * from './driver-spec.js'
export * from './errors.js'
export * from './measure.js'
export * from './peers.js'
export * from './references.js'
export * from './report.js'
export * from './results.js'
export * from './runner.js'
export * from './scratch.js'
export * from './stats.js'
export * from './svg-chart.js'
export * from './table.js'
export * from './workloads.js'
