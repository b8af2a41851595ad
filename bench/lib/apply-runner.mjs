#!/usr/bin/env node
// The child side of bench/apply.mjs, through the BUILT package (dist/) as a user runs it:
// `apply TAR DIR` applies a layer tar into DIR (naive whiteouts); `parse TAR` runs only our
// tar parser (the tar-split disassembler as applyTar drives it: no sink, so no CRCs).
import { archive, io, tarsplit } from '../../dist/index.js'

const [what, tar, target] = process.argv.slice(2)
const input = io.readFileChunks(tar)
if (what === 'apply') {
  const r = await archive.applyTar(input, target, { whiteouts: 'naive' })
  if (r.members === 0) throw new Error('nothing applied')
} else if (what === 'parse') {
  for await (const m of tarsplit.disassemble(input, {})) for await (const _ of m.lent);
} else {
  console.error('usage: apply-runner.mjs apply TAR DIR | parse TAR')
  process.exit(2)
}
