/**
 * Test helpers for the disassembler: run it over bytes with an in-memory sink, collect every
 * member's stored content, and replay entries + contents into the original bytes.
 */
import { gunzipSync } from 'node:zlib'
import { readFileSync } from 'node:fs'
import { disassemble, type DisassembleOptions } from '../../src/tarsplit/disassemble.js'
import type { EntryInput } from '../../src/tarsplit/entry.js'
import type { TarHeader, TarMember } from '../../src/tarsplit/tar-header.js'

/** A member as collected: its header and the bytes its content yielded. */
export interface CollectedMember {
  readonly header: TarHeader
  readonly content: Buffer
}

export interface Collected {
  readonly entries: EntryInput[]
  readonly members: CollectedMember[]
}

/** Yields `data` in slices of `size` bytes (fresh views, like a stream). */
export async function* slices(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size)
}

/** Disassembles `data` fed in `chunk`-byte slices; reads every member's content. */
export async function collect(
  data: Buffer,
  chunk = 65536,
  options: Partial<DisassembleOptions> & { readContent?: boolean } = {},
): Promise<Collected> {
  const entries: EntryInput[] = []
  const sink = options.sink ?? { add: (e: EntryInput) => void entries.push(e) }
  const members: CollectedMember[] = []
  for await (const m of disassemble(slices(data, chunk), { ...options, sink })) {
    const parts: Buffer[] = []
    if (options.readContent !== false) for await (const b of m.content) parts.push(Buffer.from(b))
    members.push({ header: m.header, content: Buffer.concat(parts) })
  }
  return { entries, members }
}

/**
 * Rebuilds the archive from entries and the members' stored contents, the way a reassembler
 * with a perfect getter would: segments verbatim, each F entry with size > 0 replaced by the
 * stored bytes of the next member that has content (dense: the file; sparse: the extents).
 */
export function replay({ entries, members }: Collected): Buffer {
  // Only file members have content in F entries; other data (dumpdirs…) is in segments.
  const withContent = members.filter((m) => m.header.size > 0 && m.header.type === 'file')
  const out: Buffer[] = []
  let next = 0
  for (const e of entries) {
    if (e.type === 2) {
      if (e.payload) out.push(e.payload)
    } else if (e.size > 0) {
      const m = withContent[next++]
      if (m === undefined) throw new Error('more file entries than members with content')
      out.push(m.content)
    }
  }
  return Buffer.concat(out)
}

const CORPUS = new URL('../fixtures/tar-corpus/', import.meta.url)

/** One MANIFEST.tsv row. */
export interface CorpusFile {
  readonly file: string
  readonly expect: 'valid' | 'invalid'
  readonly format: string
  readonly readers: string
  readonly entries: number
}

export function corpusManifest(): CorpusFile[] {
  const lines = readFileSync(new URL('MANIFEST.tsv', CORPUS), 'utf8').trim().split('\n')
  const head = lines[0]!.split('\t')
  const col = (name: string): number => head.indexOf(name)
  return lines.slice(1).map((line) => {
    const f = line.split('\t')
    return {
      file: f[col('file')]!,
      expect: f[col('expect')] as 'valid' | 'invalid',
      format: f[col('format')]!,
      readers: f[col('readers')]!,
      entries: Number(f[col('entries')] || 0),
    }
  })
}

/** The tar bytes of a corpus file (gunzipped when stored compressed). */
export function corpusBytes(file: string): Buffer {
  const raw = readFileSync(new URL(file, CORPUS))
  return raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw
}

/** The path of a corpus file on disk. */
export function corpusPath(file: string): string {
  return new URL(file, CORPUS).pathname
}

/** A member's file as extracted from its stored bytes: sparse extents placed at their offsets in zeros. */
export function denseContent(m: TarMember, stored: Buffer): Buffer {
  const sparse = m.header.sparse
  if (sparse === undefined) return stored
  const out = Buffer.alloc(sparse.realSize)
  let at = 0
  for (const e of sparse.map) {
    stored.copy(out, e.offset, at, at + e.length)
    at += e.length
  }
  return out
}
