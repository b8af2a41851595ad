import { describe, expect, it } from 'vitest'
import { parseMountInfo, readMountInfo } from '../../src/native/index.js'

// Lines in the shape of proc(5)'s example and of real overlay and bind mounts.
const SAMPLE = [
  '1 1 0:1 / / rw - rootfs rootfs rw',
  '36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue',
  '40 36 0:52 / /var/lib/my\\040dir rw,relatime shared:7 unbindable - overlay overlay rw,lowerdir=/a:/b,upperdir=/u,workdir=/w',
  '41 36 253:1 /sub\\011tab /mnt/back\\134slash\\012nl ro - ext4 /dev/mapper/with\\040space ro',
  'garbage line',
  '',
].join('\n')

describe('parseMountInfo', () => {
  it('parses every field, with optional fields', () => {
    const mounts = parseMountInfo(SAMPLE)
    expect(mounts).toHaveLength(4)
    expect(mounts[1]).toEqual({
      id: 36,
      parent: 35,
      major: 98,
      minor: 0,
      root: '/mnt1',
      mountPoint: '/mnt2',
      mountPointBytes: Buffer.from('/mnt2'),
      options: 'rw,noatime',
      optionalFields: ['master:1'],
      fstype: 'ext3',
      source: '/dev/root',
      superOptions: 'rw,errors=continue',
    })
    expect(mounts[2]).toMatchObject({ optionalFields: ['shared:7', 'unbindable'], fstype: 'overlay' })
    expect(mounts[2]?.superOptions).toBe('rw,lowerdir=/a:/b,upperdir=/u,workdir=/w')
  })

  it('unescapes octal escapes in paths and sources', () => {
    const mounts = parseMountInfo(SAMPLE)
    expect(mounts[2]?.mountPoint).toBe('/var/lib/my dir')
    expect(mounts[3]?.root).toBe('/sub\ttab')
    expect(mounts[3]?.mountPoint).toBe('/mnt/back\\slash\nnl')
    expect(mounts[3]?.source).toBe('/dev/mapper/with space')
  })

  it('keeps raw bytes: UTF-8 names as text, other bytes as latin1', () => {
    const bytes = Buffer.concat([
      Buffer.from('50 1 0:9 / /mnt/caf'),
      Buffer.from('é', 'utf8'),
      Buffer.from(' rw - tmpfs tmpfs rw\n51 1 0:9 / /mnt/raw'),
      Buffer.from([0xff]),
      Buffer.from(' rw - tmpfs tmpfs rw\n'),
    ])
    const mounts = parseMountInfo(bytes)
    expect(mounts.map((m) => m.mountPoint)).toEqual(['/mnt/café', '/mnt/raw\u00ff'])
    expect(mounts[1]!.mountPointBytes).toEqual(Buffer.from([...Buffer.from('/mnt/raw'), 0xff]))
    expect(mounts[0]!.mountPointBytes).toEqual(Buffer.from('/mnt/café'))
  })

  it('returns frozen entries', () => {
    const [first] = parseMountInfo(SAMPLE)
    expect(Object.isFrozen(first)).toBe(true)
  })
})

describe('readMountInfo', () => {
  it('reads this process mount table, which has a root mount', async () => {
    const mounts = await readMountInfo()
    expect(mounts.length).toBeGreaterThan(0)
    expect(mounts.some((m) => m.mountPoint === '/')).toBe(true)
  })
})
