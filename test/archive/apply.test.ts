/**
 * Apply semantics: member types and attributes, replacement rules, directory times, implied
 * directories, sparse files, xattrs, and whiteouts in both formats. Tars are crafted with
 * tar-stream's `pack()` (craft-tar.ts) unless a test says it uses GNU tar (for xattrs and
 * sparse files, which tar-stream cannot write).
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { InvalidTargetError, applyTar } from '../../src/archive/index.js'
import { devMajor, devMinor, lgetxattr, lsetxattr } from '../../src/native/index.js'
import { diffTrees, snapshotTree } from '../helpers/tree.js'
import { DEFAULT_MTIME, applyBuffer, craftTar, gnuTar, isRoot, useTempDirs } from './craft-tar.js'

const NS = 1_000_000_000n
const ns = (d: Date): bigint => BigInt(d.getTime()) * 1_000_000n

if (!isRoot) console.warn('apply: skipped, needs root (chown to other ids, mknod, trusted.* xattrs)')

describe.skipIf(!isRoot)('applyTar', () => {
  const tempDir = useTempDirs()

  it('creates every member type with its owner, mode and nanosecond times', async () => {
    const target = tempDir('t')
    const t1 = new Date('2011-02-03T04:05:06Z')
    const tar = await craftTar([
      { name: 'bin/', type: 'directory', mode: 0o755 },
      // setuid survives: the mode is set after chown, which clears it.
      { name: 'bin/su', content: 'elf', mode: 0o4755, uid: 1000, gid: 1001, pax: { mtime: '1300000000.123456789' } },
      { name: 'tmp/', type: 'directory', mode: 0o1777, uid: 1, gid: 2 },
      { name: 'link', type: 'symlink', linkname: 'bin/su', uid: 3, gid: 4, mtime: t1 },
      { name: 'hard', type: 'link', linkname: 'bin/su' },
      { name: 'dev/', type: 'directory' },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/loop0', type: 'block-device', devmajor: 7, devminor: 0, mode: 0o660, gid: 6 },
      { name: 'dev/fifo', type: 'fifo', mode: 0o620 },
    ])
    const result = await applyBuffer(tar, target, { whiteouts: 'naive' })
    expect(result).toEqual({ size: 3, members: 9, skippedXattrs: 0 })

    const su = fs.lstatSync(path.join(target, 'bin/su'), { bigint: true })
    expect([Number(su.mode & 0o7777n), su.uid, su.gid]).toEqual([0o4755, 1000n, 1001n])
    expect(su.mtimeNs).toBe(1300000000n * NS + 123456789n)
    expect(su.nlink).toBe(2n)
    expect(fs.statSync(path.join(target, 'hard')).ino).toBe(Number(su.ino))
    const tmp = fs.lstatSync(path.join(target, 'tmp'))
    expect([tmp.mode & 0o7777, tmp.uid, tmp.gid]).toEqual([0o1777, 1, 2])
    const link = fs.lstatSync(path.join(target, 'link'), { bigint: true })
    expect([link.isSymbolicLink(), link.uid, link.gid, link.mtimeNs]).toEqual([true, 3n, 4n, ns(t1)])
    expect(fs.readlinkSync(path.join(target, 'link'))).toBe('bin/su')
    const nul = fs.lstatSync(path.join(target, 'dev/null'))
    expect([nul.isCharacterDevice(), devMajor(nul.rdev), devMinor(nul.rdev), nul.mode & 0o7777]).toEqual([true, 1, 3, 0o666])
    const loop = fs.lstatSync(path.join(target, 'dev/loop0'))
    expect([loop.isBlockDevice(), devMajor(loop.rdev), devMinor(loop.rdev), loop.mode & 0o7777, loop.gid]).toEqual([
      true,
      7,
      0,
      0o660,
      6,
    ])
    const fifo = fs.lstatSync(path.join(target, 'dev/fifo'))
    expect([fifo.isFIFO(), fifo.mode & 0o7777]).toEqual([true, 0o620])
  })

  it('sets directory times after their contents, and symlink times without following', async () => {
    const target = tempDir('t')
    const old = new Date('2005-05-05T05:05:05Z')
    const tar = await craftTar([
      { name: 'd/', type: 'directory', mtime: old },
      { name: 'd/f', content: 'x' },
      { name: 'd/sub/', type: 'directory', mtime: old },
      { name: 'd/sub/g', content: 'y' },
      { name: 'd/l', type: 'symlink', linkname: 'f', mtime: old },
    ])
    await applyBuffer(tar, target, { whiteouts: 'naive' })
    expect(fs.statSync(path.join(target, 'd'), { bigint: true }).mtimeNs).toBe(ns(old))
    expect(fs.statSync(path.join(target, 'd/sub'), { bigint: true }).mtimeNs).toBe(ns(old))
    expect(fs.lstatSync(path.join(target, 'd/l'), { bigint: true }).mtimeNs).toBe(ns(old))
    expect(fs.statSync(path.join(target, 'd/f'), { bigint: true }).mtimeNs).toBe(ns(DEFAULT_MTIME))
  })

  it('makes implied directories 0755 and explicit modes exact, whatever the umask', async () => {
    const target = tempDir('t')
    const tar = await craftTar([
      { name: 'a/b/c', content: 'x', mode: 0o600 },
      { name: 'p/', type: 'directory', mode: 0o700 },
      { name: 'q/', type: 'directory', mode: 0o777 },
      { name: 'q/r', content: 'x', mode: 0o777 },
    ])
    const old = process.umask(0o077)
    try {
      await applyBuffer(tar, target, { whiteouts: 'naive' })
    } finally {
      process.umask(old)
    }
    const mode = (p: string): number => fs.statSync(path.join(target, p)).mode & 0o7777
    expect([mode('a'), mode('a/b'), mode('a/b/c'), mode('p'), mode('q'), mode('q/r')]).toEqual([
      0o755, 0o755, 0o600, 0o700, 0o777, 0o777,
    ])
  })

  it('gives new nodes the header owner and mode under setgid, other-group and default-ACL directories', async () => {
    const target = tempDir('t')
    // A lower layer's directories: setgid + group 50, and one with a default ACL that masks
    // "other" (user::rwx group::r-x other::---), which overrides the umask for new files.
    fs.mkdirSync(path.join(target, 'lower-sgid'))
    fs.chownSync(path.join(target, 'lower-sgid'), 0, 50)
    fs.chmodSync(path.join(target, 'lower-sgid'), 0o2775)
    fs.mkdirSync(path.join(target, 'acl'))
    const acl = Buffer.alloc(4 + 3 * 8)
    acl.writeUInt32LE(2, 0) // POSIX_ACL_XATTR_VERSION
    ;[
      [0x01, 7], // ACL_USER_OBJ rwx
      [0x04, 5], // ACL_GROUP_OBJ r-x
      [0x20, 0], // ACL_OTHER ---
    ].forEach(([tag, perm], i) => {
      acl.writeUInt16LE(tag!, 4 + i * 8)
      acl.writeUInt16LE(perm!, 6 + i * 8)
      acl.writeUInt32LE(0xffffffff, 8 + i * 8)
    })
    lsetxattr(path.join(target, 'acl'), 'system.posix_acl_default', acl)
    const tar = await craftTar([
      { name: 'sgid/', type: 'directory', mode: 0o2775, gid: 50 },
      { name: 'sgid/f', content: 'x', mode: 0o644 },
      { name: 'sgid/sub/', type: 'directory', mode: 0o755 },
      { name: 'sgid/l', type: 'symlink', linkname: 'f' },
      { name: 'lower-sgid/f', content: 'x', mode: 0o644 },
      { name: 'lower-sgid/d/', type: 'directory', mode: 0o755 },
      { name: 'acl/f', content: 'x', mode: 0o644 },
      { name: 'acl/d/', type: 'directory', mode: 0o755 },
    ])
    await applyBuffer(tar, target, { whiteouts: 'naive' })
    const owner = (p: string): string => {
      const st = fs.lstatSync(path.join(target, p))
      return `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`
    }
    expect(['sgid/f', 'sgid/sub', 'lower-sgid/f', 'lower-sgid/d', 'acl/f', 'acl/d'].map(owner)).toEqual([
      '644 0:0',
      '755 0:0',
      '644 0:0',
      '755 0:0',
      '644 0:0',
      '755 0:0',
    ])
    expect(fs.lstatSync(path.join(target, 'sgid/l')).gid).toBe(0)
  })

  it('applies a root entry to the target itself', async () => {
    const target = tempDir('t')
    const tar = await craftTar([{ name: './', type: 'directory', mode: 0o711, uid: 7, gid: 8 }])
    await applyBuffer(tar, target, { whiteouts: 'naive' })
    const st = fs.statSync(target, { bigint: true })
    expect([Number(st.mode & 0o7777n), st.uid, st.gid, st.mtimeNs]).toEqual([0o711, 7n, 8n, ns(DEFAULT_MTIME)])
  })

  it('replaces what is at a path: file over dir, dir over file, symlink over file; merges dir over dir', async () => {
    const target = tempDir('t')
    fs.mkdirSync(path.join(target, 'was-dir/deep'), { recursive: true })
    fs.writeFileSync(path.join(target, 'was-dir/deep/x'), 'old')
    fs.writeFileSync(path.join(target, 'was-file'), 'old')
    fs.writeFileSync(path.join(target, 'to-link'), 'old')
    fs.mkdirSync(path.join(target, 'merged'))
    fs.writeFileSync(path.join(target, 'merged/lower'), 'lower')
    const tar = await craftTar([
      { name: 'was-dir', content: 'now a file' },
      { name: 'was-file/', type: 'directory', mode: 0o750 },
      { name: 'was-file/inside', content: 'x' },
      { name: 'to-link', type: 'symlink', linkname: 'was-dir' },
      { name: 'merged/', type: 'directory', mode: 0o700, uid: 9 },
      { name: 'merged/upper', content: 'upper' },
      { name: 'dup', content: 'first' },
      { name: 'dup', content: 'second' },
    ])
    await applyBuffer(tar, target, { whiteouts: 'naive' })
    expect(fs.readFileSync(path.join(target, 'was-dir'), 'utf8')).toBe('now a file')
    expect(fs.statSync(path.join(target, 'was-file')).mode & 0o7777).toBe(0o750)
    expect(fs.readlinkSync(path.join(target, 'to-link'))).toBe('was-dir')
    expect(fs.readdirSync(path.join(target, 'merged')).sort()).toEqual(['lower', 'upper'])
    const merged = fs.statSync(path.join(target, 'merged'))
    expect([merged.mode & 0o7777, merged.uid]).toEqual([0o700, 9])
    expect(fs.readFileSync(path.join(target, 'dup'), 'utf8')).toBe('second')
  })

  it('never changes a file hard-linked with a lower layer (cp -al copy)', async () => {
    const base = tempDir('base')
    fs.writeFileSync(path.join(base, 'f'), 'base')
    fs.writeFileSync(path.join(base, 'kept'), 'base')
    fs.mkdirSync(path.join(base, 'd'))
    fs.writeFileSync(path.join(base, 'd/g'), 'base')
    const before = snapshotTree(base)
    const target = path.join(path.dirname(base), 'layer')
    execFileSync('cp', ['-al', base, target])
    const tar = await craftTar([
      { name: 'f', content: 'layer', mode: 0o777, uid: 5 },
      { name: 'd/', type: 'directory', mode: 0o700 },
      { name: 'd/g', content: 'layer' },
      // A hardlink member gets no attributes of its own: `kept` (shared with base) stays as is.
      { name: 'alias', type: 'link', linkname: 'kept', mode: 0o777, uid: 5, mtime: new Date(0) },
    ])
    await applyBuffer(tar, target, { whiteouts: 'naive' })
    expect(diffTrees(before, snapshotTree(base))).toEqual([])
    expect(fs.readFileSync(path.join(target, 'f'), 'utf8')).toBe('layer')
    expect(fs.readFileSync(path.join(target, 'd/g'), 'utf8')).toBe('layer')
    expect(fs.statSync(path.join(target, 'alias')).ino).toBe(fs.statSync(path.join(base, 'kept')).ino)
  })

  it('restores xattrs (security.capability included) after chown, from a GNU tar --xattrs archive', async () => {
    const src = tempDir('src')
    const file = path.join(src, 'ping')
    fs.writeFileSync(file, 'elf')
    fs.chownSync(file, 1000, 1000)
    fs.chmodSync(file, 0o4755)
    // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW (13): 20 bytes, little-endian.
    const cap = Buffer.alloc(20)
    cap.writeUInt32LE(0x02000001, 0)
    cap.writeUInt32LE(1 << 13, 4)
    lsetxattr(file, 'security.capability', cap)
    lsetxattr(file, 'user.binary', Buffer.from([0, 0xff, 0x80, 0x0a]))
    lsetxattr(src, 'trusted.note', Buffer.from('dir'))
    const tarPath = path.join(path.dirname(src), 'x.tar')
    // GNU tar, PAX format, every xattr namespace: SCHILY.xattr.* records.
    const res = gnuTar(['--xattrs', '--xattrs-include=*', '--numeric-owner', '--format=posix', '-C', src, '-cf', tarPath, '.'])
    expect(res.status, res.stderr).toBe(0)
    const target = tempDir('t')
    await applyTar(fs.createReadStream(tarPath), target, { whiteouts: 'naive' })
    const out = path.join(target, 'ping')
    expect(lgetxattr(out, 'security.capability')).toEqual(cap)
    expect(lgetxattr(out, 'user.binary')).toEqual(Buffer.from([0, 0xff, 0x80, 0x0a]))
    expect(lgetxattr(target, 'trusted.note')).toEqual(Buffer.from('dir'))
    const st = fs.statSync(out)
    expect([st.uid, st.mode & 0o7777]).toEqual([1000, 0o4755])
  })

  it('writes sparse members with holes (GNU tar --sparse, PAX 1.0)', async () => {
    const src = tempDir('src')
    const file = path.join(src, 'sparse')
    const fd = fs.openSync(file, 'w')
    fs.writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 1 << 20)
    fs.writeSync(fd, Buffer.alloc(4096, 2), 0, 4096, 8 << 20)
    fs.ftruncateSync(fd, 16 << 20)
    fs.closeSync(fd)
    const tarPath = path.join(path.dirname(src), 's.tar')
    const res = gnuTar(['--sparse', '--format=posix', '-C', src, '-cf', tarPath, 'sparse'])
    expect(res.status, res.stderr).toBe(0)
    expect(fs.statSync(tarPath).size).toBeLessThan(1 << 20)
    const target = tempDir('t')
    const result = await applyTar(fs.createReadStream(tarPath), target, { whiteouts: 'naive' })
    expect(result.size).toBe(16 << 20)
    const out = path.join(target, 'sparse')
    expect(fs.readFileSync(out).equals(fs.readFileSync(file))).toBe(true)
    expect(fs.statSync(out).blocks * 512).toBeLessThan(1 << 20)
  })

  it('fails with typed errors: missing target, truncated input', async () => {
    const tmp = tempDir()
    await expect(applyTar(Readable.from([]), path.join(tmp, 'missing'), { whiteouts: 'naive' })).rejects.toBeInstanceOf(
      InvalidTargetError,
    )
    const tar = await craftTar([{ name: 'f', content: 'x'.repeat(2000) }])
    await expect(applyBuffer(tar.subarray(0, 1200), tmp, { whiteouts: 'naive' })).rejects.toMatchObject({
      code: 'ERR_TAR_TRUNCATED',
      kind: 'bad-input',
    })
  })

  it('keeps tar order while files are created and written in the background', async () => {
    const target = tempDir('t')
    const many = Array.from({ length: 300 }, (_, i) => ({ name: `many/f${i}`, content: `content ${i}`.repeat(i) }))
    const tar = await craftTar([
      ...many,
      { name: 'big', content: Buffer.alloc(3 << 20, 7) },
      { name: 'h', type: 'link', linkname: 'big' },
      { name: 'x', content: 'a file first' },
      { name: 'x/', type: 'directory', mode: 0o700 },
      { name: 'y', content: 'a file first' },
      { name: 'y', type: 'symlink', linkname: 'many' },
      { name: 'gone/f', content: Buffer.alloc(1 << 20, 1) },
      { name: '.wh.gone', content: '' },
      { name: 'z', content: 'first' },
      { name: 'z', content: 'second' },
    ])
    await applyBuffer(tar, target, { whiteouts: 'naive' })
    for (const [i, e] of many.entries()) {
      expect(fs.readFileSync(path.join(target, e.name), 'utf8'), e.name).toBe(`content ${i}`.repeat(i))
    }
    expect(fs.statSync(path.join(target, 'h')).ino).toBe(fs.statSync(path.join(target, 'big')).ino)
    expect(fs.readFileSync(path.join(target, 'h')).equals(Buffer.alloc(3 << 20, 7))).toBe(true)
    expect(fs.statSync(path.join(target, 'x')).isDirectory()).toBe(true)
    expect(fs.readlinkSync(path.join(target, 'y'))).toBe('many')
    expect(fs.existsSync(path.join(target, 'gone'))).toBe(false)
    expect(fs.readFileSync(path.join(target, 'z'), 'utf8')).toBe('second')

    const bad = await craftTar([
      { name: 'a', content: 'a file' },
      { name: 'a/b', content: 'below a file' },
    ])
    await expect(applyBuffer(bad, tempDir('u'), { whiteouts: 'naive' })).rejects.toMatchObject({
      code: 'ERR_INVALID_MEMBER',
      reason: 'parent-not-directory',
    })
  })

  it('reports a deferred write failure (ENOSPC on a 1 MiB tmpfs) as ApplyEntryError of its member', async () => {
    const target = tempDir('t')
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', target])
    try {
      const tar = await craftTar([
        { name: 'small', content: 'x' },
        { name: 'big', content: Buffer.alloc(3 << 20, 1) },
        { name: 'after', content: 'y' },
      ])
      const err = await applyBuffer(tar, target, { whiteouts: 'naive' }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'ERR_APPLY_ENTRY', kind: 'no-space', operation: 'write' })
      expect((err as { member: Buffer }).member.toString()).toBe('big')
    } finally {
      execFileSync('umount', [target])
    }
  })

  describe('naive (AUFS) whiteouts', () => {
    /** A lower tree: a/{x, sub/y}, b, c/z, keep, h1 = h2 (hardlinked). */
    function lower(): string {
      const target = tempDir('t')
      fs.mkdirSync(path.join(target, 'a/sub'), { recursive: true })
      fs.writeFileSync(path.join(target, 'a/x'), 'x')
      fs.writeFileSync(path.join(target, 'a/sub/y'), 'y')
      fs.writeFileSync(path.join(target, 'b'), 'b')
      fs.mkdirSync(path.join(target, 'c'))
      fs.writeFileSync(path.join(target, 'c/z'), 'z')
      fs.writeFileSync(path.join(target, 'keep'), 'keep')
      fs.writeFileSync(path.join(target, 'h1'), 'linked')
      fs.linkSync(path.join(target, 'h1'), path.join(target, 'h2'))
      return target
    }

    const names = (dir: string): string[] => fs.readdirSync(dir).sort()

    it('deletes, empties opaque dirs of lower entries only, skips AUFS metadata', async () => {
      const target = lower()
      const tar = await craftTar([
        { name: 'a/', type: 'directory' },
        { name: 'a/new1', content: '1' },
        { name: 'a/.wh..wh..opq', content: '' },
        { name: 'a/new2', content: '2' },
        { name: '.wh.b', content: '' },
        { name: 'c/.wh.z', content: '' },
        { name: '.wh.missing', content: '' },
        { name: 'nodir/.wh.x', content: '' },
        { name: '.wh..wh.plnk/', type: 'directory' },
        { name: '.wh..wh.plnk/123.456', content: 'aufs' },
        { name: '.wh..wh.aufs', content: '' },
        { name: '.wh.h1', content: '' },
      ])
      await applyBuffer(tar, target, { whiteouts: 'naive' })
      expect(names(target)).toEqual(['a', 'c', 'h2', 'keep'])
      expect(names(path.join(target, 'a'))).toEqual(['new1', 'new2'])
      expect(names(path.join(target, 'c'))).toEqual([])
      expect(fs.readFileSync(path.join(target, 'h2'), 'utf8')).toBe('linked')
      expect(fs.statSync(path.join(target, 'h2')).nlink).toBe(1)
    })

    it('keeps directories this layer wrote inside an opaque dir, emptied of lower entries', async () => {
      const target = lower()
      const tar = await craftTar([
        { name: 'a/sub/', type: 'directory' },
        { name: 'a/sub/n', content: 'n' },
        { name: 'a/.wh..wh..opq', content: '' },
        { name: 'x/deep/f', content: 'implied parents count as written' },
        { name: '.wh.keep', content: '' },
      ])
      await applyBuffer(tar, target, { whiteouts: 'naive' })
      expect(names(path.join(target, 'a'))).toEqual(['sub'])
      expect(names(path.join(target, 'a/sub'))).toEqual(['n'])
    })

    it('opaque dirs keep what this layer created below them, however it was made', async () => {
      const target = lower()
      fs.writeFileSync(path.join(target, 'p'), 'a lower file this layer turns into a directory')
      const tar = await craftTar([
        // Made implicitly inside a lower directory, then filled.
        { name: 'a/sub/made/deep/f', content: 'f' },
        // A hardlink in a lower directory to a lower file.
        { name: 'a/hl', type: 'link', linkname: 'keep' },
        // A directory this layer made, with an opaque marker of its own: nothing to hide.
        { name: 'n/', type: 'directory' },
        { name: 'n/f', content: 'n' },
        { name: 'n/.wh..wh..opq', content: '' },
        // A directory over a lower file: replaced, so made by this layer.
        { name: 'p/', type: 'directory' },
        { name: 'p/q', content: 'q' },
        { name: 'a/.wh..wh..opq', content: '' },
        // Made, removed by a whiteout, and made again: only the new one's entries count.
        { name: 'c/', type: 'directory' },
        { name: 'r/', type: 'directory' },
        { name: 'r/old', content: 'old' },
        { name: '.wh.r', content: '' },
        { name: 'r/new', content: 'new' },
        { name: '.wh..wh..opq', content: '' },
      ])
      await applyBuffer(tar, target, { whiteouts: 'naive' })
      expect(names(target)).toEqual(['a', 'c', 'n', 'p', 'r'])
      expect(names(path.join(target, 'a'))).toEqual(['hl', 'sub'])
      expect(names(path.join(target, 'a/sub'))).toEqual(['made'])
      expect(fs.readFileSync(path.join(target, 'a/sub/made/deep/f'), 'utf8')).toBe('f')
      expect(fs.readFileSync(path.join(target, 'a/hl'), 'utf8')).toBe('keep')
      expect(names(path.join(target, 'n'))).toEqual(['f'])
      expect(names(path.join(target, 'p'))).toEqual(['q'])
      expect(names(path.join(target, 'c'))).toEqual([])
      expect(names(path.join(target, 'r'))).toEqual(['new'])
    })

    it('a root opaque marker leaves only this layer', async () => {
      const target = lower()
      const tar = await craftTar([
        { name: 'first', content: '1' },
        { name: 'c/', type: 'directory' },
        { name: '.wh..wh..opq', content: '' },
        { name: 'last', content: '2' },
      ])
      await applyBuffer(tar, target, { whiteouts: 'naive' })
      expect(names(target)).toEqual(['c', 'first', 'last'])
      expect(names(path.join(target, 'c'))).toEqual([])
    })

    it('a whiteout deletes what this same layer wrote earlier, and a later member comes back', async () => {
      const target = tempDir('t')
      const tar = await craftTar([
        { name: 'd/', type: 'directory' },
        { name: 'd/f', content: '1' },
        { name: '.wh.d', content: '' },
        { name: 'd/g', content: '2' },
      ])
      await applyBuffer(tar, target, { whiteouts: 'naive' })
      expect(names(path.join(target, 'd'))).toEqual(['g'])
      expect(fs.statSync(path.join(target, 'd')).mode & 0o7777).toBe(0o755)
    })
  })

  describe('overlay whiteouts', () => {
    it('writes char 0/0 devices and the opaque xattr, and drops overlay xattrs from the tar', async () => {
      const target = tempDir('t')
      const tar = await craftTar([
        { name: 'a/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/elsewhere' } },
        { name: 'a/.wh..wh..opq', content: '' },
        { name: 'a/f', content: 'f' },
        { name: '.wh.gone', content: '', uid: 5, gid: 6 },
        { name: 'replaced', content: 'here first' },
        { name: '.wh.replaced', content: '' },
        { name: 'deep/er/.wh.x', content: '' },
        { name: '.wh..wh..opq', content: '' },
      ])
      const result = await applyBuffer(tar, target, { whiteouts: 'overlay' })
      expect(result.skippedXattrs).toBe(1)
      expect(lgetxattr(path.join(target, 'a'), 'trusted.overlay.opaque')).toEqual(Buffer.from('y'))
      expect(lgetxattr(path.join(target, 'a'), 'trusted.overlay.redirect')).toBeNull()
      expect(lgetxattr(target, 'trusted.overlay.opaque')).toEqual(Buffer.from('y'))
      expect(fs.readdirSync(path.join(target, 'a'))).toEqual(['f'])
      for (const [p, uid] of [
        ['gone', 5],
        ['replaced', 0],
        ['deep/er/x', 0],
      ] as const) {
        const st = fs.lstatSync(path.join(target, p))
        expect([p, st.isCharacterDevice(), st.rdev, st.uid]).toEqual([p, true, 0, uid])
      }
    })

    it('with lowers: a hardlink to a lower file links its inode; implied directories take the lower attributes', async () => {
      const lower = tempDir('lower')
      const bottom = tempDir('bottom')
      await applyBuffer(await craftTar([{ name: 'bin/', type: 'directory' }, { name: 'bin/sh', content: 'sh', mode: 0o755 }]), bottom, { whiteouts: 'overlay' })
      const lowerTar = await craftTar([
        { name: 'etc/', type: 'directory', mode: 0o750, uid: 3, gid: 4, mtime: new Date(1_000_000_000_000) },
        { name: 'etc/passwd', content: 'root' },
      ])
      await applyBuffer(lowerTar, lower, { whiteouts: 'overlay' })
      const target = tempDir('t')
      const tar = await craftTar([
        { name: 'etc/hard', type: 'link', linkname: 'etc/passwd' },
        { name: 'sh-link', type: 'link', linkname: 'bin/sh' },
      ])
      await applyBuffer(tar, target, { whiteouts: 'overlay', lowers: [lower, bottom] })
      expect(fs.statSync(path.join(target, 'etc/hard')).ino).toBe(fs.statSync(path.join(lower, 'etc/passwd')).ino)
      expect(fs.statSync(path.join(target, 'sh-link')).ino).toBe(fs.statSync(path.join(bottom, 'bin/sh')).ino)
      const etc = fs.statSync(path.join(target, 'etc'))
      expect([etc.mode & 0o7777, etc.uid, etc.gid, etc.mtimeMs]).toEqual([0o750, 3, 4, 1_000_000_000_000])
      expect(fs.readdirSync(target).sort()).toEqual(['etc', 'sh-link'])
    })

    it('with lowers: a hardlink to what the lowers hide, or through their symlink, fails', async () => {
      const lower = tempDir('lower')
      const outside = tempDir('outside')
      fs.writeFileSync(path.join(outside, 'secret'), 'secret')
      fs.mkdirSync(path.join(lower, 'd'))
      fs.writeFileSync(path.join(lower, 'd/f'), 'f')
      fs.symlinkSync(outside, path.join(lower, 'out'))
      const cases: [string, Parameters<typeof craftTar>[0]][] = [
        ['whited out by this apply', [{ name: 'd/.wh.f', content: '' }, { name: 'h', type: 'link', linkname: 'd/f' }]],
        ['under a directory this apply made opaque', [{ name: 'd/', type: 'directory' }, { name: 'd/.wh..wh..opq', content: '' }, { name: 'h', type: 'link', linkname: 'd/f' }]],
        ['through a lower symlink', [{ name: 'h', type: 'link', linkname: 'out/secret' }]],
        ['a lower directory', [{ name: 'h', type: 'link', linkname: 'd' }]],
      ]
      for (const [what, members] of cases) {
        const target = tempDir('t')
        await expect(applyBuffer(await craftTar(members), target, { whiteouts: 'overlay', lowers: [lower] }), what).rejects.toThrow()
        expect(fs.existsSync(path.join(target, 'h')), what).toBe(false)
      }
      expect(fs.readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('secret')
      expect(fs.statSync(path.join(outside, 'secret')).nlink).toBe(1)
    })

    it('marks a directory made over a whiteout opaque, so the deleted one stays hidden', async () => {
      const target = tempDir('t')
      await applyBuffer(await craftTar([{ name: '.wh.d', content: '' }, { name: 'd/', type: 'directory' }, { name: 'd/x', content: 'x' }]), target, { whiteouts: 'overlay' })
      expect(lgetxattr(path.join(target, 'd'), 'trusted.overlay.opaque')).toEqual(Buffer.from('y'))
      expect(fs.readdirSync(path.join(target, 'd'))).toEqual(['x'])
    })

    it('naive mode keeps overlay xattrs a tar carries (nothing mounts it)', async () => {
      const target = tempDir('t')
      const tar = await craftTar([{ name: 'a/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } }])
      await applyBuffer(tar, target, { whiteouts: 'naive' })
      expect(lgetxattr(path.join(target, 'a'), 'trusted.overlay.opaque')).toEqual(Buffer.from('y'))
    })
  })
})
