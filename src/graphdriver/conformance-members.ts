/**
 * Layer content for the conformance suite: tar members built in memory (no tar bytes needed
 * to feed `applyDiff`), and a reader that turns a driver's `diff` stream back into members.
 */
import type { Readable } from 'node:stream'
import { disassemble } from '../tarsplit/index.js'
import type { TarHeader, TarMember, TarTime, TarType } from '../tarsplit/index.js'

/** One member to build; only `name` is required (a regular file by default). */
export interface MemberSpec {
  /** Path inside the layer, without a leading slash; a trailing slash is added for dirs. */
  readonly name: string
  readonly type?: Extract<TarType, 'file' | 'directory' | 'symlink' | 'hardlink' | 'char-device' | 'block-device' | 'fifo'>
  /** File content. Default empty. */
  readonly content?: string | Buffer
  /** Permission bits (07777). Default 0644 for files, 0755 for dirs, 0777 for symlinks. */
  readonly mode?: number
  readonly uid?: number
  readonly gid?: number
  /** Default 2001-09-09T01:46:40Z plus 123456789 ns (sub-second on purpose). */
  readonly mtime?: TarTime
  /** Symlink target, or the hardlink's target member name. */
  readonly linkname?: string
  readonly devmajor?: number
  readonly devminor?: number
  /** Extended attributes, name → value. */
  readonly xattrs?: Readonly<Record<string, string | Buffer>>
}

/** A fixed time with a sub-second part, so that second-truncating code paths show. */
export const DEFAULT_MTIME: TarTime = Object.freeze({ sec: 1_000_000_000, nsec: 123_456_789 })

const TYPEFLAGS: Readonly<Record<NonNullable<MemberSpec['type']>, number>> = {
  file: 0x30,
  hardlink: 0x31,
  symlink: 0x32,
  'char-device': 0x33,
  'block-device': 0x34,
  directory: 0x35,
  fifo: 0x36,
}

/** Builds one in-memory member (PAX format, numeric owners). */
export function member(spec: MemberSpec): TarMember {
  const type = spec.type ?? 'file'
  const content = type === 'file' ? toBuffer(spec.content ?? '') : Buffer.alloc(0)
  const defaultMode = type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644
  const name = type === 'directory' && !spec.name.endsWith('/') ? `${spec.name}/` : spec.name
  const xattrs = new Map(Object.entries(spec.xattrs ?? {}).map(([k, v]) => [k, toBuffer(v)] as const))
  const header: TarHeader = Object.freeze({
    name: Buffer.from(name),
    type,
    typeflag: TYPEFLAGS[type],
    mode: spec.mode ?? defaultMode,
    uid: spec.uid ?? 0,
    gid: spec.gid ?? 0,
    uname: '',
    gname: '',
    size: content.length,
    mtime: spec.mtime ?? DEFAULT_MTIME,
    linkname: Buffer.from(spec.linkname ?? ''),
    devmajor: spec.devmajor ?? 0,
    devminor: spec.devminor ?? 0,
    pax: new Map(),
    xattrs,
    format: 'pax',
  })
  return Object.freeze({ header, content: once(content) })
}

/** Members from specs, as the async iterable `applyDiff` takes. */
export async function* members(specs: readonly MemberSpec[]): AsyncGenerator<TarMember> {
  for (const spec of specs) yield member(spec)
}

/** A whiteout of `path` (AUFS format): `dir/.wh.name`. */
export function whiteout(path: string): MemberSpec {
  const slash = path.lastIndexOf('/')
  return { name: `${path.slice(0, slash + 1)}.wh.${path.slice(slash + 1)}` }
}

/** The opaque marker of directory `dir`: `dir/.wh..wh..opq`. */
export function opaque(dir: string): MemberSpec {
  return { name: `${dir}/.wh..wh..opq` }
}

/** A member read back from a tar, with its content buffered (suite-sized tars only). */
export interface ReadMember {
  readonly header: TarHeader
  readonly content: Buffer
}

/** Reads a whole tar stream (e.g. a driver's `diff`) into members. */
export async function readTar(stream: Readable | AsyncIterable<Uint8Array>): Promise<ReadMember[]> {
  const out: ReadMember[] = []
  for await (const m of disassemble(stream as AsyncIterable<Uint8Array>, { sink: { add() {} } })) {
    if (m.header.type === 'pax-global') continue
    const chunks: Buffer[] = []
    for await (const c of m.content) chunks.push(Buffer.from(c))
    out.push({ header: m.header, content: Buffer.concat(chunks) })
  }
  return out
}

/** Members read with {@link readTar}, replayed as `applyDiff` input. */
export async function* replay(list: readonly ReadMember[]): AsyncGenerator<TarMember> {
  for (const m of list) yield { header: m.header, content: once(m.content) }
}

/** Member names of a read tar, as strings (latin1 of the raw bytes). */
export function memberNames(list: readonly ReadMember[]): string[] {
  return list.map((m) => m.header.name.toString('latin1'))
}

function once(data: Buffer): AsyncIterable<Buffer> {
  return {
    async *[Symbol.asyncIterator]() {
      if (data.length > 0) yield data
    },
  }
}

function toBuffer(v: string | Buffer): Buffer {
  return typeof v === 'string' ? Buffer.from(v) : v
}
