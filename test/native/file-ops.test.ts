import { lstat, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { closeSync, constants, openSync, readSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  copyFileRange,
  devMajor,
  devMinor,
  ficlone,
  ficloneSync,
  futimens,
  makedev,
  mknod,
  NativeArgumentError,
  readMountInfo,
  renameat2,
  SyscallError,
  syncfs,
  utimensat,
} from '../../src/native/index.js'

const isRoot = process.getuid?.() === 0
if (!isRoot) console.warn('skipping device-node tests: mknod of devices needs root (CAP_MKNOD)')

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}

/** The filesystem type holding `path`: the mount with the longest matching mount point. */
async function fsTypeOf(path: string): Promise<string> {
  const mounts = await readMountInfo()
  const holders = mounts.filter((m) => path === m.mountPoint || path.startsWith(m.mountPoint.replace(/\/?$/, '/')))
  holders.sort((a, b) => b.mountPoint.length - a.mountPoint.length)
  return holders[0]?.fstype ?? 'unknown'
}

describe('makedev', () => {
  it('encodes as glibc does, also for numbers past 12/20 bits', () => {
    expect(makedev(0, 0)).toBe(0n)
    expect(makedev(8, 1)).toBe(0x801n)
    expect(makedev(0x12345, 0x6789a)).toBe(0x1200_0678_3459an) // from glibc's makedev, compiled
    for (const [ma, mi] of [[0, 0], [1, 3], [259, 0x100000], [0xffffffff, 0xffffffff], [4095, 255]] as const) {
      expect([devMajor(makedev(ma, mi)), devMinor(makedev(ma, mi))]).toEqual([ma, mi])
    }
  })
})

describe('file ops', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'native-fileops-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it.skipIf(!isRoot)('makes a whiteout (char 0/0), a block device and a big-numbered char device', async () => {
    const whiteout = join(dir, 'wh')
    mknod(whiteout, constants.S_IFCHR | 0o600, 0, 0)
    const st = await lstat(whiteout)
    expect(st.isCharacterDevice()).toBe(true)
    expect(st.rdev).toBe(0)
    mknod(join(dir, 'blk'), constants.S_IFBLK | 0o600, 8, 1)
    const blk = await lstat(join(dir, 'blk'))
    expect(blk.isBlockDevice()).toBe(true)
    expect([devMajor(blk.rdev), devMinor(blk.rdev)]).toEqual([8, 1])
    mknod(join(dir, 'big'), constants.S_IFCHR | 0o600, 4000, 300000)
    const big = await lstat(join(dir, 'big'), { bigint: true })
    expect([devMajor(big.rdev), devMinor(big.rdev)]).toEqual([4000, 300000])
  })

  it('makes a fifo and fails typed on an existing path', async () => {
    const fifo = join(dir, 'fifo')
    mknod(fifo, constants.S_IFIFO | 0o644)
    expect((await lstat(fifo)).isFIFO()).toBe(true)
    const err = thrown(() => mknod(fifo, constants.S_IFIFO | 0o644))
    expect(err).toBeInstanceOf(SyscallError)
    expect(err).toMatchObject({ code: 'EEXIST', kind: 'already-exists', syscall: 'mknod', path: fifo })
    expect(thrown(() => mknod(join(dir, 'no', 'such'), constants.S_IFIFO))).toMatchObject({ kind: 'not-found' })
  })

  it('sets times with exact nanoseconds, and a symlink without following it', async () => {
    const file = join(dir, 'file')
    await writeFile(file, 'x')
    utimensat(file, { sec: 1_234_567_890, nsec: 123_456_789 }, { sec: -5, nsec: 999_999_999 })
    const st = await stat(file, { bigint: true })
    expect(st.atimeNs).toBe(1_234_567_890_123_456_789n)
    expect(st.mtimeNs).toBe(-5_000_000_000n + 999_999_999n)

    const link = join(dir, 'link')
    await symlink(file, link)
    utimensat(link, 'omit', { sec: 42n, nsec: 7 }, { noFollow: true })
    expect((await lstat(link, { bigint: true })).mtimeNs).toBe(42_000_000_007n)
    expect((await stat(file, { bigint: true })).mtimeNs).toBe(st.mtimeNs) // target untouched

    const before = Date.now()
    utimensat(file, 'now', 'omit')
    const after = await stat(file, { bigint: true })
    expect(Number(after.atimeNs / 1_000_000n)).toBeGreaterThanOrEqual(before - 1000)
    expect(after.mtimeNs).toBe(st.mtimeNs)

    const fd = openSync(file, 'r')
    try {
      futimens(fd, { sec: 1, nsec: 1 }, { sec: 2, nsec: 2 })
    } finally {
      closeSync(fd)
    }
    expect((await stat(file, { bigint: true })).mtimeNs).toBe(2_000_000_002n)

    expect(thrown(() => utimensat(join(dir, 'missing'), 'now', 'now'))).toMatchObject({ code: 'ENOENT', kind: 'not-found' })
    expect(thrown(() => utimensat(file, { sec: 0, nsec: 1e9 }, 'now'))).toBeInstanceOf(NativeArgumentError)
  })

  it('renames with noreplace (EEXIST) and exchange', async () => {
    const a = join(dir, 'a')
    const b = join(dir, 'b')
    await writeFile(a, 'A')
    await writeFile(b, 'B')
    const err = thrown(() => renameat2(a, b, 'noreplace'))
    expect(err).toMatchObject({ code: 'EEXIST', kind: 'already-exists', syscall: 'renameat2', path: a, dest: b })
    renameat2(a, b, 'exchange')
    expect(await readFile(a, 'utf8')).toBe('B')
    expect(await readFile(b, 'utf8')).toBe('A')
    renameat2(a, join(dir, 'c'), 'noreplace')
    expect(await readFile(join(dir, 'c'), 'utf8')).toBe('B')
    expect(thrown(() => renameat2(a, b, 'exchange'))).toMatchObject({ code: 'ENOENT', kind: 'not-found' })
  })

  it('syncs a filesystem, and fails typed on a bad fd', async () => {
    const fd = openSync(dir, 'r')
    try {
      await syncfs(fd)
    } finally {
      closeSync(fd)
    }
    // Not the closed fd: the runner's own I/O may reuse its number at once. This one is never open.
    await expect(syncfs(0x7ffffff0)).rejects.toMatchObject({ code: 'EBADF', kind: 'invalid-argument', syscall: 'syncfs' })
  })

  it('copies ranges in the kernel; ficlone is not-supported on ext4/tmpfs', async () => {
    const src = join(dir, 'src')
    const dst = join(dir, 'dst')
    const data = Buffer.alloc(256 * 1024)
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff
    await writeFile(src, data)
    const inFd = openSync(src, 'r')
    const outFd = openSync(dst, 'w+')
    try {
      let copied = 0
      while (copied < data.length) {
        const n = await copyFileRange(inFd, copied, outFd, copied, data.length - copied)
        expect(n).toBeGreaterThan(0)
        copied += n
      }
      expect(await copyFileRange(inFd, data.length, outFd, data.length, 10)).toBe(0) // end of file
      expect((await readFile(dst)).equals(data)).toBe(true)
      // Null offsets use and advance the fds' own positions.
      const head = Buffer.alloc(4)
      readSync(inFd, head, 0, 4, null)
      expect(await copyFileRange(inFd, null, outFd, null, 4)).toBe(4)

      const clone = await ficlone(outFd, inFd).catch((e: unknown) => e)
      if (['ext4', 'tmpfs', 'overlay'].includes(await fsTypeOf(dir))) {
        expect(clone).toBeInstanceOf(SyscallError)
        expect(clone).toMatchObject({ code: 'EOPNOTSUPP', kind: 'not-supported', syscall: 'ioctl' })
        // The same answer on this thread, from the synchronous call.
        let syncClone: unknown
        try {
          ficloneSync(outFd, inFd)
        } catch (err) {
          syncClone = err
        }
        expect(syncClone).toMatchObject({ code: 'EOPNOTSUPP', kind: 'not-supported', syscall: 'ioctl' })
      }
      expect(() => ficloneSync(-1, inFd)).toThrow(NativeArgumentError)
      await expect(copyFileRange(-1, 0, outFd, 0, 1)).rejects.toBeInstanceOf(NativeArgumentError)
      await expect(copyFileRange(inFd, 0, inFd + 1000, 0, 1)).rejects.toMatchObject({ code: 'EBADF' })
    } finally {
      closeSync(inFd)
      closeSync(outFd)
    }
  })
})
