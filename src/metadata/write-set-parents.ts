/**
 * The parents that live write sets hold. A register (or a RW-layer create) records its
 * parent in its write set under the store lock, after checking that the parent exists; from
 * then until its commit or cancel, the set holds the parent the way the committed child will:
 * a deletion deciding under the lock reads these holds as it reads children. Only sets of
 * live owners count; a dead process's set holds nothing (it is an orphan).
 *
 * This costs a register one small file in a directory it makes anyway, instead of a durable
 * reference added to the parent's `references.json` and removed again (two atomic
 * replacements, four fsyncs): the hold needs no durability, since it dies with its process.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { errnoOf, ioError, readOptional } from './durable-fs.js'
import type { ChainID } from './ids.js'
import { parseChainID } from './ids.js'
import { LAYER_FILES, LayerDbLayout } from './layout.js'
import type { OwnerProbe } from './owner.js'

/**
 * Chain ID → how many live write sets name it as their parent. Call under the store lock
 * (parents are written under it, so no set is half-written then). A set that vanishes while
 * it is read (committed or cancelled meanwhile) is skipped.
 */
export async function scanWriteSetParents(layout: LayerDbLayout, owners: OwnerProbe): Promise<Map<ChainID, number>> {
  let names: string[]
  try {
    names = await readdir(layout.tmpDir)
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return new Map()
    throw ioError('readdir', layout.tmpDir, err)
  }
  const held = new Map<ChainID, number>()
  for (const name of names) {
    const parsed = LayerDbLayout.parseTmpName(name)
    if (parsed.type !== 'write-set') continue
    // ENOENT (undefined) when the set was committed or cancelled since the listing.
    const bytes = await readOptional(join(layout.tmpDir, name, LAYER_FILES.parent))
    const id = bytes === undefined ? undefined : chainIDOrUndefined(bytes.toString('utf8'))
    if (id === undefined || !(await owners.isAlive(parsed.owner))) continue
    held.set(id, (held.get(id) ?? 0) + 1)
  }
  return held
}

function chainIDOrUndefined(text: string): ChainID | undefined {
  try {
    return parseChainID(text)
  } catch {
    return undefined
  }
}
