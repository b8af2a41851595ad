/**
 * The scratch-dir sweep a driver runs at start: what a crashed process left goes, what a live
 * process is building stays, and an entry that a live process renames away between the
 * driver's readdir and its look at the entry is no error (a CI run once failed a store open
 * on exactly that: ENOENT on another process's `~creating-` dir).
 */
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { holdsLayerDirs, SCRATCH_MARK, scratchName, sweepScratch } from '../../src/graphdriver/index.js'

let home: string
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'layerstore-scratch-'))
})
afterEach(async () => {
  await rm(home, { recursive: true, force: true })
})

async function scratchDir(id: string, purpose: 'creating' | 'removing', ageMs: number): Promise<string> {
  const name = scratchName(id, purpose)
  await mkdir(join(home, name, 'diff'), { recursive: true })
  await writeFile(join(home, name, 'diff', 'file'), 'x')
  const when = new Date(Date.now() - ageMs)
  await utimes(join(home, name), when, when)
  return name
}

describe('sweepScratch', () => {
  it('names are unique per call and carry the mark', () => {
    const a = scratchName('abc', 'creating')
    expect(a.startsWith(`abc${SCRATCH_MARK}creating-`)).toBe(true)
    expect(scratchName('abc', 'creating')).not.toBe(a)
  })

  it('removes a removal at once and an old create, keeps a fresh create', async () => {
    const removing = await scratchDir('a', 'removing', 0)
    const stale = await scratchDir('b', 'creating', 11 * 60 * 1000)
    const live = await scratchDir('c', 'creating', 0)
    const now = Date.now()
    for (const name of [removing, stale, live]) await sweepScratch(home, name, now)
    expect(await readdir(home)).toEqual([live])
  })

  it('an entry renamed away since the readdir (a live create finished) is left alone, no error', async () => {
    const name = await scratchDir('d', 'creating', 0)
    const names = await readdir(home)
    // What the other process does between our readdir and our stat.
    await rm(join(home, name), { recursive: true })
    for (const n of names) await expect(sweepScratch(home, n, Date.now())).resolves.toBeUndefined()
  })
})

describe('holdsLayerDirs', () => {
  it('counts a dir holding the marker, never a scratch dir or a reserved name', async () => {
    expect(await holdsLayerDirs(join(home, 'missing'), 'link')).toBe(false)
    await scratchDir('e', 'creating', 0)
    await mkdir(join(home, 'l'))
    await writeFile(join(home, 'l', 'link'), '')
    expect(await holdsLayerDirs(home, 'link', ['l'])).toBe(false)
    await mkdir(join(home, 'layer'))
    await writeFile(join(home, 'layer', 'link'), '')
    expect(await holdsLayerDirs(home, 'link', ['l'])).toBe(true)
  })
})
