/**
 * The binder: PostgreSQL AST expressions → typed, compiled `Expr`s over a scope of columns. Name resolution,
 * operator and function resolution, aggregates (through an `AggregateSink`) and uncorrelated subqueries (through a
 * `SubqueryHost`, which runs them once before the main plan) all happen here, once per plan.
 */

import type {
  A_Const,
  A_Expr,
  BoolExpr,
  BooleanTest,
  CaseExpr,
  ColumnRef,
  FuncCall,
  MinMaxExpr,
  Node,
  NullTest,
  ParamRef,
  SelectStmt,
  SQLValueFunction,
  SubLink,
  TypeCast,
  TypeName,
} from "libpg-query";
import { AGGREGATES, type AggregateSpec, resolveAggregate } from "./aggregates.js";
import { anyAllExpr, arrayBinaryOp, arrayConstructor, subscriptExpr } from "./array-ops.js";
import { SqlArray } from "./arrays.js";
import { SqlState, sqlError, unsupported } from "./errors.js";
import {
  type CmpOp,
  coerce,
  columnExpr,
  constExpr,
  derivedExpr,
  type Expr,
  hashKeyFn,
  type ParamTypes,
  paramExpr,
  unifyTypes,
} from "./expr.js";
import { noFunction, scalarFunctions } from "./functions.js";
import {
  arithmeticExpr,
  compareExpr,
  concatExpr,
  distinctExpr,
  jsonbOpExpr,
  likeExpr,
  negateExpr,
  regexExpr,
  unifyOperands,
} from "./operators.js";
import { DATABASE_NAME } from "./system-functions.js";
import {
  arrayOf,
  bpcharType,
  castFunction,
  category,
  comparator,
  equality,
  numericType,
  type SqlType,
  T,
  typeName,
  type Value,
  varcharType,
  vectorType,
} from "./types.js";
import { vectorOpExpr } from "./vector-ops.js";
import { vectorTypmod } from "./vector-type.js";

// ---- scopes ---------------------------------------------------------------------------------------------------------

export interface ScopeColumn {
  name: string;
  type: SqlType;
  /** Position in the flat row. */
  index: number;
  hidden?: boolean;
}

export interface ScopeRel {
  /** The alias, or the table name. */
  name: string;
  columns: ScopeColumn[];
}

export class Scope {
  constructor(
    readonly rels: ScopeRel[],
    /** The enclosing query's scope, for a subquery (only to report correlation as unsupported). */
    readonly parent?: Scope,
  ) {}

  get width(): number {
    let w = 0;
    for (const r of this.rels) for (const c of r.columns) w = Math.max(w, c.index + 1);
    return w;
  }
}

/** A subquery planned by the host and run once before the main plan; its result lands in env.sub[id]. */
export type SubqueryMode =
  | { kind: "exists" }
  | { kind: "scalar" }
  | {
      kind: "set";
      convert: ((v: Exclude<Value, null>, now: number) => Value) | undefined;
      key: (v: Exclude<Value, null>) => unknown;
    }
  | { kind: "rows"; convert: ((v: Exclude<Value, null>, now: number) => Value) | undefined };

export interface SubqueryHost {
  initPlan(
    select: SelectStmt,
    cx: CompileCx,
    mode: (types: SqlType[]) => SubqueryMode,
  ): { id: number; types: SqlType[]; names: string[]; correlated: boolean };
}

export interface AggregateSink {
  add(spec: AggregateSpec): number;
  /** How aggregate arguments are compiled: against the input rows, aggregates not allowed. */
  inputCx: CompileCx;
}

export interface GroupedScope {
  /** Grouping expressions by AST key → slot in the grouped row. */
  exprSlots: Map<string, { slot: number; type: SqlType; text: string }>;
  /** Input column position → slot, for grouping expressions that are plain columns. */
  colSlots: Map<number, number>;
  /** Scope of the input rows, to resolve column references. */
  inputScope: Scope;
}

export interface CompileCx {
  scope: Scope;
  params: ParamTypes;
  /** Maps a parser offset to a 1-based position in the caller's SQL. */
  position: (offset: number) => number;
  /** The clause being compiled, for "… are not allowed in WHERE" messages. */
  clause: string;
  aggregates?: AggregateSink;
  /** Set inside an aggregate's arguments. */
  inAggregate?: boolean;
  grouped?: GroupedScope;
  subqueries?: SubqueryHost;
  /**
   * Set while compiling a subquery: its enclosing query's scope. A column found there (and not in the subquery)
   * becomes a correlated reference, read from `env.outer`, and `used` is set.
   */
  outer?: { scope: Scope; used: boolean };
}

export function astKey(node: unknown): string {
  return JSON.stringify(node, (k, v: unknown) => (k === "location" ? undefined : v));
}

function tagOf(node: Node): string {
  for (const k in node) return k;
  return "";
}

function str(n: Node | undefined): string {
  if (n && "String" in n) return n.String.sval ?? "";
  if (n && "A_Star" in n) return "*";
  return "";
}

function pos(cx: CompileCx, location: number | undefined): { position?: number } {
  return location === undefined || location < 0 ? {} : { position: cx.position(location) };
}

// ---- type names ---------------------------------------------------------------------------------------------------

function typmodInts(tn: TypeName): number[] {
  return (tn.typmods ?? []).map((m) => {
    if ("A_Const" in m && m.A_Const.ival !== undefined) return m.A_Const.ival.ival ?? 0;
    throw sqlError(SqlState.SyntaxError, "type modifiers must be simple constants or identifiers");
  });
}

/** Resolves a TypeName; `serial` kinds are reported separately by CREATE TABLE. */
export function resolveTypeName(tn: TypeName): {
  type: SqlType;
  serial?: "smallserial" | "serial" | "bigserial";
} {
  if (tn.arrayBounds && tn.arrayBounds.length > 0) {
    // int[] and int[][] are one type in PostgreSQL (dimensions are not enforced); Twill holds one dimension.
    const { type, serial } = resolveTypeName({ ...tn, arrayBounds: [] });
    if (serial) throw sqlError(SqlState.UndefinedObject, `type "${serial}[]" does not exist`);
    return { type: arrayOf(type) };
  }
  const names = (tn.names ?? []).map(str);
  const name = names[names.length - 1]!.toLowerCase();
  if (names.length > 1 && names[0] !== "pg_catalog" && names[0] !== "public") {
    throw sqlError(SqlState.UndefinedObject, `type "${names.join(".")}" does not exist`);
  }
  if (tn.setof) throw unsupported("SETOF types");
  const mods = typmodInts(tn);
  const noMods = (t: SqlType) => {
    if (mods.length > 0)
      throw sqlError(SqlState.SyntaxError, `type modifier is not allowed for type "${name}"`);
    return { type: t };
  };
  switch (name) {
    case "int2":
    case "smallint":
      return noMods(T.int2);
    case "int4":
    case "int":
    case "integer":
      return noMods(T.int4);
    case "int8":
    case "bigint":
      return noMods(T.int8);
    case "float4":
    case "real":
      return noMods(T.float4);
    case "float8":
      return noMods(T.float8);
    case "numeric":
    case "decimal": {
      if (mods.length === 0) return { type: T.numeric };
      const p = mods[0]!;
      const s = mods[1] ?? 0;
      if (p < 1 || p > 1000)
        throw sqlError(SqlState.InvalidParameterValue, `NUMERIC precision ${p} must be between 1 and 1000`);
      if (s < 0 || s > p)
        throw sqlError(
          SqlState.InvalidParameterValue,
          `NUMERIC scale ${s} must be between 0 and precision ${p}`,
        );
      return { type: numericType(p, s) };
    }
    case "text":
      return noMods(T.text);
    case "varchar":
      if (mods.length === 0) return { type: T.varchar };
      if (mods[0]! < 1)
        throw sqlError(SqlState.InvalidParameterValue, "length for type varchar must be at least 1");
      return { type: varcharType(mods[0]!) };
    case "bpchar":
    case "char":
    case "character":
      if (mods.length === 0)
        return {
          type:
            names[0] === "pg_catalog" && tn.typemod === -1 && name === "bpchar" ? bpcharType(1) : T.bpchar,
        };
      if (mods[0]! < 1)
        throw sqlError(SqlState.InvalidParameterValue, "length for type char must be at least 1");
      return { type: bpcharType(mods[0]!) };
    case "bool":
    case "boolean":
      return noMods(T.bool);
    case "bytea":
      return noMods(T.bytea);
    case "jsonb":
      return noMods(T.jsonb);
    case "timestamptz":
      return { type: T.timestamptz };
    case "timestamp":
      return { type: T.timestamp };
    case "date":
      return noMods(T.date);
    case "uuid":
      return noMods(T.uuid);
    case "serial":
    case "serial4":
      return { type: T.int4, serial: "serial" };
    case "bigserial":
    case "serial8":
      return { type: T.int8, serial: "bigserial" };
    case "smallserial":
    case "serial2":
      return { type: T.int2, serial: "smallserial" };
    case "json":
      throw unsupported("type json", "use jsonb");
    case "interval":
    case "time":
    case "timetz":
    case "money":
    case "inet":
    case "cidr":
    case "xml":
    case "bit":
    case "varbit":
      throw unsupported(`type ${name}`);
    case "vector":
      if (mods.length > 1) throw sqlError(SqlState.InvalidParameterValue, "invalid type modifier");
      return { type: mods.length === 0 ? T.vector : vectorType(vectorTypmod(mods[0]!)) };
    default:
      throw sqlError(SqlState.UndefinedObject, `type "${name}" does not exist`);
  }
}

// ---- column references ----------------------------------------------------------------------------------------------

interface Resolved {
  rel: ScopeRel;
  col: ScopeColumn;
  /** Found in the enclosing query (a correlated reference). */
  outer?: boolean;
}

function findColumn(scope: Scope, relName: string | undefined, colName: string): Resolved[] {
  const out: Resolved[] = [];
  for (const rel of scope.rels) {
    if (relName !== undefined && rel.name !== relName) continue;
    for (const col of rel.columns) if (!col.hidden && col.name === colName) out.push({ rel, col });
  }
  return out;
}

export function resolveColumn(
  cx: CompileCx,
  fields: string[],
  location: number | undefined,
  scope = cx.scope,
): Resolved {
  let relName: string | undefined;
  let colName: string;
  if (fields.length === 1) colName = fields[0]!;
  else if (fields.length === 2) {
    relName = fields[0]!;
    colName = fields[1]!;
  } else if (fields.length === 3 && (fields[0] === "public" || fields[0] === "pg_catalog")) {
    relName = fields[1]!;
    colName = fields[2]!;
  } else {
    throw unsupported(`column reference ${fields.join(".")}`);
  }
  const local = relName === undefined || scope.rels.some((r) => r.name === relName);
  const hits = local ? findColumn(scope, relName, colName) : [];
  if (hits.length === 1) return hits[0]!;
  if (hits.length > 1) {
    throw sqlError(SqlState.AmbiguousColumn, `column reference "${colName}" is ambiguous`, pos(cx, location));
  }
  // Not in this query: the enclosing query (one level) makes it a correlated reference.
  const parent = scope.parent;
  if (parent && (relName === undefined || !local)) {
    const outerHits = findColumn(parent, relName, colName);
    if (outerHits.length > 1) {
      throw sqlError(
        SqlState.AmbiguousColumn,
        `column reference "${colName}" is ambiguous`,
        pos(cx, location),
      );
    }
    if (outerHits.length === 1) {
      if (cx.outer && cx.outer.scope === parent) {
        cx.outer.used = true;
        return { ...outerHits[0]!, outer: true };
      }
      throw unsupported(`an outer reference to ${fields.join(".")} in this part of a subquery`);
    }
    for (let p = parent.parent; p; p = p.parent) {
      if (findColumn(p, relName, colName).length > 0) {
        throw unsupported(
          `a subquery referring to ${fields.join(".")} two or more query levels up`,
          "only references to the directly enclosing query are supported",
        );
      }
    }
  }
  if (!local) {
    throw sqlError(
      SqlState.UndefinedTable,
      `missing FROM-clause entry for table "${relName}"`,
      pos(cx, location),
    );
  }
  const shown = relName === undefined ? `"${colName}"` : `${relName}.${colName}`;
  throw sqlError(SqlState.UndefinedColumn, `column ${shown} does not exist`, pos(cx, location));
}

function outerColumn(col: ScopeColumn, text: string): Expr {
  const idx = col.index;
  return { type: col.type, eval: (_row, env) => env.outer![idx]!, refs: [], text, outerRef: true };
}

function compileColumnRef(ref: ColumnRef, cx: CompileCx): Expr {
  const fields = (ref.fields ?? []).map(str);
  if (fields.includes("*")) {
    throw sqlError(
      SqlState.SyntaxError,
      'row expansion via "*" is not supported here',
      pos(cx, ref.location),
    );
  }
  if (cx.grouped) {
    const { rel, col, outer } = resolveColumn(cx, fields, ref.location, cx.grouped.inputScope);
    if (outer) return outerColumn(col, fields.join("."));
    const slot = cx.grouped.colSlots.get(col.index);
    if (slot === undefined) {
      if (cx.inAggregate) return columnExpr(col.index, col.type, `${rel.name}.${col.name}`);
      throw sqlError(
        SqlState.GroupingError,
        `column "${rel.name}.${col.name}" must appear in the GROUP BY clause or be used in an aggregate function`,
        pos(cx, ref.location),
      );
    }
    return columnExpr(slot, col.type, col.name);
  }
  const { col, outer } = resolveColumn(cx, fields, ref.location);
  if (outer) return outerColumn(col, fields.join("."));
  return columnExpr(col.index, col.type, fields.join("."));
}

// ---- constants ----------------------------------------------------------------------------------------------------------

function compileConst(c: A_Const): Expr {
  if (c.isnull)
    return {
      type: T.unknown,
      eval: () => null,
      refs: [],
      isConst: true,
      value: null,
      unknownLiteral: null,
      text: "NULL",
    };
  if (c.ival !== undefined) {
    const v = c.ival.ival ?? 0;
    return constExpr(T.int4, v, String(v));
  }
  if (c.fval !== undefined) {
    const text = c.fval.fval ?? "0";
    if (/^-?\d+$/.test(text)) {
      const b = BigInt(text);
      // As PostgreSQL's make_const: an integer the lexer could not hold (as -2147483648, negated after lexing)
      // is int4 when it fits, else int8 when it fits, else numeric.
      if (b >= -(2n ** 31n) && b < 2n ** 31n) return constExpr(T.int4, Number(b), text);
      if (b >= -(2n ** 63n) && b < 2n ** 63n) {
        const v = b >= -9007199254740991n && b <= 9007199254740991n ? Number(b) : b;
        return constExpr(T.int8, v, text);
      }
    }
    return constExpr(T.numeric, castFunction(T.unknown, T.numeric, "explicit")!(text, 0), text);
  }
  if (c.boolval !== undefined) {
    const v = c.boolval.boolval ?? false;
    return constExpr(T.bool, v, v ? "true" : "false");
  }
  if (c.sval !== undefined) {
    const text = c.sval.sval ?? "";
    return {
      type: T.unknown,
      eval: () => text,
      refs: [],
      isConst: true,
      value: text,
      unknownLiteral: text,
      text: `'${text.replaceAll("'", "''")}'`,
    };
  }
  if (c.bsval !== undefined) throw unsupported("bit string literals");
  return constExpr(T.unknown, null, "NULL");
}

// ---- boolean logic ------------------------------------------------------------------------------------------------------

export function asBool(e: Expr, cx: CompileCx, what: string): Expr {
  if (e.type.kind === "bool") return e;
  if (e.type.kind === "unknown") return coerce(e, T.bool, "implicit", cx.params);
  throw sqlError(
    SqlState.DatatypeMismatch,
    `argument of ${what} must be type boolean, not type ${typeName(e.type)}`,
  );
}

function andExpr(parts: Expr[]): Expr {
  const conjuncts = parts.flatMap((p) => p.conjuncts ?? [p]);
  const evals = conjuncts.map((p) => p.eval);
  const text = `(${conjuncts.map((p) => p.text).join(" AND ")})`;
  if (evals.length === 2) {
    const [a, b] = evals as [Expr["eval"], Expr["eval"]];
    return derivedExpr(
      T.bool,
      (row, env) => {
        const x = a(row, env);
        if (x === false) return false;
        const y = b(row, env);
        if (y === false) return false;
        return x === null || y === null ? null : true;
      },
      conjuncts,
      text,
      { conjuncts },
    );
  }
  return derivedExpr(
    T.bool,
    (row, env) => {
      let sawNull = false;
      for (let i = 0; i < evals.length; i++) {
        const v = evals[i]!(row, env);
        if (v === false) return false;
        if (v === null) sawNull = true;
      }
      return sawNull ? null : true;
    },
    conjuncts,
    text,
    { conjuncts },
  );
}

function orExpr(parts: Expr[]): Expr {
  const evals = parts.map((p) => p.eval);
  return derivedExpr(
    T.bool,
    (row, env) => {
      let sawNull = false;
      for (let i = 0; i < evals.length; i++) {
        const v = evals[i]!(row, env);
        if (v === true) return true;
        if (v === null) sawNull = true;
      }
      return sawNull ? null : false;
    },
    parts,
    `(${parts.map((p) => p.text).join(" OR ")})`,
  );
}

function notExpr(e: Expr): Expr {
  const f = e.eval;
  return derivedExpr(
    T.bool,
    (row, env) => {
      const v = f(row, env);
      return v === null ? null : !v;
    },
    [e],
    `(NOT ${e.text})`,
  );
}

export function conjunction(parts: Expr[]): Expr | undefined {
  if (parts.length === 0) return undefined;
  if (parts.length === 1) return parts[0];
  return andExpr(parts);
}

// ---- the compiler ---------------------------------------------------------------------------------------------------------

export function compileExpr(node: Node, cx: CompileCx): Expr {
  if (cx.grouped && !cx.inAggregate) {
    const hit = cx.grouped.exprSlots.get(astKey(node));
    if (hit) {
      const slot = hit.slot;
      return { type: hit.type, eval: (row) => row[slot]!, refs: [slot], text: hit.text };
    }
  }
  const tag = tagOf(node);
  switch (tag) {
    case "A_Const":
      return compileConst((node as { A_Const: A_Const }).A_Const);
    case "ColumnRef":
      return compileColumnRef((node as { ColumnRef: ColumnRef }).ColumnRef, cx);
    case "ParamRef": {
      const n = (node as { ParamRef: ParamRef }).ParamRef.number ?? 0;
      if (n < 1 || n > 65535) throw sqlError(SqlState.UndefinedObject, `there is no parameter $${n}`);
      cx.params.maxRef = Math.max(cx.params.maxRef, n);
      cx.params.referenced.add(n);
      const known = cx.params.get(n);
      return known ? paramExpr(n, known) : { ...paramExpr(n, T.unknown) };
    }
    case "TypeCast": {
      const tc = (node as { TypeCast: TypeCast }).TypeCast;
      const { type, serial } = resolveTypeName(tc.typeName!);
      if (serial) throw sqlError(SqlState.UndefinedObject, `type "${serial}" does not exist`);
      if (type.kind === "array" && tc.arg && "A_ArrayExpr" in tc.arg) {
        // ARRAY[…]::t[] types its elements as t (PostgreSQL pushes the cast down), so ARRAY[$1, 0]::numeric[]
        // makes $1 numeric, not the int4 of its neighbour.
        const elements = ((tc.arg as { A_ArrayExpr: { elements?: Node[] } }).A_ArrayExpr.elements ?? []).map(
          (n) => coerce(compileExpr(n, cx), type.elem!, "explicit", cx.params),
        );
        return coerce(arrayConstructor(elements, cx.params), type, "explicit", cx.params);
      }
      const arg = compileExpr(tc.arg!, cx);
      return coerce(arg, type, "explicit", cx.params);
    }
    case "A_Expr":
      return compileAExpr((node as { A_Expr: A_Expr }).A_Expr, cx);
    case "BoolExpr": {
      const b = (node as { BoolExpr: BoolExpr }).BoolExpr;
      const what = b.boolop === "AND_EXPR" ? "AND" : b.boolop === "OR_EXPR" ? "OR" : "NOT";
      const args = (b.args ?? []).map((a) => asBool(compileExpr(a, cx), cx, what));
      if (b.boolop === "AND_EXPR") return andExpr(args);
      if (b.boolop === "OR_EXPR") return orExpr(args);
      return notExpr(args[0]!);
    }
    case "NullTest": {
      const nt = (node as { NullTest: NullTest }).NullTest;
      const arg = compileExpr(nt.arg!, cx);
      const f = arg.eval;
      const isNull = nt.nulltesttype === "IS_NULL";
      return derivedExpr(
        T.bool,
        (row, env) => (f(row, env) === null) === isNull,
        [arg],
        `(${arg.text} IS ${isNull ? "" : "NOT "}NULL)`,
      );
    }
    case "BooleanTest": {
      const bt = (node as { BooleanTest: BooleanTest }).BooleanTest;
      const arg = asBool(compileExpr(bt.arg!, cx), cx, "IS TRUE");
      const f = arg.eval;
      const test: Record<string, (v: Value) => boolean> = {
        IS_TRUE: (v) => v === true,
        IS_NOT_TRUE: (v) => v !== true,
        IS_FALSE: (v) => v === false,
        IS_NOT_FALSE: (v) => v !== false,
        IS_UNKNOWN: (v) => v === null,
        IS_NOT_UNKNOWN: (v) => v !== null,
      };
      const t = test[bt.booltesttype ?? "IS_TRUE"]!;
      return derivedExpr(
        T.bool,
        (row, env) => t(f(row, env)),
        [arg],
        `(${arg.text} ${(bt.booltesttype ?? "").replaceAll("_", " ")})`,
      );
    }
    case "CaseExpr":
      return compileCase((node as { CaseExpr: CaseExpr }).CaseExpr, cx);
    case "CoalesceExpr": {
      const args = ((node as { CoalesceExpr: { args?: Node[] } }).CoalesceExpr.args ?? []).map((a) =>
        compileExpr(a, cx),
      );
      const t = unifyTypes(args, "COALESCE");
      const cs = args.map((a) => coerce(a, t, "implicit", cx.params));
      const evals = cs.map((a) => a.eval);
      return derivedExpr(
        t,
        (row, env) => {
          for (let i = 0; i < evals.length; i++) {
            const v = evals[i]!(row, env);
            if (v !== null) return v;
          }
          return null;
        },
        cs,
        `COALESCE(${cs.map((a) => a.text).join(", ")})`,
      );
    }
    case "MinMaxExpr": {
      const mm = (node as { MinMaxExpr: MinMaxExpr }).MinMaxExpr;
      const args = (mm.args ?? []).map((a) => compileExpr(a, cx));
      const t = unifyTypes(args, mm.op === "IS_GREATEST" ? "GREATEST" : "LEAST");
      const cs = args.map((a) => coerce(a, t, "implicit", cx.params));
      const evals = cs.map((a) => a.eval);
      const cmp = comparator(t);
      const greatest = mm.op === "IS_GREATEST";
      return derivedExpr(
        t,
        (row, env) => {
          let best: Value = null;
          for (let i = 0; i < evals.length; i++) {
            const v = evals[i]!(row, env);
            if (v === null) continue;
            if (best === null || (greatest ? cmp(v, best) > 0 : cmp(v, best) < 0)) best = v;
          }
          return best;
        },
        cs,
        `${greatest ? "GREATEST" : "LEAST"}(${cs.map((a) => a.text).join(", ")})`,
      );
    }
    case "FuncCall":
      return compileFuncCall((node as { FuncCall: FuncCall }).FuncCall, cx);
    case "SubLink":
      return compileSubLink((node as { SubLink: SubLink }).SubLink, cx);
    case "SQLValueFunction": {
      const op = (node as { SQLValueFunction: SQLValueFunction }).SQLValueFunction.op;
      switch (op) {
        case "SVFOP_CURRENT_TIMESTAMP":
        case "SVFOP_CURRENT_TIMESTAMP_N":
          return { type: T.timestamptz, eval: (_r, env) => env.now, refs: [], text: "CURRENT_TIMESTAMP" };
        case "SVFOP_LOCALTIMESTAMP":
        case "SVFOP_LOCALTIMESTAMP_N":
          return { type: T.timestamp, eval: (_r, env) => env.now, refs: [], text: "LOCALTIMESTAMP" };
        case "SVFOP_CURRENT_DATE":
          return {
            type: T.date,
            eval: (_r, env) => Math.floor(env.now / 86_400_000_000),
            refs: [],
            text: "CURRENT_DATE",
          };
        case "SVFOP_CURRENT_SCHEMA":
          return constExpr(T.text, "public", "CURRENT_SCHEMA");
        case "SVFOP_CURRENT_CATALOG":
          return constExpr(T.text, DATABASE_NAME, "CURRENT_CATALOG");
        default:
          throw unsupported(`${(op ?? "").replace("SVFOP_", "")}`);
      }
    }
    case "A_ArrayExpr": {
      const elements = ((node as { A_ArrayExpr: { elements?: Node[] } }).A_ArrayExpr.elements ?? []).map(
        (n) => compileExpr(n, cx),
      );
      return arrayConstructor(elements, cx.params);
    }
    case "A_Indirection": {
      const ind = (node as { A_Indirection: { arg?: Node; indirection?: Node[] } }).A_Indirection;
      const base = compileExpr(ind.arg!, cx);
      const subs = (ind.indirection ?? []).map((n) => {
        if (!("A_Indices" in n)) throw unsupported("field selection on a value");
        const ix = (n as { A_Indices: { is_slice?: boolean; lidx?: Node; uidx?: Node } }).A_Indices;
        const c = (x: Node | undefined) => (x ? compileExpr(x, cx) : undefined);
        return ix.is_slice
          ? {
              slice: true,
              ...(ix.lidx ? { lower: c(ix.lidx)! } : {}),
              ...(ix.uidx ? { upper: c(ix.uidx)! } : {}),
            }
          : { slice: false, index: c(ix.uidx)! };
      });
      return subscriptExpr(base, subs, cx.params);
    }
    case "RowExpr":
      throw unsupported("row constructors");
    case "CollateClause":
      throw unsupported('COLLATE (Twill DB compares text by code point, like the "C" collation)');
    case "GroupingFunc":
      throw unsupported("GROUPING()");
    case "A_Star":
      throw sqlError(SqlState.SyntaxError, '"*" is not allowed here');
    default:
      throw unsupported(`expression ${tag}`);
  }
}

function opName(names: Node[] | undefined): string {
  const parts = (names ?? []).map(str);
  return parts[parts.length - 1] ?? "";
}

const CMP_OPS = new Set(["=", "<>", "!=", "<", "<=", ">", ">="]);

function compileAExpr(e: A_Expr, cx: CompileCx): Expr {
  const op = opName(e.name);
  switch (e.kind) {
    case "AEXPR_OP": {
      if (!e.lexpr) {
        const r = compileExpr(e.rexpr!, cx);
        if (op === "-") return negateExpr(r, cx.params);
        if (op === "+") {
          if (r.type.kind === "unknown") return coerce(r, T.numeric, "implicit", cx.params);
          if (category(r.type) !== "N")
            throw sqlError(SqlState.UndefinedFunction, `operator does not exist: + ${typeName(r.type)}`);
          return r;
        }
        throw unsupported(`prefix operator ${op}`);
      }
      const l = compileExpr(e.lexpr, cx);
      const r = compileExpr(e.rexpr!, cx);
      return binaryOp(op, l, r, cx);
    }
    case "AEXPR_DISTINCT":
    case "AEXPR_NOT_DISTINCT":
      return distinctExpr(
        compileExpr(e.lexpr!, cx),
        compileExpr(e.rexpr!, cx),
        cx.params,
        e.kind === "AEXPR_NOT_DISTINCT",
      );
    case "AEXPR_NULLIF": {
      const l = compileExpr(e.lexpr!, cx);
      const r = compileExpr(e.rexpr!, cx);
      const [cl, cr, t] = unifyOperands("=", l, r, cx.params);
      const eq = equality(t);
      const lf = cl.eval;
      const rf = cr.eval;
      return derivedExpr(
        t,
        (row, env) => {
          const a = lf(row, env);
          if (a === null) return null;
          const b = rf(row, env);
          return b !== null && eq(a, b) ? null : a;
        },
        [cl, cr],
        `NULLIF(${cl.text}, ${cr.text})`,
      );
    }
    case "AEXPR_IN": {
      const l = compileExpr(e.lexpr!, cx);
      const items = ((e.rexpr as { List?: { items?: Node[] } } | undefined)?.List?.items ?? []).map((n) =>
        compileExpr(n, cx),
      );
      return inListExpr(l, items, op !== "=", cx);
    }
    case "AEXPR_LIKE":
    case "AEXPR_ILIKE": {
      const l = compileExpr(e.lexpr!, cx);
      let rNode = e.rexpr!;
      let escapeChar: Expr | undefined;
      if ("FuncCall" in rNode && opName(rNode.FuncCall.funcname) === "like_escape") {
        const args = rNode.FuncCall.args ?? [];
        rNode = args[0]!;
        escapeChar = compileExpr(args[1]!, cx);
      }
      return likeExpr(
        l,
        compileExpr(rNode, cx),
        cx.params,
        e.kind === "AEXPR_ILIKE",
        op.startsWith("!"),
        escapeChar,
      );
    }
    case "AEXPR_BETWEEN":
    case "AEXPR_NOT_BETWEEN":
    case "AEXPR_BETWEEN_SYM":
    case "AEXPR_NOT_BETWEEN_SYM": {
      const items = (e.rexpr as { List?: { items?: Node[] } }).List?.items ?? [];
      const x = compileExpr(e.lexpr!, cx);
      const lo = compileExpr(items[0]!, cx);
      const hi = compileExpr(items[1]!, cx);
      const not = e.kind === "AEXPR_NOT_BETWEEN" || e.kind === "AEXPR_NOT_BETWEEN_SYM";
      if (e.kind === "AEXPR_BETWEEN_SYM" || e.kind === "AEXPR_NOT_BETWEEN_SYM") {
        const a = andExpr([compareExpr(">=", x, lo, cx.params), compareExpr("<=", x, hi, cx.params)]);
        const b = andExpr([compareExpr(">=", x, hi, cx.params), compareExpr("<=", x, lo, cx.params)]);
        const either = orExpr([a, b]);
        return not ? notExpr(either) : either;
      }
      if (not) return orExpr([compareExpr("<", x, lo, cx.params), compareExpr(">", x, hi, cx.params)]);
      return andExpr([compareExpr(">=", x, lo, cx.params), compareExpr("<=", x, hi, cx.params)]);
    }
    case "AEXPR_SIMILAR":
      throw unsupported("SIMILAR TO", "use LIKE or ~");
    case "AEXPR_OP_ANY":
    case "AEXPR_OP_ALL":
      return anyAllExpr(
        op,
        compileExpr(e.lexpr!, cx),
        compileExpr(e.rexpr!, cx),
        e.kind === "AEXPR_OP_ALL",
        cx.params,
      );
    default:
      throw unsupported(`operator kind ${e.kind}`);
  }
}

function binaryOp(op: string, l: Expr, r: Expr, cx: CompileCx): Expr {
  if (l.type.kind === "array" || r.type.kind === "array" || op === "&&") {
    const a = arrayBinaryOp(op, l, r, cx.params);
    if (a) return a;
  }
  if (CMP_OPS.has(op)) {
    return compareExpr((op === "!=" ? "<>" : op) as CmpOp, l, r, cx.params);
  }
  switch (op) {
    case "+":
    case "-":
    case "*":
    case "/":
    case "%":
    case "^":
      return arithmeticExpr(op, l, r, cx.params);
    case "||":
      return concatExpr(l, r, cx.params);
    case "<->":
    case "<=>":
    case "<#>":
      return vectorOpExpr(op, l, r, cx.params);
    case "->":
    case "->>":
    case "@>":
    case "<@":
    case "?":
      if (op === "@>" || op === "<@" || op === "?") {
        if (
          l.type.kind !== "jsonb" &&
          r.type.kind !== "jsonb" &&
          !(l.type.kind === "unknown" && op !== "?")
        ) {
          throw sqlError(
            SqlState.UndefinedFunction,
            `operator does not exist: ${typeName(l.type)} ${op} ${typeName(r.type)}`,
          );
        }
      }
      return jsonbOpExpr(op, l, r, cx.params);
    case "~":
    case "~*":
    case "!~":
    case "!~*":
      return regexExpr(op, l, r, cx.params);
    case "~~":
    case "!~~":
    case "~~*":
    case "!~~*":
      return likeExpr(l, r, cx.params, op.includes("*"), op.startsWith("!"));
    default:
      throw unsupported(`operator ${op}`);
  }
}

function inListExpr(l0: Expr, items0: Expr[], negate: boolean, cx: CompileCx): Expr {
  // The comparison type has no typmod: items are not rounded or cut to the column's numeric(p,s)/varchar(n).
  const u = unifyTypes([l0, ...items0], "IN");
  const t = u.length >= 0 || u.precision >= 0 ? T[u.kind] : u;
  const l = coerce(l0, t, "implicit", cx.params);
  const items = items0.map((i) => coerce(i, t, "implicit", cx.params));
  const lf = l.eval;
  const eq = equality(t);
  const text = `(${l.text} ${negate ? "NOT IN" : "IN"} (${items.map((i) => i.text).join(", ")}))`;
  if (items.every((i) => i.isConst)) {
    const key = hashKeyFn(t);
    const set = new Set<unknown>();
    let hasNull = false;
    for (const i of items) {
      if (i.value === null || i.value === undefined) hasNull = true;
      else set.add(key(i.value));
    }
    return derivedExpr(
      T.bool,
      (row, env) => {
        const v = lf(row, env);
        if (v === null) return null;
        if (set.has(key(v))) return !negate;
        return hasNull ? null : negate;
      },
      [l, ...items],
      text,
      negate ? {} : { inList: { left: l, items, type: t } },
    );
  }
  const evals = items.map((i) => i.eval);
  return derivedExpr(
    T.bool,
    (row, env) => {
      const v = lf(row, env);
      if (v === null) return null;
      let sawNull = false;
      for (let i = 0; i < evals.length; i++) {
        const x = evals[i]!(row, env);
        if (x === null) sawNull = true;
        else if (eq(v, x)) return !negate;
      }
      return sawNull ? null : negate;
    },
    [l, ...items],
    text,
    negate ? {} : { inList: { left: l, items, type: t } },
  );
}

function compileCase(c: CaseExpr, cx: CompileCx): Expr {
  const arg = c.arg ? compileExpr(c.arg, cx) : undefined;
  const whens = (c.args ?? []).map((w) => (w as { CaseWhen: { expr?: Node; result?: Node } }).CaseWhen);
  const conds = whens.map((w) => {
    const e = compileExpr(w.expr!, cx);
    return arg ? compareExpr("=", arg, e, cx.params) : asBool(e, cx, "CASE/WHEN");
  });
  const results = whens.map((w) => compileExpr(w.result!, cx));
  const def = c.defresult ? compileExpr(c.defresult, cx) : undefined;
  const all = def ? [...results, def] : results;
  const t = unifyTypes(all, "CASE");
  const rs = results.map((r) => coerce(r, t, "implicit", cx.params));
  const d = def ? coerce(def, t, "implicit", cx.params) : undefined;
  const condFns = conds.map((x) => x.eval);
  const resFns = rs.map((x) => x.eval);
  const defFn = d?.eval;
  return derivedExpr(
    t,
    (row, env) => {
      for (let i = 0; i < condFns.length; i++) {
        if (condFns[i]!(row, env) === true) return resFns[i]!(row, env);
      }
      return defFn ? defFn(row, env) : null;
    },
    [...conds, ...rs, ...(d ? [d] : [])],
    // The text is the expression's identity (aggregate sharing, ORDER BY matching): it must tell CASEs apart.
    `CASE${arg ? ` ${arg.text}` : ""}${whens.map((_, i) => ` WHEN ${conds[i]!.text} THEN ${rs[i]!.text}`).join("")}${d ? ` ELSE ${d.text}` : ""} END`,
  );
}

function compileFuncCall(f: FuncCall, cx: CompileCx): Expr {
  const names = (f.funcname ?? []).map(str);
  if (names.length > 1 && names[0] !== "pg_catalog" && names[0] !== "public") {
    throw sqlError(SqlState.UndefinedFunction, `function ${names.join(".")} does not exist`);
  }
  const name = names[names.length - 1]!.toLowerCase();
  if (f.over) throw unsupported("window functions");
  if (f.func_variadic) throw unsupported("VARIADIC arguments");
  if (AGGREGATES.has(name)) {
    if (cx.inAggregate)
      throw sqlError(
        SqlState.GroupingError,
        "aggregate function calls cannot be nested",
        pos(cx, f.location),
      );
    if (!cx.aggregates) {
      throw sqlError(
        SqlState.GroupingError,
        `aggregate functions are not allowed in ${cx.clause}`,
        pos(cx, f.location),
      );
    }
    if (f.agg_order && f.agg_order.length > 0) throw unsupported("ORDER BY inside an aggregate call");
    const inner = cx.aggregates.inputCx;
    const args = (f.args ?? []).map((a) => compileExpr(a, inner));
    const filter = f.agg_filter ? asBool(compileExpr(f.agg_filter, inner), inner, "FILTER") : undefined;
    const spec = resolveAggregate(
      name,
      args,
      f.agg_star ?? false,
      f.agg_distinct ?? false,
      filter,
      cx.params,
    );
    const slot = cx.aggregates.add(spec);
    return { type: spec.type, eval: (row) => row[slot]!, refs: [slot], text: spec.text };
  }
  if (f.agg_star)
    throw sqlError(SqlState.SyntaxError, `${name}(*) specified, but ${name} is not an aggregate function`);
  if (f.agg_distinct)
    throw sqlError(SqlState.SyntaxError, `DISTINCT specified, but ${name} is not an aggregate function`);
  if (f.agg_filter)
    throw sqlError(SqlState.SyntaxError, `FILTER specified, but ${name} is not an aggregate function`);
  if (name === "generate_series") {
    throw unsupported("generate_series() outside FROM", "use SELECT … FROM generate_series(…)");
  }
  const impl = scalarFunctions.get(name);
  const args = (f.args ?? []).map((a) => compileExpr(a, cx));
  if (!impl) throw noFunction(name, args);
  return impl(args, cx.params, name);
}

function compileSubLink(s: SubLink, cx: CompileCx): Expr {
  if (!cx.subqueries) throw unsupported("subqueries in this context");
  const select = (s.subselect as { SelectStmt?: SelectStmt }).SelectStmt;
  if (!select) throw unsupported("this kind of subquery");
  switch (s.subLinkType) {
    case "EXISTS_SUBLINK": {
      const { id, correlated } = cx.subqueries.initPlan(select, cx, () => ({ kind: "exists" }));
      return {
        type: T.bool,
        eval: (_r, env) => env.sub[id] as boolean,
        refs: [],
        text: correlated ? `EXISTS(SubPlan ${id + 1})` : `(InitPlan ${id + 1})`,
        usesSubplan: true,
        ...(correlated ? { correlated: [id] } : {}),
      };
    }
    case "EXPR_SUBLINK": {
      const { id, types, correlated } = cx.subqueries.initPlan(select, cx, (ts) => {
        if (ts.length !== 1) throw sqlError(SqlState.SyntaxError, "subquery must return only one column");
        return { kind: "scalar" };
      });
      return {
        type: types[0]!,
        eval: (_r, env) => env.sub[id] as Value,
        refs: [],
        text: correlated ? `(SubPlan ${id + 1})` : `(InitPlan ${id + 1})`,
        usesSubplan: true,
        ...(correlated ? { correlated: [id] } : {}),
      };
    }
    case "ANY_SUBLINK":
    case "ALL_SUBLINK": {
      const op = opName(s.operName) || "=";
      const left0 = compileExpr(s.testexpr!, cx);
      let cmpType: SqlType = T.text;
      let left = left0;
      const isIn = op === "=" && s.subLinkType === "ANY_SUBLINK";
      const { id, correlated } = cx.subqueries.initPlan(select, cx, (ts) => {
        if (ts.length !== 1)
          throw sqlError(
            SqlState.SyntaxError,
            ts.length > 1 ? "subquery has too many columns" : "subquery has too few columns",
          );
        const st = ts[0]!;
        const probe = { type: st, eval: () => null, refs: [], text: "" } as Expr;
        const [l] = unifyOperands(op, left0, probe, cx.params);
        left = l;
        cmpType = l.type;
        const convertFn = st.kind === cmpType.kind ? undefined : castFunction(st, cmpType, "implicit");
        if (isIn) return { kind: "set", convert: convertFn, key: hashKeyFn(cmpType) };
        return { kind: "rows", convert: convertFn };
      });
      const lf = left.eval;
      if (isIn) {
        const key = hashKeyFn(cmpType);
        return derivedExpr(
          T.bool,
          (row, env) => {
            const v = lf(row, env);
            const res = env.sub[id] as { set: Set<unknown>; hasNull: boolean; empty: boolean };
            if (res.empty) return false;
            if (v === null) return null;
            if (res.set.has(key(v))) return true;
            return res.hasNull ? null : false;
          },
          [left],
          `(${left.text} IN (${correlated ? "SubPlan" : "InitPlan"} ${id + 1}))`,
          {
            usesSubplan: true,
            ...(correlated ? { correlated: [...new Set([...(left.correlated ?? []), id])] } : {}),
          },
        );
      }
      const c = comparator(cmpType);
      const test: (x: number) => boolean =
        op === "="
          ? (x) => x === 0
          : op === "<>" || op === "!="
            ? (x) => x !== 0
            : op === "<"
              ? (x) => x < 0
              : op === "<="
                ? (x) => x <= 0
                : op === ">"
                  ? (x) => x > 0
                  : (x) => x >= 0;
      const all = s.subLinkType === "ALL_SUBLINK";
      return derivedExpr(
        T.bool,
        (row, env) => {
          const rows = env.sub[id] as Value[];
          if (rows.length === 0) return all;
          const v = lf(row, env);
          if (v === null) return null;
          let sawNull = false;
          for (const x of rows) {
            if (x === null) {
              sawNull = true;
              continue;
            }
            const ok = test(c(v, x));
            if (all && !ok) return false;
            if (!all && ok) return true;
          }
          return sawNull ? null : all;
        },
        [left],
        `(${left.text} ${op} ${all ? "ALL" : "ANY"} (${correlated ? "SubPlan" : "InitPlan"} ${id + 1}))`,
        {
          usesSubplan: true,
          ...(correlated ? { correlated: [...new Set([...(left.correlated ?? []), id])] } : {}),
        },
      );
    }
    case "ARRAY_SUBLINK": {
      let elem: SqlType = T.text;
      const { id, correlated } = cx.subqueries.initPlan(select, cx, (ts) => {
        if (ts.length !== 1) throw sqlError(SqlState.SyntaxError, "subquery must return only one column");
        elem = ts[0]!.kind === "unknown" ? T.text : ts[0]!;
        return { kind: "rows", convert: undefined };
      });
      const type = arrayOf(elem);
      return {
        type,
        eval: (_r, env) => new SqlArray(env.sub[id] as Value[]),
        refs: [],
        text: `ARRAY(${correlated ? "SubPlan" : "InitPlan"} ${id + 1})`,
        usesSubplan: true,
        ...(correlated ? { correlated: [id] } : {}),
      };
    }
    default:
      throw unsupported(`subquery kind ${s.subLinkType}`);
  }
}

/** Whether an expression tree has an aggregate call outside any subquery. */
export function containsAggregate(node: unknown): boolean {
  if (node === null || typeof node !== "object") return false;
  if (Array.isArray(node)) return node.some(containsAggregate);
  const o = node as Record<string, unknown>;
  if ("SubLink" in o || "RangeSubselect" in o) return false;
  if ("FuncCall" in o) {
    const f = o.FuncCall as FuncCall;
    const names = (f.funcname ?? []).map(str);
    if (AGGREGATES.has(names[names.length - 1]!.toLowerCase()) && !f.over) return true;
  }
  for (const k in o) if (k !== "location" && containsAggregate(o[k])) return true;
  return false;
}

/** PostgreSQL's FigureColname: the output name of a select-list expression without an alias. */
export function figureColname(node: Node | undefined): string {
  const [name, strength] = figure(node);
  return strength > 0 ? name : "?column?";
}

function figure(node: Node | undefined): [string, number] {
  if (!node) return ["?column?", 0];
  const tag = tagOf(node);
  switch (tag) {
    case "ColumnRef": {
      const fields = ((node as { ColumnRef: ColumnRef }).ColumnRef.fields ?? []).map(str);
      const last = fields[fields.length - 1]!;
      return last === "*" ? ["?column?", 0] : [last, 2];
    }
    case "FuncCall": {
      const names = ((node as { FuncCall: FuncCall }).FuncCall.funcname ?? []).map(str);
      return [names[names.length - 1]!, 2];
    }
    case "A_ArrayExpr":
      return ["array", 2];
    case "A_Indirection":
      return figure((node as { A_Indirection: { arg?: Node } }).A_Indirection.arg);
    case "A_Expr":
      return (node as { A_Expr: A_Expr }).A_Expr.kind === "AEXPR_NULLIF" ? ["nullif", 2] : ["?column?", 0];
    case "TypeCast": {
      const tc = (node as { TypeCast: TypeCast }).TypeCast;
      const [n, s] = figure(tc.arg);
      if (s <= 1) {
        const names = (tc.typeName?.names ?? []).map(str);
        return [names[names.length - 1]!, 1];
      }
      return [n, s];
    }
    case "SubLink": {
      const s = (node as { SubLink: SubLink }).SubLink;
      if (s.subLinkType === "EXISTS_SUBLINK") return ["exists", 2];
      if (s.subLinkType === "ARRAY_SUBLINK") return ["array", 2];
      if (s.subLinkType === "EXPR_SUBLINK") {
        const sel = (s.subselect as { SelectStmt?: SelectStmt }).SelectStmt;
        const t = sel?.targetList?.[0];
        if (t && "ResTarget" in t) {
          if (t.ResTarget.name) return [t.ResTarget.name, 2];
          const [n, st] = figure(t.ResTarget.val);
          return [n, st > 0 ? 2 : 0];
        }
      }
      return ["?column?", 0];
    }
    case "CaseExpr": {
      const [n, s] = figure((node as { CaseExpr: CaseExpr }).CaseExpr.defresult);
      return s <= 1 ? ["case", 1] : [n, s];
    }
    case "CoalesceExpr":
      return ["coalesce", 2];
    case "MinMaxExpr":
      return [(node as { MinMaxExpr: MinMaxExpr }).MinMaxExpr.op === "IS_GREATEST" ? "greatest" : "least", 2];
    case "SQLValueFunction": {
      const op = (node as { SQLValueFunction: SQLValueFunction }).SQLValueFunction.op ?? "";
      return [op.replace("SVFOP_", "").replace(/_N$/, "").toLowerCase(), 2];
    }
    default:
      return ["?column?", 0];
  }
}
