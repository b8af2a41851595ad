/**
 * Typed errors of the graph driver layer: the contract's misuse errors, which every driver
 * throws (a driver never invents its own class for these), and the registry's and selection's
 * errors. Each has a stable `code` and a `kind` (see src/errors.ts); callers branch on those.
 */
import type { ErrorKind } from '../errors.js'

/** Which side of an operation a missing layer was. */
export type LayerRole = 'layer' | 'parent'

/** The driver has no layer `id` (or, with role `'parent'`, no such parent to start from). */
export class LayerNotFoundError extends Error {
  override readonly name = 'LayerNotFoundError'
  readonly code = 'ERR_DRIVER_LAYER_NOT_FOUND'
  readonly kind = 'not-found'
  constructor(
    readonly driver: string,
    readonly id: string,
    readonly role: LayerRole = 'layer',
    options?: ErrorOptions,
  ) {
    super(`${driver}: ${role === 'parent' ? 'parent ' : ''}layer ${id} does not exist`, options)
  }
}

/** `create`/`createReadWrite` of an id the driver already has. */
export class LayerExistsError extends Error {
  override readonly name = 'LayerExistsError'
  readonly code = 'ERR_DRIVER_LAYER_EXISTS'
  readonly kind = 'already-exists'
  constructor(
    readonly driver: string,
    readonly id: string,
    options?: ErrorOptions,
  ) {
    super(`${driver}: layer ${id} already exists; remove it first or choose another id`, options)
  }
}

/** An id that is not a plain name (`/`, `..`, empty, NUL…): it could name a path outside home. */
export class InvalidLayerIDError extends Error {
  override readonly name = 'InvalidLayerIDError'
  readonly code = 'ERR_DRIVER_INVALID_LAYER_ID'
  readonly kind = 'invalid-argument'
  constructor(
    readonly driver: string,
    readonly id: string,
  ) {
    super(`${driver}: invalid layer id ${JSON.stringify(id)}: use [0-9A-Za-z_.-], not "." or ".."`)
  }
}

/**
 * The layer is in use: `remove` while a `get` is outstanding or while its mount exists
 * (possibly made by another process). Put it first, or run `cleanup`.
 */
export class LayerInUseError extends Error {
  override readonly name = 'LayerInUseError'
  readonly code = 'ERR_DRIVER_LAYER_IN_USE'
  readonly kind = 'conflict'
  constructor(
    readonly driver: string,
    readonly id: string,
    /** Outstanding `get`s this instance knows of (0 when only a foreign mount was found). */
    readonly holders: number,
    /** The mount point found in mountinfo, if any. */
    readonly mountPoint?: string,
  ) {
    super(
      `${driver}: layer ${id} is in use (${holders} get(s) not put` +
        (mountPoint ? `, mounted at ${mountPoint}` : '') +
        '); put it or run cleanup before removing it',
    )
  }
}

/** `put` without a matching `get`. The count stays at zero. */
export class LayerNotMountedError extends Error {
  override readonly name = 'LayerNotMountedError'
  readonly code = 'ERR_DRIVER_LAYER_NOT_MOUNTED'
  readonly kind = 'conflict'
  constructor(
    readonly driver: string,
    readonly id: string,
  ) {
    super(`${driver}: put of layer ${id} without a matching get`)
  }
}

/**
 * Mounting (or unmounting) a layer's view failed. The cause is the system call's error, whose
 * `kind` this error takes (EPERM without CAP_SYS_ADMIN is 'system', ENODEV 'not-supported').
 */
export class LayerMountError extends Error {
  override readonly name = 'LayerMountError'
  readonly code = 'ERR_DRIVER_LAYER_MOUNT'
  readonly kind: ErrorKind
  constructor(
    readonly driver: string,
    readonly id: string,
    readonly mountPoint: string,
    readonly operation: 'mount' | 'unmount',
    options?: ErrorOptions,
  ) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : ''
    super(`${driver}: cannot ${operation} layer ${id} at ${mountPoint}${cause}`, options)
    const kind = (options?.cause as { kind?: unknown } | undefined)?.kind
    this.kind = typeof kind === 'string' ? (kind as ErrorKind) : 'system'
  }
}

/**
 * A `get` asked for one view of a layer (read-only or writable) while its mount point is
 * held, by this or another process, with the other one. Nothing changed; put (or unmount)
 * the other view first.
 */
export class MountModeConflictError extends Error {
  override readonly name = 'MountModeConflictError'
  readonly code = 'ERR_DRIVER_MOUNT_MODE_CONFLICT'
  readonly kind = 'conflict'
  constructor(
    readonly driver: string,
    readonly id: string,
    readonly mountPoint: string,
    /** True when the read-only view was asked for (and a writable one is mounted). */
    readonly wantedReadOnly: boolean,
  ) {
    super(
      `${driver}: layer ${id} is mounted ${wantedReadOnly ? 'writable' : 'read-only'} at ${mountPoint}; ` +
        `put (unmount) that view before asking for a ${wantedReadOnly ? 'read-only' : 'writable'} one`,
    )
  }
}

/**
 * Read-only use the driver cannot honour. `what: 'open'`: a read-only open (the factory has
 * no `openReadOnly`), or a write or mount asked of a driver opened read-only. `what: 'view'`:
 * `get(id, { readOnly: true })` where `capabilities.readOnlyLayers` is false.
 */
export class ReadOnlyNotSupportedError extends Error {
  override readonly name = 'ReadOnlyNotSupportedError'
  readonly code = 'ERR_DRIVER_READ_ONLY_NOT_SUPPORTED'
  readonly kind = 'not-supported'
  constructor(
    readonly driver: string,
    readonly what: 'open' | 'view',
    reason: string,
  ) {
    super(`${driver}: ${reason}`)
  }
}

/**
 * A writable store asked for a driver that only reads another engine's root (`overlay2`, a
 * Docker data root): refused before anything under the root is created. Open it read-only.
 */
export class DriverReadOnlyOnlyError extends Error {
  override readonly name = 'DriverReadOnlyOnlyError'
  readonly code = 'ERR_DRIVER_READ_ONLY_ONLY'
  readonly kind = 'invalid-argument'
  constructor(
    readonly driver: string,
    readonly home: string,
  ) {
    super(`${driver} at ${home} is another engine's layout, which layerstore opens read-only only: open it with readOnly (layerctl --read-only)`)
  }
}

/** The mount counter was asked to release a path it does not hold (and no mount exists). */
export class MountNotHeldError extends Error {
  override readonly name = 'MountNotHeldError'
  readonly code = 'ERR_MOUNT_NOT_HELD'
  readonly kind = 'conflict'
  constructor(readonly path: string) {
    super(`release of ${path}, which is neither held nor mounted`)
  }
}

/** A driver or storage option that is unknown, malformed, or not allowed here. */
export class InvalidDriverOptionError extends Error {
  override readonly name = 'InvalidDriverOptionError'
  readonly code = 'ERR_DRIVER_INVALID_OPTION'
  readonly kind = 'invalid-argument'
  constructor(
    readonly driver: string,
    /** The option as given (`key=value`, or the key). */
    readonly option: string,
    reason: string,
  ) {
    super(`${driver}: option ${JSON.stringify(option)}: ${reason}`)
  }
}

/**
 * This kernel, filesystem or build cannot host the driver (moby's `NotSupportedError`:
 * `ErrNotSupported`, `ErrPrerequisites`, `ErrIncompatibleFS`). Selection skips such a driver
 * and tries the next.
 */
export class DriverNotSupportedError extends Error {
  override readonly name = 'DriverNotSupportedError'
  readonly code = 'ERR_DRIVER_NOT_SUPPORTED'
  readonly kind = 'not-supported'
  constructor(
    readonly driver: string,
    /** What is missing, e.g. "overlay is not in /proc/filesystems". */
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`driver ${driver} is not supported here: ${reason}`, options)
  }
}

/** No registered driver has this name. */
export class UnknownDriverError extends Error {
  override readonly name = 'UnknownDriverError'
  readonly code = 'ERR_UNKNOWN_DRIVER'
  readonly kind = 'not-found'
  constructor(
    readonly driver: string,
    readonly known: readonly string[],
  ) {
    super(
      `unknown storage driver ${JSON.stringify(driver)}; known drivers: ${known.join(', ') || '(none)'}` +
        ' (a third-party driver must be loaded with --driver-plugin)',
    )
  }
}

/** Two factories with the same name in one registry. */
export class DriverAlreadyRegisteredError extends Error {
  override readonly name = 'DriverAlreadyRegisteredError'
  readonly code = 'ERR_DRIVER_ALREADY_REGISTERED'
  readonly kind = 'already-exists'
  constructor(
    readonly driver: string,
    /** Where the second one came from (a plugin specifier), if known. */
    readonly source?: string,
  ) {
    super(`storage driver ${JSON.stringify(driver)} is already registered` + (source ? ` (again by ${source})` : ''))
  }
}

/** Why a plugin module could not be used. */
export type PluginLoadReason =
  | 'not-found' // the specifier resolves to nothing
  | 'import-failed' // evaluating the module threw
  | 'no-factory' // no `default` or `driverFactory` export
  | 'invalid-factory' // the export is not a DriverFactory (name, create)

/** A driver plugin module could not be loaded. The cause holds the original error. */
export class PluginLoadError extends Error {
  override readonly name = 'PluginLoadError'
  readonly code = 'ERR_DRIVER_PLUGIN_LOAD'
  readonly kind: ErrorKind
  constructor(
    readonly specifier: string,
    readonly reason: PluginLoadReason,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`cannot load driver plugin ${JSON.stringify(specifier)} (${reason}): ${detail}`, options)
    this.kind = reason === 'not-found' ? 'not-found' : 'invalid-argument'
  }
}

/** A factory's `create` failed with an error that does not follow the convention. */
export class DriverInitError extends Error {
  override readonly name = 'DriverInitError'
  readonly code = 'ERR_DRIVER_INIT'
  readonly kind = 'system'
  constructor(
    readonly driver: string,
    readonly home: string,
    options?: ErrorOptions,
  ) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : ''
    super(`driver ${driver} failed to start on ${home}${cause}`, options)
  }
}

/**
 * The root already holds another driver's layers. Switching silently would make the user's
 * images disappear; choose that driver, or remove its home after exporting what you need.
 */
export class PriorDriverError extends Error {
  override readonly name = 'PriorDriverError'
  readonly code = 'ERR_PRIOR_DRIVER'
  readonly kind = 'conflict'
  constructor(
    readonly root: string,
    /** The driver asked for. */
    readonly requested: string,
    /** The driver whose non-empty home was found. */
    readonly prior: string,
    options?: ErrorOptions,
  ) {
    super(
      `${root} already holds layers of driver ${prior}; refusing to use ${requested} ` +
        `(choose --driver ${prior}, or remove ${root}/${prior} if its layers are not needed)`,
      options,
    )
  }
}

/** The root holds layers of several drivers; selection cannot guess (moby's message). */
export class MultiplePriorDriversError extends Error {
  override readonly name = 'MultiplePriorDriversError'
  readonly code = 'ERR_MULTIPLE_PRIOR_DRIVERS'
  readonly kind = 'conflict'
  constructor(
    readonly root: string,
    readonly drivers: readonly string[],
  ) {
    super(
      `${root} contains several valid graph drivers: ${drivers.join(', ')}; ` +
        'clean up or choose the driver explicitly (--driver <name>)',
    )
  }
}

/** Auto-selection found no driver that works here. `tried` says why each was skipped. */
export class NoSupportedDriverError extends Error {
  override readonly name = 'NoSupportedDriverError'
  readonly code = 'ERR_NO_SUPPORTED_DRIVER'
  readonly kind = 'not-supported'
  constructor(
    readonly root: string,
    readonly tried: ReadonlyArray<{ readonly driver: string; readonly reason: string }>,
  ) {
    super(
      `no supported storage driver found for ${root}` +
        (tried.length ? `: ${tried.map((t) => `${t.driver}: ${t.reason}`).join('; ')}` : ''),
    )
  }
}

/** A broken invariant in this module (a count below zero…): a bug. */
export class GraphDriverInternalError extends Error {
  override readonly name = 'GraphDriverInternalError'
  readonly code = 'ERR_GRAPHDRIVER_INTERNAL'
  readonly kind = 'internal'
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
  }
}
