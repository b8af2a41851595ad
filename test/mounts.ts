/**
 * Mount points for tests: what a test left mounted (it must be nothing) and what to unmount
 * in its cleanup.
 */
import { readFileSync } from 'node:fs'

/**
 * The mount points at or under `dir`, from /proc/self/mountinfo (octal escapes such as
 * `\040` decoded), the latest first, so that unmounting them in order never meets a busy
 * parent.
 */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .reverse()
}
