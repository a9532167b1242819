export { ErrorCodes, isTwillError, TwillError } from "../errors.js";
export type { StorageCounters } from "./counting.js";
export { CountingStorage } from "./counting.js";
export type { FaultOptions } from "./faulty.js";
export { FaultyStorage } from "./faulty.js";
export { dropMemoryStore } from "./memory.js";
export type { StorageOptions } from "./open.js";
export { openStorage, parseStorageOptions, redact, storageOptionsSchema } from "./open.js";
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
export { StorageLimits } from "./types.js";
