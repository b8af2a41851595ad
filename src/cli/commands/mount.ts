import type { RWLayer } from '../../layer/index.js'
import { hasCode } from '../../errors.js'
import { UsageError, type Command } from '../command.js'
import { RWLayerParentMismatchError } from '../errors.js'
import { EXIT } from '../exit-status.js'
import { chainIDArg, emit, withStore } from '../store.js'

/**
 * What `--init` writes into the init layer: nothing. The CLI has no container config to
 * derive moby's placeholders (`/etc/hosts`, `/etc/resolv.conf`, `/.dockerenv`) from; the flag
 * gives the RW layer the same shape as an engine's (`<mount-id>-init` between parent and RW
 * layer, excluded from `diff` and `commit`), and an embedding engine fills it via `initFunc`.
 */
const emptyInit = async (): Promise<void> => undefined

/** `layerctl mount`: creates (or reuses) RW layer NAME on CHAINID and mounts it; the mount outlives the process. */
export const mountCommand: Command = {
  name: 'mount',
  summary: 'create (or reuse) RW layer NAME on a layer and mount it; prints the mount path',
  usage: 'mount [CHAINID] --name NAME [--init] [--ro]',
  examples: [
    'dir=$(layerctl mount sha256:4fc2… --name web1) && echo hi > "$dir/hello"',
    'layerctl mount --name web1      # mount the existing RW layer again',
    'layerctl mount --name web1 --ro # a read-only view of it (writes fail with EROFS)',
  ],
  options: {
    name: { type: 'string', arg: 'NAME', help: 'the RW layer (created if missing)' },
    init: { type: 'boolean', help: 'on creation, put an (empty) init layer under it, as an engine does' },
    ro: { type: 'boolean', help: 'mount read-only: writes fail with EROFS, the RW layer does not change' },
  },
  async run(ctx) {
    const name = ctx.values.name
    if (typeof name !== 'string') throw new UsageError('--name NAME is required')
    if (ctx.positionals.length > 1) throw new UsageError(`unexpected argument '${ctx.positionals[1]}'`)
    const wanted = ctx.positionals[0] === undefined ? undefined : chainIDArg(ctx.positionals[0])
    const result = await withStore(
      ctx,
      async (store) => {
        let rw: RWLayer
        let created = false
        try {
          rw = await store.getRWLayer(name)
        } catch (err) {
          if (!hasCode(err, 'ERR_MOUNT_DOES_NOT_EXIST') || wanted === undefined) throw err
          rw = await store.createRWLayer(name, wanted, ctx.values.init === true ? { initFunc: emptyInit } : {})
          created = true
        }
        if (wanted !== undefined && (rw.parent?.chainID ?? null) !== wanted) {
          throw new RWLayerParentMismatchError(name, rw.parent?.chainID ?? null, wanted)
        }
        const path = await rw.mount({ readOnly: ctx.values.ro === true })
        return { name, path, created, readOnly: ctx.values.ro === true, mountID: rw.mountID, initID: rw.initID, parent: rw.parent?.chainID ?? null }
      },
      // The mount is the command's product: another process's `unmount NAME` gives it back.
      { keepMounts: true },
    )
    emit(ctx, result, () => [result.path])
    return EXIT.ok
  },
}
