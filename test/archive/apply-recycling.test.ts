/**
 * applyTar over a recycling source that poisons each buffer the moment it may be reused:
 * the tree must be exactly GNU tar's, although file contents are written on the thread pool
 * after the parser moved on (the writer copies lent pieces first).
 */
import fs from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { applyTar } from '../../src/archive/index.js'
import { readFileChunks } from '../../src/io/index.js'
import { diffTrees, formatTree, snapshotTree } from '../helpers/tree.js'
import { makeMixedTars, type MixedTars } from '../io/mixed-tars.js'
import { gnuTar, isRoot, useTempDirs } from './craft-tar.js'

if (!isRoot) console.warn('apply-recycling: skipped, needs root (chown, user xattrs on any fs)')

describe.skipIf(!isRoot)('applyTar over a poisoning, recycling source', () => {
  let tars: MixedTars
  beforeAll(() => {
    tars = makeMixedTars()
  })
  afterAll(() => tars?.remove())
  const tempDir = useTempDirs()

  for (const format of ['gnu', 'pax'] as const) {
    for (const chunkSize of [4099, 65536]) {
      it(`${format} tar, ${chunkSize}-byte chunks: the tree GNU tar makes`, async () => {
        const gnu = tempDir('gnu')
        const res = gnuTar(['-x', '--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', gnu, '-f', tars[format]])
        expect(res.status, res.stderr).toBe(0)
        const ours = tempDir('ours')
        const src = readFileChunks(tars[format], { chunkSize, buffers: 2, poison: true })
        const result = await applyTar(src, ours, { whiteouts: 'naive' })
        expect(result.members).toBeGreaterThan(20)
        // Directory times: GNU tar restores them as it leaves each directory, we at the end.
        const b = snapshotTree(ours)
        const diff = diffTrees(snapshotTree(gnu), b, { ignore: (p, field) => field === 'mtime' && b.get(p)?.type === 'dir' })
        expect(diff, `GNU tar (a) vs ours (b):\n${formatTree(b)}`).toEqual([])
        expect(src.buffersAllocated, 'the apply recycles the input').toBeLessThanOrEqual(3)
        expect(fs.statSync(`${ours}/d/sparse`).blocks * 512, 'holes stay holes').toBeLessThan(1 << 20)
      })
    }
  }
})
