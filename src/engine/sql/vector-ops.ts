/**
 * pgvector's operators and functions on `vector`: `<->` (L2 distance), `<=>` (cosine distance), `<#>` (negative
 * inner product), l2_distance, cosine_distance, inner_product, vector_dims, vector_norm, l2_normalize. All are
 * strict (NULL in, NULL out) and refuse operands of different dimensions with 22000, as pgvector does. A
 * distance between a column and a row-independent value is tagged (`vectorDistance`) so the planner can answer
 * `ORDER BY col <op> $1 LIMIT k` from an HNSW index.
 */

import { cosineDistance, innerProduct, l2Distance, l2Normalize, norm } from "../../vector/distance.js";
import { checkSameDims } from "../../vector/vector.js";
import { SqlState, sqlError } from "./errors.js";
import { coerce, derivedExpr, type EvalFn, type Expr, type ParamTypes, type VectorOp } from "./expr.js";
import { type SqlType, T, typeName, type Value } from "./types.js";
import { asSql } from "./vector-type.js";

type VecFn = (a: Float32Array, b: Float32Array) => number;

/** The SQL distance of each operator (what ORDER BY sorts by). */
export const DISTANCES: Record<VectorOp, VecFn> = {
  "<->": l2Distance,
  "<=>": cosineDistance,
  "<#>": (a, b) => -innerProduct(a, b),
};

function asVector(e: Expr, params: ParamTypes): Expr | undefined {
  if (e.type.kind === "vector") return e;
  if (e.type.kind !== "unknown") return undefined;
  return coerce(e, T.vector, "implicit", params);
}

function noOperator(op: string, l: SqlType, r: SqlType) {
  return sqlError(
    SqlState.UndefinedFunction,
    `operator does not exist: ${typeName(l)} ${op} ${typeName(r)}`,
    {
      hint: "No operator matches the given name and argument types. You might need to add explicit type casts.",
    },
  );
}

function distance2(le: EvalFn, re: EvalFn, f: VecFn): EvalFn {
  return (row, env) => {
    const a = le(row, env);
    if (a === null) return null;
    const b = re(row, env);
    if (b === null) return null;
    const x = a as Float32Array;
    const y = b as Float32Array;
    if (x.length !== y.length) asSql(() => checkSameDims(x, y));
    return f(x, y);
  };
}

/** The column side of `a <op> b` when the other side does not depend on the row. */
function tagged(op: VectorOp, l: Expr, r: Expr): Expr["vectorDistance"] {
  const isCol = (e: Expr) => e.keyColumn !== undefined && e.refs.length === 1;
  const isQuery = (e: Expr) => e.refs.length === 0 && !e.volatile && !e.usesSubplan && !e.outerRef;
  if (isCol(l) && isQuery(r)) return { op, column: l.keyColumn!, query: r };
  if (isCol(r) && isQuery(l)) return { op, column: r.keyColumn!, query: l };
  return undefined;
}

export function vectorOpExpr(op: VectorOp, l0: Expr, r0: Expr, params: ParamTypes): Expr {
  const l = asVector(l0, params);
  const r = asVector(r0, params);
  if (!l || !r) throw noOperator(op, l0.type, r0.type);
  const vd = tagged(op, l, r);
  return derivedExpr(
    T.float8,
    distance2(l.eval, r.eval, DISTANCES[op]),
    [l, r],
    `(${l.text} ${op} ${r.text})`,
    vd ? { vectorDistance: vd } : undefined,
  );
}

export type VectorFunctionImpl = (args: Expr[], params: ParamTypes, name: string) => Expr;

function noFunction(name: string, args: readonly Expr[]) {
  return sqlError(
    SqlState.UndefinedFunction,
    `function ${name}(${args.map((a) => (a.type.kind === "unknown" ? "unknown" : typeName(a.type))).join(", ")}) does not exist`,
    {
      hint: "No function matches the given name and argument types. You might need to add explicit type casts.",
    },
  );
}

function vectorArgs(name: string, args: Expr[], n: number, params: ParamTypes): Expr[] {
  if (args.length !== n) throw noFunction(name, args);
  return args.map((a) => {
    const v = asVector(a, params);
    if (!v) throw noFunction(name, args);
    return v;
  });
}

function unary(name: string, args: Expr[], params: ParamTypes, type: SqlType, f: (v: Float32Array) => Value) {
  const [a] = vectorArgs(name, args, 1, params);
  const e = a!.eval;
  return derivedExpr(
    type,
    (row, env) => {
      const v = e(row, env);
      return v === null ? null : f(v as Float32Array);
    },
    [a!],
    `${name}(${a!.text})`,
  );
}

/** Registers the vector functions in the scalar function table (functions.ts). */
export function vectorFunctions(m: Map<string, VectorFunctionImpl>): void {
  const binary = (name: string, f: VecFn) =>
    m.set(name, (args, params) => {
      const [a, b] = vectorArgs(name, args, 2, params);
      return derivedExpr(
        T.float8,
        distance2(a!.eval, b!.eval, f),
        [a!, b!],
        `${name}(${a!.text}, ${b!.text})`,
      );
    });
  binary("l2_distance", l2Distance);
  binary("cosine_distance", cosineDistance);
  binary("inner_product", innerProduct);
  m.set("vector_dims", (args, p) => unary("vector_dims", args, p, T.int4, (v) => v.length));
  m.set("vector_norm", (args, p) => unary("vector_norm", args, p, T.float8, norm));
  m.set("l2_normalize", (args, p) => unary("l2_normalize", args, p, T.vector, l2Normalize));
}
