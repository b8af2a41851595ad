/**
 * The one streaming pass of `register` (src/layer/register.ts): the input is read once, its
 * bytes after the archive end are digested and kept, progress is reported, and memory stays
 * flat however large the layer is. Runs on one driver: the pass does not depend on it.
 */
import { describe, expect, it } from 'vitest'
import { pack } from 'tar-stream'
import type { StreamProgress } from '../../src/layer/index.js'
import { ONE_DRIVER, makeTar, readAll, sha256, slices, storeFixture } from './helpers.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('register streaming tests skipped: they need root')

const MiB = 1 << 20

/** A tar of one `size`-byte file, produced 1 MiB at a time (never whole in memory). */
function bigTar(size: number): AsyncIterable<Buffer> {
  const p = pack()
  void (async () => {
    const entry = p.entry({ name: 'big.bin', size, mode: 0o644, mtime: new Date(0) })
    const chunk = Buffer.alloc(MiB, 0x6c)
    for (let left = size; left > 0; left -= MiB) {
      if (!entry.write(left >= MiB ? chunk : chunk.subarray(0, left))) await new Promise<void>((r) => entry.once('drain', () => r()))
    }
    entry.end(undefined)
    p.finalize()
  })()
  return p as unknown as AsyncIterable<Buffer>
}

describe.skipIf(!isRoot)(`register's streaming pass (on ${ONE_DRIVER})`, () => {
  const fx = storeFixture(ONE_DRIVER)

  it('keeps bytes after the archive end in the digest and in the tar stream', async () => {
    const tar = Buffer.concat([await makeTar([{ name: 'a.txt', content: 'a' }]), Buffer.alloc(3000), Buffer.from('trailing junk')])
    const layer = await fx.store.register(slices(tar, 333))
    expect(layer.diffID).toBe(sha256(tar))
    expect(await readAll(await layer.tarStream())).toEqual(tar)
  })

  it('reads the input once, reports progress, and stays flat in memory', async () => {
    const size = 160 * MiB
    const seen: StreamProgress[] = []
    let peak = 0
    const base = process.memoryUsage().rss
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss - base)), 20)
    let layer
    try {
      layer = await fx.store.register(bigTar(size), null, { onProgress: (p) => seen.push(p) })
    } finally {
      clearInterval(sampler)
    }
    expect(layer.diffSize).toBe(size)
    const last = seen.at(-1)!
    expect(last.bytes).toBe(size + 512 + 1024)
    expect(last.inputBytes).toBe(last.bytes)
    // The whole layer is 160 MiB; a pass that buffered it would grow by at least that.
    expect(peak).toBeLessThan(64 * MiB)
    console.log(`register of ${size / MiB} MiB: peak RSS growth ${(peak / MiB).toFixed(1)} MiB`)
    let streamed = 0
    const progress: number[] = []
    for await (const chunk of await layer.tarStream({ onProgress: (p) => progress.push(p.bytes) })) streamed += (chunk as Buffer).length
    expect(streamed).toBe(last.bytes)
    expect(progress.at(-1)).toBe(streamed)
  }, 120_000)
})
