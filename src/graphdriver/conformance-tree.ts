/**
 * Tree snapshots for the conformance suite: everything a layer must preserve, per path,
 * in a form two trees can be compared by and a failing check can print. (The suite ships to
 * plugin authors, so it cannot use the repository's test helpers.)
 */
import { createHash } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import { lstat, readdir, readFile, readlink } from 'node:fs/promises'
import { devMajor, devMinor, lgetxattr, llistxattr } from '../native/index.js'

/** What the suite records of one path. */
export interface TreeNode {
  readonly type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket'
  /** Permission bits with setuid/setgid/sticky (07777). */
  readonly mode: number
  readonly uid: number
  readonly gid: number
  /** Files: byte size and sha256 of the content; symlinks: the target. */
  readonly size?: number
  readonly sha256?: string
  readonly target?: string
  /** Devices: `major:minor`. */
  readonly rdev?: string
  /** Modification time in nanoseconds, as a decimal string. */
  readonly mtime: string
  /** xattrs, `name=hex`, sorted. */
  readonly xattrs: readonly string[]
  /** For a multiply-linked non-directory: the first path (in sorted order) of its inode. */
  readonly linkOf?: string
}

/** A snapshot: relative path (`a/b`, as latin1 of the raw bytes) → node. The root is `.`. */
export type TreeSnapshot = ReadonlyMap<string, TreeNode>

/** What to leave out of a snapshot or comparison. */
export interface SnapshotOptions {
  /** Leave directory mtimes out (they change with every entry made in the directory). */
  readonly ignoreDirTimes?: boolean
  /** Leave the root directory out entirely. */
  readonly ignoreRoot?: boolean
}

/** Snapshots the tree at `root` (which need not be writable). */
export async function snapshotTree(root: string, options: SnapshotOptions = {}): Promise<TreeSnapshot> {
  const out = new Map<string, TreeNode>()
  const inodes = new Map<string, string>()
  const rootBuf = Buffer.from(root)
  async function walk(dir: Buffer, rel: string): Promise<void> {
    const names = (await readdir(dir, { encoding: 'buffer' })).sort(Buffer.compare)
    for (const name of names) {
      const path = Buffer.concat([dir, Buffer.from('/'), name])
      const relPath = rel === '.' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`
      const node = await describe(path, relPath, inodes, options)
      out.set(relPath, node)
      if (node.type === 'dir') await walk(path, relPath)
    }
  }
  if (!options.ignoreRoot) out.set('.', await describe(rootBuf, '.', inodes, options))
  await walk(rootBuf, '.')
  return out
}

async function describe(
  path: Buffer,
  rel: string,
  inodes: Map<string, string>,
  options: SnapshotOptions,
): Promise<TreeNode> {
  const st = await lstat(path, { bigint: true })
  const fmt = Number(st.mode) & fsConstants.S_IFMT
  const type = TYPES.get(fmt) ?? 'file'
  const xattrs = llistxattr(path)
    .sort()
    .map((n) => `${n}=${lgetxattr(path, n)?.toString('hex') ?? ''}`)
  const base = {
    type,
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: type === 'dir' && options.ignoreDirTimes ? '-' : st.mtimeNs.toString(),
    xattrs,
  }
  let linkOf: string | undefined
  if (type !== 'dir' && st.nlink > 1n) {
    const key = `${st.dev}:${st.ino}`
    const first = inodes.get(key)
    if (first === undefined) inodes.set(key, rel)
    else linkOf = first
  }
  const extra: Partial<Record<keyof TreeNode, unknown>> = {}
  if (linkOf !== undefined) extra.linkOf = linkOf
  if (type === 'file') {
    extra.size = Number(st.size)
    extra.sha256 = createHash('sha256').update(await readFile(path)).digest('hex')
  } else if (type === 'symlink') {
    extra.target = (await readlink(path, { encoding: 'buffer' })).toString('latin1')
  } else if (type === 'char' || type === 'block') {
    extra.rdev = `${devMajor(st.rdev)}:${devMinor(st.rdev)}`
  }
  return Object.freeze({ ...base, ...extra }) as TreeNode
}

const TYPES = new Map<number, TreeNode['type']>([
  [fsConstants.S_IFREG, 'file'],
  [fsConstants.S_IFDIR, 'dir'],
  [fsConstants.S_IFLNK, 'symlink'],
  [fsConstants.S_IFCHR, 'char'],
  [fsConstants.S_IFBLK, 'block'],
  [fsConstants.S_IFIFO, 'fifo'],
  [fsConstants.S_IFSOCK, 'socket'],
])

/** The differences between two snapshots, one readable line each; empty when equal. */
export function diffTrees(expected: TreeSnapshot, actual: TreeSnapshot): string[] {
  const lines: string[] = []
  for (const [path, want] of expected) {
    const got = actual.get(path)
    if (!got) {
      lines.push(`missing: ${path} (${want.type})`)
      continue
    }
    for (const key of new Set([...Object.keys(want), ...Object.keys(got)]) as Set<keyof TreeNode>) {
      const a = JSON.stringify(want[key])
      const b = JSON.stringify(got[key])
      if (a !== b) lines.push(`${path}: ${key} expected ${a}, got ${b}`)
    }
  }
  for (const [path, got] of actual) if (!expected.has(path)) lines.push(`unexpected: ${path} (${got.type})`)
  return lines
}

/** A listing of a snapshot, one path per line (`ls -l`-like), for failure output. */
export function formatTree(tree: TreeSnapshot): string {
  const lines: string[] = []
  for (const [path, n] of tree) {
    const what = n.sha256 ? `${n.size}B ${n.sha256.slice(0, 12)}` : (n.target ?? n.rdev ?? '')
    lines.push(
      `${n.type.padEnd(7)} ${n.mode.toString(8).padStart(4, '0')} ${n.uid}:${n.gid} ${path}` +
        (what ? ` ${what}` : '') +
        (n.linkOf ? ` => ${n.linkOf}` : '') +
        (n.xattrs.length ? ` [${n.xattrs.join(' ')}]` : ''),
    )
  }
  return lines.join('\n')
}

/** Just the relative paths of a snapshot, sorted, without the root. */
export function treePaths(tree: TreeSnapshot): string[] {
  return [...tree.keys()].filter((p) => p !== '.').sort()
}
