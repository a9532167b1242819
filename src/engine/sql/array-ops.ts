/**
 * Array expressions, compiled to closures like every other expression: ARRAY[...] constructors, subscripts and
 * slices, the operators @> <@ && || (= <> < … go through the ordinary comparison with arrays.ts's order),
 * `x op ANY/ALL (array)`, and the functions array_length, cardinality, array_upper/lower, array_ndims,
 * array_append/prepend/cat, array_position, array_remove, array_to_string, string_to_array.
 *
 * NULL rules as PostgreSQL's: operators and most functions are strict; `x = ANY(a)` is true when some element
 * compares true, else NULL when some comparison was NULL, else false (ALL: false / NULL / true); an empty array
 * has length NULL in array_length but cardinality 0; a subscript out of range is NULL.
 */

import { arrayContains, arrayOverlaps, SqlArray } from "./arrays.js";
import { SqlState, sqlError, unsupported } from "./errors.js";
import {
  type CmpOp,
  coerce,
  derivedExpr,
  type Expr,
  type ParamTypes,
  resolveUnknown,
  unifyTypes,
} from "./expr.js";
import type { FunctionImpl } from "./functions.js";
import type { ExecCtx, ExplainNode, RowSource } from "./plan.js";
import {
  arrayOf,
  castFunction,
  category,
  commonType,
  comparator,
  equality,
  outputText,
  type SqlType,
  T,
  typeName,
  type Value,
} from "./types.js";

const isArray = (e: Expr) => e.type.kind === "array";

function noOperator(op: string, l: SqlType, r: SqlType) {
  return sqlError(
    SqlState.UndefinedFunction,
    `operator does not exist: ${typeName(l)} ${op} ${typeName(r)}`,
    {
      hint: "No operator matches the given name and argument types. You might need to add explicit type casts.",
    },
  );
}

/** ARRAY[a, b, …]: the elements' common type; an empty ARRAY[] takes its type from a cast, like a '{}' literal. */
export function arrayConstructor(elements: Expr[], params: ParamTypes): Expr {
  if (elements.length === 0) {
    return { type: T.unknown, eval: () => "{}", refs: [], text: "ARRAY[]", unknownLiteral: "{}" };
  }
  if (elements.some(isArray)) throw unsupported("multidimensional arrays");
  let t = unifyTypes(elements, "ARRAY");
  if (t.kind === "unknown") t = T.text;
  const items = elements.map((e) => coerce(e, t, "implicit", params));
  const evals = items.map((e) => e.eval);
  return derivedExpr(
    arrayOf(t),
    (row, env) => new SqlArray(evals.map((f) => f(row, env))),
    items,
    `ARRAY[${items.map((e) => e.text).join(", ")}]`,
  );
}

/** Coerces an operand that must be an array (an unknown literal takes `like`'s array type). */
function asArray(e: Expr, like: SqlType | undefined, params: ParamTypes): Expr {
  if (e.type.kind === "array") return e;
  if (e.type.kind === "unknown" && like) return coerce(e, like, "implicit", params);
  return e;
}

/** a[i] and a[lo:hi] (1-based; out of range is NULL, or an empty slice). */
export function subscriptExpr(
  base: Expr,
  subs: { index?: Expr; lower?: Expr; upper?: Expr; slice: boolean }[],
  params: ParamTypes,
): Expr {
  if (!isArray(base))
    throw sqlError(
      SqlState.DatatypeMismatch,
      `cannot subscript type ${typeName(base.type)} because it does not support subscripting`,
    );
  if (subs.length > 1) throw unsupported("multidimensional array subscripts");
  const s = subs[0]!;
  const toInt = (e: Expr | undefined) => (e ? coerce(e, T.int4, "assignment", params) : undefined);
  const be = base.eval;
  if (!s.slice) {
    const i = toInt(s.index)!;
    const ie = i.eval;
    return derivedExpr(
      base.type.elem!,
      (row, env) => {
        const a = be(row, env) as SqlArray | null;
        const k = ie(row, env);
        if (a === null || k === null) return null;
        return a.items[(k as number) - 1] ?? null;
      },
      [base, i],
      `${base.text}[${i.text}]`,
    );
  }
  const lo = toInt(s.lower);
  const hi = toInt(s.upper);
  const parts = [base, ...(lo ? [lo] : []), ...(hi ? [hi] : [])];
  return derivedExpr(
    base.type,
    (row, env) => {
      const a = be(row, env) as SqlArray | null;
      if (a === null) return null;
      const l = lo ? lo.eval(row, env) : 1;
      const h = hi ? hi.eval(row, env) : a.items.length;
      if (l === null || h === null) return null;
      const from = Math.max(1, l as number);
      const to = Math.min(a.items.length, h as number);
      return new SqlArray(to < from ? [] : a.items.slice(from - 1, to));
    },
    parts,
    `${base.text}[${lo?.text ?? ""}:${hi?.text ?? ""}]`,
  );
}

/** @> <@ && and || when an operand is an array; undefined when the operator is not an array operator. */
export function arrayBinaryOp(op: string, l0: Expr, r0: Expr, params: ParamTypes): Expr | undefined {
  if (op === "@>" || op === "<@" || op === "&&") {
    const l = asArray(l0, r0.type.kind === "array" ? r0.type : undefined, params);
    const r = asArray(r0, l.type.kind === "array" ? l.type : undefined, params);
    if (!isArray(l) || !isArray(r)) throw noOperator(op, l0.type, r0.type);
    // anyarray operators want one array type on both sides (PostgreSQL has no int8[] @> int4[]).
    const t = l.type.elem!.kind === r.type.elem!.kind ? commonType(l.type, r.type) : undefined;
    if (!t) throw noOperator(op, l.type, r.type);
    const a = coerce(l, t, "implicit", params);
    const b = coerce(r, t, "implicit", params);
    const ae = a.eval;
    const bex = b.eval;
    const f =
      op === "&&"
        ? arrayOverlaps(t.elem!)
        : op === "@>"
          ? arrayContains(t.elem!)
          : (
              (c) => (x: SqlArray, y: SqlArray) =>
                c(y, x)
            )(arrayContains(t.elem!));
    return derivedExpr(
      T.bool,
      (row, env) => {
        const x = ae(row, env);
        if (x === null) return null;
        const y = bex(row, env);
        if (y === null) return null;
        return f(x as SqlArray, y as SqlArray);
      },
      [a, b],
      `(${a.text} ${op} ${b.text})`,
    );
  }
  if (op === "||") {
    if (isArray(l0) && (isArray(r0) || r0.type.kind === "unknown")) {
      const r = asArray(r0, l0.type, params);
      return concat(l0, r, params, "cat");
    }
    if (isArray(l0)) return concat(l0, coerce(r0, l0.type.elem!, "implicit", params), params, "append");
    if (isArray(r0)) {
      if (l0.type.kind === "unknown") return concat(asArray(l0, r0.type, params), r0, params, "cat");
      return concat(coerce(l0, r0.type.elem!, "implicit", params), r0, params, "prepend");
    }
  }
  return undefined;
}

function concat(l: Expr, r: Expr, params: ParamTypes, how: "cat" | "append" | "prepend"): Expr {
  let type: SqlType;
  let a = l;
  let b = r;
  if (how === "cat") {
    const t = commonType(l.type, r.type);
    if (!t) throw noOperator("||", l.type, r.type);
    type = t;
    a = coerce(l, t, "implicit", params);
    b = coerce(r, t, "implicit", params);
  } else {
    type = how === "append" ? l.type : r.type;
  }
  const ae = a.eval;
  const bex = b.eval;
  // Not strict: NULL || array is the array, array || NULL element appends a NULL, as in PostgreSQL.
  const fn = (row: Value[], env: Parameters<Expr["eval"]>[1]): Value => {
    const x = ae(row, env);
    const y = bex(row, env);
    if (how === "append") return x === null ? new SqlArray([y]) : new SqlArray([...(x as SqlArray).items, y]);
    if (how === "prepend")
      return y === null ? new SqlArray([x]) : new SqlArray([x, ...(y as SqlArray).items]);
    if (x === null) return y;
    if (y === null) return x;
    return new SqlArray([...(x as SqlArray).items, ...(y as SqlArray).items]);
  };
  return derivedExpr(type, fn, [a, b], `(${a.text} || ${b.text})`);
}

/** `l op ANY (r)` / `l op ALL (r)` for a comparison operator. */
export function anyAllExpr(op: string, l0: Expr, r0: Expr, all: boolean, params: ParamTypes): Expr {
  const cmpOp = (op === "!=" ? "<>" : op) as CmpOp;
  if (!["=", "<>", "<", "<=", ">", ">="].includes(cmpOp))
    throw unsupported(`${op} ${all ? "ALL" : "ANY"} (array)`, "comparison operators are supported");
  let l = l0;
  let r = r0;
  if (r.type.kind === "unknown") {
    l = resolveUnknown(l, params);
    r = coerce(r, arrayOf(l.type.kind === "unknown" ? T.text : l.type), "implicit", params);
  }
  if (!isArray(r))
    throw sqlError(SqlState.WrongObjectType, `op ANY/ALL (array) requires array on right side`);
  const elem = r.type.elem!;
  if (l.type.kind === "unknown") l = coerce(l, elem, "implicit", params);
  const t = commonType(l.type, elem);
  if (!t) throw noOperator(op, l.type, elem);
  l = coerce(l, t, "implicit", params);
  const conv = elem === t ? undefined : castFunction(elem, t, "implicit");
  const eq = equality(t);
  const cmp = comparator(t);
  const test: (a: Exclude<Value, null>, b: Exclude<Value, null>) => boolean =
    cmpOp === "="
      ? eq
      : cmpOp === "<>"
        ? (a, b) => !eq(a, b)
        : cmpOp === "<"
          ? (a, b) => cmp(a, b) < 0
          : cmpOp === "<="
            ? (a, b) => cmp(a, b) <= 0
            : cmpOp === ">"
              ? (a, b) => cmp(a, b) > 0
              : (a, b) => cmp(a, b) >= 0;
  const le = l.eval;
  const re = r.eval;
  return derivedExpr(
    T.bool,
    (row, env) => {
      const a = re(row, env) as SqlArray | null;
      if (a === null) return null;
      if (a.items.length === 0) return all;
      const x = le(row, env);
      if (x === null) return null;
      let sawNull = false;
      for (const item of a.items) {
        if (item === null) {
          sawNull = true;
          continue;
        }
        const y = conv ? conv(item as Exclude<Value, null>, env.now) : item;
        if (y === null) {
          sawNull = true;
          continue;
        }
        const ok = test(x, y);
        if (all ? !ok : ok) return !all;
      }
      return sawNull ? null : all;
    },
    [l, r],
    `(${l.text} ${cmpOp} ${all ? "ALL" : "ANY"} (${r.text}))`,
    cmpOp === "=" && !all && !conv ? { anyArray: { left: l, array: r, type: t } } : undefined,
  );
}

// ---- functions ----------------------------------------------------------------------------------------------------

function noFunction(name: string, args: readonly Expr[]) {
  return sqlError(
    SqlState.UndefinedFunction,
    `function ${name}(${args.map((a) => (a.type.kind === "unknown" ? "unknown" : typeName(a.type))).join(", ")}) does not exist`,
    {
      hint: "No function matches the given name and argument types. You might need to add explicit type casts.",
    },
  );
}

function arrayArg(name: string, args: Expr[], i: number, params: ParamTypes, like?: SqlType): Expr {
  const a = asArray(args[i]!, like, params);
  if (!isArray(a)) throw noFunction(name, args);
  return a;
}

function intArg(name: string, args: Expr[], i: number, params: ParamTypes): Expr {
  const a = args[i]!;
  if (a.type.kind === "unknown" || category(a.type) === "N") return coerce(a, T.int4, "assignment", params);
  throw noFunction(name, args);
}

function textArg(name: string, args: Expr[], i: number, params: ParamTypes): Expr {
  const a = args[i]!;
  if (a.type.kind === "unknown" || category(a.type) === "S") return coerce(a, T.text, "implicit", params);
  throw noFunction(name, args);
}

/** A strict function of evaluated arguments. */
function strict(type: SqlType, args: Expr[], text: string, f: (...v: Exclude<Value, null>[]) => Value): Expr {
  const evals = args.map((a) => a.eval);
  return derivedExpr(
    type,
    (row, env) => {
      const vals: Exclude<Value, null>[] = new Array(evals.length);
      for (let i = 0; i < evals.length; i++) {
        const v = evals[i]!(row, env);
        if (v === null) return null;
        vals[i] = v;
      }
      return f(...vals);
    },
    args,
    text,
  );
}

const textOf = (name: string, args: readonly Expr[]) => `${name}(${args.map((a) => a.text).join(", ")})`;

export function arrayFunctions(m: Map<string, FunctionImpl>): void {
  const dimFn =
    (name: string, f: (a: SqlArray, dim: number) => Value): FunctionImpl =>
    (args, p) => {
      if (args.length !== 2) throw noFunction(name, args);
      const a = arrayArg(name, args, 0, p);
      const d = intArg(name, args, 1, p);
      return strict(T.int4, [a, d], textOf(name, [a, d]), (x, dim) => f(x as SqlArray, dim as number));
    };
  const len = (a: SqlArray, dim: number) => (dim === 1 && a.items.length > 0 ? a.items.length : null);
  m.set("array_length", dimFn("array_length", len));
  m.set("array_upper", dimFn("array_upper", len));
  m.set(
    "array_lower",
    dimFn("array_lower", (a, dim) => (dim === 1 && a.items.length > 0 ? 1 : null)),
  );
  m.set("cardinality", (args, p) => {
    if (args.length !== 1) throw noFunction("cardinality", args);
    const a = arrayArg("cardinality", args, 0, p);
    return strict(T.int4, [a], textOf("cardinality", [a]), (x) => (x as SqlArray).items.length);
  });
  m.set("array_ndims", (args, p) => {
    if (args.length !== 1) throw noFunction("array_ndims", args);
    const a = arrayArg("array_ndims", args, 0, p);
    return strict(T.int4, [a], textOf("array_ndims", [a]), (x) =>
      (x as SqlArray).items.length > 0 ? 1 : null,
    );
  });
  m.set("array_append", (args, p) => {
    if (args.length !== 2) throw noFunction("array_append", args);
    const a = arrayArg("array_append", args, 0, p);
    return concat(a, coerce(args[1]!, a.type.elem!, "implicit", p), p, "append");
  });
  m.set("array_prepend", (args, p) => {
    if (args.length !== 2) throw noFunction("array_prepend", args);
    const a = arrayArg("array_prepend", args, 1, p);
    return concat(coerce(args[0]!, a.type.elem!, "implicit", p), a, p, "prepend");
  });
  m.set("array_cat", (args, p) => {
    if (args.length !== 2) throw noFunction("array_cat", args);
    const a = arrayArg("array_cat", args, 0, p, isArray(args[1]!) ? args[1]!.type : undefined);
    const b = arrayArg("array_cat", args, 1, p, a.type);
    return concat(a, b, p, "cat");
  });
  m.set("array_position", (args, p) => {
    if (args.length !== 2) throw noFunction("array_position", args);
    const a = arrayArg("array_position", args, 0, p);
    const x = coerce(args[1]!, a.type.elem!, "implicit", p);
    const eq = equality(a.type.elem!);
    const ae = a.eval;
    const xe = x.eval;
    // NULL is found with IS NOT DISTINCT FROM, as PostgreSQL's array_position does.
    return derivedExpr(
      T.int4,
      (row, env) => {
        const arr = ae(row, env) as SqlArray | null;
        if (arr === null) return null;
        const v = xe(row, env);
        const i = arr.items.findIndex((y) => (v === null ? y === null : y !== null && eq(y, v)));
        return i < 0 ? null : i + 1;
      },
      [a, x],
      textOf("array_position", [a, x]),
    );
  });
  m.set("array_remove", (args, p) => {
    if (args.length !== 2) throw noFunction("array_remove", args);
    const a = arrayArg("array_remove", args, 0, p);
    const x = coerce(args[1]!, a.type.elem!, "implicit", p);
    const eq = equality(a.type.elem!);
    const ae = a.eval;
    const xe = x.eval;
    return derivedExpr(
      a.type,
      (row, env) => {
        const arr = ae(row, env) as SqlArray | null;
        if (arr === null) return null;
        const v = xe(row, env);
        return new SqlArray(arr.items.filter((y) => !(v === null ? y === null : y !== null && eq(y, v))));
      },
      [a, x],
      textOf("array_remove", [a, x]),
    );
  });
  m.set("array_to_string", (args, p) => {
    if (args.length < 2 || args.length > 3) throw noFunction("array_to_string", args);
    const a = arrayArg("array_to_string", args, 0, p);
    const sep = textArg("array_to_string", args, 1, p);
    const nul = args[2] ? textArg("array_to_string", args, 2, p) : undefined;
    const elem = a.type.elem!;
    const ae = a.eval;
    const se = sep.eval;
    const ne = nul?.eval;
    return derivedExpr(
      T.text,
      (row, env) => {
        const arr = ae(row, env) as SqlArray | null;
        const s = se(row, env);
        if (arr === null || s === null) return null;
        const n = ne ? ne(row, env) : null;
        const parts: string[] = [];
        for (const v of arr.items) {
          if (v !== null) parts.push(elem.kind === "bool" ? (v ? "t" : "f") : outputText(elem, v));
          else if (n !== null) parts.push(n as string);
        }
        return parts.join(s as string);
      },
      [a, sep, ...(nul ? [nul] : [])],
      textOf("array_to_string", args),
    );
  });
  m.set("string_to_array", (args, p) => {
    if (args.length < 2 || args.length > 3) throw noFunction("string_to_array", args);
    const s = textArg("string_to_array", args, 0, p);
    const sep = textArg("string_to_array", args, 1, p);
    const nul = args[2] ? textArg("string_to_array", args, 2, p) : undefined;
    const se = s.eval;
    const pe = sep.eval;
    const ne = nul?.eval;
    return derivedExpr(
      arrayOf(T.text),
      (row, env) => {
        const str = se(row, env) as string | null;
        if (str === null) return null;
        const d = pe(row, env) as string | null;
        const n = ne ? (ne(row, env) as string | null) : null;
        if (str === "") return new SqlArray([]);
        const parts = d === null ? [...str] : d === "" ? [str] : str.split(d);
        return new SqlArray(parts.map((x) => (n !== null && x === n ? null : x)));
      },
      [s, sep, ...(nul ? [nul] : [])],
      textOf("string_to_array", args),
    );
  });
}

/** The element type unnest() yields for its argument (an unknown literal is text[]). */
export function unnestArg(e: Expr, params: ParamTypes): Expr {
  const a = e.type.kind === "unknown" ? coerce(e, arrayOf(T.text), "implicit", params) : e;
  if (!isArray(a)) throw noFunction("unnest", [e]);
  return a;
}

/** The rows of unnest(array) in FROM. */
export class UnnestSource implements RowSource {
  constructor(readonly array: Expr) {}
  async *rows(ctx: ExecCtx, outer: Value[] = []): AsyncIterable<Value[]> {
    const a = this.array.eval(outer, ctx.env) as SqlArray | null;
    if (a === null) return;
    for (const v of a.items) yield [v];
  }
  explain(): ExplainNode {
    return { label: "Function Scan on unnest", details: [], children: [] };
  }
}
