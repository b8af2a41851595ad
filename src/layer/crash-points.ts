/**
 * The named points of the layer store's operations where a test may kill the process, to
 * check that a reopened store holds the old state or the new and that nothing is orphaned
 * after open. The metadata module's own points (`commit:*`, `remove:*`, `extra:*`) are passed
 * to the same hook. The hook is a constructor option, never read from the environment.
 */
import type { CrashPoint } from '../metadata/index.js'

/** The layer store's own crash points, in the order an operation passes them. */
export const LAYER_CRASH_POINTS = [
  // register (and commit of a RW layer, which registers its diff)
  'register:after-create', // driver directory made, transaction open
  'register:after-apply', // files applied, tar-split written, nothing committed
  'register:before-commit', // every record file written into the write set
  'register:after-commit', // layer committed (its record holds the parent now), lock still held
  // release
  'release:after-holders', // references.json rewritten, nothing marked yet
  // RW layer create
  'rw-create:after-init', // init layer made and filled
  'rw-create:after-create', // RW driver layer made, nothing committed
  'rw-create:after-commit', // mount record committed, the parent still held by the session
  // deletion of a layer or RW layer (release, releaseRWLayer, cleanup)
  'delete:after-mark', // records renamed to -removing, driver data intact
  'delete:after-driver-remove', // driver data gone, the -removing records left
] as const

/** One of the layer store's own crash points. */
export type LayerCrashPoint = (typeof LAYER_CRASH_POINTS)[number]

/** Any crash point the store's hook may see: its own or the metadata store's. */
export type StoreCrashPoint = LayerCrashPoint | CrashPoint

/** The hook: called as each point is passed. Production code passes nothing. */
export type StoreCrashHook = (point: StoreCrashPoint) => void
