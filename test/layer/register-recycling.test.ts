/**
 * LayerStore.register over a recycling source that poisons each buffer the moment it may be
 * reused: the diffID is the file's sha256, and the layer's tar stream gives the input back
 * byte for byte (tar-split metadata built from lent chunks, file contents read back from
 * the driver and checked against their CRCs). A gzip input is read as a plain source and must come out right as well.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { readFileChunks } from '../../src/io/index.js'
import { makeMixedTars, type MixedTars } from '../io/mixed-tars.js'
import { ONE_DRIVER, readAll, sha256, storeFixture } from './helpers.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('register-recycling tests skipped: they need root')

describe.skipIf(!isRoot)(`register over a poisoning, recycling source (on ${ONE_DRIVER})`, () => {
  const fx = storeFixture(ONE_DRIVER)
  let tars: MixedTars

  beforeEach(() => {
    tars = makeMixedTars()
  })

  afterEach(() => {
    tars.remove()
  })

  for (const format of ['gnu', 'pax'] as const) {
    it(`${format} tar: diffID and tar stream exact; the input recycled`, async () => {
      const tar = fs.readFileSync(tars[format])
      const src = readFileChunks(tars[format], { chunkSize: 4099, buffers: 2, poison: true })
      const layer = await fx.store.register(src)
      expect(layer.diffID).toBe(sha256(tar))
      expect((await readAll(await layer.tarStream())).equals(tar)).toBe(true)
      expect(src.buffersAllocated, 'the register recycles the input').toBeLessThanOrEqual(3)
    })
  }

  it('gzip input: not recycled, still exact', async () => {
    const gz = path.join(path.dirname(tars.pax), 'pax.tar.gz')
    execFileSync('sh', ['-c', `gzip -c < '${tars.pax}' > '${gz}'`])
    const src = readFileChunks(gz, { chunkSize: 4099, buffers: 2, poison: true })
    const layer = await fx.store.register(src)
    const tar = fs.readFileSync(tars.pax)
    expect(layer.diffID).toBe(sha256(tar))
    expect((await readAll(await layer.tarStream())).equals(tar)).toBe(true)
  })
})
