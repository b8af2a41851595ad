/**
 * Every valid tar of test/fixtures/tar-corpus, applied by us and extracted by GNU tar
 * (`tar -x --numeric-owner --xattrs --xattrs-include='*'`), must give the same tree: type,
 * mode, owner, size, content, mtime, symlink target, device numbers, xattrs, hardlinks.
 *
 * Directory mtimes are checked against the headers instead of GNU tar: GNU tar restores a
 * directory's times when the archive leaves it, so a later member inside (an out-of-order
 * archive) moves them again; we set them after the last member. Directories no member
 * names (implied parents) have no mtime to compare.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import zlib from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { applyTar } from '../../src/archive/index.js'
import { disassemble } from '../../src/tarsplit/index.js'
import { diffTrees, formatTree, snapshotTree } from '../helpers/tree.js'
import { gnuTar, isRoot, useTempDirs } from './craft-tar.js'

const CORPUS = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/tar-corpus')

interface Row {
  readonly file: string
  readonly expect: string
}

const rows: Row[] = fs
  .readFileSync(path.join(CORPUS, 'MANIFEST.tsv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => line.split('\t'))
  .map((cols) => ({ file: cols[0]!, expect: cols[5]! }))
  .filter((r) => r.expect === 'valid')

/** Valid tars our apply refuses on purpose, with the error kind it must give and why. */
const REFUSED: Readonly<Record<string, { kind: string; why: string }>> = {
  'cpython-testtar.tar': { kind: 'bad-input', why: 'uid/gid 2^32-1, which chown(2) reads as "leave unchanged"' },
  'libarchive-test_compat_solaris_tar_acl.tar': { kind: 'not-supported', why: "Solaris ACL members (type 'A')" },
  'libarchive-test_patterns_4.tar': { kind: 'unsafe-path', why: '"/../file02" climbs above the root (GNU tar strips it)' },
  'nodetar-links-invalid.tar': { kind: 'unsafe-path', why: 'a hardlink to "" (the root); GNU tar fails on it too' },
  'nodetar-path-missing.tar': { kind: 'unsafe-path', why: 'a file with an empty name would replace the root; GNU tar fails too' },
  'nodetar-excessively-deep.tar': { kind: 'system', why: 'a 4 KiB path: ENAMETOOLONG, as for GNU tar' },
}

/** Valid tars applied but not compared with GNU tar, and why. */
const NOT_COMPARED: Readonly<Record<string, string>> = {
  'go-invalid-go17.tar': "GNU tar reads this buggy writer's name field differently from Go (and our parser)",
  'go-pax-global-records.tar': 'GNU tar fails on it (empty global path)',
  'go-sparse-formats.tar': 'GNU tar fails on it (Unexpected EOF)',
  'libarchive-test_read_format_gtar_sparse_skip_entry.tar': 'GNU tar extracts the 10 GiB sparse file one byte short (EDGE)',
  'libarchive-test_read_format_tar_timestamp_overflow.tar': 'GNU tar reads the NUL-led size field as 0, Go and we as 14',
  'nodetar-global-header.tar': 'GNU tar applies the global path record to the next member; Go and our parser do not',
}

/** The input bytes: gunzipped when the file is gzip (by magic, not name). */
function tarBytes(file: string): Buffer {
  const data = fs.readFileSync(path.join(CORPUS, file))
  return data[0] === 0x1f && data[1] === 0x8b ? zlib.gunzipSync(data) : data
}

/** Cleaned member names → the last header mtime (ns) of those that are directories. */
async function memberDirTimes(tar: string): Promise<Map<string, string>> {
  const times = new Map<string, string>()
  for await (const m of disassemble(fs.createReadStream(tar), { sink: { add() {} } })) {
    const name = m.header.name.toString('latin1').split('/').filter((p) => p !== '' && p !== '.').join('/')
    const isDir = m.header.type === 'directory' || m.header.type === 'gnu-dumpdir'
    if (isDir) times.set(name, (BigInt(m.header.mtime.sec) * 1_000_000_000n + BigInt(m.header.mtime.nsec)).toString())
    else times.delete(name)
  }
  return times
}

if (!isRoot) console.warn('apply-corpus: skipped, needs root (chown to other ids, mknod, trusted.* xattrs)')

describe.skipIf(!isRoot)('apply: the tar corpus against GNU tar', () => {
  const tempDir = useTempDirs()

  it('has the rows the expectations name', () => {
    const names = new Set(rows.map((r) => r.file))
    for (const file of [...Object.keys(REFUSED), ...Object.keys(NOT_COMPARED)]) expect(names).toContain(file)
  })

  for (const { file } of rows) {
    const refused = REFUSED[file]
    const skipWhy = NOT_COMPARED[file]
    const title = refused ? `${file} is refused (${refused.why})` : skipWhy ? `${file} applies (not compared: ${skipWhy})` : file
    it(title, async () => {
      const tmp = tempDir()
      const tar = path.join(tmp, 'in.tar')
      fs.writeFileSync(tar, tarBytes(file))
      const ours = path.join(tmp, 'ours')
      fs.mkdirSync(ours)
      if (refused) {
        const err = await applyTar(fs.createReadStream(tar), ours, { whiteouts: 'naive' }).then(
          () => null,
          (e: unknown) => e,
        )
        expect(err, 'apply must fail').toBeInstanceOf(Error)
        expect((err as { kind?: string }).kind).toBe(refused.kind)
        return
      }
      // For a row not compared, applying without an error is the whole check.
      await applyTar(fs.createReadStream(tar), ours, { whiteouts: 'naive' })
      if (skipWhy) return
      const gnu = path.join(tmp, 'gnu')
      fs.mkdirSync(gnu)
      const res = gnuTar(['-x', '--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', gnu, '-f', tar])
      expect(res.status, `GNU tar failed: ${res.stderr}`).toBe(0)

      const a = snapshotTree(gnu)
      const b = snapshotTree(ours)
      const isDir = (p: string): boolean => b.get(p)?.type === 'dir'
      const diff = diffTrees(a, b, { ignore: (p, field) => field === 'mtime' && isDir(p) })
      expect(diff, `GNU tar (a) vs ours (b):\n${formatTree(b)}`).toEqual([])
      for (const [name, mtime] of await memberDirTimes(tar)) {
        if (isDir(name)) expect(b.get(name)!.mtime, `mtime of directory ${name}`).toBe(mtime)
      }
    })
  }
})
