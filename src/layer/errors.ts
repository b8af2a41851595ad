/**
 * Typed errors of the layer store. Each has a stable `code` (named after moby's sentinel where
 * one exists) and a `kind` (see src/errors.ts); the facts are fields. The "does not exist" and
 * "name conflict" errors are the metadata module's own classes, re-exported, so that one
 * `instanceof` works whichever layer noticed first.
 */
import { isKindedError } from '../errors.js'

export {
  LayerDoesNotExistError,
  MountDoesNotExistError,
  MountNameConflictError,
  StoreLockedError,
} from '../metadata/index.js'

/**
 * moby's `ErrMaxDepthExceeded`: registering on a parent that is already `maxDepth` layers
 * deep. Nothing was changed. Squash the image to get under the limit.
 */
export class MaxDepthExceededError extends Error {
  override readonly name = 'MaxDepthExceededError'
  readonly code = 'ERR_MAX_DEPTH_EXCEEDED'
  readonly kind = 'invalid-argument'
  constructor(
    readonly parent: string,
    readonly depth: number,
    readonly maxDepth: number,
  ) {
    super(
      `max depth exceeded: parent layer ${parent} is ${depth} layers deep and a chain may hold at most ${maxDepth}; ` +
        'squash the image to fewer layers',
    )
  }
}

/**
 * moby's `ErrLayerNotRetained`: a handle that is not (or no longer) a live reference of its
 * layer was released or used, e.g. a second `release()` of the same handle, or a holder that
 * holds no reference.
 */
export class LayerNotRetainedError extends Error {
  override readonly name = 'LayerNotRetainedError'
  readonly code = 'ERR_LAYER_NOT_RETAINED'
  readonly kind = 'invalid-argument'
  constructor(
    readonly chainID: string,
    /** The holder the reference was taken for. */
    readonly holder: string,
    detail = 'the handle was already released',
  ) {
    super(`layer ${chainID} is not retained by ${JSON.stringify(holder)}: ${detail}`)
  }
}

/**
 * `registerChain` found, at its publish, that another process had registered one of its layers
 * meanwhile, after a later layer of the chain had been made on our copy: the chain cannot be
 * published as made, and nothing was stored. Rare (two processes registering the same new
 * layers at the same moment); registering the chain again references the other's layers.
 */
export class LayerChainConflictError extends Error {
  override readonly name = 'LayerChainConflictError'
  readonly code = 'ERR_LAYER_CHAIN_CONFLICT'
  readonly kind = 'conflict'
  constructor(
    /** The layer another process registered meanwhile. */
    readonly chainID: string,
    /** Our layer made on our copy of it. */
    readonly child: string,
  ) {
    super(
      `layer ${chainID} was registered by another process while this chain was being registered on its own copy ` +
        `(layer ${child} was made on that copy); nothing was stored: register the chain again`,
    )
  }
}

/** A RW layer handle that was already released, or a RW layer removed by someone else. */
export class RWLayerNotRetainedError extends Error {
  override readonly name = 'RWLayerNotRetainedError'
  readonly code = 'ERR_RW_LAYER_NOT_RETAINED'
  readonly kind = 'invalid-argument'
  constructor(readonly rwName: string) {
    super(`RW layer ${JSON.stringify(rwName)}: the handle was already released`)
  }
}

/** `releaseRWLayer` (or a commit that removes it) of a RW layer that is still mounted. */
export class RWLayerMountedError extends Error {
  override readonly name = 'RWLayerMountedError'
  readonly code = 'ERR_RW_LAYER_MOUNTED'
  readonly kind = 'conflict'
  constructor(
    readonly rwName: string,
    /** Outstanding `mount()` calls, across processes. */
    readonly mounts: number,
  ) {
    super(`RW layer ${JSON.stringify(rwName)} is still mounted (${mounts} mount${mounts === 1 ? '' : 's'}); unmount it first`)
  }
}

/** `unmount()` of a RW layer that has no outstanding `mount()`. */
export class RWLayerNotMountedError extends Error {
  override readonly name = 'RWLayerNotMountedError'
  readonly code = 'ERR_RW_LAYER_NOT_MOUNTED'
  readonly kind = 'conflict'
  constructor(readonly rwName: string) {
    super(`RW layer ${JSON.stringify(rwName)} is not mounted`)
  }
}

/**
 * The bytes of a layer did not hash to the expected diff ID: at `tarStream()` (the files or
 * tar-split metadata on disk changed), or at `register` with a known `diffID` (the input is
 * not the layer it claims to be; nothing was stored).
 */
export class LayerDigestMismatchError extends Error {
  override readonly name = 'LayerDigestMismatchError'
  readonly code = 'ERR_LAYER_DIGEST_MISMATCH'
  readonly kind = 'bad-input'
  constructor(
    readonly expected: string,
    readonly actual: string,
    readonly during: 'tar-stream' | 'register',
    options?: ErrorOptions,
  ) {
    super(
      during === 'tar-stream'
        ? `could not verify layer data for ${expected} (got ${actual}): internal files in the layer store were modified; ` +
            're-pulling or rebuilding this image may resolve the issue'
        : `layer data hashes to ${actual}, not the expected diff ID ${expected}; nothing was stored`,
      options,
    )
  }
}

/** The compressed input ended early or is corrupt (gzip or zstd); nothing was stored. */
export class CorruptInputError extends Error {
  override readonly name = 'CorruptInputError'
  readonly code = 'ERR_LAYER_INPUT_CORRUPT'
  readonly kind = 'bad-input'
  constructor(
    readonly compression: Compression,
    readonly truncated: boolean,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`${truncated ? 'truncated' : 'corrupt'} ${compression} layer input: ${detail}; nothing was stored`, options)
  }
}

/** The input is compressed with something we cannot decompress here. */
export class CompressionNotSupportedError extends Error {
  override readonly name = 'CompressionNotSupportedError'
  readonly code = 'ERR_COMPRESSION_NOT_SUPPORTED'
  readonly kind = 'not-supported'
  constructor(
    readonly compression: string,
    hint: string,
    options?: ErrorOptions,
  ) {
    super(`cannot decompress ${compression} layer input: ${hint}`, options)
  }
}

/** The filesystem holding the store filled up; whatever was half-written was removed. */
export class NoSpaceError extends Error {
  override readonly name = 'NoSpaceError'
  readonly code = 'ERR_NO_SPACE'
  readonly kind = 'no-space'
  constructor(
    readonly operation: string,
    options?: ErrorOptions,
  ) {
    super(`no space left while trying to ${operation}; free some space and retry (nothing was stored)`, options)
  }
}

/** A holder name that cannot be stored (empty, too long, control characters, reserved prefix). */
export class InvalidHolderError extends Error {
  override readonly name = 'InvalidHolderError'
  readonly code = 'ERR_INVALID_HOLDER'
  readonly kind = 'invalid-argument'
  constructor(
    readonly holder: string,
    readonly reason: string,
  ) {
    super(`invalid reference holder ${JSON.stringify(holder)}: ${reason}`)
  }
}

/** The store was used after `close()`. */
export class LayerStoreClosedError extends Error {
  override readonly name = 'LayerStoreClosedError'
  readonly code = 'ERR_LAYER_STORE_CLOSED'
  readonly kind = 'invalid-argument'
  constructor(readonly root: string) {
    super(`the layer store at ${root} is closed`)
  }
}

/**
 * A change asked of a store opened read-only (`LayerStore.open({ readOnly: true })`):
 * register, release, RW layers, mounts, commit, cleanup. Nothing was changed; open the
 * store writable for that (a Docker data root never is: it belongs to dockerd).
 */
export class StoreReadOnlyError extends Error {
  override readonly name = 'StoreReadOnlyError'
  readonly code = 'ERR_STORE_READ_ONLY'
  readonly kind = 'invalid-argument'
  constructor(
    readonly root: string,
    /** What was asked, e.g. `register`. */
    readonly operation: string,
  ) {
    super(`the layer store at ${root} is open read-only: cannot ${operation}; open it without readOnly to change it`)
  }
}

/**
 * A read-only open of a root that has no store of the driver: the root, its layerdb
 * (`image/<driver>/layerdb`) or the driver's home is missing. A read-only open creates nothing.
 */
export class StoreRootNotFoundError extends Error {
  override readonly name = 'StoreRootNotFoundError'
  readonly code = 'ERR_STORE_ROOT_NOT_FOUND'
  readonly kind = 'not-found'
  constructor(
    readonly root: string,
    /** The missing directory. */
    readonly missing: string,
    options?: ErrorOptions,
  ) {
    super(`${root} holds no layer store to open read-only: ${missing} is missing or not a directory`, options)
  }
}

/** A broken invariant of the layer store (a bug): never swallowed. */
export class LayerStoreInternalError extends Error {
  override readonly name = 'LayerStoreInternalError'
  readonly code = 'ERR_LAYER_STORE_INTERNAL'
  readonly kind = 'internal'
  constructor(detail: string, options?: ErrorOptions) {
    super(`layer store invariant broken: ${detail}`, options)
  }
}

/** An operating-system failure of the layer store that no other class describes. */
export class LayerStoreIOError extends Error {
  override readonly name = 'LayerStoreIOError'
  readonly code = 'ERR_LAYER_STORE_IO'
  readonly kind = 'system'
  constructor(
    readonly operation: string,
    readonly errno: string | undefined,
    options?: ErrorOptions,
  ) {
    super(`layer store: ${operation} failed${errno ? ` (${errno})` : ''}`, options)
  }
}

/** The compressions register detects. */
export type Compression = 'none' | 'gzip' | 'zstd'

/**
 * Gives a failure of `operation` a kind: layerstore errors pass through unchanged, ENOSPC and
 * EDQUOT become {@link NoSpaceError}, other errno failures {@link LayerStoreIOError}, and
 * anything else (a caller's own error, e.g. from an `initFunc`) passes through as it is.
 */
export function classifyError(err: unknown, operation: string): unknown {
  if (isKindedError(err)) return err
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') return new NoSpaceError(operation, { cause: err })
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return new LayerStoreIOError(operation, code, { cause: err })
  return err
}
