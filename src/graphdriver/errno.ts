/**
 * True when `err` carries the errno name `code` (Node's fs errors and native's SyscallError
 * both do). Drivers branch on ENOENT, EEXIST, ENOTEMPTY… throughout, so it lives once here.
 */
export function hasErrno(err: unknown, code: string): boolean {
  return (err as { code?: unknown } | null)?.code === code
}
