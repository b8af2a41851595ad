/**
 * Test helpers of the archive tests: crafting small tars with tar-stream's packer (names are
 * written exactly as given, hostile ones included), temp directories cleaned after each test,
 * and GNU tar invocations.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import tarStream from 'tar-stream'
import { afterEach } from 'vitest'
import { applyTar } from '../../src/archive/index.js'
import type { ApplyOptions, ApplyResult } from '../../src/archive/index.js'

/** One member to craft; defaults: a regular file, mode 0644, owner 0:0, mtime 2020-01-01. */
export interface CraftEntry {
  readonly name: string
  readonly type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo'
  readonly content?: string | Buffer
  readonly mode?: number
  readonly uid?: number
  readonly gid?: number
  readonly mtime?: Date
  readonly linkname?: string
  readonly devmajor?: number
  readonly devminor?: number
  /** Extra PAX records (text values only: tar-stream writes them as UTF-8). */
  readonly pax?: Record<string, string>
}

export const DEFAULT_MTIME = new Date('2020-01-01T00:00:00Z')

/** A tar of `entries`, made by tar-stream's `pack()` (ustar, PAX headers when needed). */
export async function craftTar(entries: readonly CraftEntry[]): Promise<Buffer> {
  const pack = tarStream.pack()
  const chunks: Buffer[] = []
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => {
      chunks.push(c as Buffer)
    })
    pack.on('end', resolve)
    pack.on('error', reject)
  })
  for (const e of entries) {
    const type = e.type ?? 'file'
    const content = e.content === undefined ? undefined : Buffer.from(e.content)
    const header: Partial<tarStream.Header> & { name: string } = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? DEFAULT_MTIME,
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.devmajor !== undefined ? { devmajor: e.devmajor, devminor: e.devminor ?? 0 } : {}),
      ...(e.pax !== undefined ? { pax: e.pax } : {}),
    }
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve())
      // Header-only types take an empty body too (tar-stream checks it is empty).
      pack.entry(header, type === 'file' ? (content ?? Buffer.alloc(0)) : Buffer.alloc(0), cb)
    })
  }
  pack.finalize()
  await done
  return Buffer.concat(chunks)
}

/** Applies a tar held in memory, fed in 321-byte slices to cross every block boundary. */
export function applyBuffer(tar: Buffer, target: string, options: ApplyOptions): Promise<ApplyResult> {
  const slices: Buffer[] = []
  for (let i = 0; i < tar.length; i += 321) slices.push(tar.subarray(i, i + 321))
  return applyTar(Readable.from(slices), target, options)
}

/** Registers an afterEach that removes every directory `tempDir()` made during the test. */
export function useTempDirs(prefix = 'layerstore-archive-'): (name?: string) => string {
  const made: string[] = []
  afterEach(() => {
    for (const dir of made.splice(0)) {
      try {
        fs.rmSync(dir, { recursive: true, force: true })
      } catch {
        // Node's rmSync recurses once per level and overflows the stack on very deep trees.
        spawnSync('rm', ['-rf', '--one-file-system', dir])
      }
    }
  })
  return (name?: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
    made.push(dir)
    if (name === undefined) return dir
    const sub = path.join(dir, name)
    fs.mkdirSync(sub)
    return sub
  }
}

/** Runs GNU tar with `args`; returns its exit status and stderr. UTF-8 locale for names. */
export function gnuTar(args: readonly string[], cwd?: string): { status: number; stderr: string } {
  const res = spawnSync('tar', args, { cwd, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C.UTF-8' } })
  if (res.error) throw res.error
  return { status: res.status ?? -1, stderr: res.stderr }
}

/** True when running as root (mknod, chown and trusted.* xattrs need it). */
export const isRoot = process.getuid?.() === 0
