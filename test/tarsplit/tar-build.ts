/**
 * Builds tar header blocks byte by byte for tests, so that every field (and every malformed
 * variant) is under the test's control. Only what the tests need; not a tar writer.
 */

/** Fields of one header; numbers are written in octal unless given as raw bytes. */
export interface BlockFields {
  name?: string | Buffer
  mode?: number | Buffer
  uid?: number | Buffer
  gid?: number | Buffer
  size?: number | Buffer
  mtime?: number | Buffer
  typeflag?: string | number
  linkname?: string | Buffer
  /** 'ustar' (default: "ustar\0" "00"), 'gnu' ("ustar " " \0"), 'v7' (none), 'star'. */
  format?: 'ustar' | 'gnu' | 'v7' | 'star'
  uname?: string
  gname?: string
  devmajor?: number | Buffer
  devminor?: number | Buffer
  prefix?: string | Buffer
  /** Raw bytes written at offsets after the fields, before the checksum. */
  patch?: ReadonlyArray<readonly [number, Buffer | string]>
  /** Checksum written as given instead of computed ('signed' computes Sun's signed sum). */
  checksum?: number | 'signed'
}

function put(block: Buffer, offset: number, length: number, value: string | Buffer): void {
  const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
  if (b.length > length) throw new Error(`field at ${offset} too long`)
  b.copy(block, offset)
}

function octal(value: number, length: number): string {
  return value.toString(8).padStart(length - 1, '0') + '\0'
}

function num(block: Buffer, offset: number, length: number, value: number | Buffer | undefined, dflt: number): void {
  put(block, offset, length, Buffer.isBuffer(value) ? value : octal(value ?? dflt, length))
}

/** GNU base-256 encoding of `value` in `length` bytes (negative allowed). */
export function base256(value: bigint, length: number): Buffer {
  const b = Buffer.alloc(length)
  let v = BigInt.asUintN(length * 8, value)
  for (let i = length - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn)
    v >>= 8n
  }
  b[0] = b[0]! | 0x80
  return b
}

/** Builds one 512-byte header block. */
export function headerBlock(f: BlockFields = {}): Buffer {
  const block = Buffer.alloc(512)
  put(block, 0, 100, f.name ?? 'file.txt')
  num(block, 100, 8, f.mode, 0o644)
  num(block, 108, 8, f.uid, 0)
  num(block, 116, 8, f.gid, 0)
  num(block, 124, 12, f.size, 0)
  num(block, 136, 12, f.mtime, 1700000000)
  const tf = f.typeflag ?? '0'
  block[156] = typeof tf === 'number' ? tf : tf.charCodeAt(0)
  put(block, 157, 100, f.linkname ?? '')
  const format = f.format ?? 'ustar'
  if (format !== 'v7') {
    put(block, 257, 8, format === 'gnu' ? 'ustar  \0' : 'ustar\x0000')
    put(block, 265, 32, f.uname ?? 'root')
    put(block, 297, 32, f.gname ?? 'root')
    if (f.devmajor !== undefined) num(block, 329, 8, f.devmajor, 0)
    if (f.devminor !== undefined) num(block, 337, 8, f.devminor, 0)
    if (f.prefix !== undefined) put(block, 345, format === 'star' ? 131 : 155, f.prefix)
    if (format === 'star') put(block, 508, 4, 'tar\0')
  }
  for (const [at, bytes] of f.patch ?? []) put(block, at, 512 - at, bytes)
  setChecksum(block, f.checksum)
  return block
}

/** Writes the checksum field (computed unsigned unless told otherwise). */
export function setChecksum(block: Buffer, checksum?: number | 'signed'): Buffer {
  block.fill(0x20, 148, 156)
  let sum = 0
  for (let i = 0; i < 512; i++) sum += checksum === 'signed' && block[i]! >= 0x80 ? block[i]! - 256 : block[i]!
  const value = typeof checksum === 'number' ? checksum : sum
  put(block, 148, 8, value.toString(8).padStart(6, '0') + '\0 ')
  return block
}

/** Zero padding after `size` bytes of data. */
export function padding(size: number): Buffer {
  return Buffer.alloc((512 - (size % 512)) % 512)
}

/** A header + data + padding. */
export function member(f: BlockFields & { data?: Buffer | string }): Buffer {
  const data = typeof f.data === 'string' ? Buffer.from(f.data) : (f.data ?? Buffer.alloc(0))
  return Buffer.concat([headerBlock({ size: data.length, ...f }), data, padding(data.length)])
}

/** One PAX record with its self-counting length. */
export function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')])
  let n = body.length + 1
  while (String(n).length + body.length !== n) n = String(n).length + body.length
  return Buffer.concat([Buffer.from(String(n)), body])
}

/** A PAX extended header ('x' or 'g') member carrying `records`. */
export function paxHeader(records: ReadonlyArray<readonly [string, string | Buffer]>, typeflag: 'x' | 'g' = 'x', name = 'PaxHeader'): Buffer {
  const data = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)))
  return member({ name, typeflag, data })
}

/** The two zero blocks that end an archive. */
export const END = Buffer.alloc(1024)
