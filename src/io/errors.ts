/**
 * Errors of the io module. Only one: a chunk lease used wrongly, which is a bug in the
 * consumer, never bad input.
 */

/** A chunk was released more often than it was held, or held after its last release. */
export class ChunkLeaseError extends Error {
  override readonly name = 'ChunkLeaseError'
  readonly code = 'ERR_CHUNK_LEASE'
  readonly kind = 'internal'

  constructor(readonly operation: 'hold' | 'release') {
    super(
      operation === 'hold'
        ? 'a chunk was held after its last release (its buffer may already hold other bytes)'
        : 'a chunk was released more often than it was held',
    )
  }
}
