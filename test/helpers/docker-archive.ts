/**
 * `docker save` archives (the legacy format `docker load` of dockerd 20.10 takes and `docker
 * save` writes): `manifest.json`, an image config JSON named after its sha256, and one
 * `layer.tar` per layer, plain (uncompressed), so that each layer's sha256 is its diff ID.
 */
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { pack } from 'tar-stream'

/** What {@link writeDockerArchive} wrote. */
export interface DockerArchive {
  /** `sha256:<hex>` of each layer tar, base first (the config's `rootfs.diff_ids`). */
  readonly diffIDs: readonly string[]
  /** `sha256:<hex>` of the config: the image ID Docker will give it. */
  readonly imageID: string
}

/** One entry of a saved archive's `manifest.json`. */
export interface DockerManifestEntry {
  readonly Config: string
  readonly RepoTags: readonly string[] | null
  /** Paths of the layer tars inside the archive, base first. */
  readonly Layers: readonly string[]
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

/**
 * Writes a loadable image archive to `path`: the layer tars at `layerTars` (plain tars,
 * base first), tagged `tag`.
 */
export async function writeDockerArchive(path: string, tag: string, layerTars: readonly string[]): Promise<DockerArchive> {
  const layers = await Promise.all(layerTars.map((p) => readFile(p)))
  const diffIDs = layers.map(sha256)
  const created = '2020-01-01T00:00:00Z'
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created,
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
      rootfs: { type: 'layers', diff_ids: diffIDs },
      history: layers.map((_, i) => ({ created, created_by: `layerstore test layer ${i + 1}` })),
    }),
  )
  const imageID = sha256(config)
  const configName = `${imageID.slice('sha256:'.length)}.json`
  const layerNames = layers.map((_, i) => `layer${i + 1}/layer.tar`)
  const manifest: DockerManifestEntry[] = [{ Config: configName, RepoTags: [tag], Layers: layerNames }]

  const p = pack()
  const written = pipeline(p, createWriteStream(path))
  const mtime = new Date(created)
  const add = (name: string, content: Buffer): void => {
    p.entry({ name, size: content.length, mode: 0o644, mtime, uid: 0, gid: 0 }, content)
  }
  add(configName, config)
  layers.forEach((bytes, i) => add(layerNames[i]!, bytes))
  add('manifest.json', Buffer.from(JSON.stringify(manifest)))
  p.finalize()
  await written
  return { diffIDs, imageID }
}

/** Reads `manifest.json` of an extracted saved archive in `dir`. */
export async function readDockerManifest(dir: string): Promise<DockerManifestEntry[]> {
  return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as DockerManifestEntry[]
}
