import type { ErrorKind } from '../errors.js'

/**
 * Exit statuses of `layerctl`, by error kind. Scripts branch on these, so they are stable:
 * 0 ok, 1 usage, 2 not found, 3 conflict / in use, 4 bad input, 5 store locked or busy,
 * 6 any other failure of the system (no space, not supported, a failed syscall, a bug).
 */
export const EXIT = {
  ok: 0,
  usage: 1,
  notFound: 2,
  conflict: 3,
  badInput: 4,
  locked: 5,
  failure: 6,
} as const

export function exitStatusFor(kind: ErrorKind | undefined): number {
  switch (kind) {
    case 'invalid-argument':
      return EXIT.usage
    case 'not-found':
      return EXIT.notFound
    case 'already-exists':
    case 'conflict':
      return EXIT.conflict
    case 'bad-input':
    case 'unsafe-path':
      return EXIT.badInput
    case 'locked':
      return EXIT.locked
    default:
      return EXIT.failure
  }
}
