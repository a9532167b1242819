/**
 * twilldb — the embedded database: `open(url)` for PostgreSQL-dialect SQL, the transactional key-value `Engine`
 * beneath it (MVCC, group commit, LSM over any storage URL), copy-on-write branches (`db.branch(name)`), and the
 * storage seam, and `MemoryHnsw`, the direct in-memory HNSW index (the SQL index's algorithm without SQL; SQL
 * tables get theirs with `CREATE INDEX … USING hnsw`).
 */

export type {
  BranchInfo,
  CreateBranchOptions,
  DropBranchOptions,
  MergeOptions,
  MergeResult,
  OpenOptions,
  Params,
  Queryable,
  QueryResult,
  ResultColumn,
  Row,
} from "./database.js";
export { Database, open, openOptionsSchema, Statement, TransactionScope } from "./database.js";
export type { MergeConflict } from "./engine/branch.js";
export { MergeConflictError } from "./engine/branch.js";
export type { EngineOptions, EngineStats } from "./engine/engine.js";
export { Engine, engineOptionsSchema } from "./engine/engine.js";
export type { KeyPart } from "./engine/lsm/keycodec.js";
export { decodeKey, encodeKey } from "./engine/lsm/keycodec.js";
export type { KeyValue, ScanRange } from "./engine/lsm/tree.js";
export type { TxnScanOptions } from "./engine/txn/transaction.js";
export { Transaction } from "./engine/txn/transaction.js";
export type { ErrorCode, TwillErrorOptions } from "./errors.js";
export { ErrorCodes, isTwillError, TwillError } from "./errors.js";
export type { StorageOptions } from "./storage/open.js";
export { openStorage } from "./storage/open.js";
export type { Log, LogFrame, ObjectStore, Storage } from "./storage/types.js";
export type { Metric } from "./vector/distance.js";
export type { HnswParams, SearchHit } from "./vector/hnsw.js";
export { MemoryHnsw } from "./vector/memory-hnsw.js";
