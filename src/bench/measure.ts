/**
 * How the suite times a process: wall seconds seen from here, peak RSS from GNU time
 * (`/usr/bin/time -f %M`, when installed), and every byte of its stdout read by this process
 * (never /dev/null: GNU tar reads no file data when its output is /dev/null, PEERS.md).
 */
import { execFile, spawn } from 'node:child_process'
import { access, mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BenchStepError } from './errors.js'
import { secondsSince } from './stats.js'

const GNU_TIME = '/usr/bin/time'

/** What one timed process did. */
export interface TimedRun {
  /** Wall seconds from spawn to exit, seen from this process. */
  readonly seconds: number
  /** Peak RSS of the process in MiB; null without GNU time. */
  readonly maxRssMiB: number | null
  /** Bytes the process wrote to stdout (all read by this process). */
  readonly bytesOut: number
  /** Its stdout, when asked to keep it. */
  readonly stdout?: string
}

/** Options of {@link timeCommand}. */
export interface TimeCommandOptions {
  /** Aborting stops the process and its children (SIGTERM to its group); the run then rejects. */
  readonly signal?: AbortSignal
  /** Keep stdout as text (for a child's JSON answer) instead of only counting it. */
  readonly keepStdout?: boolean
}

let gnuTime: Promise<boolean> | undefined

/** True when GNU time is installed (checked once per process). */
export function hasGnuTime(): Promise<boolean> {
  gnuTime ??= access(GNU_TIME).then(
    () => true,
    () => false,
  )
  return gnuTime
}

/** Runs `argv` once and resolves to its {@link TimedRun}; rejects with `BenchStepError` on a non-zero exit. */
export async function timeCommand(argv: readonly string[], options: TimeCommandOptions = {}): Promise<TimedRun> {
  const [cmd, ...args] = argv
  if (cmd === undefined) throw new BenchStepError('timeCommand', 'empty command')
  const timed = await hasGnuTime()
  const dir = timed ? await mkdtemp(join(tmpdir(), 'layerstore-bench-time-')) : undefined
  const rssFile = dir && join(dir, 'rss')
  try {
    const started = process.hrtime.bigint()
    const { code, bytesOut, stdout, stderr } = await new Promise<{ code: number | null; bytesOut: number; stdout: string; stderr: string }>(
      (resolve, reject) => {
        // A process group of its own: GNU time does not forward signals, so an abort must
        // reach the timed process itself (and its children) through the group.
        const child = rssFile
          ? spawn(GNU_TIME, ['-f', '%M', '-o', rssFile, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
          : spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
        let stopping: Promise<void> | undefined
        const onAbort = (): void => void (stopping ??= stopGroup(child.pid))
        options.signal?.addEventListener('abort', onAbort, { once: true })
        child.on('close', () => options.signal?.removeEventListener('abort', onAbort))
        if (options.signal?.aborted) onAbort()
        let bytes = 0
        const kept: Buffer[] = []
        let err = ''
        child.stdout.on('data', (c: Buffer) => {
          bytes += c.length
          if (options.keepStdout) kept.push(c)
        })
        child.stderr.on('data', (c: Buffer) => {
          if (err.length < 4000) err += c.toString()
        })
        child.on('error', reject)
        child.on('close', (exit) => {
          const done = { code: exit, bytesOut: bytes, stdout: Buffer.concat(kept).toString(), stderr: err }
          // Stopped: settle only once the whole group is gone.
          void Promise.resolve(stopping).then(() => resolve(done))
        })
      },
    )
    const seconds = secondsSince(started)
    if (code !== 0) throw new BenchStepError(argv.join(' ').slice(0, 200), `exited ${code}: ${lastLines(stderr)}`)
    let maxRssMiB: number | null = null
    if (rssFile) {
      const kib = Number((await readFile(rssFile, 'utf8')).trim().split('\n').pop())
      maxRssMiB = Number.isFinite(kib) ? kib / 1024 : null
    }
    return { seconds, maxRssMiB, bytesOut, ...(options.keepStdout ? { stdout } : {}) }
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true })
  }
}

/**
 * Reads a file once so that it is in the page cache right before it is timed: these machines
 * reclaim the cache proactively, and both we and the reference must start warm.
 */
export async function warm(path: string): Promise<void> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.allocUnsafe(1 << 20)
    while ((await fh.read(buf, 0, buf.length, null)).bytesRead > 0);
  } finally {
    await fh.close()
  }
}

/** `sync`: what the previous run left dirty must not be written back during the next. */
export function syncAll(): Promise<void> {
  return new Promise((resolve, reject) => execFile('sync', (err) => (err ? reject(err) : resolve())))
}

/** Runs a command and resolves to its stdout ('' when it fails or is missing). */
export function commandOutput(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve) => execFile(cmd, args, { encoding: 'utf8' }, (err, out) => resolve(err ? '' : out)))
}

// SIGTERM to the whole group, then wait (up to 5 s) until none of it is left: its files must
// not change while the scratch directory is deleted.
async function stopGroup(pid: number | undefined): Promise<void> {
  if (pid === undefined) return
  const alive = (): boolean => {
    try {
      process.kill(-pid, 0)
      return true
    } catch {
      return false
    }
  }
  try {
    process.kill(-pid, 'SIGTERM')
  } catch {
    return
  }
  for (let waited = 0; waited < 5000 && alive(); waited += 50) await new Promise((r) => setTimeout(r, 50))
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' / ')
}
