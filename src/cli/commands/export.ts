import { pipeline } from 'node:stream/promises'
import { UsageError, type Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import { AtomicFile, assertNotTerminal } from '../io.js'
import { Progress } from '../progress.js'
import { chainIDArg, onePositional, withStore } from '../store.js'

/** `layerctl export`: the layer's original tar, byte for byte, verified against its diff ID. */
export const exportCommand: Command = {
  name: 'export',
  summary: "write a layer's original tar, byte for byte (verified against its diff ID)",
  usage: 'export CHAINID [-o FILE]',
  examples: ['layerctl export sha256:4fc2… -o layer.tar', 'layerctl export sha256:4fc2… | sha256sum'],
  options: {
    output: { type: 'string', short: 'o', arg: 'FILE', help: "where to write the tar (default '-': stdout)" },
  },
  async run(ctx) {
    const chainID = chainIDArg(onePositional(ctx, 'CHAINID'))
    const target = typeof ctx.values.output === 'string' ? ctx.values.output : '-'
    if (target === '-') {
      if (ctx.json) throw new UsageError('--json prints on stdout: pass -o FILE with it')
      assertNotTerminal(ctx.stdout, 'a tar', 'redirect stdout or pass -o FILE')
    }
    const progress = new Progress(ctx, 'export')
    let bytes = 0
    try {
      await withStore(ctx, async (store) => {
        const layer = await store.get(chainID)
        const tar = await layer.tarStream({
          onProgress: (p) => {
            bytes = p.bytes
            progress.update(p.bytes)
          },
        })
        if (target === '-') {
          // end: false — stdout is the process's, not ours to close.
          await pipeline(tar, ctx.stdout, { end: false })
          return
        }
        const out = new AtomicFile(target)
        try {
          await pipeline(tar, out.stream, { end: false })
          await out.commit()
        } catch (err) {
          tar.destroy()
          // A tar that failed verification is never left under the real name.
          await out.abort()
          throw err
        }
      })
    } finally {
      progress.done()
    }
    if (ctx.json) ctx.stdout.write(JSON.stringify({ chainID, output: target, bytes }) + '\n')
    return EXIT.ok
  },
}
