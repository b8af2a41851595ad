/**
 * The V8 flags `layerctl` runs with (its shebang, bin/layerctl, passes them to node; a test
 * keeps the two equal), and with which the bench runs its store processes, so that the bench
 * measures what `layerctl register` does.
 *
 * `--max-semi-space-size=2` (MiB): V8's young generation otherwise grows to 16 MiB per
 * semi-space, and the buffers and objects a streaming register drops wait there until a
 * scavenge. Measured in-process (register of small-files.tar, 55,803 entries): peak RSS
 * 81.5–81.9 MiB by default, 72.1–72.5 MiB with this flag; the extra scavenges are lost in
 * the noise of the file creations. An engine embedding the library chooses its own heap
 * flags.
 */
export const LAYERCTL_NODE_FLAGS: readonly string[] = Object.freeze(['--max-semi-space-size=2'])
