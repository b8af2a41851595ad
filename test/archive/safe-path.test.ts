/**
 * Breakout protection: hostile tars must fail with UnsafePathError (or land inside the target
 * when that is the documented reading, e.g. absolute names), and a canary directory next to
 * the target must be exactly as before, with nothing new beside it.
 *
 * Every tar here is crafted with tar-stream's `pack()` (craft-tar.ts), which writes names and
 * link targets verbatim, so `../x`, `/x` and `.wh...` reach the parser as written.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { UnsafePathError, applyTar } from '../../src/archive/index.js'
import type { ApplyOptions, UnsafePathReason, WhiteoutFormat } from '../../src/archive/index.js'
import { cleanName } from '../../src/archive/safe-path.js'
import { diffTrees, snapshotTree } from '../helpers/tree.js'
import { applyBuffer, craftTar, isRoot, useTempDirs } from './craft-tar.js'
import type { CraftEntry } from './craft-tar.js'

const CORPUS = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/tar-corpus')

describe('cleanName', () => {
  const raw = Buffer.from('x')
  it.each([
    ['a/b', 'a/b'],
    ['./a/b/', 'a/b'],
    ['/etc/passwd', 'etc/passwd'],
    ['//a//b/./c', 'a/b/c'],
    ['a/../b', 'b'],
    ['.', ''],
    ['./', ''],
    ['/', ''],
    ['..gitme', '..gitme'],
    ['a/..b/c.', 'a/..b/c.'],
  ])('%j → %j', (name, clean) => {
    expect(cleanName(name, raw, 'parent-traversal')).toBe(clean)
  })
  it.each(['..', '../x', '/../x', 'a/../../x', 'a/b/../../../x', './..'])('%j climbs out', (name) => {
    expect(() => cleanName(name, raw, 'parent-traversal')).toThrow(UnsafePathError)
  })
})

if (!isRoot) console.warn('safe-path: breakout tests skipped, they need root (owners, devices)')

describe.skipIf(!isRoot)('apply: breakout protection', () => {
  const tempDir = useTempDirs()

  /** A scene: `<tmp>/target` (empty) and `<tmp>/canary` (a file, a dir with a file). */
  function scene(): { tmp: string; target: string; canary: string } {
    const tmp = tempDir()
    const target = path.join(tmp, 'target')
    const canary = path.join(tmp, 'canary')
    fs.mkdirSync(target)
    fs.mkdirSync(path.join(canary, 'dir'), { recursive: true })
    fs.writeFileSync(path.join(canary, 'file'), 'precious')
    fs.writeFileSync(path.join(canary, 'dir', 'x'), 'precious too')
    return { tmp, target, canary }
  }

  /**
   * Applies `entries` (made by `make(canary)`) and checks the outcome: an UnsafePathError with
   * `reason`, or success when `reason` is null; in every case the canary and the directory
   * holding both are unchanged (except for what lands inside the target).
   */
  async function hostile(
    make: (s: { canary: string; target: string }) => CraftEntry[],
    reason: UnsafePathReason | null,
    options: ApplyOptions = { whiteouts: 'naive' },
    prepare?: (target: string) => void,
  ): Promise<string> {
    const s = scene()
    prepare?.(s.target)
    const before = snapshotTree(s.tmp, { exclude: (p) => p === 'target' })
    const tar = await craftTar(make(s))
    const outcome = await applyBuffer(tar, s.target, options).then(
      () => null,
      (e: unknown) => e,
    )
    if (reason === null) expect(outcome).toBeNull()
    else {
      expect(outcome).toBeInstanceOf(UnsafePathError)
      expect((outcome as UnsafePathError).reason).toBe(reason)
      expect((outcome as UnsafePathError).kind).toBe('unsafe-path')
      expect((outcome as UnsafePathError).code).toBe('ERR_UNSAFE_PATH')
    }
    const after = snapshotTree(s.tmp, { exclude: (p) => p === 'target' })
    expect(diffTrees(before, after)).toEqual([])
    expect(fs.statSync(path.join(s.canary, 'file')).nlink).toBe(1)
    return s.target
  }

  for (const whiteouts of ['naive', 'overlay'] as WhiteoutFormat[]) {
    describe(`whiteouts: ${whiteouts}`, () => {
      const opts: ApplyOptions = { whiteouts }
      it('../../x', () => hostile(() => [{ name: '../../x', content: 'pwned' }], 'parent-traversal', opts))
      it('../canary/file', () => hostile(() => [{ name: '../canary/file', content: 'pwned' }], 'parent-traversal', opts))
      it('a/../../canary/new', () => hostile(() => [{ name: 'a/../../canary/new', content: 'x' }], 'parent-traversal', opts))
      it('/../canary/new (leading slash, then ..)', () =>
        hostile(() => [{ name: '/../canary/new', content: 'x' }], 'parent-traversal', opts))

      it('an absolute name lands inside the target', async () => {
        const target = await hostile(({ canary }) => [{ name: `${canary}/file`, content: 'inside' }], null, opts)
        expect(fs.readFileSync(path.join(target, target.replace(/target$/, 'canary'), 'file'), 'utf8')).toBe('inside')
      })

      it('a symlink to the canary, then a file through it', () =>
        hostile(
          ({ canary }) => [
            { name: 'l', type: 'symlink', linkname: canary },
            { name: 'l/pwned', content: 'x' },
          ],
          'symlink-in-path',
          opts,
        ))

      it('a relative symlink out, then a file through it', () =>
        hostile(
          () => [
            { name: 'l', type: 'symlink', linkname: '../canary' },
            { name: 'l/file', content: 'x' },
          ],
          'symlink-in-path',
          opts,
        ))

      it('a symlink to /, then a file under the canary through it', () =>
        hostile(
          ({ canary }) => [
            { name: 'root', type: 'symlink', linkname: '/' },
            { name: `root${canary}/pwned`, content: 'x' },
          ],
          'symlink-in-path',
          opts,
        ))

      it('a directory through a symlink', () =>
        hostile(
          ({ canary }) => [
            { name: 'l', type: 'symlink', linkname: canary },
            { name: 'l/newdir/', type: 'directory', mode: 0o777 },
          ],
          'symlink-in-path',
          opts,
        ))

      it('chained symlinks (moby TestUntarSymlinkBreakout)', () =>
        hostile(
          () => [
            { name: 'inner/', type: 'directory' },
            { name: 'inner/go_up', type: 'symlink', linkname: '..' },
            { name: 'inner/go_up/escape', type: 'symlink', linkname: '../canary' },
            { name: 'inner/go_up/escape/pwned', content: 'x' },
          ],
          'symlink-in-path',
          opts,
        ))

      it('a relative escape before an absolute link (moby TestUnpackRejectsRelativeEscapeBeforeAbsoluteSymlink)', () =>
        hostile(
          ({ canary }) => [
            { name: 'escape', type: 'symlink', linkname: '..' },
            { name: 'absolute', type: 'symlink', linkname: canary },
            { name: 'escape/absolute/file', content: 'x' },
          ],
          'symlink-in-path',
          opts,
        ))

      it('a directory replaced by a symlink, then written under', () =>
        hostile(
          ({ canary }) => [
            { name: 'd/', type: 'directory' },
            { name: 'd/x', content: 'inside' },
            { name: 'd', type: 'symlink', linkname: canary },
            { name: 'd/pwned', content: 'x' },
          ],
          'symlink-in-path',
          opts,
        ))

      it('a directory replaced by a symlink: its deferred times do not follow the link', async () => {
        const target = await hostile(
          ({ canary }) => [
            { name: 'd/', type: 'directory', mtime: new Date('2001-01-01T00:00:00Z') },
            { name: 'd', type: 'symlink', linkname: canary },
          ],
          null,
          opts,
        )
        expect(fs.lstatSync(path.join(target, 'd')).isSymbolicLink()).toBe(true)
      })

      it('a file over a symlink replaces the link, never writes through it', async () => {
        const target = await hostile(
          ({ canary }) => [
            { name: 'l', type: 'symlink', linkname: `${canary}/file` },
            { name: 'l', content: 'replaced', mode: 0o777 },
          ],
          null,
          opts,
        )
        expect(fs.lstatSync(path.join(target, 'l')).isFile()).toBe(true)
        expect(fs.readFileSync(path.join(target, 'l'), 'utf8')).toBe('replaced')
      })

      it('a hardlink to ../canary/file', () =>
        hostile(() => [{ name: 'h', type: 'link', linkname: '../canary/file' }], 'hardlink-target', opts))

      it('a hardlink to a sibling sharing the prefix (moby TestUntarSiblingPrefixContained)', () =>
        hostile(() => [{ name: 'h', type: 'link', linkname: '../target-evil/secret' }], 'hardlink-target', opts))

      it('a hardlink through a symlink', () =>
        hostile(
          ({ canary }) => [
            { name: 'l', type: 'symlink', linkname: canary },
            { name: 'h', type: 'link', linkname: 'l/file' },
          ],
          'symlink-in-path',
          opts,
        ))

      it('a hardlink to the root', () => hostile(() => [{ name: 'h', type: 'link', linkname: './' }], 'hardlink-target', opts))

      it('an absolute hardlink target is taken inside the target (kaniko, moby TestUntarAbsoluteHardlink)', async () => {
        const target = await hostile(
          () => [
            { name: 'etc/shadow', content: 'inside' },
            { name: 'h', type: 'link', linkname: '/etc/shadow' },
          ],
          null,
          opts,
        )
        expect(fs.statSync(path.join(target, 'h')).ino).toBe(fs.statSync(path.join(target, 'etc/shadow')).ino)
      })

      it('an absolute hardlink target that is missing inside fails as not found', async () => {
        const s = scene()
        const before = snapshotTree(s.tmp, { exclude: (p) => p === 'target' })
        const tar = await craftTar([{ name: 'h', type: 'link', linkname: `${s.canary}/file` }])
        await expect(applyBuffer(tar, s.target, opts)).rejects.toMatchObject({ code: 'ERR_APPLY_ENTRY', kind: 'not-found' })
        expect(diffTrees(before, snapshotTree(s.tmp, { exclude: (p) => p === 'target' }))).toEqual([])
        expect(fs.statSync(path.join(s.canary, 'file')).nlink).toBe(1)
      })

      it('a hardlink to a symlink links the symlink itself, and a later file replaces it', async () => {
        const target = await hostile(
          ({ canary }) => [
            { name: 'l', type: 'symlink', linkname: `${canary}/file` },
            { name: 'h', type: 'link', linkname: 'l' },
            { name: 'h', content: 'replaced' },
          ],
          null,
          opts,
        )
        expect(fs.readFileSync(path.join(target, 'h'), 'utf8')).toBe('replaced')
      })

      for (const name of ['.wh.', '.wh..', '.wh...', 'a/.wh...', 'a/b/.wh..']) {
        it(`a whiteout named ${name}`, () =>
          hostile(
            () => [
              { name: 'a/b/', type: 'directory' },
              { name, content: '' },
            ],
            'whiteout-name',
            opts,
          ))
      }

      it('a whiteout through a symlink', () =>
        hostile(
          ({ canary }) => [
            { name: 'l', type: 'symlink', linkname: canary },
            { name: 'l/.wh.file', content: '' },
          ],
          'symlink-in-path',
          opts,
        ))

      it('an opaque marker through a symlink', () =>
        hostile(
          ({ canary }) => [
            { name: 'l', type: 'symlink', linkname: canary },
            { name: 'l/.wh..wh..opq', content: '' },
          ],
          'symlink-in-path',
          opts,
        ))

      it('a root entry that is not a directory', () =>
        hostile(({ canary }) => [{ name: './', type: 'symlink', linkname: canary }], 'root-replaced', opts))

      it('a symlink a lower layer left is not followed (we refuse; moby re-roots it)', () =>
        hostile(
          () => [{ name: 'var/run/x', content: 'x' }],
          'symlink-in-path',
          opts,
          (target) => {
            fs.mkdirSync(path.join(target, 'var'))
            fs.symlinkSync('../../canary', path.join(target, 'var/run'))
          },
        ))
    })
  }

  it("the corpus's path-traversal names (libarchive test_patterns_4) are refused", async () => {
    const s = scene()
    const before = snapshotTree(s.tmp, { exclude: (p) => p === 'target' })
    const err = await applyTar(fs.createReadStream(path.join(CORPUS, 'libarchive-test_patterns_4.tar')), s.target, {
      whiteouts: 'naive',
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UnsafePathError)
    expect(diffTrees(before, snapshotTree(s.tmp, { exclude: (p) => p === 'target' }))).toEqual([])
  })

  it("the corpus's absolute names (libarchive test_leading_slash) land inside", async () => {
    const s = scene()
    await applyTar(fs.createReadStream(path.join(CORPUS, 'libarchive-test_leading_slash.tar')), s.target, {
      whiteouts: 'naive',
    })
    expect(fs.statSync(path.join(s.target, 'foo/hardlink')).ino).toBe(fs.statSync(path.join(s.target, 'foo/file')).ino)
  })
})
