/**
 * The identifiers of the layerdb, as branded strings so that a diff ID cannot go where a
 * chain ID belongs (moby keeps them apart by convention only). Every parser validates the
 * way moby does on read, and throws `InvalidIDError` otherwise.
 */
import { randomBytes } from 'node:crypto'
import { InvalidIDError } from './errors.js'

declare const brand: unique symbol
type Branded<B extends string> = string & { readonly [brand]: B }

/** `sha256:<64 hex>` naming a layer together with all its parents (OCI chain ID). */
export type ChainID = Branded<'ChainID'>
/** `sha256:<64 hex>` of one layer's uncompressed tar. */
export type DiffID = Branded<'DiffID'>
/** The graph driver's ID of a read-only layer (moby writes 64 random hex; older roots differ). */
export type CacheID = Branded<'CacheID'>
/** The graph driver's ID of a RW layer (`mount-id`) or of its init layer (`init-id`). */
export type MountID = Branded<'MountID'>

/** The only digest algorithm moby scans (`supportedAlgorithms`). */
export const DIGEST_ALGORITHM = 'sha256'
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/
const HEX64_RE = /^[0-9a-f]{64}$/
/** moby's `isValidID`: 64 lowercase hex, after removing an optional `-init` suffix. */
const MOBY_ID_RE = /^[0-9a-f]{64}(?:-init)?$/

/** moby trims with Go's `strings.TrimSpace`; these are the ASCII and Unicode spaces it removes. */
function trimSpace(text: string): string {
  return text.replace(/^[\s\u0085]+|[\s\u0085]+$/g, '')
}

/** True when `text` is `sha256:` followed by 64 lowercase hex digits. */
export function isDigest(text: string): boolean {
  return DIGEST_RE.test(text)
}

/** True when `text` is 64 lowercase hex digits (a layer directory name under `sha256/`). */
export function isDigestHex(text: string): boolean {
  return HEX64_RE.test(text)
}

function parseDigest(kind: 'chain-id' | 'diff-id', text: string): string {
  const value = trimSpace(text)
  if (!isDigest(value)) {
    throw new InvalidIDError(kind, text, 'want "sha256:" and 64 lowercase hex digits')
  }
  return value
}

/** Parses a chain ID (surrounding whitespace is trimmed, as moby does on read). */
export function parseChainID(text: string): ChainID {
  return parseDigest('chain-id', text) as ChainID
}

/** Parses a diff ID (surrounding whitespace is trimmed, as moby does on read). */
export function parseDiffID(text: string): DiffID {
  return parseDigest('diff-id', text) as DiffID
}

/** The 64 hex digits of a chain ID or diff ID (the directory name under `sha256/`). */
export function digestHex(id: ChainID | DiffID): string {
  return id.slice(DIGEST_ALGORITHM.length + 1)
}

/** The chain ID whose directory under `sha256/` is named `hex`. */
export function chainIDFromHex(hex: string): ChainID {
  if (!isDigestHex(hex)) throw new InvalidIDError('chain-id', hex, 'want 64 lowercase hex digits')
  return `${DIGEST_ALGORITHM}:${hex}` as ChainID
}

/**
 * Checks a driver ID that will become a directory name in the driver's home: not empty, no
 * `/` or NUL, not `.` or `..`. moby checks only non-emptiness for `cache-id`; the rest keeps
 * a corrupt file from steering the driver outside its home.
 */
function checkDriverID(kind: 'cache-id' | 'mount-id' | 'init-id', text: string, value: string): void {
  if (value === '') throw new InvalidIDError(kind, text, `invalid ${kind} value: empty`)
  if (value === '.' || value === '..' || /[/\0]/.test(value)) {
    throw new InvalidIDError(kind, text, 'not usable as a directory name')
  }
}

/** Parses a `cache-id` (trimmed; moby: empty is "invalid cache id value"). */
export function parseCacheID(text: string): CacheID {
  const value = trimSpace(text)
  checkDriverID('cache-id', text, value)
  return value as CacheID
}

/**
 * Parses a `mount-id` or `init-id` with moby's `isValidID`: exactly 64 lowercase hex, after
 * removing an optional `-init` suffix.
 */
export function parseMountID(text: string, kind: 'mount-id' | 'init-id' = 'mount-id'): MountID {
  const value = trimSpace(text)
  checkDriverID(kind, text, value)
  if (!MOBY_ID_RE.test(value)) {
    throw new InvalidIDError(kind, text, `invalid ${kind === 'mount-id' ? 'mount' : 'init'} id value: want 64 lowercase hex`)
  }
  return value as MountID
}

/**
 * A new random driver ID as moby's `stringid.GenerateRandomID` makes them: 64 lowercase hex,
 * drawn again when the first 12 characters are all digits (a short ID that looks like a
 * number confuses tools that accept either).
 */
export function newRandomID(): string {
  for (;;) {
    const id = randomBytes(32).toString('hex')
    if (!/^[0-9]{12}/.test(id)) return id
  }
}

/** A new random cache ID for a read-only layer. */
export function newCacheID(): CacheID {
  return newRandomID() as CacheID
}

/** A new random mount ID for a RW layer. */
export function newMountID(): MountID {
  return newRandomID() as MountID
}

/** The init layer's driver ID of a RW layer: `<mountID>-init`, a fixed suffix moby drivers expect. */
export function initIDFor(mountID: MountID): MountID {
  return `${mountID}-init` as MountID
}
