/**
 * mount(2) with relative paths resolved against a directory of the caller's choice.
 *
 * The kernel resolves a relative source, target or option path (overlay's `lowerdir=l/A:l/B`)
 * against the calling thread's working directory. Overlay needs this for 128 lower dirs on
 * kernels without `lowerdir+`: only relative short links fit one page of mount data.
 * `process.chdir` would move every thread of the process (and is refused in workers), so,
 * like moby's `mountFrom`, a {@link RelativeMounter} runs a thread of its own that calls
 * `unshare(CLONE_FS)` (which gives that thread alone a private fs context: root, cwd, umask),
 * `chdir`s into the directory, and then makes the mounts it is sent. The main thread's cwd
 * and the thread pool's never change.
 *
 * Why not the worker pool of async-call.ts: its threads share the process's cwd and serve any
 * call; a pool thread with a private cwd would resolve every later relative path wrongly.
 * The thread loads koffi itself, as the pool's do (a thread cannot borrow another's FFI
 * handles), and reads errno right after each call (errno is per thread).
 *
 * Lifecycle: the thread starts on the first mount (~100 ms, mostly loading koffi) and is
 * kept; it is unref'd while idle, so it never keeps the process alive, and `close()` ends it.
 * While it lives its cwd holds the directory busy: unmounting the filesystem under it fails
 * with EBUSY until `close()`.
 */
import { Worker } from 'node:worker_threads'
import createDebug from 'debug'
import { NativeArgumentError, NativeUnavailableError, NativeWorkerError, showPath, SyscallError } from './errors.js'
import type { PathLike } from './errors.js'
import { cPath, cString, LIBC_SONAME, koffiModuleURL } from './libc.js'

const debug = createDebug('layerstore:native')

// <sched.h>: the flag that unshares the fs context (root, cwd, umask) of the calling thread.
const CLONE_FS = 0x200

// Plain JS, evaluated as a CommonJS script in the worker (see async-call.ts). The first
// message (id 0) reports the setup: `ready`, or the step that failed with its errno.
const WORKER_SOURCE = `
let port
;(async () => {
  const { parentPort, workerData } = await import('node:worker_threads')
  port = parentPort
  const koffi = (await import(workerData.koffiUrl)).default
  const lib = koffi.load(workerData.soname)
  const unshare = lib.func('int unshare(int flags)')
  const chdir = lib.func('int chdir(const char *path)')
  const mount = lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)')
  if (unshare(workerData.cloneFs) !== 0) return port.postMessage({ id: 0, step: 'unshare', errno: koffi.errno() })
  if (chdir(workerData.cwd) !== 0) return port.postMessage({ id: 0, step: 'chdir', errno: koffi.errno() })
  port.on('message', (m) => {
    const ok = mount(m.source, m.target, m.fstype, m.flags, m.data) === 0
    port.postMessage({ id: m.id, step: ok ? 'done' : 'mount', errno: ok ? 0 : koffi.errno() })
  })
  port.postMessage({ id: 0, step: 'ready', errno: 0 })
})().catch((err) => {
  if (port) port.postMessage({ id: 0, step: 'error', errno: 0, message: String((err && err.message) || err) })
})
`

interface Reply {
  readonly id: number
  readonly step: 'unshare' | 'chdir' | 'mount' | 'done' | 'ready' | 'error'
  readonly errno: number
  readonly message?: string
}

interface Waiter {
  readonly resolve: (reply: Reply) => void
  readonly reject: (err: Error) => void
}

/** One running thread and the calls it owes answers to (id 0: its setup). */
interface MountThread {
  readonly worker: Worker
  readonly pending: Map<number, Waiter>
  /** Why the thread ended, once it has: a call that comes later must not wait for it. */
  death?: Error
}

/**
 * Makes mount(2) calls from a thread whose working directory is `cwd`, so that relative
 * paths in the source, the target and the option string resolve under it (see the module
 * doc). One instance per directory; calls may overlap (the thread makes them in order).
 *
 * @example
 * const mounter = new RelativeMounter(home)
 * try {
 *   await mounter.mount('overlay', merged, 'overlay', 0, 'lowerdir=l/A:l/B,upperdir=x/diff,workdir=x/work')
 * } finally {
 *   await mounter.close()
 * }
 */
export class RelativeMounter {
  /** The directory relative paths resolve against, as given (absolute). */
  readonly cwd: PathLike
  #thread: Promise<MountThread> | undefined
  #nextId = 1

  /**
   * A mounter for paths relative to `cwd`, which must be absolute (a relative one would
   * depend on the process's cwd when the thread starts). Nothing starts until the first
   * mount, so a missing `cwd` is reported then. Throws {@link NativeArgumentError} for a
   * relative path or one with a NUL byte.
   */
  constructor(cwd: PathLike) {
    cPath('chdir', cwd, 'cwd')
    const first = typeof cwd === 'string' ? cwd.charCodeAt(0) : cwd[0]
    if (first !== 0x2f) throw new NativeArgumentError('chdir', 'cwd', `${showPath(cwd)} is not an absolute path`)
    this.cwd = cwd
  }

  /**
   * mount(2) from this mounter's directory; the arguments are those of `mount` (mount.ts):
   * `source` null for remounts, `fstype` null for binds, `data` the option string (one page
   * at most). Absolute paths work too. Rejects with a {@link SyscallError} whose `syscall`
   * is the step that failed: `unshare` (not expected: CLONE_FS needs no privilege), `chdir`
   * (e.g. ENOENT, `path` = `cwd`), or `mount` (`path` = source, `dest` = target, as mount.ts
   * reports them, and the directory in the message). {@link NativeArgumentError} for a NUL
   * byte in an argument; {@link NativeWorkerError} if the thread died or was closed under the
   * call (the next call starts a new one).
   */
  async mount(source: PathLike | null, target: PathLike, fstype: string | null, flags: number, data?: string): Promise<void> {
    const message = {
      source: source === null ? null : cPath('mount', source, 'source'),
      target: cPath('mount', target, 'target'),
      fstype: fstype === null ? null : cString('mount', fstype, 'fstype'),
      flags,
      data: data === undefined ? null : cString('mount', data, 'data'),
    }
    const thread = await this.#start()
    const { worker, pending } = thread
    // close() may have ended the thread while this call waited for its start.
    if (thread.death) throw new NativeWorkerError('mount', thread.death.message, { cause: thread.death })
    const id = this.#nextId++
    debug('mount from %s: %s on %s type %s (%d bytes of data)', this.cwd, source, target, fstype, data?.length ?? 0)
    const reply = await new Promise<Reply>((resolve, reject) => {
      pending.set(id, { resolve, reject })
      worker.ref()
      worker.postMessage({ id, ...message })
    })
    if (reply.step === 'done') return
    throw new SyscallError('mount', reply.errno, {
      ...(source === null ? { path: target } : { path: source, dest: target }),
      detail: `relative to ${showPath(this.cwd)}`,
    })
  }

  /**
   * Ends the thread, if one runs, which releases its hold on `cwd`; calls still waiting
   * reject with {@link NativeWorkerError}. The mounter can be used again afterwards (a new
   * thread starts). A second call does nothing.
   */
  async close(): Promise<void> {
    const thread = this.#thread
    this.#thread = undefined
    const running = await thread?.catch(() => undefined)
    if (running) await running.worker.terminate()
  }

  #start(): Promise<MountThread> {
    if (this.#thread) return this.#thread
    // Forget this thread once it dies or fails to start (not a newer one started since), so
    // that the next call starts afresh.
    const forget = (): void => {
      if (this.#thread === thread) this.#thread = undefined
    }
    const thread = this.#spawn(forget)
    this.#thread = thread
    thread.catch(forget)
    return thread
  }

  async #spawn(forget: () => void): Promise<MountThread> {
    if (process.platform !== 'linux') throw new NativeUnavailableError(`platform is ${process.platform}, not linux`)
    const koffiUrl = koffiModuleURL()
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // The parent's flags (loaders, --input-type) mean nothing to this plain script.
      execArgv: [],
      workerData: { cwd: cPath('chdir', this.cwd, 'cwd'), koffiUrl, soname: LIBC_SONAME, cloneFs: CLONE_FS },
    })
    debug('started mount thread in %s', this.cwd)
    const thread: MountThread = { worker, pending: new Map() }
    const setup = new Promise<Reply>((resolve, reject) => thread.pending.set(0, { resolve, reject }))
    worker.on('message', (reply: Reply) => {
      const waiter = thread.pending.get(reply.id)
      thread.pending.delete(reply.id)
      if (thread.pending.size === 0) worker.unref()
      waiter?.resolve(reply)
    })
    const die = (err: Error): void => {
      thread.death ??= err
      forget()
      for (const waiter of thread.pending.values()) waiter.reject(new NativeWorkerError('mount', err.message, { cause: err }))
      thread.pending.clear()
    }
    worker.on('error', die)
    worker.on('exit', (code) => die(new Error(`mount thread exited with code ${code}`)))
    const first = await setup
    if (first.step === 'ready') return thread
    void worker.terminate()
    if (first.step === 'error') throw new NativeWorkerError('mount', first.message ?? 'unknown failure')
    throw new SyscallError(first.step, first.errno, first.step === 'chdir' ? { path: this.cwd } : {})
  }
}
