/**
 * jsonb: values are held as a `Jsonb` wrapper around the parsed JSON value, so that SQL NULL (JS `null` everywhere
 * in the executor) and JSON `null` (a `Jsonb` whose value is `null`) stay distinct.
 *
 * Text output follows PostgreSQL's jsonb form: object keys ordered by length, then bytewise (jsonb's storage order),
 * `": "` and `", "` separators. Known differences: numbers are JS doubles, so `1.0` prints `1` and digits beyond
 * float64 precision are lost (PostgreSQL keeps numeric precision inside jsonb).
 */

import { SqlState, sqlError } from "./errors.js";

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export class Jsonb {
  constructor(readonly value: JsonValue) {}
}

/** PostgreSQL's jsonb key order: shorter keys first, then bytewise (UTF-8, which is code point order). */
function keyOrder(a: string, b: string): number {
  const la = Buffer.byteLength(a);
  const lb = Buffer.byteLength(b);
  if (la !== lb) return la - lb;
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedKeys(o: { [key: string]: JsonValue }): string[] {
  return Object.keys(o).sort(keyOrder);
}

export function parseJsonb(text: string): Jsonb {
  try {
    return new Jsonb(JSON.parse(text) as JsonValue);
  } catch (error) {
    throw sqlError(SqlState.InvalidTextRepresentation, "invalid input syntax for type json", {
      detail: `${(error as Error).message.replace(/^JSON\.parse: /, "")}`,
    });
  }
}

/** A JS value passed as a jsonb parameter: must be JSON-representable. */
export function jsToJsonb(v: unknown): Jsonb {
  if (typeof v === "string") return parseJsonb(v);
  let text: string | undefined;
  try {
    text = JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? Number(x) : x));
  } catch (error) {
    throw sqlError(
      SqlState.InvalidTextRepresentation,
      `invalid input syntax for type json: ${(error as Error).message}`,
    );
  }
  if (text === undefined)
    throw sqlError(SqlState.InvalidTextRepresentation, "invalid input syntax for type json");
  return new Jsonb(JSON.parse(text) as JsonValue);
}

function formatValue(v: JsonValue, out: string[]): void {
  if (v === null || typeof v !== "object") {
    out.push(typeof v === "number" && !Number.isFinite(v) ? "null" : JSON.stringify(v));
    return;
  }
  if (Array.isArray(v)) {
    out.push("[");
    for (let i = 0; i < v.length; i++) {
      if (i > 0) out.push(", ");
      formatValue(v[i]!, out);
    }
    out.push("]");
    return;
  }
  out.push("{");
  let first = true;
  for (const k of sortedKeys(v)) {
    if (!first) out.push(", ");
    first = false;
    out.push(JSON.stringify(k), ": ");
    formatValue(v[k]!, out);
  }
  out.push("}");
}

export function formatJsonb(j: Jsonb | JsonValue): string {
  const out: string[] = [];
  formatValue(j instanceof Jsonb ? j.value : j, out);
  return out.join("");
}

/** The JS value handed to the application: objects rebuilt in jsonb key order (as a PostgreSQL client sees them). */
export function jsonbToJs(v: JsonValue): JsonValue {
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(jsonbToJs);
  const out: { [key: string]: JsonValue } = {};
  for (const k of sortedKeys(v)) out[k] = jsonbToJs(v[k]!);
  return out;
}

function typeRank(v: JsonValue): number {
  if (v === null) return 1;
  if (typeof v === "string") return 2;
  if (typeof v === "number") return 3;
  if (typeof v === "boolean") return 4;
  if (Array.isArray(v)) return 5;
  return 6;
}

/** jsonb btree order (PostgreSQL's): Object > Array > Boolean > Number > String > Null; objects by size first. */
export function compareJson(a: JsonValue, b: JsonValue, top = true): number {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) {
    // PostgreSQL stores a top-level scalar as a one-element "raw scalar" array and compares element counts
    // first, so an empty top-level array sorts below every top-level scalar (its documented quirk).
    if (top) {
      const scalar = (v: JsonValue) => v === null || typeof v !== "object";
      if (Array.isArray(a) && a.length === 0 && scalar(b)) return -1;
      if (Array.isArray(b) && b.length === 0 && scalar(a)) return 1;
    }
    return ra < rb ? -1 : 1;
  }
  switch (ra) {
    case 1:
      return 0;
    case 2: {
      const x = a as string;
      const y = b as string;
      return x === y ? 0 : Buffer.compare(Buffer.from(x), Buffer.from(y));
    }
    case 3:
      return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
    case 4:
      return a === b ? 0 : a ? 1 : -1;
    case 5: {
      const x = a as JsonValue[];
      const y = b as JsonValue[];
      if (x.length !== y.length) return x.length < y.length ? -1 : 1;
      for (let i = 0; i < x.length; i++) {
        const c = compareJson(x[i]!, y[i]!, false);
        if (c !== 0) return c;
      }
      return 0;
    }
    default: {
      const x = a as { [key: string]: JsonValue };
      const y = b as { [key: string]: JsonValue };
      const kx = sortedKeys(x);
      const ky = sortedKeys(y);
      if (kx.length !== ky.length) return kx.length < ky.length ? -1 : 1;
      for (let i = 0; i < kx.length; i++) {
        // Pairs meet in storage order (keys shortest first), but two keys compare as plain strings.
        const c = compareKeyText(kx[i]!, ky[i]!);
        if (c !== 0) return c;
        const d = compareJson(x[kx[i]!]!, y[ky[i]!]!, false);
        if (d !== 0) return d;
      }
      return 0;
    }
  }
}

function compareKeyText(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** `a @> b`: PostgreSQL's jsonb containment. */
export function jsonContains(a: JsonValue, b: JsonValue, top = true): boolean {
  if (a === null || typeof a !== "object") {
    return (b === null || typeof b !== "object") && a === b;
  }
  if (Array.isArray(a)) {
    if (Array.isArray(b)) {
      return b.every((be) =>
        be !== null && typeof be === "object"
          ? a.some(
              (ae) =>
                ae !== null &&
                typeof ae === "object" &&
                Array.isArray(ae) === Array.isArray(be) &&
                jsonContains(ae, be, false),
            )
          : a.includes(be),
      );
    }
    // A top-level array contains a bare scalar that is one of its elements.
    return top && (b === null || typeof b !== "object") && a.includes(b);
  }
  if (b === null || typeof b !== "object" || Array.isArray(b)) return false;
  for (const k of Object.keys(b)) {
    if (!Object.hasOwn(a, k)) return false;
    const av = a[k]!;
    const bv = b[k]!;
    if (bv !== null && typeof bv === "object") {
      if (av === null || typeof av !== "object" || Array.isArray(av) !== Array.isArray(bv)) return false;
      if (!jsonContains(av, bv, false)) return false;
    } else if (av !== bv) {
      return false;
    }
  }
  return true;
}

/** `j -> key` (object field) or `j -> n` (array element, negative from the end); undefined when absent. */
export function jsonGet(j: JsonValue, key: string | number): JsonValue | undefined {
  if (typeof key === "number") {
    if (!Array.isArray(j)) return undefined;
    const i = key < 0 ? j.length + key : key;
    return i >= 0 && i < j.length ? j[i] : undefined;
  }
  if (j === null || typeof j !== "object" || Array.isArray(j)) return undefined;
  return Object.hasOwn(j, key) ? j[key] : undefined;
}

/** `j ->> key` text: strings unquoted, JSON null as SQL NULL, anything else in jsonb text form. */
export function jsonText(v: JsonValue | undefined): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "string") return v;
  return formatJsonb(v);
}

export function jsonTypeof(v: JsonValue): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v === "object" ? "object" : typeof v;
}
