import { describe, expect, it } from 'vitest'
import { isKind } from '../../src/errors.js'
import {
  InvalidIDError,
  LayerDbLayout,
  checkExtraFileName,
  checkMountName,
  chainIDFromHex,
  digestHex,
  initIDFor,
  newCacheID,
  newMountID,
  newRandomID,
  parseCacheID,
  parseChainID,
  parseDiffID,
  parseMountID,
  storeLockPath,
} from '../../src/metadata/index.js'
import type { MountID } from '../../src/metadata/index.js'

const HEX = 'a'.repeat(64)

describe('ids', () => {
  it('parses sha256 digests as moby does on read (trimmed), and nothing else', () => {
    expect(parseChainID(` sha256:${HEX}\n`)).toBe(`sha256:${HEX}`)
    expect(parseDiffID(`sha256:${HEX}`)).toBe(`sha256:${HEX}`)
    for (const bad of ['', HEX, `sha256:${HEX.slice(1)}`, `sha256:${'A'.repeat(64)}`, `sha512:${'a'.repeat(128)}`, `sha256:${HEX}x`]) {
      const err = (() => {
        try {
          parseChainID(bad)
        } catch (e) {
          return e
        }
      })()
      expect(err).toBeInstanceOf(InvalidIDError)
      expect(isKind(err, 'invalid-argument')).toBe(true)
      expect(err).toMatchObject({ idKind: 'chain-id', value: bad })
    }
  })

  it('maps chain IDs to directory names and back', () => {
    const id = parseChainID(`sha256:${HEX}`)
    expect(digestHex(id)).toBe(HEX)
    expect(chainIDFromHex(HEX)).toBe(id)
    expect(() => chainIDFromHex('abc')).toThrow(InvalidIDError)
  })

  it('validates mount and init IDs with moby isValidID, cache IDs only for emptiness and path safety', () => {
    expect(parseMountID(`${HEX}\n`)).toBe(HEX)
    expect(parseMountID(`${HEX}-init`, 'init-id')).toBe(`${HEX}-init`)
    for (const bad of ['', 'abc', `${HEX}-init-init`, `${HEX}x`, 'A'.repeat(64)]) expect(() => parseMountID(bad)).toThrow(InvalidIDError)
    expect(parseCacheID(' legacy-graph-id ')).toBe('legacy-graph-id')
    for (const bad of ['', '  ', '.', '..', 'a/b', 'a\0b']) expect(() => parseCacheID(bad)).toThrow(InvalidIDError)
  })

  it('makes random IDs as stringid.GenerateRandomID: 64 hex, never 12 leading digits', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 2000; i++) {
      const id = newRandomID()
      expect(id).toMatch(/^[0-9a-f]{64}$/)
      expect(id).not.toMatch(/^[0-9]{12}/)
      seen.add(id)
    }
    expect(seen.size).toBe(2000)
    expect(parseCacheID(newCacheID())).toHaveLength(64)
    const m = newMountID()
    expect(initIDFor(m)).toBe(`${m}-init`)
    expect(parseMountID(initIDFor(m as MountID), 'init-id')).toBe(`${m}-init`)
  })
})

describe('layout', () => {
  const L = new LayerDbLayout('/var/lib/layerstore', 'overlay2')

  it('knows every layerdb path', () => {
    const id = parseChainID(`sha256:${HEX}`)
    expect(L.root).toBe('/var/lib/layerstore/image/overlay2/layerdb')
    expect(L.layerFile(id, 'cache-id')).toBe(`/var/lib/layerstore/image/overlay2/layerdb/sha256/${HEX}/cache-id`)
    expect(L.mountFile('web', 'mount-id')).toBe('/var/lib/layerstore/image/overlay2/layerdb/mounts/web/mount-id')
    expect(L.removingLayerDir(id, 'b'.repeat(64))).toBe(`${L.sha256Dir}/${HEX}-${'b'.repeat(64)}-removing`)
    expect(L.storeLockPath).toBe('/var/lib/layerstore/layerstore.lock')
    expect(storeLockPath('/r')).toBe('/r/layerstore.lock')
    expect(() => new LayerDbLayout('/r', '../x')).toThrow(InvalidIDError)
  })

  it('classifies names of tmp/, sha256/ and mounts/', () => {
    const o = 'c'.repeat(32)
    expect(LayerDbLayout.parseTmpName(`write-set-${o}-0a`)).toEqual({ type: 'write-set', owner: o })
    expect(LayerDbLayout.parseTmpName(`atomic-${o}-0a`)).toEqual({ type: 'atomic', owner: o })
    expect(LayerDbLayout.parseTmpName(`owner-${o}.lock`)).toEqual({ type: 'owner', owner: o })
    for (const foreign of ['write-set-123456789', `owner-${o}-1`, `atomic-${o}.lock`, 'x']) {
      expect(LayerDbLayout.parseTmpName(foreign)).toEqual({ type: 'foreign' })
    }
    expect(LayerDbLayout.parseLayerDirName(HEX)).toEqual({ type: 'record', name: HEX })
    expect(LayerDbLayout.parseLayerDirName(`${HEX}-${'d'.repeat(64)}-removing`)).toEqual({ type: 'removing', name: HEX, owner: 'd'.repeat(32) })
    expect(LayerDbLayout.parseLayerDirName(`abc-${'d'.repeat(64)}-removing`)).toEqual({ type: 'other' })
    expect(LayerDbLayout.parseMountDirName(`my-ctr-${'d'.repeat(64)}-removing`)).toEqual({ type: 'removing', name: 'my-ctr', owner: 'd'.repeat(32) })
    expect(LayerDbLayout.parseMountDirName('my-ctr')).toEqual({ type: 'record', name: 'my-ctr' })
    expect(LayerDbLayout.parseMountDirName('.hidden')).toEqual({ type: 'other' })
  })

  it('checks mount names and extra file names', () => {
    for (const ok of ['web', HEX, 'a b', 'ünïcode']) expect(() => checkMountName(ok)).not.toThrow()
    for (const bad of ['', '.', '..', '.x', 'a/b', 'a\0', 'x-removing', 'é'.repeat(128)]) {
      expect(() => checkMountName(bad)).toThrow(InvalidIDError)
    }
    for (const ok of ['references.json', 'mount-state.json', 'a.b.json']) expect(() => checkExtraFileName(ok)).not.toThrow()
    for (const bad of ['descriptor.json', 'diff', 'cache-id', 'A.json', '.x.json', 'x/y.json', 'x.txt']) {
      expect(() => checkExtraFileName(bad)).toThrow(InvalidIDError)
    }
  })
})
