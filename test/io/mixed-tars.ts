/**
 * Test inputs for the recycling tests: a real tree with every kind of member that moves bytes
 * around differently (empty and block-edge sizes, files written deferred and through more
 * than the writer's slabs, long names, xattrs, links, a sparse file), archived by GNU tar in
 * its two formats. `gnu` uses GNU long names and old-style sparse headers ('S'); `pax` uses
 * PAX records and the PAX 1.0 sparse map.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { lsetxattr } from '../../src/native/index.js'

/** The archives and the tree they were made of; `remove()` deletes all of it. */
export interface MixedTars {
  readonly tree: string
  readonly gnu: string
  readonly pax: string
  remove(): void
}

const MiB = 1 << 20

/** Builds the tree and its two archives in a new temp directory. */
export function makeMixedTars(): MixedTars {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerstore-recycle-'))
  const tree = path.join(dir, 'tree')
  const remove = (): void => fs.rmSync(dir, { recursive: true, force: true })
  try {
    fs.mkdirSync(path.join(tree, 'd/e'), { recursive: true })
    const sizes = [0, 1, 511, 512, 513, 65535, 65536, 100_000, 3 * MiB + 17]
    for (const n of sizes) fs.writeFileSync(path.join(tree, `d/f${n}`), randomBytes(n))
    // More than the writer's 4 MiB of slabs, so that they are reused (1.5 MiB each).
    for (let i = 0; i < 7; i++) fs.writeFileSync(path.join(tree, `d/e/big${i}`), randomBytes(1.5 * MiB))
    const long = path.join(tree, 'd', 'n'.repeat(120), 'm'.repeat(120))
    fs.mkdirSync(path.dirname(long))
    fs.writeFileSync(long, randomBytes(70_000))
    fs.symlinkSync('../' + 'l'.repeat(150), path.join(tree, 'd/link'))
    fs.linkSync(path.join(tree, 'd/f100000'), path.join(tree, 'd/hard'))
    fs.writeFileSync(path.join(tree, 'd/x'), 'xattr')
    lsetxattr(path.join(tree, 'd/x'), 'user.recycle', Buffer.from('value'))
    // A sparse file: data at 0, at 2 MiB and at its end, holes between.
    const sparse = path.join(tree, 'd/sparse')
    const fd = fs.openSync(sparse, 'w')
    fs.writeSync(fd, randomBytes(10_000), 0, 10_000, 0)
    fs.writeSync(fd, randomBytes(300_000), 0, 300_000, 2 * MiB)
    fs.writeSync(fd, randomBytes(5), 0, 5, 5 * MiB - 5)
    fs.closeSync(fd)
    const gnu = path.join(dir, 'gnu.tar')
    const pax = path.join(dir, 'pax.tar')
    const common = ['--sparse', '--xattrs', '--xattrs-include=*', '--sort=name', '--numeric-owner', '-C', tree]
    execFileSync('tar', ['-c', '--format=gnu', '-f', gnu, ...common, 'd'])
    execFileSync('tar', ['-c', '--format=pax', '--sparse-version=1.0', '-f', pax, ...common, 'd'])
    return { tree, gnu, pax, remove }
  } catch (err) {
    remove()
    throw err
  }
}
