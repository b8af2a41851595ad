/**
 * The child process of the layer store's crash and concurrency tests. It imports the built
 * package (`dist/`, made by `npm test` or `npx tsc -p tsconfig.build.json`) and reads its
 * configuration from `LAYERSTORE_TEST_CHILD` (JSON), which the library never does: here it
 * becomes the `crashPoint` seam.
 *
 * Modes:
 * - `scenario`: run one scenario. With `killAt: k`, SIGKILL this process when the k-th crash
 *   point (0-based) is passed; with `trace: true`, print every point passed as `point <name>`.
 *   Prints `done` when the scenario (and `close()`) finished; with `hold: true` it prints
 *   `holding` instead and keeps the store open until killed.
 * - `worker`: register (layer by layer, or with `registerChain`) and release chains of layers
 *   at random under its own holder name,
 *   then (with `releaseAll`) release them all, print its net reference counts as
 *   `refs <json>` and exit without releasing what it still holds.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { builtinDrivers } from '../../dist/drivers/index.js'
import { DriverRegistry } from '../../dist/graphdriver/index.js'
import { LayerStore } from '../../dist/layer/index.js'

const config = JSON.parse(process.env.LAYERSTORE_TEST_CHILD ?? '{}')

let passed = 0
function crashPoint(point) {
  if (config.trace) process.stdout.write(`point ${point}\n`)
  if (config.killAt === passed++) process.kill(process.pid, 'SIGKILL')
}

function open(extra = {}) {
  return LayerStore.open({
    root: config.root,
    driver: config.driver,
    registry: new DriverRegistry(builtinDrivers),
    ...extra,
  })
}

async function scenario() {
  // Open first, without the hook: the crash points of interest are the scenario's.
  const store = await open({ crashPoint })
  const s = config.scenario
  switch (s.kind) {
    case 'register':
      await store.register(await readFile(s.tar), s.parent, s.holder === undefined ? {} : { holder: s.holder })
      break
    case 'register-chain': {
      const layers = await Promise.all(s.tars.map(async (tar) => ({ tar: await readFile(tar) })))
      await store.registerChain(layers, s.parent, { holder: s.holder })
      break
    }
    case 'release':
      await store.releaseHolder(s.chainID, s.holder)
      break
    case 'rw-create':
      await store.createRWLayer(s.name, s.parent, {
        initFunc: async (dir) => {
          const { writeFile } = await import('node:fs/promises')
          await writeFile(join(dir, 'init.txt'), 'init')
        },
      })
      break
    case 'rw-remove':
      await store.releaseRWLayer(await store.getRWLayer(s.name))
      break
    case 'commit':
      await store.commit(await store.getRWLayer(s.name), { holder: s.holder })
      break
    default:
      throw new Error(`unknown scenario ${s.kind}`)
  }
  if (config.hold) {
    // Keep the store open (its session alive) until the parent kills us.
    process.stdout.write('holding\n')
    setInterval(() => undefined, 60_000)
    return
  }
  await store.close()
  process.stdout.write('done\n')
}

async function worker() {
  // A hang must fail the test with where it hung, before the test's own time limit hides it.
  let current = 'opening the store'
  const watchdog = setTimeout(() => {
    const handles = process.report.getReport().libuv.filter((h) => h.is_active)
    process.stderr.write(`worker stuck for 120 s in: ${current}\nactive libuv handles: ${JSON.stringify(handles)}\n`)
    process.exit(3)
  }, 120_000)
  watchdog.unref()
  const store = await open()
  const holder = config.holder
  const net = {}
  const bump = (id, n) => {
    net[id] = (net[id] ?? 0) + n
    if (net[id] === 0) delete net[id]
  }
  const chains = await Promise.all(
    config.chains.map(async (c) => ({ base: await readFile(c.base), child: await readFile(c.child) })),
  )
  const held = []
  let seed = config.seed
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 2147483648
  }
  for (let i = 0; i < config.ops; i++) {
    if (held.length > 0 && random() < 0.5) {
      const [child, base] = held.splice(Math.floor(random() * held.length), 1)[0]
      current = `op ${i}: release ${child} then its base ${base}`
      await store.releaseHolder(child, holder)
      bump(child, -1)
      await store.releaseHolder(base, holder)
      bump(base, -1)
    } else {
      const chain = chains[Math.floor(random() * chains.length)]
      if (random() < 0.5) {
        current = `op ${i}: register a base and its child`
        const base = await store.register(chain.base, null, { holder })
        bump(base.chainID, 1)
        const child = await store.register(chain.child, base.chainID, { holder })
        bump(child.chainID, 1)
        held.push([child.chainID, base.chainID])
      } else {
        // The same two layers as one chain: it races with the registers and releases of the
        // others; a conflict stores nothing and is retried, as its error says.
        for (let attempt = 1; ; attempt++) {
          current = `op ${i}: registerChain of a base and its child (attempt ${attempt})`
          try {
            const [base, child] = await store.registerChain([{ tar: chain.base }, { tar: chain.child }], null, { holder })
            bump(base.chainID, 1)
            bump(child.chainID, 1)
            held.push([child.chainID, base.chainID])
            break
          } catch (err) {
            if (err?.code !== 'ERR_LAYER_CHAIN_CONFLICT' || attempt === 5) throw err
          }
        }
      }
    }
  }
  // Some workers give everything back, deleting layers while the others still work on them.
  if (config.releaseAll) {
    current = 'releasing everything'
    for (const [child, base] of held.splice(0)) {
      await store.releaseHolder(child, holder)
      bump(child, -1)
      await store.releaseHolder(base, holder)
      bump(base, -1)
    }
  }
  current = 'closing the store'
  await store.close()
  clearTimeout(watchdog)
  process.stdout.write(`refs ${JSON.stringify(net)}\n`)
}

try {
  if (config.mode === 'scenario') await scenario()
  else if (config.mode === 'worker') await worker()
  else throw new Error(`unknown mode ${config.mode}`)
} catch (err) {
  process.stderr.write(`${err?.stack ?? err}\n${JSON.stringify(err)}\n`)
  process.exit(1)
}
