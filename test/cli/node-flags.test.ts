/**
 * layerctl's node flags live in two places: its shebang (what runs when a user types
 * `layerctl`) and `LAYERCTL_NODE_FLAGS` (what the bench gives its store processes, so that
 * it measures what layerctl does). They must stay equal, and the shebang must work.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { LAYERCTL_NODE_FLAGS } from '../../src/cli/node-flags.js'

const LAYERCTL = fileURLToPath(new URL('../../bin/layerctl', import.meta.url))

describe("layerctl's node flags", () => {
  it('are the shebang of bin/layerctl, which runs as a program', () => {
    const shebang = readFileSync(LAYERCTL, 'utf8').split('\n')[0]!
    expect(shebang.startsWith('#!/usr/bin/env -S node ')).toBe(true)
    expect(shebang.slice('#!/usr/bin/env -S node '.length).split(' ')).toEqual(LAYERCTL_NODE_FLAGS)
    // Executed directly, so that the kernel reads the shebang (env -S splits the flags).
    const r = spawnSync(LAYERCTL, ['--help'], { encoding: 'utf8' })
    expect(r.error).toBeUndefined()
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/layerctl/)
  })
})
