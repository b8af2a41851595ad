/**
 * The archive module: applying a layer tar to a directory (whiteouts, ownership, modes, times,
 * xattrs, devices, hardlinks, breakout protection), the changes between two trees, and
 * exporting changes as a layer tar. One `export … from` line per file.
 */
export * from './errors.js'
export * from './apply.js'
export { changes, overlayChanges } from './changes.js'
export type { Change, ChangeKind, ChangesOptions } from './changes.js'
export * from './export.js'
export { LowerView, isOpaqueDir, isWhiteout } from './lower-view.js'
export { WHITEOUT_PREFIX, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, OVERLAY_OPAQUE_XATTR, isOverlayXattr } from './whiteout.js'
export { bytesOfText, changePathBytes, changePathFromBytes } from './byte-path.js'
export { removeTreeAsync } from './remove-tree.js'
