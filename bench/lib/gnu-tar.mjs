// The GNU tar references the driver benchmarks are read against: the floor of extracting a
// layer into a plain directory, and of reading a tree back as a tar. Every function runs tar
// under /usr/bin/time (timeCommand) and resolves to { seconds, maxRssMiB, bytesOut }; paths
// reach the shell loops below as arguments, never inside the script.
import { execFileSync } from 'node:child_process'
import { timeCommand } from './measure.mjs'

// As bench/apply.mjs runs it. As root, GNU tar restores owners and modes by default; it does
// not restore xattrs without --xattrs (our drivers do: a small advantage to tar).
const EXTRACT = ['tar', '-x', '--numeric-owner']
const CREATE = ['tar', '-c', '--numeric-owner']

/** GNU tar's version line, for the report ('' if tar is missing). */
export function gnuTarVersion() {
  try {
    return execFileSync('tar', ['--version'], { encoding: 'utf8' }).split('\n')[0]
  } catch {
    return ''
  }
}

/**
 * `tar -x` of one layer tar into `dir` (an existing, empty directory).
 * @param {string} tar
 * @param {string} dir
 */
export function gnuExtract(tar, dir) {
  return timeCommand([...EXTRACT, '-C', dir, '-f', tar])
}

/**
 * `tar -x` of each layer of a chain into its own directory, in order, one tar process per
 * layer started by one shell, as a script would run them: 125 timed spawns from Node would
 * add more than tar itself takes for these small layers. Peak RSS is the largest tar's.
 * @param {readonly { tar: string, dir: string }[]} layers
 */
export function gnuExtractEach(layers) {
  if (layers.length === 1) return gnuExtract(layers[0].tar, layers[0].dir)
  const loop = `while [ $# -gt 0 ]; do ${EXTRACT.join(' ')} -C "$1" -f "$2" || exit 1; shift 2; done`
  return timeCommand(['sh', '-c', loop, 'sh', ...layers.flatMap((l) => [l.dir, l.tar])])
}

/**
 * `tar -c` of the tree in `dir`, its output piped to this process, which reads every byte
 * (GNU tar reads no file data when its output is /dev/null). `bytesOut` is the tar's size.
 * @param {string} dir
 */
export function gnuCreate(dir) {
  return timeCommand([...CREATE, '-C', dir, '.'])
}

/**
 * `tar -c` of each directory in turn, one tar process each started by one shell (see
 * `gnuExtractEach`), their output concatenated and piped through this process.
 * @param {readonly string[]} dirs
 */
export function gnuCreateEach(dirs) {
  if (dirs.length === 1) return gnuCreate(dirs[0])
  const loop = `for d; do ${CREATE.join(' ')} -C "$d" . || exit 1; done`
  return timeCommand(['sh', '-c', loop, 'sh', ...dirs])
}
