/**
 * Making, reading and keeping a layer's bookkeeping files (`link`, `lower`, `committed`,
 * `work/`, the `l/` links) and the home as a whole: what the driver needs before it can mount
 * or diff a layer, and the repairs it makes at start.
 */
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import createDebug from 'debug'
import { settleAll } from '../../settle-all.js'
import { hasErrno, holdsLayerDirs, sweepScratch } from '../../graphdriver/index.js'
import { OverlayLayerCorruptError } from './errors.js'
import type { OverlayLayout } from './layout.js'
import { COMMITTED_FILE, formatLower, LINK_DIR, parseLink, parseLower, SCRATCH_MARK, scratchName, WORK_DIR } from './layout.js'

const debug = createDebug('layerstore:overlay')

/** What the driver reads from a layer's dir to mount or diff it. */
export interface OverlayLayerInfo {
  /** The layer's own link id. */
  readonly link: string
  /** Its `lower` entries (`l/<link>`), top first; empty for a base layer. */
  readonly lowers: readonly string[]
  /**
   * Mount read-only (see layout.ts): the `committed` marker exists, or the layer has a parent
   * and no `work/` dir (an image layer, which never had an upper).
   */
  readonly committed: boolean
}

/**
 * Reads a layer's `link`, `lower`, and whether it is committed (see
 * {@link OverlayLayerInfo.committed}). `OverlayLayerCorruptError` when `link` or `lower` is
 * empty or malformed (a crash before moby's atomic writes; moby/moby#46498).
 */
export async function readLayerInfo(layout: OverlayLayout, id: string): Promise<OverlayLayerInfo> {
  const linkFile = layout.linkFile(id)
  const lowerFile = layout.lowerFile(id)
  const [linkText, lowerText, names] = await Promise.all([
    readFile(linkFile, 'utf8').catch((err: unknown) => {
      throw new OverlayLayerCorruptError(id, linkFile, 'cannot read the link file', { cause: err })
    }),
    readFile(lowerFile, 'utf8').catch((err: unknown) => {
      if (hasErrno(err, 'ENOENT')) return null // a base layer
      throw err
    }),
    // One listing answers both `committed` and `work/`, in one thread-pool trip: measured
    // a little cheaper than the one `stat` of the marker it replaces (a missing file's
    // rejection costs more than the few names), and than two stats.
    readdir(layout.layerDir(id)).catch((err: unknown) => {
      if (hasErrno(err, 'ENOENT')) return [] as string[] // the link read names the missing layer
      throw err
    }),
  ])
  const link = parseLink(linkText)
  if (link === null) throw new OverlayLayerCorruptError(id, linkFile, `not a link id: ${JSON.stringify(linkText)}`)
  const lowers = lowerText === null ? [] : parseLower(lowerText)
  if (lowers === null) throw new OverlayLayerCorruptError(id, lowerFile, `malformed: ${JSON.stringify(lowerText?.slice(0, 80))}`)
  // A base layer without the marker may be a read-write layer of a store written before
  // image layers lost their `work/` (base layers had none then): only the marker counts.
  const committed = names.includes(COMMITTED_FILE) || (lowers.length > 0 && !names.includes(WORK_DIR))
  return { link, lowers, committed }
}

/** What {@link makeLayerDir} writes for a new layer. */
export interface NewLayerFiles {
  readonly id: string
  /** Its link id (`l/<link>` → `../<id>/diff`). */
  readonly link: string
  /** Its `lower` entries, top first; none for a base layer, which gets no `lower`. */
  readonly lowers: readonly string[]
  /** Make `work/` (a read-write layer, whose `diff/` is an upper). */
  readonly work: boolean
  /** Write the layer's own `committed` marker (a base image layer: see layout.ts). */
  readonly committed: boolean
  /** A parent whose `committed` marker is to be written too, if any. */
  readonly markParent: string | null
}

/**
 * Makes a layer's directory, its files and its `l/` link. Built under a scratch name and
 * renamed into place last, so `<id>/` is never seen half made; the link is made with the
 * files, before the rename, and dangles until then. Rejects with the failing step's error
 * (EEXIST or ENOTEMPTY when `<id>/` exists), leaving nothing of its own behind.
 */
export async function makeLayerDir(layout: OverlayLayout, files: NewLayerFiles): Promise<void> {
  const { id, lowers } = files
  const tmp = join(layout.home, scratchName(id, 'creating'))
  const linkPath = layout.linkPath(files.link)
  let linked = false
  try {
    await mkdir(tmp, { mode: 0o710 })
    // Independent steps run together: a create is a dozen small syscalls, and their thread
    // pool round trips, not the kernel, are most of its time.
    await settleAll([
      mkdir(join(tmp, 'diff'), { mode: 0o755 }),
      writeFile(join(tmp, 'link'), files.link, { mode: 0o644 }),
      ...(lowers.length === 0 ? [] : [writeFile(join(tmp, 'lower'), formatLower(lowers), { mode: 0o644 })]),
      ...(files.work ? [mkdir(join(tmp, WORK_DIR), { mode: 0o700 })] : []),
      ...(files.markParent === null ? [] : [writeFile(layout.committedFile(files.markParent), '', { mode: 0o600 })]),
      ...(files.committed ? [writeFile(join(tmp, COMMITTED_FILE), '', { mode: 0o600 })] : []),
      symlink(`../${id}/diff`, linkPath).then(() => void (linked = true)),
    ])
    await rename(tmp, layout.layerDir(id))
  } catch (err) {
    if (linked) await unlink(linkPath).catch(() => undefined)
    await rm(tmp, { recursive: true, force: true })
    throw err
  }
}

/**
 * Gives a committed layer the `work/` a writable view of it needs (`get(id, { writable: true })`
 * on an image layer, which has none). The `committed` marker is written first: a layer with
 * `work/` is read-write unless marked, and this one must stay read-only for every other `get`,
 * also if the process dies between the two steps. Idempotent.
 */
export async function makeWorkDir(layout: OverlayLayout, id: string): Promise<void> {
  await writeFile(layout.committedFile(id), '', { mode: 0o600 })
  await mkdir(layout.workDir(id), { mode: 0o700 }).catch((err: unknown) => {
    if (!hasErrno(err, 'EEXIST')) throw err
  })
}

/** The absolute diff dirs of a layer's lowers (each `l/` link resolved), top first. */
export async function resolveLowerDirs(layout: OverlayLayout, info: OverlayLayerInfo): Promise<string[]> {
  return Promise.all(
    info.lowers.map(async (entry) => join(layout.linkDir, await readlink(layout.resolveEntry(entry)))),
  )
}

/**
 * Creates the home's skeleton (`l/`), sweeps scratch dirs a crashed process left, and
 * re-creates `l/` links that are missing (moby/moby#46498: a lost link made every mount of
 * every child fail with ELOOP). Idempotent; O(layers).
 */
export async function maintainHome(layout: OverlayLayout): Promise<void> {
  await mkdir(layout.home, { recursive: true, mode: 0o710 })
  await mkdir(layout.linkDir, { recursive: true, mode: 0o700 })
  const now = Date.now()
  for (const entry of await readdir(layout.home, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name === LINK_DIR) continue
    if (entry.name.includes(SCRATCH_MARK)) await sweepScratch(layout.home, entry.name, now)
    else await repairLink(layout, entry.name)
  }
}

// Re-creates `l/<link>` for a layer whose link file is sound but whose link is missing.
async function repairLink(layout: OverlayLayout, id: string): Promise<void> {
  const text = await readFile(layout.linkFile(id), 'utf8').catch(() => null)
  const link = text === null ? null : parseLink(text)
  if (link === null) return // not a layer of ours, or damaged: reported when used
  const path = layout.linkPath(link)
  try {
    await lstat(path)
  } catch (err) {
    if (!hasErrno(err, 'ENOENT')) throw err
    debug('re-creating missing link %s for layer %s', link, id)
    await symlink(`../${id}/diff`, path)
    // A removal in another process (outside the store lock) may have renamed the layer away
    // and unlinked its link since we read it: then our link would dangle forever.
    if (!(await stat(layout.layerDir(id)).then(() => true, () => false))) await unlinkIfOurs(layout, link, id)
  }
}

/**
 * Removes `l/<link>` only if it points at layer `id`, so that a damaged `link` file of one
 * layer can never unlink another layer's link.
 */
export async function unlinkIfOurs(layout: OverlayLayout, link: string, id: string): Promise<void> {
  const path = layout.linkPath(link)
  const target = await readlink(path).catch(() => null)
  if (target === `../${id}/diff`) await unlink(path).catch(() => undefined)
}

/** True if `home` holds at least one overlay layer (a dir with a `link` file). */
export function overlayHoldsLayers(home: string): Promise<boolean> {
  return holdsLayerDirs(home, 'link', [LINK_DIR])
}

