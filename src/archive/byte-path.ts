/**
 * Paths as byte strings. Layer file names are bytes, not text (a tar may carry Latin-1 or
 * invalid UTF-8 names), so the archive module keeps every path as a *byte string*: a JS
 * string with one char per byte (Latin-1 decoding, `buf.toString('latin1')`). It round-trips
 * exactly, sorts in byte order with `<`, and serves as a Map key; it turns back into bytes
 * with `Buffer.from(s, 'latin1')` whenever it reaches the filesystem.
 */
import { Buffer } from 'node:buffer'

const NON_ASCII = /[^\x00-\x7f]/

/**
 * The form of a byte-string path that node:fs and the native module accept: the string
 * itself when it is ASCII (the common case, and cheaper), else its bytes. A non-ASCII string
 * must not reach node:fs, which would encode it as UTF-8 and change the name.
 */
export function fsPath(bytes: string): string | Buffer {
  return NON_ASCII.test(bytes) ? Buffer.from(bytes, 'latin1') : bytes
}

/** The byte string of a path Node gave as text (UTF-8), e.g. a caller's target directory. */
export function bytesOfText(text: string): string {
  return NON_ASCII.test(text) ? Buffer.from(text, 'utf8').toString('latin1') : text
}

/** `parent/name`, where the root is `''`. */
export function joinRel(parent: string, name: string): string {
  return parent === '' ? name : `${parent}/${name}`
}

/** The parent of a relative path (`''` for a top-level name). */
export function parentRel(rel: string): string {
  const i = rel.lastIndexOf('/')
  return i < 0 ? '' : rel.slice(0, i)
}

/** The last component of a relative path. */
export function baseRel(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1)
}

/** The bytes of a change path (a byte string, see `Change.path`). */
export function changePathBytes(path: string): Buffer {
  return Buffer.from(path, 'latin1')
}

/** The byte-string form of a path given as bytes, e.g. to build a `Change` by hand. */
export function changePathFromBytes(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')
}
