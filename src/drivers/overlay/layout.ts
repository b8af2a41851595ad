/**
 * The overlay driver's on-disk layout, compatible with Docker's overlay2:
 *
 * ```
 * <home>/                 0710  xattr trusted.layerstore.overlay-probe: a passed probe (probe-cache.ts)
 *   l/                    0700  short links: <LINKID> -> ../<id>/diff
 *   <id>/                 0710
 *     diff/               0755  the layer's own content (overlay upperdir of a RW layer)
 *     link                0644  LINKID: 26 chars of base32 (A-Z, 2-7)
 *     lower               0644  "l/<parent LINKID>:l/<grandparent LINKID>:…", top first;
 *                               absent for a base layer
 *     work/               0700  overlay workdir: made for a read-write layer only (and by a
 *                               writable get of an image layer, with `committed`)
 *     merged/             0700  mount point while mounted (made by get, removed by put)
 *     committed           0600  empty marker: mount this layer read-only from now on
 * ```
 *
 * A layer is committed (mounted read-only, its `diff/` a lower) when it has the `committed`
 * marker, or a parent and no `work/`. An image layer is read-only from birth, so it gets
 * neither (two inodes fewer per layer than before), except a base image layer, which keeps
 * the marker: read-write base layers had no `work/` before this rule, and must still read as
 * read-write. The marker is also written on a read-write parent when a child is made on it
 * (moby/moby#39663); it is what tells in a Docker root, whose every layer with a parent has
 * `work/`.
 *
 * Pure functions only: names, paths and the codecs of `link` and `lower`.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'

/** The short-link directory under home. */
export const LINK_DIR = 'l'

/** A layer's overlay work dir, under `<id>/`. */
export const WORK_DIR = 'work'

/** A layer's read-only marker, under `<id>/`. */
export const COMMITTED_FILE = 'committed'

/**
 * Length of a link id. 26 base32 chars keep `l/<id>:` at 29 bytes, so that 128 of them fit
 * in one mount(2) page with room for the upper and work dirs (moby's budget:
 * (26 + 2) × 128 ≤ 4096 − 512).
 */
export const LINK_ID_LENGTH = 26

const LINK_ID = /^[A-Z2-7]{26}$/
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/**
 * A fresh random link id: 17 random bytes in base32 (RFC 4648 alphabet), cut to 26 chars,
 * as moby's `overlayutils.GenerateID(26)` makes them.
 */
export function generateLinkID(): string {
  const bytes = randomBytes(17)
  let bits = 0
  let value = 0
  let out = ''
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
    value &= (1 << bits) - 1
  }
  return out.slice(0, LINK_ID_LENGTH)
}

/** True if `s` is a well-formed link id (26 chars of A–Z, 2–7). */
export function isLinkID(s: string): boolean {
  return LINK_ID.test(s)
}

/** The `lower` entry for a link id: `l/<id>`, relative to home. */
export function lowerEntry(linkID: string): string {
  return `${LINK_DIR}/${linkID}`
}

/** The text of a `lower` file: entries joined with `:`, top first, no newline. */
export function formatLower(entries: readonly string[]): string {
  return entries.join(':')
}

/**
 * Parses a `lower` file's text into its entries (top first). Returns null when any entry is
 * not `l/<link id>` (an empty file, a path that could point anywhere): the caller reports the
 * layer as damaged instead of handing the kernel a path it did not write.
 */
export function parseLower(text: string): string[] | null {
  const trimmed = text.trim()
  if (trimmed === '') return null
  const entries = trimmed.split(':')
  for (const entry of entries) {
    if (!entry.startsWith(`${LINK_DIR}/`) || !isLinkID(entry.slice(LINK_DIR.length + 1))) return null
  }
  return entries
}

/** Parses a `link` file's text; null unless it is one link id (a trailing newline is allowed). */
export function parseLink(text: string): string | null {
  const trimmed = text.trim()
  return isLinkID(trimmed) ? trimmed : null
}

/** The paths of one overlay home. Holds no state but the home. */
export class OverlayLayout {
  /** Absolute home directory. */
  readonly home: string

  constructor(home: string) {
    this.home = home
  }

  /** `<home>/l`. */
  get linkDir(): string {
    return join(this.home, LINK_DIR)
  }

  /** `<home>/<id>`. */
  layerDir(id: string): string {
    return join(this.home, id)
  }

  /** `<home>/<id>/diff`: the layer's own content. */
  diffDir(id: string): string {
    return join(this.home, id, 'diff')
  }

  /** `<home>/<id>/work`. */
  workDir(id: string): string {
    return join(this.home, id, WORK_DIR)
  }

  /** `<home>/<id>/merged`: the mount point. */
  mergedDir(id: string): string {
    return join(this.home, id, 'merged')
  }

  /** `<home>/<id>/link`. */
  linkFile(id: string): string {
    return join(this.home, id, 'link')
  }

  /** `<home>/<id>/lower`. */
  lowerFile(id: string): string {
    return join(this.home, id, 'lower')
  }

  /** `<home>/<id>/committed`. */
  committedFile(id: string): string {
    return join(this.home, id, COMMITTED_FILE)
  }

  /** `<home>/l/<linkID>`. */
  linkPath(linkID: string): string {
    return join(this.home, LINK_DIR, linkID)
  }

  /** The absolute path of a `lower` entry (`l/<id>` → `<home>/l/<id>`). */
  resolveEntry(entry: string): string {
    return join(this.home, entry)
  }
}

/**
 * Names under home that are never layer ids: a `~` in the name marks the driver's own scratch
 * directories (a layer being built, one being deleted, a probe), as in every driver with a
 * directory per layer (graphdriver's scratch.ts). A crashed process can leave them; the
 * driver sweeps them at start.
 */
export { SCRATCH_MARK, scratchName } from '../../graphdriver/index.js'


