/**
 * bind's flattening, killed: a child process (the built package) flattens the top of a
 * 20-layer stack and is SIGKILLed after a varying delay, before, during or after the flatten.
 * Whatever the moment, the layer's `root/` is absent or complete (it only appears by rename),
 * the next `get` shows the right tree, and what the kill left is a scratch dir that a later
 * start sweeps once it is stale.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BindDriver, bindDriverFactory } from '../../src/drivers/bind/index.js'
import { members, whiteout } from '../../src/graphdriver/conformance-members.js'
import type { MemberSpec } from '../../src/graphdriver/conformance-members.js'
import { unmountAll } from '../../src/graphdriver/index.js'

const isRoot = process.getuid?.() === 0
const DIST = fileURLToPath(new URL('../../dist/drivers/bind/index.js', import.meta.url))
const built = existsSync(DIST)
if (!isRoot) console.warn('[bind] flatten kill test skipped: bind mounts need root')
else if (!built) console.warn('[bind] flatten kill test skipped: dist/ is not built (npm test builds it)')

const LAYERS = 20
const FILES = 150
const TOP = `l${LAYERS - 1}`

/** Layer i adds FILES files in d<i % 4>/ and whites out the first file of layer i - 1. */
function layerSpecs(i: number): MemberSpec[] {
  const dir = `d${i % 4}`
  const specs: MemberSpec[] = [{ name: dir, type: 'directory' }]
  for (let j = 0; j < FILES; j++) specs.push({ name: `${dir}/f${i}-${j}`, content: `${i}/${j}\n` })
  if (i > 0) specs.push(whiteout(`d${(i - 1) % 4}/f${i - 1}-0`))
  return specs
}

/** The paths the top layer shows, from the specs. */
function expectedPaths(): string[] {
  const paths = new Set<string>()
  for (let i = 0; i < LAYERS; i++) {
    paths.add(`d${i % 4}`)
    for (let j = 0; j < FILES; j++) paths.add(`d${i % 4}/f${i}-${j}`)
    if (i > 0) paths.delete(`d${(i - 1) % 4}/f${i - 1}-0`)
  }
  return [...paths].sort()
}

async function listTree(root: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      out.push(relative(root, path))
      if (entry.isDirectory()) await walk(path)
    }
  }
  await walk(root)
  return out.sort()
}

/** A child that starts the driver on `home`, says `go`, then gets (flattens) the top layer. */
function flattenInChild(home: string, killAfterMs: number): Promise<string> {
  const script = `
    const { bindDriverFactory } = await import(${JSON.stringify(DIST)})
    const d = await bindDriverFactory.create({ home: ${JSON.stringify(home)} })
    process.stdout.write('go\\n')
    await d.get(${JSON.stringify(TOP)})
    process.stdout.write('done\\n')
    setInterval(() => {}, 1000)`
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s))
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s
      if (s.includes('go')) setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    })
    child.on('error', reject)
    child.on('close', (_code, signal) => (signal === 'SIGKILL' ? resolve(out) : reject(new Error(`child ended without the kill: ${out} ${err}`))))
  })
}

describe.skipIf(!isRoot || !built)('bind flatten, killed', () => {
  let tmp: string
  let home: string
  let driver: BindDriver | undefined

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'layerstore-bind-kill-'))
    home = join(tmp, 'bind')
    driver = new BindDriver({ home })
    await driver.init()
    for (let i = 0; i < LAYERS; i++) {
      const parent = i === 0 ? null : `l${i - 1}`
      await driver.create(`l${i}`, parent)
      await driver.applyDiff(`l${i}`, parent, members(layerSpecs(i)))
    }
  })

  afterAll(async () => {
    await driver?.cleanup().catch(() => undefined)
    await unmountAll(tmp)
    await rm(tmp, { recursive: true, force: true })
  })

  // From before the flatten starts to (most likely) after it is done.
  it.each([0, 10, 40, 150, 600])('after %i ms: root/ absent or complete, the next get right, the scratch swept once stale', async (delay) => {
    const output = await flattenInChild(home, delay)
    // The child may have died holding its mount: a new start's cleanup unmounts it.
    await unmountAll(home)
    const root = join(home, TOP, 'root')
    const scratch = (await readdir(home)).filter((n) => n.includes('~'))
    if (existsSync(root)) expect(await listTree(root)).toEqual(expectedPaths())
    else expect(output).not.toContain('done')
    const when = existsSync(root) ? 'after the flatten' : scratch.length > 0 ? 'during the flatten' : 'before the flatten'
    console.log(`[bind] killed ${delay} ms after start: ${when}`)

    const fresh = await bindDriverFactory.create({ home })
    try {
      const view = await fresh.get(TOP)
      try {
        expect(await listTree(view)).toEqual(expectedPaths())
      } finally {
        await fresh.put(TOP)
      }
    } finally {
      await fresh.cleanup()
    }
    for (const name of scratch) expect(name).toMatch(/^l19~flattening-/)
    // A start sweeps a scratch dir ten minutes old (a live flatten's is younger).
    const old = new Date(Date.now() - 11 * 60 * 1000)
    for (const name of scratch) await utimes(join(home, name), old, old)
    await (await bindDriverFactory.create({ home })).cleanup()
    expect((await readdir(home)).filter((n) => n.includes('~'))).toEqual([])
    // The next round flattens again.
    await rm(root, { recursive: true, force: true })
  })
})
