import type { Writable } from 'node:stream'

/** One option of a command, as `node:util` parseArgs takes it, plus its help text. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean'
  readonly short?: string
  readonly multiple?: boolean
  /** Placeholder shown in help, e.g. `FILE`. */
  readonly arg?: string
  readonly help: string
}

/** What a command gets to work with: its parsed arguments and the process's streams. */
export interface CommandContext {
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>
  readonly positionals: readonly string[]
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  readonly stdout: Writable & { isTTY?: boolean }
  readonly stderr: Writable & { isTTY?: boolean }
  /** `--json`: print one machine-readable document on stdout instead of text. */
  readonly json: boolean
  /** `-q/--quiet`: no progress, no chatter. */
  readonly quiet: boolean
}

/**
 * A `layerctl` command: a thin shell over the public API. `run` resolves to the exit status
 * (0 on success); errors it throws are mapped to exit statuses by their `kind`.
 */
export interface Command {
  readonly name: string
  readonly summary: string
  /** The synopsis after `layerctl`, e.g. `tar-split disasm [--output FILE] [TAR|-]`. */
  readonly usage: string
  /** Lines of examples shown by `--help`. */
  readonly examples: readonly string[]
  readonly options: Readonly<Record<string, OptionSpec>>
  /** Subcommands (`tar-split disasm`); a command has either these or `run`. */
  readonly subcommands?: readonly Command[]
  run?(ctx: CommandContext): Promise<number>
}

/** A usage error: bad flags, missing arguments. Exit status 1. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
  readonly code = 'ERR_USAGE'
  readonly kind = 'invalid-argument'
  constructor(
    message: string,
    /** The command whose help to point at. */
    readonly command?: string,
  ) {
    super(message)
  }
}
