/**
 * The worked example of tarsplit-format.md §7, rebuilt byte for byte: a 2-member USTAR tar
 * (origin: Python `tarfile.TarInfo.tobuf(USTAR_FORMAT)` per header, then data, zero padding
 * and two zero blocks, no record padding) and the JSON Go's tar-split writes for it.
 */
import { createHash } from 'node:crypto'
import type { EntryInput } from '../../src/tarsplit/index.js'

export const GOLDEN_TAR_SHA256 = 'b3e812599ca785a3aa237eb2eba6499856ec2f567f452284d91ef3d463cdad54'
export const GOLDEN_JSON_SHA256 = '8ee47fc59ac666e1d09f00f1a97141e6f0acb3103e912fc1b2bd0e02ec043a50'
export const GOLDEN_JSON_BYTES = 4338
/** The same tar followed by `JUNK`×5 (§7 variant). */
export const GOLDEN_JUNK_JSON_SHA256 = '90e9fc64121c1d43c254c7fe7613d6049e93595f4a39b6c34970247d46d45e4a'

export const GOLDEN_FILES: ReadonlyMap<string, Buffer> = new Map([
  ['a.txt', Buffer.from('hello\n')],
  ['dir/b.txt', Buffer.from('some test data')],
])

/** A USTAR header as Python's tarfile writes it for a root-owned 0644 file. */
export function ustarHeader(name: string, size: number, opts: { typeflag?: string; mtime?: number } = {}): Buffer {
  const h = Buffer.alloc(512)
  const put = (off: number, s: string): void => void h.write(s, off, 'latin1')
  const octal = (n: number, width: number): string => n.toString(8).padStart(width - 1, '0') + '\0'
  put(0, name)
  put(100, octal(0o644, 8))
  put(108, octal(0, 8))
  put(116, octal(0, 8))
  put(124, octal(size, 12))
  put(136, octal(opts.mtime ?? 1_700_000_000, 12))
  put(148, '        ')
  put(156, opts.typeflag ?? '0')
  put(257, 'ustar\0')
  put(263, '00')
  put(265, 'root')
  put(297, 'root')
  let sum = 0
  for (const b of h) sum += b
  put(148, sum.toString(8).padStart(6, '0') + '\0 ')
  return h
}

const pad = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512)

/** The 3072-byte golden tar. */
export function goldenTar(): Buffer {
  const a = GOLDEN_FILES.get('a.txt')!
  const b = GOLDEN_FILES.get('dir/b.txt')!
  return Buffer.concat([
    ustarHeader('a.txt', a.length),
    a,
    pad(a.length),
    ustarHeader('dir/b.txt', b.length),
    b,
    pad(b.length),
    Buffer.alloc(1024),
  ])
}

/** The five entries Go's disassembler emits for the golden tar (§7 table). */
export function goldenEntries(): EntryInput[] {
  const tar = goldenTar()
  return [
    { type: 2, payload: tar.subarray(0, 512) },
    { type: 1, name: Buffer.from('a.txt'), size: 6, payload: Buffer.from('614c3eeee2d81000', 'hex') },
    { type: 2, payload: tar.subarray(518, 1536) },
    { type: 1, name: Buffer.from('dir/b.txt'), size: 14, payload: Buffer.from('8d84b9d5e5c55072', 'hex') },
    { type: 2, payload: tar.subarray(1550, 3072) },
  ]
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
