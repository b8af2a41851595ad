/**
 * Loading libc through koffi, declaring functions once, and turning `-1` + errno into a
 * {@link SyscallError}. This file, and the worker threads of `async-call.ts` and
 * `relative-mounter.ts` (a thread cannot borrow another's FFI handles), are the only code that
 * touches koffi.
 */
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import koffi from 'koffi'
import type { IKoffiLib } from 'koffi'
import { NativeArgumentError, NativeUnavailableError, SyscallError } from './errors.js'
import type { PathLike, SyscallErrorDetails } from './errors.js'

/** A declared C function as koffi hands it out. */
export type NativeFunction = ReturnType<IKoffiLib['func']>

/** The soname we bind to; glibc on every Linux we run on (musl would need `libc.so`). */
export const LIBC_SONAME = 'libc.so.6'

/** The URL a worker thread imports koffi from (the same copy this module loaded). */
export function koffiModuleURL(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('koffi')).href
}

/** `AT_FDCWD`: a dirfd meaning "relative to the current directory". */
export const AT_FDCWD = -100

/**
 * Syscall numbers of the calls glibc lacks (openat2) or only has since 2.36 (the new mount
 * API). Calls added since Linux 5.1 share one number on every architecture but alpha and
 * mips, which we do not run on, so one table serves x64, arm64, riscv64, ppc64 and s390x.
 */
export const SYS = {
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  openat2: 437,
} as const

const UNIFIED_SYSCALL_ARCHES = new Set(['x64', 'arm64', 'riscv64', 'ppc64', 's390x', 'loong64'])

// The library handle and the declared functions are per process, like the fds they act on;
// declaring a function parses its prototype, so each is declared once and reused.
let library: IKoffiLib | undefined
const declared = new Map<string, NativeFunction>()

/** The loaded libc; throws {@link NativeUnavailableError} off Linux/glibc. */
export function libc(): IKoffiLib {
  if (library) return library
  if (process.platform !== 'linux') throw new NativeUnavailableError(`platform is ${process.platform}, not linux`)
  try {
    library = koffi.load(LIBC_SONAME)
  } catch (err) {
    throw new NativeUnavailableError(`cannot load ${LIBC_SONAME}`, { cause: err })
  }
  return library
}

/** Declares (once) and returns a libc function from its C prototype. */
export function func(prototype: string): NativeFunction {
  let fn = declared.get(prototype)
  if (!fn) {
    fn = libc().func(prototype)
    declared.set(prototype, fn)
  }
  return fn
}

/** `long syscall(long number, ...)`, for the calls in {@link SYS}; the rest go by name. */
export function rawSyscall(): NativeFunction {
  if (!UNIFIED_SYSCALL_ARCHES.has(process.arch)) {
    throw new NativeUnavailableError(`no syscall number table for architecture ${process.arch}`)
  }
  return func('long syscall(long number, ...)')
}

/** The errno left by the last call on this thread; read it right after the call. */
export function lastErrno(): number {
  return koffi.errno()
}

/**
 * A path as a C string. Strings go through as they are (koffi encodes them as UTF-8 and adds
 * the NUL); Buffers get a NUL appended. A NUL inside would make the kernel see a shorter path
 * than the caller meant (`a\0/../../x` is `a`), so it is refused.
 */
export function cPath(syscall: string, path: PathLike, argument = 'path'): string | Buffer {
  if (typeof path === 'string') {
    if (path.includes('\0')) throw new NativeArgumentError(syscall, argument, 'contains a NUL byte')
    return path
  }
  if (!Buffer.isBuffer(path)) throw new NativeArgumentError(syscall, argument, 'is neither a string nor a Buffer')
  if (path.includes(0)) throw new NativeArgumentError(syscall, argument, 'contains a NUL byte')
  return Buffer.concat([path, NUL])
}

const NUL = Buffer.alloc(1)

/** A plain C string argument (an xattr name, a filesystem type, an option key). */
export function cString(syscall: string, text: string, argument: string): string {
  if (text.includes('\0')) throw new NativeArgumentError(syscall, argument, 'contains a NUL byte')
  return text
}

/** Checks that a file descriptor argument is a plausible fd before it reaches the kernel. */
export function checkFd(syscall: string, fd: number, argument = 'fd'): number {
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
    throw new NativeArgumentError(syscall, argument, `${String(fd)} is not a file descriptor`)
  }
  return fd
}

/** Throws the {@link SyscallError} for the current errno. Call right after the failed call. */
export function throwErrno(syscall: string, details?: SyscallErrorDetails): never {
  throw new SyscallError(syscall, lastErrno(), details)
}

/**
 * Returns `ret` when the call succeeded, else throws the {@link SyscallError} for errno.
 * Syscall wrappers report failure as -1; `long` results may come back as a bigint.
 */
export function check(ret: number | bigint, syscall: string, details?: SyscallErrorDetails): number {
  const value = typeof ret === 'bigint' ? Number(ret) : ret
  if (value === -1) throwErrno(syscall, details)
  return value
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/**
 * A C struct of 64-bit integer fields in native byte order, e.g. `struct timespec` (on the
 * 64-bit platforms we run on: `time_t` and `long` are both 64 bits) or `struct open_how`.
 */
export function int64Struct(fields: readonly (number | bigint)[]): Buffer {
  const buf = Buffer.alloc(fields.length * 8)
  fields.forEach((field, i) => {
    const value = BigInt(field)
    if (LITTLE_ENDIAN) {
      if (value < 0n) buf.writeBigInt64LE(value, i * 8)
      else buf.writeBigUInt64LE(value, i * 8)
    } else if (value < 0n) buf.writeBigInt64BE(value, i * 8)
    else buf.writeBigUInt64BE(value, i * 8)
  })
  return buf
}
