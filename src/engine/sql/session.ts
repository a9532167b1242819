/**
 * SqlEngine and Session: statement caching, transactions and execution.
 *
 * SqlEngine (one per open database) owns the shared catalog, the sequence allocator and the statement cache:
 * SQL text → parsed statements (parsed once) → per statement the plan for the current catalog. A plan is reused
 * while the catalog object it was planned against is current (catalog objects are immutable; committed DDL
 * installs a new one), so a repeated statement does no parsing and no planning.
 *
 * Session is one connection's transaction state. Outside BEGIN … COMMIT every statement runs in its own
 * transaction (autocommit); a primary-key point SELECT skips even that and reads the committed state with one key
 * lookup. Inside a transaction, statements are serialised and an error puts the transaction in the failed state
 * (25P02) until ROLLBACK, as in PostgreSQL. A 40001 at commit is reported, never retried behind the caller's back.
 */

import { ErrorCodes, isTwillError, TwillError } from "../../errors.js";
import type { Engine } from "../engine.js";
import { NEEDS_IO } from "../lsm/types.js";
import { KEY_BYTES_MAX, type Transaction } from "../txn/transaction.js";
import { Catalog, deserializeTable, type TableDef, TableInfo, tablesRange } from "./catalog.js";
import { nowMicros } from "./datetime.js";
import { SqlState, sqlError } from "./errors.js";
import type { Env } from "./expr.js";
import { EF_SEARCH_DEFAULT, VectorIndexes } from "./hnsw-index.js";
import { loadParser, type ParsedSql, parseSql } from "./parser.js";
import {
  type DdlHost,
  EMPTY_ROW,
  type ExecCtx,
  type ExecResult,
  type Kv,
  type OutputColumn,
  runInitPlans,
  type Services,
  type StatementPlan,
} from "./plan.js";
import { type KvLayer, WriteLayer } from "./savepoints.js";
import { Sequences } from "./sequences.js";
import { type Planned, planStatement } from "./statement.js";
import { fromJs, type JsOptions, type SqlType, toJsFn, typeName, type Value } from "./types.js";

export interface SqlEngineOptions extends JsOptions {
  /** How many distinct SQL texts keep their parsed statements and plans. */
  statementCacheSize: number;
}

export interface ResultColumn {
  name: string;
  /** PostgreSQL type OID (23 int4, 25 text, 1184 timestamptz, …). */
  typeOid: number;
  /** PostgreSQL type name as format_type prints it. */
  typeName: string;
}

/** What a caller wants back: the full result, the rows, or the first row. */
export enum Want {
  Result = 0,
  Rows = 1,
  First = 2,
}

export interface RawResult {
  command: string;
  rowCount: number;
  columns: ResultColumn[];
  rows: Record<string, unknown>[];
}

interface Shape {
  columns: ResultColumn[];
  build: (row: Value[]) => Record<string, unknown>;
}

interface CachedPlan {
  catalog: Catalog;
  planned: Planned;
  shape: Shape | undefined;
}

export interface CacheEntry {
  readonly sql: string;
  readonly parsed: ParsedSql;
  plans: (CachedPlan | undefined)[];
}

let overlayVersion = 0;

/** One transaction's state: the engine transaction, its statement timestamp, and its not-yet-committed DDL. */
export class TxnState implements DdlHost {
  failed = false;
  private pending = new Map<string, TableDef | null>();
  /** Open savepoints, oldest first: each one's write layer and the DDL pending when it was set. */
  private readonly savepoints: { name: string; layer: WriteLayer; pending: Map<string, TableDef | null> }[] =
    [];
  private overlay: { base: Catalog; cat: Catalog } | undefined;

  constructor(
    private readonly sql: SqlEngine,
    readonly txn: Transaction,
    readonly now: number,
  ) {}

  catalog(): Catalog {
    const base = this.sql.catalog;
    if (this.pending.size === 0) return base;
    if (!this.overlay || this.overlay.base !== base) {
      this.overlay = { base, cat: base.with(this.pending, --overlayVersion) };
    }
    return this.overlay.cat;
  }

  change(name: string, def: TableDef | null): void {
    this.pending.set(name, def);
    this.overlay = undefined;
  }

  /** Where statements read and write: the newest savepoint's layer, or the transaction. */
  top(): KvLayer {
    const n = this.savepoints.length;
    return n === 0 ? this.txn : this.savepoints[n - 1]!.layer;
  }

  savepoint(name: string): void {
    this.savepoints.push({ name, layer: new WriteLayer(this.top()), pending: new Map(this.pending) });
  }

  private find(name: string, what: string): number {
    for (let i = this.savepoints.length - 1; i >= 0; i--) if (this.savepoints[i]!.name === name) return i;
    throw sqlError("3B001", `savepoint "${name}" does not exist`, {
      hint: `${what} names an open savepoint`,
    });
  }

  /** Undoes everything since savepoint `name` (which stays open) and clears the failed state. */
  rollbackTo(name: string): void {
    const i = this.find(name, "ROLLBACK TO SAVEPOINT");
    const sp = this.savepoints[i]!;
    this.savepoints.length = i;
    this.savepoints.push({ name, layer: new WriteLayer(this.top()), pending: sp.pending });
    this.pending = new Map(sp.pending);
    this.overlay = undefined;
    this.failed = false;
  }

  /** Ends savepoint `name` and the ones after it, keeping their writes. */
  release(name: string): void {
    const i = this.find(name, "RELEASE SAVEPOINT");
    for (let j = this.savepoints.length - 1; j >= i; j--) this.savepoints[j]!.layer.fold();
    this.savepoints.length = i;
  }

  async commit(): Promise<void> {
    for (let j = this.savepoints.length - 1; j >= 0; j--) this.savepoints[j]!.layer.fold();
    this.savepoints.length = 0;
    // HNSW caches must not serve nodes this commit replaces, from before it starts until it settled.
    const settled = this.sql.vectors.beginCommit(this.txn);
    let lsn: number;
    try {
      lsn = await this.txn.commit();
    } catch (error) {
      settled?.(undefined);
      throw error;
    }
    settled?.(lsn);
    if (this.pending.size > 0) this.sql.install(this.pending);
  }

  abort(): void {
    this.txn.abort();
    this.sql.vectors.aborted(this.txn);
  }
}

/** Builds result objects with a fixed shape (one object literal per row, no per-column branching). */
function makeShape(columns: OutputColumn[], opts: JsOptions): Shape {
  const convs = columns.map((c) => toJsFn(c.type, opts));
  const resultColumns = columns.map((c) => ({
    name: c.name,
    typeOid: c.type.oid,
    typeName: typeName(c.type),
  }));
  const fields = columns.map((c, i) => {
    const key = c.name === "__proto__" ? '["__proto__"]' : JSON.stringify(c.name);
    const value = convs[i] ? `r[${i}] === null ? null : c[${i}](r[${i}])` : `r[${i}]`;
    return `${key}: ${value}`;
  });
  let build: Shape["build"];
  try {
    const f = new Function("c", `return (r) => ({${fields.join(", ")}});`) as (
      c: unknown[],
    ) => Shape["build"];
    build = f(convs);
  } catch {
    // No code generation allowed (a locked-down runtime): assign field by field.
    build = (r) => {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < columns.length; i++) {
        const v = r[i]!;
        const conv = convs[i];
        Object.defineProperty(o, columns[i]!.name, {
          value: v === null || !conv ? v : conv(v),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return o;
    };
  }
  return { columns: resultColumns, build };
}

export class SqlEngine {
  catalog: Catalog;
  readonly sequences: Sequences;
  readonly services: Services;
  readonly vectors = new VectorIndexes();
  /** Reads the latest committed state: for single-key autocommit reads. */
  readonly reader: Kv;
  private readonly cache = new Map<string, CacheEntry>();

  private constructor(
    readonly engine: Engine,
    readonly options: SqlEngineOptions,
    catalog: Catalog,
  ) {
    this.catalog = catalog;
    this.sequences = new Sequences(engine);
    const seq = this.sequences;
    this.services = { nextSequence: (id, max, name) => seq.next(id, max, name), vectors: this.vectors };
    // A memory-only read lets a point SELECT finish without awaiting the engine when its block is cached.
    this.reader = {
      get: (key) => engine.read(key),
      scan: (o) => engine.readRange(o),
      getSync: (key) => engine.readSync(key),
    };
  }

  static async open(engine: Engine, options: SqlEngineOptions): Promise<SqlEngine> {
    await loadParser();
    const range = tablesRange();
    const tables: TableInfo[] = [];
    for await (const kv of engine.readRange(range)) tables.push(new TableInfo(deserializeTable(kv.value)));
    return new SqlEngine(engine, options, new Catalog(1, tables));
  }

  /** Installs committed DDL into the shared catalog; every cached plan becomes stale. */
  install(changes: ReadonlyMap<string, TableDef | null>): void {
    this.catalog = this.catalog.with(changes, this.catalog.version + 1);
  }

  /** The parsed statements of `sql`, parsing only on the first sight of the text. */
  entry(sql: string): CacheEntry {
    let e = this.cache.get(sql);
    if (e) return e;
    const parsed = parseSql(sql);
    e = { sql, parsed, plans: [] };
    if (this.cache.size >= this.options.statementCacheSize) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(sql, e);
    return e;
  }

  /** The plan of statement `i` of `entry` for `catalog`, planning only when the catalog changed. */
  plan(entry: CacheEntry, i: number, catalog: Catalog): CachedPlan {
    const hit = entry.plans[i];
    if (hit && hit.catalog === catalog) return hit;
    const stmt = entry.parsed.statements[i]!;
    const planned = planStatement(stmt.node, catalog, entry.parsed.position);
    let shape: Shape | undefined;
    if (planned.kind === "plan") shape = makeShape(planned.plan.columns, this.options);
    else if (planned.kind === "show")
      shape = makeShape(
        [{ name: planned.name, type: { kind: "text", oid: 25, length: -1, precision: -1, scale: -1 } }],
        this.options,
      );
    const cached: CachedPlan = { catalog, planned, shape };
    entry.plans[i] = cached;
    return cached;
  }
}

function bindParams(
  types: readonly SqlType[],
  values: readonly unknown[],
  now: number,
  ignore = false,
): Value[] {
  if (ignore) return [];
  if (values.length !== types.length) {
    throw sqlError(
      SqlState.ProtocolViolation,
      `bind message supplies ${values.length} parameters, but prepared statement "" requires ${types.length}`,
    );
  }
  const out: Value[] = new Array(types.length);
  for (let i = 0; i < types.length; i++) out[i] = fromJs(types[i]!, values[i], now);
  return out;
}

function failedTxn() {
  return sqlError(
    SqlState.InFailedTransaction,
    "current transaction is aborted, commands ignored until end of transaction block",
  );
}

const NO_ROWS: Record<string, unknown>[] = [];

/** Every error leaving the SQL layer is a TwillError; anything else is a bug, reported as XX000. */
export function asTwillError(error: unknown): TwillError {
  if (isTwillError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new TwillError(ErrorCodes.Internal, `internal error: ${message}`, { cause: error });
}

function finishPoint(
  point: NonNullable<StatementPlan["point"]>,
  shape: Shape,
  env: Env,
  bytes: Uint8Array | undefined,
  want: Want,
): unknown {
  const row = point.access.accept(bytes, env);
  let obj: Record<string, unknown> | undefined;
  if (row) {
    const exprs = point.project;
    const out: Value[] = new Array(exprs.length);
    for (let k = 0; k < exprs.length; k++) out[k] = exprs[k]!.eval(row, env);
    obj = shape.build(out);
  }
  if (want === Want.First) return obj;
  const rows = obj ? [obj] : [];
  if (want === Want.Rows) return rows;
  return { command: "SELECT", rowCount: rows.length, columns: shape.columns, rows };
}

/** Shapes a full result for what the caller wants. */
export function pick(r: RawResult, want: Want): unknown {
  return want === Want.Result ? r : want === Want.Rows ? r.rows : r.rows[0];
}

export class Session {
  /** The open explicit transaction (BEGIN, or the transaction of a transaction() callback). */
  private state: TxnState | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  /** `SET hnsw.ef_search`; session-wide (not rolled back with a transaction, unlike PostgreSQL's SET). */
  private efSearch: number | undefined;

  constructor(
    readonly sql: SqlEngine,
    /** A callback session cannot be ended by COMMIT/ROLLBACK statements; its owner ends it. */
    readonly callback = false,
  ) {
    if (callback) this.state = this.begin();
  }

  get inTransaction(): boolean {
    return this.state !== undefined;
  }

  private begin(): TxnState {
    return new TxnState(this.sql, this.sql.engine.begin(), nowMicros());
  }

  /** Runs statement `i` of a cache entry. */
  run(entry: CacheEntry, i: number, params: readonly unknown[]): Promise<RawResult> {
    return this.runWant(entry, i, params, Want.Result) as Promise<RawResult>;
  }

  /** Runs statement `i` and resolves to the full result, its rows, or its first row. */
  runWant(entry: CacheEntry, i: number, params: readonly unknown[], want: Want): Promise<unknown> {
    if (this.state) {
      const p = this.lock.then(() => this.runOnce(entry, i, params, this.state));
      this.lock = p.catch(() => undefined);
      return want === Want.Result ? p : p.then((r) => pick(r, want));
    }
    const cached = this.sql.plan(entry, i, this.sql.catalog);
    if (cached.planned.kind === "plan" && cached.planned.plan.point) {
      return this.runPoint(cached.planned, cached.shape!, params, want);
    }
    const p = this.runOnce(entry, i, params, undefined);
    return want === Want.Result ? p : p.then((r) => pick(r, want));
  }

  /**
   * The autocommit primary-key point SELECT: bind, build the key, one read of the committed state, decode,
   * project. No transaction, no async frames of its own; with a memory-only read it settles without I/O.
   */
  private runPoint(
    planned: Planned & { kind: "plan" },
    shape: Shape,
    params: readonly unknown[],
    want: Want,
  ): Promise<unknown> {
    const point = planned.plan.point!;
    let env: Env;
    let key: Uint8Array | undefined;
    try {
      const now = nowMicros();
      env = { params: bindParams(planned.paramTypes, params, now), now, sub: [] };
      key = point.access.pointKey(EMPTY_ROW, env);
      if (key !== undefined && key.length > KEY_BYTES_MAX) key = undefined; // no stored key is that long
      if (key === undefined) return Promise.resolve(finishPoint(point, shape, env, undefined, want));
      const getSync = this.sql.reader.getSync;
      if (getSync !== undefined) {
        const bytes = getSync(key);
        if (bytes !== NEEDS_IO) return Promise.resolve(finishPoint(point, shape, env, bytes, want));
      }
    } catch (error) {
      return Promise.reject(asTwillError(error));
    }
    return this.sql.reader.get(key).then(
      (bytes) => finishPoint(point, shape, env, bytes, want),
      (error: unknown) => Promise.reject(asTwillError(error)),
    );
  }

  /** Runs every statement of `sql`: several statements outside a transaction form one implicit transaction. */
  async exec(sql: string): Promise<RawResult[]> {
    const entry = this.sql.entry(sql);
    const n = entry.parsed.statements.length;
    const out: RawResult[] = [];
    const control = entry.parsed.statements.some((s) => "TransactionStmt" in s.node);
    if (n <= 1 || this.state || control) {
      for (let i = 0; i < n; i++) out.push(await this.run(entry, i, []));
      return out;
    }
    const implicit = this.begin();
    try {
      for (let i = 0; i < n; i++) out.push(await this.runOnce(entry, i, [], implicit));
      await implicit.commit();
    } catch (error) {
      implicit.abort();
      throw error;
    }
    return out;
  }

  private async runOnce(
    entry: CacheEntry,
    i: number,
    params: readonly unknown[],
    state: TxnState | undefined,
  ): Promise<RawResult> {
    try {
      return await this.runOnceInner(entry, i, params, state);
    } catch (error) {
      // Any error inside a transaction block aborts it, planning errors included, as in PostgreSQL.
      if (state) state.failed = true;
      throw asTwillError(error);
    }
  }

  private async runOnceInner(
    entry: CacheEntry,
    i: number,
    params: readonly unknown[],
    state: TxnState | undefined,
  ): Promise<RawResult> {
    let cached: ReturnType<typeof this.sql.plan>;
    try {
      cached = this.sql.plan(entry, i, state ? state.catalog() : this.sql.catalog);
    } catch (error) {
      // PostgreSQL refuses everything but COMMIT/ROLLBACK in an aborted block before analysing it (the statement
      // was already parsed, so syntax errors still surface as such); those two always plan.
      if (state?.failed) throw failedTxn();
      throw error;
    }
    const planned = cached.planned;
    switch (planned.kind) {
      case "plan":
        break;
      case "begin":
        if (state === undefined) this.state = this.begin();
        return { command: "BEGIN", rowCount: 0, columns: [], rows: NO_ROWS };
      case "commit":
      case "rollback": {
        if (this.callback) {
          throw sqlError(
            SqlState.InvalidTransactionState,
            `${planned.kind.toUpperCase()} is not allowed inside transaction()`,
            {
              hint: "return from the callback to commit, or throw to roll back",
            },
          );
        }
        const s = this.state;
        this.state = undefined;
        if (!s) return { command: planned.kind.toUpperCase(), rowCount: 0, columns: [], rows: NO_ROWS };
        if (planned.kind === "rollback" || s.failed) {
          s.abort();
          return { command: "ROLLBACK", rowCount: 0, columns: [], rows: NO_ROWS };
        }
        await s.commit();
        return { command: "COMMIT", rowCount: 0, columns: [], rows: NO_ROWS };
      }
      case "savepoint":
      case "release":
      case "rollback_to": {
        const command =
          planned.kind === "savepoint" ? "SAVEPOINT" : planned.kind === "release" ? "RELEASE" : "ROLLBACK";
        if (!state) {
          const stmt =
            planned.kind === "savepoint"
              ? "SAVEPOINT"
              : planned.kind === "release"
                ? "RELEASE SAVEPOINT"
                : "ROLLBACK TO SAVEPOINT";
          throw sqlError(SqlState.NoActiveTransaction, `${stmt} can only be used in transaction blocks`);
        }
        if (planned.kind === "rollback_to") state.rollbackTo(planned.name);
        else if (state.failed) throw failedTxn();
        else if (planned.kind === "savepoint") state.savepoint(planned.name);
        else state.release(planned.name);
        return { command, rowCount: 0, columns: [], rows: NO_ROWS };
      }
      case "set":
        if (state?.failed) throw failedTxn();
        if (planned.efSearch !== undefined) this.efSearch = planned.efSearch;
        return { command: planned.command, rowCount: 0, columns: [], rows: NO_ROWS };
      case "show":
        if (state?.failed) throw failedTxn();
        if (planned.name === "hnsw.ef_search") {
          return {
            command: "SHOW",
            rowCount: 1,
            columns: cached.shape!.columns,
            rows: [cached.shape!.build([String(this.efSearch ?? EF_SEARCH_DEFAULT)])],
          };
        }
        return {
          command: "SHOW",
          rowCount: 1,
          columns: cached.shape!.columns,
          rows: [cached.shape!.build([planned.value])],
        };
    }
    const plan = planned.plan;
    const shape = cached.shape!;
    if (state) {
      if (state.failed) throw failedTxn();
      try {
        const r = await this.execIn(
          state,
          plan,
          bindParams(planned.paramTypes, params, state.now, plan.ignoresParams),
        );
        return this.result(plan, shape, r);
      } catch (error) {
        state.failed = true;
        throw error;
      }
    }
    const now = nowMicros();
    const bound = bindParams(planned.paramTypes, params, now, plan.ignoresParams);
    const s = new TxnState(this.sql, this.sql.engine.begin(), now);
    try {
      const r = await this.execIn(s, plan, bound);
      if (plan.kind === "read") s.abort();
      else await s.commit();
      return this.result(plan, shape, r);
    } catch (error) {
      s.abort();
      throw error;
    }
  }

  private async execIn(state: TxnState, plan: StatementPlan, params: Value[]): Promise<ExecResult> {
    const env: Env = { params, now: state.now, sub: [] };
    if (this.efSearch !== undefined) env.efSearch = this.efSearch;
    const top = state.top();
    const ctx: ExecCtx = { kv: top, txn: top, env, services: this.sql.services, ddl: state };
    if (plan.point) {
      // A primary-key point read inside a transaction: one txn.get, no iterator machinery.
      const row = await plan.point.access.point(ctx, EMPTY_ROW);
      if (!row) return { rows: [], rowCount: 0 };
      const exprs = plan.point.project;
      const out: Value[] = new Array(exprs.length);
      for (let k = 0; k < exprs.length; k++) out[k] = exprs[k]!.eval(row, ctx.env);
      return { rows: [out], rowCount: 1 };
    }
    if (plan.initPlans.length > 0) await runInitPlans(ctx, plan.initPlans);
    return plan.execute(ctx);
  }

  private result(plan: StatementPlan, shape: Shape, r: ExecResult): RawResult {
    const rows = r.rows.length === 0 ? [] : r.rows.map(shape.build);
    return { command: plan.command, rowCount: r.rowCount, columns: shape.columns, rows };
  }

  /** Ends a callback session's transaction: commits, or rolls back when `ok` is false or a statement failed. */
  async finish(ok: boolean): Promise<void> {
    const s = this.state;
    this.state = undefined;
    if (!s) return;
    await this.lock;
    if (!ok) {
      s.abort();
      return;
    }
    if (s.failed) {
      s.abort();
      throw sqlError(
        SqlState.InFailedTransaction,
        "the transaction was rolled back because a statement in it failed",
        {
          hint: "an error inside transaction() aborts the whole transaction, as in PostgreSQL",
        },
      );
    }
    await s.commit();
  }

  /** Marks the open transaction failed after an error raised outside `run` (a syntax error while parsing). */
  noteError(): void {
    if (this.state) this.state.failed = true;
  }

  /** Rolls back an open transaction (the database is closing). */
  abandon(): void {
    this.state?.abort();
    this.state = undefined;
  }
}
