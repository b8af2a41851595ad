/**
 * Typed errors of the metadata module. Each has a stable `code` (after moby's sentinel where
 * one exists) and a `kind` (see src/errors.ts); facts are fields, never only message text.
 */
import type { ErrorKind } from '../errors.js'

/** Which kind of identifier failed validation. */
export type IDKind =
  | 'chain-id'
  | 'diff-id'
  | 'cache-id'
  | 'mount-id'
  | 'init-id'
  | 'mount-name'
  | 'extra-file'
  | 'driver-name'

/** moby's `ErrLayerDoesNotExist`: no committed layer has this chain ID. */
export class LayerDoesNotExistError extends Error {
  override readonly name = 'LayerDoesNotExistError'
  readonly code = 'ERR_LAYER_DOES_NOT_EXIST'
  readonly kind = 'not-found'
  constructor(
    readonly chainID: string,
    options?: ErrorOptions,
  ) {
    super(`layer ${chainID} does not exist`, options)
  }
}

/** moby's `ErrMountDoesNotExist`: no committed RW layer (mount) has this name. */
export class MountDoesNotExistError extends Error {
  override readonly name = 'MountDoesNotExistError'
  readonly code = 'ERR_MOUNT_DOES_NOT_EXIST'
  readonly kind = 'not-found'
  constructor(
    readonly mountName: string,
    options?: ErrorOptions,
  ) {
    super(`mount ${JSON.stringify(mountName)} does not exist`, options)
  }
}

/**
 * A transaction was committed onto a chain ID that is already committed. The layer store
 * handles "already exists" before it commits (moby returns the existing layer); reaching this
 * means two writers raced or the caller skipped that check.
 */
export class LayerAlreadyExistsError extends Error {
  override readonly name = 'LayerAlreadyExistsError'
  readonly code = 'ERR_LAYER_ALREADY_EXISTS'
  readonly kind = 'already-exists'
  constructor(
    readonly chainID: string,
    options?: ErrorOptions,
  ) {
    super(`layer ${chainID} already exists; cancel this transaction and use the existing layer`, options)
  }
}

/** moby's `ErrMountNameConflict`: a mount with this name is already committed. */
export class MountNameConflictError extends Error {
  override readonly name = 'MountNameConflictError'
  readonly code = 'ERR_MOUNT_NAME_CONFLICT'
  readonly kind = 'already-exists'
  constructor(
    readonly mountName: string,
    options?: ErrorOptions,
  ) {
    super(`mount already exists with name ${JSON.stringify(mountName)}`, options)
  }
}

/** A caller passed a malformed ID, mount name or extra-file name. */
export class InvalidIDError extends Error {
  override readonly name = 'InvalidIDError'
  readonly code = 'ERR_INVALID_ID'
  readonly kind = 'invalid-argument'
  constructor(
    readonly idKind: IDKind,
    readonly value: string,
    readonly reason: string,
  ) {
    super(`invalid ${idKind} ${JSON.stringify(value)}: ${reason}`)
  }
}

/** Why a metadata file was refused. */
export type CorruptReason = 'missing' | 'invalid'

/**
 * A file of the layerdb is missing or does not hold what moby's validation accepts (moby
 * issue #44909: say which file).
 */
export class CorruptMetadataError extends Error {
  override readonly name = 'CorruptMetadataError'
  readonly code = 'ERR_METADATA_CORRUPT'
  readonly kind = 'bad-input'
  constructor(
    readonly recordKind: 'layer' | 'mount',
    /** The layer's chain ID or the mount's name. */
    readonly record: string,
    /** The file name inside the record's directory (`diff`, `size`, `mount-id`, …). */
    readonly file: string,
    /** Absolute path of the file. */
    readonly path: string,
    readonly reason: CorruptReason,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(
      `corrupt metadata for ${recordKind} ${record}: ${file} is ${reason}${detail ? ` (${detail})` : ''} at ${path}; ` +
        `remove the ${recordKind} and ${recordKind === 'layer' ? 're-register it' : 'create it again'}`,
      options,
    )
  }
}

/** Another holder (in this process or another) has the store lock and the caller did not wait. */
export class StoreLockedError extends Error {
  override readonly name = 'StoreLockedError'
  readonly code = 'ERR_STORE_LOCKED'
  readonly kind = 'locked'
  constructor(
    readonly path: string,
    readonly mode: 'shared' | 'exclusive',
    options?: ErrorOptions,
  ) {
    super(`the store is locked (wanted ${mode} lock on ${path}); another layerstore user holds it, retry later`, options)
  }
}

/** A lock handle was released twice. */
export class LockNotHeldError extends Error {
  override readonly name = 'LockNotHeldError'
  readonly code = 'ERR_LOCK_NOT_HELD'
  readonly kind = 'internal'
  constructor(readonly path: string) {
    super(`store lock handle for ${path} was already released`)
  }
}

/** A transaction was used after its commit or cancel, or committed with a writer still open. */
export class TransactionStateError extends Error {
  override readonly name = 'TransactionStateError'
  readonly code = 'ERR_TRANSACTION_STATE'
  readonly kind = 'internal'
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`transaction ${path}: ${detail}`)
  }
}

/** A commit lacks a file the record needs (`diff`, `size`, `cache-id`, or `mount-id`). */
export class IncompleteTransactionError extends Error {
  override readonly name = 'IncompleteTransactionError'
  readonly code = 'ERR_TRANSACTION_INCOMPLETE'
  readonly kind = 'invalid-argument'
  constructor(
    readonly path: string,
    readonly missing: readonly string[],
    readonly detail = '',
  ) {
    super(`transaction ${path} cannot be committed: ${missing.length ? `missing ${missing.join(', ')}` : detail}`)
  }
}

/** A write was attempted on a store opened read-only, or after `close()`. */
export class MetadataStoreStateError extends Error {
  override readonly name = 'MetadataStoreStateError'
  readonly code: 'ERR_METADATA_READ_ONLY' | 'ERR_METADATA_CLOSED'
  readonly kind = 'invalid-argument'
  constructor(
    readonly root: string,
    readonly state: 'read-only' | 'closed',
  ) {
    super(`metadata store ${root} is ${state}`)
    this.code = state === 'read-only' ? 'ERR_METADATA_READ_ONLY' : 'ERR_METADATA_CLOSED'
  }
}

/** An operating-system call on the layerdb failed; `cause` is Node's error. */
export class MetadataIOError extends Error {
  override readonly name = 'MetadataIOError'
  readonly code = 'ERR_METADATA_IO'
  readonly kind: ErrorKind
  constructor(
    /** What we were doing (`write`, `rename`, `fsync`, …). */
    readonly op: string,
    readonly path: string,
    /** The errno name (`ENOSPC`, …) when the cause had one. */
    readonly errno: string | undefined,
    options?: ErrorOptions,
  ) {
    super(`metadata ${op} failed on ${path}${errno ? `: ${errno}` : ''}`, options)
    this.kind = errno === 'ENOSPC' || errno === 'EDQUOT' ? 'no-space' : 'system'
  }
}
