/**
 * Internal (not exported by the package): one way to await independent operations of one
 * step, shared by the store and the drivers.
 */

/**
 * Awaits independent operations: all settle before the first failure is thrown, so that the
 * clean-up that follows a failure (a cancel, an `rm`) races none of them.
 */
export async function settleAll(operations: ReadonlyArray<Promise<unknown>>): Promise<void> {
  for (const result of await Promise.allSettled(operations)) if (result.status === 'rejected') throw result.reason
}
