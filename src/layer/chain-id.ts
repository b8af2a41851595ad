/**
 * Chain IDs as the OCI image spec defines them, and moby's empty layer.
 */
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { parseChainID, parseDiffID } from '../metadata/index.js'
import type { ChainID, DiffID } from '../metadata/index.js'

/**
 * The chain ID of a layer: its diff ID for a base layer, else
 * `sha256("<parent chain ID> <diff ID>")` (both with their `sha256:` prefix, one space).
 */
export function chainIDOf(parent: ChainID | null, diffID: DiffID): ChainID {
  const diff = parseDiffID(diffID)
  if (parent === null) return diff as string as ChainID
  const text = `${parseChainID(parent)} ${diff}`
  return `sha256:${createHash('sha256').update(text, 'latin1').digest('hex')}` as ChainID
}

/** The chain ID of a stack of diff IDs, base first (OCI `identity.ChainID`). Null when empty. */
export function chainIDOfStack(diffIDs: readonly DiffID[]): ChainID | null {
  let chain: ChainID | null = null
  for (const diff of diffIDs) chain = chainIDOf(chain, diff)
  return chain
}

/** A diff ID from the hex of a sha256 digest. */
export function diffIDFromHex(hex: string): DiffID {
  return parseDiffID(`sha256:${hex}`)
}

/** What an empty tar writer emits on close: two 512-byte zero blocks. */
export const EMPTY_TAR_BYTES = 1024

/**
 * moby's `DigestSHA256EmptyTar`: the diff ID (and chain ID) of a layer whose tar holds
 * nothing but the end-of-archive marker.
 */
export const EMPTY_LAYER_DIFF_ID = parseDiffID('sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef')

/** True when `diffID` is the empty layer's (moby's `IsEmpty`). */
export function isEmptyLayer(diffID: DiffID): boolean {
  return diffID === EMPTY_LAYER_DIFF_ID
}

/**
 * The tar of moby's `EmptyLayer`: 1024 zero bytes. The empty layer is never stored by this
 * constant; registering an empty tar stores an ordinary layer with that digest, as moby does.
 */
export function emptyLayerTarStream(): Readable {
  return Readable.from([Buffer.alloc(EMPTY_TAR_BYTES)])
}
