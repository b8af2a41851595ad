import { parseArgs } from 'node:util'
import createDebug from 'debug'
import { isKindedError } from '../errors.js'
import { UsageError, type Command, type CommandContext, type OptionSpec } from './command.js'
import { EXIT, exitStatusFor } from './exit-status.js'
import { GLOBAL_OPTIONS, commandHelp, mainHelp } from './help.js'
import { suggest } from './suggest.js'
import { benchCommand } from './commands/bench.js'
import { cleanupCommand } from './commands/cleanup.js'
import { commitCommand } from './commands/commit.js'
import { diffCommand } from './commands/diff.js'
import { driversCommand } from './commands/drivers.js'
import { exportCommand } from './commands/export.js'
import { inspectCommand } from './commands/inspect.js'
import { lsCommand } from './commands/ls.js'
import { mountCommand } from './commands/mount.js'
import { registerCommand } from './commands/register.js'
import { releaseCommand } from './commands/release.js'
import { rmCommand } from './commands/rm.js'
import { statusCommand } from './commands/status.js'
import { tarSplitCommand } from './commands/tar-split.js'
import { unmountCommand } from './commands/unmount.js'
import { verifyCommand } from './commands/verify.js'

/** Every top-level command, in the order `--help` lists them. */
export const COMMANDS: readonly Command[] = [
  registerCommand,
  releaseCommand,
  lsCommand,
  inspectCommand,
  exportCommand,
  mountCommand,
  unmountCommand,
  diffCommand,
  commitCommand,
  rmCommand,
  cleanupCommand,
  verifyCommand,
  driversCommand,
  statusCommand,
  tarSplitCommand,
  benchCommand,
]

/**
 * Runs `layerctl` with the given arguments (without `node` and the script). Sets
 * `process.exitCode`; never calls `process.exit`, so pending output is flushed.
 */
export async function main(argv: readonly string[]): Promise<void> {
  process.exitCode = await run(argv)
}

async function run(argv: readonly string[]): Promise<number> {
  const { stdout, stderr } = process
  // The command is the first word that is not an option; global options may come before it.
  const path: Command[] = []
  let rest = [...argv]
  let table: readonly Command[] = COMMANDS
  for (;;) {
    const i = firstWord(rest, { ...GLOBAL_OPTIONS, ...path[path.length - 1]?.options })
    const word = i >= 0 ? rest[i] : undefined
    if (word === undefined) break
    const cmd = table.find((c) => c.name === word)
    if (!cmd) {
      if (path.length > 0 && !path[path.length - 1]?.subcommands) break
      const hint = suggest(word, table.map((c) => c.name))
      stderr.write(
        `layerctl: unknown command '${[...path.map((c) => c.name), word].join(' ')}'` +
          (hint ? `; did you mean '${[...path.map((c) => c.name), hint].join(' ')}'?` : '') +
          `\nRun 'layerctl ${path.map((c) => `${c.name} `).join('')}--help' for the list.\n`,
      )
      return EXIT.usage
    }
    path.push(cmd)
    rest = [...rest.slice(0, i), ...rest.slice(i + 1)]
    if (!cmd.subcommands) break
    table = cmd.subcommands
  }
  const cmd = path[path.length - 1]
  const pathName = path.map((c) => c.name).join(' ')
  if (!cmd) {
    const wantsHelp = rest.includes('--help') || rest.includes('-h')
    ;(wantsHelp ? stdout : stderr).write(mainHelp(COMMANDS))
    return wantsHelp ? EXIT.ok : EXIT.usage
  }

  const options: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS, ...cmd.options }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true })
  } catch (err) {
    stderr.write(`layerctl ${pathName}: ${(err as Error).message}\nRun 'layerctl ${pathName} --help' for usage.\n`)
    return EXIT.usage
  }
  const values = parsed.values as CommandContext['values']
  if (values.help || !cmd.run) {
    ;(values.help ? stdout : stderr).write(commandHelp(cmd, pathName))
    return values.help ? EXIT.ok : EXIT.usage
  }
  if (values.debug) createDebug.enable(`layerstore:*${process.env.DEBUG ? `,${process.env.DEBUG}` : ''}`)

  const ctx: CommandContext = {
    values,
    positionals: parsed.positionals,
    stdin: process.stdin,
    stdout,
    stderr,
    json: values.json === true,
    quiet: values.quiet === true || values.json === true,
  }
  try {
    return await cmd.run(ctx)
  } catch (err) {
    return reportError(err, pathName, ctx)
  }
}

/** Index of the first argument that is neither an option nor an option's value (-1 if none). */
function firstWord(args: readonly string[], options: Readonly<Record<string, OptionSpec>>): number {
  const takesValue = (arg: string): boolean => {
    if (arg.startsWith('--')) return !arg.includes('=') && options[arg.slice(2)]?.type === 'string'
    const short = Object.values(options).find((o) => o.short === arg.slice(1))
    return arg.length === 2 && short?.type === 'string'
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? ''
    if (arg === '--') return -1
    if (arg === '-' || !arg.startsWith('-')) return arg === '-' ? -1 : i
    if (takesValue(arg)) i++
  }
  return -1
}

function reportError(err: unknown, pathName: string, ctx: CommandContext): number {
  if (err instanceof UsageError) {
    ctx.stderr.write(`layerctl ${pathName}: ${err.message}\nRun 'layerctl ${pathName} --help' for usage.\n`)
    return EXIT.usage
  }
  const code = isKindedError(err) ? err.code : ((err as { code?: unknown })?.code ?? 'ERR_UNEXPECTED')
  const message = err instanceof Error ? err.message : String(err)
  const status = isKindedError(err) ? exitStatusFor(err.kind) : EXIT.failure
  // One line naming the error's code, so scripts and people can both act on it.
  ctx.stderr.write(`layerctl ${pathName}: ${String(code)}: ${message}\n`)
  if (ctx.json) ctx.stdout.write(JSON.stringify({ error: { code, message } }) + '\n')
  return status
}
