/**
 * Errors of the benchmark suite. Each has a stable `code` and a `kind`, so that `layerctl`
 * maps it to an exit status like any library error.
 */

/** A workload's tars are not there. The message says how to build them. */
export class WorkloadMissingError extends Error {
  override readonly name = 'WorkloadMissingError'
  readonly code = 'ERR_BENCH_WORKLOAD_MISSING'
  readonly kind = 'not-found'
  constructor(
    readonly workload: string,
    readonly path: string,
    hint: string,
  ) {
    super(`workload ${workload}: ${path} is missing; ${hint}`)
  }
}

/** A bench option that cannot be honoured (an unknown workload, a depth beyond the chain). */
export class BenchOptionError extends Error {
  override readonly name = 'BenchOptionError'
  readonly code = 'ERR_BENCH_OPTION'
  readonly kind = 'invalid-argument'
}

/** A timed child process (ours or a reference tool) failed. */
export class BenchStepError extends Error {
  override readonly name = 'BenchStepError'
  readonly code = 'ERR_BENCH_STEP_FAILED'
  readonly kind = 'system'
  constructor(
    readonly step: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`${step} failed: ${detail}`, options)
  }
}

/** SIGINT or SIGTERM stopped the run; everything it made was unmounted and deleted. */
export class BenchInterruptedError extends Error {
  override readonly name = 'BenchInterruptedError'
  readonly code = 'ERR_BENCH_INTERRUPTED'
  readonly kind = 'system'
  constructor(
    readonly signal: 'SIGINT' | 'SIGTERM',
    /** The conventional exit status: 128 + the signal's number. */
    readonly exitCode: number,
  ) {
    super(`interrupted by ${signal}`)
  }
}
