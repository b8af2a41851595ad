import { createReadStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import type { Readable, Writable } from 'node:stream'
import { JsonPacker, assemble, directoryGetter, disassemble, readEntries, recyclerOf } from '../../tarsplit/index.js'
import { EXIT } from '../exit-status.js'
import { UsageError, type Command, type CommandContext } from '../command.js'
import { AtomicFile, assertNotTerminal, openInput, writeChunk } from '../io.js'

const disasm: Command = {
  name: 'disasm',
  summary: 'split a tar into its metadata (tar-split JSON) while passing it through unchanged',
  usage: 'tar-split disasm [--output FILE] [--no-stdout] [TAR|-]',
  examples: [
    'layerctl tar-split disasm --output layer.json.gz --no-stdout layer.tar',
    'curl -s https://…/layer.tar | layerctl tar-split disasm -o meta.json.gz | tar -x -C rootfs',
  ],
  options: {
    output: { type: 'string', short: 'o', arg: 'FILE', help: 'metadata file (default tar-data.json.gz)' },
    'no-stdout': { type: 'boolean', help: 'do not echo the tar on stdout' },
    compat: { type: 'string', arg: '0.11|0.12', help: "write what that Go tar-split version writes (default 0.12)" },
  },
  async run(ctx) {
    const [input, ...extra] = ctx.positionals
    if (extra.length > 0) throw new UsageError(`one input at most, got ${ctx.positionals.length}`)
    const echo = ctx.values['no-stdout'] !== true
    if (echo && ctx.json) throw new UsageError('--json prints on stdout: pass --no-stdout with it')
    if (echo) assertNotTerminal(ctx.stdout, 'a tar', 'redirect stdout or pass --no-stdout')
    const compat = ctx.values.compat ?? '0.12'
    if (compat !== '0.11' && compat !== '0.12') throw new UsageError(`--compat takes 0.11 or 0.12, not '${String(compat)}'`)
    const source = openInput(ctx, input)
    // 0600 like Go's tar-split: the metadata names every file of the layer.
    const out = new AtomicFile(String(ctx.values.output ?? 'tar-data.json.gz'), 0o600)
    const packer = new JsonPacker(out.stream, { gzip: true })
    let members = 0
    let bytes = 0
    try {
      const passed = tap(source, async (chunk) => {
        bytes += chunk.length
        if (echo) await writeChunk(ctx.stdout, chunk)
      })
      // 0.11 (Debian's CLI, Docker 20.10) ends with an empty segment; 0.12 does not.
      // Without the echo the tap only counts, so a recycling file source may be recycled;
      // with it, stdout may still hold a chunk after the parser moved on.
      const recycler = echo ? undefined : recyclerOf(source)
      const options = { sink: packer, emptyFinalSegment: compat === '0.11', ...(recycler ? { recycler } : {}) }
      for await (const member of disassemble(passed, options)) {
        void member
        members++
      }
      await packer.finish()
      await out.commit()
    } catch (err) {
      await out.abort()
      throw err
    }
    report(ctx, { members, bytes, output: String(ctx.values.output ?? 'tar-data.json.gz') })
    return EXIT.ok
  },
}

const asm: Command = {
  name: 'asm',
  summary: 'reassemble the original tar from its metadata and a directory of its files',
  usage: 'tar-split asm [--input FILE] --path DIR [--output FILE|-] [--compress]',
  examples: ['layerctl tar-split asm --input layer.json.gz --path rootfs --output layer.tar'],
  options: {
    input: { type: 'string', short: 'i', arg: 'FILE', help: 'tar-split metadata, gzipped or not (default tar-data.json.gz)' },
    path: { type: 'string', short: 'p', arg: 'DIR', help: 'directory holding the extracted files' },
    output: { type: 'string', short: 'o', arg: 'FILE', help: "the tar (default '-': stdout)" },
    compress: { type: 'boolean', help: 'gzip the output' },
  },
  async run(ctx) {
    const input = typeof ctx.values.input === 'string' ? ctx.values.input : 'tar-data.json.gz'
    const root = ctx.values.path
    if (typeof root !== 'string') throw new UsageError('--path DIR is required')
    if (ctx.positionals.length > 0) throw new UsageError(`unexpected argument '${ctx.positionals[0]}'`)
    const target = typeof ctx.values.output === 'string' ? ctx.values.output : '-'
    const tar = assemble(readEntries(createReadStream(input)), directoryGetter(root))
    const stages: (Readable | Writable)[] = [tar]
    if (ctx.values.compress === true) stages.push(createGzip())
    if (target === '-') {
      assertNotTerminal(ctx.stdout, 'a tar', 'redirect stdout or pass --output FILE')
      await pipeline([...stages, ctx.stdout], { end: false })
      return EXIT.ok
    }
    const out = new AtomicFile(target)
    try {
      await pipeline([...stages, out.stream], { end: false })
      await out.commit()
    } catch (err) {
      tar.destroy()
      await out.abort()
      throw err
    }
    return EXIT.ok
  },
}

/** `layerctl tar-split`: a drop-in for Go's `tar-split` CLI. */
export const tarSplitCommand: Command = {
  name: 'tar-split',
  summary: "disassemble and reassemble tars byte for byte (compatible with Go's tar-split)",
  usage: 'tar-split disasm|asm [options]',
  examples: [
    'layerctl tar-split disasm --no-stdout -o meta.json.gz layer.tar',
    'layerctl tar-split asm --input meta.json.gz --path rootfs > layer.tar',
  ],
  options: {},
  subcommands: [disasm, asm],
}

/** Yields `source`'s chunks unchanged after `onChunk` has seen each (and awaited it). */
async function* tap(
  source: AsyncIterable<Buffer>,
  onChunk: (chunk: Buffer) => Promise<void>,
): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    await onChunk(chunk)
    yield chunk
  }
}

function report(ctx: CommandContext, summary: { members: number; bytes: number; output: string }): void {
  if (ctx.json) ctx.stdout.write(JSON.stringify(summary) + '\n')
  else if (!ctx.quiet)
    ctx.stderr.write(`disassembled ${summary.members} members (${summary.bytes} bytes); metadata in ${summary.output}\n`)
}
