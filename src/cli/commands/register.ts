import { stat } from 'node:fs/promises'
import { UsageError, type Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import { EXIT_INTERRUPTED, InterruptedError, withInterrupt } from '../interrupt.js'
import { openInput } from '../io.js'
import { Progress } from '../progress.js'
import { chainIDArg, emit, humanBytes, refOf, withStore } from '../store.js'

/** `layerctl register`: stores a layer tar (plain, gzip or zstd) read once from a file or stdin. */
export const registerCommand: Command = {
  name: 'register',
  summary: 'store a layer tar (plain, gzip or zstd) from a file or stdin',
  usage: 'register [--parent CHAINID] [--ref NAME] [FILE|-]',
  examples: [
    'layerctl register --ref alpine base.tar.gz',
    'layerctl register --parent sha256:4fc2… --ref alpine < layer2.tar',
  ],
  options: {
    parent: { type: 'string', arg: 'CHAINID', help: 'the layer to register on (default: a base layer)' },
    ref: { type: 'string', arg: 'NAME', help: "who holds the new reference (default 'layerctl'); release with the same name" },
  },
  async run(ctx) {
    const [input, ...extra] = ctx.positionals
    if (extra.length > 0) throw new UsageError(`one input at most, got ${ctx.positionals.length}`)
    const parent = typeof ctx.values.parent === 'string' ? chainIDArg(ctx.values.parent, '--parent') : null
    const holder = refOf(ctx)
    const source = openInput(ctx, input)
    const total = input !== undefined && input !== '-' ? (await stat(input)).size : undefined
    const progress = new Progress(ctx, 'register', total)
    try {
      const result = await withStore(ctx, (store) =>
        withInterrupt(async (signal) => {
          const layer = await store.register(source, parent, {
            holder,
            signal,
            onProgress: (p) => progress.update(p.inputBytes),
          })
          return { layer, existed: layer.existed }
        }),
      )
      progress.done()
      const { layer, existed } = result
      emit(
        ctx,
        { chainID: layer.chainID, diffID: layer.diffID, parent: layer.parent?.chainID ?? null, size: layer.size, diffSize: layer.diffSize, depth: layer.depth, ref: holder, existed },
        () =>
          ctx.quiet
            ? [layer.chainID]
            : [
                `${existed ? 'already existed' : 'registered'}: ${layer.chainID}`,
                `diff ID: ${layer.diffID}`,
                `size:    ${layer.diffSize} bytes (${humanBytes(layer.diffSize)}); chain ${layer.size} bytes`,
                `ref:     ${holder}`,
              ],
      )
      return EXIT.ok
    } catch (err) {
      progress.done()
      if (err instanceof InterruptedError) {
        ctx.stderr.write(`layerctl register: ${err.code}: ${err.message}\n`)
        if (ctx.json) ctx.stdout.write(JSON.stringify({ error: { code: err.code, message: err.message } }) + '\n')
        return EXIT_INTERRUPTED
      }
      throw err
    } finally {
      // An abandoned stdin would keep the process alive after an error.
      ;(source as { destroy?: () => void }).destroy?.()
    }
  },
}
