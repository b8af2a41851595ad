/**
 * Exporting changes, and the round trip: base tree → changed copy → `changes` →
 * `exportChanges` → apply onto a fresh copy of the base → the same tree as the changed copy.
 * The same for overlay: changes made through an overlayfs mount → `overlayChanges` of the
 * upper dir → export → apply (naive onto a copy of the lower, and overlay-format into a new
 * upper dir mounted again) → the merged view seen through the first mount.
 *
 * Trees are made with node:fs and the native module; copies with `cp -a --preserve=all`.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { TreeReadError, changes, exportChanges, overlayChanges } from '../../src/archive/index.js'
import type { Change } from '../../src/archive/index.js'
import { encodeHeader, formatPaxTime } from '../../src/archive/tar-writer.js'
import { lsetxattr, mknod, mount, umount, utimensat, MNT_DETACH } from '../../src/native/index.js'
import { disassemble } from '../../src/tarsplit/index.js'
import { diffTrees, formatTree, snapshotTree } from '../helpers/tree.js'
import type { Tree } from '../helpers/tree.js'
import { applyBuffer, gnuTar, isRoot, useTempDirs } from './craft-tar.js'

const LATIN1_NAME = Buffer.from([0x63, 0x61, 0x66, 0xe9]) // "café" in Latin-1: not UTF-8
const LONG = 'a-directory-name-of-some-length/'.repeat(5)

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

function at(root: string, rel: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${root}/`), typeof rel === 'string' ? Buffer.from(rel) : rel])
}

/** A base tree with every kind of member and attribute a layer can hold. */
function buildBase(root: string): void {
  const p = (rel: string): string => path.join(root, rel)
  for (const d of ['etc', 'bin', 'usr/bin', 'usr/lib', 'usr/share/doc', 'opt/app', 'var/cache/x', 'dev', 'tmp', LONG]) {
    fs.mkdirSync(p(d), { recursive: true })
  }
  fs.writeFileSync(p('etc/passwd'), 'root:x:0:0\n')
  fs.writeFileSync(p('etc/group'), 'root:x:0:\n')
  fs.writeFileSync(p('etc/hosts'), '127.0.0.1 localhost\n')
  fs.writeFileSync(p('bin/ping'), 'elf')
  fs.chmodSync(p('bin/ping'), 0o4755)
  const cap = Buffer.alloc(20)
  cap.writeUInt32LE(0x02000001, 0)
  cap.writeUInt32LE(1 << 13, 4)
  lsetxattr(p('bin/ping'), 'security.capability', cap)
  fs.writeFileSync(p('usr/bin/x'), 'linked')
  fs.linkSync(p('usr/bin/x'), p('usr/bin/y'))
  fs.symlinkSync('usr/lib', p('lib'))
  fs.writeFileSync(p('usr/share/doc/readme'), 'doc')
  fs.writeFileSync(p('opt/app/conf'), 'conf')
  fs.writeFileSync(p('var/cache/x/blob'), 'cache')
  fs.chownSync(p('opt/app'), 100, 101)
  fs.chmodSync(p('opt/app'), 0o750)
  fs.chmodSync(p('tmp'), 0o1777)
  mknod(p('dev/null'), fs.constants.S_IFCHR | 0o666, 1, 3)
  mknod(p('dev/fifo'), fs.constants.S_IFIFO | 0o600, 0, 0)
  fs.writeFileSync(p(`${LONG}file-with-a-long-path`), 'long')
  fs.writeFileSync(at(root, LATIN1_NAME), 'latin1')
  fs.writeFileSync(p('big-uid'), 'x')
  fs.chownSync(p('big-uid'), 3_000_000, 3_000_001)
  lsetxattr(p('etc'), 'user.dir', Buffer.from([1, 2, 0xff]))
  utimensat(p('etc/passwd'), { sec: 1_600_000_000, nsec: 123_456_789 }, { sec: 1_600_000_000, nsec: 123_456_789 })
}

/** The changes a container makes, applied through `root` (a copy, or an overlay mount). */
function mutate(root: string): void {
  const p = (rel: string): string => path.join(root, rel)
  fs.writeFileSync(p('etc/passwd'), 'root:x:0:0\nuser:x:1000:1000\n')
  utimensat(p('etc/passwd'), { sec: 1_700_000_000, nsec: 1 }, { sec: 1_700_000_000, nsec: 1 })
  fs.chownSync(p('opt/app/conf'), 5, 5)
  fs.rmSync(p('usr/share/doc'), { recursive: true })
  fs.rmSync(p('usr/bin/y'))
  fs.mkdirSync(p('new/dir/deep'), { recursive: true })
  fs.writeFileSync(p('new/dir/deep/file'), Buffer.alloc(200_000, 7))
  fs.writeFileSync(p('new/h1'), 'pair')
  fs.linkSync(p('new/h1'), p('new/h2'))
  fs.writeFileSync(at(root, Buffer.concat([Buffer.from('new/'), LATIN1_NAME])), 'é')
  fs.rmSync(p('etc/group'))
  fs.mkdirSync(p('etc/group'))
  fs.writeFileSync(p('etc/group/inside'), 'now a dir')
  fs.rmSync(p('var/cache'), { recursive: true })
  fs.writeFileSync(p('var/cache'), 'now a file')
  fs.rmSync(p('lib'))
  fs.symlinkSync('usr/lib64', p('lib'))
  lsetxattr(p('etc/hosts'), 'user.y', Buffer.from('set'))
  // Replacing a whole directory: opaque on overlay, deletes + adds on a copy.
  fs.rmSync(p('opt/app'), { recursive: true })
  fs.mkdirSync(p('opt/app'))
  fs.writeFileSync(p('opt/app/only'), 'only')
  fs.chmodSync(p('tmp'), 0o1770)
  fs.writeFileSync(p(`${LONG}another-file-with-a-long-path`), 'more')
}

/** Snapshot without the root's own attributes (overlay's root takes the upper dir's). */
function same(a: Tree, b: Tree): string[] {
  return diffTrees(a, b, { ignore: (p) => p === '' })
}

if (!isRoot) console.warn('export: skipped, needs root (chown, mknod, trusted.* xattrs, mounts)')

describe('tar-writer', () => {
  it('formats PAX times as Go does', () => {
    expect(formatPaxTime(1, 0)).toBe('1')
    expect(formatPaxTime(1, 500_000_000)).toBe('1.5')
    expect(formatPaxTime(1_600_000_000, 123_456_789)).toBe('1600000000.123456789')
    expect(formatPaxTime(-2, 750_000_000)).toBe('-1.25')
  })

  it('writes what our parser reads back: long and Latin-1 names, big ids, ns times, binary xattrs', async () => {
    const name = Buffer.concat([Buffer.from(`${LONG}${LONG}`), LATIN1_NAME])
    const header = encodeHeader({
      name,
      type: 'file',
      mode: 0o4755,
      uid: 3_000_000,
      gid: 7,
      size: 3,
      mtime: { sec: 1_600_000_000, nsec: 5 },
      linkname: Buffer.alloc(0),
      devmajor: 0,
      devminor: 0,
      xattrs: new Map([['security.capability', Buffer.from([0, 0xff, 0x80])]]),
    })
    const tar = Buffer.concat([header, Buffer.from('abc'), Buffer.alloc(509), Buffer.alloc(1024)])
    const members = []
    for await (const m of disassemble(Readable.from([tar]), { sink: { add() {} } })) members.push(m.header)
    expect(members).toHaveLength(1)
    const h = members[0]!
    expect(h.name).toEqual(name)
    expect([h.mode & 0o7777, h.uid, h.gid, h.size, h.mtime.sec, h.mtime.nsec]).toEqual([0o4755, 3_000_000, 7, 3, 1_600_000_000, 5])
    expect(h.xattrs.get('security.capability')).toEqual(Buffer.from([0, 0xff, 0x80]))
  })
})

describe.skipIf(!isRoot)('exportChanges', () => {
  const tempDir = useTempDirs()

  function copy(from: string, name: string): string {
    const to = path.join(path.dirname(from), name)
    execFileSync('cp', ['-a', '--preserve=all', from, to])
    return to
  }

  it('round trip: changes → export → apply onto the base gives the changed tree', async () => {
    const base = tempDir('base')
    buildBase(base)
    const child = copy(base, 'child')
    mutate(child)
    const list = await changes(child, base)
    expect(list.map((c) => `${c.kind[0]} ${c.path}`)).toContain('d /usr/share/doc')
    const tar = await collect(exportChanges(child, list))
    const again = await collect(exportChanges(child, list))
    expect(again.equals(tar), 'the same tree and changes give the same bytes').toBe(true)

    const target = copy(base, 'target')
    await applyBuffer(tar, target, { whiteouts: 'naive' })
    const expected = snapshotTree(child)
    expect(same(expected, snapshotTree(target)), formatTree(expected)).toEqual([])

    // GNU tar reads the export too (it writes the .wh. files as files, which it cannot know).
    const tarPath = path.join(path.dirname(base), 'layer.tar')
    fs.writeFileSync(tarPath, tar)
    const gnu = tempDir('gnu')
    const res = gnuTar(['-x', '--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', gnu, '-f', tarPath])
    expect(res.status, res.stderr).toBe(0)
    const fromGnu = snapshotTree(gnu, { exclude: (p) => p.split('/').pop()!.startsWith('.wh.') })
    const ours = snapshotTree(target)
    for (const [p, e] of fromGnu) {
      if (p === '' || e.type === 'dir') continue
      expect(diffTrees(new Map([[p, e]]), new Map([[p, ours.get(p)!]])), p).toEqual([])
    }
  })

  it('adds the directories above a change when the list lacks them, and hardlinks within the export', async () => {
    const base = tempDir('base')
    buildBase(base)
    const list: Change[] = [
      { path: '/usr/bin/x', kind: 'modified' },
      { path: '/usr/bin/y', kind: 'modified' },
      { path: '/opt/app/gone', kind: 'deleted' },
    ]
    const names: string[] = []
    const links: string[] = []
    for await (const m of disassemble(exportChanges(base, list), { sink: { add() {} } })) {
      names.push(m.header.name.toString('latin1'))
      if (m.header.type === 'hardlink') links.push(`${m.header.name} -> ${m.header.linkname}`)
    }
    expect(names).toEqual(['opt/', 'opt/app/', 'opt/app/.wh.gone', 'usr/', 'usr/bin/', 'usr/bin/x', 'usr/bin/y'])
    expect(links).toEqual(['usr/bin/y -> usr/bin/x'])
  })

  it('streams big files in bounded chunks', async () => {
    const dir = tempDir('d')
    fs.writeFileSync(path.join(dir, 'big'), Buffer.alloc(8 << 20, 1))
    fs.utimesSync(path.join(dir, 'big'), 1e9, 1e9) // whole seconds: no PAX header
    let largest = 0
    let total = 0
    for await (const c of exportChanges(dir, [{ path: '/big', kind: 'added' }])) {
      largest = Math.max(largest, (c as Buffer).length)
      total += (c as Buffer).length
    }
    expect(largest).toBeLessThanOrEqual(1 << 20)
    expect(total).toBe(512 + (8 << 20) + 1024)
  })

  it('fails the stream with TreeReadError when a path is gone', async () => {
    const dir = tempDir('d')
    await expect(collect(exportChanges(dir, [{ path: '/vanished', kind: 'added' }]))).rejects.toBeInstanceOf(TreeReadError)
  })

  describe('overlay', () => {
    it('round trip through an overlayfs mount, applied both ways', async (ctx) => {
      const tmp = tempDir()
      const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((d) => {
        fs.mkdirSync(path.join(tmp, d))
        return path.join(tmp, d)
      }) as [string, string, string, string]
      buildBase(lower)
      const data = `lowerdir=${lower},upperdir=${upper},workdir=${work},index=off,redirect_dir=off,metacopy=off`
      try {
        await mount('overlay', merged, 'overlay', 0, data)
      } catch (err) {
        console.warn(`export: overlay round trip skipped, cannot mount overlayfs here: ${String(err)}`)
        ctx.skip()
        return
      }
      let view: Tree
      try {
        mutate(merged)
        view = snapshotTree(merged)
      } finally {
        await umount(merged, MNT_DETACH)
      }
      const list = await overlayChanges(upper, [lower])
      const shown = list.map((c) => `${c.kind[0]}${c.opaque ? '*' : ' '} ${c.path}`)
      expect(shown).toContain('m* /opt/app')
      expect(shown).toContain('d  /opt/app/conf')
      expect(shown).toContain('d  /usr/share/doc')
      const tar = await collect(exportChanges(upper, list))
      const names: string[] = []
      for await (const m of disassemble(Readable.from([tar]), { sink: { add() {} } })) names.push(m.header.name.toString('latin1'))
      expect(names).toContain('opt/app/.wh..wh..opq')
      expect(names).not.toContain('opt/app/.wh.conf')

      // Naive: onto a copy of the lower dir.
      const target = copy(lower, 'naive')
      await applyBuffer(tar, target, { whiteouts: 'naive' })
      expect(same(view, snapshotTree(target)), formatTree(view)).toEqual([])

      // Overlay format: into a fresh upper dir, mounted again over the same lower.
      const upper2 = path.join(tmp, 'upper2')
      const work2 = path.join(tmp, 'work2')
      fs.mkdirSync(upper2)
      fs.mkdirSync(work2)
      await applyBuffer(tar, upper2, { whiteouts: 'overlay' })
      await mount('overlay', merged, 'overlay', 0, `lowerdir=${lower},upperdir=${upper2},workdir=${work2},index=off,redirect_dir=off,metacopy=off`)
      try {
        expect(same(view, snapshotTree(merged))).toEqual([])
      } finally {
        await umount(merged, MNT_DETACH)
      }
    })
  })
})
