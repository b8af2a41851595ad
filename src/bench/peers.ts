/**
 * The peers (`--peers`): established layer stores as optional extra columns. None is run by
 * this version: each would need its own image archive per workload and a daemon per fresh
 * root to be measured fairly, so the bench says why it skips each rather than print a figure
 * measured another way. PEERS.md (../shared/bench/) has their figures, measured by hand.
 */
import { access } from 'node:fs/promises'
import { delimiter, join } from 'node:path'

/** A peer the bench knows, and why it was not measured. */
export interface PeerStatus {
  readonly name: string
  readonly installed: boolean
  readonly why: string
}

const PEERS: readonly { readonly name: string; readonly binary: string }[] = [
  { name: 'dockerd', binary: 'dockerd' },
  { name: 'podman', binary: 'podman' },
  { name: 'containerd', binary: 'containerd' },
]

/** Looks for each peer on `$PATH` (and /usr/sbin) and says why it is skipped. */
export async function peerStatus(env: NodeJS.ProcessEnv = process.env): Promise<PeerStatus[]> {
  const dirs = [...(env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'].filter(Boolean)
  const out: PeerStatus[] = []
  for (const { name, binary } of PEERS) {
    const installed = await found(binary, dirs)
    out.push({
      name,
      installed,
      why: installed
        ? `${name} is installed but not run: a fair figure needs a daemon on a fresh --data-root per rep and an image archive per workload, which this version does not build; see PEERS.md for figures measured by hand`
        : `${name} is not installed`,
    })
  }
  return out
}

async function found(binary: string, dirs: readonly string[]): Promise<boolean> {
  for (const dir of dirs) {
    try {
      await access(join(dir, binary))
      return true
    } catch {
      // Not here.
    }
  }
  return false
}
