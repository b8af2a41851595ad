/**
 * The error convention shared by every module (see STYLE.md, "Errors").
 *
 * Each module exports its own error classes from its `errors.ts`. There is no shared base
 * class, so a leaf module such as `tarsplit/` depends on nothing of ours: an error only has
 * to carry a stable `code` and a `kind`. Callers branch on those (or `instanceof`), never on
 * the message text.
 */

/**
 * The category of an error, after containerd's errdefs and moby's NotSupported marker.
 * `layerctl` maps a kind to its exit status.
 */
export type ErrorKind =
  | 'invalid-argument' // the caller passed something malformed (usage error)
  | 'not-found' // a layer, mount, file or driver that does not exist
  | 'already-exists' // a name or ID that is taken
  | 'conflict' // in use, still mounted, still referenced
  | 'bad-input' // corrupt, truncated or hostile input data; a digest mismatch
  | 'unsafe-path' // an entry that would reach outside its root
  | 'not-supported' // this kernel, filesystem or driver cannot do it
  | 'locked' // the store is locked by another process
  | 'no-space' // the filesystem is full
  | 'system' // an operating-system call failed for another reason
  | 'internal' // a broken invariant: a bug

/** The shape every layerstore error has. */
export interface KindedError extends Error {
  readonly code: string
  readonly kind: ErrorKind
}

/** True when `err` follows the convention (has a string `code` and a `kind`). */
export function isKindedError(err: unknown): err is KindedError {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'string' &&
    typeof (err as { kind?: unknown }).kind === 'string'
  )
}

/** True when `err` is a layerstore error of the given kind. */
export function isKind(err: unknown, kind: ErrorKind): boolean {
  return isKindedError(err) && err.kind === kind
}

/** True when `err` is a layerstore error with the given stable code. */
export function hasCode(err: unknown, code: string): boolean {
  return isKindedError(err) && err.code === code
}
