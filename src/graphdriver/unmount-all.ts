/**
 * Lazily unmounts everything mounted at or below a directory, deepest first: what a driver's
 * `cleanup` does with its home, and what every test does with its temp dir in `finally`.
 */
import { rmdir } from 'node:fs/promises'
import createDebug from 'debug'
import { MNT_DETACH, mountsUnder, umount, umountSync } from '../native/index.js'

const debug = createDebug('layerstore:graphdriver')

// Stacked mounts (two mounts on one point) need one umount each; a bound keeps a broken
// kernel from looping us forever.
const MAX_ROUNDS = 64

/** The mount points at or below `dir` (canonical paths), deepest first, without repeats. */
export async function mountPointsUnder(dir: string): Promise<string[]> {
  return [...new Set((await mountsUnder(dir)).map((m) => m.mountPoint))]
}

/**
 * A driver's unmount of one layer view: detaches the mount on `target` and removes the mount
 * point. The rmdir also makes the kernel drop copies of the mount that leaked into other
 * mount namespaces (moby/moby#34948), so its failure (a namespace still holds it busy) is not
 * ours to report. A target that is no longer mounted (EINVAL: another instance sharing the
 * home unmounted it) counts as unmounted. `inline` makes the call on this thread instead of
 * the native worker: only where the worker's start would cost far more than the call (a probe).
 */
export async function unmountTarget(target: string, options: { readonly inline?: boolean } = {}): Promise<void> {
  try {
    if (options.inline) umountSync(target, MNT_DETACH)
    else await umount(target, MNT_DETACH)
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EINVAL') throw err
  }
  await rmdir(target).catch(() => undefined)
}

/**
 * Detaches (`MNT_DETACH`) every mount at or below `dir`, deepest first, repeating while
 * mounts remain (stacked mounts). Returns the mount points it unmounted. A mount that
 * vanished meanwhile (EINVAL, ENOENT) is not an error; any other failure is thrown after
 * trying the rest.
 */
export async function unmountAll(dir: string): Promise<string[]> {
  const done: string[] = []
  let firstError: unknown
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const points = await mountPointsUnder(dir)
    if (points.length === 0) break
    let progress = false
    for (const point of points) {
      try {
        await umount(point, MNT_DETACH)
        done.push(point)
        progress = true
      } catch (err) {
        const code = (err as { code?: unknown }).code
        if (code === 'EINVAL' || code === 'ENOENT') continue
        firstError ??= err
      }
    }
    if (!progress) break
  }
  if (done.length) debug('unmounted %d mount(s) under %s', done.length, dir)
  if (firstError !== undefined) throw firstError
  return done
}
