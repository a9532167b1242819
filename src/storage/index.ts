export { openStorage, parseStorageOptions, redact, storageOptionsSchema } from "./open.js";
export type { StorageOptions } from "./open.js";
export { dropMemoryStore } from "./memory.js";
export { CountingStorage } from "./counting.js";
export type { StorageCounters } from "./counting.js";
export { FaultyStorage } from "./faulty.js";
export type { FaultOptions } from "./faulty.js";
export { StorageLimits } from "./types.js";
export type {
  AppendResult,
  ByteRange,
  Log,
  LogFrame,
  LogOpenOptions,
  ObjectStore,
  Storage,
  StorageKind,
} from "./types.js";
export { TwillError, ErrorCodes, isTwillError } from "../errors.js";
