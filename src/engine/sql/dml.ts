/**
 * INSERT, UPDATE and DELETE plans. Target rows of UPDATE and DELETE are collected first and changed afterwards, so
 * a statement never sees its own changes while it scans (no Halloween problem); each row change goes through
 * table-runtime.ts, which keeps indexes and constraints in step.
 */

import type {
  DeleteStmt,
  InsertStmt,
  Node,
  OnConflictClause,
  ResTarget,
  SelectStmt,
  UpdateStmt,
} from "libpg-query";
import { keyString } from "../txn/transaction.js";
import type { IndexDef, TableInfo } from "./catalog.js";
import { asBool, type CompileCx, compileExpr, conjunction, figureColname, Scope } from "./compile.js";
import { SqlState, sqlError, unsupported } from "./errors.js";
import { coerce, type Expr, resolveUnknown } from "./expr.js";
import {
  collect,
  concatBytes,
  correlatedPlans,
  type ExecCtx,
  type ExecResult,
  type ExplainNode,
  FilterNode,
  type OutputColumn,
  type RowSource,
  runCorrelated,
  type StatementPlan,
  TableAccess,
} from "./plan.js";
import { decodeRow } from "./row-codec.js";
import { chooseAccess, lookupTable, makeCx, type PlanCx, planSelect, splitConjuncts } from "./select.js";
import {
  conflictError,
  deleteRow,
  findConflict,
  pkSuffix,
  putRow,
  runtimeOf,
  type TableRuntime,
  tableScopeRel,
  updateRow,
  validateRow,
} from "./table-runtime.js";
import type { Value } from "./types.js";

function str(n: Node | undefined): string {
  return n && "String" in n ? (n.String.sval ?? "") : "";
}

interface Returning {
  exprs: Expr[];
  columns: OutputColumn[];
}

function compileReturningChecked(
  targets: Node[] | undefined,
  cx: CompileCx,
  table: TableInfo,
  alias: string,
): Returning | undefined {
  const r = compileReturning(targets, cx, table, alias);
  if (r?.exprs.some((e) => e.correlated)) throw unsupported("correlated subqueries in RETURNING");
  return r;
}

function compileReturning(
  targets: Node[] | undefined,
  cx: CompileCx,
  table: TableInfo,
  alias: string,
): Returning | undefined {
  if (!targets || targets.length === 0) return undefined;
  const exprs: Expr[] = [];
  const columns: OutputColumn[] = [];
  for (const t of targets) {
    const rt = (t as { ResTarget: ResTarget }).ResTarget;
    const v = rt.val;
    if (v && "ColumnRef" in v) {
      const f = v.ColumnRef.fields ?? [];
      const last = f[f.length - 1];
      if (last && "A_Star" in last) {
        if (f.length === 2 && str(f[0]) !== alias) {
          throw sqlError(SqlState.UndefinedTable, `missing FROM-clause entry for table "${str(f[0])}"`);
        }
        table.def.columns.forEach((c, i) => {
          if (c.hidden) return;
          exprs.push({ type: table.types[i]!, eval: (row) => row[i]!, refs: [i], text: c.name });
          columns.push({ name: c.name, type: table.types[i]! });
        });
        continue;
      }
    }
    const e = resolveUnknown(compileExpr(v!, cx), cx.params);
    exprs.push(e);
    columns.push({ name: rt.name ?? figureColname(v), type: e.type });
  }
  return { exprs, columns };
}

function project(r: Returning, row: Value[], ctx: ExecCtx): Value[] {
  const out: Value[] = new Array(r.exprs.length);
  for (let i = 0; i < r.exprs.length; i++) out[i] = r.exprs[i]!.eval(row, ctx.env);
  return out;
}

function columnIndex(table: TableInfo, name: string, position?: number): number {
  const i = table.columnIndex.get(name);
  if (i === undefined) {
    throw sqlError(
      SqlState.UndefinedColumn,
      `column "${name}" of relation "${table.name}" does not exist`,
      position === undefined ? {} : { position },
    );
  }
  return i;
}

/** Computes the value of column `i` when the statement gives none (or DEFAULT). */
async function defaultValue(ctx: ExecCtx, rt: TableRuntime, i: number): Promise<Value> {
  const d = rt.defaults[i];
  if (!d) return null;
  if (d.sequence) {
    const v = ctx.services.nextSequence(d.sequence.id, d.sequence.max, d.sequence.name);
    return typeof v === "number" ? v : await v;
  }
  return d.expr!.eval([], ctx.env);
}

// ---- INSERT -------------------------------------------------------------------------------------------------------------

interface OnConflict {
  action: "nothing" | "update";
  /** Arbiter: undefined = any constraint; null = the primary key; else a unique index. */
  arbiter: IndexDef | null | undefined;
  sets: { col: number; expr: Expr | "default" }[];
  where: Expr | undefined;
}

function resolveArbiter(table: TableInfo, clause: OnConflictClause): IndexDef | null | undefined {
  const infer = clause.infer;
  if (!infer) return undefined;
  if (infer.whereClause) throw unsupported("ON CONFLICT with a WHERE inference predicate");
  if (infer.conname) {
    if (infer.conname === table.def.pkName) return null;
    const ix = table.def.indexes.find((i) => i.name === infer.conname && i.unique);
    if (!ix) {
      throw sqlError(
        SqlState.UndefinedObject,
        `constraint "${infer.conname}" for table "${table.name}" does not exist`,
      );
    }
    return ix;
  }
  const cols = (infer.indexElems ?? []).map((n) => {
    const el = (n as { IndexElem: { name?: string; expr?: Node } }).IndexElem;
    if (!el.name) throw unsupported("ON CONFLICT on an expression");
    return columnIndex(table, el.name);
  });
  const same = (a: readonly number[]) => a.length === cols.length && a.every((c) => cols.includes(c));
  if (table.def.pkName !== undefined && same(table.def.primaryKey)) return null;
  const ix = table.def.indexes.find((i) => i.unique && same(i.columns));
  if (!ix) {
    throw sqlError(
      SqlState.InvalidColumnReference,
      "there is no unique or exclusion constraint matching the ON CONFLICT specification",
    );
  }
  return ix;
}

export function planInsert(stmt: InsertStmt, pc: PlanCx): StatementPlan {
  if (stmt.withClause) throw unsupported("WITH (common table expressions)");
  const rel = stmt.relation!;
  const table = lookupTable(pc, rel);
  const alias = rel.alias?.aliasname ?? table.name;
  const rt = runtimeOf(table, pc.position);
  const ncols = table.types.length;
  // Target columns.
  let targets: number[];
  if (stmt.cols && stmt.cols.length > 0) {
    targets = [];
    for (const c of stmt.cols) {
      const r = (c as { ResTarget: ResTarget }).ResTarget;
      if (r.indirection && r.indirection.length > 0)
        throw unsupported("INSERT into a subfield or array element");
      const i = columnIndex(
        table,
        r.name ?? "",
        r.location === undefined ? undefined : pc.position(r.location),
      );
      if (targets.includes(i))
        throw sqlError(SqlState.DuplicateColumn, `column "${r.name}" specified more than once`);
      targets.push(i);
    }
  } else {
    targets = table.visibleColumns;
  }
  const override = stmt.override ?? "OVERRIDING_NOT_SET";
  const what = (i: number) => `column "${table.def.columns[i]!.name}"`;
  // Source rows: VALUES (with DEFAULT items), a query, or DEFAULT VALUES.
  type Item = Expr | "default";
  let valuesRows: Item[][] | undefined;
  let query: { source: RowSource; exprs: Expr[] } | undefined;
  const sel = (stmt.selectStmt as { SelectStmt?: SelectStmt } | undefined)?.SelectStmt;
  const isPlainValues =
    sel?.valuesLists &&
    !sel.sortClause &&
    !sel.limitCount &&
    !sel.limitOffset &&
    (sel.op ?? "SETOP_NONE") === "SETOP_NONE";
  if (!sel) {
    valuesRows = [targets.map(() => "default" as const)];
    targets = table.def.columns.map((_c, i) => i);
    valuesRows = [targets.map(() => "default" as const)];
  } else if (isPlainValues) {
    const cx = makeCx(pc, new Scope([]), "VALUES");
    valuesRows = sel.valuesLists!.map((l) => {
      const items = (l as { List?: { items?: Node[] } }).List?.items ?? [];
      if (items.length > targets.length)
        throw sqlError(SqlState.SyntaxError, "INSERT has more expressions than target columns");
      if (items.length < targets.length && stmt.cols && stmt.cols.length > 0) {
        throw sqlError(SqlState.SyntaxError, "INSERT has more target columns than expressions");
      }
      return items.map((n, k): Item => {
        if ("SetToDefault" in n) return "default";
        return coerce(
          compileExpr(n, cx),
          table.types[targets[k]!]!,
          "assignment",
          pc.params,
          what(targets[k]!),
        );
      });
    });
  } else {
    const q = planSelect(sel!, pc);
    if (q.columns.length > targets.length)
      throw sqlError(SqlState.SyntaxError, "INSERT has more expressions than target columns");
    if (q.columns.length < targets.length && stmt.cols && stmt.cols.length > 0) {
      throw sqlError(SqlState.SyntaxError, "INSERT has more target columns than expressions");
    }
    const exprs = q.columns.map((c, k) =>
      coerce(
        { type: c.type, eval: (row) => row[k]!, refs: [k], text: c.name },
        table.types[targets[k]!]!,
        "assignment",
        pc.params,
        what(targets[k]!),
      ),
    );
    query = { source: q.source, exprs };
  }
  // Identity ALWAYS columns refuse explicit values unless OVERRIDING SYSTEM VALUE.
  for (let k = 0; k < targets.length; k++) {
    const c = table.def.columns[targets[k]!]!;
    if (c.identity !== "always" || override === "OVERRIDING_SYSTEM_VALUE") continue;
    const explicit = query !== undefined || valuesRows!.some((r) => r[k] !== undefined && r[k] !== "default");
    if (explicit) {
      throw sqlError("428C9", `cannot insert a non-DEFAULT value into column "${c.name}"`, {
        detail: `Column "${c.name}" is an identity column defined as GENERATED ALWAYS.`,
        hint: "Use OVERRIDING SYSTEM VALUE to override.",
      });
    }
  }
  const ignoreIdentity = override === "OVERRIDING_USER_VALUE";
  // ON CONFLICT.
  let onConflict: OnConflict | undefined;
  const scope = new Scope([tableScopeRel(table, alias), tableScopeRel(table, "excluded", ncols)]);
  if (stmt.onConflictClause) {
    const oc = stmt.onConflictClause;
    const arbiter = resolveArbiter(table, oc);
    if (oc.action === "ONCONFLICT_UPDATE") {
      if (arbiter === undefined) {
        throw sqlError(
          SqlState.SyntaxError,
          "ON CONFLICT DO UPDATE requires inference specification or constraint name",
          {
            hint: "For example, ON CONFLICT (column_name).",
          },
        );
      }
      const cx = makeCx(pc, scope, "ON CONFLICT DO UPDATE");
      const sets = (oc.targetList ?? []).map((n) => {
        const r = (n as { ResTarget: ResTarget }).ResTarget;
        if (!r.name) throw unsupported("multi-column assignment in ON CONFLICT DO UPDATE");
        const col = columnIndex(table, r.name);
        if (r.val && "SetToDefault" in r.val) return { col, expr: "default" as const };
        return {
          col,
          expr: coerce(compileExpr(r.val!, cx), table.types[col]!, "assignment", pc.params, what(col)),
        };
      });
      const where = oc.whereClause ? asBool(compileExpr(oc.whereClause, cx), cx, "WHERE") : undefined;
      if (where?.correlated || sets.some((x) => x.expr !== "default" && x.expr.correlated)) {
        throw unsupported("correlated subqueries in ON CONFLICT DO UPDATE");
      }
      onConflict = { action: "update", arbiter, sets, where };
    } else {
      onConflict = { action: "nothing", arbiter, sets: [], where: undefined };
    }
  }
  const returning = compileReturningChecked(
    stmt.returningClause?.exprs,
    makeCx(pc, new Scope([tableScopeRel(table, alias)]), "RETURNING"),
    table,
    alias,
  );
  const targetOf = new Int32Array(ncols).fill(-1);
  targets.forEach((c, k) => {
    targetOf[c] = k;
  });

  const buildRow = async (ctx: ExecCtx, items: (Value | "default")[]): Promise<Value[]> => {
    const row: Value[] = new Array(ncols);
    for (let i = 0; i < ncols; i++) {
      const k = targetOf[i]!;
      const given = k >= 0 ? items[k] : undefined;
      if (given === undefined || given === "default" || (ignoreIdentity && table.def.columns[i]!.identity)) {
        row[i] = await defaultValue(ctx, rt, i);
      } else {
        row[i] = given;
      }
    }
    return row;
  };

  const execute = async (ctx: ExecCtx): Promise<ExecResult> => {
    const out: Value[][] = [];
    let count = 0;
    const touched = new Set<string>();
    const insertOne = async (row: Value[]): Promise<void> => {
      validateRow(table, rt, row, ctx.env);
      const pk = pkSuffix(table, row);
      let conflict = findConflict(ctx, table, rt, row, pk, undefined, onConflict?.arbiter ?? undefined);
      if (conflict instanceof Promise) conflict = await conflict;
      if (conflict) {
        const arbiterMatches =
          onConflict &&
          (onConflict.arbiter === undefined ||
            (onConflict.arbiter === null
              ? conflict.index === undefined
              : conflict.index === onConflict.arbiter));
        if (!onConflict || !arbiterMatches) throw conflictError(table, conflict, row);
        if (onConflict.action === "nothing") return;
        const k = keyString(conflict.existingRowKey);
        if (touched.has(k)) {
          throw sqlError(
            SqlState.CardinalityViolation,
            "ON CONFLICT DO UPDATE command cannot affect row a second time",
            {
              hint: "Ensure that no rows proposed for insertion within the same command have duplicate constrained values.",
            },
          );
        }
        const bytes = await ctx.kv.get(conflict.existingRowKey);
        const existing = decodeRow(table.types, bytes!, table.missing);
        const combined = [...existing, ...row];
        if (onConflict.where && onConflict.where.eval(combined, ctx.env) !== true) return;
        const next = existing.slice();
        for (const s of onConflict.sets)
          next[s.col] =
            s.expr === "default" ? await defaultValue(ctx, rt, s.col) : s.expr.eval(combined, ctx.env);
        await updateRow(ctx, table, rt, existing, next);
        touched.add(keyString(concatBytes(table.keyPrefix, pkSuffix(table, next))));
        count++;
        if (returning) out.push(project(returning, next, ctx));
        return;
      }
      await putRow(ctx, table, rt, row, pk);
      if (onConflict) touched.add(keyString(concatBytes(table.keyPrefix, pk)));
      count++;
      if (returning) out.push(project(returning, row, ctx));
    };
    if (valuesRows) {
      const empty: Value[] = [];
      for (const items of valuesRows) {
        const vals = items.map((it) => (it === "default" ? "default" : it.eval(empty, ctx.env)));
        await insertOne(await buildRow(ctx, vals));
      }
    } else {
      const q = query!;
      // Read the whole source first: INSERT … SELECT from the same table must not see its own rows.
      const srcRows = await collect(q.source, ctx);
      for (const r of srcRows)
        await insertOne(
          await buildRow(
            ctx,
            q.exprs.map((e) => e.eval(r, ctx.env)),
          ),
        );
    }
    return { rows: out, rowCount: count };
  };
  return {
    command: "INSERT",
    columns: returning?.columns ?? [],
    kind: "write",
    initPlans: pc.initPlans,
    execute,
    explain: (): ExplainNode => ({
      label: `Insert on ${table.name}`,
      details: onConflict ? [`Conflict Resolution: ${onConflict.action.toUpperCase()}`] : [],
      children: query
        ? [query.source.explain()]
        : [{ label: `Values Scan on "*VALUES*" (${valuesRows!.length} rows)`, details: [], children: [] }],
    }),
  };
}

// ---- UPDATE and DELETE -----------------------------------------------------------------------------------------------------

function planTarget(
  table: TableInfo,
  alias: string,
  where: Node | undefined,
  pc: PlanCx,
): { access: RowSource; scope: Scope } {
  const scope = new Scope([tableScopeRel(table, alias)]);
  const cx = makeCx(pc, scope, "WHERE");
  const w = where ? asBool(compileExpr(where, cx), cx, "WHERE") : undefined;
  const all = splitConjuncts(w);
  // Conjuncts with correlated subqueries run per row in a filter above the scan; the rest may drive the scan.
  const plain = all.filter((e) => !e.correlated);
  const perRow = all.filter((e) => e.correlated);
  const choice = chooseAccess(
    table,
    0,
    plain.filter((e) => !e.volatile),
  );
  const residual = conjunction(plain.filter((e) => !choice.consumed.includes(e)));
  let access: RowSource = new TableAccess(table, choice.path, residual, alias);
  const corr = conjunction(perRow);
  if (corr) access = new FilterNode(access, corr, correlatedPlans([corr], pc.initPlans));
  return { access, scope };
}

export function planUpdate(stmt: UpdateStmt, pc: PlanCx): StatementPlan {
  if (stmt.withClause) throw unsupported("WITH (common table expressions)");
  if (stmt.fromClause && stmt.fromClause.length > 0)
    throw unsupported("UPDATE … FROM", "use a subquery in WHERE");
  const rel = stmt.relation!;
  const table = lookupTable(pc, rel);
  const alias = rel.alias?.aliasname ?? table.name;
  const rt = runtimeOf(table, pc.position);
  const { access, scope } = planTarget(table, alias, stmt.whereClause, pc);
  const cx = makeCx(pc, scope, "UPDATE");
  const seen = new Set<number>();
  const sets = (stmt.targetList ?? []).map((n) => {
    const r = (n as { ResTarget: ResTarget }).ResTarget;
    if (r.val && "MultiAssignRef" in r.val) throw unsupported("UPDATE … SET (a, b) = (…)");
    if (r.indirection && r.indirection.length > 0) throw unsupported("UPDATE of a subfield or array element");
    const col = columnIndex(
      table,
      r.name ?? "",
      r.location === undefined ? undefined : pc.position(r.location),
    );
    if (seen.has(col))
      throw sqlError(SqlState.SyntaxError, `multiple assignments to same column "${r.name}"`);
    seen.add(col);
    const c = table.def.columns[col]!;
    if (r.val && "SetToDefault" in r.val) return { col, expr: "default" as const };
    if (c.identity === "always") {
      throw sqlError("428C9", `column "${c.name}" can only be updated to DEFAULT`, {
        detail: `Column "${c.name}" is an identity column defined as GENERATED ALWAYS.`,
      });
    }
    return {
      col,
      expr: coerce(compileExpr(r.val!, cx), table.types[col]!, "assignment", pc.params, `column "${c.name}"`),
    };
  });
  const returning = compileReturningChecked(
    stmt.returningClause?.exprs,
    makeCx(pc, scope, "RETURNING"),
    table,
    alias,
  );
  const setSubplans = correlatedPlans(
    sets.map((x) => (x.expr === "default" ? undefined : x.expr)),
    pc.initPlans,
  );
  return {
    command: "UPDATE",
    columns: returning?.columns ?? [],
    kind: "write",
    initPlans: pc.initPlans,
    async execute(ctx) {
      const rows = await collect(access, ctx);
      const out: Value[][] = [];
      for (const old of rows) {
        const next = old.slice();
        if (setSubplans.length > 0) await runCorrelated(ctx, setSubplans, old);
        for (const s of sets)
          next[s.col] = s.expr === "default" ? await defaultValue(ctx, rt, s.col) : s.expr.eval(old, ctx.env);
        await updateRow(ctx, table, rt, old, next);
        if (returning) out.push(project(returning, next, ctx));
      }
      return { rows: out, rowCount: rows.length };
    },
    explain: () => ({ label: `Update on ${table.name}`, details: [], children: [access.explain()] }),
  };
}

export function planDelete(stmt: DeleteStmt, pc: PlanCx): StatementPlan {
  if (stmt.withClause) throw unsupported("WITH (common table expressions)");
  if (stmt.usingClause && stmt.usingClause.length > 0)
    throw unsupported("DELETE … USING", "use a subquery in WHERE");
  const rel = stmt.relation!;
  const table = lookupTable(pc, rel);
  const alias = rel.alias?.aliasname ?? table.name;
  const rt = runtimeOf(table, pc.position);
  const { access, scope } = planTarget(table, alias, stmt.whereClause, pc);
  const returning = compileReturningChecked(
    stmt.returningClause?.exprs,
    makeCx(pc, scope, "RETURNING"),
    table,
    alias,
  );
  return {
    command: "DELETE",
    columns: returning?.columns ?? [],
    kind: "write",
    initPlans: pc.initPlans,
    async execute(ctx) {
      const rows = await collect(access, ctx);
      const out: Value[][] = [];
      for (const row of rows) {
        await deleteRow(ctx, table, rt, row);
        if (returning) out.push(project(returning, row, ctx));
      }
      return { rows: out, rowCount: rows.length };
    },
    explain: () => ({ label: `Delete on ${table.name}`, details: [], children: [access.explain()] }),
  };
}
