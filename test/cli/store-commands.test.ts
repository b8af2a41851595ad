/**
 * The `layerctl` store commands as a user runs them: the real binary (./bin/layerctl over the
 * built dist/; build with `npx tsc -p tsconfig.build.json`) in subprocesses, against temporary
 * roots, on every built-in driver. Each call is its own process, so every test also checks
 * that references, RW layers and mounts persist across processes.
 */
import { spawn, spawnSync, execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, appendFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { pack } from 'tar-stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { StoreLock } from '../../src/metadata/index.js'
import { mountsUnder } from '../mounts.js'

const LAYERCTL = fileURLToPath(new URL('../../bin/layerctl', import.meta.url))
const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('cli/store-commands.test: not root; the overlay and bind drivers (mounts) are skipped')

function layerctl(args: string[], opts: { input?: Buffer } = {}) {
  const r = spawnSync(process.execPath, [LAYERCTL, ...args], { input: opts.input ?? Buffer.alloc(0), maxBuffer: 64 << 20 })
  return { status: r.status, stdout: r.stdout, out: r.stdout.toString(), stderr: r.stderr.toString() }
}

/** A tar made with tar-stream from `entries` (name → content, or a header for a special entry). */
async function makeTar(entries: Array<{ name: string; content?: string; type?: 'directory' | 'symlink'; linkname?: string }>): Promise<Buffer> {
  const p = pack()
  const chunks: Buffer[] = []
  p.on('data', (c: unknown) => {
    chunks.push(c as Buffer)
  })
  const done = new Promise<void>((resolve) => p.on('end', () => resolve()))
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      p.entry({ name: e.name, type: e.type ?? 'file', mode: e.type === 'directory' ? 0o755 : 0o644, mtime: new Date(1_700_000_000_000), ...(e.linkname ? { linkname: e.linkname } : {}) }, e.content ?? '', (err) => (err ? reject(err) : resolve())),
    )
  }
  p.finalize()
  await done
  return Buffer.concat(chunks)
}

/** What a failed or interrupted operation must not leave: open write sets, records, driver layers. */
function leftovers(root: string, driver: string): string[] {
  const db = join(root, 'image', driver, 'layerdb')
  const list = (d: string): string[] => (existsSync(d) ? readdirSync(d).map((f) => join(d, f)) : [])
  const home = join(root, driver)
  const driverLayers = [home, ...list(home)].flatMap((d) => list(d)).filter((p) => /[0-9a-f]{64}(-init)?$/.test(p))
  return [...list(join(db, 'tmp')), ...list(join(db, 'sha256')), ...list(join(db, 'mounts')), ...driverLayers]
}

/** A tar packer whose bytes go to `stdin` while it is writable (the child stops reading when interrupted). */
function feed(stdin: NodeJS.WritableStream & { writable: boolean; on(e: 'error', f: () => void): unknown }) {
  stdin.on('error', () => undefined) // EPIPE once the child is gone
  const p = pack()
  p.on('data', (c: unknown) => {
    if (stdin.writable) stdin.write(c as Buffer)
  })
  return p
}

const DRIVERS = ['vfs', 'overlay', 'bind'] as const

describe.each(DRIVERS)('layerctl store commands on %s', (driver) => {
  const skip = driver !== 'vfs' && !isRoot
  let dir = ''
  let root = ''
  let g: string[] = []
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), `cli-store-${driver}-`))
    root = join(dir, 'root')
    g = ['--root', root, '--driver', driver]
  })
  afterEach(() => {
    for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m])
    rmSync(dir, { recursive: true, force: true })
  })

  it.skipIf(skip)('mount --ro: a read-only view (EROFS), counted like any mount; --read-only reads and refuses changes', async () => {
    const tar = await makeTar([{ name: 'a.txt', content: 'a' }])
    writeFileSync(join(dir, 'l1.tar'), tar)
    const base = (JSON.parse(layerctl([...g, '--json', 'register', '--ref', 'img', join(dir, 'l1.tar')]).out) as { chainID: string }).chainID
    const rw = layerctl([...g, 'mount', base, '--name', 'c1'])
    expect(rw.status, rw.stderr).toBe(0)
    writeFileSync(join(rw.out.trim(), 'mine.txt'), 'mine')
    expect(layerctl([...g, 'unmount', 'c1']).status).toBe(0)

    const ro = layerctl([...g, '--json', 'mount', '--name', 'c1', '--ro'])
    expect(ro.status, ro.stderr).toBe(0)
    const view = JSON.parse(ro.out) as { path: string; readOnly: boolean }
    expect(view.readOnly).toBe(true)
    try {
      expect(readFileSync(join(view.path, 'mine.txt'), 'utf8')).toBe('mine')
      expect(readFileSync(join(view.path, 'a.txt'), 'utf8')).toBe('a')
      expect(() => writeFileSync(join(view.path, 'new.txt'), 'x')).toThrow(expect.objectContaining({ code: 'EROFS' }))
      // A writable mount meanwhile: a conflict (exit 3) where both views share a mount point.
      const rwAgain = layerctl([...g, 'mount', '--name', 'c1'])
      if (rwAgain.status === 0) {
        expect(rwAgain.out.trim()).not.toBe(view.path)
        expect(layerctl([...g, 'unmount', 'c1']).status).toBe(0)
      } else {
        expect(rwAgain.status).toBe(3)
        expect(rwAgain.stderr).toContain('ERR_DRIVER_MOUNT_MODE_CONFLICT')
      }
      // The store opened read-only sees everything and changes nothing.
      const ls = layerctl([...g, '--read-only', '--json', 'ls'])
      expect(ls.status, ls.stderr).toBe(0)
      expect((JSON.parse(ls.out) as { layers: unknown[] }).layers).toHaveLength(1)
      const exported = layerctl([...g, '--read-only', 'export', base])
      expect(exported.status, exported.stderr).toBe(0)
      expect(exported.stdout.equals(tar)).toBe(true)
      const refused = layerctl([...g, '--read-only', 'register', join(dir, 'l1.tar')])
      expect(refused.status).toBe(1)
      expect(refused.stderr).toContain('ERR_STORE_READ_ONLY')
    } finally {
      expect(layerctl([...g, 'unmount', 'c1']).status).toBe(0)
    }
    const diff = layerctl([...g, 'diff', 'c1'])
    expect(diff.out.trim().split('\n')).toEqual(['A /mine.txt'])
  })

  it.skipIf(skip)('register → ls → mount → write → diff → commit → export → release', async () => {
    const tar = await makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/hello.txt', content: 'hello\n' }, { name: 'old.txt', content: 'old' }])
    writeFileSync(join(dir, 'l1.tar'), tar)
    const r = layerctl([...g, 'register', '--ref', 'img', join(dir, 'l1.tar')])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toBe('') // no progress bar when stderr is not a terminal
    expect(r.out).toMatch(/^registered: sha256:[0-9a-f]{64}$/m)
    const again = layerctl([...g, '--json', 'register', '--ref', 'img', '-'], { input: gzipSync(tar) })
    expect(again.status, again.stderr).toBe(0)
    const reg = JSON.parse(again.out) as { chainID: string; diffID: string; size: number; existed: boolean }
    expect(reg).toMatchObject({ existed: true, depth: 1, parent: null, ref: 'img' })
    const base = reg.chainID

    const ls = JSON.parse(layerctl([...g, '--json', 'ls']).out) as { layers: Array<{ chainID: string; references: number; depth: number }> }
    expect(ls.layers).toEqual([expect.objectContaining({ chainID: base, references: 2, depth: 1, holders: { img: 2 } })])
    expect(layerctl([...g, 'ls']).out).toContain(base.slice(7, 19))

    const m = layerctl([...g, 'mount', base, '--name', 'c1', '--init'])
    expect(m.status, m.stderr).toBe(0)
    const path = m.out.trim()
    try {
      expect(readFileSync(join(path, 'etc/hello.txt'), 'utf8')).toBe('hello\n')
      writeFileSync(join(path, 'etc/new.txt'), 'new\n')
      rmSync(join(path, 'old.txt'))
      // Reuse: a second mount of the same name from another process gives the same view.
      const m2 = layerctl([...g, 'mount', '--name', 'c1'])
      expect(m2.out.trim()).toBe(path)
      expect(layerctl([...g, 'unmount', 'c1']).status).toBe(0)

      const diff = layerctl([...g, 'diff', 'c1'])
      expect(diff.status, diff.stderr).toBe(0)
      expect(diff.out.split('\n')).toEqual(expect.arrayContaining(['C /etc', 'A /etc/new.txt', 'D /old.txt']))
      const rwls = JSON.parse(layerctl([...g, '--json', 'ls', '--rw']).out) as { rwLayers: Array<{ name: string; parent: string; initID: string | null }> }
      expect(rwls.rwLayers).toEqual([expect.objectContaining({ name: 'c1', parent: base })])
      expect(rwls.rwLayers[0]?.initID).toMatch(/-init$/)
      // Removing a mounted RW layer is a conflict (3), and leaves it in place.
      const busy = layerctl([...g, 'rm', 'c1'])
      expect(busy.status).toBe(3)
      expect(busy.stderr).toContain('ERR_RW_LAYER_MOUNTED')

      const c = layerctl([...g, '--json', 'commit', 'c1', '--ref', 'snap'])
      expect(c.status, c.stderr).toBe(0)
      const top = (JSON.parse(c.out) as { chainID: string }).chainID
      const info = JSON.parse(layerctl([...g, '--json', 'inspect', top]).out) as Record<string, unknown>
      expect(info).toMatchObject({ parent: base, depth: 2, holders: { snap: 1 }, driver })

      const exported = layerctl([...g, 'export', top])
      expect(exported.status, exported.stderr).toBe(0)
      const names = execFileSync('tar', ['-t'], { input: exported.stdout }).toString().split('\n')
      expect(names).toEqual(expect.arrayContaining(['etc/new.txt', '.wh.old.txt']))
      const o = layerctl([...g, 'export', base, '-o', join(dir, 'out.tar')])
      expect(o.status, o.stderr).toBe(0)
      expect(readFileSync(join(dir, 'out.tar')).equals(tar)).toBe(true)
      expect(layerctl([...g, 'verify']).status).toBe(0)
    } finally {
      layerctl([...g, 'unmount', 'c1'])
    }
    expect(mountsUnder(dir)).toEqual([])
    const rm = layerctl([...g, 'rm', 'c1'])
    expect(rm.status, rm.stderr).toBe(0)
    const tops = JSON.parse(layerctl([...g, '--json', 'ls']).out) as { layers: Array<{ chainID: string }> }
    const top = tops.layers.find((l) => l.chainID !== base)?.chainID ?? ''
    // Released in other processes than the ones that registered, by holder name.
    expect(layerctl([...g, 'release', top, '--ref', 'snap']).out).toContain(`deleted: ${top}`)
    expect(layerctl([...g, 'release', base, '--ref', 'img']).out).toContain('nothing deleted')
    const last = layerctl([...g, '--json', 'release', base, '--ref', 'img'])
    expect(JSON.parse(last.out)).toMatchObject({ deleted: [expect.objectContaining({ chainID: base })] })
    expect(leftovers(root, driver)).toEqual([])
    const gone = layerctl([...g, 'release', base, '--ref', 'img'])
    expect(gone.status).toBe(2)
    expect(gone.stderr).toContain('ERR_LAYER_DOES_NOT_EXIST')
  })

  it.skipIf(skip)('bad input of every kind: exit 4 naming the code, nothing left in the root', async () => {
    const good = await makeTar([{ name: 'a.txt', content: 'a'.repeat(3000) }])
    const cases: Array<[string, Buffer, string]> = [
      ['garbage', Buffer.from('not a tar at all\n'.repeat(64)), 'ERR_TAR_INVALID_HEADER'],
      ['truncated tar', good.subarray(0, 1024), 'ERR_TAR_TRUNCATED'],
      ['truncated gzip', gzipSync(good).subarray(0, 40), 'ERR_LAYER_INPUT_CORRUPT'],
      ['escape by name', await makeTar([{ name: '../evil.txt', content: 'x' }]), ''],
      ['escape by symlink', await makeTar([{ name: 'ln', type: 'symlink', linkname: '/' }, { name: 'ln/evil.txt', content: 'x' }]), ''],
    ]
    for (const [what, input, code] of cases) {
      const r = layerctl([...g, 'register', '-'], { input })
      expect(r.status, `${what}: ${r.stderr}`).toBe(4)
      expect(r.stderr.trim().split('\n'), what).toHaveLength(1)
      expect(r.stderr, what).toMatch(code ? new RegExp(code) : /ERR_[A-Z_]+/)
      expect(leftovers(root, driver), what).toEqual([])
    }
    expect(existsSync(join(dir, 'evil.txt'))).toBe(false)
    expect(JSON.parse(layerctl([...g, '--json', 'ls']).out)).toEqual({ layers: [] })
  })

  it.skipIf(skip)('SIGINT in the middle of a big register leaves nothing behind', async () => {
    const child = spawn(process.execPath, [LAYERCTL, ...g, 'register', '-'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    const p = feed(child.stdin)
    const big = p.entry({ name: 'big.bin', size: 256 << 20 })
    big.on('error', () => undefined)
    const chunk = Buffer.alloc(1 << 20, 1)
    const tmp = join(root, 'image', driver, 'layerdb', 'tmp')
    // Feed slowly until the register's write set exists: it is then mid-stream, with its
    // interrupt handler installed. (tmp/ also holds the store's owner lock from open on, which
    // exists before the handler does: waiting for any entry raced with it.)
    const writeSets = (): string[] => (existsSync(tmp) ? readdirSync(tmp).filter((n) => n.startsWith('write-set-')) : [])
    for (let i = 0; i < 200 && writeSets().length === 0; i++) {
      big.write(chunk)
      await new Promise((r) => setTimeout(r, 25))
    }
    expect(writeSets().length).toBeGreaterThan(0)
    child.kill('SIGINT')
    expect(await exited).toBe(130)
    expect(stderr).toContain('ERR_INTERRUPTED')
    p.destroy()
    expect(leftovers(root, driver)).toEqual([])
    expect(JSON.parse(layerctl([...g, '--json', 'ls']).out)).toEqual({ layers: [] })
  })
})

describe('layerctl store commands (driver-independent)', () => {
  let dir = ''
  let g: string[] = []
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cli-store-'))
    g = ['--root', join(dir, 'root'), '--driver', 'vfs']
  })
  afterEach(() => {
    for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m])
    rmSync(dir, { recursive: true, force: true })
  })

  it('SIGKILL mid-register: the next cleanup removes the orphans', async () => {
    const child = spawn(process.execPath, [LAYERCTL, ...g, 'register', '-'], { stdio: ['pipe', 'ignore', 'ignore'] })
    const exited = new Promise((resolve) => child.on('close', resolve))
    const p = feed(child.stdin)
    const big = p.entry({ name: 'big.bin', size: 64 << 20 })
    big.on('error', () => undefined)
    const tmp = join(dir, 'root', 'image', 'vfs', 'layerdb', 'tmp')
    for (let i = 0; i < 200 && !(existsSync(tmp) && readdirSync(tmp).length > 0); i++) {
      big.write(Buffer.alloc(1 << 20))
      await new Promise((r) => setTimeout(r, 25))
    }
    child.kill('SIGKILL')
    await exited
    p.destroy()
    const c = layerctl([...g, '--json', 'cleanup'])
    expect(c.status, c.stderr).toBe(0)
    const report = JSON.parse(c.out) as { removedPaths: string[]; removedDriverIDs: string[] }
    expect(report.removedPaths.length + report.removedDriverIDs.length).toBeGreaterThan(0)
    expect(leftovers(join(dir, 'root'), 'vfs')).toEqual([])
    expect(layerctl([...g, 'cleanup']).out).toContain('nothing to clean up')
  })

  it('verify finds a changed file (exit 4); not found is 2; wrong ref is 1; name conflicts are 3', async () => {
    const tar = await makeTar([{ name: 'f.txt', content: 'original' }])
    const base = layerctl([...g, '-q', 'register', '-'], { input: tar }).out.trim()
    expect(base).toMatch(/^sha256:/)
    const other = layerctl([...g, '-q', 'register', '-'], { input: await makeTar([{ name: 'g.txt', content: 'g' }]) }).out.trim()
    const info = JSON.parse(layerctl([...g, '--json', 'inspect', base]).out) as { driverMetadata: { SourceDir: string } }
    appendFileSync(join(info.driverMetadata.SourceDir, 'f.txt'), '!')
    const v = layerctl([...g, 'verify', base])
    expect(v.status).toBe(4)
    expect(v.out).toMatch(/FAILED .*ERR_/)
    expect(layerctl([...g, 'export', base, '-o', join(dir, 'x.tar')]).status).toBe(4)
    expect(existsSync(join(dir, 'x.tar'))).toBe(false)
    expect(layerctl([...g, 'verify', other]).status).toBe(0)
    expect(layerctl([...g, 'inspect', 'sha256:' + '0'.repeat(64)]).status).toBe(2)
    expect(layerctl([...g, 'inspect', 'nosuchname']).status).toBe(2)
    expect(layerctl([...g, 'release', base, '--ref', 'someone-else']).status).toBe(1)
    expect(layerctl([...g, 'mount', base, '--name', 'c']).status).toBe(0)
    const clash = layerctl([...g, 'mount', other, '--name', 'c'])
    expect(clash.status).toBe(3)
    expect(clash.stderr).toContain('ERR_RW_LAYER_PARENT_MISMATCH')
    expect(layerctl([...g, 'unmount', 'c']).status).toBe(0)
    expect(layerctl([...g, 'unmount', 'c']).status).toBe(3)
    expect(layerctl([...g, 'rm', 'c']).status).toBe(0)
    expect(layerctl([...g, 'rm', 'c']).status).toBe(2)
  })

  it('a locked store: --no-wait exits 5 naming ERR_STORE_LOCKED', async () => {
    expect(layerctl([...g, 'ls']).status).toBe(0)
    await StoreLock.forRoot(join(dir, 'root')).withExclusive(async () => {
      const r = layerctl([...g, '--no-wait', 'ls'])
      expect(r.status).toBe(5)
      expect(r.stderr).toContain('ERR_STORE_LOCKED')
    })
  })

  it('drivers, status, usage errors, --help with an example, suggestions', () => {
    const d = JSON.parse(layerctl([...g, '--json', 'drivers']).out) as { selected: string; reason: string; drivers: Array<{ name: string }> }
    expect(d).toMatchObject({ selected: 'vfs', reason: 'explicit' })
    expect(d.drivers.map((x) => x.name)).toEqual(expect.arrayContaining(['vfs', 'overlay', 'bind']))
    const s = JSON.parse(layerctl([...g, '--json', 'status']).out) as Record<string, unknown>
    expect(s).toMatchObject({ driver: 'vfs', layers: 0, rwLayers: 0 })
    for (const cmd of ['register', 'release', 'ls', 'inspect', 'export', 'mount', 'unmount', 'diff', 'commit', 'rm', 'cleanup', 'verify', 'drivers', 'status']) {
      const h = layerctl([cmd, '--help'])
      expect(h.status, cmd).toBe(0)
      expect(h.out, cmd).toContain(`Usage: layerctl ${cmd}`)
      expect(h.out, cmd).toContain('Examples:')
    }
    expect(layerctl(['regster']).stderr).toContain("did you mean 'register'")
    expect(layerctl([...g, 'release']).status).toBe(1)
    expect(layerctl([...g, 'release', 'nonsense']).status).toBe(1)
    expect(layerctl([...g, 'mount', 'sha256:' + '0'.repeat(64)]).status).toBe(1)
    expect(layerctl([...g, 'export', 'sha256:' + '0'.repeat(64), '--json']).status).toBe(1)
  })
})
