/**
 * `layerctl tar-split` as a user runs it: the real binary (./bin/layerctl over the built
 * dist/, which `npm test` builds first) in a subprocess, on real files.
 */
import { spawnSync, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, existsSync, appendFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gunzipSync } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

const LAYERCTL = fileURLToPath(new URL('../../bin/layerctl', import.meta.url))

function layerctl(args: string[], opts: { input?: Buffer; cwd?: string } = {}) {
  const r = spawnSync(process.execPath, [LAYERCTL, ...args], {
    input: opts.input ?? Buffer.alloc(0),
    cwd: opts.cwd,
    maxBuffer: 256 << 20,
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() }
}

const haveGo = spawnSync('tar-split', ['--version']).status === 0
if (!haveGo) console.warn("cli/tar-split.test: Go's tar-split is not installed; the Go cross-checks are skipped")

describe('layerctl tar-split', () => {
  let dir = ''
  let tar = Buffer.alloc(0)
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cli-tarsplit-'))
    const tree = join(dir, 'tree')
    mkdirSync(join(tree, 'sub'), { recursive: true })
    writeFileSync(join(tree, 'hello.txt'), 'hello\n')
    writeFileSync(join(tree, 'sub', 'big.bin'), Buffer.alloc(300_000, 7))
    writeFileSync(join(tree, 'sub', 'n'.repeat(150)), 'long name')
    tar = execFileSync('tar', ['--format=posix', '--numeric-owner', '-C', tree, '-cf', '-', '.'])
    writeFileSync(join(dir, 'layer.tar'), tar)
  })
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('disasm echoes the tar unchanged and asm rebuilds it byte for byte', () => {
    const d = layerctl(['tar-split', 'disasm', '--output', join(dir, 'meta.json.gz'), join(dir, 'layer.tar')])
    expect(d.status, d.stderr).toBe(0)
    expect(d.stdout.equals(tar)).toBe(true)
    expect(d.stderr).toMatch(/disassembled \d+ members/)
    const rootfs = join(dir, 'rootfs')
    mkdirSync(rootfs)
    execFileSync('tar', ['-x', '--numeric-owner', '-C', rootfs], { input: d.stdout })
    const a = layerctl(['tar-split', 'asm', '--input', join(dir, 'meta.json.gz'), '--path', rootfs])
    expect(a.status, a.stderr).toBe(0)
    expect(a.stdout.equals(tar)).toBe(true)
    const o = layerctl(['tar-split', 'asm', '-i', join(dir, 'meta.json.gz'), '-p', rootfs, '-o', join(dir, 'again.tar')])
    expect(o.status, o.stderr).toBe(0)
    expect(readFileSync(join(dir, 'again.tar')).equals(tar)).toBe(true)
  })

  it('reads stdin, defaults to tar-data.json.gz, and --json reports on stdout', () => {
    const d = layerctl(['tar-split', 'disasm', '--no-stdout', '--json', '-'], { input: tar, cwd: dir })
    expect(d.status, d.stderr).toBe(0)
    expect(JSON.parse(d.stdout.toString())).toMatchObject({ bytes: tar.length, output: 'tar-data.json.gz' })
    expect(existsSync(join(dir, 'tar-data.json.gz'))).toBe(true)
  })

  it.skipIf(!haveGo)("--compat 0.11 writes what Debian's Go tar-split writes; Go's asm replays ours", () => {
    const ours = join(dir, 'ours.json.gz')
    const go = join(dir, 'go.json.gz')
    expect(layerctl(['tar-split', 'disasm', '--compat', '0.11', '--no-stdout', '-o', ours, join(dir, 'layer.tar')]).status).toBe(0)
    execFileSync('tar-split', ['disasm', '--no-stdout', '--output', go, join(dir, 'layer.tar')], { stdio: 'ignore' })
    expect(gunzipSync(readFileSync(ours)).equals(gunzipSync(readFileSync(go)))).toBe(true)
    const rootfs = join(dir, 'rootfs')
    mkdirSync(rootfs)
    execFileSync('tar', ['-x', '-C', rootfs, '-f', join(dir, 'layer.tar')])
    const back = execFileSync('tar-split', ['asm', '--input', ours, '--path', rootfs], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 })
    expect(back.equals(tar)).toBe(true)
  })

  it('a truncated tar: exit 4, one line naming the code, no metadata file left', () => {
    writeFileSync(join(dir, 'cut.tar'), tar.subarray(0, 1200))
    const d = layerctl(['tar-split', 'disasm', '--no-stdout', '-o', join(dir, 'm.json.gz'), join(dir, 'cut.tar')])
    expect(d.status).toBe(4)
    expect(d.stderr.trim().split('\n')).toHaveLength(1)
    expect(d.stderr).toContain('ERR_TAR_TRUNCATED')
    expect(readdirSync(dir).filter((f) => f.startsWith('m.json.gz'))).toEqual([])
  })

  it('garbage input: exit 4 with ERR_TAR_INVALID_HEADER', () => {
    const d = layerctl(['tar-split', 'disasm', '--no-stdout', '-o', join(dir, 'm.json.gz'), '-'], {
      input: Buffer.from('this is not a tar archive at all, just some text\n'.repeat(20)),
    })
    expect(d.status).toBe(4)
    expect(d.stderr).toContain('ERR_TAR_INVALID_HEADER')
  })

  it('asm of changed content: exit 4 with ERR_TARSPLIT_CHECKSUM_MISMATCH, no output left', () => {
    layerctl(['tar-split', 'disasm', '--no-stdout', '-o', join(dir, 'meta.json.gz'), join(dir, 'layer.tar')])
    const rootfs = join(dir, 'rootfs')
    mkdirSync(rootfs)
    execFileSync('tar', ['-x', '-C', rootfs, '-f', join(dir, 'layer.tar')])
    appendFileSync(join(rootfs, 'sub', 'big.bin'), 'x')
    const a = layerctl(['tar-split', 'asm', '-i', join(dir, 'meta.json.gz'), '-p', rootfs, '-o', join(dir, 'out.tar')])
    expect(a.status).toBe(4)
    expect(a.stderr).toContain('ERR_TARSPLIT_CHECKSUM_MISMATCH')
    expect(a.stderr).toContain('big.bin')
    expect(readdirSync(dir).filter((f) => f.startsWith('out.tar'))).toEqual([])
  })

  it('asm with a missing file: exit 2 (not found)', () => {
    layerctl(['tar-split', 'disasm', '--no-stdout', '-o', join(dir, 'meta.json.gz'), join(dir, 'layer.tar')])
    mkdirSync(join(dir, 'empty'))
    const a = layerctl(['tar-split', 'asm', '-i', join(dir, 'meta.json.gz'), '-p', join(dir, 'empty'), '-o', join(dir, 'o.tar')])
    expect(a.status).toBe(2)
    expect(a.stderr).toContain('ERR_TARSPLIT_MISSING_FILE')
  })

  it('usage errors exit 1 and point at --help; a misspelt command gets a suggestion', () => {
    const a = layerctl(['tar-split', 'asm', '--input', 'x.json.gz'])
    expect(a.status).toBe(1)
    expect(a.stderr).toContain('--path DIR is required')
    const b = layerctl(['tar-split', 'disasm', '--bogus'])
    expect(b.status).toBe(1)
    expect(b.stderr).toContain("layerctl tar-split disasm --help")
    const c = layerctl(['tar-splt', 'disasm'])
    expect(c.status).toBe(1)
    expect(c.stderr).toContain("did you mean 'tar-split'")
    const d = layerctl(['tar-split', 'dissasm'])
    expect(d.stderr).toContain("did you mean 'tar-split disasm'")
  })

  it('--help of every command has its usage and an example', () => {
    for (const cmd of [[], ['tar-split'], ['tar-split', 'disasm'], ['tar-split', 'asm']]) {
      const h = layerctl([...cmd, '--help'])
      expect(h.status).toBe(0)
      expect(h.stdout.toString()).toContain('Usage: layerctl')
      if (cmd.length > 0) expect(h.stdout.toString()).toContain('Examples:')
    }
  })
})
