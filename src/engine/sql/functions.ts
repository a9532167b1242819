/**
 * Scalar functions. Each entry resolves its arguments' types (as PostgreSQL's function lookup would for the
 * supported signatures) and returns a compiled expression. An unknown name or signature is 42883, like
 * PostgreSQL's "function f(integer) does not exist".
 */

import { createHash, randomUUID } from "node:crypto";
import { arrayFunctions } from "./array-ops.js";
import { civilFromDays, daysFromCivil, nowMicros, US_PER_DAY } from "./datetime.js";
import { SqlState, sqlError, unsupported } from "./errors.js";
import { coerce, derivedExpr, type Expr, type ParamTypes, resolveUnknown, unifyTypes } from "./expr.js";
import { Jsonb, type JsonValue, jsonTypeof, jsToJsonb } from "./jsonb.js";
import {
  absNumeric,
  ceilNumeric,
  floatToNumeric,
  floorNumeric,
  modNumeric,
  roundNumeric,
  signNumeric,
  truncNumeric,
} from "./numeric.js";
import { systemFunctions } from "./system-functions.js";
import {
  category,
  charLength,
  comparator,
  outputText,
  type SqlType,
  T,
  typeName,
  type Value,
} from "./types.js";
import { vectorFunctions } from "./vector-ops.js";

export type FunctionImpl = (args: Expr[], params: ParamTypes, name: string) => Expr;

function noFunction(name: string, args: readonly Expr[]) {
  return sqlError(
    SqlState.UndefinedFunction,
    `function ${name}(${args.map((a) => (a.type.kind === "unknown" ? "unknown" : typeName(a.type))).join(", ")}) does not exist`,
    {
      hint: "No function matches the given name and argument types. You might need to add explicit type casts.",
    },
  );
}

function arity(name: string, args: readonly Expr[], min: number, max = min): void {
  if (args.length < min || args.length > max) throw noFunction(name, args);
}

function call(
  name: string,
  args: Expr[],
  type: SqlType,
  f: (...vals: never[]) => Value,
  strict = true,
): Expr {
  const evals = args.map((a) => a.eval);
  const text = `${name}(${args.map((a) => a.text).join(", ")})`;
  let fn: Expr["eval"];
  if (evals.length === 1) {
    const e0 = evals[0]!;
    fn = (row, env) => {
      const a = e0(row, env);
      return a === null && strict ? null : f(a as never);
    };
  } else if (evals.length === 2) {
    const e0 = evals[0]!;
    const e1 = evals[1]!;
    fn = (row, env) => {
      const a = e0(row, env);
      if (a === null && strict) return null;
      const b = e1(row, env);
      if (b === null && strict) return null;
      return f(a as never, b as never);
    };
  } else {
    fn = (row, env) => {
      const vals: Value[] = new Array(evals.length);
      for (let i = 0; i < evals.length; i++) {
        const v = evals[i]!(row, env);
        if (v === null && strict) return null;
        vals[i] = v;
      }
      return f(...(vals as never[]));
    };
  }
  return derivedExpr(type, fn, args, text);
}

const asText = (e: Expr, p: ParamTypes) =>
  coerce(
    e.type.kind === "unknown" ? e : e,
    category(e.type) === "S" || e.type.kind === "unknown" ? T.text : e.type,
    "implicit",
    p,
  );

function textArg(name: string, args: Expr[], i: number, p: ParamTypes): Expr {
  const a = asText(args[i]!, p);
  if (a.type.kind !== "text") throw noFunction(name, args);
  return a;
}

function intArg(name: string, args: Expr[], i: number, p: ParamTypes): Expr {
  const a = args[i]!;
  const k = a.type.kind;
  if (k === "unknown" || k === "int2" || k === "int4") return coerce(a, T.int4, "implicit", p);
  if (k === "int8") return coerce(a, T.int4, "assignment", p);
  throw noFunction(name, args);
}

function numericArg(name: string, args: Expr[], i: number, p: ParamTypes): Expr {
  const a = args[i]!;
  if (a.type.kind === "unknown") return coerce(a, T.numeric, "implicit", p);
  if (category(a.type) !== "N") throw noFunction(name, args);
  return a;
}

function mathUnary(
  name: string,
  onNumeric: (v: string) => string,
  onFloat: (v: number) => number,
  keepInts: boolean,
): FunctionImpl {
  return (args, p) => {
    arity(name, args, 1);
    const a = numericArg(name, args, 0, p);
    const k = a.type.kind;
    if (k === "numeric") return call(name, [a], T.numeric, onNumeric as never);
    if (keepInts && (k === "int2" || k === "int4" || k === "int8")) {
      return call(name, [a], a.type, ((v: number | bigint) => {
        if (typeof v === "bigint") return v < 0n ? -v : v;
        const r = onFloat(v);
        return r === 0 ? 0 : r;
      }) as never);
    }
    const f = coerce(a, T.float8, "implicit", p);
    return call(name, [f], T.float8, onFloat as never);
  };
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function sliceCodePoints(s: string, start: number, end?: number): string {
  if (charLength(s) === s.length) return s.slice(start, end);
  return Array.from(s).slice(start, end).join("");
}

function substring(s: string, from: number, count?: number): string {
  // PostgreSQL: 1-based start, may be <= 0; a negative count is an error.
  if (count !== undefined && count < 0) throw sqlError("22011", "negative substring length not allowed");
  const start = from - 1;
  const end = count === undefined ? undefined : start + count;
  const s0 = Math.max(start, 0);
  if (end !== undefined && end <= s0) return "";
  return sliceCodePoints(s, s0, end);
}

function trimChars(s: string, chars: string, left: boolean, right: boolean): string {
  const set = new Set(Array.from(chars));
  const arr = Array.from(s);
  let i = 0;
  let j = arr.length;
  if (left) while (i < j && set.has(arr[i]!)) i++;
  if (right) while (j > i && set.has(arr[j - 1]!)) j--;
  return arr.slice(i, j).join("");
}

function textFunctions(m: Map<string, FunctionImpl>): void {
  m.set("lower", (args, p) => {
    arity("lower", args, 1);
    return call("lower", [textArg("lower", args, 0, p)], T.text, ((s: string) => s.toLowerCase()) as never);
  });
  m.set("upper", (args, p) => {
    arity("upper", args, 1);
    return call("upper", [textArg("upper", args, 0, p)], T.text, ((s: string) => s.toUpperCase()) as never);
  });
  const length: FunctionImpl = (args, p, name) => {
    arity(name, args, 1);
    if (args[0]!.type.kind === "bytea")
      return call(name, args, T.int4, ((b: Uint8Array) => b.length) as never);
    if (args[0]!.type.kind === "bpchar") {
      return call(name, args, T.int4, ((s: string) => charLength(s.replace(/ +$/, ""))) as never);
    }
    return call(name, [textArg(name, args, 0, p)], T.int4, charLength as never);
  };
  m.set("length", length);
  m.set("char_length", length);
  m.set("character_length", length);
  m.set("octet_length", (args, p) => {
    arity("octet_length", args, 1);
    if (args[0]!.type.kind === "bytea")
      return call("octet_length", args, T.int4, ((b: Uint8Array) => b.length) as never);
    return call("octet_length", [textArg("octet_length", args, 0, p)], T.int4, ((s: string) =>
      Buffer.byteLength(s)) as never);
  });
  const substr: FunctionImpl = (args, p, name) => {
    arity(name, args, 2, 3);
    const s = textArg(name, args, 0, p);
    const from = intArg(name, args, 1, p);
    if (args.length === 2)
      return call(name, [s, from], T.text, ((a: string, b: number) => substring(a, b)) as never);
    const n = intArg(name, args, 2, p);
    return call(name, [s, from, n], T.text, ((a: string, b: number, c: number) =>
      substring(a, b, c)) as never);
  };
  m.set("substr", substr);
  m.set("substring", substr);
  const trim =
    (left: boolean, right: boolean): FunctionImpl =>
    (args, p, name) => {
      arity(name, args, 1, 2);
      const s = textArg(name, args, 0, p);
      if (args.length === 1)
        return call(name, [s], T.text, ((a: string) => trimChars(a, " ", left, right)) as never);
      const c = textArg(name, args, 1, p);
      return call(name, [s, c], T.text, ((a: string, b: string) => trimChars(a, b, left, right)) as never);
    };
  m.set("btrim", trim(true, true));
  m.set("ltrim", trim(true, false));
  m.set("rtrim", trim(false, true));
  m.set("replace", (args, p) => {
    arity("replace", args, 3);
    const a = [0, 1, 2].map((i) => textArg("replace", args, i, p));
    return call("replace", a, T.text, ((s: string, f: string, t: string) =>
      f === "" ? s : s.split(f).join(t)) as never);
  });
  m.set("concat", (args, p) => {
    const parts = args.map((a) => resolveUnknown(a, p));
    const types = parts.map((a) => a.type);
    return call(
      "concat",
      parts,
      T.text,
      ((...vals: Value[]) => {
        let s = "";
        for (let i = 0; i < vals.length; i++) if (vals[i] !== null) s += outputText(types[i]!, vals[i]!);
        return s;
      }) as never,
      false,
    );
  });
  m.set("concat_ws", (args, p) => {
    if (args.length < 1) throw noFunction("concat_ws", args);
    const sep = textArg("concat_ws", args, 0, p);
    const parts = args.slice(1).map((a) => resolveUnknown(a, p));
    const types = parts.map((a) => a.type);
    return call(
      "concat_ws",
      [sep, ...parts],
      T.text,
      ((s: string | null, ...vals: Value[]) => {
        if (s === null) return null;
        const out: string[] = [];
        for (let i = 0; i < vals.length; i++) if (vals[i] !== null) out.push(outputText(types[i]!, vals[i]!));
        return out.join(s);
      }) as never,
      false,
    );
  });
  m.set("left", (args, p) => {
    arity("left", args, 2);
    return call("left", [textArg("left", args, 0, p), intArg("left", args, 1, p)], T.text, ((
      s: string,
      n: number,
    ) => {
      const len = charLength(s);
      return sliceCodePoints(s, 0, n >= 0 ? n : Math.max(len + n, 0));
    }) as never);
  });
  m.set("right", (args, p) => {
    arity("right", args, 2);
    return call("right", [textArg("right", args, 0, p), intArg("right", args, 1, p)], T.text, ((
      s: string,
      n: number,
    ) => {
      const len = charLength(s);
      return sliceCodePoints(s, n >= 0 ? Math.max(len - n, 0) : Math.min(-n, len));
    }) as never);
  });
  m.set("repeat", (args, p) => {
    arity("repeat", args, 2);
    return call("repeat", [textArg("repeat", args, 0, p), intArg("repeat", args, 1, p)], T.text, ((
      s: string,
      n: number,
    ) => (n <= 0 ? "" : s.repeat(n))) as never);
  });
  m.set("reverse", (args, p) => {
    arity("reverse", args, 1);
    return call("reverse", [textArg("reverse", args, 0, p)], T.text, ((s: string) =>
      Array.from(s).reverse().join("")) as never);
  });
  const strpos: FunctionImpl = (args, p, name) => {
    arity(name, args, 2);
    // position(a IN b) arrives as position(b, a).
    const a = [textArg(name, args, 0, p), textArg(name, args, 1, p)];
    return call(name, a, T.int4, ((s: string, sub: string) => {
      const i = s.indexOf(sub);
      return i < 0 ? 0 : charLength(s.slice(0, i)) + 1;
    }) as never);
  };
  m.set("strpos", strpos);
  m.set("position", strpos);
  m.set("starts_with", (args, p) => {
    arity("starts_with", args, 2);
    return call(
      "starts_with",
      [textArg("starts_with", args, 0, p), textArg("starts_with", args, 1, p)],
      T.bool,
      ((s: string, x: string) => s.startsWith(x)) as never,
    );
  });
  const pad =
    (left: boolean): FunctionImpl =>
    (args, p, name) => {
      arity(name, args, 2, 3);
      const a = [textArg(name, args, 0, p), intArg(name, args, 1, p)];
      if (args.length === 3) a.push(textArg(name, args, 2, p));
      return call(name, a, T.text, ((s: string, n: number, fill = " ") => {
        const chars = Array.from(s);
        if (n <= chars.length) return chars.slice(0, Math.max(n, 0)).join("");
        if (fill === "") return s;
        const f = Array.from(fill);
        const padding: string[] = [];
        for (let i = 0; padding.length < n - chars.length; i++) padding.push(f[i % f.length]!);
        return left ? padding.join("") + s : s + padding.join("");
      }) as never);
    };
  m.set("lpad", pad(true));
  m.set("rpad", pad(false));
  m.set("split_part", (args, p) => {
    arity("split_part", args, 3);
    const a = [
      textArg("split_part", args, 0, p),
      textArg("split_part", args, 1, p),
      intArg("split_part", args, 2, p),
    ];
    return call("split_part", a, T.text, ((s: string, d: string, n: number) => {
      if (n === 0) throw sqlError(SqlState.InvalidParameterValue, "field position must not be zero");
      const parts = d === "" ? [s] : s.split(d);
      const i = n > 0 ? n - 1 : parts.length + n;
      return parts[i] ?? "";
    }) as never);
  });
  m.set("md5", (args, p) => {
    arity("md5", args, 1);
    return call("md5", [textArg("md5", args, 0, p)], T.text, ((s: string) =>
      createHash("md5").update(s).digest("hex")) as never);
  });
}

function mathFunctions(m: Map<string, FunctionImpl>): void {
  m.set("abs", mathUnary("abs", absNumeric, Math.abs, true));
  m.set("floor", mathUnary("floor", floorNumeric, Math.floor, false));
  m.set("ceil", mathUnary("ceil", ceilNumeric, Math.ceil, false));
  m.set("ceiling", mathUnary("ceiling", ceilNumeric, Math.ceil, false));
  m.set("sign", mathUnary("sign", signNumeric, Math.sign, false));
  m.set("round", (args, p) => {
    arity("round", args, 1, 2);
    const a = numericArg("round", args, 0, p);
    if (args.length === 2) {
      const x = coerce(a, T.numeric, "implicit", p);
      return call("round", [x, intArg("round", args, 1, p)], T.numeric, roundNumeric as never);
    }
    if (a.type.kind === "numeric")
      return call("round", [a], T.numeric, ((v: string) => roundNumeric(v, 0)) as never);
    return call("round", [coerce(a, T.float8, "implicit", p)], T.float8, roundHalfEven as never);
  });
  m.set("trunc", (args, p) => {
    arity("trunc", args, 1, 2);
    const a = numericArg("trunc", args, 0, p);
    if (args.length === 2 || a.type.kind === "numeric") {
      const x = coerce(a, T.numeric, "implicit", p);
      if (args.length === 2)
        return call("trunc", [x, intArg("trunc", args, 1, p)], T.numeric, truncNumeric as never);
      return call("trunc", [x], T.numeric, ((v: string) => truncNumeric(v, 0)) as never);
    }
    return call("trunc", [coerce(a, T.float8, "implicit", p)], T.float8, Math.trunc as never);
  });
  const floatFn =
    (name: string, f: (...x: number[]) => number, n = 1, check?: (...x: number[]) => void): FunctionImpl =>
    (args, p) => {
      arity(name, args, n);
      const a = args.map((_x, i) => coerce(numericArg(name, args, i, p), T.float8, "implicit", p));
      return call(name, a, T.float8, ((...x: number[]) => {
        check?.(...x);
        return f(...x);
      }) as never);
    };
  m.set(
    "sqrt",
    floatFn("sqrt", Math.sqrt, 1, (x) => {
      if (x! < 0) throw sqlError("2201F", "cannot take square root of a negative number");
    }),
  );
  m.set(
    "power",
    floatFn("power", (a, b) => a! ** b!, 2),
  );
  m.set(
    "pow",
    floatFn("pow", (a, b) => a! ** b!, 2),
  );
  m.set("exp", floatFn("exp", Math.exp));
  m.set(
    "ln",
    floatFn("ln", Math.log, 1, (x) => {
      if (x! <= 0)
        throw sqlError(
          "2201E",
          x === 0 ? "cannot take logarithm of zero" : "cannot take logarithm of a negative number",
        );
    }),
  );
  m.set(
    "log",
    floatFn("log", Math.log10, 1, (x) => {
      if (x! <= 0)
        throw sqlError(
          "2201E",
          x === 0 ? "cannot take logarithm of zero" : "cannot take logarithm of a negative number",
        );
    }),
  );
  m.set("pi", (args) => {
    arity("pi", args, 0);
    return { type: T.float8, eval: () => Math.PI, refs: [], isConst: true, value: Math.PI, text: "pi()" };
  });
  m.set("random", (args) => {
    arity("random", args, 0);
    return { type: T.float8, eval: () => Math.random(), refs: [], text: "random()", volatile: true };
  });
  m.set("mod", (args, p) => {
    arity("mod", args, 2);
    const a = numericArg("mod", args, 0, p);
    const b = numericArg("mod", args, 1, p);
    const t = unifyTypes([a, b], "mod");
    const x = coerce(a, t, "implicit", p);
    const y = coerce(b, t, "implicit", p);
    if (t.kind === "numeric") {
      return call("mod", [x, y], T.numeric, modNumeric as never);
    }
    return call("mod", [x, y], t, ((u: number, v: number) => {
      if (v === 0) throw sqlError(SqlState.DivisionByZero, "division by zero");
      const r = u % v;
      return r === 0 ? 0 : r;
    }) as never);
  });
}

function timeFunctions(m: Map<string, FunctionImpl>): void {
  const nowFn: FunctionImpl = (args, _p, name) => {
    arity(name, args, 0);
    return { type: T.timestamptz, eval: (_r, env) => env.now, refs: [], text: `${name}()` };
  };
  m.set("now", nowFn);
  m.set("transaction_timestamp", nowFn);
  m.set("statement_timestamp", nowFn);
  m.set("clock_timestamp", (args) => {
    arity("clock_timestamp", args, 0);
    return {
      type: T.timestamptz,
      eval: () => nowMicros(),
      refs: [],
      text: "clock_timestamp()",
      volatile: true,
    };
  });
  m.set("gen_random_uuid", (args) => {
    arity("gen_random_uuid", args, 0);
    return { type: T.uuid, eval: () => randomUUID(), refs: [], text: "gen_random_uuid()", volatile: true };
  });
  const MONOTONIC_UNITS = new Set(["year", "epoch", "decade", "century", "millennium", "julian", "isoyear"]);
  const EXTRACT_UNITS = new Set([
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "dow",
    "isodow",
    "doy",
    "quarter",
  ]);
  /** Microseconds as numeric text with scale 6 ("56.789000", "-0.500000"). */
  const microsText = (us: number): string => {
    const neg = us < 0;
    const a = Math.abs(us);
    const whole = Math.floor(a / 1_000_000);
    const frac = String(a - whole * 1_000_000).padStart(6, "0");
    return `${neg ? "-" : ""}${whole}.${frac}`;
  };
  const extract: FunctionImpl = (args, p, name) => {
    arity(name, args, 2);
    const field = textArg(name, args, 0, p);
    let src = args[1]!;
    if (src.type.kind === "unknown") src = coerce(src, T.timestamptz, "implicit", p);
    if (category(src.type) !== "D") throw noFunction(name, args);
    const isDate = src.type.kind === "date";
    const resultType = name === "date_part" ? T.float8 : T.numeric;
    const numeric = resultType === T.numeric;
    return call(name, [field, src], resultType, ((f: string, v: number) => {
      const unit = f.toLowerCase();
      if (!Number.isFinite(v)) {
        // PostgreSQL 14+: monotonic units of ±infinity are ±Infinity, the others NULL.
        if (MONOTONIC_UNITS.has(unit)) return numeric ? (v > 0 ? "Infinity" : "-Infinity") : v;
        if (EXTRACT_UNITS.has(unit)) return null;
      }
      // extract() of a date has no time-of-day units (date_part converts the date to a timestamp instead).
      if (numeric && isDate && (unit === "hour" || unit === "minute" || unit === "second"))
        throw sqlError(SqlState.FeatureNotSupported, `unit "${f}" not supported for type date`);
      const us = isDate ? v * US_PER_DAY : v;
      const days = Math.floor(us / US_PER_DAY);
      const rest = us - days * US_PER_DAY;
      const { y, m: mo, d } = civilFromDays(days);
      let out: number | string;
      switch (f.toLowerCase()) {
        case "year":
          out = y;
          break;
        case "month":
          out = mo;
          break;
        case "day":
          out = d;
          break;
        case "hour":
          out = Math.floor(rest / 3_600_000_000);
          break;
        case "minute":
          out = Math.floor(rest / 60_000_000) % 60;
          break;
        case "second":
          // extract gives numeric with scale 6 (microseconds), as PostgreSQL does.
          if (numeric) return microsText(rest % 60_000_000);
          out = (rest % 60_000_000) / 1_000_000;
          break;
        case "epoch":
          if (numeric) return isDate ? String(v * 86_400) : microsText(us);
          out = us / 1_000_000;
          break;
        case "dow":
          out = (((days + 4) % 7) + 7) % 7;
          break;
        case "isodow":
          out = ((((days + 3) % 7) + 7) % 7) + 1;
          break;
        case "doy":
          out = days - daysFromCivil(y, 1, 1) + 1;
          break;
        case "quarter":
          out = Math.floor((mo - 1) / 3) + 1;
          break;
        default:
          throw sqlError(
            SqlState.FeatureNotSupported,
            `unit "${f}" not supported for type ${typeName(isDate ? T.date : T.timestamptz)}`,
          );
      }
      if (resultType === T.float8) return out;
      return typeof out === "number" && Number.isInteger(out) ? String(out) : floatToNumeric(out as number);
    }) as never);
  };
  m.set("date_part", extract);
  m.set("extract", extract);
  m.set("date_trunc", (args, p) => {
    arity("date_trunc", args, 2);
    const field = textArg("date_trunc", args, 0, p);
    let src = args[1]!;
    if (src.type.kind === "unknown" || src.type.kind === "date")
      src = coerce(src, T.timestamptz, "implicit", p);
    if (src.type.kind !== "timestamptz" && src.type.kind !== "timestamp")
      throw noFunction("date_trunc", args);
    return call("date_trunc", [field, src], src.type, ((f: string, us: number) => {
      if (!Number.isFinite(us)) return us; // ±infinity truncates to itself
      const days = Math.floor(us / US_PER_DAY);
      const { y, m: mo } = civilFromDays(days);
      switch (f.toLowerCase()) {
        case "year":
          return daysFromCivil(y, 1, 1) * US_PER_DAY;
        case "month":
          return daysFromCivil(y, mo, 1) * US_PER_DAY;
        case "day":
          return days * US_PER_DAY;
        case "hour":
          return Math.floor(us / 3_600_000_000) * 3_600_000_000;
        case "minute":
          return Math.floor(us / 60_000_000) * 60_000_000;
        case "second":
          return Math.floor(us / 1_000_000) * 1_000_000;
        default:
          throw sqlError(
            SqlState.FeatureNotSupported,
            `unit "${f}" not supported for type timestamp with time zone`,
          );
      }
    }) as never);
  });
}

function jsonFunctions(m: Map<string, FunctionImpl>): void {
  const toJson = (t: SqlType, v: Value): JsonValue => {
    if (v === null) return null;
    if (v instanceof Jsonb) return v.value;
    switch (t.kind) {
      case "int2":
      case "int4":
      case "float4":
      case "float8":
        return v as number;
      case "int8":
        return Number(v);
      case "numeric":
        return Number(v);
      case "bool":
        return v as boolean;
      default:
        return outputText(t, v);
    }
  };
  m.set("to_jsonb", (args, p) => {
    arity("to_jsonb", args, 1);
    const a = resolveUnknown(args[0]!, p);
    const t = a.type;
    return call("to_jsonb", [a], T.jsonb, ((v: Value) => new Jsonb(toJson(t, v))) as never);
  });
  m.set("jsonb_build_object", (args, p) => {
    if (args.length % 2 !== 0) {
      throw sqlError(SqlState.InvalidParameterValue, "argument list must have even number of elements", {
        hint: "The arguments of jsonb_build_object() must consist of alternating keys and values.",
      });
    }
    const a = args.map((x) => resolveUnknown(x, p));
    const types = a.map((x) => x.type);
    return call(
      "jsonb_build_object",
      a,
      T.jsonb,
      ((...vals: Value[]) => {
        const o: { [k: string]: JsonValue } = {};
        for (let i = 0; i < vals.length; i += 2) {
          if (vals[i] === null)
            throw sqlError(SqlState.InvalidParameterValue, "argument 1: key must not be null");
          o[outputText(types[i]!, vals[i]!)] = toJson(types[i + 1]!, vals[i + 1]!);
        }
        return new Jsonb(o);
      }) as never,
      false,
    );
  });
  m.set("jsonb_build_array", (args, p) => {
    const a = args.map((x) => resolveUnknown(x, p));
    const types = a.map((x) => x.type);
    return call(
      "jsonb_build_array",
      a,
      T.jsonb,
      ((...vals: Value[]) => new Jsonb(vals.map((v, i) => toJson(types[i]!, v)))) as never,
      false,
    );
  });
  m.set("jsonb_typeof", (args, p) => {
    arity("jsonb_typeof", args, 1);
    return call("jsonb_typeof", [coerce(args[0]!, T.jsonb, "implicit", p)], T.text, ((j: Jsonb) =>
      jsonTypeof(j.value)) as never);
  });
  m.set("jsonb_array_length", (args, p) => {
    arity("jsonb_array_length", args, 1);
    return call("jsonb_array_length", [coerce(args[0]!, T.jsonb, "implicit", p)], T.int4, ((j: Jsonb) => {
      if (!Array.isArray(j.value))
        throw sqlError(SqlState.InvalidParameterValue, "cannot get array length of a non-array");
      return j.value.length;
    }) as never);
  });
  m.set("jsonb_extract_path_text", (args, p) => {
    if (args.length < 1) throw noFunction("jsonb_extract_path_text", args);
    const a = [
      coerce(args[0]!, T.jsonb, "implicit", p),
      ...args.slice(1).map((_x, i) => textArg("jsonb_extract_path_text", args, i + 1, p)),
    ];
    return call("jsonb_extract_path_text", a, T.text, ((j: Jsonb, ...path: string[]) => {
      let v: JsonValue | undefined = j.value;
      for (const k of path) {
        if (v === null || typeof v !== "object") return null;
        v = Array.isArray(v) ? v[Number(k)] : Object.hasOwn(v, k) ? v[k] : undefined;
        if (v === undefined) return null;
      }
      return v === null ? null : typeof v === "string" ? v : JSON.stringify(v);
    }) as never);
  });
  void jsToJsonb;
}

function miscFunctions(m: Map<string, FunctionImpl>): void {
  m.set("version", (args) => {
    arity("version", args, 0);
    const v = "PostgreSQL 18.0 (Twill DB)";
    return { type: T.text, eval: () => v, refs: [], isConst: true, value: v, text: "version()" };
  });
  m.set("pg_typeof", (args, p) => {
    arity("pg_typeof", args, 1);
    const a = resolveUnknown(args[0]!, p);
    const name = typeName(a.type);
    return {
      type: T.text,
      eval: () => name,
      refs: [],
      isConst: true,
      value: name,
      text: `pg_typeof(${a.text})`,
    };
  });
  m.set("nextval", () => {
    throw unsupported("nextval(); use a serial or bigserial column");
  });
  void comparator;
}

export const scalarFunctions: ReadonlyMap<string, FunctionImpl> = (() => {
  const m = new Map<string, FunctionImpl>();
  textFunctions(m);
  mathFunctions(m);
  timeFunctions(m);
  jsonFunctions(m);
  miscFunctions(m);
  systemFunctions(m, noFunction);
  arrayFunctions(m);
  vectorFunctions(m);
  return m;
})();

export { noFunction };
