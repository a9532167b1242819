/**
 * twilldb — the embedded engine. Today it exports the storage seam and the error type; the engine (`open()`),
 * SQL, branches and vectors land on top of it.
 */

export type { ErrorCode, TwillErrorOptions } from "./errors.js";
export { ErrorCodes, isTwillError, TwillError } from "./errors.js";
export type { StorageOptions } from "./storage/open.js";
export { openStorage } from "./storage/open.js";
export type { Log, LogFrame, ObjectStore, Storage } from "./storage/types.js";
