/**
 * Every file of the tar corpus (test/fixtures/tar-corpus, see its README and MANIFEST.tsv),
 * through the whole tar-split path: disassemble (JSON packer, gzip) → extract each member's
 * content as a file (sparse ones with real holes) → reassemble from that directory → the
 * same bytes. Invalid files must fail with a typed `bad-input` error and release the input;
 * files tar-split refuses for duplicate paths fail with `DuplicatePathError`. Where Go's
 * tar-split CLI is installed, our entries are compared with Go's for every valid file whose
 * members are all of the kinds where we promise Go's output.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { mkdir, open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable, pipeline } from 'node:stream'
import { promisify } from 'node:util'
import { createGunzip, gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isKindedError } from '../../src/errors.js'
import { assemble } from '../../src/tarsplit/assemble.js'
import { disassemble } from '../../src/tarsplit/disassemble.js'
import type { EntryInput } from '../../src/tarsplit/entry.js'
import { DuplicatePathError } from '../../src/tarsplit/errors.js'
import { directoryGetter, mapGetter, type FileGetter } from '../../src/tarsplit/file-getter.js'
import { JsonPacker } from '../../src/tarsplit/json-packer.js'
import { readEntries } from '../../src/tarsplit/json-unpacker.js'
import type { TarMember } from '../../src/tarsplit/tar-header.js'
import { corpusBytes, corpusManifest, corpusPath, denseContent, type CorpusFile } from './disassemble-helpers.js'

const execFileAsync = promisify(execFile)
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const manifest = corpusManifest()
const isGzip = (f: CorpusFile): boolean => {
  const head = readFileSync(corpusPath(f.file)).subarray(0, 2)
  return head[0] === 0x1f && head[1] === 0x8b
}

/** The corpus file as a stream (gunzipped when needed), and a promise that it got closed. */
function openCorpus(f: CorpusFile): { source: Readable; closed: Promise<void> } {
  const file = createReadStream(corpusPath(f.file))
  const closed = new Promise<void>((resolve) => file.once('close', () => resolve()))
  if (!isGzip(f)) return { source: file, closed }
  const gunzip = createGunzip()
  pipeline(file, gunzip, () => undefined)
  return { source: gunzip, closed }
}

/** Thrown by the extractor when a member cannot be written as a plain file under the root. */
class CannotExtract extends Error {
  constructor(what: string, cause?: unknown) {
    const shown = what.length > 60 ? `${what.slice(0, 60)}… (${what.length} bytes)` : what
    super(cause === undefined ? shown : `${shown}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`)
  }
}

/**
 * Writes each file member's content under `root` as a dense file; sparse members get their
 * extents written at their offsets and the length set by truncate, so holes stay holes (a
 * 60 GiB member costs a few KiB of disk). Names are raw bytes, kept as Buffer paths.
 */
async function extract(m: TarMember, root: string): Promise<void> {
  const parts = m.header.name
    .toString('latin1')
    .split('/')
    .filter((p) => p !== '' && p !== '.')
  if (parts.length === 0 || parts.includes('..')) throw new CannotExtract(`name ${JSON.stringify(m.header.name.toString('latin1'))}`)
  const shown = parts.join('/')
  const path = Buffer.concat([Buffer.from(root), ...parts.map((p) => Buffer.from('/' + p, 'latin1'))])
  const dir = path.subarray(0, path.lastIndexOf(0x2f))
  try {
    await mkdir(dir, { recursive: true })
  } catch (err) {
    throw new CannotExtract(`parent of ${shown}`, err)
  }
  let fh
  try {
    fh = await open(path, 'wx')
  } catch (err) {
    throw new CannotExtract(shown, err)
  }
  try {
    const sparse = m.header.sparse
    const extents = sparse?.map.filter((e) => e.length > 0) ?? []
    let ext = 0
    let left = extents[0]?.length ?? 0
    let pos = sparse !== undefined ? (extents[0]?.offset ?? 0) : 0
    for await (const chunk of m.content) {
      let done = 0
      while (done < chunk.length) {
        if (sparse !== undefined && left === 0) {
          const e = extents[++ext]!
          pos = e.offset
          left = e.length
        }
        const n = sparse !== undefined ? Math.min(left, chunk.length - done) : chunk.length - done
        await fh.write(chunk, done, n, pos)
        done += n
        pos += n
        left -= n
      }
    }
    if (sparse !== undefined) await fh.truncate(sparse.realSize)
  } finally {
    await fh.close()
  }
}

/** The logical content of a member in memory (for archives that cannot be extracted). */
async function logical(m: TarMember): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of m.content) parts.push(Buffer.from(c))
  return denseContent(m, Buffer.concat(parts))
}

interface Outcome {
  readonly json: Buffer
  readonly entries: EntryInput[]
  readonly getter: FileGetter
  /** Why the in-memory getter was used, if it was. */
  readonly inMemory?: string
}

/** Disassembles a corpus file, extracting file members to `root` (or into memory). */
async function disassembleCorpus(f: CorpusFile, root: string, inMemory: boolean): Promise<Outcome> {
  const chunks: Buffer[] = []
  const packer = new JsonPacker(new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }), { gzip: true })
  const entries: EntryInput[] = []
  const sink = { add: (e: EntryInput) => (entries.push(e), packer.add(e)) }
  const files = new Map<Buffer, Buffer>()
  const { source } = openCorpus(f)
  // As Debian's Go tar-split CLI (0.11) writes it, so that the JSON compares byte for byte.
  for await (const m of disassemble(source, { sink, emptyFinalSegment: true })) {
    if (m.header.type !== 'file' || m.header.size === 0) continue
    if (inMemory) files.set(m.header.name, await logical(m))
    else await extract(m, root)
  }
  await packer.finish()
  const json = Buffer.concat(chunks)
  return inMemory
    ? { json, entries, getter: mapGetter(files), inMemory: 'members kept in memory' }
    : { json, entries, getter: directoryGetter(root) }
}

async function reassemble(o: Outcome): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of assemble(readEntries(Readable.from([o.json])), o.getter)) parts.push(c as Buffer)
  return Buffer.concat(parts)
}

const haveGo = await execFileAsync('tar-split', ['--version']).then(
  () => true,
  () => false,
)
if (!haveGo) console.warn("corpus: Go's tar-split CLI is not installed; the comparison with Go's entries is skipped")

/** Go's metadata for a file (gunzipped JSON) and its entries in the compact form of `compact()`. */
async function goEntries(f: CorpusFile, scratch: string): Promise<{ json: Buffer; file: string; entries: string[] }> {
  let input = corpusPath(f.file)
  if (isGzip(f)) {
    input = join(scratch, 'input.tar')
    writeFileSync(input, gunzipSync(readFileSync(corpusPath(f.file))))
  }
  const file = join(scratch, 'go.json.gz')
  await execFileAsync('tar-split', ['disasm', '--no-stdout', '--output', file, input], { timeout: 60_000 })
  const json = gunzipSync(readFileSync(file))
  const entries = json
    .toString('utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: number; name?: string; name_raw?: string; size?: number; payload: string | null })
  const compacted = entries.map((e) =>
    e.type === 2
      ? `S ${e.payload}`
      : `F ${e.name_raw ?? Buffer.from(e.name ?? '').toString('base64')} ${e.size ?? 0} ${e.payload}`,
  )
  return { json, file, entries: compacted }
}

function compact(entries: EntryInput[]): string[] {
  return entries.map((e) =>
    e.type === 2 ? `S ${e.payload!.toString('base64')}` : `F ${e.name.toString('base64')} ${e.size} ${e.payload?.toString('base64') ?? null}`,
  )
}

/** Our documented deviations from Go: sparse, header-only with a size, non-file data. */
function deviates(f: CorpusFile, go: string[]): boolean {
  return (
    f.format.includes('sparse(') ||
    go.some((e) => e.startsWith('F ') && e.endsWith(' AAAAAAAAAAA=')) ||
    /gnu-dumpdir|gnu-volume-label|solaris-X|solaris-ACL|typeflag-A/.test(readManifestTags(f))
  )
}

const tagsByFile = new Map<string, string>()
function readManifestTags(f: CorpusFile): string {
  if (tagsByFile.size === 0) {
    const lines = readFileSync(corpusPath('MANIFEST.tsv'), 'utf8').trim().split('\n')
    const head = lines[0]!.split('\t')
    for (const line of lines.slice(1)) {
      const cols = line.split('\t')
      tagsByFile.set(cols[head.indexOf('file')]!, `${cols[head.indexOf('tags')]} ${cols[head.indexOf('notes')]}`)
    }
  }
  return tagsByFile.get(f.file) ?? ''
}

describe('tar corpus', () => {
  let scratch = ''
  const usedMemory: string[] = []
  let comparedWithGo = 0
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'tarsplit-corpus-'))
  })
  afterAll(() => {
    if (scratch !== '') rmSync(scratch, { recursive: true, force: true })
    if (usedMemory.length > 0) console.warn(`corpus: in-memory getter for ${usedMemory.length} file(s):\n  ${usedMemory.join('\n  ')}`)
    if (haveGo) console.warn(`corpus: ${comparedWithGo} valid files give the same JSON as Go's tar-split, byte for byte`)
  })

  it('lists every file of the folder', () => {
    expect(manifest.length).toBe(179)
    for (const f of manifest) expect(existsSync(corpusPath(f.file)), f.file).toBe(true)
  })

  for (const f of manifest) {
    const duplicate = f.readers.includes('refuses-duplicate-paths')
    const what = f.expect === 'invalid' ? 'fails with a typed error' : duplicate ? 'refuses duplicate paths' : 'round-trips byte for byte'
    it(`${f.file} ${what}`, async () => {
      const root = mkdtempSync(join(scratch, 'x-'))
      try {
        if (f.expect === 'invalid') {
          const { source, closed } = openCorpus(f)
          const err = await (async () => {
            for await (const m of disassemble(source, { sink: { add: () => undefined } })) for await (const _ of m.content);
          })().then(
            () => null,
            (e: unknown) => e,
          )
          expect(err, 'disassembly succeeded').not.toBeNull()
          expect(isKindedError(err) && err.kind === 'bad-input', String(err)).toBe(true)
          await closed // nothing left open
          return
        }
        if (duplicate) {
          // In memory: the duplicate's file would clash on disk before its entry is refused.
          const err = await disassembleCorpus(f, root, true).then(
            () => null,
            (e: unknown) => e,
          )
          expect(err).toBeInstanceOf(DuplicatePathError)
          return
        }
        let outcome: Outcome
        try {
          outcome = await disassembleCorpus(f, root, false)
        } catch (err) {
          if (!(err instanceof CannotExtract)) throw err
          usedMemory.push(`${f.file}: ${err.message}`)
          outcome = await disassembleCorpus(f, root, true)
        }
        const original = corpusBytes(f.file)
        const back = await reassemble(outcome)
        expect(back.length).toBe(original.length)
        expect(sha256(back)).toBe(sha256(original))
        if (haveGo && !f.format.includes('sparse(')) {
          const go = await goEntries(f, root)
          if (!deviates(f, go.entries)) {
            expect(compact(outcome.entries)).toEqual(go.entries)
            // And byte for byte, through the JSON packer.
            expect(gunzipSync(outcome.json).equals(go.json)).toBe(true)
            comparedWithGo++
            if (outcome.inMemory === undefined) {
              // Each side replays the other's metadata from the extracted files.
              const ours = join(scratch, `${f.file}.ours.json.gz`)
              writeFileSync(ours, outcome.json)
              const { stdout } = await execFileAsync('tar-split', ['asm', '--input', ours, '--path', root], {
                encoding: 'buffer',
                maxBuffer: 64 << 20,
              })
              rmSync(ours)
              expect(sha256(stdout), "Go's asm of our metadata").toBe(sha256(original))
              const parts: Buffer[] = []
              for await (const c of assemble(readEntries(createReadStream(go.file)), directoryGetter(root))) parts.push(c as Buffer)
              expect(sha256(Buffer.concat(parts)), 'our asm of Go metadata').toBe(sha256(original))
            }
          }
        }
      } finally {
        rmSync(root, { recursive: true, force: true })
      }
    })
  }
})
