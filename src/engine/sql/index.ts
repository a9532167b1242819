/**
 * src/engine/sql — PostgreSQL-dialect SQL over the transactional KV engine.
 *
 * Data path:  SQL text → parser.ts (libpg-query; `?` → `$n`) → statement.ts (plan) → plan.ts (row sources)
 *             → table-runtime.ts (constraints, index maintenance) → Transaction (get/put/delete/scan) → Engine
 * Caching:    session.ts keeps SQL text → parsed statements → plan per catalog version. A repeated statement is
 *             never parsed again; it is re-planned (from the cached AST) only after committed DDL.
 *
 * Key space (catalog.ts has the authoritative list). Every key is an order-preserving `encodeKey` tuple:
 *   [0, "meta"]                  catalog meta: the id counter (tables, indexes, sequences share it)
 *   [0, "table", name]           table definition (JSON: columns, primary key, indexes, checks)
 *   [1, sequenceId]              sequence high-water mark
 *   [tableId, ...pk]             row (row-codec.ts: version, column count, null bitmap, values by position)
 *   [indexId, ...values]         unique index entry with no NULL: value = encoded pk suffix
 *   [indexId, ...values, ...pk]  non-unique entry (or a unique one holding a NULL): value = encoded pk suffix
 * A table without a PRIMARY KEY gets a hidden int8 `rowid` column as its key, drawn from a sequence.
 *
 * Invariants:
 *   - A row and all its index entries change in the same transaction (table-runtime.ts is the only writer).
 *   - The catalog changes only through a transaction; the shared in-memory Catalog is replaced (never mutated)
 *     after that transaction commits. Plans are valid exactly while the Catalog object they were built on is
 *     current. Table, index and sequence ids are never reused.
 *   - Rows are decoded with the column types of the table version that reads them; columns are only ever
 *     appended, so an older, shorter row reads its missing columns as NULL (room for ADD COLUMN).
 *   - Uniqueness races between transactions become 40001 (both write the same key), never duplicates.
 *   - Every error leaving this layer is a TwillError with a PostgreSQL SQLSTATE; unsupported syntax is 0A000
 *     "feature not supported: …", never a silently different answer.
 *
 * Execution: expressions are compiled once per plan into closures over flat `Value[]` rows (expr.ts,
 * compile.ts); row sources are async iterables pulled from the top, so LIMIT stops scans early. A primary-key
 * point SELECT in autocommit mode bypasses the transaction and the iterator machinery: bind → key → one engine
 * read → decode → project.
 */

export type { ColumnDef, IndexDef, TableDef } from "./catalog.js";
export { Catalog, TableInfo } from "./catalog.js";
export { SqlError, sqlError, unsupported } from "./errors.js";
export {
  type CacheEntry,
  type RawResult,
  type ResultColumn,
  Session,
  SqlEngine,
  type SqlEngineOptions,
  Want,
} from "./session.js";
export { Oid, type SqlType, T, type Value } from "./types.js";
