/**
 * The public embedded API: `open(url, options)` → `Database`.
 *
 *   await using db = await open("file://./local.db");          // or "memory://", "s3://bucket/prefix?…"
 *   await db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)");
 *   await db.query("INSERT INTO notes VALUES (?, ?)", [1, "hello"]);
 *   const rows = await db.query("SELECT id, body FROM notes");  // [{ id: 1, body: "hello" }]
 *   const stmt = db.prepare("SELECT body FROM notes WHERE id = $1");
 *   const row = await stmt.get([1]);
 *   await db.transaction(async (tx) => { await tx.query(…); }); // COMMIT, or ROLLBACK when the callback throws
 *
 * Branches (docs/BRANCHES.md): `db.branch(name)` forks in O(1) and returns a Database on the branch;
 * `open("file://./db?branch=name")` reopens one alone; `branch.merge({ onConflict })`, `branch.discard()`,
 * `db.branches()`, `db.dropBranch(name, { cascade })`. Closing a database closes the branches opened from it.
 *
 * Every error is a TwillError with a PostgreSQL `sqlstate`. Statements outside a transaction autocommit one by
 * one; a serialization failure (40001) is returned to the caller, never retried silently.
 */

import { z } from "zod";
import {
  type BranchInfo,
  type CreateBranchOptions,
  checkBranchName,
  type DropBranchOptions,
  type MergeOptions,
  type MergeResult,
} from "./engine/branch.js";
import { Engine, engineOptionsSchema } from "./engine/engine.js";
import { sqlMergeHooks } from "./engine/sql/branch-merge.js";
import { SqlState, sqlError } from "./engine/sql/errors.js";
import {
  asTwillError,
  type CacheEntry,
  type RawResult,
  type ResultColumn,
  Session,
  SqlEngine,
  Want,
} from "./engine/sql/session.js";
import { ErrorCodes, TwillError } from "./errors.js";
import { openStorage, storageOptionsSchema } from "./storage/open.js";
import type { Storage } from "./storage/types.js";

export const openOptionsSchema = z
  .object({
    /** How int8 (bigint) values reach JavaScript: `number` (an error if one does not fit exactly) or `bigint`. */
    int8: z.enum(["number", "bigint"]).default("number"),
    /** Distinct SQL texts whose parse and plan are kept. */
    statementCacheSize: z.number().int().min(1).max(1_000_000).default(1000),
    /** Options of the storage backend (endpoint, credentials, …); see openStorage. */
    storage: storageOptionsSchema.optional(),
    /** Options of the engine (memtable size, block cache, …). */
    engine: engineOptionsSchema.optional(),
    /** The branch to open (default main); the URL may say `?branch=name` instead. */
    branch: z.string().optional(),
  })
  .strict();

export type { BranchInfo, CreateBranchOptions, DropBranchOptions, MergeOptions, MergeResult };

export type OpenOptions = z.input<typeof openOptionsSchema>;
export type Row = Record<string, unknown>;
export type { ResultColumn };

export interface QueryResult<R = Row> {
  rows: R[];
  columns: ResultColumn[];
  /** Rows returned (SELECT) or affected (INSERT, UPDATE, DELETE). */
  rowCount: number;
  /** The command tag: SELECT, INSERT, UPDATE, DELETE, CREATE TABLE, BEGIN, … */
  command: string;
}

export type Params = readonly unknown[];

/** What both a Database and a transaction scope offer. */
export interface Queryable {
  /** Runs one statement; resolves to its rows as objects. `?` and `$1` placeholders. */
  query<R = Row>(sql: string, params?: Params): Promise<R[]>;
  /** Runs one statement; resolves to rows plus column metadata, row count and command tag. */
  execute<R = Row>(sql: string, params?: Params): Promise<QueryResult<R>>;
  /** Runs one or more statements separated by semicolons, without parameters. */
  exec(sql: string): Promise<QueryResult[]>;
  /** A reusable statement: parsed now, planned once per catalog version. */
  prepare<R = Row>(sql: string): Statement<R>;
}

function checkParams(params: unknown): Params {
  if (params === undefined) return [];
  if (!Array.isArray(params)) {
    throw sqlError(
      SqlState.InvalidParameterValue,
      "query parameters must be an array (for $1, $2, … or ?, ?, …)",
    );
  }
  return params;
}

function asResult<R>(r: RawResult): QueryResult<R> {
  return { rows: r.rows as R[], columns: r.columns, rowCount: r.rowCount, command: r.command };
}

export class Statement<R = Row> {
  /** @internal */
  constructor(
    private readonly owner: Scope,
    private readonly entry: CacheEntry,
    readonly sql: string,
  ) {}

  /** Rows as objects. */
  query(params?: Params): Promise<R[]> {
    return this.start(params, Want.Rows) as Promise<R[]>;
  }

  /** Same as `query`. */
  all(params?: Params): Promise<R[]> {
    return this.query(params);
  }

  /** The first row, or undefined. */
  get(params?: Params): Promise<R | undefined> {
    return this.start(params, Want.First) as Promise<R | undefined>;
  }

  /** Rows plus metadata. */
  execute(params?: Params): Promise<QueryResult<R>> {
    return (this.start(params, Want.Result) as Promise<RawResult>).then(
      asResult as (r: RawResult) => QueryResult<R>,
    );
  }

  /** Errors are TwillErrors at their source (the session wraps anything else), so no extra promise hop here. */
  private start(params: Params | undefined, want: Want): Promise<unknown> {
    try {
      return this.owner.run(this.entry, checkParams(params), want);
    } catch (error) {
      return Promise.reject(asTwillError(error));
    }
  }
}

/** Shared by Database and TransactionScope: a Session plus the checks around it. */
abstract class Scope implements Queryable {
  /** @internal */
  protected abstract readonly session: Session;
  /** @internal */
  protected abstract checkUsable(): void;
  /** @internal */
  protected abstract readonly sqlEngine: SqlEngine;

  /** @internal */
  run(entry: CacheEntry, params: Params, want: Want): Promise<unknown> {
    this.checkUsable();
    return this.session.runWant(entry, 0, params, want);
  }

  private single(sql: string): CacheEntry {
    this.checkUsable();
    const entry = this.sqlEngine.entry(sql);
    if (entry.parsed.statements.length > 1) {
      throw sqlError(SqlState.SyntaxError, "cannot insert multiple commands into a prepared statement", {
        hint: "use exec() to run several statements",
      });
    }
    return entry;
  }

  async query<R = Row>(sql: string, params?: Params): Promise<R[]> {
    try {
      const entry = this.single(sql);
      if (entry.parsed.statements.length === 0) return [];
      return (await this.session.run(entry, 0, checkParams(params))).rows as R[];
    } catch (error) {
      this.session.noteError();
      throw asTwillError(error);
    }
  }

  async execute<R = Row>(sql: string, params?: Params): Promise<QueryResult<R>> {
    try {
      const entry = this.single(sql);
      if (entry.parsed.statements.length === 0) return { rows: [], columns: [], rowCount: 0, command: "" };
      return asResult<R>(await this.session.run(entry, 0, checkParams(params)));
    } catch (error) {
      this.session.noteError();
      throw asTwillError(error);
    }
  }

  async exec(sql: string): Promise<QueryResult[]> {
    try {
      this.checkUsable();
      return (await this.session.exec(sql)).map((r) => asResult(r));
    } catch (error) {
      this.session.noteError();
      throw asTwillError(error);
    }
  }

  prepare<R = Row>(sql: string): Statement<R> {
    try {
      const entry = this.single(sql);
      if (entry.parsed.statements.length === 0)
        throw sqlError(SqlState.SyntaxError, "cannot prepare an empty statement");
      return new Statement<R>(this, entry, sql);
    } catch (error) {
      this.session.noteError();
      throw asTwillError(error);
    }
  }
}

/** The scope handed to a `transaction()` callback: every statement runs in that one transaction. */
export class TransactionScope extends Scope {
  private ended = false;

  /** @internal */
  constructor(
    protected readonly sqlEngine: SqlEngine,
    protected readonly session: Session,
    private readonly db: Database,
  ) {
    super();
  }

  protected checkUsable(): void {
    if (this.ended) {
      throw sqlError(
        SqlState.InvalidTransactionState,
        "this transaction has already ended; use the Database or a new transaction()",
      );
    }
    this.db.checkOpen();
  }

  /** @internal */
  end(): void {
    this.ended = true;
  }
}

export class Database extends Scope {
  private closed = false;
  protected readonly session: Session;
  private readonly scopes = new Set<Session>();
  private readonly children = new Set<Database>();

  /** @internal */
  constructor(
    protected readonly sqlEngine: SqlEngine,
    private readonly engine: Engine,
    private readonly storage: Storage,
    /** The URL the database was opened with, credentials removed. */
    readonly url: string,
    /** The database this branch was forked from in this process; it owns the storage then. */
    private readonly parentDb?: Database,
  ) {
    super();
    this.session = new Session(sqlEngine);
  }

  /** The branch this database is on ("main" for the base). */
  get branchName(): string {
    return this.engine.branchName;
  }

  /** The LSN of the newest commit: a position `branch(name, { at })` can fork at while it is retained. */
  get lsn(): number {
    return this.engine.lastCommittedLsn;
  }

  /**
   * Forks branch `name` off this one at its newest commit (or `at`, an earlier retained LSN) and opens it. Costs
   * one small object write, whatever the size of the database. The branch sees everything committed here up to
   * the fork point and nothing later; its writes stay on it until `merge`.
   */
  async branch(name: string, options?: CreateBranchOptions): Promise<Database> {
    this.checkOpen();
    try {
      const engine = await this.engine.branch(name, options);
      try {
        const sql = await SqlEngine.open(engine, this.sqlEngine.options);
        const child = new Database(sql, engine, this.storage, this.url, this);
        this.children.add(child);
        return child;
      } catch (error) {
        await engine.close().catch(() => undefined);
        throw error;
      }
    } catch (error) {
      throw asTwillError(error);
    }
  }

  /** Every branch of the database (main excluded): name, parent, fork LSN and creation time. */
  async branches(): Promise<BranchInfo[]> {
    this.checkOpen();
    try {
      return await this.engine.branches();
    } catch (error) {
      throw asTwillError(error);
    }
  }

  /** Drops branch `name`; one with child branches only with `cascade`. Returns the names dropped. */
  async dropBranch(name: string, options?: DropBranchOptions): Promise<string[]> {
    this.checkOpen();
    try {
      return await this.engine.dropBranch(name, options);
    } catch (error) {
      throw asTwillError(error);
    }
  }

  /**
   * Applies this branch's own changes since the fork onto its parent in one transaction. Conflicts are rows both
   * changed since the fork: "fail" (default) aborts listing them as (table, primary key), "ours" lets this
   * branch's version win, "theirs" keeps the parent's. Schema changes on the branch merge too.
   */
  async merge(options?: MergeOptions): Promise<MergeResult> {
    this.checkOpen();
    try {
      return await this.engine.merge(options, sqlMergeHooks(this.sqlEngine, this.parentDb?.sqlEngine));
    } catch (error) {
      throw asTwillError(error);
    }
  }

  /** Closes this branch and drops it (with `cascade`, its child branches too). */
  async discard(options?: DropBranchOptions): Promise<void> {
    this.checkOpen();
    if (this.engine.branchName === "main") {
      throw new TwillError(ErrorCodes.InvalidArgument, "the main branch cannot be discarded", {
        hint: "discard() is for branches; close() the database instead",
      });
    }
    const name = this.engine.branchName;
    const dropper = this.parentDb?.engine;
    try {
      const children = (await this.engine.branches()).filter((b) => b.parent === name);
      if (children.length > 0 && !options?.cascade) {
        throw new TwillError(
          ErrorCodes.InvalidArgument,
          `branch ${JSON.stringify(name)} has child branches: ${children.map((c) => c.name).join(", ")}`,
          { sqlstate: "2BP01", hint: "discard them first, or pass { cascade: true }" },
        );
      }
    } catch (error) {
      throw asTwillError(error);
    }
    await this.shutdown(true);
    try {
      // Any engine of the same storage can drop it: the parent's when it is open here, else a throwaway handle.
      if (dropper && !dropper.isClosed) await dropper.dropBranch(name, options);
      else await Engine.dropBranchOn(this.storage, name, options);
    } catch (error) {
      throw asTwillError(error);
    } finally {
      if (!this.parentDb) await this.storage.close();
    }
  }

  /** @internal */
  checkOpen(): void {
    if (this.closed)
      throw new TwillError(ErrorCodes.Closed, "the database is closed", {
        hint: "open it again with open(url)",
      });
  }

  protected checkUsable(): void {
    this.checkOpen();
  }

  /**
   * Runs `fn` in one transaction: COMMIT when it resolves, ROLLBACK when it throws (the error is rethrown). A
   * serialization failure (40001) at commit is thrown to the caller; retrying is the caller's decision.
   */
  async transaction<T>(fn: (tx: TransactionScope) => Promise<T>): Promise<T> {
    this.checkOpen();
    let session: Session;
    try {
      session = new Session(this.sqlEngine, true);
    } catch (error) {
      throw asTwillError(error);
    }
    this.scopes.add(session);
    const tx = new TransactionScope(this.sqlEngine, session, this);
    let result: T;
    try {
      result = await fn(tx);
    } catch (error) {
      tx.end();
      this.scopes.delete(session);
      await session.finish(false).catch(() => undefined);
      throw error;
    }
    tx.end();
    this.scopes.delete(session);
    try {
      await session.finish(true);
    } catch (error) {
      throw asTwillError(error);
    }
    return result;
  }

  /** Whether a BEGIN issued through this Database's own statements is open. */
  get inTransaction(): boolean {
    return this.session.inTransaction;
  }

  /**
   * Rolls back open transactions, waits for pending commits, and closes the engine and storage (the storage stays
   * open for a branch forked in this process: its parent owns it). Branches forked from this database close
   * first. Idempotent.
   */
  close(): Promise<void> {
    return this.shutdown(false);
  }

  private async shutdown(keepStorage: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const child of [...this.children]) await child.close();
    this.parentDb?.children.delete(this);
    this.session.abandon();
    for (const s of this.scopes) s.abandon();
    this.scopes.clear();
    try {
      await this.engine.close();
    } finally {
      if (!this.parentDb && !keepStorage) await this.storage.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Takes `branch=name` out of the URL's query (the storage backends reject parameters they do not know); a branch
 * named both there and in the options must be the same.
 */
function branchFromUrl(
  url: string,
  optionBranch: string | undefined,
): { storageUrl: string; branch?: string } {
  const q = typeof url === "string" ? url.indexOf("?") : -1;
  let branch: string | undefined;
  let storageUrl = url;
  if (q >= 0) {
    const params = new URLSearchParams(url.slice(q + 1));
    const fromUrl = params.getAll("branch");
    if (fromUrl.length > 1) {
      throw new TwillError(ErrorCodes.InvalidUrl, "the URL names more than one branch");
    }
    if (fromUrl.length === 1) {
      branch = fromUrl[0];
      params.delete("branch");
      const rest = params.toString();
      storageUrl = rest ? `${url.slice(0, q)}?${rest}` : url.slice(0, q);
    }
  }
  if (branch !== undefined && optionBranch !== undefined && branch !== optionBranch) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `the URL says branch ${JSON.stringify(branch)} but the options say ${JSON.stringify(optionBranch)}`,
    );
  }
  branch ??= optionBranch;
  if (branch !== undefined && branch !== "main") checkBranchName(branch);
  return branch === undefined ? { storageUrl } : { storageUrl, branch };
}

function invalidOptions(error: z.ZodError): TwillError {
  const issues = error.issues.map((i) => `${i.path.join(".") || "options"}: ${i.message}`).join("; ");
  return new TwillError(ErrorCodes.InvalidArgument, `invalid open() options: ${issues}`, {
    hint: `accepted options: ${Object.keys(openOptionsSchema.shape).join(", ")} (storage: ${Object.keys(storageOptionsSchema.shape).join(", ")}; engine: ${Object.keys(engineOptionsSchema.shape).join(", ")})`,
  });
}

/**
 * Opens (creating if needed) the database at `url`: `memory://[name]`, `file://path` or `s3://bucket/prefix`.
 */
export async function open(url: string, options?: OpenOptions): Promise<Database> {
  const parsed = openOptionsSchema.safeParse(options ?? {});
  if (!parsed.success) throw invalidOptions(parsed.error);
  const opts = parsed.data;
  const { storageUrl, branch } = branchFromUrl(url, opts.branch ?? opts.engine?.branch);
  const storage = await openStorage(storageUrl, opts.storage);
  let engine: Engine | undefined;
  try {
    engine = await Engine.open(storage, { ...opts.engine, ...(branch ? { branch } : {}) });
    const sql = await SqlEngine.open(engine, {
      int8: opts.int8,
      statementCacheSize: opts.statementCacheSize,
    });
    return new Database(sql, engine, storage, storage.url);
  } catch (error) {
    await engine?.close().catch(() => undefined);
    await storage.close().catch(() => undefined);
    throw asTwillError(error);
  }
}
