/**
 * The shared tree copier: every kind of entry with its metadata, hard links, sparse holes,
 * and the fallbacks from reflink to copy_file_range to a plain copy.
 */
import { execFile } from 'node:child_process'
import { link, lstat, mkdir, mkdtemp, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { diffTrees, formatTree, snapshotTree } from '../../src/graphdriver/conformance.js'
import { copyDir } from '../../src/graphdriver/index.js'
import { lsetxattr, mknod, utimensat } from '../../src/native/index.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('copyDir: ownership, trusted.* xattr and device node cases skipped: they need root')

let tmp: string
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'layerstore-copy-dir-'))
})
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true })
})

describe('copyDir', () => {
  const sh = promisify(execFile)

  it('copies every kind of entry with owners, modes, ns times, xattrs and hard links, into new inodes', async () => {
    const src = join(tmp, 'src')
    const dst = join(tmp, 'dst')
    await mkdir(join(src, 'sub', 'deeper'), { recursive: true })
    await writeFile(join(src, 'sub', 'file'), 'content')
    await link(join(src, 'sub', 'file'), join(src, 'hard'))
    await symlink('sub/file', join(src, 'sym'))
    await symlink('/nonexistent/target', join(src, 'dangling'))
    await writeFile(Buffer.from(join(src, 'latin1-\xe9'), 'latin1'), 'non-UTF-8 name')
    await sh('chmod', ['4751', join(src, 'sub', 'file')])
    lsetxattr(join(src, 'sub', 'file'), 'user.k', Buffer.from('v'))
    if (isRoot) {
      await sh('chown', ['-h', '7:8', join(src, 'sym')])
      await sh('chown', ['9:10', join(src, 'sub')])
      lsetxattr(join(src, 'sym'), 'trusted.t', Buffer.from([0, 255]))
      mknod(join(src, 'null'), 0o20666, 1, 3)
      mknod(join(src, 'fifo'), 0o10600, 0, 0)
    }
    utimensat(join(src, 'sym'), { sec: 100, nsec: 5 }, { sec: 200, nsec: 7 }, { noFollow: true })
    utimensat(join(src, 'sub', 'deeper'), { sec: 300, nsec: 1 }, { sec: 400, nsec: 999_999_999 })
    utimensat(join(src, 'sub'), { sec: 300, nsec: 1 }, { sec: 500, nsec: 3 })
    await mkdir(dst)
    const stats = await copyDir(src, dst)
    const want = await snapshotTree(src)
    const got = await snapshotTree(dst)
    const diffs = diffTrees(want, got)
    if (diffs.length) console.error(formatTree(got))
    expect(diffs).toEqual([])
    expect(stats.hardlinks).toBe(1)
    expect((await stat(join(dst, 'hard'))).ino).toBe((await stat(join(dst, 'sub', 'file'))).ino)
    expect((await stat(join(dst, 'hard'))).ino).not.toBe((await stat(join(src, 'hard'))).ino)
    expect(await readFile(Buffer.from(join(dst, 'latin1-\xe9'), 'latin1'), 'utf8')).toBe('non-UTF-8 name')
  })

  it('keeps sparse holes and falls back from reflink on ext4', async () => {
    const src = join(tmp, 'src')
    const dst = join(tmp, 'dst')
    await mkdir(src)
    await mkdir(dst)
    const size = 16 * 1024 * 1024
    const fh = await open(join(src, 'sparse'), 'w')
    await fh.write(Buffer.from('head'), 0, 4, 0)
    await fh.write(Buffer.from('tail'), 0, 4, size - 4)
    await fh.close()
    await writeFile(join(src, 'dense'), Buffer.alloc(300_000, 7))
    const stats = await copyDir(src, dst)
    const s = await lstat(join(dst, 'sparse'))
    expect(s.size).toBe(size)
    expect(s.blocks * 512).toBeLessThan(256 * 1024)
    const data = await readFile(join(dst, 'sparse'))
    expect(data.subarray(0, 4).toString()).toBe('head')
    expect(data.subarray(size - 4).toString()).toBe('tail')
    expect(data.subarray(4, size - 4).equals(Buffer.alloc(size - 8))).toBe(true)
    expect((await readFile(join(dst, 'dense'))).equals(Buffer.alloc(300_000, 7))).toBe(true)
    expect(stats.files).toBe(2)
    expect(stats.reflinked + stats.rangeCopied + stats.plainCopied).toBe(2)
  })

  it('copies plainly when asked not to clone or use copy_file_range', async () => {
    const src = join(tmp, 'src')
    const dst = join(tmp, 'dst')
    await mkdir(src)
    await mkdir(dst)
    await writeFile(join(src, 'big'), Buffer.alloc(3 * 1024 * 1024 + 17, 1))
    const stats = await copyDir(src, dst, { reflink: false, copyFileRange: false })
    expect(stats.plainCopied).toBe(1)
    expect((await readFile(join(dst, 'big'))).equals(Buffer.alloc(3 * 1024 * 1024 + 17, 1))).toBe(true)
  })
})
