/**
 * The run's scratch directory. Fresh subdirectories on demand and nothing deleted until the
 * end: on these journal-less ext4 roots, creating files within ~60 s of deleting many is
 * several times slower (PEERS.md), so a deletion must never come just before a timed run.
 * Cleanup unmounts everything below it, deepest first, then deletes it, also after SIGINT or
 * SIGTERM.
 */
import { mkdir, mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import { archive, graphdriver } from '../index.js'
import { BenchInterruptedError } from './errors.js'

/** A scratch directory; see the file comment. */
export class Scratch {
  /** The directory (absolute). */
  readonly dir: string
  readonly #controller = new AbortController()
  #cleaning: Promise<void> | undefined
  readonly #onInt = (): void => this.#interrupt('SIGINT', 130)
  readonly #onTerm = (): void => this.#interrupt('SIGTERM', 143)

  private constructor(dir: string) {
    this.dir = dir
    process.on('SIGINT', this.#onInt)
    process.on('SIGTERM', this.#onTerm)
  }

  /** Makes `<parent>/.layerstore-bench-XXXXXX` and starts listening for SIGINT and SIGTERM. */
  static async create(parent: string): Promise<Scratch> {
    await mkdir(parent, { recursive: true })
    return new Scratch(await mkdtemp(join(parent, '.layerstore-bench-')))
  }

  /**
   * Aborted by SIGINT or SIGTERM (its reason a `BenchInterruptedError`). Timed children are
   * spawned with it, so they are killed; the run checks it between steps and unwinds to its
   * `finally`, which calls `cleanup()`.
   */
  get signal(): AbortSignal {
    return this.#controller.signal
  }

  /** A new, empty subdirectory (`name` may contain `/`). */
  async fresh(name: string): Promise<string> {
    const path = join(this.dir, name)
    await mkdir(path, { recursive: true })
    return path
  }

  /** Unmounts everything at or below the directory, deletes it, stops listening. Idempotent. */
  cleanup(): Promise<void> {
    this.#cleaning ??= (async () => {
      try {
        await graphdriver.unmountAll(this.dir)
        // Not fs.rm: Node 20 lists the whole tree at once (GiBs of RSS for a full run's roots).
        await archive.removeTreeAsync(this.dir)
      } finally {
        process.off('SIGINT', this.#onInt)
        process.off('SIGTERM', this.#onTerm)
      }
    })()
    return this.#cleaning
  }

  #interrupt(signal: 'SIGINT' | 'SIGTERM', exitCode: number): void {
    if (this.#controller.signal.aborted) {
      // A second signal: the user wants out now; still leave no mounts behind.
      void this.cleanup().finally(() => process.exit(exitCode))
      return
    }
    process.stderr.write(`\n${signal}: stopping, then unmounting and deleting ${this.dir} (${signal} again to hurry)\n`)
    this.#controller.abort(new BenchInterruptedError(signal, exitCode))
  }
}
