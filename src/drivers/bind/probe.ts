/**
 * Bind driver feature detection, run once when a driver starts: probe, never assume. The
 * driver needs what its layers are made of: hard links on the home's filesystem, bind
 * mounts (CAP_SYS_ADMIN), and read-only remounts of binds that really refuse writes.
 * Anything missing is `DriverNotSupportedError`, so that selection moves on.
 */
import { link, mkdir, rm, stat, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import createDebug from 'debug'
import { bindMount, DriverNotSupportedError } from '../../graphdriver/index.js'
import { MNT_DETACH, umountSync } from '../../native/index.js'

const debug = createDebug('layerstore:bind')

/**
 * Probes `home` (or its parent, if home does not exist yet) in a scratch dir: a hard link,
 * a bind mount, a read-only remount, and a write through it that must fail with EROFS.
 * Rejects with `DriverNotSupportedError` naming the step that failed.
 */
export async function probeBind(home: string, driverName: string): Promise<void> {
  const base = await stat(home).then(
    () => home,
    () => dirname(home),
  )
  const dir = join(base, `bind~probe-${randomBytes(6).toString('hex')}`)
  const src = join(dir, 'src')
  const target = join(dir, 'target')
  let step = 'making a scratch dir'
  let mounted = false
  try {
    await mkdir(src, { recursive: true })
    await mkdir(target)
    await writeFile(join(src, 'file'), 'x')
    step = 'making a hard link'
    await link(join(src, 'file'), join(src, 'link'))
    // Inline: a store that never mounts (a register) then never starts the native worker
    // (~13 MiB for the life of the process). The error names which of the two calls failed.
    step = 'making a read-only bind mount (needs CAP_SYS_ADMIN)'
    await bindMount(src, target, true, { inline: true })
    mounted = true
    step = 'writing through a read-only bind'
    const refused = await writeFile(join(target, 'new'), 'x').then(
      () => false,
      (err: unknown) => (err as { code?: unknown }).code === 'EROFS',
    )
    if (!refused) throw new Error('a write through the read-only bind mount did not fail with EROFS')
    debug('probe of %s passed', base)
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err)
    throw new DriverNotSupportedError(driverName, `${step} in ${base} failed: ${why}`, { cause: err })
  } finally {
    if (mounted) {
      try {
        umountSync(target, MNT_DETACH)
      } catch (err) {
        debug('probe unmount of %s failed: %s', target, err)
      }
    }
    await rm(dir, { recursive: true, force: true }).catch(() => undefined)
  }
}
