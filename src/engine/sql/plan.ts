/**
 * Executable plans. A statement plan is built once (and cached by SQL text) and executed many times; everything
 * that varies per execution lives in the `ExecCtx` (the transaction or reader, bound parameters, subquery
 * results). Row sources are async iterables of flat `Value[]` rows, pulled by the node above, so `LIMIT` stops a
 * scan early and a point lookup never touches more than its one key.
 */

import { type Cursor, isCursor } from "../lsm/cursor.js";
import { encodeKey, type KeyPart, tuplePrefixRange } from "../lsm/keycodec.js";
import type { KeyValue } from "../lsm/tree.js";
import { NEEDS_IO, type NeedsIo } from "../lsm/types.js";
import { KEY_BYTES_MAX, type TxnScanOptions } from "../txn/transaction.js";
import type { Accumulator, AggregateSpec } from "./aggregates.js";
import type { Catalog, IndexDef, TableDef, TableInfo } from "./catalog.js";
import type { SubqueryMode } from "./compile.js";
import { SqlState, sqlError } from "./errors.js";
import { type Env, type EvalFn, type Expr, hashKeyFn, tupleKeyFn } from "./expr.js";
import type { VectorIndexes } from "./hnsw-index.js";
import { decodeRow } from "./row-codec.js";
import { comparator, keyPartFn, type SqlType, type Value } from "./types.js";

/** What a plan reads through: a transaction, or committed state for a single-key autocommit read. */
export interface Kv {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  scan(options: TxnScanOptions): AsyncIterable<KeyValue>;
  /** Memory-only read (memtables and cached blocks), or NEEDS_IO; optional. */
  getSync?(key: Uint8Array): Uint8Array | undefined | NeedsIo;
}

export interface Services {
  /** Next value of a sequence (serial columns, rowids); synchronous while the cached block lasts. */
  nextSequence(id: number, max: number, name: string): number | Promise<number>;
  /** HNSW indexes' decoded-node caches and commit bookkeeping (hnsw-index.ts). */
  vectors?: VectorIndexes;
}

/** What DDL needs from the session: its current catalog (with this transaction's changes) and a way to change it. */
export interface DdlHost {
  catalog(): Catalog;
  /** Records a table created, changed (def) or dropped (null) by this transaction; installed at commit. */
  change(name: string, def: TableDef | null): void;
}

/** Where a statement writes: the transaction, or the write layer of the newest savepoint (savepoints.ts). */
export interface KvWriter {
  put(key: Uint8Array, value: Uint8Array): void;
  delete(key: Uint8Array): void;
}

export interface ExecCtx {
  kv: Kv;
  /** Present whenever the statement may write. */
  txn: KvWriter | undefined;
  env: Env;
  services: Services;
  ddl?: DdlHost;
}

export interface OutputColumn {
  name: string;
  type: SqlType;
}

export interface ExplainNode {
  label: string;
  details: string[];
  children: ExplainNode[];
}

/** Receives one row; returning false stops the source early (LIMIT, EXISTS). */
export type Emit = (row: Value[]) => boolean | undefined;

export interface RowSource {
  rows(ctx: ExecCtx, outer?: Value[]): AsyncIterable<Value[]>;
  /**
   * Optional push-based execution of the same rows: calls `emit` for each, synchronously while the data is in
   * memory, so a scan → filter → project → aggregate chain costs no promise per row (an async generator per
   * node costs several). Must produce exactly what `rows` does.
   */
  each?(ctx: ExecCtx, outer: Value[] | undefined, emit: Emit): Promise<void>;
  explain(): ExplainNode;
}

/** Pushes the rows of `src` to `emit`, through `each` when the source has it. */
export async function forEachRow(
  src: RowSource,
  ctx: ExecCtx,
  outer: Value[] | undefined,
  emit: Emit,
): Promise<void> {
  if (src.each) return src.each(ctx, outer, emit);
  for await (const r of src.rows(ctx, outer)) if (emit(r) === false) return;
}

/** What a scan visitor returns: false to stop; a promise only when it had to wait for I/O itself. */
type VisitResult = boolean | undefined | Promise<boolean | undefined>;

/**
 * Visits a scan's pairs; synchronous while the engine's cursor has them in memory and the visitor answers
 * without waiting.
 */
async function scanEach(
  kv: Kv,
  options: TxnScanOptions,
  visit: (pair: KeyValue) => VisitResult,
): Promise<void> {
  const it = kv.scan(options);
  if (isCursor<KeyValue>(it)) {
    const c = it as Cursor<KeyValue> & { close?: () => void };
    for (;;) {
      const pair = c.nextSync();
      if (pair === NEEDS_IO) {
        await c.fill();
        continue;
      }
      if (pair === undefined) return;
      let more = visit(pair);
      if (typeof more === "object") more = await more;
      if (more === false) {
        c.close?.();
        return;
      }
    }
  }
  for await (const pair of it) if ((await visit(pair)) === false) return;
}

/** PostgreSQL's EXPLAIN text layout (without costs). */
export function printExplain(n: ExplainNode, depth = 0, out: string[] = []): string[] {
  out.push(depth === 0 ? n.label : `${" ".repeat(depth * 6 - 4)}->  ${n.label}`);
  const pad = depth === 0 ? "  " : " ".repeat(depth * 6 + 2);
  for (const d of n.details) out.push(pad + d);
  for (const c of n.children) printExplain(c, depth + 1, out);
  return out;
}

function node(
  label: string,
  details: (string | undefined)[] = [],
  children: ExplainNode[] = [],
): ExplainNode {
  return { label, details: details.filter((d): d is string => d !== undefined), children };
}

export const EMPTY_ROW: Value[] = [];

export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export async function collect(src: RowSource, ctx: ExecCtx, outer?: Value[]): Promise<Value[][]> {
  const out: Value[][] = [];
  await forEachRow(src, ctx, outer, (r) => {
    out.push(r);
    return true;
  });
  return out;
}

// ---- init plans (uncorrelated subqueries) --------------------------------------------------------------------------

export interface InitPlan {
  id: number;
  source: RowSource;
  mode: SubqueryMode;
  /** Reads the outer row: run per outer row by the node that needs it, not up front. */
  correlated: boolean;
}

export async function runInitPlans(ctx: ExecCtx, plans: readonly InitPlan[]): Promise<void> {
  for (const p of plans) if (!p.correlated) await runSubplan(ctx, p);
}

/** Runs correlated subplans for `row` (the outer row their references read), storing results in env.sub. */
export async function runCorrelated(ctx: ExecCtx, plans: readonly InitPlan[], row: Value[]): Promise<void> {
  const env = ctx.env;
  const saved = env.outer;
  env.outer = row;
  try {
    for (const p of plans) await runSubplan(ctx, p);
  } finally {
    env.outer = saved;
  }
}

async function runSubplan(ctx: ExecCtx, p: InitPlan): Promise<void> {
  {
    const mode = p.mode;
    switch (mode.kind) {
      case "exists": {
        let found = false;
        for await (const _r of p.source.rows(ctx)) {
          found = true;
          break;
        }
        ctx.env.sub[p.id] = found;
        break;
      }
      case "scalar": {
        let value: Value = null;
        let n = 0;
        for await (const r of p.source.rows(ctx)) {
          if (++n > 1)
            throw sqlError(
              SqlState.CardinalityViolation,
              "more than one row returned by a subquery used as an expression",
            );
          value = r[0] ?? null;
        }
        ctx.env.sub[p.id] = value;
        break;
      }
      case "set": {
        const set = new Set<unknown>();
        let hasNull = false;
        let empty = true;
        for await (const r of p.source.rows(ctx)) {
          empty = false;
          let v = r[0] ?? null;
          if (v !== null && mode.convert) v = mode.convert(v, ctx.env.now);
          if (v === null) hasNull = true;
          else set.add(mode.key(v));
        }
        ctx.env.sub[p.id] = { set, hasNull, empty };
        break;
      }
      case "rows": {
        const values: Value[] = [];
        for await (const r of p.source.rows(ctx)) {
          let v = r[0] ?? null;
          if (v !== null && mode.convert) v = mode.convert(v, ctx.env.now);
          values.push(v);
        }
        ctx.env.sub[p.id] = values;
        break;
      }
    }
  }
}

/** EXPLAIN children for subplans, labelled as PostgreSQL does. */
export function subplanNodes(plans: readonly InitPlan[]): ExplainNode[] {
  return plans.map((p) =>
    node(`${p.correlated ? "SubPlan" : "InitPlan"} ${p.id + 1}`, [], [p.source.explain()]),
  );
}

/** The correlated subplans an expression list needs, looked up by id. */
export function correlatedPlans(exprs: readonly (Expr | undefined)[], all: readonly InitPlan[]): InitPlan[] {
  const ids = new Set<number>();
  for (const e of exprs) for (const id of e?.correlated ?? []) ids.add(id);
  return all.filter((p) => ids.has(p.id));
}

// ---- table access ---------------------------------------------------------------------------------------------------

export interface Bound {
  expr: Expr;
  inclusive: boolean;
}

export type AccessPath =
  | { kind: "seq"; reverse: boolean }
  | { kind: "pk-point"; keys: Expr[]; keyTypes: SqlType[] }
  | {
      kind: "pk-in";
      items: Expr[];
      keyType: SqlType /** `pk = ANY(array)`: the keys come from it. */;
      array?: Expr;
    }
  | {
      kind: "pk-range";
      eq: Expr[];
      eqTypes: SqlType[];
      lower?: Bound;
      upper?: Bound;
      boundType?: SqlType;
      reverse: boolean;
    }
  | { kind: "index-point"; index: IndexDef; keys: Expr[]; keyTypes: SqlType[] }
  | {
      kind: "index-range";
      index: IndexDef;
      eq: Expr[];
      eqTypes: SqlType[];
      lower?: Bound;
      upper?: Bound;
      boundType?: SqlType;
      reverse: boolean;
    };

function keyParts(
  exprs: readonly Expr[],
  fns: readonly ((v: Value) => KeyPart)[],
  row: Value[],
  env: Env,
): KeyPart[] | undefined {
  const parts: KeyPart[] = new Array(exprs.length);
  for (let i = 0; i < exprs.length; i++) {
    const v = exprs[i]!.eval(row, env);
    if (v === null) return undefined; // = NULL matches nothing
    parts[i] = fns[i]!(v);
  }
  return parts;
}

/** Reads one table through an access path, applying the residual filter to each row. */
export class TableAccess implements RowSource {
  private readonly eqFns: ((v: Value) => KeyPart)[];
  private readonly boundFn: ((v: Value) => KeyPart) | undefined;
  /**
   * The columns anything above reads (1) and those it never reads (0), set by the planner once the whole query
   * is compiled; undefined: every column. Unread columns are skipped while decoding and come out NULL.
   */
  mask: Uint8Array | undefined;
  /**
   * `each` decodes every row into one array, overwritten by the next row: set by the planner only when the
   * consumer keeps no row (an aggregate reading values out of each one as it comes).
   */
  reuseRows = false;

  constructor(
    readonly table: TableInfo,
    readonly path: AccessPath,
    readonly filter: Expr | undefined,
    /** Offset of this table's columns in the rows the filter sees (0 unless joined). */
    readonly alias: string,
  ) {
    switch (path.kind) {
      case "pk-point":
      case "index-point":
        this.eqFns = path.keyTypes.map(keyPartFn);
        break;
      case "pk-in":
        this.eqFns = [keyPartFn(path.keyType)];
        break;
      case "pk-range":
      case "index-range":
        this.eqFns = path.eqTypes.map(keyPartFn);
        break;
      default:
        this.eqFns = [];
    }
    this.boundFn =
      (path.kind === "pk-range" || path.kind === "index-range") && path.boundType
        ? keyPartFn(path.boundType)
        : undefined;
  }

  /** Decodes a fetched row and applies the residual filter. */
  accept(bytes: Uint8Array | undefined, env: Env): Value[] | undefined {
    if (bytes === undefined) return undefined;
    const row = decodeRow(this.table.types, bytes, this.table.missing, this.mask);
    if (this.filter && this.filter.eval(row, env) !== true) return undefined;
    return row;
  }

  /** Fetches and filters the row stored at `key`. */
  private async fetch(ctx: ExecCtx, key: Uint8Array): Promise<Value[] | undefined> {
    if (key.length > KEY_BYTES_MAX) return undefined; // no stored key is that long
    return this.accept(await ctx.kv.get(key), ctx.env);
  }

  /** `fetch` from memory only, or NEEDS_IO when the read must wait (then `fetch`). */
  private fetchSync(ctx: ExecCtx, key: Uint8Array): Value[] | undefined | NeedsIo {
    if (key.length > KEY_BYTES_MAX) return undefined;
    const kv = ctx.kv;
    if (kv.getSync === undefined) return NEEDS_IO;
    const bytes = kv.getSync(key);
    return bytes === NEEDS_IO ? bytes : this.accept(bytes, ctx.env);
  }

  /** The row key of a primary-key point lookup; undefined when a key value is NULL (no row can match). */
  pointKey(outer: Value[], env: Env): Uint8Array | undefined {
    const keys = (this.path as { keys: Expr[] }).keys;
    if (keys.length === 1) {
      const v = keys[0]!.eval(outer, env);
      return v === null ? undefined : encodeKey([this.table.def.id, this.eqFns[0]!(v)]);
    }
    const parts = keyParts(keys, this.eqFns, outer, env);
    return parts ? encodeKey([this.table.def.id, ...parts]) : undefined;
  }

  /** The single-key path of a primary-key point lookup. */
  async point(ctx: ExecCtx, outer: Value[]): Promise<Value[] | undefined> {
    const key = this.pointKey(outer, ctx.env);
    return key === undefined ? undefined : this.fetch(ctx, key);
  }

  private rangeBounds(
    outer: Value[],
    env: Env,
    prefix: KeyPart[],
    nullable: boolean,
  ): { start: Uint8Array; end: Uint8Array } | undefined {
    const p = this.path as { eq: Expr[]; lower?: Bound; upper?: Bound };
    const eq = keyParts(p.eq, this.eqFns, outer, env);
    if (!eq) return undefined;
    const base = [...prefix, ...eq];
    let start: Uint8Array;
    let end: Uint8Array;
    if (p.lower) {
      const v = p.lower.expr.eval(outer, env);
      if (v === null) return undefined;
      const kp = this.boundFn!(v);
      start = p.lower.inclusive ? encodeKey([...base, kp]) : tuplePrefixRange([...base, kp]).end;
    } else {
      start = p.upper && nullable ? tuplePrefixRange([...base, null]).end : encodeKey(base);
    }
    if (p.upper) {
      const v = p.upper.expr.eval(outer, env);
      if (v === null) return undefined;
      const kp = this.boundFn!(v);
      end = p.upper.inclusive ? tuplePrefixRange([...base, kp]).end : encodeKey([...base, kp]);
    } else {
      end = tuplePrefixRange(base).end;
    }
    return { start, end };
  }

  async *rows(ctx: ExecCtx, outer: Value[] = EMPTY_ROW): AsyncIterable<Value[]> {
    const env = ctx.env;
    const table = this.table;
    const path = this.path;
    switch (path.kind) {
      case "seq": {
        const filter = this.filter?.eval;
        for await (const kv of ctx.kv.scan({
          start: table.range.start,
          end: table.range.end,
          reverse: path.reverse,
        })) {
          const row = decodeRow(table.types, kv.value, table.missing, this.mask);
          if (filter === undefined || filter(row, env) === true) yield row;
        }
        return;
      }
      case "pk-point": {
        const row = await this.point(ctx, outer);
        if (row) yield row;
        return;
      }
      case "pk-in": {
        const seen = new Set<string>();
        const values = path.array
          ? ((path.array.eval(outer, env) as { items: readonly Value[] } | null)?.items ?? [])
          : path.items.map((item) => item.eval(outer, env));
        for (const v of values) {
          if (v === null) continue;
          const key = encodeKey([table.def.id, this.eqFns[0]!(v)]);
          const k = Buffer.from(key).toString("latin1");
          if (seen.has(k)) continue;
          seen.add(k);
          const row = await this.fetch(ctx, key);
          if (row) yield row;
        }
        return;
      }
      case "pk-range": {
        const r = this.rangeBounds(outer, env, [table.def.id], false);
        if (!r) return;
        const filter = this.filter?.eval;
        for await (const kv of ctx.kv.scan({ start: r.start, end: r.end, reverse: path.reverse })) {
          const row = decodeRow(table.types, kv.value, table.missing, this.mask);
          if (filter === undefined || filter(row, env) === true) yield row;
        }
        return;
      }
      case "index-point": {
        const parts = keyParts(path.keys, this.eqFns, outer, env);
        if (!parts) return;
        if (path.index.unique) {
          const ixKey = encodeKey([path.index.id, ...parts]);
          if (ixKey.length > KEY_BYTES_MAX) return;
          const pk = await ctx.kv.get(ixKey);
          if (pk === undefined) return;
          const row = await this.fetch(ctx, concatBytes(table.keyPrefix, pk));
          if (row) yield row;
          return;
        }
        const range = tuplePrefixRange([path.index.id, ...parts]);
        for await (const kv of ctx.kv.scan(range)) {
          const row = await this.fetch(ctx, concatBytes(table.keyPrefix, kv.value));
          if (row) yield row;
        }
        return;
      }
      case "index-range": {
        const r = this.rangeBounds(outer, env, [path.index.id], true);
        if (!r) return;
        for await (const kv of ctx.kv.scan({ start: r.start, end: r.end, reverse: path.reverse })) {
          const row = await this.fetch(ctx, concatBytes(table.keyPrefix, kv.value));
          if (row) yield row;
        }
        return;
      }
    }
  }

  async each(ctx: ExecCtx, outer: Value[] | undefined, emit: Emit): Promise<void> {
    const env = ctx.env;
    const table = this.table;
    const path = this.path;
    const types = table.types;
    const missing = table.missing;
    const mask = this.mask;
    const filter = this.filter?.eval;
    const into: Value[] | undefined = this.reuseRows ? new Array(types.length) : undefined;
    const visitRow = (pair: KeyValue): boolean | undefined => {
      const row = decodeRow(types, pair.value, missing, mask, into);
      if (filter !== undefined && filter(row, env) !== true) return true;
      return emit(row);
    };
    if (path.kind === "seq") {
      return scanEach(
        ctx.kv,
        { start: table.range.start, end: table.range.end, reverse: path.reverse },
        visitRow,
      );
    }
    if (path.kind === "pk-range") {
      const r = this.rangeBounds(outer ?? EMPTY_ROW, env, [table.def.id], false);
      if (!r) return;
      return scanEach(ctx.kv, { start: r.start, end: r.end, reverse: path.reverse }, visitRow);
    }
    if (path.kind === "index-range" || (path.kind === "index-point" && !path.index.unique)) {
      let range: { start: Uint8Array; end: Uint8Array } | undefined;
      if (path.kind === "index-range")
        range = this.rangeBounds(outer ?? EMPTY_ROW, env, [path.index.id], true);
      else {
        const parts = keyParts(path.keys, this.eqFns, outer ?? EMPTY_ROW, env);
        range = parts ? tuplePrefixRange([path.index.id, ...parts]) : undefined;
      }
      if (!range) return;
      // Stream the index entries (a LIMIT above stops the scan): each entry's row is fetched as it comes, with no
      // promise while the entry and its row are in memory.
      const prefix = table.keyPrefix;
      const options = {
        start: range.start,
        end: range.end,
        reverse: path.kind === "index-range" && path.reverse,
      };
      return scanEach(ctx.kv, options, (pair) => {
        const key = concatBytes(prefix, pair.value);
        const row = this.fetchSync(ctx, key);
        if (row === NEEDS_IO) return this.fetch(ctx, key).then((r) => (r ? emit(r) : undefined));
        return row ? emit(row) : undefined;
      });
    }
    if (path.kind === "pk-point" || path.kind === "index-point") {
      // One row (a primary key, or a unique index entry and then its row): synchronous while both are in memory.
      let key: Uint8Array | undefined;
      if (path.kind === "pk-point") key = this.pointKey(outer ?? EMPTY_ROW, env);
      else {
        const parts = keyParts(path.keys, this.eqFns, outer ?? EMPTY_ROW, env);
        if (!parts) return;
        const ixKey = encodeKey([path.index.id, ...parts]);
        if (ixKey.length > KEY_BYTES_MAX) return;
        let pk = ctx.kv.getSync === undefined ? NEEDS_IO : ctx.kv.getSync(ixKey);
        if (pk === NEEDS_IO) pk = await ctx.kv.get(ixKey);
        if (pk === undefined) return;
        key = concatBytes(table.keyPrefix, pk);
      }
      if (key === undefined) return;
      let row = this.fetchSync(ctx, key);
      if (row === NEEDS_IO) row = await this.fetch(ctx, key);
      if (row) emit(row);
      return;
    }
    for await (const r of this.rows(ctx, outer)) if (emit(r) === false) return;
  }

  describe(): { head: string; cond?: string } {
    const name = this.alias === this.table.name ? this.table.name : `${this.table.name} ${this.alias}`;
    const pkName = this.table.def.pkName ?? `${this.table.name}_rowid`;
    const p = this.path;
    const cols = (ix: number[]) => ix.map((i) => this.table.def.columns[i]!.name);
    const conds = (names: string[], eq: Expr[], lower?: Bound, upper?: Bound) => {
      const parts = eq.map((e, i) => `${names[i]} = ${e.text}`);
      const next = names[eq.length];
      if (lower) parts.push(`${next} ${lower.inclusive ? ">=" : ">"} ${lower.expr.text}`);
      if (upper) parts.push(`${next} ${upper.inclusive ? "<=" : "<"} ${upper.expr.text}`);
      return parts.length > 0 ? `(${parts.join(" AND ")})` : undefined;
    };
    switch (p.kind) {
      case "seq":
        return { head: `Seq Scan${p.reverse ? " Backward" : ""} on ${name}` };
      case "pk-point":
        return {
          head: `Index Scan using ${pkName} on ${name}`,
          cond: conds(cols(this.table.def.primaryKey), p.keys),
        };
      case "pk-in":
        return {
          head: `Index Scan using ${pkName} on ${name}`,
          cond: p.array
            ? `(${cols(this.table.def.primaryKey)[0]} = ANY (${p.array.text}))`
            : `(${cols(this.table.def.primaryKey)[0]} IN (${p.items.map((e) => e.text).join(", ")}))`,
        };
      case "pk-range":
        return {
          head: `Index Scan${p.reverse ? " Backward" : ""} using ${pkName} on ${name}`,
          cond: conds(cols(this.table.def.primaryKey), p.eq, p.lower, p.upper),
        };
      case "index-point":
        return {
          head: `Index Scan using ${p.index.name} on ${name}`,
          cond: conds(cols(p.index.columns), p.keys),
        };
      case "index-range":
        return {
          head: `Index Scan${p.reverse ? " Backward" : ""} using ${p.index.name} on ${name}`,
          cond: conds(cols(p.index.columns), p.eq, p.lower, p.upper),
        };
    }
  }

  explain(): ExplainNode {
    const d = this.describe();
    return node(d.head, [d.cond && `Index Cond: ${d.cond}`, this.filter && `Filter: ${this.filter.text}`]);
  }
}

// ---- simple sources -------------------------------------------------------------------------------------------------

/** One empty row: the FROM of `SELECT 1`. */
export class SingleRow implements RowSource {
  async *rows(): AsyncIterable<Value[]> {
    yield [];
  }
  explain(): ExplainNode {
    return node("Result");
  }
}

export class ValuesSource implements RowSource {
  constructor(readonly rowsExprs: Expr[][]) {}
  async *rows(ctx: ExecCtx, outer: Value[] = EMPTY_ROW): AsyncIterable<Value[]> {
    for (const exprs of this.rowsExprs) {
      const r: Value[] = new Array(exprs.length);
      for (let i = 0; i < exprs.length; i++) r[i] = exprs[i]!.eval(outer, ctx.env);
      yield r;
    }
  }
  explain(): ExplainNode {
    return node(`Values Scan on "*VALUES*" (${this.rowsExprs.length} rows)`);
  }
}

export class SeriesSource implements RowSource {
  constructor(
    readonly start: Expr,
    readonly stop: Expr,
    readonly step: Expr | undefined,
    readonly kind: "int" | "bigint",
  ) {}
  async *rows(ctx: ExecCtx, outer: Value[] = EMPTY_ROW): AsyncIterable<Value[]> {
    const a = this.start.eval(outer, ctx.env);
    const b = this.stop.eval(outer, ctx.env);
    const s = this.step ? this.step.eval(outer, ctx.env) : 1;
    if (a === null || b === null || s === null) return;
    const step = Number(s);
    if (step === 0) throw sqlError(SqlState.InvalidParameterValue, "step size cannot equal zero");
    const from = Number(a);
    const to = Number(b);
    let n = 0;
    for (let v = from; step > 0 ? v <= to : v >= to; v += step) {
      if (++n % 4096 === 0) await Promise.resolve();
      yield [v];
    }
  }
  explain(): ExplainNode {
    return node("Function Scan on generate_series");
  }
}

// ---- operators ------------------------------------------------------------------------------------------------------

export class FilterNode implements RowSource {
  constructor(
    readonly child: RowSource,
    readonly pred: Expr,
    /** Correlated subqueries in the predicate, run for each row first. */
    readonly perRow: InitPlan[] = [],
  ) {}
  async *rows(ctx: ExecCtx, outer?: Value[]): AsyncIterable<Value[]> {
    const f = this.pred.eval;
    const env = ctx.env;
    const perRow = this.perRow;
    for await (const r of this.child.rows(ctx, outer)) {
      if (perRow.length > 0) await runCorrelated(ctx, perRow, r);
      if (f(r, env) === true) yield r;
    }
  }
  async each(ctx: ExecCtx, outer: Value[] | undefined, emit: Emit): Promise<void> {
    if (this.perRow.length > 0) {
      for await (const r of this.rows(ctx, outer)) if (emit(r) === false) return;
      return;
    }
    const f = this.pred.eval;
    const env = ctx.env;
    return forEachRow(this.child, ctx, outer, (r) => (f(r, env) === true ? emit(r) : true));
  }
  explain(): ExplainNode {
    const c = this.child.explain();
    const subs = subplanNodes(this.perRow);
    if (c.children.length === 0 && !c.details.some((d) => d.startsWith("Filter:"))) {
      return { ...c, details: [...c.details, `Filter: ${this.pred.text}`], children: subs };
    }
    return node("Result", [`Filter: ${this.pred.text}`], [c, ...subs]);
  }
}

export class ProjectNode implements RowSource {
  constructor(
    readonly child: RowSource,
    readonly exprs: Expr[],
    /** Correlated subqueries in the expressions, run for each row first. */
    readonly perRow: InitPlan[] = [],
  ) {}
  async *rows(ctx: ExecCtx, outer?: Value[]): AsyncIterable<Value[]> {
    const evals = this.exprs.map((e) => e.eval);
    const n = evals.length;
    const env = ctx.env;
    const perRow = this.perRow;
    for await (const r of this.child.rows(ctx, outer)) {
      if (perRow.length > 0) await runCorrelated(ctx, perRow, r);
      const out: Value[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = evals[i]!(r, env);
      yield out;
    }
  }
  async each(ctx: ExecCtx, outer: Value[] | undefined, emit: Emit): Promise<void> {
    if (this.perRow.length > 0) {
      for await (const r of this.rows(ctx, outer)) if (emit(r) === false) return;
      return;
    }
    const evals = this.exprs.map((e) => e.eval);
    const n = evals.length;
    const env = ctx.env;
    return forEachRow(this.child, ctx, outer, (r) => {
      const out: Value[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = evals[i]!(r, env);
      return emit(out);
    });
  }
  explain(): ExplainNode {
    const c = this.child.explain();
    return this.perRow.length === 0 ? c : { ...c, children: [...c.children, ...subplanNodes(this.perRow)] };
  }
}

export class AggregateNode implements RowSource {
  constructor(
    readonly child: RowSource,
    readonly groupExprs: Expr[],
    readonly aggs: AggregateSpec[],
  ) {
    this.filters = aggs.map((a) => a.filter?.eval);
    this.arity = Uint8Array.from(aggs, (a) => Math.min(a.args.length, 2));
    this.arg0 = aggs.map((a) => a.args[0]?.eval);
    this.arg1 = aggs.map((a) => a.args[1]?.eval);
  }

  /** Per aggregate, resolved once: its FILTER, its argument count and its first two arguments' closures. */
  private readonly filters: (EvalFn | undefined)[];
  private readonly arity: Uint8Array;
  private readonly arg0: (EvalFn | undefined)[];
  private readonly arg1: (EvalFn | undefined)[];

  private step(accs: Accumulator[], row: Value[], env: Env): void {
    const n = accs.length;
    for (let i = 0; i < n; i++) {
      const filter = this.filters[i];
      if (filter !== undefined && filter(row, env) !== true) continue;
      const acc = accs[i]!;
      const arity = this.arity[i];
      if (arity === 0) acc.add(null);
      else if (arity === 1) acc.add(this.arg0[i]!(row, env));
      else (acc.add as (v: Value, w: Value) => void)(this.arg0[i]!(row, env), this.arg1[i]!(row, env));
    }
  }

  async *rows(ctx: ExecCtx, outer?: Value[]): AsyncIterable<Value[]> {
    const env = ctx.env;
    if (this.groupExprs.length === 0) {
      const accs = this.aggs.map((a) => a.create());
      await forEachRow(this.child, ctx, outer, (r) => {
        this.step(accs, r, env);
        return true;
      });
      yield accs.map((a) => a.result());
      return;
    }
    if (this.groupExprs.length === 1) {
      // One key: the value's own hash key (a primitive) keys the map, with no string built per row.
      const f = this.groupExprs[0]!.eval;
      const hk = hashKeyFn(this.groupExprs[0]!.type);
      const NULL_KEY = Symbol("null");
      const groups = new Map<unknown, { keys: Value[]; accs: Accumulator[] }>();
      await forEachRow(this.child, ctx, outer, (r) => {
        const v = f(r, env);
        const k = v === null ? NULL_KEY : hk(v);
        let grp = groups.get(k);
        if (!grp) {
          grp = { keys: [v], accs: this.aggs.map((a) => a.create()) };
          groups.set(k, grp);
        }
        this.step(grp.accs, r, env);
        return true;
      });
      for (const grp of groups.values()) yield [...grp.keys, ...grp.accs.map((a) => a.result())];
      return;
    }
    const keyOf = tupleKeyFn(this.groupExprs.map((e) => e.type));
    const groups = new Map<string, { keys: Value[]; accs: Accumulator[] }>();
    const g = this.groupExprs.map((e) => e.eval);
    await forEachRow(this.child, ctx, outer, (r) => {
      const keys = g.map((f) => f(r, env));
      const k = keyOf(keys);
      let grp = groups.get(k);
      if (!grp) {
        grp = { keys, accs: this.aggs.map((a) => a.create()) };
        groups.set(k, grp);
      }
      this.step(grp.accs, r, env);
      return true;
    });
    for (const grp of groups.values()) yield [...grp.keys, ...grp.accs.map((a) => a.result())];
  }

  explain(): ExplainNode {
    return node(
      this.groupExprs.length === 0 ? "Aggregate" : "HashAggregate",
      [
        this.groupExprs.length > 0
          ? `Group Key: ${this.groupExprs.map((e) => e.text).join(", ")}`
          : undefined,
      ],
      [this.child.explain()],
    );
  }
}

export interface SortKey {
  index: number;
  type: SqlType;
  desc: boolean;
  nullsFirst: boolean;
}

export function rowComparator(keys: readonly SortKey[]): (a: Value[], b: Value[]) => number {
  const cmps = keys.map((k) => comparator(k.type));
  return (a, b) => {
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const x = a[k.index]!;
      const y = b[k.index]!;
      if (x === null || y === null) {
        if (x === y) continue;
        return x === null ? (k.nullsFirst ? -1 : 1) : k.nullsFirst ? 1 : -1;
      }
      const c = cmps[i]!(x, y);
      if (c !== 0) return k.desc ? -c : c;
    }
    return 0;
  };
}

export class SortNode implements RowSource {
  constructor(
    readonly child: RowSource,
    readonly keys: SortKey[],
    readonly keyText: string[],
  ) {}
  async *rows(ctx: ExecCtx, outer?: Value[]): AsyncIterable<Value[]> {
    const all = await collect(this.child, ctx, outer);
    all.sort(rowComparator(this.keys));
    yield* all;
  }
  async each(ctx: ExecCtx, outer: Value[] | undefined, emit: Emit): Promise<void> {
    const all = await collect(this.child, ctx, outer);
    all.sort(rowComparator(this.keys));
    for (const r of all) if (emit(r) === false) return;
  }
  explain(): ExplainNode {
    return node("Sort", [`Sort Key: ${this.keyText.join(", ")}`], [this.child.explain()]);
  }
}

export class DistinctNode implements RowSource {
  constructor(
    readonly child: RowSource,
    readonly types: SqlType[],
    /** DISTINCT ON: key positions; undefined: the whole row (the first types.length columns). */
    readonly on?: number[],
  ) {}
  async *rows(ctx: ExecCtx, outer?: Value[]): AsyncIterable<Value[]> {
    const keyOf = tupleKeyFn(this.types);
    const seen = new Set<string>();
    const on = this.on;
    for await (const r of this.child.rows(ctx, outer)) {
      const k = keyOf(on ? on.map((i) => r[i]!) : r);
      if (seen.has(k)) continue;
      seen.add(k);
      yield r;
    }
  }
  explain(): ExplainNode {
    return node("Unique", [], [this.child.explain()]);
  }
}

function limitValue(e: Expr | undefined, env: Env, what: "LIMIT" | "OFFSET"): number | undefined {
  if (!e) return undefined;
  const v = e.eval(EMPTY_ROW, env);
  if (v === null) return undefined;
  const n = Number(v);
  if (n < 0) {
    throw sqlError(
      what === "LIMIT" ? SqlState.InvalidRowCountInLimit : SqlState.InvalidRowCountInOffset,
      `${what} must not be negative`,
    );
  }
  return n;
}

export class LimitNode implements RowSource {
  constructor(
    readonly child: RowSource,
    readonly limit: Expr | undefined,
    readonly offset: Expr | undefined,
  ) {}
  async *rows(ctx: ExecCtx, outer?: Value[]): AsyncIterable<Value[]> {
    const limit = limitValue(this.limit, ctx.env, "LIMIT");
    let skip = limitValue(this.offset, ctx.env, "OFFSET") ?? 0;
    if (limit === 0) return;
    let n = 0;
    for await (const r of this.child.rows(ctx, outer)) {
      if (skip > 0) {
        skip--;
        continue;
      }
      yield r;
      if (limit !== undefined && ++n >= limit) return;
    }
  }
  async each(ctx: ExecCtx, outer: Value[] | undefined, emit: Emit): Promise<void> {
    const limit = limitValue(this.limit, ctx.env, "LIMIT");
    let skip = limitValue(this.offset, ctx.env, "OFFSET") ?? 0;
    if (limit === 0) return;
    let n = 0;
    return forEachRow(this.child, ctx, outer, (r) => {
      if (skip > 0) {
        skip--;
        return true;
      }
      if (emit(r) === false) return false;
      return !(limit !== undefined && ++n >= limit);
    });
  }
  explain(): ExplainNode {
    return node("Limit", [], [this.child.explain()]);
  }
}

/** Drops trailing helper columns (sort keys not in the select list). */
export class TrimNode implements RowSource {
  constructor(
    readonly child: RowSource,
    readonly width: number,
  ) {}
  async *rows(ctx: ExecCtx, outer?: Value[]): AsyncIterable<Value[]> {
    const w = this.width;
    for await (const r of this.child.rows(ctx, outer)) yield r.length === w ? r : r.slice(0, w);
  }
  each(ctx: ExecCtx, outer: Value[] | undefined, emit: Emit): Promise<void> {
    const w = this.width;
    return forEachRow(this.child, ctx, outer, (r) => emit(r.length === w ? r : r.slice(0, w)));
  }
  explain(): ExplainNode {
    return this.child.explain();
  }
}

export class SetOpNode implements RowSource {
  constructor(
    readonly op: "union" | "intersect" | "except",
    readonly all: boolean,
    readonly left: RowSource,
    readonly right: RowSource,
    readonly types: SqlType[],
  ) {}
  async *rows(ctx: ExecCtx, outer?: Value[]): AsyncIterable<Value[]> {
    const keyOf = tupleKeyFn(this.types);
    if (this.op === "union") {
      if (this.all) {
        yield* this.left.rows(ctx, outer);
        yield* this.right.rows(ctx, outer);
        return;
      }
      const seen = new Set<string>();
      for (const side of [this.left, this.right]) {
        for await (const r of side.rows(ctx, outer)) {
          const k = keyOf(r);
          if (seen.has(k)) continue;
          seen.add(k);
          yield r;
        }
      }
      return;
    }
    const counts = new Map<string, number>();
    for await (const r of this.right.rows(ctx, outer)) {
      const k = keyOf(r);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    const emitted = new Set<string>();
    for await (const r of this.left.rows(ctx, outer)) {
      const k = keyOf(r);
      const c = counts.get(k) ?? 0;
      if (this.op === "intersect") {
        if (c === 0) continue;
        if (this.all) counts.set(k, c - 1);
        else if (emitted.has(k)) continue;
        emitted.add(k);
        yield r;
      } else {
        if (this.all) {
          if (c > 0) {
            counts.set(k, c - 1);
            continue;
          }
          yield r;
        } else {
          if (c > 0 || emitted.has(k)) continue;
          emitted.add(k);
          yield r;
        }
      }
    }
  }
  explain(): ExplainNode {
    const label =
      this.op === "union"
        ? this.all
          ? "Append"
          : "HashAggregate (Union)"
        : `HashSetOp ${this.op === "intersect" ? "Intersect" : "Except"}${this.all ? " All" : ""}`;
    return node(label, [], [this.left.explain(), this.right.explain()]);
  }
}

/** Materialises a source once per execution (the inner side of a join without an index to use). */
export class MaterializedSource {
  private cache: { ctx: ExecCtx; rows: Value[][] } | undefined;
  constructor(readonly source: RowSource) {}
  async get(ctx: ExecCtx): Promise<Value[][]> {
    if (this.cache && this.cache.ctx === ctx) return this.cache.rows;
    const rows = await collect(this.source, ctx);
    this.cache = { ctx, rows };
    return rows;
  }
}

export type JoinKind = "inner" | "left" | "right" | "full";

/**
 * Nested-loop join. The inner side is either parameterised by the outer row (an index lookup per outer row) or
 * materialised once and probed through a hash table on the equi-join keys when there are any.
 */

/** Joins a left row of `lw` values and a right row of `rw` values into one new row. */
function rowConcat(lw: number, rw: number): (l: Value[], r: Value[]) => Value[] {
  return (l, r) => {
    const out: Value[] = new Array(lw + rw);
    for (let i = 0; i < lw; i++) out[i] = l[i]!;
    for (let i = 0; i < rw; i++) out[lw + i] = r[i]!;
    return out;
  };
}

export class JoinNode implements RowSource {
  constructor(
    readonly kind: JoinKind,
    readonly left: RowSource,
    readonly right:
      | { param: RowSource }
      | { materialize: RowSource; leftKeys: Expr[]; rightKeys: Expr[]; keyTypes: SqlType[] },
    readonly cond: Expr | undefined,
    readonly leftWidth: number,
    readonly rightWidth: number,
  ) {}

  async *rows(ctx: ExecCtx, outer?: Value[]): AsyncIterable<Value[]> {
    const env = ctx.env;
    const cond = this.cond?.eval;
    const lw = this.leftWidth;
    const rw = this.rightWidth;
    const nullsRight: Value[] = new Array(rw).fill(null);
    const combine = rowConcat(lw, rw);
    if ("param" in this.right) {
      const inner = this.right.param;
      for await (const l of this.left.rows(ctx, outer)) {
        let matched = false;
        for await (const r of inner.rows(ctx, l)) {
          const row = combine(l, r);
          if (cond && cond(row, env) !== true) continue;
          matched = true;
          yield row;
        }
        if (!matched && this.kind === "left") yield combine(l, nullsRight);
      }
      return;
    }
    const spec = this.right;
    const rightRows = await collect(spec.materialize, ctx);
    const matchedRight =
      this.kind === "right" || this.kind === "full" ? new Uint8Array(rightRows.length) : undefined;
    let buckets: Map<string, number[]> | undefined;
    const keyOf = tupleKeyFn(spec.keyTypes);
    if (spec.leftKeys.length > 0) {
      buckets = new Map();
      const probe: Value[] = new Array(lw + rw).fill(null);
      for (let i = 0; i < rightRows.length; i++) {
        const r = rightRows[i]!;
        for (let j = 0; j < rw; j++) probe[lw + j] = r[j]!;
        const vals = spec.rightKeys.map((e) => e.eval(probe, env));
        if (vals.some((v) => v === null)) continue;
        const k = keyOf(vals);
        const b = buckets.get(k);
        if (b) b.push(i);
        else buckets.set(k, [i]);
      }
    }
    const all = rightRows.map((_r, i) => i);
    for await (const l of this.left.rows(ctx, outer)) {
      let candidates: number[] = all;
      if (buckets) {
        const vals = spec.leftKeys.map((e) => e.eval(l, env));
        candidates = vals.some((v) => v === null) ? [] : (buckets.get(keyOf(vals)) ?? []);
      }
      let matched = false;
      for (const i of candidates) {
        const row = combine(l, rightRows[i]!);
        if (cond && cond(row, env) !== true) continue;
        matched = true;
        if (matchedRight) matchedRight[i] = 1;
        yield row;
      }
      if (!matched && (this.kind === "left" || this.kind === "full")) yield combine(l, nullsRight);
    }
    if (matchedRight) {
      const nullsLeft: Value[] = new Array(lw).fill(null);
      for (let i = 0; i < rightRows.length; i++)
        if (!matchedRight[i]) yield combine(nullsLeft, rightRows[i]!);
    }
  }

  async each(ctx: ExecCtx, outer: Value[] | undefined, emit: Emit): Promise<void> {
    const env = ctx.env;
    const cond = this.cond?.eval;
    const lw = this.leftWidth;
    const rw = this.rightWidth;
    const nullsRight: Value[] = new Array(rw).fill(null);
    const combine = rowConcat(lw, rw);
    if ("param" in this.right) {
      // The outer side is pulled (so an early stop ends it); each inner lookup is pushed.
      const inner = this.right.param;
      for await (const l of this.left.rows(ctx, outer)) {
        let matched = false;
        let stop = false;
        await forEachRow(inner, ctx, l, (r) => {
          const row = combine(l, r);
          if (cond && cond(row, env) !== true) return true;
          matched = true;
          if (emit(row) === false) {
            stop = true;
            return false;
          }
          return true;
        });
        if (stop) return;
        if (!matched && this.kind === "left" && emit(combine(l, nullsRight)) === false) return;
      }
      return;
    }
    for await (const r of this.rows(ctx, outer)) if (emit(r) === false) return;
  }

  explain(): ExplainNode {
    const kind = this.kind === "inner" ? "" : ` ${this.kind[0]!.toUpperCase()}${this.kind.slice(1)} Join`;
    const hash = !("param" in this.right) && this.right.leftKeys.length > 0;
    const inner = "param" in this.right ? this.right.param.explain() : this.right.materialize.explain();
    return node(
      `${hash ? "Hash Join" : "Nested Loop"}${hash && !kind ? "" : kind}`,
      [this.cond && `Join Filter: ${this.cond.text}`],
      [this.left.explain(), inner],
    );
  }
}

export class SubquerySource implements RowSource {
  constructor(
    readonly source: RowSource,
    readonly alias: string,
  ) {}
  rows(ctx: ExecCtx): AsyncIterable<Value[]> {
    return this.source.rows(ctx);
  }
  explain(): ExplainNode {
    return node(`Subquery Scan on ${this.alias}`, [], [this.source.explain()]);
  }
}

// ---- statements -------------------------------------------------------------------------------------------------------

export interface ExecResult {
  rows: Value[][];
  rowCount: number;
}

export type StatementKind = "read" | "write" | "ddl";

/** A planned statement (the unit the plan cache keeps). Init plans run before `execute` (done by the caller). */
export interface StatementPlan {
  readonly command: string;
  readonly columns: OutputColumn[];
  readonly kind: StatementKind;
  readonly initPlans: InitPlan[];
  /** A primary-key point SELECT: one key read, no init plans; the session may serve it without a transaction. */
  readonly point?: { access: TableAccess; project: Expr[] };
  /** EXPLAIN: parameters are typed but never read, so any values (or none) may be bound. */
  readonly ignoresParams?: boolean;
  execute(ctx: ExecCtx): Promise<ExecResult>;
  explain(): ExplainNode;
}
