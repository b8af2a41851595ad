// A benchmark's scratch directory: fresh subdirectories on demand, nothing deleted until the
// end (see ../../../shared/bench/PEERS.md: on these journal-less ext4 roots, creating files
// within ~60 s of deleting many is several times slower), and a cleanup that unmounts
// everything below it, also on Ctrl-C and SIGTERM.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { graphdriver } from '../../dist/index.js'

/**
 * Makes `<parent>/<prefix>XXXXXX` and returns it with `fresh(name)` (a new, empty
 * subdirectory; names may contain `/`), `cleanup()` (idempotent: stop our child processes,
 * unmount everything at or below the directory deepest first, delete it) and `dispose()`
 * (remove the signal handlers).
 *
 * While it lives, SIGINT and SIGTERM abort `signal` (its reason an Error with code
 * `ERR_BENCH_INTERRUPTED` and the `exitCode` to use) and stop our child processes, so that
 * the run unwinds to its own `finally`, which must call `cleanup()`: in-process loops check
 * `signal` each cycle, since deleting a home while a loop still creates layers in it fails.
 * A second signal, or 15 s without the run getting there, cleans up and exits at once.
 * @param {string} parent
 * @param {string} prefix
 */
export function makeScratch(parent, prefix) {
  const dir = mkdtempSync(join(parent, prefix))
  const controller = new AbortController()
  let cleaning = null
  const cleanup = () => {
    cleaning ??= (async () => {
      await stopDescendants(process.pid)
      await graphdriver.unmountAll(dir)
      await rm(dir, { recursive: true, force: true })
    })()
    return cleaning
  }
  const cleanupAndExit = (code) =>
    cleanup().then(
      () => process.exit(code),
      (err) => {
        console.error(`cleanup of ${dir} failed: ${err?.message ?? err}`)
        process.exit(code)
      },
    )
  const onSignal = (signal, number) => {
    if (controller.signal.aborted) return void cleanupAndExit(128 + number)
    console.error(`\n${signal}: stopping, then unmounting and deleting ${dir} (${signal} again to hurry)`)
    const reason = Object.assign(new Error(`interrupted by ${signal}`), { code: 'ERR_BENCH_INTERRUPTED', exitCode: 128 + number })
    controller.abort(reason)
    void stopDescendants(process.pid)
    setTimeout(() => void cleanupAndExit(128 + number), 15_000).unref()
  }
  const onInt = () => onSignal('SIGINT', 2)
  const onTerm = () => onSignal('SIGTERM', 15)
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onTerm)
  return {
    dir,
    signal: controller.signal,
    /** @param {string} name */
    fresh(name) {
      const path = join(dir, name)
      mkdirSync(path, { recursive: true })
      return path
    },
    cleanup,
    dispose() {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
    },
  }
}

// A signal sent to this process alone (not to the terminal's process group) leaves the timed
// children running; /usr/bin/time does not forward it. They must be gone before their mounts
// and files are.
async function stopDescendants(root) {
  const pids = descendants(root)
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM')
    } catch {
      // Already gone.
    }
  }
  for (let waited = 0; waited < 5000 && pids.some(alive); waited += 50) await new Promise((r) => setTimeout(r, 50))
}

function descendants(root) {
  const parentOf = new Map()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      // The comm field (2) may hold spaces and parentheses: the ppid is the 2nd field after the last ')'.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
    } catch {
      // Exited while we looked.
    }
  }
  const found = []
  const queue = [root]
  while (queue.length) {
    const p = queue.shift()
    for (const [pid, ppid] of parentOf) {
      if (ppid === p) {
        found.push(pid)
        queue.push(pid)
      }
    }
  }
  return found
}

function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
