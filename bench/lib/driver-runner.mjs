#!/usr/bin/env node
// The child side of driver-ops.mjs `applyInChild` / `exportInChild`: one driver operation in a
// process of its own, so that /usr/bin/time reports its peak RSS and the parent its wall time.
// Usage: node driver-runner.mjs JOB_JSON RESULT_FILE
//   JOB_JSON: { op: 'apply', spec, home, layers: [{ id, tar }], parent }
//           | { op: 'export', spec, home, pairs: [{ id, parent }] }  (the tars go to stdout)
// RESULT_FILE gets { inProcessSeconds, members?, size?, bytes? } as JSON.
import { writeFileSync } from 'node:fs'
import { applyLayers, exportDiffs, openDriver } from './driver-ops.mjs'

const [jobText, resultFile] = process.argv.slice(2)
if (!jobText || !resultFile) {
  console.error('usage: driver-runner.mjs JOB_JSON RESULT_FILE')
  process.exit(2)
}
const job = JSON.parse(jobText)

// The bench stopped (Ctrl-C sent to it alone): stop too, before it deletes our files.
process.on('SIGTERM', () => process.exit(143))

const driver = await openDriver(job.spec, job.home)
try {
  const start = process.hrtime.bigint()
  let result
  if (job.op === 'apply') {
    const { members, size } = await applyLayers(driver, job.layers, job.parent)
    result = { members, size }
  } else if (job.op === 'export') {
    result = await exportDiffs(driver, job.pairs, process.stdout)
  } else {
    throw new Error(`unknown op ${JSON.stringify(job.op)}`)
  }
  result.inProcessSeconds = Number(process.hrtime.bigint() - start) / 1e9
  writeFileSync(resultFile, JSON.stringify(result))
} finally {
  await driver.cleanup()
}
