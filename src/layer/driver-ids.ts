/**
 * Which driver layers the orphan sweep may consider: the driver's own `list()`, narrowed to
 * ids this store could have made. The store never reads a driver's home to find them: the
 * layout is the driver's business, and only the driver knows its bookkeeping and scratch.
 */
import type { Driver } from '../graphdriver/index.js'

/**
 * The ids this store gives driver layers: cache IDs and mount IDs (64 hex digits) and init
 * IDs (`<mount ID>-init`). A listed layer of any other name was made by someone else sharing
 * the driver's home (a test, a tool driving the driver directly): no record of ours could
 * ever name it, so treating it as an orphan would delete what is not ours.
 */
const STORE_ID_RE = /^[0-9a-f]{64}(?:-init)?$/

/** Every layer id the driver holds that has the shape of a store-made id, sorted. */
export async function listDriverIDs(driver: Driver): Promise<string[]> {
  return (await driver.list()).filter((id) => STORE_ID_RE.test(id)).sort()
}
