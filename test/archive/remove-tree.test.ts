import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { removeTreeAsync } from '../../src/archive/remove-tree.js'

describe('removeTreeAsync', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'remove-tree-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('removes a deep, wide tree with byte names, never following a symlink', async () => {
    const outside = join(dir, 'outside')
    await mkdir(outside)
    await writeFile(join(outside, 'keep'), 'k')
    const tree = join(dir, 'tree')
    let path = tree
    for (let depth = 0; depth < 12; depth++) {
      path = join(path, `d${depth}`)
      await mkdir(path, { recursive: true })
      for (let i = 0; i < 40; i++) await writeFile(join(path, `f${i}`), '')
      // The longest name a file can have, beside short ones that are prefixes of each other.
      await writeFile(join(path, 'n'.repeat(255)), '')
    }
    // A Latin-1 name (not UTF-8) and symlinks to a directory outside, at the top and deep down.
    const latin1 = Buffer.concat([Buffer.from(tree), Buffer.from('/caf'), Buffer.from([0xe9])])
    await mkdir(latin1)
    await writeFile(Buffer.concat([latin1, Buffer.from('/x')]), '')
    await symlink(outside, join(tree, 'link'))
    await symlink(outside, join(path, 'link'))

    expect(await removeTreeAsync(tree)).toBe(true)
    await expect(stat(tree)).rejects.toMatchObject({ code: 'ENOENT' })
    expect(await readdir(outside)).toEqual(['keep'])
  })

  it('is fine with a missing path, and unlinks a file or a symlink given as the path', async () => {
    expect(await removeTreeAsync(join(dir, 'nothing'))).toBe(false)
    await writeFile(join(dir, 'file'), 'x')
    expect(await removeTreeAsync(join(dir, 'file'))).toBe(true)
    await mkdir(join(dir, 'target'))
    await writeFile(join(dir, 'target', 'keep'), 'k')
    await symlink(join(dir, 'target'), join(dir, 'link'))
    expect(await removeTreeAsync(join(dir, 'link'))).toBe(true)
    expect((await readdir(dir)).sort()).toEqual(['target'])
    expect(await readdir(join(dir, 'target'))).toEqual(['keep'])
  })

  it('removes an empty directory', async () => {
    await mkdir(join(dir, 'empty'))
    expect(await removeTreeAsync(join(dir, 'empty'))).toBe(true)
    expect(await readdir(dir)).toEqual([])
  })
})
