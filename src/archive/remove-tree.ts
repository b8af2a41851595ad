/**
 * Recursive removal that never follows a symlink and handles byte-string names (Node's
 * `fs.rmSync` joins names as UTF-8 text, which breaks Latin-1 names).
 */
import fs from 'node:fs'
import { fsPath, joinRel } from './byte-path.js'

/**
 * Removes `abs` (a byte-string path) and everything under it; a missing path is fine.
 * Sync, like the rest of the apply's per-member calls (see apply.ts).
 *
 * @param rel the same path relative to the apply root, passed back to `onRemoved`
 * @param onRemoved called with each path removed (children before their directory)
 * @returns false when nothing was there
 */
export function removeTree(abs: string, rel: string, onRemoved?: (rel: string) => void): boolean {
  const p = fsPath(abs)
  try {
    fs.unlinkSync(p)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return false
    // unlink(2) of a directory is EISDIR on Linux (EPERM elsewhere).
    if (code !== 'EISDIR' && code !== 'EPERM') throw err
    removeChildren(abs, rel, onRemoved)
    fs.rmdirSync(p)
  }
  onRemoved?.(rel)
  return true
}

/** Removes everything inside the directory `abs`, keeping the directory. */
export function removeChildren(abs: string, rel: string, onRemoved?: (rel: string) => void): void {
  const names = fs.readdirSync(fsPath(abs), { encoding: 'latin1', withFileTypes: true })
  for (const d of names) {
    const childAbs = `${abs}/${d.name}`
    const childRel = joinRel(rel, d.name)
    if (d.isDirectory()) {
      removeChildren(childAbs, childRel, onRemoved)
      fs.rmdirSync(fsPath(childAbs))
    } else {
      fs.unlinkSync(fsPath(childAbs))
    }
    onRemoved?.(childRel)
  }
}
