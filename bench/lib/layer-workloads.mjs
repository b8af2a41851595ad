// The driver benchmarks' workloads, as layers to register in order. A workload is one or more
// steps timed separately on the same driver home: `debian` is debian.tar, then debian-app.tar
// on top of it (layer 1 present), as the issue and PEERS.md time them.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { workload, WORKLOADS } from './measure.mjs'

/** Every workload name `layerWorkload` knows. */
export const WORKLOAD_NAMES = Object.freeze(['debian', 'chain', 'small-files', 'big-files'])

/** What `bench/drivers` runs when no `--workload` is given (the list). */
export const DEFAULT_WORKLOADS = Object.freeze(['debian', 'chain', 'small-files'])

/** The layer id of chain layer `n` (1-based), so that depths can name their parent. */
export function chainLayerID(n) {
  return `chain-${String(n).padStart(3, '0')}`
}

/**
 * The steps of workload `name`: `{ name, steps: [{ name, layers: [{ id, tar }] }] }`. Each
 * step's first layer goes on the previous step's last (the first step's on nothing). Exits
 * with how to build them when the tars are missing (measure.mjs `workload`).
 * @param {string} name
 */
export function layerWorkload(name) {
  const single = (step, file) => ({ name: step, layers: [{ id: step, tar: workload(file) }] })
  switch (name) {
    case 'debian':
      return { name, steps: [single('debian', 'debian.tar'), single('debian-app', 'debian-app.tar')] }
    case 'small-files':
    case 'big-files':
      return { name, steps: [single(name, `${name}.tar`)] }
    case 'chain':
      return { name, steps: [{ name: 'chain', layers: chainTars().map((tar, i) => ({ id: chainLayerID(i + 1), tar })) }] }
    default:
      throw new Error(`unknown workload ${JSON.stringify(name)} (known: ${WORKLOAD_NAMES.join(', ')})`)
  }
}

// images.json lists the chain bottom-first; without it, the file names sort the same way.
function chainTars() {
  const images = join(WORKLOADS, 'images.json')
  const layers = existsSync(images)
    ? JSON.parse(readFileSync(images, 'utf8')).chain?.layers
    : readdirSync(workload('chain')).filter((n) => /^layer-\d+\.tar$/.test(n)).sort().map((n) => `chain/${n}`)
  if (!Array.isArray(layers) || layers.length === 0) throw new Error(`no chain layers listed in ${images}`)
  return layers.map((file) => workload(file))
}
