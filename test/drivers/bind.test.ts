/**
 * The bind driver: the conformance suite, then what only bind promises: a read-only child
 * holds its own files until first used, then shows a tree that shares its parent's
 * unchanged inodes, has new inodes for changed ones, and never changes a parent file
 * (content, mode, owner, times); that tree is what vfs shows for the same stack; it is
 * flattened once for concurrent users; a read-only view refuses writes with EROFS;
 * read-write layers are copies; and a 10-layer chain takes far less disk than vfs.
 */
import type { BigIntStats } from 'node:fs'
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { bindDriverFactory } from '../../src/drivers/bind/index.js'
import { vfsDriverFactory } from '../../src/drivers/vfs/index.js'
import { runDriverConformance } from '../../src/graphdriver/conformance.js'
import { members, whiteout } from '../../src/graphdriver/conformance-members.js'
import type { MemberSpec } from '../../src/graphdriver/conformance-members.js'
import { isDiffDriver, naiveDiff, unmountAll } from '../../src/graphdriver/index.js'
import type { Driver } from '../../src/graphdriver/index.js'
import { diffTrees, formatTree, snapshotTree } from '../helpers/tree.js'
import type { Tree } from '../helpers/tree.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('[bind] driver tests skipped: bind mounts need root')

runDriverConformance('bind', async (home) => ({ driver: await bindDriverFactory.create({ home }) }))

async function start(factory: typeof bindDriverFactory, home: string): Promise<Driver> {
  const d = await factory.create({ home })
  return isDiffDriver(d) ? d : naiveDiff(d)
}

/** Identity and everything a child's apply must not change, of one path. */
function fingerprint(st: BigIntStats): string {
  return [st.ino, st.mode, st.uid, st.gid, st.size, st.mtimeNs].join('/')
}

describe.skipIf(!isRoot)('bind driver', () => {
  let tmp: string
  let drivers: Driver[]

  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'layerstore-bind-'))
    drivers = []
  })

  afterEach(async () => {
    for (const d of drivers) await d.cleanup().catch(() => undefined)
    await unmountAll(tmp)
    await rm(tmp, { recursive: true, force: true })
  })

  async function open(name = 'bind'): Promise<Driver> {
    const d = await start(name === 'bind' ? bindDriverFactory : vfsDriverFactory, join(tmp, name))
    drivers.push(d)
    return d
  }

  const BASE: MemberSpec[] = [
    { name: 'etc', type: 'directory' },
    { name: 'etc/keep', content: 'unchanged\n' },
    { name: 'etc/replace', content: 'old content\n' },
    { name: 'etc/chmod', content: 'same content, new mode\n', mode: 0o644 },
    { name: 'etc/gone', content: 'deleted by the child\n' },
    { name: 'etc/link-a', content: 'hard-linked pair\n' },
    { name: 'etc/link-b', type: 'hardlink', linkname: 'etc/link-a' },
    { name: 'etc/sym', type: 'symlink', linkname: 'keep' },
    { name: 'dev', type: 'directory' },
    { name: 'dev/null', type: 'char-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'fifo', type: 'fifo' },
  ]
  const CHILD: MemberSpec[] = [
    { name: 'etc', type: 'directory', mode: 0o750, mtime: { sec: 1_200_000_000, nsec: 0 } },
    { name: 'etc/replace', content: 'new content\n' },
    { name: 'etc/chmod', content: 'same content, new mode\n', mode: 0o600, uid: 7, gid: 8 },
    whiteout('etc/gone'),
    { name: 'etc/new-link', type: 'hardlink', linkname: 'etc/keep' },
    { name: 'etc/sym', type: 'symlink', linkname: 'replace' },
  ]

  it('shares unchanged inodes with the parent, replaces changed ones, never touches the parent', async () => {
    const d = await open()
    await d.create('base', null)
    await d.applyDiff('base', null, members(BASE))
    const paths = ['etc', 'etc/keep', 'etc/replace', 'etc/chmod', 'etc/gone', 'etc/link-a', 'etc/link-b', 'etc/sym', 'dev/null', 'fifo']
    const before = await withGet(d, 'base', async (parent) => {
      const seen = new Map<string, string>()
      for (const p of paths) seen.set(p, fingerprint(await lstat(join(parent, p), { bigint: true })))
      return seen
    })

    await d.create('child', 'base')
    // A read-only layer on a read-only parent holds its own files only, until first used.
    expect((await readdir(join(tmp, 'bind', 'child'))).sort()).toEqual(['diff', 'parent'])
    await d.applyDiff('child', 'base', members(CHILD))
    expect((await readdir(join(tmp, 'bind', 'child'))).sort()).toEqual(['diff', 'parent'])
    expect(Object.keys(await d.getMetadata('child')).sort()).toEqual(['DiffDir', 'MergedDir', 'Parent'])

    await withGet(d, 'base', (parent) =>
      withGet(d, 'child', async (child) => {
        const ino = async (root: string, p: string): Promise<bigint> => (await lstat(join(root, p), { bigint: true })).ino
        // Unchanged: shared. A hardlink member to a parent's file joins the parent's inode.
        for (const p of ['etc/keep', 'etc/link-a', 'etc/link-b', 'dev/null', 'fifo']) {
          expect(await ino(child, p), p).toBe(await ino(parent, p))
        }
        expect(await ino(child, 'etc/new-link')).toBe(await ino(parent, 'etc/keep'))
        // Replaced (content, or only mode and owner): new inodes. Directories and symlinks are never shared.
        for (const p of ['etc', 'etc/replace', 'etc/chmod', 'etc/sym']) {
          expect(await ino(child, p), p).not.toBe(await ino(parent, p))
        }
        expect(await readFile(join(child, 'etc/replace'), 'utf8')).toBe('new content\n')
        const chmodded = await lstat(join(child, 'etc/chmod'))
        expect([chmodded.mode & 0o7777, chmodded.uid, chmodded.gid]).toEqual([0o600, 7, 8])
        await expect(lstat(join(child, 'etc/gone'))).rejects.toMatchObject({ code: 'ENOENT' })

        // The parent: same inodes, content, modes, owners and times as before the child's apply.
        for (const p of paths) {
          expect(fingerprint(await lstat(join(parent, p), { bigint: true })), p).toBe(before.get(p))
        }
        expect(await readFile(join(parent, 'etc/replace'), 'utf8')).toBe('old content\n')
        expect(await readFile(join(parent, 'etc/gone'), 'utf8')).toBe('deleted by the child\n')
      }),
    )
    // The first get flattened the tree, and keeps it.
    expect((await readdir(join(tmp, 'bind', 'child'))).sort()).toEqual(['diff', 'parent', 'root'])
    expect(await d.getMetadata('child')).toMatchObject({ SourceDir: join(tmp, 'bind', 'child', 'root'), DiffDir: join(tmp, 'bind', 'child', 'diff') })
  })

  it('serves a read-only layer through a read-only bind mount (EROFS)', async () => {
    const d = await open()
    await d.create('base', null)
    await d.applyDiff('base', null, members(BASE))
    const view = await d.get('base')
    try {
      expect(await readFile(join(view, 'etc/keep'), 'utf8')).toBe('unchanged\n')
      await expect(writeFile(join(view, 'etc/keep'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
      await expect(writeFile(join(view, 'new'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
    } finally {
      await d.put('base')
    }
  })

  it('makes read-write layers as copies, so container writes never reach the image', async () => {
    const d = await open()
    await d.create('base', null)
    await d.applyDiff('base', null, members(BASE))
    await d.createReadWrite('rw', 'base')
    const parent = join(tmp, 'bind', 'base', 'root')
    const view = await d.get('rw')
    try {
      expect((await lstat(join(view, 'etc/keep'))).ino).not.toBe((await lstat(join(parent, 'etc/keep'))).ino)
      await writeFile(join(view, 'etc/keep'), 'written by a container\n')
      expect(await readFile(join(parent, 'etc/keep'), 'utf8')).toBe('unchanged\n')
      // A read-only layer made on the read-write one is a copy too: its parent may change.
      await d.create('committed', 'rw')
      const committed = join(tmp, 'bind', 'committed', 'root')
      expect((await lstat(join(committed, 'etc/keep'))).ino).not.toBe((await lstat(join(view, 'etc/keep'))).ino)
      expect(await readFile(join(committed, 'etc/keep'), 'utf8')).toBe('written by a container\n')
    } finally {
      await d.put('rw')
    }
  })

  it('shows the tree vfs shows for a stack of whiteouts, opaque dirs, replaced types and implied dirs', async () => {
    const stack: MemberSpec[][] = [
      [
        // The root's attributes: later layers without a `./` member keep them.
        { name: './', type: 'directory', mode: 0o750, uid: 5, gid: 6, mtime: { sec: 1_000_000_000, nsec: 0 } },
        { name: 'etc', type: 'directory', mode: 0o755 },
        { name: 'etc/passwd', content: 'root\n' },
        { name: 'recreated', type: 'directory' },
        { name: 'recreated/deleted', content: 'must not come back\n' },
        { name: 'root', type: 'directory', mode: 0o700, uid: 3, gid: 4, mtime: { sec: 1_000_000_000, nsec: 7 } },
        { name: 'root/.profile', content: 'profile\n' },
        { name: 'opaque', type: 'directory' },
        { name: 'opaque/old', content: 'hidden by an opaque dir\n' },
        { name: 'was-dir', type: 'directory' },
        { name: 'was-dir/inside', content: 'x' },
        { name: 'was-file', content: 'becomes a directory\n' },
        { name: 'gone-dir', type: 'directory' },
        { name: 'gone-dir/a', content: 'a' },
      ],
      [
        // Implied: no member for root/, which keeps its owner, mode and times.
        { name: 'root/.bashrc', content: 'bashrc\n' },
        { name: 'opaque', type: 'directory' },
        { name: 'opaque/.wh..wh..opq', content: '' },
        { name: 'opaque/new', content: 'new\n' },
        whiteout('was-dir'),
        { name: 'was-dir', content: 'now a file\n' },
        { name: 'was-file', type: 'directory' },
        { name: 'was-file/x', content: 'x' },
        whiteout('gone-dir'),
        // Deleted, then made again in the same layer: nothing of the old one shows.
        whiteout('recreated'),
        { name: 'recreated', type: 'directory' },
        { name: 'recreated/new', content: 'new\n' },
      ],
      [
        // A hardlink to a grandparent's file, and one to a path this layer whites out first.
        { name: 'etc/passwd-link', type: 'hardlink', linkname: 'etc/passwd' },
        whiteout('root/.profile'),
        { name: 'gone-dir', type: 'directory' },
        { name: 'gone-dir/b', content: 'b' },
      ],
    ]
    const [bind, vfs] = await topViews(stack)
    // Directory mtimes move as entries are made (vfs's root/ too; bind keeps its lower's, below).
    const dirMtime = (_path: string, field: string): boolean => field === 'mtime' && bind.get(_path)?.type === 'dir'
    expect(diffTrees(vfs, bind, { ignore: dirMtime }), formatTree(bind)).toEqual([])
    expect(bind.get('root')).toMatchObject({ mode: 0o700, uid: 3, gid: 4, mtime: '1000000000000000007' })
    expect(bind.get('etc/passwd')?.hardlinks).toEqual(['etc/passwd', 'etc/passwd-link'])
    expect([...bind.keys()].filter((p) => /^(opaque|gone-dir|recreated)\//.test(p))).toEqual(['gone-dir/b', 'opaque/new', 'recreated/new'])
    expect(bind.get('')).toMatchObject({ mode: 0o750, uid: 5, gid: 6 })
  })

  it('hides every lower layer under an opaque root, as vfs does', async () => {
    const [bind, vfs] = await topViews([
      [{ name: 'a', content: 'a' }, { name: 'd', type: 'directory' }, { name: 'd/b', content: 'b' }],
      [{ name: 'c', content: 'c' }],
      [{ name: '.wh..wh..opq', content: '' }, { name: 'd', type: 'directory' }, { name: 'd/e', content: 'e' }],
    ])
    expect([...bind.keys()]).toEqual(['', 'd', 'd/e'])
    expect(diffTrees(vfs, bind, { ignore: (path, field) => field === 'mtime' && bind.get(path)?.type === 'dir' })).toEqual([])
  })

  /** The top layer's view of `stack` (layers bottom first) made on bind and on vfs. */
  async function topViews(stack: MemberSpec[][]): Promise<[Tree, Tree]> {
    const trees: Tree[] = []
    for (const name of ['bind', 'vfs']) {
      const d = await open(name)
      for (const [i, layer] of stack.entries()) {
        await d.create(`l${i}`, i === 0 ? null : `l${i - 1}`)
        await d.applyDiff(`l${i}`, i === 0 ? null : `l${i - 1}`, members(layer))
      }
      trees.push(await withGet(d, `l${stack.length - 1}`, async (view) => snapshotTree(view)))
    }
    return trees as [Tree, Tree]
  }

  it('flattens once for concurrent users, in one process or two, and stacks a new layer on an old-style tree', async () => {
    const d = await open()
    const other = await open()
    await d.create('base', null)
    await d.applyDiff('base', null, members(BASE))
    await d.create('child', 'base')
    await d.applyDiff('child', 'base', members(CHILD))
    const [a, b, c] = await Promise.all([d.get('child'), d.get('child'), other.get('child')])
    try {
      expect(a).toBe(b)
      expect(await readFile(join(c, 'etc/replace'), 'utf8')).toBe('new content\n')
      expect(await readdir(join(tmp, 'bind'))).not.toContain(expect.stringContaining('~'))
    } finally {
      await d.put('child')
      await d.put('child')
      await other.put('child')
    }
    // A store made before diff/ existed, opened anew: a layer with its complete tree only.
    await rm(join(tmp, 'bind', 'child', 'diff'), { recursive: true })
    const later = await open()
    await later.create('grandchild', 'child')
    await later.applyDiff('grandchild', 'child', members([{ name: 'etc/more', content: 'more\n' }, whiteout('etc/keep')]))
    await withGet(later, 'grandchild', async (view) => {
      expect(await readFile(join(view, 'etc/replace'), 'utf8')).toBe('new content\n')
      expect(await readFile(join(view, 'etc/more'), 'utf8')).toBe('more\n')
      await expect(lstat(join(view, 'etc/keep'))).rejects.toMatchObject({ code: 'ENOENT' })
    })
  })

  it('takes far less disk than vfs for a 10-layer chain', async () => {
    const usage: Record<string, number> = {}
    for (const name of ['bind', 'vfs']) {
      const d = await open(name)
      // A base of 200 files of 16 KiB; each layer rewrites one small file and adds 64 KiB.
      const base: MemberSpec[] = [{ name: 'usr', type: 'directory' }]
      for (let i = 0; i < 200; i++) base.push({ name: `usr/f${i}`, content: Buffer.alloc(16384, i) })
      await d.create('l0', null)
      await d.applyDiff('l0', null, members(base))
      for (let n = 1; n < 10; n++) {
        await d.create(`l${n}`, `l${n - 1}`)
        await d.applyDiff(`l${n}`, `l${n - 1}`, members([
          { name: 'usr/f0', content: `version ${n}\n` },
          { name: `usr/added${n}`, content: Buffer.alloc(65536, n) },
        ]))
      }
      usage[name] = await diskUsage(join(tmp, name))
    }
    console.log(`[bind] disk use of a 10-layer chain: bind ${kib(usage.bind!)} KiB, vfs ${kib(usage.vfs!)} KiB`)
    expect(usage.bind!).toBeLessThan(usage.vfs! / 4)
  })
})

/** `du`: allocated blocks under `dir`, each inode counted once. */
async function diskUsage(dir: string): Promise<number> {
  const seen = new Set<bigint>()
  let total = 0
  async function walk(p: string): Promise<void> {
    const st = await lstat(p, { bigint: true })
    if (!seen.has(st.ino)) {
      seen.add(st.ino)
      total += Number(st.blocks) * 512
    }
    if (st.isDirectory()) for (const name of await readdir(p)) await walk(join(p, name))
  }
  await walk(dir)
  return total
}

/** Runs `use` on the layer's view, then puts it, also when `use` fails. */
async function withGet<T>(d: Driver, id: string, use: (view: string) => Promise<T>): Promise<T> {
  const view = await d.get(id)
  try {
    return await use(view)
  } finally {
    await d.put(id)
  }
}

function kib(bytes: number): number {
  return Math.round(bytes / 1024)
}
