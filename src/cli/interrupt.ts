/**
 * Ctrl-C during long store work: the first SIGINT (or SIGTERM) aborts through the store's
 * AbortSignal, so the store cancels its transaction and removes what it made before the
 * process exits; a second one gets the default action (the process dies at once, and the
 * store's crash safety leaves only orphans that the next open removes).
 */

/** Exit status after an interrupt, by shell convention 128 + SIGINT. */
export const EXIT_INTERRUPTED = 130

/** The abort reason: a typed error, so that it reads like every other failure. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError'
  readonly code = 'ERR_INTERRUPTED'
  readonly kind = 'system'
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}; nothing was stored`)
  }
}

/** Runs `fn` with a signal that aborts on the first SIGINT/SIGTERM; restores the handlers after. */
export async function withInterrupt<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM']
  const handlers = signals.map((sig) => {
    const handler = (): void => {
      controller.abort(new InterruptedError(sig))
      // The next one kills: a user pressing Ctrl-C twice means it.
      process.off(sig, handler)
    }
    process.on(sig, handler)
    return [sig, handler] as const
  })
  try {
    return await fn(controller.signal)
  } finally {
    for (const [sig, handler] of handlers) process.off(sig, handler)
  }
}
