/**
 * Whiteouts: how a layer says "this path of the layers below is gone".
 *
 * In a layer tar (the AUFS convention every image uses) a deletion is an empty file
 * `.wh.<name>` beside the deleted name, and an opaque directory (whose lower contents are
 * hidden) holds an empty file `.wh..wh..opq`. Root-level names starting with `.wh..wh.` are
 * AUFS bookkeeping (`.wh..wh.plnk/`, `.wh..wh.aufs`) and carry nothing for us.
 *
 * On an overlayfs upper directory the same facts are a character device 0/0 named `<name>`
 * and the xattr `trusted.overlay.opaque=y` on the directory.
 */

/** Prefix of a whiteout file's name. */
export const WHITEOUT_PREFIX = '.wh.'
/** Prefix of AUFS metadata names (at the root of a layer). */
export const WHITEOUT_META_PREFIX = '.wh..wh.'
/** Name of the opaque-directory marker. */
export const WHITEOUT_OPAQUE = '.wh..wh..opq'
/** The xattr overlayfs reads to treat a directory as opaque. */
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque'
/** Its value for an opaque directory. */
export const OVERLAY_OPAQUE_VALUE: Buffer = Buffer.from('y')

/** What a member's base name means as a whiteout. */
export type WhiteoutKind =
  | { readonly kind: 'none' }
  | { readonly kind: 'opaque' }
  /** `name` is what it deletes; '' / '.' / '..' are invalid and refused by the caller. */
  | { readonly kind: 'delete'; readonly name: string }

const NONE: WhiteoutKind = Object.freeze({ kind: 'none' })
const OPAQUE: WhiteoutKind = Object.freeze({ kind: 'opaque' })

/** Classifies a base name (byte string). */
export function classifyWhiteout(base: string): WhiteoutKind {
  if (!base.startsWith(WHITEOUT_PREFIX)) return NONE
  if (base === WHITEOUT_OPAQUE) return OPAQUE
  return { kind: 'delete', name: base.slice(WHITEOUT_PREFIX.length) }
}

/** True for overlayfs's private xattrs (`trusted.overlay.*`, `user.overlay.*`). */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.')
}
