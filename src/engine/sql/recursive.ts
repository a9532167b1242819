/**
 * WITH RECURSIVE at run time, as PostgreSQL evaluates it: the non-recursive term's rows form the first working
 * table; the recursive term runs again and again over the working table (its self-reference reads only that),
 * each round's new rows becoming the next working table, until a round yields no new rows. Every row is emitted
 * as soon as its round produced it, so a LIMIT above stops an endless recursion. With UNION (not ALL), a row equal
 * to one already emitted is dropped before it can enter the working table, which is what makes cyclic data end.
 *
 * Plans are cached and shared between executions, so the working table lives per execution: in a WeakMap keyed by
 * the execution's Env, never on the plan node.
 *
 * PostgreSQL lets an endless recursion run until memory runs out; here one recursive query stops with 54000 after
 * `RecursiveUnion.rowsMax` rows, so a runaway query fails with an error instead of taking the process down.
 */

import { SqlState, sqlError } from "./errors.js";
import type { Env } from "./expr.js";
import { tupleKeyFn } from "./expr.js";
import { collect, type Emit, type ExecCtx, type ExplainNode, type RowSource } from "./plan.js";
import type { SqlType, Value } from "./types.js";

/** The rows the self-reference reads in the current round of one recursive query, per execution. */
export class WorkTable {
  private readonly rows = new WeakMap<Env, Value[][]>();

  constructor(readonly name: string) {}

  get(env: Env): Value[][] {
    return this.rows.get(env) ?? [];
  }

  set(env: Env, rows: Value[][] | undefined): void {
    if (rows === undefined) this.rows.delete(env);
    else this.rows.set(env, rows);
  }
}

/** The recursive term's reference to its own query: the current working table. */
export class WorkTableScan implements RowSource {
  constructor(
    readonly table: WorkTable,
    readonly alias: string,
  ) {}

  async *rows(ctx: ExecCtx): AsyncIterable<Value[]> {
    yield* this.table.get(ctx.env);
  }

  async each(ctx: ExecCtx, _outer: Value[] | undefined, emit: Emit): Promise<void> {
    for (const r of this.table.get(ctx.env)) if (emit(r) === false) return;
  }

  explain(): ExplainNode {
    const name = this.alias === this.table.name ? this.table.name : `${this.table.name} ${this.alias}`;
    return { label: `WorkTable Scan on ${name}`, details: [], children: [] };
  }
}

export class RecursiveUnion implements RowSource {
  /** Rows one execution may produce (both terms together) before it is stopped. */
  static rowsMax = 10_000_000;

  constructor(
    readonly nonRecursive: RowSource,
    readonly recursive: RowSource,
    readonly work: WorkTable,
    /** UNION ALL keeps duplicates; UNION drops rows equal to any row emitted before. */
    readonly all: boolean,
    readonly types: readonly SqlType[],
  ) {}

  async *rows(ctx: ExecCtx): AsyncIterable<Value[]> {
    const keyOf = this.all ? undefined : tupleKeyFn(this.types);
    const seen = new Set<string>();
    const max = RecursiveUnion.rowsMax;
    let produced = 0;
    const fresh = (r: Value[]): boolean => {
      if (++produced > max) {
        throw sqlError(
          SqlState.ProgramLimitExceeded,
          `recursive query "${this.work.name}" produced more than ${max} rows`,
          { hint: "add a condition that ends the recursion, or a LIMIT in the outer query" },
        );
      }
      if (keyOf === undefined) return true;
      const k = keyOf(r);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    };
    let working: Value[][] = [];
    for (const r of await collect(this.nonRecursive, ctx)) {
      if (!fresh(r)) continue;
      working.push(r);
      yield r;
    }
    const env = ctx.env;
    // A nested execution of the same query (it cannot be its own, but a re-entrant caller could) keeps its round.
    const saved = this.work.get(env);
    try {
      while (working.length > 0) {
        this.work.set(env, working);
        const round = await collect(this.recursive, ctx);
        const next: Value[][] = [];
        for (const r of round) {
          if (!fresh(r)) continue;
          next.push(r);
          yield r;
        }
        working = next;
      }
    } finally {
      this.work.set(env, saved.length > 0 ? saved : undefined);
    }
  }

  explain(): ExplainNode {
    return {
      label: "Recursive Union",
      details: [],
      children: [this.nonRecursive.explain(), this.recursive.explain()],
    };
  }
}
