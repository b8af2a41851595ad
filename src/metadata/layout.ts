/**
 * Every path of the layerdb. This is the only place in layerstore that knows them (STYLE.md
 * §6): the layer store asks the metadata store to act, it never builds these paths itself.
 *
 * ```
 * <root>/layerstore.lock                  the store lock (ours)
 * <root>/image/<driver>/layerdb/           moby-compatible metadata
 *   sha256/<hex>/                          diff, size, cache-id, parent, descriptor.json,
 *                                          tar-split.json.gz, + our extra *.json files
 *   sha256/<hex>-<token64>-removing/       a layer whose deletion began (moby's marker)
 *   mounts/<name>/                         mount-id, init-id, parent, + our extra *.json
 *   mounts/<name>-<token64>-removing/      a RW layer whose deletion began (ours)
 *   tmp/write-set-<owner>-<rand>/          an open transaction
 *   tmp/atomic-<owner>-<rand>              a file being replaced atomically
 *   tmp/owner-<owner>.lock                 held locked by the process that owns <owner>
 * ```
 *
 * `<owner>` is 32 hex digits naming one open metadata store; its lock file tells whether
 * the intents it left (write sets, temp files, `-removing` dirs) are still in progress.
 * A removal token is the owner followed by 32 random hex digits, so it still has the 64 hex
 * digits moby's own `-removing` names carry.
 */
import { join } from 'node:path'
import { InvalidIDError } from './errors.js'
import { chainIDFromHex, digestHex, isDigestHex } from './ids.js'
import type { ChainID } from './ids.js'

/** moby's files in a layer directory. */
export const LAYER_FILES = {
  diff: 'diff',
  size: 'size',
  cacheID: 'cache-id',
  parent: 'parent',
  descriptor: 'descriptor.json',
  tarSplit: 'tar-split.json.gz',
} as const

/** moby's files in a mount directory. */
export const MOUNT_FILES = {
  mountID: 'mount-id',
  initID: 'init-id',
  parent: 'parent',
} as const

/** Our file of reference holders beside moby's files in a layer directory. */
export const REFERENCES_FILE = 'references.json'

const MOBY_FILE_NAMES: ReadonlySet<string> = new Set([...Object.values(LAYER_FILES), ...Object.values(MOUNT_FILES)])
const EXTRA_FILE_RE = /^[a-z0-9][a-z0-9._-]*\.json$/
const OWNER_RE = /^[0-9a-f]{32}$/
const REMOVING_RE = /^(.+)-([0-9a-f]{64})-removing$/
const MAX_NAME_BYTES = 255

/** The store lock file of a data root (one lock for the whole root, every driver). */
export function storeLockPath(root: string): string {
  return join(root, 'layerstore.lock')
}

/**
 * Checks a mount (RW layer) name: a single path component of at most 255 bytes, not hidden,
 * without NUL, and not ending in `-removing` (that suffix marks deletions in `mounts/`).
 * moby checks nothing; a name is a directory name here, so it must not reach elsewhere.
 */
export function checkMountName(name: string): void {
  const why =
    name === ''
      ? 'empty'
      : /[/\0]/.test(name)
        ? 'contains "/" or NUL'
        : name.startsWith('.')
          ? 'starts with "."'
          : Buffer.byteLength(name) > MAX_NAME_BYTES
            ? 'longer than 255 bytes'
            : name.endsWith('-removing')
              ? 'ends in "-removing"'
              : undefined
  if (why) throw new InvalidIDError('mount-name', name, why)
}

/**
 * Checks the name of an extra file of ours: lowercase `*.json`, and none of moby's names, so
 * that what we add never changes the meaning of moby's files.
 */
export function checkExtraFileName(file: string): void {
  if (!EXTRA_FILE_RE.test(file) || MOBY_FILE_NAMES.has(file)) {
    throw new InvalidIDError('extra-file', file, 'want a lowercase "*.json" name that is not one of moby\'s files')
  }
}

/** What a name in `tmp/` is. */
export type TmpEntry =
  | { readonly type: 'owner'; readonly owner: string }
  | { readonly type: 'write-set'; readonly owner: string }
  | { readonly type: 'atomic'; readonly owner: string }
  | { readonly type: 'foreign' } // moby's `write-set-<digits>` or anything else

/** What a name in `sha256/` or `mounts/` is. */
export type RecordEntry =
  | { readonly type: 'record'; readonly name: string }
  | { readonly type: 'removing'; readonly name: string; readonly owner: string }
  | { readonly type: 'other' }

/** The paths of one driver's layerdb under a data root. */
export class LayerDbLayout {
  /** The data root (`/var/lib/layerstore`, or a Docker root such as `/var/lib/docker`). */
  readonly dataRoot: string
  readonly driverName: string
  /** `<root>/image/<driver>/layerdb`. */
  readonly root: string
  readonly tmpDir: string
  readonly sha256Dir: string
  readonly mountsDir: string

  constructor(dataRoot: string, driverName: string) {
    if (driverName === '' || /[/\0]/.test(driverName) || driverName.startsWith('.')) {
      throw new InvalidIDError('driver-name', driverName, 'must be one path component')
    }
    this.dataRoot = dataRoot
    this.driverName = driverName
    this.root = join(dataRoot, 'image', driverName, 'layerdb')
    this.tmpDir = join(this.root, 'tmp')
    this.sha256Dir = join(this.root, 'sha256')
    this.mountsDir = join(this.root, 'mounts')
  }

  /** The store lock of this layout's data root. */
  get storeLockPath(): string {
    return storeLockPath(this.dataRoot)
  }

  /** `sha256/<hex>/` of a committed layer. */
  layerDir(chainID: ChainID): string {
    return join(this.sha256Dir, digestHex(chainID))
  }

  /** A file in a committed layer's directory. */
  layerFile(chainID: ChainID, file: string): string {
    return join(this.layerDir(chainID), file)
  }

  /** `sha256/<hex>-<token>-removing/`. */
  removingLayerDir(chainID: ChainID, token: string): string {
    return join(this.sha256Dir, `${digestHex(chainID)}-${token}-removing`)
  }

  /** `mounts/<name>/` of a committed RW layer. */
  mountDir(name: string): string {
    checkMountName(name)
    return join(this.mountsDir, name)
  }

  /** A file in a mount's directory. */
  mountFile(name: string, file: string): string {
    return join(this.mountDir(name), file)
  }

  /** `mounts/<name>-<token>-removing/`. */
  removingMountDir(name: string, token: string): string {
    checkMountName(name)
    return join(this.mountsDir, `${name}-${token}-removing`)
  }

  /** `tmp/owner-<owner>.lock`. */
  ownerLockFile(owner: string): string {
    return join(this.tmpDir, `owner-${owner}.lock`)
  }

  /** `tmp/write-set-<owner>-<rand>/`. */
  writeSetDir(owner: string, rand: string): string {
    return join(this.tmpDir, `write-set-${owner}-${rand}`)
  }

  /** `tmp/atomic-<owner>-<rand>`. */
  atomicTempFile(owner: string, rand: string): string {
    return join(this.tmpDir, `atomic-${owner}-${rand}`)
  }

  /** Classifies a name found in `tmp/`. */
  static parseTmpName(name: string): TmpEntry {
    const m = /^(owner|write-set|atomic)-([0-9a-f]{32})(?:-([0-9a-f]+)|\.lock)$/.exec(name)
    if (m) {
      const [, type, owner, rand] = m
      if (type === 'owner' && rand === undefined) return { type: 'owner', owner: owner! }
      if (type === 'write-set' && rand !== undefined) return { type: 'write-set', owner: owner! }
      if (type === 'atomic' && rand !== undefined) return { type: 'atomic', owner: owner! }
    }
    return { type: 'foreign' }
  }

  /**
   * Classifies a name found in `sha256/`: a committed layer (64 hex) or a `-removing` marker.
   * moby's markers have a random 64-hex middle; its first half is then an owner that never
   * existed, so they count as abandoned.
   */
  static parseLayerDirName(name: string): RecordEntry {
    if (isDigestHex(name)) return { type: 'record', name }
    const m = REMOVING_RE.exec(name)
    if (m && isDigestHex(m[1]!)) return { type: 'removing', name: m[1]!, owner: m[2]!.slice(0, 32) }
    return { type: 'other' }
  }

  /** Classifies a name found in `mounts/`. */
  static parseMountDirName(name: string): RecordEntry {
    const m = REMOVING_RE.exec(name)
    if (m) return { type: 'removing', name: m[1]!, owner: m[2]!.slice(0, 32) }
    try {
      checkMountName(name)
      return { type: 'record', name }
    } catch {
      return { type: 'other' }
    }
  }

  /** The chain ID of a committed layer's directory name. */
  static chainIDOfDir(hex: string): ChainID {
    return chainIDFromHex(hex)
  }

  /** True when `owner` has the shape of an owner ID. */
  static isOwnerID(owner: string): boolean {
    return OWNER_RE.test(owner)
  }
}
