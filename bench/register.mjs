#!/usr/bin/env node
// bench/register: now `layerctl bench --only register` (src/bench/): LayerStore.register per
// driver beside tar -x + sha256sum in the same run, and the register of a layer already
// present beside sha256sum. A thin wrapper; every argument is passed on:
//   node bench/register.mjs [--reps N] [--driver NAME…] [--workload NAME…]
// Default workloads: debian, small-files, big-files, chain, as this script always ran.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const layerctl = fileURLToPath(new URL('../bin/layerctl', import.meta.url))
const args = process.argv.slice(2)
const workloads = args.includes('--workload') || args.includes('--tar') ? [] : ['--workload', 'debian,small-files,big-files,chain']
const r = spawnSync(process.execPath, [layerctl, 'bench', '--only', 'register', ...workloads, ...args], { stdio: 'inherit' })
process.exitCode = r.status ?? 1
