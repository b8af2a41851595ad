/**
 * The walks of `changes` and `overlayChanges` take a path's type from its directory entry
 * (d_type) where they can, instead of an lstat: a symlink to a directory must never be
 * descended, a character device in an upper dir is a whiteout only when it is 0/0.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { changes, overlayChanges } from '../../src/archive/index.js'
import type { Change } from '../../src/archive/index.js'
import { mknod } from '../../src/native/index.js'
import { isRoot, useTempDirs } from './craft-tar.js'

const show = (list: readonly Change[]): string[] => list.map((c) => `${c.kind[0]!.toUpperCase()}${c.opaque ? '*' : ''} ${c.path}`)

if (!isRoot) console.warn('changes-types: skipped, needs root (mknod)')

describe.skipIf(!isRoot)('changes: entry types', () => {
  const tempDir = useTempDirs()

  it('lists everything under a new directory, and never walks a symlink to a directory', async () => {
    const old = tempDir('old')
    const dir = tempDir('new')
    fs.mkdirSync(path.join(old, 'keep'))
    fs.mkdirSync(path.join(dir, 'keep'))
    fs.mkdirSync(path.join(dir, 'fresh/deep'), { recursive: true })
    fs.writeFileSync(path.join(dir, 'fresh/deep/file'), 'x')
    fs.symlinkSync(dir, path.join(dir, 'fresh/loop')) // would recurse forever if followed
    fs.symlinkSync('/etc', path.join(dir, 'keep/etc'))
    mknod(path.join(dir, 'fresh/null'), fs.constants.S_IFCHR | 0o666, 1, 3)
    expect(show(await changes(dir, old))).toEqual([
      'A /fresh',
      'A /fresh/deep',
      'A /fresh/deep/file',
      'A /fresh/loop',
      'A /fresh/null',
      'M /keep',
      'A /keep/etc',
    ])
    expect(show(await changes(dir, null))).toEqual([
      'A /fresh',
      'A /fresh/deep',
      'A /fresh/deep/file',
      'A /fresh/loop',
      'A /fresh/null',
      'A /keep',
      'A /keep/etc',
    ])
  })

  it('overlay: a 0/0 device is a whiteout, any other device is a file, symlinked dirs are not walked', async () => {
    const lower = tempDir('lower')
    const upper = tempDir('upper')
    fs.mkdirSync(path.join(lower, 'dev'))
    fs.writeFileSync(path.join(lower, 'gone'), 'x')
    fs.mkdirSync(path.join(upper, 'dev'))
    mknod(path.join(upper, 'gone'), fs.constants.S_IFCHR, 0, 0)
    mknod(path.join(upper, 'dev/null'), fs.constants.S_IFCHR | 0o666, 1, 3)
    fs.mkdirSync(path.join(upper, 'new'))
    fs.writeFileSync(path.join(upper, 'new/file'), 'y')
    fs.symlinkSync(upper, path.join(upper, 'new/loop'))
    expect(show(await overlayChanges(upper, [lower]))).toEqual([
      'M /dev',
      'A /dev/null',
      'D /gone',
      'A /new',
      'A /new/file',
      'A /new/loop',
    ])
  })
})
