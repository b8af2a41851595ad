/**
 * A throwaway Docker daemon for compatibility tests: Debian's `docker.io` (dockerd 20.10)
 * started on temporary paths only (data root, exec root, pidfile, socket, daemon.json, CLI
 * config), never the machine's `/var/lib/docker` or `/var/run/docker.sock`, because other
 * sessions share this machine.
 *
 * Lifecycle: {@link startDockerd} → `docker(...)` calls → `stop()` (the daemon exits, its files
 * stay, so that a test can read the data root it left) → `dispose()` (stops if needed,
 * unmounts whatever is left under the temp dir, deepest first, and removes it). Both are
 * idempotent; call `dispose()` in `afterAll`/`finally`.
 *
 * Flags, and why each (found by starting 20.10.24 on this machine, no systemd):
 * - `--iptables=false --ip-masq=false --ip-forward=false --bridge=none`: no host network
 *   changes; the tests only load and save images.
 * - `--config-file <tmp>/daemon.json` (`{}`): the machine's /etc/docker/daemon.json, if any,
 *   must not change the daemon under test.
 * - no `--containerd`: dockerd then runs its own containerd with its socket under the exec
 *   root, so nothing is shared with a system containerd. Keep the temp dir short: that
 *   socket path must fit sockaddr_un (108 bytes).
 * - stopped by SIGTERM (dockerd stops its containerd, removes its pidfile and socket); after
 *   a grace period SIGKILL, then its containerd by the pidfile it left, if that process
 *   still names our exec root.
 * - started under `setpriv --pdeathsig TERM` where available, so a test process killed
 *   hard (a runner timeout) does not leave a daemon behind.
 */
import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { access, constants, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { unmountAll } from '../../src/graphdriver/index.js'

/** A running (or stopped) throwaway dockerd. */
export interface Dockerd {
  /** The temp dir holding everything below. */
  readonly dir: string
  /** `--data-root`: the Docker root (`image/overlay2/layerdb`, `overlay2/`, …). */
  readonly root: string
  /** `--exec-root`. */
  readonly execRoot: string
  /** The API socket path (`-H unix://<sock>`). */
  readonly sock: string
  /** The daemon's log file (stdout and stderr). */
  readonly logFile: string
  /** dockerd's version line (`Docker version 20.10.24+dfsg1, build …`). */
  readonly version: string
  /**
   * Runs the docker CLI against this daemon and returns its stdout. Rejects with
   * {@link DockerCommandError} (stderr included) on a non-zero exit.
   */
  docker(...args: string[]): Promise<Buffer>
  /** Stops the daemon (SIGTERM, then SIGKILL); its files stay. Idempotent. */
  stop(): Promise<void>
  /** Stops it if needed, unmounts everything under `dir` (deepest first) and removes `dir`. Idempotent. */
  dispose(): Promise<void>
  /** The last `lines` lines of the daemon log, for failure messages. */
  logTail(lines?: number): Promise<string>
}

/** Options of {@link startDockerd}. */
export interface StartDockerdOptions {
  /** `--storage-driver`; default `overlay2`. */
  readonly storageDriver?: string
  /** How long to wait for `/_ping` to answer; default 30 s. */
  readonly readyTimeoutMs?: number
  /** Grace period between SIGTERM and SIGKILL at stop; default 20 s. */
  readonly stopTimeoutMs?: number
  /** Where the temp dir is made; default `os.tmpdir()`. Keep it short (see the file comment). */
  readonly parentDir?: string
}

/** dockerd is absent here or could not start; `skipReason` says which, for the test's skip. */
export class DockerdUnavailableError extends Error {
  override readonly name = 'DockerdUnavailableError'
  readonly code = 'ERR_DOCKERD_UNAVAILABLE'
  readonly kind = 'not-supported'
  constructor(readonly skipReason: string, options?: ErrorOptions) {
    super(skipReason, options)
  }
}

/** A docker CLI command failed. */
export class DockerCommandError extends Error {
  override readonly name = 'DockerCommandError'
  readonly code = 'ERR_DOCKER_COMMAND'
  readonly kind = 'internal'
  constructor(readonly args: readonly string[], readonly stderr: string, options?: ErrorOptions) {
    super(`docker ${args.join(' ')} failed: ${stderr.trim() || 'no output'}`, options)
  }
}

const DOCKERD_CANDIDATES = ['/usr/sbin/dockerd', '/usr/bin/dockerd']
// Debian's CLI matches the daemon's API version; another docker on PATH (a newer static CLI)
// is only a fallback, as it negotiates the API version down.
const CLI_CANDIDATES = ['/usr/bin/docker']

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  )
}

async function findBinary(name: string, preferred: readonly string[]): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean)
  for (const path of [...preferred, ...dirs.map((d) => join(d, name))]) {
    if (await isExecutable(path)) return path
  }
  return undefined
}

function run(file: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<{ stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, encoding: 'buffer', maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr: stderr.toString('utf8') }))
      else resolve({ stdout, stderr: stderr.toString('utf8') })
    })
  })
}

/**
 * Why a throwaway dockerd cannot run here (not root, no dockerd, no docker CLI, no
 * containerd), or undefined when it may; {@link startDockerd} tells the rest.
 */
export async function dockerdSkipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'dockerd needs root'
  if (!(await findBinary('dockerd', DOCKERD_CANDIDATES))) return 'dockerd is not installed (apt-get install docker.io)'
  if (!(await findBinary('docker', CLI_CANDIDATES))) return 'the docker CLI is not installed (apt-get install docker.io)'
  if (!(await findBinary('containerd', []))) return 'containerd is not installed (a dependency of docker.io)'
  return undefined
}

/** GET /_ping on the socket: true when the API answers OK. */
function ping(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: sock, path: '/_ping', method: 'GET', timeout: 2000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve(res.statusCode === 200 && body === 'OK'))
      res.on('error', () => resolve(false))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(false))
    req.end()
  })
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
}

// Kills the managed containerd that a SIGKILLed dockerd leaves, by its pidfile, only if the
// process still names our exec root (a pid may have been reused since).
async function killOrphanContainerd(execRoot: string): Promise<void> {
  const pidText = await readFile(join(execRoot, 'containerd', 'containerd.pid'), 'utf8').catch(() => '')
  const pid = Number.parseInt(pidText.trim(), 10)
  if (!Number.isSafeInteger(pid) || pid <= 1) return
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
  if (!cmdline.includes(execRoot)) return
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    return // gone meanwhile
  }
  for (let i = 0; i < 50 && (await access(`/proc/${pid}`).then(() => true, () => false)); i++) await sleep(100)
}

/**
 * Starts a throwaway dockerd on a fresh temp dir and waits until its API answers.
 *
 * @throws DockerdUnavailableError when dockerd is absent or does not come up (its log tail
 *   in the reason); everything it made is removed first.
 */
export async function startDockerd(options: StartDockerdOptions = {}): Promise<Dockerd> {
  const absent = await dockerdSkipReason()
  if (absent) throw new DockerdUnavailableError(absent)
  const dockerd = (await findBinary('dockerd', DOCKERD_CANDIDATES))!
  const cli = (await findBinary('docker', CLI_CANDIDATES))!
  const version = (await run(dockerd, ['--version'])).stdout.toString('utf8').trim()

  // Short prefix: containerd's socket lives at <exec>/containerd/containerd.sock.
  const dir = await mkdtemp(join(options.parentDir ?? tmpdir(), 'ls-dockerd-'))
  const root = join(dir, 'root')
  const execRoot = join(dir, 'exec')
  const sock = join(dir, 'docker.sock')
  const logFile = join(dir, 'dockerd.log')
  const cliConfig = join(dir, 'cli')
  const stopTimeoutMs = options.stopTimeoutMs ?? 20_000
  let child: ChildProcess | undefined
  let stopped = false
  let disposed = false

  const logTail = async (lines = 30): Promise<string> => {
    const text = await readFile(logFile, 'utf8').catch(() => '')
    return text.trimEnd().split('\n').slice(-lines).join('\n')
  }

  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      if (!(await waitForExit(child, stopTimeoutMs))) {
        child.kill('SIGKILL')
        await waitForExit(child, 10_000)
      }
    }
    await killOrphanContainerd(execRoot)
  }

  const dispose = async (): Promise<void> => {
    if (disposed) return
    disposed = true
    await stop()
    await unmountAll(dir)
    await rm(dir, { recursive: true, force: true })
  }

  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: cliConfig }
  delete env.DOCKER_CONTEXT
  delete env.DOCKER_TLS_VERIFY
  delete env.DOCKER_CERT_PATH

  const docker = async (...args: string[]): Promise<Buffer> => {
    try {
      return (await run(cli, args, env)).stdout
    } catch (err) {
      throw new DockerCommandError(args, (err as { stderr?: string }).stderr ?? String(err), { cause: err })
    }
  }

  try {
    await mkdir(cliConfig, { mode: 0o700 })
    await writeFile(join(dir, 'daemon.json'), '{}\n')
    const args = [
      '--data-root', root,
      '--exec-root', execRoot,
      '--pidfile', join(dir, 'docker.pid'),
      '-H', `unix://${sock}`,
      '--config-file', join(dir, 'daemon.json'),
      '--storage-driver', options.storageDriver ?? 'overlay2',
      '--iptables=false', '--ip-masq=false', '--ip-forward=false', '--bridge=none',
      '--log-level', 'info',
    ]
    const setpriv = await findBinary('setpriv', ['/usr/bin/setpriv'])
    const [file, argv] = setpriv ? [setpriv, ['--pdeathsig', 'TERM', '--', dockerd, ...args]] : [dockerd, args]
    const log = await open(logFile, 'w')
    try {
      child = spawn(file, argv, { stdio: ['ignore', log.fd, log.fd], env, cwd: dir })
    } finally {
      await log.close()
    }
    const spawned = child
    let spawnError: Error | undefined
    spawned.on('error', (err) => (spawnError = err))
    const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000)
    for (;;) {
      if (spawnError) throw spawnError
      if (spawned.exitCode !== null || spawned.signalCode !== null) {
        throw new Error(`dockerd exited (${spawned.exitCode ?? spawned.signalCode}) before answering`)
      }
      if (await ping(sock)) break
      if (Date.now() > deadline) throw new Error(`dockerd did not answer /_ping within ${options.readyTimeoutMs ?? 30_000} ms`)
      await sleep(100)
    }
  } catch (err) {
    const tail = await logTail(15)
    await dispose()
    const why = err instanceof Error ? err.message : String(err)
    throw new DockerdUnavailableError(`${version} could not start: ${why}${tail ? `\n--- dockerd log ---\n${tail}` : ''}`, {
      cause: err,
    })
  }
  return { dir, root, execRoot, sock, logFile, version, docker, stop, dispose, logTail }
}
