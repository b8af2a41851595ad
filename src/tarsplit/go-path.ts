/**
 * Go's `path.Clean` (what `filepath.Clean` does on Unix) on raw bytes. tar-split uses it to
 * detect duplicate members, so ours must agree on every input, including non-UTF-8 names:
 * Node's `path.posix.normalize` does not (it keeps trailing slashes and works on strings).
 */

const SLASH = 0x2f
const DOT = 0x2e

/**
 * Returns the shortest path equivalent to `name` by Go's lexical rules: runs of `/` become one,
 * `.` elements go, each `..` removes the non-`..` element before it, `..` right after the root
 * of an absolute path goes, a trailing `/` goes (except for `/` itself), and an empty result
 * is `.`. Bytes other than `/` and `.` are opaque. Pure; never touches the filesystem.
 *
 * @example `goClean(Buffer.from('./a//b/../c/'))` → `a/c`
 */
export function goClean(name: Uint8Array): Buffer {
  const n = name.length
  if (n === 0) return Buffer.from('.')
  const rooted = name[0] === SLASH
  // The result is never longer than the input (Go's lazybuf relies on the same fact).
  const out = Buffer.allocUnsafe(n)
  let w = 0
  let r = 0
  // `dotdot` marks where `..` may no longer backtrack (after the root or a kept `..`).
  let dotdot = 0
  if (rooted) {
    out[w++] = SLASH
    r = 1
    dotdot = 1
  }
  while (r < n) {
    const c = name[r]!
    if (c === SLASH) {
      r++
    } else if (c === DOT && (r + 1 === n || name[r + 1] === SLASH)) {
      r++
    } else if (c === DOT && name[r + 1] === DOT && (r + 2 === n || name[r + 2] === SLASH)) {
      r += 2
      if (w > dotdot) {
        w--
        while (w > dotdot && out[w] !== SLASH) w--
      } else if (!rooted) {
        if (w > 0) out[w++] = SLASH
        out[w++] = DOT
        out[w++] = DOT
        dotdot = w
      }
    } else {
      if ((rooted && w !== 1) || (!rooted && w !== 0)) out[w++] = SLASH
      while (r < n && name[r] !== SLASH) out[w++] = name[r++]!
    }
  }
  if (w === 0) return Buffer.from('.')
  return out.subarray(0, w)
}

/**
 * A string key for `goClean(name)`, one character per byte (latin1), for use in a `Set`:
 * binary-safe, so distinct byte strings never collide.
 */
export function cleanKey(name: Uint8Array): string {
  return goClean(name).toString('latin1')
}
