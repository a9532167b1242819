/**
 * SELECT planning: FROM items and joins, access-path choice (primary-key point/IN/range, secondary-index
 * point/range, otherwise a sequential scan), WHERE pushdown, grouping and aggregates, the select list, DISTINCT
 * [ON], ORDER BY (skipped when the primary-key scan order already provides it), LIMIT/OFFSET, set operations and
 * VALUES. Uncorrelated subqueries become init plans that run once before the main plan.
 *
 * Access-path rule: a WHERE conjunct `col op expr` can drive a key lookup when `col` is a column of the table
 * (through key-preserving casts only), `expr` reads nothing of this table (constants, parameters, subquery results,
 * or the outer row of a join) and is not volatile. Equality on every primary-key column is a point lookup; on a
 * prefix, a range scan; a unique index with equality on all its columns is a point lookup too. Range conjuncts
 * stay in the residual filter; equality conjuncts used for the key are exact and dropped from it.
 */

import type {
  Alias,
  JoinExpr,
  Node,
  RangeFunction,
  RangeSubselect,
  RangeVar,
  ResTarget,
  SelectStmt,
  SortBy,
} from "libpg-query";
import type { AggregateSpec } from "./aggregates.js";
import { UnnestSource, unnestArg } from "./array-ops.js";
import type { Catalog, IndexDef, TableInfo } from "./catalog.js";
import {
  type AggregateSink,
  asBool,
  astKey,
  type CompileCx,
  compileExpr,
  conjunction,
  containsAggregate,
  figureColname,
  type GroupedScope,
  resolveColumn,
  Scope,
  type ScopeColumn,
  type ScopeRel,
  type SubqueryHost,
  type SubqueryMode,
} from "./compile.js";
import { SqlState, sqlError, unsupported } from "./errors.js";
import { coerce, type Expr, type ParamTypes, resolveUnknown, unifyTypes } from "./expr.js";
import { HnswScan, matchHnsw } from "./hnsw-index.js";
import { compareExpr } from "./operators.js";
import {
  type AccessPath,
  AggregateNode,
  type Bound,
  correlatedPlans,
  DistinctNode,
  FilterNode,
  type InitPlan,
  type JoinKind,
  JoinNode,
  LimitNode,
  type OutputColumn,
  ProjectNode,
  type RowSource,
  SeriesSource,
  SetOpNode,
  SingleRow,
  type SortKey,
  SortNode,
  SubquerySource,
  TableAccess,
  TrimNode,
  ValuesSource,
} from "./plan.js";
import { RecursiveUnion, WorkTable, WorkTableScan } from "./recursive.js";
import { isSystemSchema, isSystemView, systemRelation } from "./system-catalog.js";
import { keyOrdered, type SqlType, T, typeName } from "./types.js";

export interface PlanCx {
  catalog: Catalog;
  params: ParamTypes;
  position: (offset: number) => number;
  /** Subplans of the whole statement, in execution order (uncorrelated ones run up front). */
  initPlans: InitPlan[];
  /** Set while planning a subquery: the enclosing query's scope, for correlated references. */
  outer?: { scope: Scope; used: boolean };
  /** WITH queries visible here by name (each with the ones visible where it was defined). */
  ctes?: ReadonlyMap<string, CteDef>;
}

/** A WITH query: planned afresh, as a subquery in FROM, wherever it is referenced. */
interface CteDef {
  stmt: SelectStmt;
  colnames: string[];
  scope: ReadonlyMap<string, CteDef> | undefined;
  /** WITH RECURSIVE: the query reads itself; `stmt` is non-recursive term UNION [ALL] recursive term. */
  recursive?: { nonRecursive: SelectStmt; recursive: SelectStmt; all: boolean };
  /** The self-reference inside a recursive term: it reads the working table. */
  work?: {
    table: WorkTable;
    columns: OutputColumn[];
    /** References planned so far (PostgreSQL allows one). */
    uses: { n: number };
    /** Set inside an expression subquery of the recursive term, where the reference is refused. */
    forbidden?: boolean;
  };
}

/** Whether `node` (an AST subtree) names relation `name` without a schema, i.e. could read the WITH query. */
function readsRelation(node: unknown, name: string): boolean {
  if (node === null || typeof node !== "object") return false;
  if (Array.isArray(node)) return node.some((n) => readsRelation(n, name));
  const o = node as Record<string, unknown>;
  const rv = o.RangeVar as RangeVar | undefined;
  if (rv && rv.relname === name && !rv.schemaname) return true;
  for (const k in o) if (k !== "location" && readsRelation(o[k], name)) return true;
  return false;
}

/** Splits a self-referencing WITH query into its two terms, refusing the forms PostgreSQL refuses. */
function recursiveParts(q: SelectStmt, name: string): NonNullable<CteDef["recursive"]> {
  if (q.op !== "SETOP_UNION" || !q.larg || !q.rarg) {
    throw sqlError(
      SqlState.InvalidRecursion,
      `recursive query "${name}" does not have the form non-recursive-term UNION [ALL] recursive-term`,
    );
  }
  if (readsRelation(q.larg, name))
    throw sqlError(
      SqlState.InvalidRecursion,
      `recursive reference to query "${name}" must not appear within its non-recursive term`,
    );
  if ((q.sortClause?.length ?? 0) > 0) throw unsupported("ORDER BY in a recursive query");
  if (q.limitCount || q.limitOffset) throw unsupported("LIMIT and OFFSET in a recursive query");
  const rec = q.rarg;
  if (rec.op && rec.op !== "SETOP_NONE") throw unsupported("a set operation inside a recursive term");
  if ((rec.groupClause?.length ?? 0) > 0 || rec.havingClause || containsAggregate(rec.targetList))
    throw sqlError(
      SqlState.InvalidRecursion,
      "aggregate functions are not allowed in a recursive query's recursive term",
    );
  if ((rec.sortClause?.length ?? 0) > 0) throw unsupported("ORDER BY in a recursive query");
  if (rec.limitCount || rec.limitOffset) throw unsupported("LIMIT and OFFSET in a recursive query");
  if (rec.withClause) throw unsupported("WITH inside a recursive term");
  return { nonRecursive: q.larg, recursive: rec, all: q.all === true };
}

/** The WITH queries an expression subquery sees: a recursive term's self-reference is refused there. */
function hideWorkTables(
  ctes: ReadonlyMap<string, CteDef> | undefined,
): ReadonlyMap<string, CteDef> | undefined {
  if (!ctes || ![...ctes.values()].some((c) => c.work)) return ctes;
  const out = new Map<string, CteDef>();
  for (const [k, c] of ctes) out.set(k, c.work ? { ...c, work: { ...c.work, forbidden: true } } : c);
  return out;
}

export interface PlannedQuery {
  source: RowSource;
  columns: OutputColumn[];
}

function str(n: Node | undefined): string {
  if (n && "String" in n) return n.String.sval ?? "";
  return "";
}

export function subqueryHost(pc: PlanCx): SubqueryHost {
  return {
    initPlan(select, cx, mode) {
      const outer = { scope: cx.grouped ? cx.grouped.inputScope : cx.scope, used: false };
      const ctes = hideWorkTables(pc.ctes);
      const planned = planSelect(select, { ...pc, outer, ...(ctes ? { ctes } : {}) }, outer.scope);
      const types = planned.columns.map((c) => c.type);
      const m: SubqueryMode = mode(types);
      const id = pc.initPlans.length;
      if (outer.used && cx.grouped) {
        throw unsupported("correlated subqueries in a query with GROUP BY or aggregates");
      }
      pc.initPlans.push({ id, source: planned.source, mode: m, correlated: outer.used });
      return { id, types, names: planned.columns.map((c) => c.name), correlated: outer.used };
    },
  };
}

export function makeCx(pc: PlanCx, scope: Scope, clause: string): CompileCx {
  return {
    scope,
    params: pc.params,
    position: pc.position,
    clause,
    subqueries: subqueryHost(pc),
    ...(pc.outer ? { outer: pc.outer } : {}),
  };
}

export function splitConjuncts(e: Expr | undefined): Expr[] {
  if (!e) return [];
  return e.conjuncts ? [...e.conjuncts] : [e];
}

// ---- FROM ---------------------------------------------------------------------------------------------------------------

type FromTree =
  | { kind: "table"; table: TableInfo; alias: string; base: number; width: number }
  | { kind: "source"; source: RowSource; base: number; width: number }
  | {
      kind: "join";
      jk: JoinKind;
      left: FromTree;
      right: FromTree;
      quals: Node | undefined;
      using: { left: number; right: number; type: SqlType }[];
      base: number;
      width: number;
    };

export function lookupTable(pc: PlanCx, rv: RangeVar): TableInfo {
  if (rv.schemaname && rv.schemaname !== "public" && !isSystemSchema(rv.schemaname)) {
    throw sqlError(
      "3F000",
      `schema "${rv.schemaname}" does not exist`,
      rv.location === undefined ? {} : { position: pc.position(rv.location) },
    );
  }
  const name = rv.relname ?? "";
  if (isSystemView(rv)) throw unsupported(`changing the system view ${name} (it is read-only)`);
  const t = isSystemSchema(rv.schemaname) ? undefined : pc.catalog.table(name);
  if (!t) {
    throw sqlError(
      SqlState.UndefinedTable,
      `relation "${name}" does not exist`,
      rv.location === undefined ? {} : { position: pc.position(rv.location) },
    );
  }
  return t;
}

function aliasNames(alias: Alias | undefined, names: string[], what: string): string[] {
  const cols = (alias?.colnames ?? []).map(str);
  if (cols.length > names.length) {
    throw sqlError(
      SqlState.InvalidColumnReference,
      `${what} "${alias?.aliasname}" has ${names.length} columns available but ${cols.length} columns specified`,
    );
  }
  return names.map((n, i) => cols[i] ?? n);
}

class FromBuilder {
  readonly rels: ScopeRel[] = [];
  width = 0;

  constructor(
    private readonly pc: PlanCx,
    private readonly parent: Scope | undefined,
  ) {}

  item(node: Node): FromTree {
    if ("RangeVar" in node) {
      const rv = node.RangeVar;
      const cte = rv.schemaname ? undefined : this.pc.ctes?.get(rv.relname ?? "");
      if (cte) return this.cteItem(cte, rv);
      const sys = systemRelation(this.pc.catalog, rv);
      if (sys) {
        const base = this.addColumns(rv.alias?.aliasname ?? sys.name, rv.alias, sys.columns);
        return { kind: "source", source: sys.source, base, width: sys.columns.length };
      }
      const table = lookupTable(this.pc, rv);
      const alias = rv.alias?.aliasname ?? table.name;
      const base = this.width;
      const names = aliasNames(
        rv.alias,
        table.def.columns.filter((c) => !c.hidden).map((c) => c.name),
        "table",
      );
      let vi = 0;
      const columns: ScopeColumn[] = table.def.columns.map((c, i) => ({
        name: c.hidden ? c.name : names[vi++]!,
        type: table.types[i]!,
        index: base + i,
        ...(c.hidden ? { hidden: true } : {}),
      }));
      this.addRel(alias, columns);
      this.width += table.types.length;
      return { kind: "table", table, alias, base, width: table.types.length };
    }
    if ("RangeSubselect" in node) {
      const rs: RangeSubselect = node.RangeSubselect;
      if (rs.lateral) throw unsupported("LATERAL subqueries");
      const sel = (rs.subquery as { SelectStmt?: SelectStmt }).SelectStmt;
      if (!sel) throw unsupported("this kind of subquery in FROM");
      const planned = planSelect(sel, this.pc, this.parent);
      const alias = rs.alias?.aliasname ?? "unnamed_subquery";
      const base = this.addColumns(alias, rs.alias, planned.columns);
      return {
        kind: "source",
        source: new SubquerySource(planned.source, alias),
        base,
        width: planned.columns.length,
      };
    }
    if ("RangeFunction" in node) return this.rangeFunction(node.RangeFunction);
    if ("JoinExpr" in node) {
      const j: JoinExpr = node.JoinExpr;
      const base = this.width;
      const left = this.item(j.larg!);
      const right = this.item(j.rarg!);
      if (right.kind === "join")
        throw unsupported("a parenthesized join on the right side of a JOIN", "reorder the joins");
      const jk: JoinKind =
        j.jointype === "JOIN_LEFT"
          ? "left"
          : j.jointype === "JOIN_RIGHT"
            ? "right"
            : j.jointype === "JOIN_FULL"
              ? "full"
              : "inner";
      if (j.jointype && !["JOIN_INNER", "JOIN_LEFT", "JOIN_RIGHT", "JOIN_FULL"].includes(j.jointype)) {
        throw unsupported(`join type ${j.jointype}`);
      }
      if (j.alias) throw unsupported("an alias on a JOIN");
      let usingNames = (j.usingClause ?? []).map(str);
      if (j.isNatural) {
        const leftNames = new Set(
          this.relsIn(left).flatMap((r) => r.columns.filter((c) => !c.hidden).map((c) => c.name)),
        );
        usingNames = this.relsIn(right).flatMap((r) =>
          r.columns.filter((c) => !c.hidden && leftNames.has(c.name)).map((c) => c.name),
        );
      }
      const using = usingNames.map((name) => {
        const find = (tree: FromTree, side: string) => {
          const hits = this.relsIn(tree).flatMap((r) =>
            r.columns.filter((c) => !c.hidden && c.name === name),
          );
          if (hits.length === 0)
            throw sqlError(
              SqlState.UndefinedColumn,
              `column "${name}" specified in USING clause does not exist in ${side} table`,
            );
          if (hits.length > 1)
            throw sqlError(
              SqlState.AmbiguousColumn,
              `common column name "${name}" appears more than once in ${side} table`,
            );
          return hits[0]!;
        };
        const l = find(left, "left");
        const r = find(right, "right");
        // The merged column shows once: hide the right one (the left one for RIGHT JOIN).
        (jk === "right" ? l : r).hidden = true;
        return { left: l.index, right: r.index, type: l.type };
      });
      return { kind: "join", jk, left, right, quals: j.quals, using, base, width: this.width - base };
    }
    throw unsupported(`FROM item ${Object.keys(node)[0]}`);
  }

  private relsIn(tree: FromTree): ScopeRel[] {
    return this.rels.filter((r) =>
      r.columns.some((c) => c.index >= tree.base && c.index < tree.base + tree.width),
    );
  }

  /** Adds a relation of `columns` (renamed by the AS list, if any) after the current row; returns its first slot. */
  private addColumns(
    alias: string,
    as: Alias | undefined,
    columns: readonly { name: string; type: SqlType }[],
  ): number {
    const base = this.width;
    const names = aliasNames(
      as,
      columns.map((c) => c.name),
      "table",
    );
    this.addRel(
      alias,
      columns.map((c, i) => ({ name: names[i]!, type: c.type, index: base + i })),
    );
    this.width += columns.length;
    return base;
  }

  private addRel(name: string, columns: ScopeColumn[]): void {
    if (this.rels.some((r) => r.name === name)) {
      throw sqlError("42712", `table name "${name}" specified more than once`);
    }
    this.rels.push({ name, columns });
  }

  /** A reference to a WITH query: its SELECT planned here as a subquery in FROM. */
  private cteItem(cte: CteDef, rv: RangeVar): FromTree {
    const name = rv.relname ?? "";
    if (cte.work) return this.workTableItem(cte.work, rv);
    const planned = cte.recursive
      ? this.planRecursive(cte, cte.recursive, name)
      : planSelect(cte.stmt, { ...this.pc, ctes: cte.scope }, this.parent);
    if (cte.colnames.length > planned.columns.length)
      throw sqlError(
        SqlState.InvalidColumnReference,
        `WITH query "${name}" has ${planned.columns.length} columns available but ${cte.colnames.length} columns specified`,
      );
    const alias = rv.alias?.aliasname ?? name;
    const inner = planned.columns.map((c, i) => cte.colnames[i] ?? c.name);
    const names = aliasNames(rv.alias, inner, "table");
    const base = this.width;
    this.addRel(
      alias,
      planned.columns.map((c, i) => ({ name: names[i]!, type: c.type, index: base + i })),
    );
    this.width += planned.columns.length;
    return {
      kind: "source",
      source: new SubquerySource(planned.source, alias),
      base,
      width: planned.columns.length,
    };
  }

  /**
   * A recursive WITH query: the non-recursive term fixes the column types; the recursive term is planned with the
   * query's name bound to the working table and must produce the same types (42804 otherwise, as PostgreSQL).
   */
  private planRecursive(cte: CteDef, r: NonNullable<CteDef["recursive"]>, name: string): PlannedQuery {
    const first = planSelect(r.nonRecursive, { ...this.pc, ctes: cte.scope }, this.parent);
    if (cte.colnames.length > first.columns.length)
      throw sqlError(
        SqlState.InvalidColumnReference,
        `WITH query "${name}" has ${first.columns.length} columns available but ${cte.colnames.length} columns specified`,
      );
    const columns = first.columns.map((c, i) => ({ name: cte.colnames[i] ?? c.name, type: c.type }));
    const table = new WorkTable(name);
    const uses = { n: 0 };
    const scope = new Map(cte.scope ?? []);
    scope.set(name, { stmt: r.recursive, colnames: [], scope: undefined, work: { table, columns, uses } });
    const rest = planSelect(r.recursive, { ...this.pc, ctes: scope }, this.parent);
    if (rest.columns.length !== columns.length)
      throw sqlError(SqlState.SyntaxError, "each UNION query must have the same number of columns");
    rest.columns.forEach((c, i) => {
      const want = columns[i]!.type;
      if (typeName(c.type) !== typeName(want)) {
        throw sqlError(
          SqlState.DatatypeMismatch,
          `recursive query "${name}" column ${i + 1} has type ${typeName(want)} in non-recursive term but type ${typeName(c.type)} overall`,
          { hint: "Cast the output of the non-recursive term to the correct type." },
        );
      }
    });
    const types = columns.map((c) => c.type);
    return { source: new RecursiveUnion(first.source, rest.source, table, r.all, types), columns };
  }

  /** The recursive term's reference to its own query. */
  private workTableItem(work: NonNullable<CteDef["work"]>, rv: RangeVar): FromTree {
    const name = rv.relname ?? "";
    if (work.forbidden)
      throw sqlError(
        SqlState.InvalidRecursion,
        `recursive reference to query "${name}" must not appear within a subquery`,
      );
    if (++work.uses.n > 1)
      throw sqlError(
        SqlState.InvalidRecursion,
        `recursive reference to query "${name}" must not appear more than once`,
      );
    const alias = rv.alias?.aliasname ?? name;
    const base = this.addColumns(alias, rv.alias, work.columns);
    return {
      kind: "source",
      source: new WorkTableScan(work.table, alias),
      base,
      width: work.columns.length,
    };
  }

  /** unnest(array) in FROM: one row per element, NULLs included, in order. */
  private unnest(argNodes: Node[], rf: RangeFunction): FromTree {
    const cx = makeCx(this.pc, new Scope([], this.parent), "functions in FROM");
    const args = argNodes.map((a) => compileExpr(a, cx));
    if (args.length !== 1) throw unsupported("unnest() of several arrays");
    if (args[0]!.refs.length > 0) throw unsupported("unnest arguments that read columns (LATERAL)");
    const arr = unnestArg(args[0]!, this.pc.params);
    const alias = rf.alias?.aliasname ?? "unnest";
    const colName = str(rf.alias?.colnames?.[0]) || alias;
    const base = this.width;
    this.addRel(alias, [{ name: colName, type: arr.type.elem!, index: base }]);
    this.width += 1;
    return { kind: "source", source: new UnnestSource(arr), base, width: 1 };
  }

  private rangeFunction(rf: RangeFunction): FromTree {
    if (rf.lateral) throw unsupported("LATERAL");
    if (rf.ordinality) throw unsupported("WITH ORDINALITY");
    const fns = rf.functions ?? [];
    if (fns.length !== 1) throw unsupported("ROWS FROM with several functions");
    const items = (fns[0] as { List?: { items?: Node[] } }).List?.items ?? [];
    const call = items[0];
    if (!call || !("FuncCall" in call)) throw unsupported("this function call in FROM");
    const names = (call.FuncCall.funcname ?? []).map(str);
    const name = names[names.length - 1]!;
    if (name === "unnest") return this.unnest(call.FuncCall.args ?? [], rf);
    if (name !== "generate_series")
      throw unsupported(
        `set-returning function ${name}() in FROM`,
        "generate_series and unnest are supported",
      );
    const cx = makeCx(this.pc, new Scope([], this.parent), "functions in FROM");
    const args = (call.FuncCall.args ?? []).map((a) => compileExpr(a, cx));
    if (args.length < 2 || args.length > 3)
      throw sqlError(
        SqlState.UndefinedFunction,
        "function generate_series with these arguments does not exist",
      );
    for (const a of args)
      if (a.refs.length > 0) throw unsupported("generate_series arguments that read columns");
    let t = unifyTypes(args, "generate_series");
    if (t.kind === "int2") t = T.int4;
    if (t.kind !== "int4" && t.kind !== "int8") {
      throw unsupported(`generate_series(${t.kind}, …)`, "integer and bigint series are supported");
    }
    const c = args.map((a) => coerce(a, t, "implicit", this.pc.params));
    const alias = rf.alias?.aliasname ?? "generate_series";
    const colName = str(rf.alias?.colnames?.[0]) || alias;
    const base = this.width;
    this.addRel(alias, [{ name: colName, type: t, index: base }]);
    this.width += 1;
    return {
      kind: "source",
      source: new SeriesSource(c[0]!, c[1]!, c[2], t.kind === "int4" ? "int" : "bigint"),
      base,
      width: 1,
    };
  }
}

// ---- access paths -------------------------------------------------------------------------------------------------------

interface KeyConjunct {
  expr: Expr;
  op: "=" | "<" | "<=" | ">" | ">=";
  /** The other side: the value to look up. */
  value: Expr;
  type: SqlType;
}

const FLIP: Record<string, KeyConjunct["op"]> = { "=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<=" };

/** Conjuncts usable as keys, grouped by table column (local position). */
function keyConjuncts(conjuncts: readonly Expr[], base: number, width: number): Map<number, KeyConjunct[]> {
  const byCol = new Map<number, KeyConjunct[]>();
  const independent = (e: Expr) => !e.volatile && !e.correlated && e.refs.every((r) => r < base);
  for (const c of conjuncts) {
    const cmp = c.cmp;
    if (!cmp || cmp.op === "<>") continue;
    let col: number | undefined;
    let value: Expr | undefined;
    let op = cmp.op as KeyConjunct["op"];
    if (cmp.left.keyColumn !== undefined && independent(cmp.right)) {
      col = cmp.left.keyColumn;
      value = cmp.right;
    } else if (cmp.right.keyColumn !== undefined && independent(cmp.left)) {
      col = cmp.right.keyColumn;
      value = cmp.left;
      op = FLIP[op]!;
    }
    if (col === undefined || value === undefined || col < base || col >= base + width) continue;
    if (op !== "=" && !keyOrdered(cmp.type)) continue;
    const local = col - base;
    const list = byCol.get(local) ?? [];
    list.push({ expr: c, op, value, type: cmp.type });
    byCol.set(local, list);
  }
  return byCol;
}

interface Candidate {
  path: AccessPath;
  consumed: Expr[];
  score: number;
}

function prefixCandidate(
  columns: readonly number[],
  byCol: Map<number, KeyConjunct[]>,
  make: (eq: KeyConjunct[], lower: KeyConjunct | undefined, upper: KeyConjunct | undefined) => AccessPath,
  fullEqualityIsPoint: boolean,
): Candidate | undefined {
  const eq: KeyConjunct[] = [];
  for (const c of columns) {
    const e = byCol.get(c)?.find((k) => k.op === "=");
    if (!e) break;
    eq.push(e);
  }
  if (eq.length === columns.length && fullEqualityIsPoint) {
    return { path: make(eq, undefined, undefined), consumed: eq.map((e) => e.expr), score: 100 + eq.length };
  }
  let lower: KeyConjunct | undefined;
  let upper: KeyConjunct | undefined;
  if (eq.length < columns.length) {
    const next = byCol.get(columns[eq.length]!) ?? [];
    lower = next.find((k) => k.op === ">" || k.op === ">=");
    upper = next.find((k) => k.op === "<" || k.op === "<=");
    if (lower && upper && lower.type.kind !== upper.type.kind) upper = undefined;
  }
  if (eq.length === 0 && !lower && !upper) return undefined;
  // Key order is the comparison's order for these types, so the bounds are exact and leave the filter too.
  const consumed = [...eq, ...(lower ? [lower] : []), ...(upper ? [upper] : [])].map((e) => e.expr);
  return { path: make(eq, lower, upper), consumed, score: eq.length * 2 + (lower ? 1 : 0) + (upper ? 1 : 0) };
}

function bound(k: KeyConjunct | undefined): Bound | undefined {
  return k ? { expr: k.value, inclusive: k.op === ">=" || k.op === "<=" } : undefined;
}

/** Chooses how to read `table` given conjuncts over rows where the table's columns start at `base`. */
export function chooseAccess(table: TableInfo, base: number, conjuncts: readonly Expr[]): Candidate {
  const byCol = keyConjuncts(conjuncts, base, table.types.length);
  const pk = table.def.primaryKey;
  const candidates: Candidate[] = [];
  const pkCand = prefixCandidate(
    pk,
    byCol,
    (eq, lower, upper) =>
      lower || upper || eq.length < pk.length
        ? {
            kind: "pk-range",
            eq: eq.map((e) => e.value),
            eqTypes: eq.map((e) => e.type),
            ...(lower ? { lower: bound(lower) } : {}),
            ...(upper ? { upper: bound(upper) } : {}),
            ...(lower || upper ? { boundType: (lower ?? upper)!.type } : {}),
            reverse: false,
          }
        : { kind: "pk-point", keys: eq.map((e) => e.value), keyTypes: eq.map((e) => e.type) },
    true,
  );
  if (pkCand) candidates.push({ ...pkCand, score: pkCand.score + 0.5 });
  for (const index of table.def.indexes) {
    const c = prefixCandidate(
      index.columns,
      byCol,
      (eq, lower, upper) =>
        !lower && !upper && eq.length === index.columns.length
          ? { kind: "index-point", index, keys: eq.map((e) => e.value), keyTypes: eq.map((e) => e.type) }
          : {
              kind: "index-range",
              index,
              eq: eq.map((e) => e.value),
              eqTypes: eq.map((e) => e.type),
              ...(lower ? { lower: bound(lower) } : {}),
              ...(upper ? { upper: bound(upper) } : {}),
              ...(lower || upper ? { boundType: (lower ?? upper)!.type } : {}),
              reverse: false,
            },
      true,
    );
    if (c) candidates.push(index.unique && c.path.kind === "index-point" ? { ...c, score: c.score + 50 } : c);
  }
  // IN (…) on a one-column primary key.
  if (pk.length === 1 && !candidates.some((c) => c.score >= 100)) {
    for (const c of conjuncts) {
      const inl = c.inList;
      if (
        !inl ||
        inl.left.keyColumn !== base + pk[0]! ||
        inl.items.some((i) => i.volatile || i.refs.some((r) => r >= base))
      )
        continue;
      candidates.push({
        path: { kind: "pk-in", items: inl.items, keyType: inl.type },
        consumed: [c],
        score: 90,
      });
      break;
    }
    // pk = ANY(array): the same path, keys taken from the array at run time.
    for (const c of conjuncts) {
      const any = c.anyArray;
      if (
        !any ||
        any.left.keyColumn !== base + pk[0]! ||
        any.array.volatile ||
        any.array.refs.some((r) => r >= base)
      )
        continue;
      candidates.push({
        path: { kind: "pk-in", items: [], keyType: any.type, array: any.array },
        consumed: [c],
        score: 90,
      });
      break;
    }
  }
  candidates.sort((a, b) => b.score - a.score);
  return candidates[0] ?? { path: { kind: "seq", reverse: false }, consumed: [], score: 0 };
}

// ---- building sources -----------------------------------------------------------------------------------------------

interface BuildState {
  pc: PlanCx;
  scope: Scope;
  /** WHERE conjuncts not yet applied. */
  pending: Expr[];
  /** Set when the single-table access path can provide ORDER BY. */
  leaf?: TableAccess;
  /** Every table access built, with the row position of its first column, for the column masks. */
  accesses: { access: TableAccess; base: number }[];
  /** Row positions read by join conditions (ON, USING and WHERE conjuncts pushed into joins). */
  joinRefs: number[];
}

function take(state: BuildState, pred: (e: Expr) => boolean): Expr[] {
  const taken = state.pending.filter(pred);
  state.pending = state.pending.filter((e) => !pred(e));
  return taken;
}

function within(e: Expr, lo: number, hi: number): boolean {
  return e.refs.every((r) => r >= lo && r < hi);
}

function buildTree(tree: FromTree, state: BuildState, pushable: boolean): RowSource {
  switch (tree.kind) {
    case "table": {
      // Only the leftmost leaf (base 0) sees rows in its own layout, so only it takes WHERE pushdown.
      const mine =
        pushable && tree.base === 0
          ? take(state, (e) => within(e, 0, tree.width) && !e.volatile && !e.correlated)
          : [];
      const choice = chooseAccess(tree.table, 0, mine);
      const residual = conjunction(mine.filter((e) => !choice.consumed.includes(e)));
      const access = new TableAccess(tree.table, choice.path, residual, tree.alias);
      state.leaf = access;
      state.accesses.push({ access, base: tree.base });
      return access;
    }
    case "source":
      return tree.source;
    case "join": {
      const left = buildTree(tree.left, state, pushable && (tree.jk === "inner" || tree.jk === "left"));
      state.leaf = undefined;
      const cx = makeCx(state.pc, state.scope, "JOIN conditions");
      const on = tree.quals ? asBool(compileExpr(tree.quals, cx), cx, "JOIN/ON") : undefined;
      if (on?.correlated)
        throw unsupported("correlated subqueries in JOIN … ON", "move the condition to WHERE");
      const end = tree.base + tree.width;
      if (on?.refs.some((r) => r >= end)) {
        throw sqlError(SqlState.UndefinedTable, "invalid reference to FROM-clause entry for table", {
          hint: "There is an entry for the table, but it cannot be referenced from this part of the query.",
        });
      }
      const conds: Expr[] = [];
      for (const u of tree.using) {
        const l = state.scope.rels.flatMap((r) => r.columns).find((c) => c.index === u.left)!;
        const r = state.scope.rels.flatMap((r2) => r2.columns).find((c) => c.index === u.right)!;
        const lref: Expr = {
          type: l.type,
          eval: (row) => row[u.left]!,
          refs: [u.left],
          keyColumn: u.left,
          text: l.name,
        };
        const rref: Expr = {
          type: r.type,
          eval: (row) => row[u.right]!,
          refs: [u.right],
          keyColumn: u.right,
          text: r.name,
        };
        const eq = compareExpr("=", lref, rref, state.pc.params);
        conds.push(eq);
      }
      if (on) conds.push(...splitConjuncts(on));
      if (pushable && tree.jk === "inner")
        conds.push(...take(state, (e) => within(e, 0, end) && !e.volatile && !e.correlated));
      const right = tree.right;
      const rightBase = right.base;
      const leftWidth = rightBase;
      const cond = conjunction(conds);
      for (const c of conds) state.joinRefs.push(...c.refs);
      if (right.kind === "table" && (tree.jk === "inner" || tree.jk === "left")) {
        const choice = chooseAccess(right.table, rightBase, conds);
        if (choice.path.kind !== "seq") {
          const access = new TableAccess(right.table, shiftPath(choice.path), undefined, right.alias);
          state.accesses.push({ access, base: rightBase });
          return new JoinNode(tree.jk, left, { param: access }, cond, leftWidth, right.width);
        }
      }
      let inner: RowSource;
      if (right.kind === "table") {
        const access = new TableAccess(right.table, { kind: "seq", reverse: false }, undefined, right.alias);
        state.accesses.push({ access, base: rightBase });
        inner = access;
      } else inner = buildTree(right, state, false);
      const leftKeys: Expr[] = [];
      const rightKeys: Expr[] = [];
      const keyTypes: SqlType[] = [];
      for (const c of conds) {
        const cmp = c.cmp;
        if (cmp?.op !== "=" || cmp.left.volatile || cmp.right.volatile) continue;
        const lIn = within(cmp.left, 0, leftWidth) && cmp.left.refs.length > 0;
        const rIn = within(cmp.right, rightBase, end) && cmp.right.refs.length > 0;
        const lIn2 = within(cmp.right, 0, leftWidth) && cmp.right.refs.length > 0;
        const rIn2 = within(cmp.left, rightBase, end) && cmp.left.refs.length > 0;
        if (lIn && rIn) {
          leftKeys.push(cmp.left);
          rightKeys.push(cmp.right);
          keyTypes.push(cmp.type);
        } else if (lIn2 && rIn2) {
          leftKeys.push(cmp.right);
          rightKeys.push(cmp.left);
          keyTypes.push(cmp.type);
        }
      }
      return new JoinNode(
        tree.jk,
        left,
        { materialize: inner, leftKeys, rightKeys, keyTypes },
        cond,
        leftWidth,
        right.width,
      );
    }
  }
}

/**
 * Gives each table access the mask of the columns `read` (row positions) covers. None is set while the statement
 * has a correlated subquery, whose references to the outer row are not in any expression's `refs`.
 */
function setColumnMasks(
  accesses: readonly { access: TableAccess; base: number }[],
  read: readonly number[],
  pc: PlanCx,
): void {
  if (accesses.length === 0 || pc.initPlans.some((p) => p.correlated)) return;
  const wanted = new Set(read);
  for (const { access, base } of accesses) {
    const n = access.table.types.length;
    const mask = new Uint8Array(n);
    let all = true;
    for (let i = 0; i < n; i++) {
      if (wanted.has(base + i)) mask[i] = 1;
      else all = false;
    }
    access.mask = all ? undefined : mask;
  }
}

/** Key expressions of a parameterised inner access read the outer row, whose layout they were compiled in. */
function shiftPath(path: AccessPath): AccessPath {
  return path;
}

// ---- SELECT ---------------------------------------------------------------------------------------------------------------

interface TargetItem {
  name: string;
  node: Node | undefined;
  expr: Expr;
}

function expandStar(
  scope: Scope,
  relName: string | undefined,
  cx: CompileCx,
  location: number | undefined,
): TargetItem[] {
  const rels = relName === undefined ? scope.rels : scope.rels.filter((r) => r.name === relName);
  if (relName !== undefined && rels.length === 0) {
    throw sqlError(
      SqlState.UndefinedTable,
      `missing FROM-clause entry for table "${relName}"`,
      location === undefined ? {} : { position: cx.position(location) },
    );
  }
  if (relName === undefined && scope.rels.length === 0) {
    throw sqlError(SqlState.SyntaxError, "SELECT * with no tables specified is not valid");
  }
  const out: TargetItem[] = [];
  for (const rel of rels) {
    for (const c of rel.columns) {
      if (c.hidden) continue;
      const idx = c.index;
      out.push({
        name: c.name,
        node: undefined,
        expr: { type: c.type, eval: (row) => row[idx]!, refs: [idx], keyColumn: idx, text: c.name },
      });
    }
  }
  return out;
}

function starOf(node: Node | undefined): { rel?: string } | undefined {
  if (!node || !("ColumnRef" in node)) return undefined;
  const f = node.ColumnRef.fields ?? [];
  const last = f[f.length - 1];
  if (!last || !("A_Star" in last)) return undefined;
  return f.length === 1 ? {} : { rel: str(f[f.length - 2]) };
}

function intConst(node: Node | undefined): number | undefined {
  if (node && "A_Const" in node && node.A_Const.ival !== undefined) return node.A_Const.ival.ival ?? 0;
  return undefined;
}

export function planSelect(stmt: SelectStmt, pc: PlanCx, parent?: Scope): PlannedQuery {
  if (stmt.withClause) {
    const w = stmt.withClause;
    const ctes = new Map<string, CteDef>(pc.ctes ?? []);
    const here = new Set<string>();
    for (const n of w.ctes ?? []) {
      const c = (n as { CommonTableExpr: import("libpg-query").CommonTableExpr }).CommonTableExpr;
      const name = c.ctename ?? "";
      if (here.has(name)) throw sqlError("42712", `WITH query name "${name}" specified more than once`);
      here.add(name);
      const q = (c.ctequery as { SelectStmt?: SelectStmt } | undefined)?.SelectStmt;
      if (!q) throw unsupported("data-modifying statements in WITH");
      if (c.search_clause || c.cycle_clause) throw unsupported("SEARCH/CYCLE in WITH");
      const colnames = (c.aliascolnames ?? []).map(str);
      if (w.recursive && readsRelation(q, name)) {
        ctes.set(name, { stmt: q, colnames, scope: new Map(ctes), recursive: recursiveParts(q, name) });
        continue;
      }
      // Earlier WITH queries only (no forward references), so two queries can never plan each other in a loop.
      ctes.set(name, { stmt: q, colnames, scope: new Map(ctes) });
    }
    return planSelect({ ...stmt, withClause: undefined }, { ...pc, ctes }, parent);
  }
  if (stmt.intoClause) throw unsupported("SELECT INTO", "use CREATE TABLE, then INSERT INTO … SELECT");
  if (stmt.lockingClause && stmt.lockingClause.length > 0) throw unsupported("SELECT … FOR UPDATE/SHARE");
  if (stmt.windowClause && stmt.windowClause.length > 0) throw unsupported("WINDOW clauses");
  if (stmt.groupDistinct) throw unsupported("GROUP BY DISTINCT");
  if (stmt.op && stmt.op !== "SETOP_NONE") return planSetOp(stmt, pc, parent);
  if (stmt.valuesLists) return finishQuery(planValues(stmt.valuesLists, pc, parent), stmt, pc, parent);

  // FROM
  const fb = new FromBuilder(pc, parent);
  const trees = (stmt.fromClause ?? []).map((n) => fb.item(n));
  const scope = new Scope(fb.rels, parent);
  const cx = makeCx(pc, scope, "WHERE");
  const where = stmt.whereClause ? asBool(compileExpr(stmt.whereClause, cx), cx, "WHERE") : undefined;
  const state: BuildState = { pc, scope, pending: splitConjuncts(where), accesses: [], joinRefs: [] };
  let source: RowSource;
  if (trees.length === 0) source = new SingleRow();
  else {
    // Several FROM items: a left-deep chain of cross joins.
    let tree = trees[0]!;
    for (let i = 1; i < trees.length; i++) {
      const right = trees[i]!;
      if (right.kind === "join")
        throw unsupported("a JOIN after a comma in FROM", "write the whole FROM clause with JOIN … ON");
      tree = {
        kind: "join",
        jk: "inner",
        left: tree,
        right,
        quals: undefined,
        using: [],
        base: 0,
        width: right.base + right.width,
      };
    }
    source = buildTree(tree, state, true);
  }
  const leaf = trees.length === 1 && trees[0]!.kind === "table" ? state.leaf : undefined;
  const residual = conjunction(state.pending);
  if (residual) source = new FilterNode(source, residual, correlatedPlans([residual], pc.initPlans));

  // Grouping
  const grouped =
    (stmt.groupClause?.length ?? 0) > 0 ||
    stmt.havingClause !== undefined ||
    containsAggregate(stmt.targetList) ||
    (stmt.sortClause ?? []).some((s) => containsAggregate(s));
  let outCx: CompileCx = makeCx(pc, scope, "SELECT");
  const targets = stmt.targetList ?? [];
  const targetNodes = targets.map((t) => (t as { ResTarget: ResTarget }).ResTarget);
  let aggNode: AggregateNode | undefined;
  const groupExprs: Expr[] = [];
  const aggs: AggregateSpec[] = [];
  if (grouped) {
    const gcx = makeCx(pc, scope, "GROUP BY");
    const exprSlots: GroupedScope["exprSlots"] = new Map();
    const colSlots = new Map<number, number>();
    for (const g of stmt.groupClause ?? []) {
      let node: Node = g;
      const ord = intConst(g);
      if (ord !== undefined) {
        const t = targetNodes[ord - 1];
        if (!t || starOf(t.val))
          throw sqlError(SqlState.InvalidColumnReference, `GROUP BY position ${ord} is not in select list`);
        node = t.val!;
      } else if ("ColumnRef" in g && (g.ColumnRef.fields ?? []).length === 1) {
        const name = str(g.ColumnRef.fields![0]);
        const isInput = scope.rels.some((r) => r.columns.some((c) => !c.hidden && c.name === name));
        const t = targetNodes.find((x) => x.name === name);
        if (!isInput && t?.val) node = t.val;
      }
      if ("GroupingSet" in node) throw unsupported("GROUPING SETS, ROLLUP and CUBE");
      if (containsAggregate(node))
        throw sqlError(SqlState.GroupingError, "aggregate functions are not allowed in GROUP BY");
      const e = resolveUnknown(compileExpr(node, gcx), pc.params);
      if (e.correlated) throw unsupported("correlated subqueries in GROUP BY");
      const key = astKey(node);
      if (exprSlots.has(key)) continue;
      const slot = groupExprs.length;
      groupExprs.push(e);
      exprSlots.set(key, { slot, type: e.type, text: e.text });
      if ("ColumnRef" in node) {
        const { col } = resolveColumn(gcx, (node.ColumnRef.fields ?? []).map(str), undefined);
        colSlots.set(col.index, slot);
      }
    }
    const inputCx: CompileCx = { ...makeCx(pc, scope, "aggregate arguments"), inAggregate: true };
    const sink: AggregateSink = {
      inputCx,
      add: (spec) => {
        const key = spec.text;
        const existing = aggs.findIndex(
          (a) => a.text === key && a.filter === undefined && spec.filter === undefined,
        );
        if (existing >= 0) return groupExprs.length + existing;
        aggs.push(spec);
        return groupExprs.length + aggs.length - 1;
      },
    };
    const groupedScope: GroupedScope = { exprSlots, colSlots, inputScope: scope };
    outCx = { ...makeCx(pc, scope, "SELECT"), aggregates: sink, grouped: groupedScope };
  }

  // Select list
  const items: TargetItem[] = [];
  for (const t of targetNodes) {
    const star = starOf(t.val);
    if (star) {
      if (grouped) {
        for (const it of expandStar(scope, star.rel, outCx, t.location)) {
          const slot = outCx.grouped!.colSlots.get(it.expr.refs[0]!);
          if (slot === undefined) {
            throw sqlError(
              SqlState.GroupingError,
              `column "${it.name}" must appear in the GROUP BY clause or be used in an aggregate function`,
            );
          }
          items.push({
            name: it.name,
            node: undefined,
            expr: { ...it.expr, eval: (row) => row[slot]!, refs: [slot] },
          });
        }
      } else items.push(...expandStar(scope, star.rel, outCx, t.location));
      continue;
    }
    const e = resolveUnknown(compileExpr(t.val!, outCx), pc.params);
    items.push({ name: t.name ?? figureColname(t.val), node: t.val, expr: e });
  }
  let having: Expr | undefined;
  if (stmt.havingClause) {
    const hcx = { ...outCx, clause: "HAVING" };
    having = asBool(compileExpr(stmt.havingClause, hcx), hcx, "HAVING");
  }
  // ORDER BY (may add aggregates, so before the aggregate node is built)
  const sortBys = (stmt.sortClause ?? []).map((s) => (s as { SortBy: SortBy }).SortBy);
  const distinct = stmt.distinctClause !== undefined;
  const distinctOn = distinct && stmt.distinctClause!.some((n) => Object.keys(n).length > 0);
  const hidden: Expr[] = [];
  const sortKeys: SortKey[] = [];
  const sortText: string[] = [];
  const orderCx = { ...outCx, clause: "ORDER BY" };
  for (const sb of sortBys) {
    if (sb.sortby_dir === "SORTBY_USING") throw unsupported("ORDER BY … USING");
    const index = resolveOrderItem(sb.node!, items, orderCx, pc, hidden, distinct && !distinctOn);
    const desc = sb.sortby_dir === "SORTBY_DESC";
    const nullsFirst =
      sb.sortby_nulls === "SORTBY_NULLS_FIRST"
        ? true
        : sb.sortby_nulls === "SORTBY_NULLS_LAST"
          ? false
          : desc;
    const type = index < items.length ? items[index]!.expr.type : hidden[index - items.length]!.type;
    sortKeys.push({ index, type, desc, nullsFirst });
    const text = index < items.length ? items[index]!.expr.text : hidden[index - items.length]!.text;
    sortText.push(
      `${text}${desc ? " DESC" : ""}${nullsFirst !== desc ? (nullsFirst ? " NULLS FIRST" : " NULLS LAST") : ""}`,
    );
  }
  let distinctKeys: number[] | undefined;
  if (distinctOn) {
    distinctKeys = stmt.distinctClause!.map((n) => resolveOrderItem(n, items, orderCx, pc, hidden, false));
    for (let i = 0; i < distinctKeys.length; i++) {
      if (i < sortKeys.length && sortKeys[i]!.index !== distinctKeys[i]) {
        throw sqlError(
          SqlState.InvalidColumnReference,
          "SELECT DISTINCT ON expressions must match initial ORDER BY expressions",
        );
      }
    }
  }
  if (grouped) {
    // The aggregate keeps values, never a row: its scan may decode every row into the same array.
    const scan = source instanceof FilterNode && source.perRow.length === 0 ? source.child : source;
    if (scan instanceof TableAccess) scan.reuseRows = true;
    aggNode = new AggregateNode(source, groupExprs, aggs);
    source = aggNode;
    if (having) source = new FilterNode(source, having);
  } else if (having) {
    source = new FilterNode(source, having);
  }
  if (having?.correlated) throw unsupported("correlated subqueries in HAVING");

  // ORDER BY from the primary-key scan order: a leading run of primary-key columns, one direction.
  let sortNeeded = sortKeys.length > 0;
  if (
    sortNeeded &&
    leaf &&
    !grouped &&
    !distinct &&
    (leaf.path.kind === "seq" || leaf.path.kind === "pk-range" || leaf.path.kind === "pk-point")
  ) {
    const pk = leaf.table.def.primaryKey;
    const eqCount = leaf.path.kind === "pk-range" ? leaf.path.eq.length : 0;
    const desc = sortKeys[0]!.desc;
    const matches = sortKeys.every((k, i) => {
      const e = k.index < items.length ? items[k.index]!.expr : hidden[k.index - items.length]!;
      const want = pk[eqCount + i];
      return (
        want !== undefined &&
        k.desc === desc &&
        keyOrdered(k.type) &&
        e.keyColumn === want &&
        e.refs.length === 1 &&
        e.refs[0] === want
      );
    });
    if (leaf.path.kind === "pk-point" || matches) {
      sortNeeded = false;
      if (desc && leaf.path.kind !== "pk-point") (leaf.path as { reverse: boolean }).reverse = true;
    }
  }

  // ORDER BY col <op> q LIMIT k from an HNSW index with the operator's class (hnsw-index.ts).
  let vectorScan: HnswScan | undefined;
  if (
    sortNeeded &&
    leaf &&
    source === leaf &&
    !grouped &&
    !distinct &&
    sortKeys.length === 1 &&
    !sortKeys[0]!.desc &&
    !sortKeys[0]!.nullsFirst &&
    stmt.limitCount
  ) {
    const k = sortKeys[0]!;
    const e = k.index < items.length ? items[k.index]!.expr : hidden[k.index - items.length]!;
    const vd = e.vectorDistance;
    const ix = vd ? matchHnsw(leaf.table, vd) : undefined;
    if (vd && ix) {
      vectorScan = new HnswScan(leaf, ix, vd, where, sortText[0]!);
      source = vectorScan;
      sortNeeded = false;
    }
  }

  const width = items.length;
  // An HNSW scan yields its rows in the order: the hidden sort key (the distance) would be computed per row and
  // never read (the only hidden expression is that key: one sort key, no DISTINCT).
  const projected = vectorScan ? items.map((i) => i.expr) : [...items.map((i) => i.expr), ...hidden];
  // Row positions the query reads above the scans: unread columns need not be decoded.
  const read = [...(where?.refs ?? []), ...state.joinRefs];
  if (grouped) {
    for (const g of groupExprs) read.push(...g.refs);
    for (const a of aggs) {
      for (const e of a.args) read.push(...e.refs);
      if (a.filter) read.push(...a.filter.refs);
    }
  } else for (const e of projected) read.push(...e.refs);
  if (!vectorScan) setColumnMasks(state.accesses, read, pc);
  else if (!pc.initPlans.some((p) => p.correlated)) {
    // The scan's hits decode only what is read; its exact fallbacks read the table access, which also needs
    // the ordered column.
    vectorScan.readColumns(read);
    setColumnMasks(state.accesses, [...read, vectorScan.order.column], pc);
  }
  source = new ProjectNode(source, projected, correlatedPlans(projected, pc.initPlans));
  if (sortNeeded) source = new SortNode(source, sortKeys, sortText);
  if (distinct)
    source = new DistinctNode(
      source,
      distinctKeys
        ? distinctKeys.map((i) => (i < width ? items[i]!.expr.type : hidden[i - width]!.type))
        : items.map((i) => i.expr.type),
      distinctKeys,
    );
  source = applyLimit(source, stmt, pc);
  if (vectorScan && source instanceof LimitNode) {
    vectorScan.limit = source.limit;
    vectorScan.offset = source.offset;
  }
  if (hidden.length > 0 && !vectorScan) source = new TrimNode(source, width);
  return { source, columns: items.map((i) => ({ name: i.name, type: i.expr.type })) };
}

function resolveOrderItem(
  node: Node,
  items: TargetItem[],
  cx: CompileCx,
  pc: PlanCx,
  hidden: Expr[],
  distinct: boolean,
): number {
  const ord = intConst(node);
  if (ord !== undefined) {
    if (ord < 1 || ord > items.length)
      throw sqlError(SqlState.InvalidColumnReference, `ORDER BY position ${ord} is not in select list`);
    return ord - 1;
  }
  if ("ColumnRef" in node && (node.ColumnRef.fields ?? []).length === 1) {
    const name = str(node.ColumnRef.fields![0]);
    const hits = items.map((it, i) => (it.name === name ? i : -1)).filter((i) => i >= 0);
    if (hits.length > 1) {
      const first = items[hits[0]!]!.expr.text;
      if (hits.some((h) => items[h]!.expr.text !== first))
        throw sqlError(SqlState.AmbiguousColumn, `ORDER BY "${name}" is ambiguous`);
    }
    if (hits.length > 0) return hits[0]!;
  }
  const key = astKey(node);
  const same = items.findIndex((it) => it.node !== undefined && astKey(it.node) === key);
  if (same >= 0) return same;
  const e = resolveUnknown(compileExpr(node, cx), pc.params);
  const byText = items.findIndex(
    (it) => it.expr.text === e.text && it.expr.refs.join() === e.refs.join() && e.refs.length > 0,
  );
  if (byText >= 0) return byText;
  if (distinct)
    throw sqlError(
      SqlState.InvalidColumnReference,
      "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
    );
  hidden.push(e);
  return items.length + hidden.length - 1;
}

function applyLimit(source: RowSource, stmt: SelectStmt, pc: PlanCx): RowSource {
  if (!stmt.limitCount && !stmt.limitOffset) return source;
  if (stmt.limitOption === "LIMIT_OPTION_WITH_TIES") throw unsupported("FETCH … WITH TIES");
  const cx = makeCx(pc, new Scope([]), "LIMIT");
  const compile = (n: Node | undefined, what: string) => {
    if (!n) return undefined;
    const e = compileExpr(n, { ...cx, clause: what });
    if (e.refs.length > 0)
      throw sqlError(SqlState.InvalidColumnReference, `argument of ${what} must not contain variables`);
    return coerce(e, T.int8, "assignment", pc.params, undefined);
  };
  return new LimitNode(source, compile(stmt.limitCount, "LIMIT"), compile(stmt.limitOffset, "OFFSET"));
}

/** ORDER BY / LIMIT over an already-planned query (VALUES and set operations): output columns only. */
function finishQuery(q: PlannedQuery, stmt: SelectStmt, pc: PlanCx, parent: Scope | undefined): PlannedQuery {
  let source = q.source;
  const sortBys = (stmt.sortClause ?? []).map((s) => (s as { SortBy: SortBy }).SortBy);
  if (sortBys.length > 0) {
    const rel: ScopeRel = {
      name: "*SELECT*",
      columns: q.columns.map((c, i) => ({ name: c.name, type: c.type, index: i })),
    };
    const cx = makeCx(pc, new Scope([rel], parent), "ORDER BY");
    const keys: SortKey[] = [];
    const text: string[] = [];
    for (const sb of sortBys) {
      const ord = intConst(sb.node);
      let index: number;
      if (ord !== undefined) {
        if (ord < 1 || ord > q.columns.length)
          throw sqlError(SqlState.InvalidColumnReference, `ORDER BY position ${ord} is not in select list`);
        index = ord - 1;
      } else {
        const e = compileExpr(sb.node!, cx);
        if (e.keyColumn === undefined || e.refs.length !== 1) {
          throw unsupported(
            "ORDER BY expressions on a UNION/INTERSECT/EXCEPT or VALUES result",
            "order by output column names or positions",
          );
        }
        index = e.keyColumn;
      }
      const desc = sb.sortby_dir === "SORTBY_DESC";
      const nullsFirst =
        sb.sortby_nulls === "SORTBY_NULLS_FIRST"
          ? true
          : sb.sortby_nulls === "SORTBY_NULLS_LAST"
            ? false
            : desc;
      keys.push({ index, type: q.columns[index]!.type, desc, nullsFirst });
      text.push(q.columns[index]!.name + (desc ? " DESC" : ""));
    }
    source = new SortNode(source, keys, text);
  }
  source = applyLimit(source, stmt, pc);
  return { source, columns: q.columns };
}

export function planValues(
  lists: Node[],
  pc: PlanCx,
  parent: Scope | undefined,
  targetTypes?: SqlType[],
): PlannedQuery {
  const cx = makeCx(pc, new Scope([], parent), "VALUES");
  const rows = lists.map((l) =>
    ((l as { List?: { items?: Node[] } }).List?.items ?? []).map((n) => {
      if ("SetToDefault" in n) throw sqlError(SqlState.SyntaxError, "DEFAULT is not allowed in this context");
      return compileExpr(n, cx);
    }),
  );
  const width = rows[0]?.length ?? 0;
  for (const r of rows) {
    if (r.length !== width) throw sqlError(SqlState.SyntaxError, "VALUES lists must all be the same length");
  }
  const types: SqlType[] = [];
  for (let c = 0; c < width; c++)
    types.push(
      targetTypes?.[c] ??
        unifyTypes(
          rows.map((r) => r[c]!),
          "VALUES",
        ),
    );
  const exprs = rows.map((r) =>
    r.map((e, c) => coerce(e, types[c]!, targetTypes ? "assignment" : "implicit", pc.params)),
  );
  return {
    source: new ValuesSource(exprs),
    columns: types.map((t, i) => ({ name: `column${i + 1}`, type: t })),
  };
}

function planSetOp(stmt: SelectStmt, pc: PlanCx, parent: Scope | undefined): PlannedQuery {
  const op = stmt.op === "SETOP_UNION" ? "union" : stmt.op === "SETOP_INTERSECT" ? "intersect" : "except";
  const left = planSelect(stmt.larg!, pc, parent);
  const right = planSelect(stmt.rarg!, pc, parent);
  const name = op.toUpperCase();
  if (left.columns.length !== right.columns.length) {
    throw sqlError(SqlState.SyntaxError, `each ${name} query must have the same number of columns`);
  }
  const types = left.columns.map((c, i) => unifyTypes([c, right.columns[i]!], name));
  const cast = (q: PlannedQuery): RowSource => {
    if (q.columns.every((c, i) => c.type.kind === types[i]!.kind)) return q.source;
    const exprs = q.columns.map((c, i) => {
      const ref: Expr = { type: c.type, eval: (row) => row[i]!, refs: [i], text: c.name };
      return coerce(ref, types[i]!, "implicit", pc.params);
    });
    return new ProjectNode(q.source, exprs);
  };
  const source = new SetOpNode(op, stmt.all ?? false, cast(left), cast(right), types);
  return finishQuery(
    { source, columns: left.columns.map((c, i) => ({ name: c.name, type: types[i]! })) },
    stmt,
    pc,
    parent,
  );
}

export type { IndexDef };
