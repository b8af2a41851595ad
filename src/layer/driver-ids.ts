/**
 * Which layer IDs a driver holds, for the orphan sweep. The driver contract has no `list()`
 * yet (proposed: `ProtoDriver.list(): Promise<DriverLayerID[]>`); until every driver has one,
 * this helper finds candidates in the two layouts drivers use (`<home>/<id>` as overlay,
 * `<home>/dir/<id>` as vfs) and keeps only names the store itself could have made (64 hex
 * digits, optionally `-init`) that the driver confirms with `exists()`. So it never offers a
 * driver's own bookkeeping (overlay's `l/`) for removal, whatever the layout.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Driver } from '../graphdriver/index.js'

/** The IDs this store gives driver layers: cache IDs, mount IDs and init IDs. */
const STORE_ID_RE = /^[0-9a-f]{64}(?:-init)?$/

/** A driver that can list its layers itself (the proposed contract addition). */
interface ListingDriver {
  list(): Promise<readonly string[]>
}

function canList(driver: Driver): driver is Driver & ListingDriver {
  return typeof (driver as Partial<ListingDriver>).list === 'function'
}

async function names(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name)
  } catch {
    return []
  }
}

/** Every layer ID the driver holds that has the shape of a store-made ID. */
export async function listDriverIDs(driver: Driver): Promise<string[]> {
  if (canList(driver)) return [...(await driver.list())].filter((id) => STORE_ID_RE.test(id)).sort()
  const candidates = new Set([...(await names(driver.home)), ...(await names(join(driver.home, 'dir')))])
  const found: string[] = []
  for (const id of candidates) {
    if (STORE_ID_RE.test(id) && (await driver.exists(id))) found.push(id)
  }
  return found.sort()
}
