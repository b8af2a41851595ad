import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, openSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { lockFile, NativeArgumentError, SyscallError, unlockFile } from '../../src/native/index.js'

describe('file locks', () => {
  let dir: string
  let file: string
  const fds: number[] = []
  const children: ChildProcess[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'native-lock-'))
    file = join(dir, 'lock')
    await writeFile(file, '')
  })
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL')
        await once(child, 'exit')
      }
    }
    for (const fd of fds.splice(0)) closeSync(fd)
    await rm(dir, { recursive: true, force: true })
  })

  function openLock(): number {
    const fd = openSync(file, 'r+')
    fds.push(fd)
    return fd
  }

  /** A node child that takes an exclusive flock on `file` and says "locked". */
  async function childHoldingLock(): Promise<ChildProcess> {
    const koffiUrl = pathToFileURL(createRequire(import.meta.url).resolve('koffi')).href
    const script = `
      import koffi from ${JSON.stringify(koffiUrl)}
      import { openSync } from 'node:fs'
      const flock = koffi.load('libc.so.6').func('int flock(int fd, int op)')
      const fd = openSync(${JSON.stringify(file)}, 'r+')
      if (flock(fd, 2) !== 0) process.exit(3)
      process.stdout.write('locked\\n')
      setInterval(() => {}, 1000)
    `
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    const [chunk] = (await once(child.stdout!, 'data')) as [Buffer]
    expect(chunk.toString()).toBe('locked\n')
    return child
  }

  it('does not get a lock another process holds, and gets it once that process is killed', async () => {
    const child = await childHoldingLock()
    const fd = openLock()
    expect(await lockFile(fd, 'exclusive', { wait: false })).toBe(false)
    expect(await lockFile(fd, 'shared', { wait: false })).toBe(false)

    let acquired = false
    const waiting = lockFile(fd, 'exclusive', { wait: true }).then((got) => {
      acquired = got
      return got
    })
    await new Promise((r) => setTimeout(r, 30))
    expect(acquired).toBe(false) // still waiting, and the event loop runs meanwhile
    child.kill('SIGKILL')
    await once(child, 'exit')
    expect(await waiting).toBe(true)
  })

  it('makes two fds of one process conflict (per open file description)', async () => {
    const a = openLock()
    const b = openLock()
    expect(await lockFile(a, 'exclusive', { wait: false })).toBe(true)
    expect(await lockFile(b, 'exclusive', { wait: false })).toBe(false)
    expect(await lockFile(b, 'shared', { wait: false })).toBe(false)
    const waiting = lockFile(b, 'exclusive', { wait: true })
    unlockFile(a)
    expect(await waiting).toBe(true)
    unlockFile(b)
  })

  it('shares shared locks and keeps exclusive ones out', async () => {
    const a = openLock()
    const b = openLock()
    const c = openLock()
    expect(await lockFile(a, 'shared', { wait: false })).toBe(true)
    expect(await lockFile(b, 'shared', { wait: false })).toBe(true)
    expect(await lockFile(c, 'exclusive', { wait: false })).toBe(false)
    unlockFile(a)
    unlockFile(b)
    expect(await lockFile(c, 'exclusive', { wait: false })).toBe(true)
  })

  it('stops waiting when aborted, and fails typed on a bad fd', async () => {
    const a = openLock()
    const b = openLock()
    expect(await lockFile(a, 'exclusive', { wait: false })).toBe(true)
    const controller = new AbortController()
    const waiting = lockFile(b, 'exclusive', { wait: true, signal: controller.signal })
    controller.abort()
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' })

    const notOpen = 999_999 // far above any fd this process has
    const err = await lockFile(notOpen, 'shared', { wait: false }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SyscallError)
    expect(err).toMatchObject({ code: 'EBADF', kind: 'invalid-argument', syscall: 'flock' })
    await expect(lockFile(-1, 'shared', { wait: false })).rejects.toBeInstanceOf(NativeArgumentError)
  })
})
