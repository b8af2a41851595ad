import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import type { CommandContext } from '../../src/cli/command.js'
import { Progress } from '../../src/cli/progress.js'

function ctx(isTTY: boolean, quiet: boolean): { ctx: CommandContext; written: () => string } {
  let text = ''
  const stderr = Object.assign(new Writable({ write: (c: Buffer, _e, cb) => ((text += c.toString()), cb()) }), { isTTY })
  const c = { values: {}, positionals: [], stdin: process.stdin, stdout: stderr, stderr, json: false, quiet } as CommandContext
  return { ctx: c, written: () => text }
}

describe('Progress', () => {
  it('shows bytes, rate, percent and ETA when the total is known', () => {
    const p = new Progress(ctx(true, false).ctx, 'register', 4 << 20)
    p.update(1 << 20)
    const line = p.line(Date.now() + 1000)
    expect(line).toMatch(/^register 1\.0 MiB \/ 4\.0 MiB \[#+\.+\] 25% [\d.]+ (KiB|MiB)\/s ETA \d+s$/)
  })

  it('is silent when stderr is not a terminal, or with --quiet/--json', () => {
    for (const [tty, quiet] of [[false, false], [true, true]] as const) {
      const { ctx: c, written } = ctx(tty, quiet)
      const p = new Progress(c, 'export')
      p.update(10)
      p.done()
      expect(written()).toBe('')
    }
  })
})
