/**
 * How store commands open the LayerStore from the global options, and the few helpers they
 * share (output, argument parsing). No store logic lives here: only option mapping.
 */
import { LayerStore } from '../layer/index.js'
import type { ChainID, CloseOptions } from '../layer/index.js'
import { parseChainID } from '../metadata/index.js'
import { UsageError, type CommandContext } from './command.js'

/** The data root when neither `--root` nor `LAYERSTORE_ROOT` names one. */
export const DEFAULT_ROOT = '/var/lib/layerstore'

/**
 * The reference holder `register`, `release` and `commit` use without `--ref`. A named holder,
 * not the store's session: a session's references end with the process, and a CLI register
 * must outlive it.
 */
export const DEFAULT_HOLDER = 'layerctl'

/** The root the global options name. */
export function rootOf(ctx: CommandContext): string {
  const root = ctx.values.root
  if (typeof root === 'string') return root
  return process.env['LAYERSTORE_ROOT'] || DEFAULT_ROOT
}

/**
 * Opens the store named by the global options, runs `fn`, and closes it (also on failure).
 * `keepMounts` leaves the mounts `fn` made for another process to unmount (`layerctl mount`).
 */
export async function withStore<T>(
  ctx: CommandContext,
  fn: (store: LayerStore) => Promise<T>,
  close: CloseOptions = {},
): Promise<T> {
  const plugins = ctx.values['driver-plugin']
  const store = await LayerStore.open({
    root: rootOf(ctx),
    ...(typeof ctx.values.driver === 'string' ? { driver: ctx.values.driver } : {}),
    ...(Array.isArray(plugins) ? { driverPlugins: plugins } : {}),
    // A script that cannot wait gets exit status 5 at once instead of blocking.
    waitForLock: ctx.values['no-wait'] !== true,
    ...(ctx.values['read-only'] === true ? { readOnly: true } : {}),
  })
  try {
    return await fn(store)
  } finally {
    await store.close(close)
  }
}

/** A chain ID argument: `sha256:<hex>` or the bare 64 hex digits (as `ls` prints them short). */
export function chainIDArg(text: string | undefined, what = 'CHAINID'): ChainID {
  if (text === undefined) throw new UsageError(`${what} is required`)
  return parseChainID(/^[0-9a-f]{64}$/.test(text) ? `sha256:${text}` : text)
}

/** True when `text` looks like a chain ID rather than a name. */
export function looksLikeChainID(text: string): boolean {
  return /^(sha256:)?[0-9a-f]{64}$/.test(text)
}

/** The one positional a command takes; a usage error when it is missing or followed by more. */
export function onePositional(ctx: CommandContext, what: string): string {
  const [first, ...extra] = ctx.positionals
  if (first === undefined) throw new UsageError(`${what} is required`)
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`)
  return first
}

/** The `--ref` value, or the default holder. */
export function refOf(ctx: CommandContext): string {
  const ref = ctx.values.ref
  return typeof ref === 'string' ? ref : DEFAULT_HOLDER
}

/**
 * Prints a command's result: `doc` as one JSON document with `--json`, else `text` lines
 * (unless empty). Text goes to stdout: it is the command's answer, not chatter.
 */
export function emit(ctx: CommandContext, doc: unknown, text: () => readonly string[]): void {
  if (ctx.json) {
    ctx.stdout.write(JSON.stringify(doc, null, 2) + '\n')
    return
  }
  const lines = text()
  if (lines.length > 0) ctx.stdout.write(lines.join('\n') + '\n')
}

/** A human size: 1.5 MiB. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`
}

/** A short chain ID for tables: the first 12 hex digits, as docker prints IDs. */
export function shortID(id: string | null | undefined): string {
  if (!id) return '-'
  return id.replace(/^sha256:/, '').slice(0, 12)
}

/** Formats rows as left-aligned columns. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '))
}
