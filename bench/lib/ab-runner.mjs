#!/usr/bin/env node
// The child side of bench/ab.mjs: `DIST DRIVER ROOT TAR…` opens a store on ROOT with the
// built package at DIST, registers the tars as one chain (one registerChain call, as an image
// load does), and prints {"seconds", "maxRssMiB"} of that call: a fresh process per run, as
// `layerctl register` is, so JIT warm-up is part of the figure.
import { join } from 'node:path'

const [dist, driver, root, ...tars] = process.argv.slice(2)
if (!dist || !driver || !root || tars.length === 0) {
  console.error('usage: ab-runner.mjs DIST DRIVER ROOT TAR…')
  process.exit(2)
}
const { layer, io } = await import(join(dist, 'index.js'))
const store = await layer.LayerStore.open({ root, driver })
const started = performance.now()
await store.registerChain(tars.map((tar) => ({ tar: io.readFileChunks(tar) })), null, { holder: 'bench-ab' })
const seconds = (performance.now() - started) / 1000
await store.close()
console.log(JSON.stringify({ seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024 }))
