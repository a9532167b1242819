/**
 * Operators: resolution (which types an operator applies to, PostgreSQL's rules for the supported subset) and the
 * closures that compute them, specialised per type so the hot cases (integer and text comparison) are one `===`
 * or `<` after the NULL checks.
 */

import { SqlState, sqlError, unsupported } from "./errors.js";
import {
  type CmpOp,
  coerce,
  derivedExpr,
  type EvalFn,
  type Expr,
  type ParamTypes,
  resolveUnknown,
} from "./expr.js";
import { Jsonb, type JsonValue, jsonContains, jsonGet, jsonText } from "./jsonb.js";
import {
  addNumeric,
  divNumeric,
  floatToNumeric,
  modNumeric,
  mulNumeric,
  negNumeric,
  subNumeric,
} from "./numeric.js";
import {
  category,
  checkInt,
  commonType,
  comparator,
  equality,
  normInt8,
  outputText,
  type SqlType,
  T,
  typeName,
  type Value,
} from "./types.js";

function noOperator(op: string, l: SqlType | undefined, r: SqlType) {
  const sig = l ? `${typeName(l)} ${op} ${typeName(r)}` : `${op} ${typeName(r)}`;
  return sqlError(SqlState.UndefinedFunction, `operator does not exist: ${sig}`, {
    hint: "No operator matches the given name and argument types. You might need to add explicit type casts.",
  });
}

/** Both operands coerced to a common type (unknowns take the other side's type). */
export function unifyOperands(op: string, l: Expr, r: Expr, params: ParamTypes): [Expr, Expr, SqlType] {
  let lt = l.type;
  let rt = r.type;
  if (lt.kind === "unknown" && rt.kind === "unknown") {
    l = resolveUnknown(l, params);
    r = resolveUnknown(r, params);
    lt = l.type;
    rt = r.type;
  }
  const t = commonType(lt, rt);
  if (!t) throw noOperator(op, lt, rt);
  return [coerce(l, t, "implicit", params), coerce(r, t, "implicit", params), t];
}

// ---- comparison -------------------------------------------------------------------------------------------------

export function compareExpr(op: CmpOp, l0: Expr, r0: Expr, params: ParamTypes): Expr {
  const [l, r, t] = unifyOperands(op, l0, r0, params);
  const le = l.eval;
  const re = r.eval;
  let fn: EvalFn;
  const simple =
    t.kind === "int2" ||
    t.kind === "int4" ||
    t.kind === "date" ||
    t.kind === "timestamp" ||
    t.kind === "timestamptz" ||
    t.kind === "int8";
  const stringEq = t.kind === "text" || t.kind === "varchar" || t.kind === "uuid" || t.kind === "bool";
  if (op === "=" || op === "<>") {
    const eq = simple || stringEq ? undefined : equality(t);
    const want = op === "=";
    fn = eq
      ? (row, env) => {
          const a = le(row, env);
          if (a === null) return null;
          const b = re(row, env);
          if (b === null) return null;
          return eq(a, b) === want;
        }
      : want
        ? (row, env) => {
            const a = le(row, env);
            if (a === null) return null;
            const b = re(row, env);
            if (b === null) return null;
            return a === b;
          }
        : (row, env) => {
            const a = le(row, env);
            if (a === null) return null;
            const b = re(row, env);
            if (b === null) return null;
            return a !== b;
          };
  } else if (simple) {
    switch (op) {
      case "<":
        fn = (row, env) => {
          const a = le(row, env);
          if (a === null) return null;
          const b = re(row, env);
          return b === null ? null : a < b;
        };
        break;
      case "<=":
        fn = (row, env) => {
          const a = le(row, env);
          if (a === null) return null;
          const b = re(row, env);
          return b === null ? null : a <= b;
        };
        break;
      case ">":
        fn = (row, env) => {
          const a = le(row, env);
          if (a === null) return null;
          const b = re(row, env);
          return b === null ? null : a > b;
        };
        break;
      default:
        fn = (row, env) => {
          const a = le(row, env);
          if (a === null) return null;
          const b = re(row, env);
          return b === null ? null : a >= b;
        };
    }
  } else {
    const cmp = comparator(t);
    const test =
      op === "<"
        ? (c: number) => c < 0
        : op === "<="
          ? (c: number) => c <= 0
          : op === ">"
            ? (c: number) => c > 0
            : (c: number) => c >= 0;
    fn = (row, env) => {
      const a = le(row, env);
      if (a === null) return null;
      const b = re(row, env);
      return b === null ? null : test(cmp(a, b));
    };
  }
  return derivedExpr(T.bool, fn, [l, r], `(${l.text} ${op} ${r.text})`, {
    cmp: { op, left: l, right: r, type: t },
  });
}

/** IS [NOT] DISTINCT FROM: NULL-aware equality. */
export function distinctExpr(l0: Expr, r0: Expr, params: ParamTypes, not: boolean): Expr {
  const [l, r, t] = unifyOperands("=", l0, r0, params);
  const eq = equality(t);
  const le = l.eval;
  const re = r.eval;
  return derivedExpr(
    T.bool,
    (row, env) => {
      const a = le(row, env);
      const b = re(row, env);
      const same = a === null || b === null ? a === b : eq(a, b);
      return not ? same : !same;
    },
    [l, r],
    `(${l.text} IS ${not ? "NOT " : ""}DISTINCT FROM ${r.text})`,
  );
}

// ---- arithmetic -------------------------------------------------------------------------------------------------

const TWO53 = 9007199254740992;

function int8Op(op: string): (a: number | bigint, b: number | bigint) => number | bigint {
  switch (op) {
    case "+":
      return (a, b) => {
        if (typeof a === "number" && typeof b === "number") {
          const r = a + b;
          if (r > -TWO53 && r < TWO53) return r;
        }
        return normInt8(BigInt(a) + BigInt(b));
      };
    case "-":
      return (a, b) => {
        if (typeof a === "number" && typeof b === "number") {
          const r = a - b;
          if (r > -TWO53 && r < TWO53) return r;
        }
        return normInt8(BigInt(a) - BigInt(b));
      };
    case "*":
      return (a, b) => {
        if (typeof a === "number" && typeof b === "number") {
          const r = a * b;
          if (r > -TWO53 && r < TWO53) return r === 0 ? 0 : r;
        }
        return normInt8(BigInt(a) * BigInt(b));
      };
    case "/":
      return (a, b) => {
        if (b === 0 || b === 0n) throw sqlError(SqlState.DivisionByZero, "division by zero");
        if (typeof a === "number" && typeof b === "number") {
          const r = Math.trunc(a / b);
          return r === 0 ? 0 : r;
        }
        return normInt8(BigInt(a) / BigInt(b));
      };
    default:
      return (a, b) => {
        if (b === 0 || b === 0n) throw sqlError(SqlState.DivisionByZero, "division by zero");
        if (typeof a === "number" && typeof b === "number") {
          const r = a % b;
          return r === 0 ? 0 : r;
        }
        return normInt8(BigInt(a) % BigInt(b));
      };
  }
}

function int4Op(op: string, kind: "int2" | "int4"): (a: number, b: number) => number {
  switch (op) {
    case "+":
      return (a, b) => checkInt(kind, a + b);
    case "-":
      return (a, b) => checkInt(kind, a - b);
    case "*":
      return (a, b) => {
        const r = a * b;
        return checkInt(kind, r === 0 ? 0 : r);
      };
    case "/":
      return (a, b) => {
        if (b === 0) throw sqlError(SqlState.DivisionByZero, "division by zero");
        const r = Math.trunc(a / b);
        return checkInt(kind, r === 0 ? 0 : r);
      };
    default:
      return (a, b) => {
        if (b === 0) throw sqlError(SqlState.DivisionByZero, "division by zero");
        const r = a % b;
        return r === 0 ? 0 : r;
      };
  }
}

function floatOp(op: string, float4: boolean): (a: number, b: number) => number {
  const check = (r: number, a: number, b: number) => {
    if (!Number.isFinite(r) && Number.isFinite(a) && Number.isFinite(b)) {
      throw sqlError(SqlState.NumericValueOutOfRange, "value out of range: overflow");
    }
    return float4 ? Math.fround(r) : r;
  };
  // As PostgreSQL's float8_mul/float8_div: a zero result from operands that allow none is an underflow.
  const checkUnderflow = (r: number, zeroIsValid: boolean) => {
    if (r === 0 && !zeroIsValid)
      throw sqlError(SqlState.NumericValueOutOfRange, "value out of range: underflow");
    return r;
  };
  switch (op) {
    case "+":
      return (a, b) => check(a + b, a, b);
    case "-":
      return (a, b) => check(a - b, a, b);
    case "*":
      return (a, b) => checkUnderflow(check(a * b, a, b), a === 0 || b === 0);
    case "/":
      return (a, b) => {
        // Division by zero is an error only when the dividend is a number: NaN / 0 is NaN, as in PostgreSQL.
        if (b === 0 && !Number.isNaN(a)) throw sqlError(SqlState.DivisionByZero, "division by zero");
        return checkUnderflow(check(a / b, a, b), a === 0 || !Number.isFinite(b));
      };
    case "^":
      return (a, b) => {
        if (a === 0 && b < 0) {
          throw sqlError("2201F", "zero raised to a negative power is undefined");
        }
        if (a < 0 && !Number.isInteger(b)) {
          throw sqlError("2201F", "a negative number raised to a non-integer power yields a complex result");
        }
        return check(a ** b, a, b);
      };
    default:
      return (a, b) => {
        if (b === 0) throw sqlError(SqlState.DivisionByZero, "division by zero");
        return a % b;
      };
  }
}

function numericOp(op: string): (a: string, b: string) => string {
  switch (op) {
    case "+":
      return addNumeric;
    case "-":
      return subNumeric;
    case "*":
      return mulNumeric;
    case "/":
      return divNumeric;
    case "^":
      return (a, b) => floatToNumeric(floatOp("^", false)(Number(a), Number(b)));
    default:
      return modNumeric;
  }
}

function strict2(le: EvalFn, re: EvalFn, f: (a: never, b: never) => Value): EvalFn {
  return (row, env) => {
    const a = le(row, env);
    if (a === null) return null;
    const b = re(row, env);
    if (b === null) return null;
    return f(a as never, b as never);
  };
}

export function arithmeticExpr(op: string, l0: Expr, r0: Expr, params: ParamTypes): Expr {
  let l = l0;
  let r = r0;
  // Date arithmetic: date ± integer, date - date.
  const lc = l.type.kind === "unknown" ? undefined : category(l.type);
  const rc = r.type.kind === "unknown" ? undefined : category(r.type);
  if (lc === "D" || rc === "D") return dateArithmetic(op, l, r, params);
  if (lc === "J" || rc === "J") throw noOperator(op, l.type, r.type);
  if ((lc !== undefined && lc !== "N") || (rc !== undefined && rc !== "N"))
    throw noOperator(op, l.type, r.type);
  if (l.type.kind === "unknown" && r.type.kind === "unknown") {
    throw sqlError(SqlState.UndefinedFunction, `operator is not unique: unknown ${op} unknown`, {
      hint: "Could not choose a best candidate operator. You might need to add explicit type casts.",
    });
  }
  let t: SqlType;
  [l, r, t] = unifyOperands(op, l, r, params);
  if (op === "^" && t.kind !== "numeric") {
    l = coerce(l, T.float8, "implicit", params);
    r = coerce(r, T.float8, "implicit", params);
    t = T.float8;
  }
  let f: (a: never, b: never) => Value;
  switch (t.kind) {
    case "int2":
    case "int4":
      f = int4Op(op, t.kind) as never;
      break;
    case "int8":
      f = int8Op(op) as never;
      break;
    case "float4":
    case "float8":
      // PostgreSQL has no % for floating point (it has mod() for numeric and integers only).
      if (op === "%") throw noOperator(op, l.type, r.type);
      f = floatOp(op, t.kind === "float4") as never;
      break;
    case "numeric":
      f = numericOp(op) as never;
      break;
    default:
      throw noOperator(op, l.type, r.type);
  }
  const rt = t.length >= 0 || t.precision >= 0 ? T[t.kind] : t;
  return derivedExpr(rt, strict2(l.eval, r.eval, f), [l, r], `(${l.text} ${op} ${r.text})`);
}

function dateArithmetic(op: string, l: Expr, r: Expr, params: ParamTypes): Expr {
  const lk = l.type.kind;
  const rk = r.type.kind;
  const isInt = (k: string) => k === "int2" || k === "int4" || k === "int8" || k === "unknown";
  if (lk === "date" && isInt(rk) && (op === "+" || op === "-")) {
    const rr = coerce(r, T.int4, "implicit", params);
    const sign = op === "+" ? 1 : -1;
    return derivedExpr(
      T.date,
      strict2(l.eval, rr.eval, ((a: number, b: number) => a + sign * b) as never),
      [l, rr],
      `(${l.text} ${op} ${rr.text})`,
    );
  }
  if (isInt(lk) && rk === "date" && op === "+") {
    const ll = coerce(l, T.int4, "implicit", params);
    return derivedExpr(
      T.date,
      strict2(ll.eval, r.eval, ((a: number, b: number) => a + b) as never),
      [ll, r],
      `(${ll.text} + ${r.text})`,
    );
  }
  if (lk === "date" && (rk === "date" || rk === "unknown") && op === "-") {
    const rr = coerce(r, T.date, "implicit", params);
    return derivedExpr(
      T.int4,
      strict2(l.eval, rr.eval, ((a: number, b: number) => a - b) as never),
      [l, rr],
      `(${l.text} - ${rr.text})`,
    );
  }
  if (category(l.type) === "D" || category(r.type) === "D") {
    throw unsupported(
      `operator ${typeName(l.type)} ${op} ${typeName(r.type)} (the interval type is not implemented)`,
    );
  }
  throw noOperator(op, l.type, r.type);
}

export function negateExpr(e0: Expr, params: ParamTypes): Expr {
  const e = e0.type.kind === "unknown" ? coerce(e0, T.numeric, "implicit", params) : e0;
  const ev = e.eval;
  let f: (v: never) => Value;
  switch (e.type.kind) {
    case "int2":
    case "int4": {
      const k = e.type.kind;
      f = ((v: number) => checkInt(k, v === 0 ? 0 : -v)) as never;
      break;
    }
    case "int8":
      f = ((v: number | bigint) => (typeof v === "number" ? (v === 0 ? 0 : -v) : normInt8(-v))) as never;
      break;
    case "float4":
    case "float8":
      f = ((v: number) => -v) as never;
      break;
    case "numeric":
      f = negNumeric as never;
      break;
    default:
      throw noOperator("-", undefined, e.type);
  }
  if (e.isConst) {
    const v = e.value === null || e.value === undefined ? null : f(e.value as never);
    return { type: e.type, eval: () => v, refs: [], isConst: true, value: v, text: `-${e.text}` };
  }
  return derivedExpr(
    e.type.length >= 0 || e.type.precision >= 0 ? T[e.type.kind] : e.type,
    (row, env) => {
      const v = ev(row, env);
      return v === null ? null : f(v as never);
    },
    [e],
    `(-${e.text})`,
  );
}

// ---- text -------------------------------------------------------------------------------------------------------

export function concatExpr(l0: Expr, r0: Expr, params: ParamTypes): Expr {
  if (l0.type.kind === "jsonb" || r0.type.kind === "jsonb") {
    const l = coerce(l0, T.jsonb, "implicit", params);
    const r = coerce(r0, T.jsonb, "implicit", params);
    return derivedExpr(
      T.jsonb,
      strict2(l.eval, r.eval, jsonbConcat as never),
      [l, r],
      `(${l.text} || ${r.text})`,
    );
  }
  const ls = l0.type.kind === "unknown" || category(l0.type) === "S";
  const rs = r0.type.kind === "unknown" || category(r0.type) === "S";
  if (!ls && !rs) throw noOperator("||", l0.type, r0.type);
  const toText = (e: Expr): Expr => {
    if (e.type.kind === "unknown") return coerce(e, T.text, "implicit", params);
    if (category(e.type) === "S") return coerce(e, T.text, "implicit", params);
    const t = e.type;
    const inner = e.eval;
    return derivedExpr(
      T.text,
      (row, env) => {
        const v = inner(row, env);
        return v === null ? null : outputText(t, v);
      },
      [e],
      e.text,
    );
  };
  const l = toText(l0);
  const r = toText(r0);
  return derivedExpr(
    T.text,
    strict2(l.eval, r.eval, ((a: string, b: string) => a + b) as never),
    [l, r],
    `(${l.text} || ${r.text})`,
  );
}

function jsonbConcat(a: Jsonb, b: Jsonb): Jsonb {
  const x = a.value;
  const y = b.value;
  const isObj = (v: JsonValue) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (isObj(x) && isObj(y)) return new Jsonb({ ...(x as object), ...(y as object) } as JsonValue);
  const ax = Array.isArray(x) ? x : [x];
  const ay = Array.isArray(y) ? y : [y];
  return new Jsonb([...ax, ...ay]);
}

const likeCache = new Map<string, RegExp>();

/** PostgreSQL LIKE pattern to a RegExp: % any run, _ one character, backslash escapes. */
export function likeRegExp(pattern: string, insensitive: boolean, escapeChar = "\\"): RegExp {
  const cacheKey = `${insensitive ? "i" : "s"}${escapeChar}${pattern}`;
  const hit = likeCache.get(cacheKey);
  if (hit) return hit;
  let re = "^";
  const chars = Array.from(pattern);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (escapeChar !== "" && c === escapeChar) {
      const next = chars[++i];
      if (next === undefined) {
        throw sqlError("22025", "LIKE pattern must not end with escape character");
      }
      re += next.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    } else if (c === "%") re += "[\\s\\S]*";
    else if (c === "_") re += "[\\s\\S]";
    else re += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  const compiled = new RegExp(`${re}$`, insensitive ? "iu" : "u");
  if (likeCache.size > 1000) likeCache.clear();
  likeCache.set(cacheKey, compiled);
  return compiled;
}

export function likeExpr(
  l0: Expr,
  r0: Expr,
  params: ParamTypes,
  insensitive: boolean,
  negate: boolean,
  escapeExpr?: Expr,
): Expr {
  const toText = (e: Expr) =>
    category(e.type) === "S" || e.type.kind === "unknown" ? coerce(e, T.text, "implicit", params) : e;
  const l = toText(l0);
  const r = toText(r0);
  if (l.type.kind !== "text" || r.type.kind !== "text") {
    throw noOperator(insensitive ? "~~*" : "~~", l.type, r.type);
  }
  let escapeChar = "\\";
  if (escapeExpr) {
    const esc = coerce(escapeExpr, T.text, "implicit", params);
    if (!esc.isConst) throw unsupported("a LIKE ESCAPE character that is not a constant");
    escapeChar = (esc.value as string | null) ?? "\\";
    if (Array.from(escapeChar).length > 1)
      throw sqlError("22019", "invalid escapeChar string", {
        hint: "Escape string must be empty or one character.",
      });
  }
  const le = l.eval;
  const re = r.eval;
  const op = `${negate ? "!" : ""}~~${insensitive ? "*" : ""}`;
  if (r.isConst && typeof r.value === "string") {
    const rx = likeRegExp(r.value, insensitive, escapeChar);
    return derivedExpr(
      T.bool,
      (row, env) => {
        const a = le(row, env);
        return a === null ? null : rx.test(a as string) !== negate;
      },
      [l, r],
      `(${l.text} ${op} ${r.text})`,
    );
  }
  return derivedExpr(
    T.bool,
    (row, env) => {
      const a = le(row, env);
      if (a === null) return null;
      const b = re(row, env);
      if (b === null) return null;
      return likeRegExp(b as string, insensitive, escapeChar).test(a as string) !== negate;
    },
    [l, r],
    `(${l.text} ${op} ${r.text})`,
  );
}

export function regexExpr(op: string, l0: Expr, r0: Expr, params: ParamTypes): Expr {
  const l = coerce(l0, T.text, "implicit", params);
  const r = coerce(r0, T.text, "implicit", params);
  const insensitive = op.includes("*");
  const negate = op.startsWith("!");
  const le = l.eval;
  const re = r.eval;
  const cache = new Map<string, RegExp>();
  return derivedExpr(
    T.bool,
    (row, env) => {
      const a = le(row, env);
      if (a === null) return null;
      const b = re(row, env);
      if (b === null) return null;
      let rx = cache.get(b as string);
      if (!rx) {
        try {
          rx = new RegExp(b as string, insensitive ? "iu" : "u");
        } catch (error) {
          throw sqlError("2201B", `invalid regular expression: ${(error as Error).message}`);
        }
        if (cache.size < 100) cache.set(b as string, rx);
      }
      return rx.test(a as string) !== negate;
    },
    [l, r],
    `(${l.text} ${op} ${r.text})`,
  );
}

// ---- jsonb --------------------------------------------------------------------------------------------------------

export function jsonbOpExpr(op: string, l0: Expr, r0: Expr, params: ParamTypes): Expr {
  const l = coerce(l0, T.jsonb, "implicit", params);
  if (l.type.kind !== "jsonb") throw noOperator(op, l0.type, r0.type);
  switch (op) {
    case "->":
    case "->>": {
      let r = r0;
      if (r.type.kind === "unknown") r = coerce(r, T.text, "implicit", params);
      const byIndex = r.type.kind === "int2" || r.type.kind === "int4" || r.type.kind === "int8";
      if (!byIndex) r = coerce(r, T.text, "implicit", params);
      const asText = op === "->>";
      const le = l.eval;
      const re = r.eval;
      return derivedExpr(
        asText ? T.text : T.jsonb,
        (row, env) => {
          const a = le(row, env);
          if (a === null) return null;
          const k = re(row, env);
          if (k === null) return null;
          const v = jsonGet((a as Jsonb).value, byIndex ? Number(k) : (k as string));
          if (asText) return jsonText(v);
          return v === undefined ? null : new Jsonb(v);
        },
        [l, r],
        `(${l.text} ${op} ${r.text})`,
      );
    }
    case "@>":
    case "<@": {
      const r = coerce(r0, T.jsonb, "implicit", params);
      const [a, b] = op === "@>" ? [l, r] : [r, l];
      return derivedExpr(
        T.bool,
        strict2(a.eval, b.eval, ((x: Jsonb, y: Jsonb) => jsonContains(x.value, y.value)) as never),
        [l, r],
        `(${l.text} ${op} ${r.text})`,
      );
    }
    case "?": {
      const r = coerce(r0, T.text, "implicit", params);
      return derivedExpr(
        T.bool,
        strict2(l.eval, r.eval, ((x: Jsonb, k: string) => {
          const v = x.value;
          if (Array.isArray(v)) return v.includes(k);
          return v !== null && typeof v === "object" ? Object.hasOwn(v, k) : v === k;
        }) as never),
        [l, r],
        `(${l.text} ? ${r.text})`,
      );
    }
    default:
      throw unsupported(`jsonb operator ${op}`);
  }
}

export { noOperator };
