/**
 * Tree snapshots and their differences, for tests that compare what an apply (or a copy, or
 * GNU tar) left on disk. A snapshot records, per path, everything a layer is made of: type,
 * permission bits, owner, size, content digest, mtime in nanoseconds, symlink target, device
 * numbers, xattrs, and which paths share an inode. Paths are byte strings (one char per
 * byte, see src/archive/byte-path.ts) relative to the root; `''` is the root itself.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { devMajor, devMinor, lgetxattr, llistxattr } from '../../src/native/index.js'

/** One path's facts. Fields that do not apply to the type are absent. */
export interface TreeEntry {
  readonly type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket'
  /** Permission bits, setuid/setgid/sticky included (mode & 07777). */
  readonly mode: number
  readonly uid: number
  readonly gid: number
  /** Regular files only. */
  readonly size?: number
  /** Regular files: sha256 hex of the content (see {@link SnapshotOptions.hashLimit}). */
  readonly sha256?: string
  /** Nanoseconds since the epoch, as a decimal string. */
  readonly mtime: string
  /** Symlinks: the target, as a byte string. */
  readonly link?: string
  /** Devices: `major:minor`. */
  readonly rdev?: string
  /** Xattrs by name, values in hex. */
  readonly xattrs: Readonly<Record<string, string>>
  /** For an inode that appears at several paths of the tree: all of them, sorted. */
  readonly hardlinks?: readonly string[]
}

/** A snapshot: path (byte string) → facts, in sorted path order. */
export type Tree = ReadonlyMap<string, TreeEntry>

/** Options of {@link snapshotTree}. */
export interface SnapshotOptions {
  /**
   * Files larger than this (bytes) are digested from their first and last MiB only, so that
   * a 60 GB sparse file does not take minutes to read. Default 256 MiB.
   */
  readonly hashLimit?: number
  /** Leave out paths for which this returns true (and everything under them). */
  readonly exclude?: (path: string) => boolean
}

const MiB = 1 << 20

/** Walks `root` (never following symlinks) and records every path under it, root included. */
export function snapshotTree(root: string, options: SnapshotOptions = {}): Tree {
  const hashLimit = options.hashLimit ?? 256 * MiB
  const entries = new Map<string, TreeEntry>()
  const inodes = new Map<string, string[]>()
  const rootBytes = Buffer.from(root)
  const walk = (rel: string): void => {
    const abs = rel === '' ? rootBytes : Buffer.concat([rootBytes, Buffer.from(`/${rel}`, 'latin1')])
    const st = fs.lstatSync(abs, { bigint: true })
    const entry = describe(abs, st, hashLimit)
    entries.set(rel, entry)
    if (entry.type !== 'dir' && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`
      const paths = inodes.get(key) ?? []
      paths.push(rel)
      inodes.set(key, paths)
    }
    if (entry.type !== 'dir') return
    const names = fs.readdirSync(abs, { encoding: 'buffer' }).map((n) => n.toString('latin1'))
    for (const name of names.sort()) {
      const child = rel === '' ? name : `${rel}/${name}`
      if (options.exclude?.(child)) continue
      walk(child)
    }
  }
  walk('')
  for (const paths of inodes.values()) {
    if (paths.length < 2) continue
    const sorted = [...paths].sort()
    for (const p of paths) entries.set(p, { ...entries.get(p)!, hardlinks: sorted })
  }
  return new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

function describe(abs: Buffer, st: fs.BigIntStats, hashLimit: number): TreeEntry {
  const base = {
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: st.mtimeNs.toString(),
    xattrs: readXattrs(abs),
  }
  if (st.isFile()) return { type: 'file', ...base, size: Number(st.size), sha256: digest(abs, Number(st.size), hashLimit) }
  if (st.isDirectory()) return { type: 'dir', ...base }
  if (st.isSymbolicLink()) return { type: 'symlink', ...base, link: fs.readlinkSync(abs, { encoding: 'buffer' }).toString('latin1') }
  const rdev = `${devMajor(st.rdev)}:${devMinor(st.rdev)}`
  if (st.isCharacterDevice()) return { type: 'char', ...base, rdev }
  if (st.isBlockDevice()) return { type: 'block', ...base, rdev }
  if (st.isFIFO()) return { type: 'fifo', ...base }
  return { type: 'socket', ...base }
}

function readXattrs(abs: Buffer): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of llistxattr(abs).sort()) {
    const value = lgetxattr(abs, name)
    if (value !== null) out[name] = value.toString('hex')
  }
  return out
}

function digest(abs: Buffer, size: number, hashLimit: number): string {
  const hash = createHash('sha256')
  const fd = fs.openSync(abs, 'r')
  try {
    const buf = Buffer.allocUnsafe(MiB)
    const read = (from: number, to: number): void => {
      for (let pos = from; pos < to; ) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, to - pos), pos)
        if (n === 0) break
        hash.update(buf.subarray(0, n))
        pos += n
      }
    }
    if (size <= hashLimit) {
      read(0, size)
      return hash.digest('hex')
    }
    read(0, MiB)
    read(size - MiB, size)
    return `partial:${hash.digest('hex')}`
  } finally {
    fs.closeSync(fd)
  }
}

/** Options of {@link diffTrees}. */
export interface DiffOptions {
  /** Fields not compared, for every path (e.g. `['mtime']`). */
  readonly ignoreFields?: readonly (keyof TreeEntry)[]
  /** Per path and field: true to not compare it (e.g. the root's attributes). */
  readonly ignore?: (path: string, field: keyof TreeEntry | 'presence') => boolean
}

const FIELDS: readonly (keyof TreeEntry)[] = [
  'type',
  'mode',
  'uid',
  'gid',
  'size',
  'sha256',
  'mtime',
  'link',
  'rdev',
  'xattrs',
  'hardlinks',
]

/**
 * The differences between two snapshots, one readable line each (`path: field a → b`,
 * `path: only in a`); empty when they match.
 */
export function diffTrees(a: Tree, b: Tree, options: DiffOptions = {}): string[] {
  const out: string[] = []
  const skip = new Set(options.ignoreFields ?? [])
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort()
  for (const path of paths) {
    const x = a.get(path)
    const y = b.get(path)
    const shown = showPath(path)
    if (x === undefined || y === undefined) {
      if (!options.ignore?.(path, 'presence')) out.push(`${shown}: only in ${x === undefined ? 'b' : 'a'}`)
      continue
    }
    for (const field of FIELDS) {
      if (skip.has(field) || options.ignore?.(path, field)) continue
      const u = show(x[field])
      const v = show(y[field])
      if (u !== v) out.push(`${shown}: ${field} ${u} → ${v}`)
    }
  }
  return out
}

/** A printable listing of a snapshot, for failure messages. */
export function formatTree(tree: Tree): string {
  return [...tree]
    .map(([path, e]) => {
      const extra = e.type === 'symlink' ? ` -> ${showPath(e.link!)}` : e.type === 'file' ? ` ${e.size}B` : e.rdev ? ` ${e.rdev}` : ''
      return `${e.type.padEnd(7)} ${e.mode.toString(8).padStart(4, '0')} ${e.uid}:${e.gid} ${showPath(path)}${extra}`
    })
    .join('\n')
}

function show(value: unknown): string {
  if (value === undefined) return '-'
  if (typeof value === 'number') return String(value)
  return JSON.stringify(value)
}

/** A byte-string path with non-printable bytes as \xNN; the root as `.`. */
export function showPath(path: string): string {
  if (path === '') return '.'
  let out = ''
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    out += c >= 0x20 && c < 0x7f ? path[i] : `\\x${c.toString(16).padStart(2, '0')}`
  }
  return out
}
