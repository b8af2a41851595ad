import type { Command, OptionSpec } from './command.js'

/** Options every command accepts. `--root`, `--driver`, `--driver-plugin` matter to store commands. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  root: { type: 'string', arg: 'DIR', help: 'store root (default $LAYERSTORE_ROOT or /var/lib/layerstore)' },
  driver: { type: 'string', arg: 'NAME', help: 'graph driver (default: what the root uses, else auto-select)' },
  'driver-plugin': { type: 'string', multiple: true, arg: 'MODULE', help: 'load a third-party driver module (repeatable)' },
  'read-only': { type: 'boolean', help: 'open the store without changing it (e.g. a Docker root: --driver overlay2)' },
  json: { type: 'boolean', help: 'machine-readable output on stdout' },
  'no-wait': { type: 'boolean', help: 'fail (exit 5) instead of waiting when another process holds the store lock' },
  debug: { type: 'boolean', help: 'log layerstore:* debug messages to stderr' },
  quiet: { type: 'boolean', short: 'q', help: 'no progress, no chatter' },
  help: { type: 'boolean', short: 'h', help: 'show help' },
}

function optionLines(options: Readonly<Record<string, OptionSpec>>): string[] {
  return Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.arg ? ` ${o.arg}` : ''}`
    return `  ${flag.padEnd(30)} ${o.help}`
  })
}

/** The help text of one command (or of a command group). */
export function commandHelp(cmd: Command, path: string): string {
  const lines = [`Usage: layerctl ${cmd.usage}`, '', cmd.summary, '']
  if (cmd.subcommands) {
    lines.push('Commands:')
    for (const sub of cmd.subcommands) lines.push(`  ${`${path} ${sub.name}`.padEnd(30)} ${sub.summary}`)
    lines.push('')
  }
  if (Object.keys(cmd.options).length > 0) lines.push('Options:', ...optionLines(cmd.options), '')
  if (cmd.examples.length > 0) lines.push('Examples:', ...cmd.examples.map((e) => `  ${e}`), '')
  lines.push('Global options:', ...optionLines(GLOBAL_OPTIONS))
  return lines.join('\n') + '\n'
}

/** The top-level help: every command with its summary. */
export function mainHelp(commands: readonly Command[]): string {
  const lines = [
    'Usage: layerctl [global options] COMMAND [options] [args]',
    '',
    'layerctl drives a layerstore: container image layers stored by chain ID, reproduced byte',
    'for byte, mounted through overlay, vfs or bind graph drivers.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(30)} ${c.summary}`),
    '',
    'Global options:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    "Run 'layerctl COMMAND --help' for a command's options and examples.",
  ]
  return lines.join('\n') + '\n'
}
