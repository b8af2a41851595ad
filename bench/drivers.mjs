#!/usr/bin/env node
// bench/drivers: now `layerctl bench` (src/bench/), kept as a thin wrapper so that old
// commands and `npm run bench:drivers` still work. Every argument is passed on:
//   node bench/drivers.mjs [--driver SPEC…] [--workload NAME…] [--reps N] [--quick] …
// See `layerctl bench --help`. Needs root and the built package (npx tsc -p tsconfig.build.json).
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const layerctl = fileURLToPath(new URL('../bin/layerctl', import.meta.url))
const r = spawnSync(process.execPath, [layerctl, 'bench', ...process.argv.slice(2)], { stdio: 'inherit' })
process.exitCode = r.status ?? 1
