/**
 * Compiled expressions. The binder turns each AST expression into an `Expr`: its static SQL type and a closure
 * `eval(row, env)` over a flat row of values. Closures are built once per plan, so executing a cached plan does no
 * type resolution and no tree walking beyond the closures themselves.
 *
 * Typing follows PostgreSQL: string literals and parameters start as type `unknown` and take the type their context
 * asks for (`id = '42'` parses '42' as the column's type once, at plan time; `id = $1` makes $1 an integer);
 * operands of different numeric types are promoted (int4 → int8 → numeric → float8); assignments use
 * assignment casts. NULL is JS `null` and propagates through every strict operator.
 */

import { arrayHashKey, type SqlArray } from "./arrays.js";
import { SqlState, sqlError } from "./errors.js";
import {
  type CastMode,
  castFunction,
  category,
  commonType,
  keyPartFn,
  type SqlType,
  T,
  typeName,
  type Value,
} from "./types.js";

/** Per-execution state shared by every closure of a plan. */
export interface Env {
  /** Bound parameter values, already converted to their inferred types. */
  params: Value[];
  /** The statement's timestamp (transaction start inside BEGIN … COMMIT), microseconds. */
  now: number;
  /**
   * Results of subqueries by subplan id: uncorrelated ones computed once before the main plan runs, correlated
   * ones recomputed for each outer row just before the expressions that read them.
   */
  sub: unknown[];
  /** The outer query's current row, read by a correlated subquery's references to it. */
  outer?: Value[];
  /** The session's `hnsw.ef_search` (undefined: pgvector's default, 40). */
  efSearch?: number;
}

export type EvalFn = (row: Value[], env: Env) => Value;

export type CmpOp = "=" | "<>" | "<" | "<=" | ">" | ">=";

/** pgvector's distance operators: L2, cosine distance, negative inner product. */
export type VectorOp = "<->" | "<=>" | "<#>";

export interface Expr {
  readonly type: SqlType;
  readonly eval: EvalFn;
  /** Row positions the expression reads, sorted and unique. */
  readonly refs: readonly number[];
  /** Text for EXPLAIN and messages. */
  readonly text: string;
  /** A folded constant. */
  readonly isConst?: boolean;
  readonly value?: Value;
  /** An untyped literal: its text ('…' literal) or null (NULL literal); `type` is unknown. */
  readonly unknownLiteral?: string | null;
  /** A bare parameter reference ($n, 1-based). */
  readonly param?: number;
  /** Evaluates to row[keyColumn] through casts that keep the key encoding (int4 → int8, varchar → text). */
  readonly keyColumn?: number;
  /** A comparison, for the planner's index matching. */
  readonly cmp?: { op: CmpOp; left: Expr; right: Expr; type: SqlType };
  /** `left = ANY (array)`, for the planner (elements of `type`, no conversion needed). */
  readonly anyArray?: { left: Expr; array: Expr; type: SqlType };
  /** `left IN (items)`, for the planner. */
  readonly inList?: { left: Expr; items: Expr[]; type: SqlType };
  /** Conjuncts of an AND, for the planner. */
  readonly conjuncts?: Expr[];
  /** `column <op> query` with a vector distance operator and a row-independent query, for HNSW matching. */
  readonly vectorDistance?: { op: VectorOp; column: number; query: Expr };
  /** Depends on something besides row, params and subplans (random(), clock_timestamp()). */
  readonly volatile?: boolean;
  /** Reads a subplan result (so it cannot be evaluated before the subplans ran). */
  readonly usesSubplan?: boolean;
  /** Ids of correlated subplans that must be run for the current row before this expression is evaluated. */
  readonly correlated?: readonly number[];
  /** Reads the outer query's row (a column reference inside a correlated subquery). */
  readonly outerRef?: boolean;
}

export function mergeRefs(...lists: (readonly number[])[]): number[] {
  const nonEmpty = lists.filter((l) => l.length > 0);
  if (nonEmpty.length === 0) return [];
  if (nonEmpty.length === 1) return nonEmpty[0] as number[];
  return [...new Set(nonEmpty.flat())].sort((a, b) => a - b);
}

export function constExpr(type: SqlType, value: Value, text?: string): Expr {
  return {
    type,
    eval: () => value,
    refs: [],
    isConst: true,
    value,
    text: text ?? (value === null ? "NULL" : String(value)),
  };
}

export function columnExpr(index: number, type: SqlType, text: string): Expr {
  return { type, eval: (row) => row[index]!, refs: [index], keyColumn: index, text };
}

/** Parameter types as the statement infers them; $n is `types[n - 1]`. */
export class ParamTypes {
  readonly types: (SqlType | undefined)[] = [];
  readonly referenced = new Set<number>();
  maxRef = 0;

  constructor(declared: readonly (SqlType | undefined)[] = []) {
    this.types = [...declared];
  }

  get(n: number): SqlType | undefined {
    return this.types[n - 1];
  }

  set(n: number, t: SqlType): void {
    const base = t.length >= 0 || t.precision >= 0 ? T[t.kind] : t;
    const prev = this.types[n - 1];
    if (prev && prev.kind !== base.kind) {
      throw sqlError(SqlState.AmbiguousParameter, `inconsistent types deduced for parameter $${n}`, {
        detail: `${typeName(prev)} versus ${typeName(base)}`,
      });
    }
    this.types[n - 1] = base;
  }

  /** Final types: an unreferenced position below the highest is an error; untyped ones become text. */
  finish(): SqlType[] {
    const out: SqlType[] = [];
    for (let i = 0; i < this.maxRef; i++) {
      if (!this.referenced.has(i + 1) && this.types[i] === undefined) {
        throw sqlError(
          SqlState.IndeterminateDatatype,
          `could not determine data type of parameter $${i + 1}`,
        );
      }
      out.push(this.types[i] ?? T.text);
    }
    return out;
  }
}

export function paramExpr(n: number, type: SqlType): Expr {
  const i = n - 1;
  return { type, eval: (_row, env) => env.params[i]!, refs: [], param: n, text: `$${n}` };
}

function sameType(a: SqlType, b: SqlType): boolean {
  if (a.elem || b.elem) return a === b;
  return a.kind === b.kind && a.length === b.length && a.precision === b.precision && a.scale === b.scale;
}

/** Casts that leave a column's key encoding unchanged, so `keyColumn` survives them. */
function keyTransparent(from: SqlType, to: SqlType): boolean {
  const num = (t: SqlType) =>
    t.kind === "int2" || t.kind === "int4" || t.kind === "int8" || t.kind === "float8";
  if (num(from) && num(to)) return true;
  if (from.kind === "float4" && to.kind === "float8") return true;
  if ((from.kind === "varchar" || from.kind === "text") && to.kind === "text") return true;
  if (from.kind === "bpchar" && to.kind === "text") return true;
  if (from.kind === "varchar" && to.kind === "varchar" && to.length < 0) return true;
  return false;
}

function cannotCoerce(from: SqlType, to: SqlType, mode: CastMode, what?: string) {
  if (mode === "explicit") {
    return sqlError(SqlState.CannotCoerce, `cannot cast type ${typeName(from)} to ${typeName(to)}`);
  }
  if (what) {
    return sqlError(
      SqlState.DatatypeMismatch,
      `${what} is of type ${typeName(to)} but expression is of type ${typeName(from)}`,
      {
        hint: "You will need to rewrite or cast the expression.",
      },
    );
  }
  return sqlError(SqlState.DatatypeMismatch, `cannot coerce type ${typeName(from)} to ${typeName(to)}`);
}

/**
 * Converts `e` to type `to`. Untyped literals are parsed now (bad input fails at plan time, as in PostgreSQL);
 * untyped parameters take the type. `what` names the target in messages ("column \"x\"").
 */
export function coerce(e: Expr, to: SqlType, mode: CastMode, params: ParamTypes, what?: string): Expr {
  if (sameType(e.type, to)) return e;
  // Dropping a type modifier (numeric(10,2) → numeric, varchar(5) → varchar) changes no value.
  if (e.type.kind === to.kind && to.length < 0 && to.precision < 0 && to.elem === undefined) return e;
  if (e.type.kind === "unknown") {
    if (e.param !== undefined) {
      const known = params.get(e.param);
      if (known === undefined || known.kind === to.kind) {
        params.set(e.param, to);
        const typed = paramExpr(e.param, params.get(e.param)!);
        return sameType(typed.type, to) ? typed : coerce(typed, to, "assignment", params, what);
      }
      return coerce(paramExpr(e.param, known), to, mode, params, what);
    }
    if (e.unknownLiteral !== undefined) {
      if (e.unknownLiteral === null) return { ...constExpr(to, null, "NULL") };
      const text = e.unknownLiteral;
      const cast = castFunction(T.unknown, to, mode === "explicit" ? "explicit" : "assignment")!;
      // Date/time input can depend on the clock ('now', 'today'): keep it per execution, never fold it.
      if (category(to) === "D") {
        return {
          type: to,
          eval: (_r, env) => cast(text, env.now),
          refs: [],
          text: `'${text}'::${typeName(to)}`,
        };
      }
      return constExpr(to, cast(text, 0), `'${text}'::${typeName(to)}`);
    }
    // An unknown-typed expression of another kind (CASE of literals, …): treat as text.
    return coerce({ ...e, type: T.text }, to, mode, params, what);
  }
  const fn = castFunction(e.type, to, mode);
  if (!fn) throw cannotCoerce(e.type, to, mode, what);
  const inner = e.eval;
  const text = `(${e.text})::${typeName(to)}`;
  if (e.isConst) {
    const v = e.value === null || e.value === undefined ? null : fn(e.value, 0);
    return constExpr(to, v, text);
  }
  const out: Expr = {
    type: to,
    eval: (row, env) => {
      const v = inner(row, env);
      return v === null ? null : fn(v, env.now);
    },
    refs: e.refs,
    text,
    ...(e.keyColumn !== undefined && keyTransparent(e.type, to) ? { keyColumn: e.keyColumn } : {}),
    ...(e.volatile ? { volatile: true } : {}),
    ...(e.usesSubplan ? { usesSubplan: true } : {}),
    ...(e.correlated ? { correlated: e.correlated } : {}),
    ...(e.outerRef ? { outerRef: true } : {}),
  };
  return out;
}

/** Resolves an expression that must have a concrete type: unknown literals and parameters become text. */
export function resolveUnknown(e: Expr, params: ParamTypes): Expr {
  if (e.type.kind !== "unknown") return e;
  if (e.param !== undefined) {
    const known = params.get(e.param);
    if (known) return paramExpr(e.param, known);
  }
  return coerce(e, T.text, "implicit", params);
}

/** The common type of several expressions (CASE, COALESCE, UNION, IN lists), PostgreSQL-style. */
export function unifyTypes(exprs: readonly { type: SqlType }[], context: string): SqlType {
  let t: SqlType | undefined;
  for (const e of exprs) {
    if (e.type.kind === "unknown") continue;
    if (t === undefined) {
      t = e.type;
      continue;
    }
    const c = commonType(t, e.type);
    if (!c) {
      throw sqlError(
        SqlState.DatatypeMismatch,
        `${context} types ${typeName(t)} and ${typeName(e.type)} cannot be matched`,
      );
    }
    t = c;
  }
  return t ?? T.text;
}

export function derivedExpr(
  type: SqlType,
  evalFn: EvalFn,
  parts: readonly Expr[],
  text: string,
  extra?: Partial<Expr>,
): Expr {
  let volatile = false;
  let usesSubplan = false;
  let outerRef = false;
  let correlated: number[] | undefined;
  for (const p of parts) {
    if (p.volatile) volatile = true;
    if (p.usesSubplan) usesSubplan = true;
    if (p.outerRef) outerRef = true;
    if (p.correlated) correlated = [...new Set([...(correlated ?? []), ...p.correlated])];
  }
  return {
    type,
    eval: evalFn,
    refs: mergeRefs(...parts.map((p) => p.refs)),
    text,
    ...(volatile ? { volatile } : {}),
    ...(usesSubplan ? { usesSubplan } : {}),
    ...(outerRef ? { outerRef } : {}),
    ...(correlated ? { correlated } : {}),
    ...extra,
  };
}

/** Hash key of a non-null value: equal values (by the type's equality) give the same primitive. */
export function hashKeyFn(t: SqlType): (v: Exclude<Value, null>) => unknown {
  switch (t.kind) {
    case "array": {
      const k = arrayHashKey(t.elem!);
      return (v) => k(v as SqlArray);
    }
    case "numeric":
    case "bpchar":
    case "jsonb":
    case "bytea": {
      const kp = keyPartFn(t);
      return (v) => {
        const p = kp(v);
        return p instanceof Uint8Array ? Buffer.from(p).toString("latin1") : p;
      };
    }
    default:
      return (v) => v;
  }
}

/** A string key for a whole tuple of values (GROUP BY, DISTINCT, UNION). */
export function tupleKeyFn(types: readonly SqlType[]): (values: readonly Value[]) => string {
  const fns = types.map(hashKeyFn);
  if (types.length === 1) {
    const f = fns[0]!;
    const kind = types[0]!.kind;
    return (values) => {
      const v = values[0];
      if (v === null || v === undefined) return "\u0000N";
      const k = f(v);
      return kind === "text" || kind === "varchar" || kind === "uuid"
        ? `s${k as string}`
        : `${typeof k}:${String(k)}`;
    };
  }
  return (values) => {
    let s = "";
    for (let i = 0; i < fns.length; i++) {
      const v = values[i];
      if (v === null || v === undefined) s += "\u0000N|";
      else {
        const k = fns[i]!(v);
        const ks = typeof k === "number" && Object.is(k, -0) ? "0" : String(k);
        s += `${typeof k}${ks.length}:${ks}|`;
      }
    }
    return s;
  };
}
