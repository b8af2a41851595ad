/**
 * The io module: reading inputs with flat memory (a file as chunks from a small pool of
 * reused buffers, with the lease that says when a buffer may be reused). One `export … from`
 * line per file.
 */
export * from './errors.js'
export * from './read-file-chunks.js'
