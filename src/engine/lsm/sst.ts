/**
 * The SST: one module to import for writing and reading sorted string tables. The format is specified in
 * sst-format.ts, the writer and the reader live in their own files.
 */

export { SST_FORMAT_VERSION, type SstProperties } from "./sst-format.js";
export { SstCursor, type SstIterateOptions, type SstOpenOptions, SstReader } from "./sst-reader.js";
export { buildSst, SlabPool, SstWriter, type SstWriterOptions, sstWriterDefaults } from "./sst-writer.js";
