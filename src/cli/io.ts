import { createWriteStream } from 'node:fs'
import { rename, rm } from 'node:fs/promises'
import type { Writable } from 'node:stream'
import { readFileChunks } from '../io/index.js'
import { UsageError, type CommandContext } from './command.js'

/**
 * The input named by a positional (`-` or nothing = stdin), as a chunk source. A file is read
 * through a small pool of reused buffers (`io.readFileChunks`), which the parser recycles;
 * stdin stays a stream.
 */
export function openInput(ctx: CommandContext, name: string | undefined): AsyncIterable<Buffer> {
  if (name === undefined || name === '-') {
    if (ctx.stdin.isTTY) throw new UsageError('no input: name a file or pipe a tar into stdin')
    return ctx.stdin as AsyncIterable<Buffer>
  }
  return readFileChunks(name)
}

/** Refuses to write binary data to a terminal, where it would only garble the screen. */
export function assertNotTerminal(out: { isTTY?: boolean }, what: string, hint: string): void {
  if (out.isTTY) throw new UsageError(`refusing to write ${what} to a terminal; ${hint}`)
}

/**
 * A file written under a temporary name and renamed into place by `commit()`, so that a failed
 * or interrupted command never leaves a partial output file under the real name.
 */
export class AtomicFile {
  readonly stream: Writable
  readonly #path: string
  readonly #tmp: string

  constructor(path: string, mode = 0o644) {
    this.#path = path
    this.#tmp = `${path}.tmp-${process.pid}`
    this.stream = createWriteStream(this.#tmp, { mode })
  }

  async commit(): Promise<void> {
    await closed(this.stream)
    await rename(this.#tmp, this.#path)
  }

  async abort(): Promise<void> {
    this.stream.destroy()
    await rm(this.#tmp, { force: true })
  }
}

/** Ends a writable (if not ended) and resolves once it has flushed and closed. */
export function closed(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.closed) return resolve()
    stream.once('error', reject)
    stream.once('close', () => resolve())
    if (!stream.writableEnded) stream.end()
  })
}

/** Writes a chunk and waits for the stream to drain when its buffer is full (backpressure). */
export async function writeChunk(out: Writable, chunk: Buffer): Promise<void> {
  if (!out.write(chunk)) {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        out.off('drain', onDrain)
        reject(err)
      }
      const onDrain = (): void => {
        out.off('error', onError)
        resolve()
      }
      out.once('drain', onDrain)
      out.once('error', onError)
    })
  }
}
