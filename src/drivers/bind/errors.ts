/**
 * Typed errors of the bind driver. Contract misuse (missing layer, id in use, bad option)
 * uses the graph driver's own classes; this is the one failure only bind has.
 */
import type { ErrorKind } from '../../errors.js'
import { isKindedError } from '../../errors.js'

/**
 * Mounting or unmounting a layer's view failed. `cause` holds the syscall error; `kind` is
 * the cause's when it has one (EBUSY → conflict, EPERM → system…), else `system`.
 */
export class BindMountError extends Error {
  override readonly name = 'BindMountError'
  readonly code = 'ERR_BIND_MOUNT'
  readonly kind: ErrorKind
  constructor(
    readonly id: string,
    /** The mount point. */
    readonly target: string,
    /** What was attempted: `'bind mount'`, `'read-only remount'`, `'unmount'`. */
    readonly operation: string,
    options?: ErrorOptions,
  ) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : ''
    super(`bind: ${operation} of layer ${id} on ${target} failed${cause}`, options)
    this.kind = isKindedError(options?.cause) ? options.cause.kind : 'system'
  }
}
