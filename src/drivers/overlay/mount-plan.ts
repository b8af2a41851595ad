/**
 * Plan, then act: how to mount one overlay layer, computed from its metadata by a pure
 * function, so that the logic that fits 128 lower dirs into the kernel's limits is testable
 * without root. `mounts.ts` performs a plan.
 *
 * The kernel's limits, and the four ways out:
 *
 * - A base layer (no lower) cannot be an overlay: overlayfs needs an upper dir or at least
 *   two lower dirs. Its view is a bind mount of `diff/` (read-only: bind, then remount
 *   `MS_RDONLY`; a bind with the flag alone stays writable).
 * - **`lowerdir+`** (Linux 6.8+, new mount API): one fsconfig call per layer, each value a
 *   path of its own. No page budget, but fsconfig copies a string value with a 256-byte cap
 *   (`strndup_user(value, 256)`): each path must stay under 256 bytes. Lower dirs are given
 *   as their `l/` links (`<home>/l/<26 chars>`), the shortest absolute form.
 * - **mount(2), absolute paths**: the whole option string in one page, NUL included
 *   (4096 bytes; exactly 4096 fails, containers/storage#1159). Fits ~70 lowers under a short
 *   home.
 * - **mount(2), relative paths**: `lowerdir=l/A:l/B…,upperdir=<id>/diff,…`, resolved against
 *   the mounting thread's working directory, which must be home (29 bytes per lower: 128
 *   fit). Node cannot change one thread's cwd, so `mounts.ts` mounts through native's
 *   `RelativeMounter`, a thread that unshares its fs context (moby's `mountFrom`).
 */

/** The kernel's cap on mount(2)'s data argument: one page, NUL included. */
export const MOUNT_DATA_LIMIT = 4096

/** The kernel's cap on one fsconfig string value, NUL included (fs/fsopen.c). */
export const FSCONFIG_VALUE_LIMIT = 256

/** What the planner needs to know about a layer and the kernel. */
export interface OverlayMountInput {
  /** Absolute driver home. */
  readonly home: string
  /** The layer id. */
  readonly id: string
  /** The layer's own link id (its `link` file). */
  readonly link: string
  /** The layer's `lower` entries (`l/<link>`, relative to home), top first; empty for a base. */
  readonly lowers: readonly string[]
  /** True: a read-only view (no upper dir; the layer's diff becomes the top lower). */
  readonly readOnly: boolean
  /** Overlay parameters to pass, e.g. `index=off`; `key=value` or bare flags. */
  readonly options: readonly string[]
  /** Which mount interface to use: the new API (`lowerdir+`) or mount(2). */
  readonly api: 'lowerdir+' | 'mount-data'
  /** SELinux label, passed as `context="…"`. */
  readonly mountLabel?: string
  /** mount(2)'s data budget; default {@link MOUNT_DATA_LIMIT}. */
  readonly pageSize?: number
}

/** A bind mount of the layer's own dir (base layers). */
export interface BindMountPlan {
  readonly method: 'bind'
  readonly source: string
  readonly target: string
  readonly readOnly: boolean
}

/** An overlay through the new mount API, one `lowerdir+` per layer; absolute paths. */
export interface LowerdirAppendPlan {
  readonly method: 'lowerdir+'
  readonly lowerDirs: readonly string[]
  readonly upperDir?: string
  readonly workDir?: string
  readonly target: string
  readonly options: readonly string[]
  readonly readOnly: boolean
}

/**
 * An overlay through mount(2). With `cwd` null every path in `data` is absolute; otherwise
 * they are relative to `cwd` (home), and so is `target`.
 */
export interface MountDataPlan {
  readonly method: 'mount-data'
  readonly data: string
  readonly target: string
  readonly cwd: string | null
  readonly readOnly: boolean
}

/** One way to mount a layer; see the file comment. */
export type OverlayMountPlan = BindMountPlan | LowerdirAppendPlan | MountDataPlan

/** Why no plan fits: the shortest form and the budget it exceeds. */
export interface PlanTooLong {
  readonly method: 'too-long'
  /** Bytes the shortest candidate needs (NUL included). */
  readonly length: number
  readonly limit: number
}

// Characters with a meaning inside mount(2)'s option string ("," between options, ":"
// between lowers, "\" escapes them). Paths from home containing one go relative instead.
const DATA_SPECIALS = /[,:\\]/

/**
 * Computes how to mount layer `input.id` at `<home>/<id>/merged`. Pure. Returns
 * {@link PlanTooLong} when nothing fits (the caller raises `OverlayMountTooLongError`).
 */
export function planOverlayMount(input: OverlayMountInput): OverlayMountPlan | PlanTooLong {
  const { home, id } = input
  const abs = (rel: string): string => (home.endsWith('/') ? home + rel : `${home}/${rel}`)
  const target = abs(`${id}/merged`)
  const ownLink = `l/${input.link}`

  if (input.lowers.length === 0) {
    return { method: 'bind', source: abs(`${id}/diff`), target, readOnly: input.readOnly }
  }

  const options = [...input.options]
  if (input.mountLabel) options.push(`context="${input.mountLabel}"`)

  // Read-only: the layer's own diff is the top lower and there is no upper. Read-write: the
  // diff is the upper. Lowers are named by their short link either way.
  const lowersRel = input.readOnly ? [ownLink, ...input.lowers] : [...input.lowers]
  const upperRel = input.readOnly ? undefined : `${id}/diff`
  const workRel = input.readOnly ? undefined : `${id}/work`

  if (input.api === 'lowerdir+') {
    const lowerDirs = lowersRel.map(abs)
    const upperDir = upperRel === undefined ? undefined : abs(upperRel)
    const workDir = workRel === undefined ? undefined : abs(workRel)
    const values = [...lowerDirs, ...(upperDir ? [upperDir] : []), ...(workDir ? [workDir] : []), ...options]
    const longest = Math.max(...values.map((v) => Buffer.byteLength(v) + 1))
    if (longest <= FSCONFIG_VALUE_LIMIT) {
      return {
        method: 'lowerdir+',
        lowerDirs,
        ...(upperDir ? { upperDir } : {}),
        ...(workDir ? { workDir } : {}),
        target,
        options,
        readOnly: input.readOnly,
      }
    }
    // A path too long for fsconfig still fits mount(2) relative to home: fall through.
  }

  const limit = input.pageSize ?? MOUNT_DATA_LIMIT
  const data = (paths: (p: string) => string): string =>
    [
      ...options,
      `lowerdir=${lowersRel.map(paths).join(':')}`,
      ...(upperRel ? [`upperdir=${paths(upperRel)}`, `workdir=${paths(workRel ?? '')}`] : []),
    ].join(',')

  if (!DATA_SPECIALS.test(home)) {
    const absolute = data(abs)
    if (Buffer.byteLength(absolute) + 1 <= limit) {
      return { method: 'mount-data', data: absolute, target, cwd: null, readOnly: input.readOnly }
    }
  }
  const relative = data((p) => p)
  const length = Buffer.byteLength(relative) + 1
  if (length <= limit) {
    return { method: 'mount-data', data: relative, target: `${id}/merged`, cwd: home, readOnly: input.readOnly }
  }
  return { method: 'too-long', length, limit }
}
