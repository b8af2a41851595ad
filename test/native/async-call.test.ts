/**
 * The native worker pool (src/native/async-call.ts): a worker started ahead of its first call
 * (`prewarmBlockingCalls`) serves that call, and, idle, never keeps a process alive.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ficlone, prewarmBlockingCalls, syncfs } from '../../src/native/index.js'

const BUILT = fileURLToPath(new URL('../../dist/native/index.js', import.meta.url))
const onLinux = process.platform === 'linux'
const built = existsSync(BUILT)
if (!onLinux) console.warn('native worker tests skipped: the native module is Linux-only')
else if (!built) console.warn('native worker keep-alive test skipped: dist/ is not built (run npx tsc -p tsconfig.build.json)')

describe.skipIf(!onLinux)('prewarmBlockingCalls', () => {
  // A descriptor number no process here ever has open (far above RLIMIT_NOFILE): EBADF for
  // sure, where a closed one may be reused at once by the test runner's own I/O.
  const NEVER_OPEN = 0x7ffffff0

  it('starts a worker that the next blocking call uses, and is idempotent', async () => {
    prewarmBlockingCalls()
    prewarmBlockingCalls()
    await expect(ficlone(-1, 0)).rejects.toMatchObject({ code: 'ERR_NATIVE_INVALID_ARGUMENT' })
    // EBADF read on the worker, right after the call (the reason the pool exists).
    await expect(ficlone(NEVER_OPEN, NEVER_OPEN)).rejects.toMatchObject({ code: 'EBADF', syscall: 'ioctl' })
  })

  it('syncfs, on the libuv pool where errno is lost, still rejects with the real errno', async () => {
    const handle = await open(tmpdir(), 'r')
    try {
      await syncfs(handle.fd)
    } finally {
      await handle.close()
    }
    await expect(syncfs(NEVER_OPEN)).rejects.toMatchObject({ code: 'EBADF', syscall: 'syncfs' })
  })

  it.skipIf(!built)('leaves nothing that keeps a process alive', async () => {
    // A process that only prewarms must end on its own, soon (dist/ is the built package).
    const child = spawn(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(BUILT)}).then((n) => n.prewarmBlockingCalls())`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      child.on('close', (c) => {
        clearTimeout(timer)
        resolve(c)
      })
    })
    expect(stderr).toBe('')
    expect(code).toBe(0)
  })
})
