/**
 * The native module: the syscalls Node lacks (mounts and the new mount API, xattrs, mknod,
 * exact utimensat, renameat2, openat2, reflinks, syncfs, flock), through koffi. The only
 * place in layerstore that knows about FFI; everything else imports this file.
 * One `export … from` line per file, so that parallel additions merge trivially.
 */
export * from './errors.js'
export { AT_FDCWD } from './libc.js'
export * from './mount.js'
export * from './overlay-mount.js'
export * from './xattr.js'
export * from './file-ops.js'
export * from './openat2.js'
export * from './lock.js'
export * from './mountinfo.js'
export * from './relative-mounter.js'
export { prewarmBlockingCalls } from './async-call.js'
