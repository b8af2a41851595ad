/**
 * The name of the filesystem under a driver's home, for `status()` and the probes: what
 * every driver reports as its "Backing Filesystem".
 */
import { statfs } from 'node:fs/promises'
import { dirname } from 'node:path'

// Names of common filesystem magic numbers (statfs f_type).
const FS_NAMES: Readonly<Record<number, string>> = {
  0xef53: 'extfs',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x01021994: 'tmpfs',
  0x794c7630: 'overlayfs',
  0x2fc12fc1: 'zfs',
  0x858458f6: 'ramfs',
  0xca451a4e: 'bcachefs',
}

/** The name of the filesystem holding `path` (or its nearest existing ancestor). */
export async function backingFsName(path: string): Promise<string> {
  let p = path
  for (;;) {
    try {
      const { type } = await statfs(p)
      return FS_NAMES[type] ?? `0x${type.toString(16)}`
    } catch {
      const up = dirname(p)
      if (up === p) return 'unknown'
      p = up
    }
  }
}
