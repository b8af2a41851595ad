/**
 * Sessions and reference holders.
 *
 * Every reference a layer store hands out belongs to a *holder*, persisted in the layer's
 * `references.json` so that other processes see it: a name the caller chose (an image name,
 * `layerctl register --ref NAME`), which lasts until released, or, when the caller chose
 * none, the *session* of the store instance that took it (`session:<id>`), which lasts while
 * that instance is open. A session is alive while its process holds the kernel lock on its
 * owner file (metadata's owner tokens), so a killed process's references are found dead by
 * the next `cleanup()` and dropped, exactly as its in-memory handles died with it.
 */
import { LayerDbLayout, OwnerProbe, OwnerToken } from '../metadata/index.js'
import { InvalidHolderError } from './errors.js'

/** Holder names starting with this belong to store sessions. */
export const SESSION_HOLDER_PREFIX = 'session:'

/** The longest holder name accepted (it is a JSON key, not a file name, but stays readable). */
export const MAX_HOLDER_LENGTH = 256

/**
 * Checks a caller-chosen holder name: 1 to 256 characters, no control characters, and not
 * the reserved `session:` prefix.
 *
 * @throws InvalidHolderError
 */
export function checkHolder(holder: string): string {
  if (typeof holder !== 'string' || holder.length === 0) throw new InvalidHolderError(String(holder), 'empty')
  if (holder.length > MAX_HOLDER_LENGTH) throw new InvalidHolderError(holder, `longer than ${MAX_HOLDER_LENGTH} characters`)
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(holder)) throw new InvalidHolderError(holder, 'contains control characters')
  if (holder.startsWith(SESSION_HOLDER_PREFIX)) throw new InvalidHolderError(holder, `the prefix "${SESSION_HOLDER_PREFIX}" is reserved`)
  return holder
}

/** The session ID inside a holder name, or undefined for a named holder. */
export function sessionOf(holder: string): string | undefined {
  return holder.startsWith(SESSION_HOLDER_PREFIX) ? holder.slice(SESSION_HOLDER_PREFIX.length) : undefined
}

/** The liveness token of one open layer store. */
export class Session {
  /** `session:<id>`: the holder of references taken without a holder name. */
  readonly holder: string
  readonly #token: OwnerToken
  readonly #layout: LayerDbLayout

  private constructor(token: OwnerToken, layout: LayerDbLayout) {
    this.#token = token
    this.#layout = layout
    this.holder = `${SESSION_HOLDER_PREFIX}${token.id}`
  }

  /** Starts a session: creates and locks its owner file. */
  static async start(layout: LayerDbLayout): Promise<Session> {
    return new Session(await OwnerToken.acquire(layout), layout)
  }

  /**
   * A probe answering "is this holder alive?" for one scan: named holders always are; a
   * session is while its owner lock is held (ours is, without a syscall).
   */
  probe(): (holder: string) => Promise<boolean> {
    const owners = new OwnerProbe(this.#layout, this.#token.id)
    return async (holder) => {
      const id = sessionOf(holder)
      if (id === undefined) return true
      // A malformed session ID (a hand-edited file) names no owner file: dead.
      return LayerDbLayout.isOwnerID(id) && (await owners.isAlive(id))
    }
  }

  /** Ends the session; references it still holds become dead (dropped by `cleanup()`). */
  end(): Promise<void> {
    return this.#token.release()
  }
}
