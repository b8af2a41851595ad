/**
 * The tar-split module: byte-exact tar disassembly and reassembly, and the tar-split JSON
 * format (compatible with Go's vbatts/tar-split, as moby stores it in `tar-split.json.gz`).
 * One `export … from` line per file, so that parallel additions merge trivially.
 */
export * from './entry.js'
export * from './tar-header.js'
export * from './errors.js'
export * from './crc64.js'
export * from './go-path.js'
export * from './go-json.js'
export * from './json-packer.js'
export * from './json-unpacker.js'
export * from './file-getter.js'
export * from './assemble.js'
export * from './header.js'
export * from './pax.js'
export * from './sparse.js'
export * from './disassemble.js'
