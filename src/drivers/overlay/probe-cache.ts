/**
 * Remembering a passed probe mount, so that opening a store does not mount, write through
 * and tear down a scratch overlay every time (moby probes once per daemon start; a
 * `layerctl` command is a start of its own).
 *
 * What the probe mount proved holds for one kernel, one filesystem and one set of mount
 * options, so the record is keyed by all of them: the boot (`boot_id`, which a reboot, and
 * so a new kernel or module, changes), the kernel release, the effective user (a mount needs
 * privileges), the home's device and filesystem type (home moved, or another filesystem
 * mounted on it), and the features the cheap probes found (mount interface and options,
 * re-read on every open). Any difference means probing again. The record is only ever a
 * shortcut: a missing, unreadable or foreign one costs a probe, never an error.
 *
 * It is an extended attribute of home ({@link PROBE_XATTR}), not a file in it: home holds
 * only `l/` and layer directories, as Docker's overlay2 home does, and tools expect that.
 * setxattr replaces a value whole, so a reader sees the old record or the new.
 */
import { readFile, stat, statfs } from 'node:fs/promises'
import { release } from 'node:os'
import createDebug from 'debug'
import { lgetxattr, lsetxattr } from '../../native/index.js'
import type { OverlayFeatures } from './probe.js'

const debug = createDebug('layerstore:overlay')

/**
 * The attribute of home that records a passed probe (`trusted.`: only root reads or writes
 * it, and only root can mount).
 */
export const PROBE_XATTR = 'trusted.layerstore.overlay-probe'

// Bump when what the probe checks changes: older records then no longer match.
const PROBE_VERSION = 1

/**
 * The key a probe of `home` with `features` is recorded under, or undefined when `home`
 * does not exist (a fresh root: the probe runs in its parent, and is recorded once the
 * driver made home).
 */
export async function probeCacheKey(home: string, features: OverlayFeatures): Promise<string | undefined> {
  let dev: number
  let fsType: number
  try {
    ;[{ dev }, { type: fsType }] = await Promise.all([stat(home), statfs(home)])
  } catch {
    return undefined
  }
  const bootID = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim()
  return JSON.stringify({
    version: PROBE_VERSION,
    boot: bootID,
    kernel: release(),
    euid: process.geteuid?.() ?? -1,
    dev,
    fsType,
    api: features.api,
    options: features.options,
  })
}

/** True when `home` records a passed probe under `key`. */
export function probeRecorded(home: string, key: string): boolean {
  try {
    return lgetxattr(home, PROBE_XATTR)?.toString('utf8') === key
  } catch {
    return false
  }
}

/** Records a passed probe under `key`. Not synced: losing it costs one probe. Failures are only logged. */
export function recordProbe(home: string, key: string): void {
  try {
    lsetxattr(home, PROBE_XATTR, Buffer.from(key, 'utf8'))
  } catch (err) {
    debug('cannot record the probe on %s: %s', home, err)
  }
}
