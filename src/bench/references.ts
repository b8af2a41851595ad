/**
 * The references every figure is read against, run in the same bench as ours, because
 * absolute times on these machines drift between runs: GNU tar and coreutils doing the same
 * work on plain directories. Each resolves to a `TimedRun` (wall seconds incl. the tool's
 * process start, peak RSS of the largest process). Paths reach the shell loops as arguments,
 * never inside the script.
 */
import { commandOutput, timeCommand, type TimedRun } from './measure.js'

// As root GNU tar restores owners and modes by default; it restores no xattrs without
// --xattrs (our drivers do: a small advantage to tar).
const EXTRACT = 'tar -x --numeric-owner'

/** What each reference is, for the table, the charts and results.json. */
export const REFERENCE_NAMES = Object.freeze({
  register: 'tar -x --numeric-owner + sha256sum',
  'register-existing': 'sha256sum',
  chain: 'tar -x --numeric-owner + sha256sum, per layer',
  // The same run as chain's: one GNU tar run is the reference of both ways to register it.
  'register-chain': 'tar -x --numeric-owner + sha256sum, per layer',
  export: 'tar -c | cat',
  changes: "find -printf (lstat of every path)",
  commit: 'tar -c, sha256sum, tar -x',
  release: 'rm -rf of the extracted trees',
  rw: 'the bare graph driver (createReadWrite / get / put / remove)',
} as const)

/** GNU tar's version line ('' when tar is missing). */
export async function gnuTarVersion(): Promise<string> {
  return (await commandOutput('tar', ['--version'])).split('\n')[0] ?? ''
}

/**
 * `tar -x` of each layer into its own fresh directory, then `sha256sum` of it: the floor of
 * "extract and digest", in one shell (125 timed spawns from Node would cost more than tar
 * itself for the chain's small layers).
 */
export function extractAndDigest(layers: readonly { readonly tar: string; readonly dir: string }[], signal?: AbortSignal): Promise<TimedRun> {
  const loop = `while [ $# -gt 0 ]; do ${EXTRACT} -C "$1" -f "$2" || exit 1; sha256sum "$2" >/dev/null || exit 1; shift 2; done`
  return timeCommand(['sh', '-c', loop, 'sh', ...layers.flatMap((l) => [l.dir, l.tar])], opts(signal))
}

/** `sha256sum` of a tar: what knowing that a layer is present at least costs. */
export function digest(tar: string, signal?: AbortSignal): Promise<TimedRun> {
  return timeCommand(['sha256sum', tar], opts(signal))
}

/** `tar -c` of each directory in turn, the output piped to this process, which reads every byte. */
export function createEach(dirs: readonly string[], signal?: AbortSignal): Promise<TimedRun> {
  const loop = 'for d; do tar -c --numeric-owner -C "$d" . || exit 1; done'
  return timeCommand(['sh', '-c', loop, 'sh', ...dirs], opts(signal))
}

/** `find -printf` of a tree with an lstat'ed field per path, piped to this process. */
export function walk(dir: string, signal?: AbortSignal): Promise<TimedRun> {
  return timeCommand(['find', dir, '-printf', '%m %s %T@ %p\\n'], opts(signal))
}

/** A tar of `dir` to `tarFile`, its sha256sum, and its extraction into `into`: what commit does. */
export function tarDigestExtract(dir: string, tarFile: string, into: string, signal?: AbortSignal): Promise<TimedRun> {
  const script = `tar -c --numeric-owner -C "$1" -f "$2" . && sha256sum "$2" >/dev/null && ${EXTRACT} -C "$3" -f "$2"`
  return timeCommand(['sh', '-c', script, 'sh', dir, tarFile, into], opts(signal))
}

/** `rm -rf` of the given trees. */
export function removeTrees(dirs: readonly string[], signal?: AbortSignal): Promise<TimedRun> {
  return timeCommand(['rm', '-rf', '--', ...dirs], opts(signal))
}

function opts(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {}
}
