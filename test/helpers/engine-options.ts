import type { EngineOptions } from "../../src/engine/engine.js";

/**
 * Engine options that make a few hundred KiB of test data flush, cut several SSTs of many blocks and compact:
 * the engine's multi-SST paths run without a benchmark-sized workload.
 */
export const smallEngine: EngineOptions = {
  memtableBytesMax: 64 * 1024,
  blockBytesTarget: 1024,
  sstBytesTarget: 64 * 1024,
};
