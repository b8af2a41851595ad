/**
 * A one-line progress bar on stderr for long byte streams (register, export, verify): bytes,
 * rate and, when the total is known, percent and ETA. Drawn only when stderr is a terminal
 * and neither `--quiet` nor `--json` is set; otherwise every method does nothing, so callers
 * feed it unconditionally.
 */
import type { CommandContext } from './command.js'
import { humanBytes } from './store.js'

/** Redraws at most this often: a terminal repaint per chunk would cost more than the work. */
const REDRAW_MS = 200
/** Work shorter than this never shows a bar (it would only flicker). */
const SHOW_AFTER_MS = 500

/** See the file comment. */
export class Progress {
  readonly #out: { write(s: string): unknown } | undefined
  readonly #label: string
  readonly #total: number | undefined
  readonly #start = Date.now()
  #last = 0
  #bytes = 0
  #drawn = false

  /** `total`: the expected byte count when known (a file's size), for percent and ETA. */
  constructor(ctx: CommandContext, label: string, total?: number) {
    this.#out = ctx.stderr.isTTY && !ctx.quiet ? ctx.stderr : undefined
    this.#label = label
    this.#total = total
  }

  /** Records the byte count so far (absolute, not a delta) and redraws when due. */
  update(bytes: number): void {
    this.#bytes = bytes
    if (!this.#out) return
    const now = Date.now()
    if (now - this.#start < SHOW_AFTER_MS || now - this.#last < REDRAW_MS) return
    this.#last = now
    this.#drawn = true
    this.#out.write(`\r\x1b[K${this.line(now)}`)
  }

  /** Clears the bar, leaving the terminal as it was. */
  done(): void {
    if (this.#out && this.#drawn) this.#out.write('\r\x1b[K')
    this.#drawn = false
  }

  /** The bar's text at `now` (ms since the epoch). */
  line(now = Date.now()): string {
    const seconds = Math.max((now - this.#start) / 1000, 0.001)
    const rate = this.#bytes / seconds
    let text = `${this.#label} ${humanBytes(this.#bytes)}`
    if (this.#total !== undefined && this.#total > 0) {
      const frac = Math.min(this.#bytes / this.#total, 1)
      const width = 20
      const filled = Math.round(frac * width)
      const eta = rate > 0 ? Math.max(this.#total - this.#bytes, 0) / rate : 0
      text += ` / ${humanBytes(this.#total)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0)}%`
      text += ` ${humanBytes(rate)}/s ETA ${formatSeconds(eta)}`
    } else {
      text += ` ${humanBytes(rate)}/s`
    }
    return text
  }
}

function formatSeconds(s: number): string {
  const total = Math.round(s)
  const m = Math.floor(total / 60)
  return m > 0 ? `${m}m${String(total % 60).padStart(2, '0')}s` : `${total}s`
}
