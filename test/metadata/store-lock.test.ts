import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hasCode, isKind } from '../../src/errors.js'
import { LockNotHeldError, StoreLock, StoreLockedError } from '../../src/metadata/index.js'
import type { StoreLockHandle } from '../../src/metadata/index.js'
import { buildChild, cleanupTemps, makeTemp, removeChild, startChild } from './helpers.js'
import type { RunningChild } from './helpers.js'

const children: RunningChild[] = []
beforeAll(buildChild)
afterAll(removeChild)
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill()
    await c.done
  }
  await cleanupTemps()
})

async function lockPath(): Promise<string> {
  return join(await makeTemp(), 'layerstore.lock')
}

function child(path: string, lockMode: 'shared' | 'exclusive'): RunningChild {
  const c = startChild({ mode: 'lock', path, lockMode })
  children.push(c)
  return c
}

/** Resolves to the handle, or to 'pending' if it is not granted within `ms`. */
async function within<T>(p: Promise<T>, ms = 150): Promise<T | 'pending'> {
  return Promise.race([p, sleep(ms).then(() => 'pending' as const)])
}

describe('StoreLock across processes', () => {
  it('a child holding it exclusively blocks us (typed locked error); SIGKILL releases it', async () => {
    const path = await lockPath()
    const holder = child(path, 'exclusive')
    await holder.waitFor('locked')
    const lock = new StoreLock(path)
    for (const mode of ['shared', 'exclusive'] as const) {
      const err = await (mode === 'shared' ? lock.shared({ wait: false }) : lock.exclusive({ wait: false })).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(StoreLockedError)
      expect(isKind(err, 'locked')).toBe(true)
      expect(hasCode(err, 'ERR_STORE_LOCKED')).toBe(true)
      expect((err as StoreLockedError).path).toBe(path)
    }
    const waiting = lock.exclusive()
    expect(await within(waiting)).toBe('pending')
    holder.kill('SIGKILL')
    expect((await holder.done).signal).toBe('SIGKILL')
    const handle = await waiting
    expect(handle.mode).toBe('exclusive')
    await handle.release()
  })

  it('shared holders in two processes coexist; an exclusive one waits for both', async () => {
    const path = await lockPath()
    const reader = child(path, 'shared')
    await reader.waitFor('locked')
    const lock = new StoreLock(path)
    const mine = await lock.shared({ wait: false })
    await expect(lock.exclusive({ wait: false })).rejects.toBeInstanceOf(StoreLockedError)
    await mine.release()
    // The other process still reads: an exclusive lock from a third party must wait.
    const other = new StoreLock(path)
    await expect(other.exclusive({ wait: false })).rejects.toBeInstanceOf(StoreLockedError)
    reader.kill()
    await reader.done
    await (await other.exclusive({ wait: false })).release()
  })

  it('a child cannot take it while we hold it exclusively', async () => {
    const path = await lockPath()
    const lock = new StoreLock(path)
    const handle = await lock.exclusive()
    const c = child(path, 'shared')
    expect(await within(c.waitFor('locked'), 400)).toBe('pending')
    await handle.release()
    await c.waitFor('locked')
  })
})

describe('StoreLock within one process', () => {
  it('an aborted wait gives up, in the in-process queue and at the kernel', async () => {
    const path = await lockPath()
    const lock = new StoreLock(path)
    const held = await lock.exclusive()
    const queued = new AbortController()
    const w1 = lock.exclusive({ signal: queued.signal })
    queued.abort()
    await expect(w1).rejects.toMatchObject({ name: 'AbortError' })
    await held.release()
    expect(lock.state.holders).toBe(0)

    const holder = child(path, 'exclusive')
    await holder.waitFor('locked')
    const atKernel = new AbortController()
    const w2 = lock.shared({ signal: atKernel.signal })
    await sleep(50)
    atKernel.abort()
    await expect(w2).rejects.toMatchObject({ name: 'AbortError' })
    holder.kill()
    await holder.done
    await (await lock.exclusive({ wait: false })).release()
  })

  it('two exclusive holders serialise, on one StoreLock and on two', async () => {
    const path = await lockPath()
    for (const [a, b] of [
      [new StoreLock(path), undefined],
      [new StoreLock(path), new StoreLock(path)],
    ] as const) {
      const first = await a.exclusive()
      const second = (b ?? a).exclusive()
      expect(await within(second)).toBe('pending')
      await expect((b ?? a).exclusive({ wait: false })).rejects.toBeInstanceOf(StoreLockedError)
      await first.release()
      await (await second).release()
    }
  })

  it('shared holders coexist; a waiting exclusive holder is not overtaken by later shared ones', async () => {
    const lock = new StoreLock(await lockPath())
    const r1 = await lock.shared()
    const r2 = await lock.shared({ wait: false })
    expect(lock.state).toEqual({ holders: 2, mode: 'shared' })
    const order: string[] = []
    const w = lock.exclusive().then((h) => {
      order.push('writer')
      return h
    })
    const r3 = lock.shared().then((h) => {
      order.push('reader')
      return h
    })
    await expect(lock.shared({ wait: false })).rejects.toBeInstanceOf(StoreLockedError)
    expect(await within(w)).toBe('pending')
    await r1.release()
    await r2.release()
    const writer = await w
    expect(await within(r3)).toBe('pending')
    await writer.release()
    await (await r3).release()
    expect(order).toEqual(['writer', 'reader'])
    expect(lock.state).toEqual({ holders: 0, mode: undefined })
  })

  it('exclusive sections never overlap under contention', async () => {
    const lock = new StoreLock(await lockPath())
    let inside = 0
    let maxInside = 0
    let readers = 0
    let maxReaders = 0
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        if (i % 3 === 0) {
          await lock.withExclusive(async () => {
            inside++
            maxInside = Math.max(maxInside, inside + readers)
            await sleep(1)
            inside--
          })
        } else {
          await lock.withShared(async () => {
            readers++
            maxReaders = Math.max(maxReaders, readers)
            expect(inside).toBe(0)
            await sleep(1)
            readers--
          })
        }
      }),
    )
    expect(maxInside).toBe(1)
    expect(maxReaders).toBeGreaterThan(1)
  })

  it('a second release is a typed error; withExclusive releases when fn throws', async () => {
    const lock = new StoreLock(await lockPath())
    const h: StoreLockHandle = await lock.exclusive()
    expect(h.held).toBe(true)
    await h.release()
    expect(h.held).toBe(false)
    await expect(h.release()).rejects.toBeInstanceOf(LockNotHeldError)
    await expect(lock.withExclusive(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    await (await lock.exclusive({ wait: false })).release()
  })
})
