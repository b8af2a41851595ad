import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { isKindedError } from '../../errors.js'
import type { ChainID } from '../../layer/index.js'
import type { Command } from '../command.js'
import { EXIT, exitStatusFor } from '../exit-status.js'
import { Progress } from '../progress.js'
import { chainIDArg, emit, withStore } from '../store.js'

/** `layerctl verify`: reassembles layers and checks each against its diff ID. */
export const verifyCommand: Command = {
  name: 'verify',
  summary: 'reassemble layers (all by default) and check them against their diff IDs',
  usage: 'verify [CHAINID…]',
  examples: ['layerctl verify', 'layerctl verify sha256:4fc2… --json'],
  options: {},
  async run(ctx) {
    const wanted = ctx.positionals.map((p) => chainIDArg(p))
    const results = await withStore(ctx, async (store) => {
      const ids: ChainID[] = wanted.length > 0 ? wanted : [...(await store.map()).keys()].sort()
      const out: Array<{ chainID: ChainID; ok: boolean; bytes: number; code?: string; error?: string; status?: number }> = []
      for (const chainID of ids) {
        const progress = new Progress(ctx, `verify ${chainID.slice(7, 19)}`)
        let bytes = 0
        try {
          const layer = await store.get(chainID)
          // tarStream verifies as it streams: it fails on a changed file or a diff ID mismatch.
          const tar = await layer.tarStream({ onProgress: (p) => progress.update((bytes = p.bytes)) })
          await pipeline(tar, new Writable({ write: (_chunk, _enc, cb) => cb() }))
          out.push({ chainID, ok: true, bytes })
        } catch (err) {
          const code = isKindedError(err) ? err.code : 'ERR_UNEXPECTED'
          const status = isKindedError(err) ? exitStatusFor(err.kind) : EXIT.failure
          out.push({ chainID, ok: false, bytes, code, error: err instanceof Error ? err.message : String(err), status })
        } finally {
          progress.done()
        }
      }
      return out
    })
    emit(ctx, { layers: results.map(({ status: _s, ...r }) => r) }, () =>
      results.map((r) => (r.ok ? (ctx.quiet ? '' : `ok      ${r.chainID} (${r.bytes} bytes)`) : `FAILED  ${r.chainID}: ${r.code}: ${r.error}`)).filter((l) => l !== ''),
    )
    // The first failure's status: 4 for a corrupt layer, 2 for a missing one.
    return results.find((r) => !r.ok)?.status ?? EXIT.ok
  },
}
