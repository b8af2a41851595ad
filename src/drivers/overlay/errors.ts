/**
 * Typed errors of the overlay driver. Contract misuse (missing layer, id in use, bad option)
 * uses the graph driver's own classes; these are the failures only overlay has: its on-disk
 * bookkeeping (`link`, `lower`, `l/`) being damaged, a chain too deep for one mount, and a
 * mount the kernel refused.
 */
import type { ErrorKind } from '../../errors.js'
import { isKindedError } from '../../errors.js'

/**
 * A layer's `link` or `lower` file is missing, empty or malformed, or its `l/` link is gone:
 * the state moby/moby#46498 and #35747 report as ELOOP or "readlink …/l: invalid argument"
 * at mount time. We refuse before mounting and name the file. Remove the layer and register
 * it again.
 */
export class OverlayLayerCorruptError extends Error {
  override readonly name = 'OverlayLayerCorruptError'
  readonly code = 'ERR_OVERLAY_LAYER_CORRUPT'
  readonly kind = 'bad-input'
  constructor(
    readonly id: string,
    /** The damaged file, absolute. */
    readonly path: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`overlay: layer ${id} is damaged: ${path}: ${reason}; remove the layer and register it again`, options)
  }
}

/**
 * A new layer would have more lower layers than one overlay mount may stack (moby's
 * "max depth exceeded"). Squash the image or start from a shallower parent.
 */
export class OverlayMaxDepthError extends Error {
  override readonly name = 'OverlayMaxDepthError'
  readonly code = 'ERR_MAX_DEPTH_EXCEEDED'
  readonly kind = 'invalid-argument'
  constructor(
    readonly id: string,
    readonly parent: string,
    /** The number of lower layers the new layer would have. */
    readonly depth: number,
    readonly maxDepth: number,
  ) {
    super(
      `overlay: cannot create layer ${id} on ${parent}: it would stack ${depth} lower layers, ` +
        `more than ${maxDepth}; squash the image or use a shallower parent`,
    )
  }
}

/**
 * No way of expressing the mount fits the kernel's limits: the mount(2) option string is
 * longer than a page even with short relative links, or a path is too long for fsconfig
 * (moby's "cannot mount layer, mount label too large"). Use a shorter home path.
 */
export class OverlayMountTooLongError extends Error {
  override readonly name = 'OverlayMountTooLongError'
  readonly code = 'ERR_OVERLAY_MOUNT_TOO_LONG'
  readonly kind = 'not-supported'
  constructor(
    readonly id: string,
    /** Bytes the shortest option string needs, NUL included. */
    readonly length: number,
    /** The kernel's budget (one page). */
    readonly limit: number,
  ) {
    super(
      `overlay: cannot mount layer ${id}: its mount options need ${length} bytes, ` +
        `more than the kernel's ${limit}; use a shorter driver home or a kernel with lowerdir+ (Linux 6.8+)`,
    )
  }
}

/**
 * Mounting (or unmounting) a layer failed. `cause` holds the syscall error; `kind` is the
 * cause's when it has one (EBUSY → conflict, ENOENT → not-found…), else `system`.
 */
export class OverlayMountError extends Error {
  override readonly name = 'OverlayMountError'
  readonly code = 'ERR_OVERLAY_MOUNT'
  readonly kind: ErrorKind
  constructor(
    readonly id: string,
    /** The mount point. */
    readonly target: string,
    /** What was attempted, e.g. `'mount overlay (lowerdir+)'`, `'unmount'`. */
    readonly operation: string,
    options?: ErrorOptions,
  ) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : ''
    super(`overlay: ${operation} of layer ${id} on ${target} failed${cause}`, options)
    this.kind = isKindedError(options?.cause) ? options.cause.kind : 'system'
  }
}

