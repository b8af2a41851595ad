/**
 * FlushAhead: writeback started while a layer is written (src/metadata/flush-ahead.ts). The
 * flushes are read from the syscalls of a child that writes files and reports them (strace);
 * the error path is driven in process.
 */
import { execFileSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { FlushAhead } from '../../src/metadata/index.js'
import { buildChild, cleanupTemps, makeTemp, removeChild, runChild } from './helpers.js'

function hasStrace(): boolean {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const strace = hasStrace()
if (!strace) console.warn('flush-ahead syscall tests skipped: strace is not installed')

const MiB = 1024 * 1024

/** Runs the child's `flush-ahead` mode under strace; returns the paths its syncfs calls named. */
async function traceFlushes(files: number, fileBytes: number, step: number): Promise<string[]> {
  const dir = await makeTemp()
  const out = join(await makeTemp(), 'strace.out')
  const wrapper = ['strace', '-f', '-qq', '-y', '-e', 'trace=syncfs', '-o', out]
  const result = await runChild({ mode: 'flush-ahead', dir, files, fileBytes, step }, wrapper)
  expect(result.stderr).toBe('')
  expect(result.code).toBe(0)
  const text = await readFile(out, 'utf8')
  return [...text.matchAll(/syncfs\(\d+<([^>]*)>/g)].map((m) => m[1]!)
}

describe.skipIf(!strace)('FlushAhead (traced)', () => {
  beforeAll(buildChild, 60_000)
  afterAll(removeChild)
  afterEach(cleanupTemps)

  it('starts no flush before a step of bytes was written', async () => {
    expect(await traceFlushes(4, MiB, 8 * MiB)).toEqual([])
  })

  it('flushes the filesystem of its path after a step, and at most once per step', async () => {
    const flushes = await traceFlushes(16, MiB, 4 * MiB)
    expect(flushes.length).toBeGreaterThanOrEqual(1)
    // 16 MiB in steps of 4: four at most (fewer when one was still running at a step).
    expect(flushes.length).toBeLessThanOrEqual(4)
  })
})

describe('FlushAhead errors', () => {
  it('keeps a failed flush and throws it from settle, typed, and starts no other', async () => {
    const ahead = new FlushAhead('/nonexistent/layerstore-flush-ahead', 10)
    ahead.progress(5)
    await ahead.settle()
    ahead.progress(10)
    const first = await ahead.settle().catch((err: unknown) => err)
    expect(first).toMatchObject({ code: 'ERR_METADATA_IO', op: 'syncfs', errno: 'ENOENT' })
    ahead.progress(100)
    // The same error again: it is not forgotten once thrown, and no flush replaced it.
    expect(await ahead.settle().catch((err: unknown) => err)).toBe(first)
  })
})
