/**
 * The file operations every layerdb write is made of, ordered for crash safety: a file is
 * fsynced before it is renamed into place, and the directory that received the rename is
 * fsynced after it (moby skips that last step, so a power loss can undo a commit it reported).
 * (Node opens every descriptor with O_CLOEXEC already, so none leaks into child processes.)
 */
import fs, { constants } from 'node:fs'
import { lstat, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { isKindedError } from '../errors.js'
import { syncfs } from '../native/index.js'
import { MetadataIOError } from './errors.js'

/** The errno name of a Node error, if any. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined
}

/** Wraps an fs failure in `MetadataIOError` (kinded errors pass through unchanged). */
export function ioError(op: string, path: string, err: unknown): Error {
  if (isKindedError(err)) return err
  return new MetadataIOError(op, path, errnoOf(err), { cause: err })
}

/**
 * Writes a whole file (0644, truncating) and, unless `sync` is false, fsyncs it before
 * closing, as moby's setters do. Unsynced writes are for files whose durability the caller
 * ensures later, all at once (a transaction's write set, covered by one `syncfs`).
 */
export function writeFileSynced(path: string, data: string | Buffer, sync = true): Promise<void> {
  // Callbacks, not a FileHandle: a register writes several small files per layer, and a
  // FileHandle's promises cost about twice the main thread's time of these three calls.
  const bytes = typeof data === 'string' ? Buffer.from(data) : data
  return new Promise((resolve, reject) => {
    fs.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644, (openErr, fd) => {
      if (openErr) return reject(ioError('write', path, openErr))
      const close = (failure: unknown): void =>
        fs.close(fd, (closeErr) => {
          const err: unknown = failure ?? closeErr
          if (err) reject(ioError('write', path, err))
          else resolve()
        })
      const written = (): void => (sync ? fs.fsync(fd, close) : close(null))
      const writeFrom = (offset: number): void => {
        if (offset >= bytes.length) return written()
        fs.write(fd, bytes, offset, bytes.length - offset, null, (err, n) => (err ? close(err) : writeFrom(offset + n)))
      }
      writeFrom(0)
    })
  })
}

/** fsyncs a directory, so that the names created or renamed in it survive a power loss. */
export async function fsyncDir(path: string): Promise<void> {
  let handle
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY)
    await handle.sync()
  } catch (err) {
    throw ioError('fsync', path, err)
  } finally {
    await handle?.close()
  }
}

/** fsyncs a regular file that was written without syncing (see `writeFileSynced`). */
export async function fsyncFile(path: string): Promise<void> {
  let handle
  try {
    handle = await open(path, constants.O_RDONLY)
    await handle.sync()
  } catch (err) {
    throw ioError('fsync', path, err)
  } finally {
    await handle?.close()
  }
}

/** The device number of the filesystem holding `path` (to tell whether one `syncfs` covers it). */
export async function deviceOf(path: string): Promise<number> {
  try {
    return (await stat(path)).dev
  } catch (err) {
    throw ioError('stat', path, err)
  }
}

/**
 * Flushes the whole filesystem that holds `path` with one `syncfs(2)`: the way driver data
 * (thousands of files of a layer) is made durable before its metadata is committed, instead
 * of one fsync per file.
 */
export async function syncFilesystemOf(path: string): Promise<void> {
  let handle
  try {
    handle = await open(path, constants.O_RDONLY)
    await syncfs(handle.fd)
  } catch (err) {
    throw ioError('syncfs', path, err)
  } finally {
    await handle?.close()
  }
}

/** Reads a file, or returns undefined when it does not exist. */
export async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path)
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined
    throw ioError('read', path, err)
  }
}

/** Renames, wrapping the failure. */
export async function renamePath(from: string, to: string): Promise<void> {
  try {
    await rename(from, to)
  } catch (err) {
    throw ioError('rename', from, err)
  }
}

/**
 * Replaces `target` with `data` atomically: written and fsynced at `tempPath` (same
 * filesystem), renamed over `target`, then `target`'s directory fsynced (unless `syncDir` is
 * false because the caller fsyncs it later, once for several names). A crash leaves the old
 * or the new content, and at worst an orphan at `tempPath`. `beforeRename` is a crash-point
 * seam for tests. `syncFile` false skips the file's fsync too: the rename is then atomic for
 * readers but not durable, for a caller that makes the whole directory durable later (a
 * write set, before its commit renames it).
 */
export async function replaceFile(
  tempPath: string,
  target: string,
  targetDir: string,
  data: string | Buffer,
  syncDir = true,
  beforeRename?: () => void,
  syncFile = true,
): Promise<void> {
  try {
    await writeFileSynced(tempPath, data, syncFile)
    beforeRename?.()
    await renamePath(tempPath, target)
  } catch (err) {
    await rm(tempPath, { force: true }).catch(() => undefined)
    throw err
  }
  if (syncDir) await fsyncDir(targetDir)
}

/** Removes a file or tree; a missing path is fine. */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true, maxRetries: 3 })
  } catch (err) {
    throw ioError('remove', path, err)
  }
}

/** True when `path` exists (any type; a symlink is not followed). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path)
    return true
  } catch (err) {
    const code = errnoOf(err)
    if (code === 'ENOENT' || code === 'ENOTDIR') return false
    throw ioError('stat', path, err)
  }
}
