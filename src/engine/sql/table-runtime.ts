/**
 * Per-table runtime: compiled defaults and CHECK constraints, constraint enforcement (NOT NULL, CHECK, primary
 * key and unique indexes) and index maintenance. Every write to a table goes through `insertRow`, `updateRow` or
 * `deleteRow`, so rows and their index entries change together in the same transaction.
 *
 * Order of checks for a new row, as PostgreSQL's: NOT NULL, then CHECK, then uniqueness (primary key, then unique
 * indexes in creation order). Uniqueness reads through the transaction, so rows written earlier in the same
 * statement count.
 */

import { encodeKey, type KeyPart } from "../lsm/keycodec.js";
import { NEEDS_IO } from "../lsm/types.js";
import { KEY_BYTES_MAX } from "../txn/transaction.js";
import type { CheckDef, IndexDef, TableInfo } from "./catalog.js";
import { asBool, type CompileCx, compileExpr, Scope, type ScopeRel } from "./compile.js";
import { SqlState, sqlError } from "./errors.js";
import { coerce, type Env, type Expr, ParamTypes } from "./expr.js";
import { hnswChanged, hnswDelete, hnswInsert, isHnsw } from "./hnsw-index.js";
import { concatBytes, type ExecCtx } from "./plan.js";
import { encodeRowView } from "./row-codec.js";
import { keyPartFn, outputText, type Value } from "./types.js";

export interface ColumnDefault {
  /** A sequence to draw from (serial, identity, rowid). */
  sequence?: { id: number; max: number; name: string };
  expr?: Expr;
}

export interface TableRuntime {
  defaults: (ColumnDefault | undefined)[];
  checks: { def: CheckDef; expr: Expr }[];
  notNull: number[];
  indexKeyFns: ((v: Value) => KeyPart)[][];
}

export function tableScopeRel(table: TableInfo, alias: string, base = 0): ScopeRel {
  return {
    name: alias,
    columns: table.def.columns.map((c, i) => ({
      name: c.name,
      type: table.types[i]!,
      index: base + i,
      ...(c.hidden ? { hidden: true } : {}),
    })),
  };
}

/** Compiles (once per table version) the defaults and checks. */
export function runtimeOf(table: TableInfo, position: (o: number) => number = (o) => o + 1): TableRuntime {
  if (table.compiled) return table.compiled as TableRuntime;
  const params = new ParamTypes();
  const emptyCx: CompileCx = { scope: new Scope([]), params, position, clause: "DEFAULT expressions" };
  const defaults = table.def.columns.map((c, i): ColumnDefault | undefined => {
    const d = c.default;
    if (!d) return undefined;
    if (d.kind === "sequence")
      return { sequence: { id: d.sequence, max: d.max, name: `${table.name}_${c.name}_seq` } };
    const e = coerce(
      compileExpr(d.expr, emptyCx),
      table.types[i]!,
      "assignment",
      params,
      `column "${c.name}"`,
    );
    return { expr: e };
  });
  const scope = new Scope([tableScopeRel(table, table.name)]);
  const checkCx: CompileCx = { scope, params, position, clause: "check constraints" };
  const checks = table.def.checks.map((def) => ({
    def,
    expr: asBool(compileExpr(def.expr, checkCx), checkCx, "CHECK"),
  }));
  const notNull = table.def.columns.flatMap((c, i) => (c.notNull ? [i] : []));
  const indexKeyFns = table.def.indexes.map((ix) => ix.columns.map((c) => keyPartFn(table.types[c]!)));
  const rt: TableRuntime = { defaults, checks, notNull, indexKeyFns };
  table.compiled = rt;
  return rt;
}

function failingRow(table: TableInfo, row: readonly Value[]): string {
  const vals = table.def.columns.flatMap((c, i) => {
    if (c.hidden) return [];
    const v = row[i];
    return [v === null || v === undefined ? "null" : outputText(table.types[i]!, v)];
  });
  return `Failing row contains (${vals.join(", ")}).`;
}

export function validateRow(table: TableInfo, rt: TableRuntime, row: Value[], env: Env): void {
  for (const i of rt.notNull) {
    if (row[i] === null) {
      const c = table.def.columns[i]!;
      throw sqlError(
        SqlState.NotNullViolation,
        `null value in column "${c.name}" of relation "${table.name}" violates not-null constraint`,
        {
          detail: failingRow(table, row),
        },
      );
    }
  }
  for (const c of rt.checks) {
    if (c.expr.eval(row, env) === false) {
      throw sqlError(
        SqlState.CheckViolation,
        `new row for relation "${table.name}" violates check constraint "${c.def.name}"`,
        {
          detail: failingRow(table, row),
        },
      );
    }
  }
}

/** Encoded primary-key suffix (the row key without the table id). */
export function pkSuffix(table: TableInfo, row: readonly Value[]): Uint8Array {
  return encodeKey(table.pkParts(row));
}

interface IndexEntry {
  key: Uint8Array;
  /** The values contain no NULL (a unique index enforces uniqueness only then). */
  complete: boolean;
}

export function indexEntry(
  table: TableInfo,
  rt: TableRuntime,
  ixPos: number,
  row: readonly Value[],
  pk: Uint8Array,
): IndexEntry {
  const ix = table.def.indexes[ixPos]!;
  const fns = rt.indexKeyFns[ixPos]!;
  const parts: KeyPart[] = [ix.id];
  let complete = true;
  for (let i = 0; i < ix.columns.length; i++) {
    const v = row[ix.columns[i]!]!;
    if (v === null) complete = false;
    parts.push(fns[i]!(v));
  }
  const head = encodeKey(parts);
  return { key: ix.unique && complete ? head : concatBytes(head, pk), complete };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function uniqueViolation(
  table: TableInfo,
  constraint: string,
  columns: readonly number[],
  row: readonly Value[],
) {
  const names = columns.map((c) => table.def.columns[c]!.name).join(", ");
  const vals = columns.map((c) => {
    const v = row[c];
    return v === null || v === undefined ? "null" : outputText(table.types[c]!, v);
  });
  return sqlError(
    SqlState.UniqueViolation,
    `duplicate key value violates unique constraint "${constraint}"`,
    {
      detail: `Key (${names})=(${vals.join(", ")}) already exists.`,
    },
  );
}

/** A conflict found while inserting: which constraint, and the key of the existing row. */
export interface Conflict {
  /** The primary key (undefined) or the unique index that conflicts. */
  index: IndexDef | undefined;
  existingRowKey: Uint8Array;
}

/**
 * Finds the first uniqueness conflict a new row would cause (primary key, then unique indexes), without writing.
 * `ignorePk`: the key of the row being updated, which may keep its own values. Each probe reads from memory
 * first (`getSync`) and waits only when a block must be read, so a plain INSERT pays no promise per probe.
 */
export function findConflict(
  ctx: ExecCtx,
  table: TableInfo,
  rt: TableRuntime,
  row: readonly Value[],
  pk: Uint8Array,
  ignorePk?: Uint8Array,
  /** ON CONFLICT's arbiter index, checked first as PostgreSQL does, so its action wins over another conflict. */
  arbiter?: IndexDef,
): Conflict | undefined | Promise<Conflict | undefined> {
  const indexes = table.def.indexes;
  const arbiterAt = arbiter ? indexes.indexOf(arbiter) : -1;
  // The probes in PostgreSQL's order: the arbiter, the primary key, then the other unique indexes.
  const order: number[] = [];
  if (arbiterAt !== -1) order.push(arbiterAt);
  order.push(-1);
  for (let i = 0; i < indexes.length; i++) if (i !== arbiterAt) order.push(i);
  return probeFrom(ctx, table, rt, row, pk, ignorePk, order, 0);
}

/** Runs the probes of `order` from `start`, synchronously until one has to wait for I/O. */
function probeFrom(
  ctx: ExecCtx,
  table: TableInfo,
  rt: TableRuntime,
  row: readonly Value[],
  pk: Uint8Array,
  ignorePk: Uint8Array | undefined,
  order: readonly number[],
  start: number,
): Conflict | undefined | Promise<Conflict | undefined> {
  for (let j = start; j < order.length; j++) {
    const probe = conflictProbe(table, rt, row, pk, ignorePk, order[j]!);
    if (probe === undefined) continue;
    const kv = ctx.kv;
    const got = kv.getSync === undefined ? NEEDS_IO : kv.getSync(probe.key);
    if (got === NEEDS_IO) {
      return kv.get(probe.key).then((existing) => {
        const c = probe.check(existing);
        return c ?? probeFrom(ctx, table, rt, row, pk, ignorePk, order, j + 1);
      });
    }
    const c = probe.check(got);
    if (c) return c;
  }
  return undefined;
}

/** The key one uniqueness probe reads, and what its value means; undefined when the probe is not needed. */
function conflictProbe(
  table: TableInfo,
  rt: TableRuntime,
  row: readonly Value[],
  pk: Uint8Array,
  ignorePk: Uint8Array | undefined,
  at: number,
): { key: Uint8Array; check: (existing: Uint8Array | undefined) => Conflict | undefined } | undefined {
  if (at === -1) {
    // A hidden rowid comes from a sequence and can never be set by a statement: no need to look it up.
    if (table.hasRowid || (ignorePk && bytesEqual(pk, ignorePk))) return undefined;
    const rowKey = checkKeySize(concatBytes(table.keyPrefix, pk), table.def.pkName ?? `${table.name}_pkey`);
    return {
      key: rowKey,
      check: (existing) =>
        existing !== undefined ? { index: undefined, existingRowKey: rowKey } : undefined,
    };
  }
  const ix = table.def.indexes[at]!;
  if (!ix.unique) return undefined;
  const e = indexEntry(table, rt, at, row, pk);
  if (!e.complete) return undefined;
  return {
    key: checkKeySize(e.key, ix.name),
    check: (existing) =>
      existing !== undefined && !(ignorePk && bytesEqual(existing, ignorePk))
        ? { index: ix, existingRowKey: concatBytes(table.keyPrefix, existing) }
        : undefined,
  };
}

export function conflictError(table: TableInfo, c: Conflict, row: readonly Value[]) {
  if (!c.index)
    return uniqueViolation(table, table.def.pkName ?? `${table.name}_pkey`, table.def.primaryKey, row);
  return uniqueViolation(table, c.index.name, c.index.columns, row);
}

function checkKeySize(key: Uint8Array, what: string): Uint8Array {
  if (key.length > KEY_BYTES_MAX) {
    throw sqlError(
      "54000",
      `index row size ${key.length} exceeds maximum ${KEY_BYTES_MAX} for index "${what}"`,
      {
        hint: "Values larger than the key limit cannot be indexed; index a hash of the value instead.",
      },
    );
  }
  return key;
}

/**
 * Writes a new row and its index entries; the caller has validated it and checked conflicts. Synchronous unless
 * the table has an HNSW index (whose graph insert reads nodes), so plain tables pay no promise.
 */
export function putRow(
  ctx: ExecCtx,
  table: TableInfo,
  rt: TableRuntime,
  row: Value[],
  pk: Uint8Array,
  skipVectors = false,
): void | Promise<void> {
  const txn = ctx.txn!;
  const rowKey = checkKeySize(concatBytes(table.keyPrefix, pk), table.def.pkName ?? `${table.name}_pkey`);
  let vectors = false;
  for (let i = 0; i < table.def.indexes.length; i++) {
    if (isHnsw(table.def.indexes[i]!)) {
      vectors = true;
      continue;
    }
    txn.put(checkKeySize(indexEntry(table, rt, i, row, pk).key, table.def.indexes[i]!.name), pk);
  }
  txn.put(rowKey, encodeRowView(table.types, row));
  if (vectors && !skipVectors) return putVectors(ctx, table, row, pk);
}

async function putVectors(ctx: ExecCtx, table: TableInfo, row: Value[], pk: Uint8Array): Promise<void> {
  for (const ix of table.def.indexes) if (isHnsw(ix)) await hnswInsert(ctx, ix, row, pk, true);
}

export async function insertRow(
  ctx: ExecCtx,
  table: TableInfo,
  rt: TableRuntime,
  row: Value[],
): Promise<void> {
  validateRow(table, rt, row, ctx.env);
  const pk = pkSuffix(table, row);
  const c = await findConflict(ctx, table, rt, row, pk);
  if (c) throw conflictError(table, c, row);
  await putRow(ctx, table, rt, row, pk);
}

export async function updateRow(
  ctx: ExecCtx,
  table: TableInfo,
  rt: TableRuntime,
  oldRow: Value[],
  newRow: Value[],
): Promise<void> {
  validateRow(table, rt, newRow, ctx.env);
  const txn = ctx.txn!;
  const oldPk = pkSuffix(table, oldRow);
  const newPk = pkSuffix(table, newRow);
  const pkChanged = !bytesEqual(oldPk, newPk);
  const c = await findConflict(ctx, table, rt, newRow, newPk, oldPk);
  if (c) throw conflictError(table, c, newRow);
  for (let i = 0; i < table.def.indexes.length; i++) {
    if (isHnsw(table.def.indexes[i]!)) continue;
    const o = indexEntry(table, rt, i, oldRow, oldPk);
    const n = indexEntry(table, rt, i, newRow, newPk);
    if (bytesEqual(o.key, n.key) && !pkChanged) continue;
    txn.delete(o.key);
  }
  if (pkChanged) txn.delete(concatBytes(table.keyPrefix, oldPk));
  await putRow(ctx, table, rt, newRow, newPk, true);
  // An update is delete + insert for HNSW, and only when the vector or the row's key changed.
  for (const ix of table.def.indexes) {
    if (!isHnsw(ix) || !hnswChanged(ix, oldRow, newRow, pkChanged)) continue;
    if (pkChanged) await hnswDelete(ctx, ix, oldPk);
    await hnswInsert(ctx, ix, newRow, newPk);
  }
}

export function deleteRow(
  ctx: ExecCtx,
  table: TableInfo,
  rt: TableRuntime,
  row: Value[],
): void | Promise<void> {
  const txn = ctx.txn!;
  const pk = pkSuffix(table, row);
  let vectors = false;
  for (let i = 0; i < table.def.indexes.length; i++) {
    if (isHnsw(table.def.indexes[i]!)) vectors = true;
    else txn.delete(indexEntry(table, rt, i, row, pk).key);
  }
  txn.delete(concatBytes(table.keyPrefix, pk));
  if (vectors) return deleteVectors(ctx, table, pk);
}

async function deleteVectors(ctx: ExecCtx, table: TableInfo, pk: Uint8Array): Promise<void> {
  for (const ix of table.def.indexes) if (isHnsw(ix)) await hnswDelete(ctx, ix, pk);
}
