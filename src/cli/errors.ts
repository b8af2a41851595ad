/**
 * Errors of `layerctl` itself (usage errors are `UsageError` in command.ts). Each has a stable
 * `code` and a `kind`, so that main.ts maps it to an exit status like any library error.
 */

/** A flag the CLI accepts for the sake but the library cannot honour yet. */
export class NotInLibraryError extends Error {
  override readonly name = 'NotInLibraryError'
  readonly code = 'ERR_CLI_NOT_SUPPORTED'
  readonly kind = 'not-supported'
  constructor(
    readonly flag: string,
    detail: string,
  ) {
    super(`${flag} is not supported: ${detail}`)
  }
}

/** `mount --name NAME CHAINID` where NAME exists on another parent. */
export class RWLayerParentMismatchError extends Error {
  override readonly name = 'RWLayerParentMismatchError'
  readonly code = 'ERR_RW_LAYER_PARENT_MISMATCH'
  readonly kind = 'conflict'
  constructor(
    readonly rwName: string,
    readonly parent: string | null,
    readonly wanted: string,
  ) {
    super(`RW layer ${JSON.stringify(rwName)} exists on ${parent ?? 'no parent'}, not on ${wanted}; pick another --name or 'layerctl rm' it`)
  }
}
