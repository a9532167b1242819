/**
 * Aggregate functions: count, sum, avg, min, max, bool_and/every, bool_or, string_agg, jsonb_agg, array_agg. Result types
 * and arithmetic are PostgreSQL's: sum(int4) is int8, sum(int8) and avg(integer) are numeric (exact, printed with
 * PostgreSQL's division scale), sum(float8) is float8. NULL inputs are skipped; an empty group gives NULL
 * (0 for count).
 */

import { SqlArray } from "./arrays.js";
import { SqlState, sqlError, unsupported } from "./errors.js";
import { coerce, type Expr, hashKeyFn, type ParamTypes, resolveUnknown } from "./expr.js";
import { Jsonb, type JsonValue } from "./jsonb.js";
import { addNumeric, type Dec, divDec, formatDec, toDec } from "./numeric.js";
import {
  arrayOf,
  category,
  comparator,
  normInt8,
  outputText,
  type SqlType,
  T,
  typeName,
  type Value,
} from "./types.js";

export interface Accumulator {
  add(v: Value): void;
  result(): Value;
}

export interface AggregateSpec {
  name: string;
  type: SqlType;
  /** Arguments compiled against the input rows (empty for count(*)). */
  args: Expr[];
  distinct: boolean;
  filter: Expr | undefined;
  create(): Accumulator;
  text: string;
}

export const AGGREGATES = new Set([
  "count",
  "sum",
  "avg",
  "min",
  "max",
  "bool_and",
  "bool_or",
  "every",
  "string_agg",
  "jsonb_agg",
  "array_agg",
]);

function noAgg(name: string, t: SqlType) {
  return sqlError(SqlState.UndefinedFunction, `function ${name}(${typeName(t)}) does not exist`, {
    hint: "No function matches the given name and argument types. You might need to add explicit type casts.",
  });
}

class CountAcc implements Accumulator {
  n = 0;
  add(v: Value): void {
    if (v !== null) this.n++;
  }
  result(): Value {
    return this.n;
  }
}

class CountStarAcc implements Accumulator {
  n = 0;
  add(): void {
    this.n++;
  }
  result(): Value {
    return this.n;
  }
}

/** sum(int2/int4) → int8; sum(int8) → numeric (kept as bigint while summing). */
class IntSumAcc implements Accumulator {
  small = 0;
  big = 0n;
  any = false;
  constructor(private readonly numericResult: boolean) {}
  add(v: Value): void {
    if (v === null) return;
    this.any = true;
    if (typeof v === "number") {
      const r = this.small + v;
      if (Number.isSafeInteger(r)) {
        this.small = r;
        return;
      }
      this.big += BigInt(this.small) + BigInt(v);
      this.small = 0;
    } else {
      this.big += v as bigint;
    }
  }
  total(): bigint {
    return this.big + BigInt(this.small);
  }
  result(): Value {
    if (!this.any) return null;
    const t = this.total();
    return this.numericResult ? t.toString() : normInt8(t);
  }
}

class FloatSumAcc implements Accumulator {
  sum = 0;
  any = false;
  constructor(private readonly float4: boolean) {}
  add(v: Value): void {
    if (v === null) return;
    // Start from the first value, not from 0, as PostgreSQL does: the sum of {-0} is -0.
    this.sum = this.any ? this.sum + (v as number) : (v as number);
    this.any = true;
  }
  result(): Value {
    return this.any ? (this.float4 ? Math.fround(this.sum) : this.sum) : null;
  }
}

class NumericSumAcc implements Accumulator {
  sum: string | null = null;
  add(v: Value): void {
    if (v === null) return;
    this.sum = this.sum === null ? (v as string) : addNumeric(this.sum, v as string);
  }
  result(): Value {
    return this.sum;
  }
}

class IntAvgAcc implements Accumulator {
  private readonly sum = new IntSumAcc(true);
  n = 0;
  add(v: Value): void {
    if (v === null) return;
    this.n++;
    this.sum.add(v);
  }
  result(): Value {
    if (this.n === 0) return null;
    return formatDec(divDec({ m: this.sum.total(), s: 0 }, { m: BigInt(this.n), s: 0 }));
  }
}

class NumericAvgAcc implements Accumulator {
  private readonly sum = new NumericSumAcc();
  n = 0;
  add(v: Value): void {
    if (v === null) return;
    this.n++;
    this.sum.add(v);
  }
  result(): Value {
    if (this.n === 0) return null;
    const s = toDec(this.sum.result() as string);
    if (typeof s === "string") return s;
    return formatDec(divDec(s as Dec, { m: BigInt(this.n), s: 0 }));
  }
}

class FloatAvgAcc implements Accumulator {
  sum = 0;
  n = 0;
  add(v: Value): void {
    if (v === null) return;
    this.n++;
    this.sum += v as number;
  }
  result(): Value {
    return this.n === 0 ? null : this.sum / this.n;
  }
}

class MinMaxAcc implements Accumulator {
  best: Value = null;
  constructor(
    private readonly cmp: (a: Exclude<Value, null>, b: Exclude<Value, null>) => number,
    private readonly max: boolean,
  ) {}
  add(v: Value): void {
    if (v === null) return;
    if (this.best === null) {
      this.best = v;
      return;
    }
    const c = this.cmp(v, this.best);
    if (this.max ? c > 0 : c < 0) this.best = v;
  }
  result(): Value {
    return this.best;
  }
}

class BoolAcc implements Accumulator {
  value: boolean | null = null;
  constructor(private readonly and: boolean) {}
  add(v: Value): void {
    if (v === null) return;
    this.value =
      this.value === null
        ? (v as boolean)
        : this.and
          ? this.value && (v as boolean)
          : this.value || (v as boolean);
  }
  result(): Value {
    return this.value;
  }
}

class StringAggAcc implements Accumulator {
  parts: string[] = [];
  seps: string[] = [];
  add(v: Value, sep?: Value): void {
    if (v === null) return;
    if (this.parts.length > 0) this.seps.push(sep === null || sep === undefined ? "" : (sep as string));
    this.parts.push(v as string);
  }
  result(): Value {
    if (this.parts.length === 0) return null;
    let s = this.parts[0]!;
    for (let i = 1; i < this.parts.length; i++) s += this.seps[i - 1]! + this.parts[i]!;
    return s;
  }
}

class JsonbAggAcc implements Accumulator {
  items: JsonValue[] = [];
  any = false;
  constructor(private readonly t: SqlType) {}
  add(v: Value): void {
    this.any = true;
    if (v === null) this.items.push(null);
    else if (v instanceof Jsonb) this.items.push(v.value);
    else if (category(this.t) === "N") this.items.push(Number(v));
    else if (this.t.kind === "bool") this.items.push(v as boolean);
    else this.items.push(outputText(this.t, v));
  }
  result(): Value {
    return this.any ? new Jsonb(this.items) : null;
  }
}

/** array_agg: the inputs in arrival order, NULLs included; NULL for no rows. */
class ArrayAggAcc implements Accumulator {
  items: Value[] = [];
  any = false;
  add(v: Value): void {
    this.any = true;
    this.items.push(v);
  }
  result(): Value {
    return this.any ? new SqlArray(this.items) : null;
  }
}

class ArrayAggDistinctAcc implements Accumulator {
  private readonly seen = new Map<unknown, Exclude<Value, null>>();
  private nulls = false;
  private any = false;
  private readonly key: (v: Exclude<Value, null>) => unknown;
  constructor(private readonly t: SqlType) {
    this.key = hashKeyFn(t);
  }
  add(v: Value): void {
    this.any = true;
    if (v === null) this.nulls = true;
    else {
      const k = this.key(v);
      if (!this.seen.has(k)) this.seen.set(k, v);
    }
  }
  result(): Value {
    if (!this.any) return null;
    const items: Value[] = [...this.seen.values()].sort(comparator(this.t));
    if (this.nulls) items.push(null);
    return new SqlArray(items);
  }
}

/** Wraps an accumulator so that each distinct input is added once. */
class DistinctAcc implements Accumulator {
  private readonly seen = new Set<unknown>();
  constructor(
    private readonly inner: Accumulator,
    private readonly key: (v: Exclude<Value, null>) => unknown,
  ) {}
  add(v: Value, extra?: Value): void {
    if (v === null) return;
    const k = this.key(v);
    if (this.seen.has(k)) return;
    this.seen.add(k);
    (this.inner.add as (a: Value, b?: Value) => void)(v, extra);
  }
  result(): Value {
    return this.inner.result();
  }
}

/** Resolves an aggregate call; `args` are compiled against the input rows. */
export function resolveAggregate(
  name: string,
  args0: Expr[],
  star: boolean,
  distinct: boolean,
  filter: Expr | undefined,
  params: ParamTypes,
): AggregateSpec {
  const text = `${name}(${distinct ? "DISTINCT " : ""}${star ? "*" : args0.map((a) => a.text).join(", ")})`;
  if (star) {
    if (name !== "count")
      throw sqlError(
        SqlState.SyntaxError,
        `${name}(*) must be used to call a parameterless aggregate function`,
      );
    return { name, type: T.int8, args: [], distinct: false, filter, create: () => new CountStarAcc(), text };
  }
  const args = args0.map((a) => resolveUnknown(a, params));
  const expect = (n: number) => {
    if (args.length !== n) {
      throw sqlError(
        SqlState.UndefinedFunction,
        `function ${name}(${args.map((a) => typeName(a.type)).join(", ")}) does not exist`,
      );
    }
  };
  const wrap = (t: SqlType, make: () => Accumulator): (() => Accumulator) => {
    if (!distinct) return make;
    const key = hashKeyFn(t);
    return () => new DistinctAcc(make(), key);
  };
  const a0 = args[0];
  switch (name) {
    case "count":
      expect(1);
      return {
        name,
        type: T.int8,
        args,
        distinct,
        filter,
        create: wrap(a0!.type, () => new CountAcc()),
        text,
      };
    case "sum": {
      expect(1);
      const t = a0!.type;
      switch (t.kind) {
        case "int2":
        case "int4":
          return {
            name,
            type: T.int8,
            args,
            distinct,
            filter,
            create: wrap(t, () => new IntSumAcc(false)),
            text,
          };
        case "int8":
          return {
            name,
            type: T.numeric,
            args,
            distinct,
            filter,
            create: wrap(t, () => new IntSumAcc(true)),
            text,
          };
        case "numeric":
          return {
            name,
            type: T.numeric,
            args,
            distinct,
            filter,
            create: wrap(t, () => new NumericSumAcc()),
            text,
          };
        case "float4":
        case "float8":
          return {
            name,
            type: T[t.kind],
            args,
            distinct,
            filter,
            create: wrap(t, () => new FloatSumAcc(t.kind === "float4")),
            text,
          };
        default:
          throw noAgg(name, t);
      }
    }
    case "avg": {
      expect(1);
      const t = a0!.type;
      switch (t.kind) {
        case "int2":
        case "int4":
        case "int8":
          return {
            name,
            type: T.numeric,
            args,
            distinct,
            filter,
            create: wrap(t, () => new IntAvgAcc()),
            text,
          };
        case "numeric":
          return {
            name,
            type: T.numeric,
            args,
            distinct,
            filter,
            create: wrap(t, () => new NumericAvgAcc()),
            text,
          };
        case "float4":
        case "float8":
          return {
            name,
            type: T.float8,
            args,
            distinct,
            filter,
            create: wrap(t, () => new FloatAvgAcc()),
            text,
          };
        default:
          throw noAgg(name, t);
      }
    }
    case "min":
    case "max": {
      expect(1);
      const t = a0!.type;
      if (t.kind === "jsonb" || (t.kind === "bytea" && false)) throw noAgg(name, t);
      const cmp = comparator(t);
      const rt = t.length >= 0 || t.precision >= 0 ? T[t.kind] : t;
      return {
        name,
        type: rt,
        args,
        distinct,
        filter,
        create: wrap(t, () => new MinMaxAcc(cmp, name === "max")),
        text,
      };
    }
    case "bool_and":
    case "every":
    case "bool_or": {
      expect(1);
      const a = coerce(a0!, T.bool, "implicit", params);
      if (a.type.kind !== "bool") throw noAgg(name, a0!.type);
      return {
        name,
        type: T.bool,
        args: [a],
        distinct,
        filter,
        create: wrap(T.bool, () => new BoolAcc(name !== "bool_or")),
        text,
      };
    }
    case "string_agg": {
      expect(2);
      const a = coerce(a0!, T.text, "implicit", params);
      const sep = coerce(args[1]!, T.text, "implicit", params);
      return {
        name,
        type: T.text,
        args: [a, sep],
        distinct,
        filter,
        create: wrap(T.text, () => new StringAggAcc()),
        text,
      };
    }
    case "jsonb_agg": {
      expect(1);
      const t = a0!.type;
      return { name, type: T.jsonb, args, distinct, filter, create: wrap(t, () => new JsonbAggAcc(t)), text };
    }
    case "array_agg": {
      expect(1);
      const t = a0!.type;
      if (t.kind === "array") throw unsupported("array_agg of arrays (multidimensional arrays)");
      // DISTINCT sorts the inputs and keeps one NULL (last), as PostgreSQL's sort-based DISTINCT does.
      const create = distinct ? () => new ArrayAggDistinctAcc(t) : () => new ArrayAggAcc();
      return { name, type: arrayOf(t), args, distinct, filter, create, text };
    }
    default:
      throw unsupported(`aggregate ${name}`);
  }
}
