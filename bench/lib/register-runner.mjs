#!/usr/bin/env node
// The child side of bench/register.mjs: registers layer tars, one after another, each on the
// previous, into the LayerStore at ROOT, through the public API of the BUILT package, in a
// process of its own so that /usr/bin/time reports its peak RSS.
// Usage: node register-runner.mjs JOB_JSON RESULT_FILE
//   JOB_JSON: { root, driver, parent: chainID | null, tars: [path…] }
// RESULT_FILE gets { top: chainID, layers, bytes } as JSON.
import { createReadStream, writeFileSync } from 'node:fs'
import { layer } from '../../dist/index.js'

const [jobText, resultFile] = process.argv.slice(2)
if (!jobText || !resultFile) {
  console.error('usage: register-runner.mjs JOB_JSON RESULT_FILE')
  process.exit(2)
}
const job = JSON.parse(jobText)
process.on('SIGTERM', () => process.exit(143))

const store = await layer.LayerStore.open({ root: job.root, driver: job.driver })
try {
  let parent = job.parent
  let bytes = 0
  for (const tar of job.tars) {
    // A named holder keeps the layer after this process ends, for the next step to build on.
    const l = await store.register(createReadStream(tar, { highWaterMark: 1 << 20 }), parent, { holder: 'bench' })
    bytes += l.diffSize ?? 0
    parent = l.chainID
  }
  writeFileSync(resultFile, JSON.stringify({ top: parent, layers: job.tars.length, bytes }))
} finally {
  await store.close()
}
