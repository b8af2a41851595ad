/**
 * The driver conformance suite, exported so that a plugin author runs it on their own driver
 * (after containerd's `snapshots/testsuite`). Import it from `layerstore/conformance`; it
 * registers vitest tests, so vitest is a peer dependency of whoever imports it:
 *
 * ```ts
 * import { runDriverConformance } from 'layerstore/conformance'
 * runDriverConformance('my-driver', async (home) => ({ driver: await myFactory.create({ home }) }))
 * ```
 *
 * Every check gets a fresh temp dir holding `home/` and `work/`, shares nothing with the
 * next, prints the tree when it fails, and cleans up (driver cleanup, then every mount under
 * the temp dir, deepest first, then the files) even when it fails. A check is skipped only
 * when the driver declares, in `capabilities`, that it does not guarantee what the check
 * tests, or when the environment lacks root; the reason is printed.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'vitest'
import { BASIC_CHECKS } from './conformance-checks.js'
import { DIFF_CHECKS } from './conformance-diff-checks.js'
import { formatTree, snapshotTree } from './conformance-tree.js'
import type { Driver, ProtoDriver } from './driver.js'
import { isDiffDriver } from './driver.js'
import { naiveDiff } from './naive-diff.js'
import { unmountAll } from './unmount-all.js'

export * from './conformance-members.js'
export * from './conformance-tree.js'

/** What `makeDriver` returns: a started driver, and how to dispose of what the factory made. */
export interface DriverUnderTest {
  readonly driver: Driver | ProtoDriver
  /** Runs after `driver.cleanup()`, also when the check failed. */
  cleanup?(): Promise<void>
}

/** Starts the driver under test on `home` (an empty directory that exists). */
export type MakeDriver = (home: string) => Promise<DriverUnderTest>

/** Options of {@link runDriverConformance}. */
export interface ConformanceOptions {
  /** Depth of the deep-chain check. Default: the lower of 125 and `capabilities.maxDepth`. */
  readonly depth?: number
  /** Where temp dirs go. Default `os.tmpdir()`. */
  readonly tmpDir?: string
  /** Per-check timeout in ms. Default 120 000. */
  readonly timeout?: number
}

/** What a check gets. */
export interface CheckEnv {
  /** The driver under test, started on {@link CheckEnv.home}. */
  readonly driver: Driver
  readonly home: string
  /** A scratch directory beside the home, for the check's own files. */
  readonly work: string
  /** Depth for the deep-chain check. */
  readonly depth: number
  /** True when running as root (ownership, devices, trusted xattrs, mounts). */
  readonly root: boolean
  /** Starts another instance on the same home (the first stays open); cleaned up at the end. */
  open(): Promise<Driver>
  /** Skips the rest of the check, printing `reason`. */
  skip(reason: string): never
}

/** One conformance check. */
export interface ConformanceCheck {
  readonly title: string
  run(env: CheckEnv): Promise<void>
}

/** Every check, in the order they run. */
export const CONFORMANCE_CHECKS: readonly ConformanceCheck[] = Object.freeze([...BASIC_CHECKS, ...DIFF_CHECKS])

/**
 * Registers the conformance suite for the driver `name` as one vitest `describe` with one
 * `it` per check. `makeDriver(home)` is called once per check (and again when a check opens
 * a second instance on the same home).
 */
export function runDriverConformance(name: string, makeDriver: MakeDriver, options: ConformanceOptions = {}): void {
  describe(`driver conformance: ${name}`, () => {
    for (const check of CONFORMANCE_CHECKS) {
      it(check.title, { timeout: options.timeout ?? 120_000 }, async (ctx) => {
        await runCheck(check, makeDriver, options, (reason) => {
          console.warn(`[conformance ${name}] skipped "${check.title}": ${reason}`)
          return ctx.skip(reason)
        })
      })
    }
  })
}

async function runCheck(
  check: ConformanceCheck,
  makeDriver: MakeDriver,
  options: ConformanceOptions,
  skip: (reason: string) => never,
): Promise<void> {
  const tmp = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'layerstore-conformance-'))
  const home = join(tmp, 'home')
  const work = join(tmp, 'work')
  await mkdir(home)
  await mkdir(work)
  const instances: DriverUnderTest[] = []
  const start = async (): Promise<Driver> => {
    const made = await makeDriver(home)
    instances.push(made)
    return isDiffDriver(made.driver) ? made.driver : naiveDiff(made.driver)
  }
  let ok = false
  let skipped = false
  try {
    const driver = await start()
    const caps = driver.capabilities
    const depth = options.depth ?? Math.min(125, caps.maxDepth)
    await check.run({
      driver,
      home,
      work,
      depth,
      root: process.getuid?.() === 0,
      open: start,
      skip: (reason) => {
        skipped = true
        return skip(reason)
      },
    })
    ok = true
  } finally {
    if (!ok && !skipped) await printTree(check.title, tmp)
    const errors: unknown[] = []
    for (const inst of instances.reverse()) {
      await inst.driver.cleanup().catch((err: unknown) => errors.push(err))
      if (inst.cleanup) await inst.cleanup().catch((err: unknown) => errors.push(err))
    }
    await unmountAll(tmp).catch((err: unknown) => errors.push(err))
    await rm(tmp, { recursive: true, force: true }).catch((err: unknown) => errors.push(err))
    // A cleanup failure fails a passing check: leftovers would poison the next one.
    if (ok && errors.length) throw new AggregateError(errors, `cleanup after "${check.title}" failed`)
  }
}

async function printTree(title: string, dir: string): Promise<void> {
  try {
    console.error(`conformance check "${title}" failed; tree of ${dir}:\n${formatTree(await snapshotTree(dir))}`)
  } catch (err) {
    console.error(`conformance check "${title}" failed; could not list ${dir}: ${String(err)}`)
  }
}
