/**
 * `layerctl bench` as a user runs it: the real binary over the built dist/ (build with
 * `npx tsc -p tsconfig.build.json`), on tiny workloads made here (a 3-layer chain and one
 * layer tar), vfs only, one rep: behaviour (exit status, results.json's shape, well-formed
 * SVG charts, cleanup), never timings.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { checkXml } from './check-xml.js'
import { mountsUnder } from '../mounts.js'

const LAYERCTL = fileURLToPath(new URL('../../bin/layerctl', import.meta.url))
const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('bench/bench-command.test: not root; the runs are skipped (the bench mounts and restores owners)')

function layerctl(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [LAYERCTL, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** A tar of `files` (path → content) made by GNU tar. */
function makeTar(dir: string, tar: string, files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true })
    writeFileSync(join(dir, path), content)
  }
  const r = spawnSync('tar', ['-c', '--numeric-owner', '-C', dir, '-f', tar, '.'])
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr.toString()}`)
}

describe('layerctl bench: arguments', () => {
  it('rejects a bad --reps with exit 1 and a message', () => {
    const r = layerctl(['bench', '--reps', 'zero'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/--reps zero: expected a positive integer/)
  })

  it('rejects an unknown workload with exit 1 and the known names', () => {
    const r = layerctl(['bench', '--workload', 'nope'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/unknown workload 'nope'.*debian/)
  })

  it('rejects an unknown --only phase with exit 1 and the phases', () => {
    const r = layerctl(['bench', '--only', 'mount'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/--only mount: not a phase \(register, rw, changes, export, release\)/)
  })

  it('rejects a positional argument with exit 1, pointing at --tar', () => {
    const r = layerctl(['bench', 'layer.tar'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/unexpected argument 'layer.tar'.*--tar/)
  })

  it('rejects an unknown option with exit 1', () => {
    const r = layerctl(['bench', '--bogus'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/bogus/)
  })

  it('lists bench in the help', () => {
    const r = layerctl(['--help'])
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^\s+bench\s/m)
  })
})

describe.skipIf(!isRoot)('layerctl bench: runs', () => {
  let dir: string

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bench-command-test-'))
  })

  afterEach(() => {
    for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m])
    rmSync(dir, { recursive: true, force: true })
  })

  it('says which workload is missing and how to build it (exit 2)', () => {
    const empty = join(dir, 'empty')
    mkdirSync(empty)
    const r = layerctl(['bench', '--driver', 'vfs', '--workload', 'debian', '--out', join(dir, 'out')], { LAYERBENCH_DIR: empty })
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/ERR_BENCH_WORKLOAD_MISSING/)
    expect(r.stderr).toContain(join(empty, 'debian.tar'))
    expect(r.stderr).toMatch(/make-workloads/)
  })

  it('a missing --tar is a clear error (exit 2)', () => {
    const r = layerctl(['bench', '--driver', 'vfs', '--tar', join(dir, 'nope.tar'), '--out', join(dir, 'out')])
    expect(r.status).toBe(2)
    expect(r.stderr).toContain(join(dir, 'nope.tar'))
  })

  /** A 3-layer chain in `<dir>/workloads/chain/` and one layer tar; returns their paths. */
  function tinyWorkloads(): { workloads: string; tar: string } {
    const workloads = join(dir, 'workloads')
    mkdirSync(join(workloads, 'chain'), { recursive: true })
    for (let i = 1; i <= 3; i++) {
      makeTar(join(dir, `src-${i}`), join(workloads, 'chain', `layer-00${i}.tar`), { [`d${i}/a`]: `layer ${i}\n`, [`d${i}/b`]: 'b'.repeat(5000) })
    }
    const tar = join(dir, 'app.tar')
    makeTar(join(dir, 'src-app'), tar, { 'etc/app.conf': 'x=1\n', 'usr/bin/app': 'binary'.repeat(1000), 'usr/share/doc/app/README': 'hello\n' })
    return { workloads, tar }
  }

  it('stops on SIGINT with exit 130, leaving no root and no mount', async () => {
    const { workloads, tar } = tinyWorkloads()
    const scratch = join(dir, 'scratch')
    const child = spawn(process.execPath, [LAYERCTL, 'bench', '--driver', 'overlay', '--workload', 'chain', '--tar', tar, '--reps', '2', '--depth', '1,3', '--out', join(dir, 'out'), '--scratch', scratch], {
      env: { ...process.env, LAYERBENCH_DIR: workloads },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    let sent = false
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString()
      // Interrupt once the first run of ours is under way (a child process with a store).
      if (!sent && /rep 1\/2 chain chain: overlay/.test(stderr)) {
        sent = true
        child.kill('SIGINT')
      }
    })
    const status = await new Promise<number | null>((resolve) => child.on('close', resolve))
    expect(sent).toBe(true)
    expect(status).toBe(130)
    expect(stderr).toMatch(/ERR_BENCH_INTERRUPTED/)
    expect(readdirSync(scratch)).toEqual([])
    expect(mountsUnder(dir)).toEqual([])
  }, 60_000)

  it('runs every operation on a tiny chain and a --tar, writes results.json and one SVG per operation', () => {
    const { workloads, tar } = tinyWorkloads()
    const out = join(dir, 'out')
    const r = layerctl(
      ['bench', '--driver', 'vfs', '--workload', 'chain', '--tar', tar, '--reps', '1', '--cycles', '1', '--depth', '1,3', '--out', out, '--scratch', join(dir, 'scratch')],
      { LAYERBENCH_DIR: workloads },
    )
    expect(r.stderr).not.toMatch(/ERR_/)
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/\| operation +\| driver/)

    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'))
    expect(results.schema).toBe('layerstore-bench/1')
    expect(results.machine).toMatchObject({ cores: expect.any(Number), kernel: expect.any(String), filesystem: expect.any(String), cpu: expect.any(String) })
    expect(results.versions).toMatchObject({ node: process.version, layerstore: expect.any(String), gnuTar: expect.stringMatching(/tar/) })
    expect(results.options).toMatchObject({ drivers: ['vfs'], workloads: ['chain', 'app'], reps: 1, depths: [1, 3] })
    const ops = new Set(results.summary.map((row: { operation: string }) => row.operation))
    expect([...ops].sort()).toEqual(
      ['chain', 'changes', 'commit', 'export', 'register', 'register-chain', 'register-existing', 'release', 'rw-create', 'rw-mount', 'rw-remove', 'rw-unmount'].sort(),
    )
    // register-chain: one timed registerChain call, beside chain in the report, read against chain's own reference run.
    const operations = results.summary.map((row: { operation: string }) => row.operation)
    expect(operations.indexOf('register-chain')).toBe(operations.lastIndexOf('chain') + 1)
    const sampleOf = (operation: string, tool: string) => results.samples.filter((s: { operation: string; tool: string }) => s.operation === operation && s.tool === tool)
    expect(sampleOf('register-chain', 'layerstore')).toHaveLength(1)
    expect(sampleOf('register-chain', 'reference')).toEqual(sampleOf('chain', 'reference').map((s: object) => ({ ...s, operation: 'register-chain' })))
    expect(sampleOf('register-chain', 'layerstore')[0]).toMatchObject({ workload: 'chain', entries: sampleOf('chain', 'layerstore')[0].entries })
    for (const row of results.summary) {
      expect(row.driver).toBe('vfs')
      expect(row.seconds.n).toBeGreaterThan(0)
      expect(row.seconds.min).toBeLessThanOrEqual(row.seconds.median)
      expect(row.seconds.median).toBeLessThanOrEqual(row.seconds.max)
      expect(row.reference).toEqual(expect.any(String))
      expect(row.ratio).toBeCloseTo(row.seconds.median / row.referenceSeconds.median, 6)
    }
    const register = results.summary.find((row: { operation: string }) => row.operation === 'register')
    expect(register).toMatchObject({ workload: 'app', mbPerSecond: expect.any(Number), entriesPerSecond: expect.any(Number), maxRssMiB: expect.any(Number) })
    // Releasing the chain's top deletes all of it.
    expect(results.samples.find((s: { operation: string; tool: string }) => s.operation === 'release' && s.tool === 'layerstore').entries).toBe(3)
    // Every sample is kept, ours and the references'.
    expect(results.samples.some((s: { tool: string }) => s.tool === 'reference')).toBe(true)
    expect(results.samples.filter((s: { operation: string; tool: string }) => s.operation === 'rw-mount' && s.tool === 'layerstore')).toHaveLength(2)

    const svgs = readdirSync(out).filter((f) => f.endsWith('.svg')).sort()
    expect(svgs).toEqual([...ops].map((op) => `${op}.svg`).sort())
    for (const f of svgs) {
      const text = readFileSync(join(out, f), 'utf8')
      expect(checkXml(text), f).toBe('svg')
      expect(text).toContain('1.0 = reference')
      expect(text).toContain('vfs')
    }
    // Nothing left behind: the scratch root is gone and nothing is mounted under it.
    expect(readdirSync(join(dir, 'scratch'))).toEqual([])
    expect(mountsUnder(dir)).toEqual([])
  }, 60_000)
})
