/**
 * twilldb — the embedded engine. Today it exports the storage seam and the error type; the engine (`open()`),
 * SQL, branches and vectors land on top of it.
 */
export { TwillError, ErrorCodes, isTwillError } from "./errors.js";
export type { ErrorCode, TwillErrorOptions } from "./errors.js";
export { openStorage } from "./storage/open.js";
export type { StorageOptions } from "./storage/open.js";
export type { Storage, Log, LogFrame, ObjectStore } from "./storage/types.js";
