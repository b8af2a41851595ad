/**
 * The named points of each metadata operation where a test may kill the process, to check
 * that reopening shows the old state or the new and that the orphan scan finds the rest.
 * The hook is a constructor option (a seam), never read from the environment here.
 */

/** Every crash point, in the order an operation passes them. */
export const CRASH_POINTS = [
  // Transaction.commit(chainID)
  'commit:before-sync',
  'commit:before-rename',
  'commit:after-rename',
  'commit:after-sync',
  // Transaction.commitMount(name)
  'commit-mount:before-sync',
  'commit-mount:before-rename',
  'commit-mount:after-rename',
  'commit-mount:after-sync',
  // FileMetadataStore.markRemoving / markMountRemoving / removeMarked
  'remove:before-mark',
  'remove:after-mark',
  'remove:mid-delete',
  'remove:after-delete',
  // FileMetadataStore.writeExtra (references.json and other extra files)
  'extra:before-rename',
  'extra:after-rename',
] as const

/** One named crash point. */
export type CrashPoint = (typeof CRASH_POINTS)[number]

/**
 * Called as each point is passed. Tests pass a function that SIGKILLs the process at one
 * point; production code passes nothing.
 */
export type CrashPointHook = ((point: CrashPoint) => void) | undefined
