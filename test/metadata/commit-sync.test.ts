/**
 * The order of a commit's syncs, read from the syscalls themselves (strace on a child that
 * commits one layer): nothing of the write set is reachable under `sha256/` before it is
 * durable, and the durability costs one `syncfs` when the set shares the driver data's
 * filesystem, else one fsync per file plus one of the set's directory. `sha256/` is fsynced
 * after the rename either way (moby skips that; we never do).
 *
 * A SIGKILL cannot test durability (the page cache survives it), so the crash tests cannot
 * tell a missing fsync: this test is what pins them.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildChild, cleanupTemps, makeTemp, removeChild, runChild, testLayer } from './helpers.js'

function hasStrace(): boolean {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const strace = hasStrace()
if (!strace) console.warn('commit sync-order tests skipped: strace is not installed')

/** One traced call: its name, the path of its fd (`-y`) or its path arguments. */
interface Call {
  readonly name: string
  readonly paths: readonly string[]
}

async function traceCommit(root: string, syncfsPaths: string[]): Promise<Call[]> {
  const out = join(root, 'strace.out')
  const layer = testLayer('traced')
  const wrapper = ['strace', '-f', '-qq', '-y', '-e', 'trace=fsync,fdatasync,syncfs,rename,renameat2', '-o', out]
  const result = await runChild({ mode: 'commit', root, driver: 'vfs', layer, syncfsPaths }, wrapper)
  expect(result.stderr).toBe('')
  expect(result.code).toBe(0)
  const calls: Call[] = []
  for (const line of (await readFile(out, 'utf8')).split('\n')) {
    // Calls that overlap are split into `<unfinished ...>` and `<... resumed>` lines: the
    // first one names the call (a failure would make the child fail anyway).
    const m = /^\d+\s+(\w+)\((.*?)(?:\)\s+=\s+0| <unfinished \.\.\.>)$/.exec(line)
    if (!m) continue
    // Path arguments when quoted (rename*), else the path of the fd (`-y`).
    const quoted = [...m[2]!.matchAll(/"([^"]*)"/g)].map((p) => p[1]!)
    const paths = quoted.length > 0 ? quoted : [...m[2]!.matchAll(/<([^>]*)>/g)].map((p) => p[1]!)
    calls.push({ name: m[1]!, paths })
  }
  return calls
}

/** The index of the rename that publishes the write set, and the set's path. */
function publish(calls: readonly Call[], root: string): { at: number; set: string } {
  const sha256 = join(root, 'image', 'vfs', 'layerdb', 'sha256')
  const at = calls.findIndex((c) => c.name === 'renameat2' && c.paths[1]?.startsWith(`${sha256}/`))
  expect(at).toBeGreaterThan(-1)
  return { at, set: calls[at]!.paths[0]! }
}

const SET_FILES = ['cache-id', 'diff', 'size', 'tar-split.json.gz']

describe.skipIf(!strace)('commit sync order (traced)', () => {
  beforeAll(buildChild)
  afterAll(removeChild)
  afterEach(cleanupTemps)

  it('on the driver data\'s filesystem: one syncfs before the rename, no fsync per file, sha256/ fsynced after', async () => {
    const root = await makeTemp()
    const home = join(root, 'vfs')
    await mkdir(home)
    const calls = await traceCommit(root, [home])
    const { at, set } = publish(calls, root)
    const before = calls.slice(0, at)
    expect(before.filter((c) => c.name === 'syncfs').map((c) => c.paths[0])).toEqual([home])
    // Nothing of the set was fsynced one by one: the syncfs after its last write covered it.
    expect(before.filter((c) => c.name === 'fsync' && c.paths[0]?.startsWith(set))).toEqual([])
    const after = calls.slice(at + 1)
    expect(after.filter((c) => c.name === 'fsync').map((c) => c.paths[0])).toContain(join(root, 'image', 'vfs', 'layerdb', 'sha256'))
  })

  it('elsewhere (no syncfs path, or one on another filesystem): every file and the set fsynced before the rename', async () => {
    const shm = '/dev/shm'
    const other = await stat(shm).then((s) => s.isDirectory(), () => false)
    for (const syncfsPaths of other ? [[], [shm]] : [[]]) {
      const root = await makeTemp()
      if (other && (await stat(root)).dev === (await stat(shm)).dev) continue
      const calls = await traceCommit(root, syncfsPaths)
      const { at, set } = publish(calls, root)
      const before = calls.slice(0, at)
      expect(before.filter((c) => c.name === 'syncfs').map((c) => c.paths[0])).toEqual(syncfsPaths)
      const synced = before.filter((c) => c.name === 'fsync').map((c) => c.paths[0])
      for (const file of SET_FILES) expect(synced).toContain(join(set, file))
      expect(synced).toContain(set)
      expect(calls.slice(at + 1).filter((c) => c.name === 'fsync').map((c) => c.paths[0])).toContain(join(root, 'image', 'vfs', 'layerdb', 'sha256'))
    }
  })
})
