/**
 * Running a libc call off the main thread, with its errno.
 *
 * Why not koffi's own `fn.async()`: it runs the call on the libuv thread pool and hands back
 * only the return value; errno stays in that pool thread's thread-local storage, and reading
 * `koffi.errno()` in the callback gives the main thread's stale value (measured: `close(-1)`
 * reported ENOTTY, not EBADF). So blocking calls run in a small pool of worker threads, each
 * of which makes the call synchronously, reads errno at once and posts both back. (syncfs
 * comes here only after it failed on the libuv pool, see file-ops.ts: a register must not pay
 * for a worker.)
 *
 * Workers start lazily (~100 ms each, mostly Node's worker start-up, then koffi), or ahead
 * of a call a caller knows is coming ({@link prewarmBlockingCalls}). Each serves one call at
 * a time and is unref'd while idle, so that it never keeps the process alive; a pending call
 * does, as a pending fs call would. Only calls that finish on their own go here: a thread blocked in the
 * kernel cannot be interrupted from JS, and Node joins worker threads at exit, so an
 * unbounded wait (a lock) would hang `process.exit()`. `lock.ts` polls instead.
 */
import { Worker } from 'node:worker_threads'
import createDebug from 'debug'
import { NativeUnavailableError, NativeWorkerError, SyscallError } from './errors.js'
import type { SyscallErrorDetails } from './errors.js'
import { LIBC_SONAME, koffiModuleURL } from './libc.js'

const debug = createDebug('layerstore:native')

/**
 * The prototypes a worker can call, by short name; `mountSync`/`umountSync` (mount.ts) declare
 * the same ones on the calling thread.
 */
export const BLOCKING_PROTOTYPES = {
  syncfs: 'int syncfs(int fd)',
  ioctl: 'int ioctl(int fd, unsigned long request, ...)',
  copy_file_range:
    'intptr_t copy_file_range(int fd_in, void *off_in, int fd_out, void *off_out, size_t len, unsigned int flags)',
  mount: 'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)',
  umount2: 'int umount2(const char *target, int flags)',
  syscall: 'long syscall(long number, ...)',
} as const

/** The name of a call that {@link callBlocking} can run. */
export type BlockingCall = keyof typeof BLOCKING_PROTOTYPES

/** A value that crosses to the worker: numbers, strings, bytes, null (structured clone). */
export type BlockingArg = number | bigint | string | Buffer | null

// Plain JS, evaluated as a CommonJS script in the worker; `import()` works there as well as
// in a module, so the code does not care which one Node picks.
const WORKER_SOURCE = `
(async () => {
  const { parentPort, workerData } = await import('node:worker_threads')
  const koffi = (await import(workerData.koffiUrl)).default
  const lib = koffi.load(workerData.soname)
  const fns = new Map()
  parentPort.on('message', ({ id, name, args }) => {
    try {
      let fn = fns.get(name)
      if (!fn) { fn = lib.func(workerData.prototypes[name]); fns.set(name, fn) }
      const ret = fn(...args)
      const errno = koffi.errno()
      parentPort.postMessage({ id, ret: typeof ret === 'bigint' ? Number(ret) : ret, errno })
    } catch (err) {
      parentPort.postMessage({ id, error: String((err && err.message) || err) })
    }
  })
})()
`

interface Job {
  readonly id: number
  readonly name: BlockingCall
  readonly args: readonly BlockingArg[]
  readonly resolve: (result: { ret: number; errno: number }) => void
  readonly reject: (err: Error) => void
}

interface Reply {
  id: number
  ret?: number
  errno?: number
  error?: string
}

/** A few worker threads that run blocking libc calls one at a time each. */
class BlockingCallPool {
  readonly #max: number
  readonly #idle: Worker[] = []
  readonly #running = new Map<Worker, Job>()
  readonly #queue: Job[] = []
  #workers = 0
  #nextId = 1
  #koffiUrl: string | undefined

  constructor(max: number) {
    this.#max = max
  }

  run(name: BlockingCall, args: readonly BlockingArg[]): Promise<{ ret: number; errno: number }> {
    return new Promise((resolve, reject) => {
      const job: Job = { id: this.#nextId++, name, args, resolve, reject }
      const worker = this.#idle.pop() ?? (this.#workers < this.#max ? this.#spawn(name) : undefined)
      if (worker) this.#start(worker, job)
      else this.#queue.push(job)
    })
  }

  /** Starts one idle worker if none exists, so that a call soon after need not wait for it. */
  prewarm(): void {
    if (this.#workers > 0) return
    const worker = this.#spawn('prewarm')
    worker.unref()
    this.#idle.push(worker)
  }

  #spawn(name: BlockingCall | 'prewarm'): Worker {
    this.#koffiUrl ??= koffiModuleURL()
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // The parent's flags (loaders, --input-type) mean nothing to this plain script.
      execArgv: [],
      workerData: { koffiUrl: this.#koffiUrl, soname: LIBC_SONAME, prototypes: BLOCKING_PROTOTYPES },
    })
    this.#workers++
    debug('started native worker %d of %d for %s', this.#workers, this.#max, name)
    worker.on('message', (reply: Reply) => this.#settle(worker, reply))
    worker.on('error', (err) => this.#fail(worker, err))
    worker.on('exit', (code) => this.#fail(worker, new Error(`worker exited with code ${code}`)))
    return worker
  }

  #start(worker: Worker, job: Job): void {
    this.#running.set(worker, job)
    worker.ref()
    worker.postMessage({ id: job.id, name: job.name, args: job.args })
  }

  #settle(worker: Worker, reply: Reply): void {
    const job = this.#running.get(worker)
    this.#running.delete(worker)
    if (job && reply.id === job.id) {
      if (reply.error !== undefined) job.reject(new NativeWorkerError(job.name, reply.error))
      else job.resolve({ ret: reply.ret ?? -1, errno: reply.errno ?? 0 })
    } else if (job) {
      job.reject(new NativeWorkerError(job.name, `reply ${reply.id} does not match call ${job.id}`))
    }
    const next = this.#queue.shift()
    if (next) {
      this.#start(worker, next)
    } else {
      worker.unref()
      this.#idle.push(worker)
    }
  }

  #fail(worker: Worker, err: Error): void {
    const wasKnown = this.#running.has(worker) || this.#idle.includes(worker)
    const job = this.#running.get(worker)
    this.#running.delete(worker)
    const idleAt = this.#idle.indexOf(worker)
    if (idleAt >= 0) this.#idle.splice(idleAt, 1)
    if (!wasKnown) return
    this.#workers--
    void worker.terminate()
    if (job) job.reject(new NativeWorkerError(job.name, err.message, { cause: err }))
    const next = this.#queue.shift()
    if (next) this.#start(this.#spawn(next.name), next)
  }
}

// One pool per process: the fds and mounts the calls act on are per process too, and a
// worker is too costly to start per call.
let pool: BlockingCallPool | undefined

/** At most this many blocking calls run at once; more wait in a queue. */
const MAX_WORKERS = 4

/**
 * Starts a worker thread now, in the background, if none runs yet: for a caller that knows a
 * blocking call (a mount, a copy) will follow shortly, so that the worker's start (~100 ms,
 * mostly Node's own) overlaps the work before it. Returns at once; the idle worker never
 * keeps the process alive. Does nothing off Linux.
 */
export function prewarmBlockingCalls(): void {
  if (process.platform !== 'linux') return
  pool ??= new BlockingCallPool(MAX_WORKERS)
  pool.prewarm()
}

/**
 * Runs `name(...args)` on a worker thread; resolves with its result, or rejects with the
 * {@link SyscallError} for its errno when it returns -1. `syscall` and `details` name the
 * call in that error.
 */
export async function callBlocking(
  name: BlockingCall,
  args: readonly BlockingArg[],
  syscall: string,
  details?: SyscallErrorDetails,
): Promise<number> {
  if (process.platform !== 'linux') throw new NativeUnavailableError(`platform is ${process.platform}, not linux`)
  pool ??= new BlockingCallPool(MAX_WORKERS)
  const { ret, errno } = await pool.run(name, args)
  if (ret === -1) throw new SyscallError(syscall, errno, details)
  return ret
}
