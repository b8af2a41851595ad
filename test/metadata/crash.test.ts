/**
 * Crash safety: a child process (see child.ts) is SIGKILLed at each named crash point of
 * each operation, several runs each; then we reopen the store and check that it shows
 * either the old state or the new one, that the orphan scan reports exactly the leftovers,
 * and that after cleanup a second scan finds nothing.
 *
 * The starting state is committed once into a template root and copied for each run; the
 * cases run concurrently (each cleans up its own root in `finally`), as they mostly wait on
 * fsync and on the child.
 */
import { cp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CRASH_POINTS, FileMetadataStore, isCleanReport } from '../../src/metadata/index.js'
import type { CrashPoint, MountID, OrphanReport } from '../../src/metadata/index.js'
import { buildChild, cleanupTemps, commitLayer, hexID, makeTemp, removeChild, runChild, testLayer } from './helpers.js'

const RUNS = 3
const DRIVER = 'overlay2'

const A = testLayer('A')
const C = testLayer('C', A.chainID)
const B = testLayer('B', A.chainID)
const M = hexID('M') as MountID
const N = hexID('N') as MountID
const BASE_IDS = [A.cacheID, C.cacheID, M, `${M}-init`]
const BASE_REFS = { image: 1 }
const NEW_REFS = { container: 2, image: 1 }

type Scenario = 'commit' | 'commit-mount' | 'remove' | 'remove-mount' | 'extra'

/** The driver IDs a scenario creates (the driver would have directories for them). */
const CREATED: Record<Scenario, string[]> = {
  commit: [B.cacheID],
  'commit-mount': [N, `${N}-init`],
  remove: [],
  'remove-mount': [],
  extra: [],
}

/** What the store must look like after the crash, if the operation took effect or not. */
interface State {
  layers: string[]
  mounts: string[]
  refs: Record<string, number>
}
const OLD: State = { layers: [A.chainID, C.chainID].sort(), mounts: ['web'], refs: BASE_REFS }
const NEW: Record<Scenario, State> = {
  commit: { ...OLD, layers: [A.chainID, B.chainID, C.chainID].sort() },
  'commit-mount': { ...OLD, mounts: ['db', 'web'] },
  remove: { ...OLD, layers: [A.chainID] },
  'remove-mount': { ...OLD, mounts: [] },
  extra: { ...OLD, refs: NEW_REFS },
}

interface Case {
  scenario: Scenario
  point: CrashPoint
  took: boolean
  /** The expected leftovers, beside the child's owner lock, which every crash leaves. */
  writeSet?: string[]
  removal?: boolean
  atomicFile?: boolean
  unreferenced: string[]
}

const CASES: Case[] = [
  ...(['commit:before-sync', 'commit:before-rename'] as const).map((point) => ({
    scenario: 'commit' as const,
    point,
    took: false,
    writeSet: [B.cacheID],
    unreferenced: [B.cacheID],
  })),
  ...(['commit:after-rename', 'commit:after-sync'] as const).map((point) => ({
    scenario: 'commit' as const,
    point,
    took: true,
    unreferenced: [],
  })),
  ...(['commit-mount:before-sync', 'commit-mount:before-rename'] as const).map((point) => ({
    scenario: 'commit-mount' as const,
    point,
    took: false,
    writeSet: [N, `${N}-init`],
    unreferenced: [N, `${N}-init`],
  })),
  ...(['commit-mount:after-rename', 'commit-mount:after-sync'] as const).map((point) => ({
    scenario: 'commit-mount' as const,
    point,
    took: true,
    unreferenced: [],
  })),
  ...(['remove', 'remove-mount'] as const).flatMap((scenario) => {
    const ids = scenario === 'remove' ? [C.cacheID] : [M, `${M}-init`]
    return [
      { scenario, point: 'remove:before-mark' as const, took: false, unreferenced: [] },
      { scenario, point: 'remove:after-mark' as const, took: true, removal: true, unreferenced: ids },
      { scenario, point: 'remove:mid-delete' as const, took: true, removal: true, unreferenced: ids },
      { scenario, point: 'remove:after-delete' as const, took: true, unreferenced: ids },
    ]
  }),
  { scenario: 'extra', point: 'extra:before-rename', took: false, atomicFile: true, unreferenced: [] },
  { scenario: 'extra', point: 'extra:after-rename', took: true, unreferenced: [] },
]

let template = ''
beforeAll(async () => {
  await buildChild()
  template = join(await makeTemp(), 'template')
  await prepare(template)
})
afterAll(async () => {
  await removeChild()
  await cleanupTemps()
})

async function prepare(root: string): Promise<void> {
  const store = await FileMetadataStore.open(root, DRIVER)
  try {
    await commitLayer(store, A)
    await commitLayer(store, C)
    const tx = await store.startTransaction()
    await tx.setMountID(M)
    await tx.setInitID(`${M}-init` as MountID)
    await tx.setParent(A.chainID)
    await tx.commitMount('web')
    await store.setReferences(A.chainID, new Map(Object.entries(BASE_REFS)))
  } finally {
    await store.close()
  }
}

async function stateOf(store: FileMetadataStore): Promise<State> {
  const { layers, mounts } = await store.list()
  // Every listed record must read back whole.
  for (const l of layers) await store.getLayer(l)
  for (const m of mounts) await store.getMount(m)
  return { layers: [...layers], mounts: [...mounts], refs: Object.fromEntries(await store.getReferences(A.chainID)) }
}

function leftovers(report: OrphanReport, tmpDir: string): object {
  return {
    writeSets: report.writeSets.map((w) => [...w.driverIDs].sort()),
    removals: report.removals.length,
    tempFiles: report.tempFiles.map((p) => p.slice(tmpDir.length + 1).replace(/[0-9a-f]{32}.*/, '*')).sort(),
    mounts: report.mounts,
    brokenLayers: report.brokenLayers,
    unreferenced: report.unreferencedDriverIDs,
    withheld: report.withheldDriverIDs,
  }
}

describe('crash safety (child SIGKILLed at each crash point)', () => {
  it('covers every crash point', () => {
    expect(new Set(CASES.map((c) => c.point))).toEqual(new Set(CRASH_POINTS))
  })

  it.concurrent.each(CASES.map((c) => [`${c.scenario} @ ${c.point}`, c] as const))('%s', async (_name, c) => {
    for (let run = 0; run < RUNS; run++) {
      const root = join(await makeTemp(), 'root')
      let store: FileMetadataStore | undefined
      try {
        await cp(template, root, { recursive: true })
        const result = await runChild({
          mode: 'crash',
          root,
          driver: DRIVER,
          point: c.point,
          scenario: c.scenario,
          layer: B,
          chainID: c.scenario === 'remove' || c.scenario === 'commit-mount' ? C.chainID : A.chainID,
          mountName: c.scenario === 'commit-mount' ? 'db' : 'web',
          mountID: N,
          references: NEW_REFS,
        })
        expect(result.signal, result.stderr).toBe('SIGKILL')

        store = await FileMetadataStore.open(root, DRIVER)
        expect(await stateOf(store)).toEqual(c.took ? NEW[c.scenario] : OLD)

        const known = [...BASE_IDS, ...CREATED[c.scenario]]
        const report = await store.scanOrphans(known)
        expect(leftovers(report, store.layout.tmpDir)).toEqual({
          writeSets: c.writeSet ? [[...c.writeSet].sort()] : [],
          removals: c.removal ? 1 : 0,
          tempFiles: [...(c.atomicFile ? ['atomic-*'] : []), 'owner-*'],
          mounts: [],
          brokenLayers: [],
          unreferenced: [...c.unreferenced].sort(),
          withheld: [],
        })

        const cleaned = await store.cleanup(known)
        expect(cleaned.failures).toEqual([])
        const second = await store.scanOrphans(known.filter((id) => !cleaned.report.unreferencedDriverIDs.includes(id)))
        expect(isCleanReport(second)).toBe(true)
        expect(second.brokenLayers).toEqual([])
        expect(await stateOf(store)).toEqual(c.took ? NEW[c.scenario] : OLD)
      } finally {
        await store?.close()
        await rm(join(root, '..'), { recursive: true, force: true })
      }
    }
  })
})
