/**
 * `changes(dir, parent)`: what the naive diff reports, path by path (trees made with node:fs,
 * copies with `cp -a --preserve=all`, which keeps owners, modes, xattrs and nanosecond times).
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { InvalidTargetError, changePathBytes, changes } from '../../src/archive/index.js'
import type { Change } from '../../src/archive/index.js'
import { lsetxattr, mknod } from '../../src/native/index.js'
import { isRoot, useTempDirs } from './craft-tar.js'

const show = (list: readonly Change[]): string[] => list.map((c) => `${c.kind[0]!.toUpperCase()} ${c.path}`)

if (!isRoot) console.warn('changes: skipped, needs root (chown, mknod)')

describe.skipIf(!isRoot)('changes', () => {
  const tempDir = useTempDirs()

  /** base: etc/{passwd, group}, usr/bin/{a, b}, lib -> usr/lib, usr/lib/, var/empty/, dev/null */
  function base(): string {
    const dir = tempDir('base')
    for (const d of ['etc', 'usr/bin', 'usr/lib', 'var/empty', 'dev']) fs.mkdirSync(path.join(dir, d), { recursive: true })
    fs.writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0\n')
    fs.writeFileSync(path.join(dir, 'etc/group'), 'root:x:0:\n')
    fs.writeFileSync(path.join(dir, 'usr/bin/a'), 'aaaa')
    fs.writeFileSync(path.join(dir, 'usr/bin/b'), 'bbbb')
    fs.symlinkSync('usr/lib', path.join(dir, 'lib'))
    mknod(path.join(dir, 'dev/null'), fs.constants.S_IFCHR | 0o666, 1, 3)
    // Sub-second mtimes everywhere, as a running container leaves them.
    for (const p of ['etc/passwd', 'etc/group', 'usr/bin/a', 'usr/bin/b']) fs.utimesSync(path.join(dir, p), 1.5e9 + 0.25, 1.5e9 + 0.25)
    return dir
  }

  function copy(from: string, name: string): string {
    const to = path.join(path.dirname(from), name)
    execFileSync('cp', ['-a', '--preserve=all', from, to])
    return to
  }

  it('lists everything as added against no parent, sorted, without the root', async () => {
    const dir = base()
    expect(show(await changes(dir, null))).toEqual([
      'A /dev',
      'A /dev/null',
      'A /etc',
      'A /etc/group',
      'A /etc/passwd',
      'A /lib',
      'A /usr',
      'A /usr/bin',
      'A /usr/bin/a',
      'A /usr/bin/b',
      'A /usr/lib',
      'A /var',
      'A /var/empty',
    ])
  })

  it('finds nothing between a tree and its copy, nor its hard-linked copy', async () => {
    const dir = base()
    expect(await changes(copy(dir, 'copy'), dir)).toEqual([])
    const linked = path.join(path.dirname(dir), 'linked')
    execFileSync('cp', ['-al', dir, linked])
    expect(await changes(linked, dir)).toEqual([])
  })

  it('reports each kind of change, with the parents of changed paths', async () => {
    const parent = base()
    const dir = copy(parent, 'child')
    const p = (rel: string): string => path.join(dir, rel)
    fs.writeFileSync(p('etc/passwd'), 'root:x:0:0\nuser:x:1:1\n') // content and size
    fs.chmodSync(p('usr/bin/a'), 0o4755) // mode
    fs.lchownSync(p('usr/bin/b'), 1, 1) // owner
    fs.rmSync(p('var/empty'), { recursive: true }) // a deleted dir: only itself listed
    fs.rmSync(p('lib'))
    fs.symlinkSync('usr/lib64', p('lib')) // symlink target
    fs.rmSync(p('dev/null'))
    mknod(p('dev/null'), fs.constants.S_IFCHR | 0o666, 1, 5) // rdev
    fs.mkdirSync(p('new/deep'), { recursive: true }) // added with its children
    fs.writeFileSync(p('new/deep/f'), 'f')
    lsetxattr(p('etc/group'), 'user.x', Buffer.from('1')) // xattr
    fs.utimesSync(p('usr/lib'), 1, 1) // a directory's mtime alone is no change
    expect(show(await changes(dir, parent))).toEqual([
      'M /dev',
      'M /dev/null',
      'M /etc',
      'M /etc/group',
      'M /etc/passwd',
      'M /lib',
      'A /new',
      'A /new/deep',
      'A /new/deep/f',
      'M /usr',
      'M /usr/bin',
      'M /usr/bin/a',
      'M /usr/bin/b',
      'M /var',
      'D /var/empty',
    ])
  })

  it('reports a type change as modified: the new directory’s children added, the old ones not deleted', async () => {
    const parent = base()
    const dir = copy(parent, 'child')
    fs.rmSync(path.join(dir, 'etc'), { recursive: true })
    fs.writeFileSync(path.join(dir, 'etc'), 'now a file')
    fs.rmSync(path.join(dir, 'lib'))
    fs.mkdirSync(path.join(dir, 'lib'))
    fs.writeFileSync(path.join(dir, 'lib/x'), 'x')
    expect(show(await changes(dir, parent))).toEqual(['M /etc', 'M /lib', 'A /lib/x'])
  })

  it('compares contents when the mtime has no sub-second part (content: unsure)', async () => {
    const parent = tempDir('p')
    fs.writeFileSync(path.join(parent, 'whole'), 'aaaa')
    fs.writeFileSync(path.join(parent, 'fine'), 'aaaa')
    fs.utimesSync(path.join(parent, 'whole'), 1e9, 1e9)
    fs.utimesSync(path.join(parent, 'fine'), 1e9 + 0.5, 1e9 + 0.5)
    const dir = copy(parent, 'c')
    for (const name of ['whole', 'fine']) {
      fs.writeFileSync(path.join(dir, name), 'bbbb') // same size; then the mtime put back
      fs.utimesSync(path.join(dir, name), fs.statSync(path.join(parent, name)).atime, fs.statSync(path.join(parent, name)).mtime)
    }
    expect(show(await changes(dir, parent))).toEqual(['M /whole'])
    expect(show(await changes(dir, parent, { content: 'always' }))).toEqual(['M /fine', 'M /whole'])
    expect(show(await changes(dir, parent, { content: 'never' }))).toEqual([])
  })

  it('keeps non-UTF-8 names as byte strings', async () => {
    const parent = tempDir('p')
    const dir = copy(parent, 'c')
    const name = Buffer.from([0x63, 0x61, 0x66, 0xe9]) // "café" in Latin-1
    fs.writeFileSync(Buffer.concat([Buffer.from(`${dir}/`), name]), 'x')
    const list = await changes(dir, parent)
    expect(list).toHaveLength(1)
    expect(changePathBytes(list[0]!.path)).toEqual(Buffer.concat([Buffer.from('/'), name]))
  })

  it('fails with InvalidTargetError for a missing directory', async () => {
    const dir = tempDir()
    await expect(changes(path.join(dir, 'nope'), null)).rejects.toBeInstanceOf(InvalidTargetError)
  })
})
