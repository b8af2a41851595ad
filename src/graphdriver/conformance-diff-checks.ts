/**
 * Conformance checks of content: the deep chain with whiteouts, applyDiff → diff → applyDiff
 * reproducing the same tree, changes, whiteouts and opaque directories, and metadata
 * (owners, modes, times, xattrs, devices, hard links) kept through apply, copy and export.
 */
import { createHash } from 'node:crypto'
import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { expect } from 'vitest'
import { lgetxattr } from '../native/index.js'
import { changeLines, makeLayer, names, withView } from './conformance-checks.js'
import type { CheckEnv, ConformanceCheck } from './conformance.js'
import type { MemberSpec } from './conformance-members.js'
import { memberNames, opaque, readTar, replay, whiteout } from './conformance-members.js'
import type { SnapshotOptions, TreeSnapshot } from './conformance-tree.js'
import { diffTrees, formatTree, snapshotTree } from './conformance-tree.js'
import type { Driver } from './driver.js'

/** A snapshot of a layer's view. The root is left out: its times differ by construction. */
async function viewTree(d: Driver, id: string, options: SnapshotOptions = {}): Promise<TreeSnapshot> {
  return withView(d, id, (p) => snapshotTree(p, { ignoreRoot: true, ...options }))
}

function expectSameTree(expected: TreeSnapshot, actual: TreeSnapshot): void {
  const diffs = diffTrees(expected, actual)
  if (diffs.length) console.error(`expected tree:\n${formatTree(expected)}\nactual tree:\n${formatTree(actual)}`)
  expect(diffs).toEqual([])
}

/** 64 bytes of deterministic content for file `i` with `seed` (moby's DiffApply fixture). */
function content(seed: number, i: number): Buffer {
  return createHash('sha512').update(`${seed}:${i}`).digest()
}

const deepChain: ConformanceCheck = {
  title: 'a deep chain where each layer adds a file and whites out its parent’s',
  async run({ driver: d, depth }: CheckEnv) {
    const id = (i: number): string => `layer-${i}`
    await makeLayer(d, id(0), null, [
      { name: 'base', content: 'base' },
      { name: 'layer-0', content: '0' },
    ])
    for (let i = 1; i < depth; i++) {
      await makeLayer(d, id(i), id(i - 1), [{ name: `layer-${i}`, content: String(i) }, whiteout(`layer-${i - 1}`)])
    }
    const top = depth - 1
    const mid = Math.floor(depth / 2)
    for (const i of [top, mid]) {
      await withView(d, id(i), async (p) => {
        expect(await names(p)).toEqual(['base', `layer-${i}`])
        expect(await readFile(join(p, 'base'), 'utf8')).toBe('base')
        expect(await readFile(join(p, `layer-${i}`), 'utf8')).toBe(String(i))
      })
    }
    if (top > 0) {
      expect(changeLines(await d.changes(id(top), id(top - 1)))).toEqual([`added /layer-${top}`, `deleted /layer-${top - 1}`])
      const tar = await readTar(await d.diff(id(top), id(top - 1)))
      expect(memberNames(tar).sort()).toEqual([`.wh.layer-${top - 1}`, `layer-${top}`])
    }
  },
}

const BASE_FILES = 5
const baseSpecs = (): MemberSpec[] => [
  { name: 'etc', type: 'directory' },
  { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
  { name: 'etc/hard', type: 'hardlink', linkname: 'etc/passwd' },
  { name: 'link', type: 'symlink', linkname: 'etc/passwd' },
  { name: 'file-remove.txt', content: 'bye' },
  { name: 'var', type: 'directory' },
  { name: 'var/lib', type: 'directory' },
  { name: 'var/lib/db', content: 'db' },
  ...[0, 1].flatMap((k): MemberSpec[] => [
    { name: `directory-${k}`, type: 'directory' },
    ...Array.from({ length: BASE_FILES }, (_, i) => ({ name: `directory-${k}/file-${i}`, content: content(3, k * 100 + i) })),
  ]),
]

const diffApplyRoundTrip: ConformanceCheck = {
  title: 'applyDiff, then diff, then applyDiff elsewhere reproduces the same tree',
  async run({ driver: d }: CheckEnv) {
    await makeLayer(d, 'base', null, baseSpecs())
    // A rewrite gets a new mtime, as a real one does: a naive diff cannot see a same-size
    // rewrite that keeps the mtime to the nanosecond (moby's cannot either).
    const later = { sec: 1_100_000_000, nsec: 42 }
    const upper: MemberSpec[] = [
      ...[0, 1].flatMap((k) =>
        Array.from({ length: BASE_FILES }, (_, i) => ({
          name: `directory-${k}/file-${i}`,
          content: content(6, k * 100 + i),
          mtime: later,
        })),
      ),
      whiteout('file-remove.txt'),
      whiteout('var/lib'),
      { name: 'new', type: 'directory', mode: 0o750 },
      { name: 'new/file', content: 'new content', mode: 0o600 },
      { name: 'new/hard', type: 'hardlink', linkname: 'new/file' },
      { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/bash\n' },
    ]
    const applied = await makeLayer(d, 'upper', 'base', upper)
    const expectedSize = upper.reduce((n, s) => n + (s.type === undefined || s.type === 'file' ? Buffer.byteLength(s.content ?? '') : 0), 0)
    expect(applied).toBe(expectedSize)
    await withView(d, 'upper', async (p) => {
      expect(await names(p)).toEqual(['directory-0', 'directory-1', 'etc', 'link', 'new', 'var'])
      expect(await names(join(p, 'var'))).toEqual([])
      expect(await readFile(join(p, 'directory-1', 'file-3'))).toEqual(content(6, 103))
      // etc/hard was a link to the old etc/passwd inode: replacing passwd must not change it.
      expect(await readFile(join(p, 'etc', 'hard'), 'utf8')).toBe('root:x:0:0::/root:/bin/sh\n')
    })

    const size = await d.diffSize('upper', 'base')
    const tar = await readTar(await d.diff('upper', 'base'))
    expect(memberNames(tar)).toEqual(expect.arrayContaining(['.wh.file-remove.txt', 'var/.wh.lib']))
    await d.create('copy', 'base')
    expect(await d.applyDiff('copy', 'base', replay(tar))).toBe(size)
    const want = await viewTree(d, 'upper')
    expectSameTree(want, await viewTree(d, 'copy'))
    expect(changeLines(await d.changes('copy', 'base'))).toEqual(changeLines(await d.changes('upper', 'base')))

    // With no parent the diff is the whole tree, and every change is an addition.
    const full = await readTar(await d.diff('upper', null))
    await d.create('flat', null)
    await d.applyDiff('flat', null, replay(full))
    expectSameTree(want, await viewTree(d, 'flat'))
    const all = await d.changes('upper', null)
    expect(all.every((c) => c.kind === 'added')).toBe(true)
    expect(all.length).toBe(want.size)
  },
}

const changes: ConformanceCheck = {
  title: 'changes lists what was added, modified and deleted',
  async run({ driver: d }: CheckEnv) {
    const n = 20
    await makeLayer(d, 'base', null, [
      { name: 'dir', type: 'directory' },
      ...Array.from({ length: n }, (_, i) => ({ name: `dir/file-${i}`, content: `base ${i}` })),
    ])
    await d.createReadWrite('upper', 'base')
    const expected = ['modified /dir']
    let size = 0
    await withView(d, 'upper', async (p) => {
      for (let i = 0; i < n; i++) {
        const f = join(p, 'dir', `file-${i}`)
        if (i % 3 === 0) {
          await writeFile(f, `BASE ${i}`) // same size, new content and mtime
          size += `BASE ${i}`.length
          expected.push(`modified /dir/file-${i}`)
        } else if (i % 3 === 1) {
          await writeFile(`${f}-new`, 'new')
          size += 3
          expected.push(`added /dir/file-${i}-new`)
        } else {
          await rm(f)
          expected.push(`deleted /dir/file-${i}`)
        }
      }
    })
    expect(changeLines(await d.changes('upper', 'base'))).toEqual(expected.sort())
    const sorted = (await d.changes('upper', 'base')).map((c) => Buffer.from(c.path))
    expect([...sorted].sort(Buffer.compare)).toEqual(sorted)
    expect(await d.diffSize('upper', 'base')).toBe(size)
  },
}

const whiteoutsAndOpaque: ConformanceCheck = {
  title: 'whiteouts delete and opaque directories hide the lower content',
  async run({ driver: d }: CheckEnv) {
    await makeLayer(d, 'base', null, [
      { name: 'd', type: 'directory' },
      { name: 'd/a', content: 'a' },
      { name: 'd/b', content: 'b' },
      { name: 'd/sub', type: 'directory' },
      { name: 'd/sub/x', content: 'x' },
      { name: 'e', type: 'directory' },
      { name: 'e/x', content: 'x' },
      { name: 'f', content: 'f' },
      { name: 'g', type: 'directory' },
      { name: 'g/y', content: 'y' },
    ])
    // The opaque marker after this layer's own entry must not hide that entry.
    await makeLayer(d, 'late', 'base', [{ name: 'd/c', content: 'c' }, opaque('d'), whiteout('e/x'), whiteout('f'), whiteout('g')])
    await makeLayer(d, 'early', 'base', [opaque('d'), { name: 'd/c', content: 'c' }, whiteout('e/x'), whiteout('f'), whiteout('g')])
    for (const id of ['late', 'early']) {
      await withView(d, id, async (p) => {
        expect(await names(p)).toEqual(['d', 'e'])
        expect(await names(join(p, 'd'))).toEqual(['c'])
        expect(await names(join(p, 'e'))).toEqual([])
      })
      expect(changeLines(await d.changes(id, 'base'))).toEqual(
        expect.arrayContaining(['added /d/c', 'deleted /e/x', 'deleted /f', 'deleted /g']),
      )
      const tar = await readTar(await d.diff(id, 'base'))
      expect(memberNames(tar)).toEqual(expect.arrayContaining(['.wh.f', '.wh.g', 'e/.wh.x']))
      await d.create(`${id}-copy`, 'base')
      await d.applyDiff(`${id}-copy`, 'base', replay(tar))
      expectSameTree(await viewTree(d, id), await viewTree(d, `${id}-copy`))
    }
    // A whiteout of a path that is not there is harmless.
    await makeLayer(d, 'ghost', 'base', [whiteout('nothing-here')])
    await withView(d, 'ghost', async (p) => expect(await names(p)).toEqual(['d', 'e', 'f', 'g']))
  },
}

// VFS_CAP_REVISION_2 with CAP_NET_BIND_SERVICE (bit 10) permitted and effective.
const CAPABILITY = Buffer.from([1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
const T1 = { sec: 1_234_567_890, nsec: 987_654_321 }
const T2 = { sec: 1_500_000_000, nsec: 1 }
const metadataSpecs: MemberSpec[] = [
  { name: 'files', type: 'directory', mode: 0o751, uid: 5, gid: 6, mtime: T2 },
  { name: 'files/suid', content: '#!/bin/true\n', mode: 0o4755, uid: 1000, gid: 1001, mtime: T1 },
  { name: 'files/sgid', content: 'g', mode: 0o2750, uid: 0, gid: 50 },
  { name: 'files/xattr', content: 'x', xattrs: { 'user.foo': 'bar', 'trusted.baz': Buffer.from([0, 1, 2, 255]) } },
  { name: 'files/cap', content: 'c', mode: 0o755, xattrs: { 'security.capability': CAPABILITY } },
  { name: 'files/hard', type: 'hardlink', linkname: 'files/suid' },
  { name: 'sticky', type: 'directory', mode: 0o1777, uid: 1, gid: 2, mtime: T1 },
  { name: 'links', type: 'directory' },
  { name: 'links/sym', type: 'symlink', linkname: '../files/suid', uid: 3, gid: 4, mtime: T2 },
  { name: 'dev', type: 'directory' },
  { name: 'dev/null', type: 'char-device', devmajor: 1, devminor: 3, mode: 0o666 },
  { name: 'dev/loop9', type: 'block-device', devmajor: 7, devminor: 9, mode: 0o660 },
  { name: 'dev/fifo', type: 'fifo', mode: 0o600 },
]

const metadataKept: ConformanceCheck = {
  title: 'owners, modes, times, xattrs, devices and hard links survive apply, copy and export',
  async run(env: CheckEnv) {
    const d = env.driver
    if (!env.root) env.skip('needs root (chown, mknod, trusted.* xattrs)')
    if (!d.capabilities.preservesMetadata) env.skip('the driver declares capabilities.preservesMetadata = false')
    await makeLayer(d, 'base', null, metadataSpecs)
    const base = await withView(d, 'base', async (p) => {
      const suid = await stat(join(p, 'files/suid'), { bigint: true })
      expect([Number(suid.mode) & 0o7777, Number(suid.uid), Number(suid.gid)]).toEqual([0o4755, 1000, 1001])
      expect(suid.mtimeNs).toBe(BigInt(T1.sec) * 1_000_000_000n + BigInt(T1.nsec))
      expect((await stat(join(p, 'files/hard'))).ino).toBe(Number(suid.ino))
      expect(Number((await stat(join(p, 'files/sgid'))).mode) & 0o7777).toBe(0o2750)
      expect((await stat(join(p, 'sticky'))).mode & 0o7777).toBe(0o1777)
      expect(lgetxattr(join(p, 'files/xattr'), 'user.foo')?.toString()).toBe('bar')
      expect(lgetxattr(join(p, 'files/xattr'), 'trusted.baz')).toEqual(Buffer.from([0, 1, 2, 255]))
      expect(lgetxattr(join(p, 'files/cap'), 'security.capability')).toEqual(CAPABILITY)
      return snapshotTree(p, { ignoreRoot: true })
    })
    const paths = [...base.keys()]
    expect(base.get('dev/null')).toMatchObject({ type: 'char', rdev: '1:3', mode: 0o666 })
    expect(base.get('dev/loop9')).toMatchObject({ type: 'block', rdev: '7:9' })
    expect(base.get('dev/fifo')).toMatchObject({ type: 'fifo', mode: 0o600 })
    expect(base.get('links/sym')).toMatchObject({ type: 'symlink', target: '../files/suid', uid: 3, gid: 4 })
    expect(base.get('links/sym')?.mtime).toBe(`${T2.sec}000000001`)
    expect(base.get('files')?.mtime).toBe(`${T2.sec}000000001`)
    expect(paths.length).toBe(metadataSpecs.length)

    // A child (read-only or read-write) starts as exactly its parent.
    await makeLayer(d, 'child', 'base', [])
    expectSameTree(base, await viewTree(d, 'child'))
    await d.createReadWrite('rw', 'base')
    expectSameTree(base, await viewTree(d, 'rw'))
    // The whole tree exported and applied elsewhere is the same tree.
    await d.create('flat', null)
    await d.applyDiff('flat', null, replay(await readTar(await d.diff('child', null))))
    expectSameTree(base, await viewTree(d, 'flat'))
  },
}

/** The content checks, in order. */
export const DIFF_CHECKS: readonly ConformanceCheck[] = [
  deepChain,
  diffApplyRoundTrip,
  changes,
  whiteoutsAndOpaque,
  metadataKept,
]
