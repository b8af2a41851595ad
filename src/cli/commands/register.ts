import { stat } from 'node:fs/promises'
import type { ChainLayerInput, RegisteredLayer } from '../../layer/index.js'
import { readFileChunks } from '../../io/index.js'
import { UsageError, type Command } from '../command.js'
import { EXIT } from '../exit-status.js'
import { EXIT_INTERRUPTED, InterruptedError, withInterrupt } from '../interrupt.js'
import { openInput } from '../io.js'
import { Progress } from '../progress.js'
import { chainIDArg, emit, humanBytes, refOf, withStore } from '../store.js'

/**
 * `layerctl register`: stores a layer tar (plain, gzip or zstd) read once from a file or stdin;
 * several files as one chain, each on the previous, with one flush for all of them.
 */
export const registerCommand: Command = {
  name: 'register',
  summary: 'store layer tars (plain, gzip or zstd) from files or stdin; several files as one chain',
  usage: 'register [--parent CHAINID] [--ref NAME] [FILE…|-]',
  examples: [
    'layerctl register --ref alpine base.tar.gz',
    'layerctl register --parent sha256:4fc2… --ref alpine < layer2.tar',
    'layerctl register --ref myimage layer1.tar layer2.tar.gz layer3.tar   # each on the previous',
  ],
  options: {
    parent: { type: 'string', arg: 'CHAINID', help: 'the layer to register on (default: a base layer); with several files, the first one' },
    ref: { type: 'string', arg: 'NAME', help: "who holds the new references (default 'layerctl'); release with the same name" },
  },
  async run(ctx) {
    const files = ctx.positionals
    if (files.length > 1 && files.includes('-')) throw new UsageError("'-' (stdin) is allowed only alone, not among files")
    const parent = typeof ctx.values.parent === 'string' ? chainIDArg(ctx.values.parent, '--parent') : null
    const holder = refOf(ctx)
    const [first] = files
    // One input (a file, `-` or stdin): a plain register, as before chains existed.
    const source = files.length > 1 ? undefined : openInput(ctx, first)
    // Files (not stdin) are stat'ed before the store opens: a missing one fails before anything is made.
    const fromFiles = files.length > 0 && !files.includes('-')
    const sizes = fromFiles ? await Promise.all(files.map(async (f) => (await stat(f)).size)) : []
    let total = 0
    /** Input bytes of the files before each one: the bar counts the whole chain. */
    const before = sizes.map((size) => (total += size) - size)
    const progress = new Progress(ctx, 'register', fromFiles ? total : undefined)
    try {
      const layers = await withStore(ctx, (store) =>
        withInterrupt(async (signal): Promise<RegisteredLayer[]> => {
          if (source !== undefined) {
            return [await store.register(source, parent, { holder, signal, onProgress: (p) => progress.update(p.inputBytes) })]
          }
          return store.registerChain(openEach(files), parent, {
            holder,
            signal,
            onProgress: (p, index) => progress.update((before[index] ?? 0) + p.inputBytes),
          })
        }),
      )
      progress.done()
      const docs = layers.map((layer) => ({
        chainID: layer.chainID,
        diffID: layer.diffID,
        parent: layer.parent?.chainID ?? null,
        size: layer.size,
        diffSize: layer.diffSize,
        depth: layer.depth,
        ref: holder,
        existed: layer.existed,
      }))
      emit(ctx, source !== undefined ? docs[0] : docs, () =>
        layers.flatMap((layer) =>
          ctx.quiet
            ? [layer.chainID]
            : [
                `${layer.existed ? 'already existed' : 'registered'}: ${layer.chainID}`,
                `diff ID: ${layer.diffID}`,
                `size:    ${layer.diffSize} bytes (${humanBytes(layer.diffSize)}); chain ${layer.size} bytes`,
                `ref:     ${holder}`,
              ],
        ),
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
      ;(source as { destroy?: () => void } | undefined)?.destroy?.()
    }
  },
}

/**
 * The files as the chain asks for them: each opened only when the chain reads it (a file is
 * opened at its first read) and closed before the next is handed out, also when the chain
 * stops early, so that one file at most is open.
 */
async function* openEach(files: readonly string[]): AsyncGenerator<ChainLayerInput> {
  let current: AsyncIterableIterator<Buffer> | undefined
  try {
    for (const file of files) {
      await current?.return?.()
      current = readFileChunks(file)
      yield { tar: current }
    }
  } finally {
    await current?.return?.()
  }
}
