/**
 * SQL types: descriptors, PostgreSQL type OIDs, input/output functions, casts, comparison, key parts and the
 * conversion of values to and from JavaScript.
 *
 * Internal value forms (what the executor passes around; SQL NULL is always JS `null`):
 *   bool → boolean · int2, int4 → number · int8 → number when it is a safe integer, else bigint (one canonical
 *   form, so `===` is equality) · float4, float8 → number (float4 rounded with Math.fround) · numeric → canonical
 *   text ("1.50", "NaN") · text, varchar, bpchar (blank-padded), uuid (lowercase, hyphenated) → string ·
 *   bytea → Uint8Array · jsonb → Jsonb · timestamptz, timestamp → microseconds since the epoch · date → days ·
 *   arrays (kind "array", element type in `elem`) → SqlArray (arrays.ts).
 *   vector → Float32Array (src/vector/vector.ts; `length` of the SqlType holds vector(n)'s dimension count).
 */

import { formatFloat } from "../../util/float-text.js";
import { arrayComparator, formatArrayText, parseArrayText, SqlArray } from "./arrays.js";
import { type DateTimeKind, dateToMicros, formatDateTime, parseDateTime, toJsDate } from "./datetime.js";
import { SqlState, sqlError, unsupported } from "./errors.js";
import {
  compareJson,
  formatJsonb,
  type Jsonb,
  type JsonValue,
  jsonbToJs,
  jsToJsonb,
  parseJsonb,
} from "./jsonb.js";
import {
  applyNumericTypmod,
  compareNumeric,
  float4ToNumeric,
  floatToNumeric,
  normalizeNumericText,
  numericKey,
  numericToBigInt,
} from "./numeric.js";
import {
  checkVectorDims,
  compareVectors,
  formatVectorValue,
  parseVectorText,
  vectorFromJs,
  vectorKeyPart,
} from "./vector-type.js";

export type Value = null | boolean | number | bigint | string | Uint8Array | Jsonb | SqlArray | Float32Array;

export type TypeKind =
  | "bool"
  | "int2"
  | "int4"
  | "int8"
  | "float4"
  | "float8"
  | "numeric"
  | "text"
  | "varchar"
  | "bpchar"
  | "bytea"
  | "jsonb"
  | "timestamptz"
  | "timestamp"
  | "date"
  | "uuid"
  | "unknown"
  | "array"
  | "vector";

export const Oid: Record<TypeKind, number> = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  float4: 700,
  float8: 701,
  unknown: 705,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
  array: 2277,
  // pgvector's OID is assigned by CREATE EXTENSION, so it differs per database; Twill DB has no extensions and
  // needs a fixed one. 16385 is in the range PostgreSQL leaves to user objects (>= 16384, so it never collides
  // with a built-in type) and is what a fresh PostgreSQL gives `vector` when pgvector is its first extension.
  vector: 16385,
};

/** PostgreSQL's array type OIDs by element type (pg_type.typarray). */
export const ArrayOid: Partial<Record<TypeKind, number>> = {
  bool: 1000,
  bytea: 1001,
  int2: 1005,
  int4: 1007,
  text: 1009,
  bpchar: 1014,
  varchar: 1015,
  int8: 1016,
  float4: 1021,
  float8: 1022,
  timestamp: 1115,
  date: 1182,
  timestamptz: 1185,
  numeric: 1231,
  uuid: 2951,
  jsonb: 3807,
};

export interface SqlType {
  readonly kind: TypeKind;
  readonly oid: number;
  /** varchar(n) / char(n): the length limit in characters; vector(n): the dimensions; -1 when unlimited. */
  readonly length: number;
  /** numeric(p, s): precision and scale; -1 when unconstrained. */
  readonly precision: number;
  readonly scale: number;
  /** Arrays: the element type. */
  readonly elem?: SqlType;
}

function mk(kind: TypeKind, length = -1, precision = -1, scale = -1): SqlType {
  return Object.freeze({ kind, oid: Oid[kind], length, precision, scale });
}

export const T = {
  bool: mk("bool"),
  int2: mk("int2"),
  int4: mk("int4"),
  int8: mk("int8"),
  float4: mk("float4"),
  float8: mk("float8"),
  numeric: mk("numeric"),
  text: mk("text"),
  varchar: mk("varchar"),
  bpchar: mk("bpchar"),
  bytea: mk("bytea"),
  jsonb: mk("jsonb"),
  timestamptz: mk("timestamptz"),
  timestamp: mk("timestamp"),
  date: mk("date"),
  uuid: mk("uuid"),
  vector: mk("vector"),
  unknown: mk("unknown"),
  /** anyarray: only a placeholder; real array types come from arrayOf(). */
  array: Object.freeze({ kind: "array", oid: 2277, length: -1, precision: -1, scale: -1 }) as SqlType,
} as const satisfies Record<TypeKind, SqlType>;

const arrayTypes = new Map<string, SqlType>();

/** The array type of `elem` (one object per element type, so types compare by identity too). */
export function arrayOf(elem: SqlType): SqlType {
  if (elem.kind === "array") throw unsupported("arrays of arrays (multidimensional arrays)");
  const oid = ArrayOid[elem.kind];
  if (oid === undefined) throw unsupported(`arrays of ${typeName(elem)}`);
  const key = `${elem.kind}/${elem.length}/${elem.precision}/${elem.scale}`;
  let t = arrayTypes.get(key);
  if (!t) {
    t = Object.freeze({ kind: "array", oid, length: -1, precision: -1, scale: -1, elem });
    arrayTypes.set(key, t);
  }
  return t;
}

export function varcharType(n: number): SqlType {
  return mk("varchar", n);
}
export function bpcharType(n: number): SqlType {
  return mk("bpchar", n);
}
export function vectorType(dims: number): SqlType {
  return mk("vector", dims);
}
export function numericType(precision: number, scale: number): SqlType {
  return mk("numeric", -1, precision, scale);
}

/** A type as the catalog stores it. */
export interface TypeSpec {
  kind: TypeKind;
  length?: number;
  precision?: number;
  scale?: number;
  elem?: TypeSpec;
}

export function typeFromSpec(spec: TypeSpec): SqlType {
  if (spec.kind === "array") return arrayOf(typeFromSpec(spec.elem!));
  if (spec.length !== undefined && spec.length >= 0) return mk(spec.kind, spec.length);
  if (spec.precision !== undefined && spec.precision >= 0)
    return mk(spec.kind, -1, spec.precision, spec.scale ?? 0);
  return T[spec.kind];
}

export function typeToSpec(t: SqlType): TypeSpec {
  const spec: TypeSpec = { kind: t.kind };
  if (t.elem) spec.elem = typeToSpec(t.elem);
  if (t.length >= 0) spec.length = t.length;
  if (t.precision >= 0) {
    spec.precision = t.precision;
    spec.scale = t.scale;
  }
  return spec;
}

/** PostgreSQL's format_type: the name used in messages. */
export function typeName(t: SqlType): string {
  switch (t.kind) {
    case "int2":
      return "smallint";
    case "int4":
      return "integer";
    case "int8":
      return "bigint";
    case "float4":
      return "real";
    case "float8":
      return "double precision";
    case "bool":
      return "boolean";
    case "varchar":
      return t.length >= 0 ? `character varying(${t.length})` : "character varying";
    case "bpchar":
      return t.length >= 0 ? `character(${t.length})` : "bpchar";
    case "numeric":
      return t.precision >= 0 ? `numeric(${t.precision},${t.scale})` : "numeric";
    case "timestamptz":
      return "timestamp with time zone";
    case "timestamp":
      return "timestamp without time zone";
    case "array":
      return t.elem ? `${typeName(t.elem)}[]` : "anyarray";
    case "vector":
      return t.length >= 0 ? `vector(${t.length})` : "vector";
    default:
      return t.kind;
  }
}

export type Category = "N" | "S" | "D" | "B" | "U" | "J" | "X" | "A" | "?";

export function category(t: SqlType): Category {
  switch (t.kind) {
    case "int2":
    case "int4":
    case "int8":
    case "numeric":
    case "float4":
    case "float8":
      return "N";
    case "text":
    case "varchar":
    case "bpchar":
      return "S";
    case "date":
    case "timestamp":
    case "timestamptz":
      return "D";
    case "bool":
      return "B";
    case "uuid":
      return "U";
    case "jsonb":
      return "J";
    case "bytea":
      return "X";
    case "array":
      return "A";
    default:
      return "?";
  }
}

const NUMERIC_RANK: Partial<Record<TypeKind, number>> = {
  int2: 1,
  int4: 2,
  int8: 3,
  numeric: 4,
  float4: 5,
  float8: 6,
};
const DATETIME_RANK: Partial<Record<TypeKind, number>> = { date: 1, timestamp: 2, timestamptz: 3 };

/** The common type two operands are promoted to (PostgreSQL's implicit casts); undefined when there is none. */
export function commonType(a: SqlType, b: SqlType): SqlType | undefined {
  if (a.kind === "array" && b.kind === "array") {
    if (a === b) return a;
    const e = commonType(a.elem!, b.elem!);
    return e ? arrayOf(e) : undefined;
  }
  if (a.kind === b.kind) {
    if (a.kind === "varchar" || a.kind === "bpchar" || a.kind === "vector")
      return a.length === b.length ? a : T[a.kind];
    if (a.kind === "numeric") return a.precision === b.precision && a.scale === b.scale ? a : T.numeric;
    return a;
  }
  // An untyped literal takes the other side's type (char(n) compares blank-insensitively, as bpchar).
  if (a.kind === "unknown") return b.kind === "varchar" ? T.text : stripMod(b);
  if (b.kind === "unknown") return a.kind === "varchar" ? T.text : stripMod(a);
  const ca = category(a);
  const cb = category(b);
  if (ca !== cb) return undefined;
  if (ca === "N")
    return (NUMERIC_RANK[a.kind] ?? 0) >= (NUMERIC_RANK[b.kind] ?? 0) ? stripMod(a) : stripMod(b);
  if (ca === "S") return T.text;
  if (ca === "D") return (DATETIME_RANK[a.kind] ?? 0) >= (DATETIME_RANK[b.kind] ?? 0) ? a : b;
  return undefined;
}

function stripMod(t: SqlType): SqlType {
  return t.length >= 0 || t.precision >= 0 ? T[t.kind] : t;
}

// ---- errors ----------------------------------------------------------------------------------------------------

export function invalidInput(t: SqlType, text: string) {
  const name = t.kind === "bpchar" || t.kind === "varchar" ? typeName(T[t.kind]) : typeName(stripMod(t));
  return sqlError(SqlState.InvalidTextRepresentation, `invalid input syntax for type ${name}: "${text}"`);
}

export function outOfRange(kind: TypeKind) {
  const what = kind === "int2" ? "smallint" : kind === "int4" ? "integer" : "bigint";
  return sqlError(SqlState.NumericValueOutOfRange, `${what} out of range`);
}

// ---- integers --------------------------------------------------------------------------------------------------

const INT_RE = /^\s*([+-]?)(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|\d[\d_]*)\s*$/;
const INT8_MIN = -(2n ** 63n);
const INT8_MAX = 2n ** 63n - 1n;

export function normInt8(v: bigint): number | bigint {
  if (v < INT8_MIN || v > INT8_MAX) throw outOfRange("int8");
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
}

export function checkInt(kind: "int2" | "int4", v: number): number {
  if (kind === "int4" ? v < -2147483648 || v > 2147483647 : v < -32768 || v > 32767) throw outOfRange(kind);
  return v;
}

function parseIntText(t: SqlType, text: string): number | bigint {
  const m = INT_RE.exec(text);
  if (!m || m[2]!.endsWith("_") || m[2]!.includes("__")) throw invalidInput(t, text);
  let digits = m[2]!.replaceAll("_", "");
  if (/^0[xob]$/i.test(digits)) throw invalidInput(t, text);
  if (/^0[xX]/.test(digits)) digits = `0x${digits.slice(2)}`;
  let v = BigInt(digits);
  if (m[1] === "-") v = -v;
  const kind = t.kind;
  if (kind === "int8") {
    if (v < INT8_MIN || v > INT8_MAX) {
      throw sqlError(SqlState.NumericValueOutOfRange, `value "${text}" is out of range for type bigint`);
    }
    return normInt8(v);
  }
  const lo = kind === "int4" ? -2147483648n : -32768n;
  const hi = kind === "int4" ? 2147483647n : 32767n;
  if (v < lo || v > hi) {
    throw sqlError(
      SqlState.NumericValueOutOfRange,
      `value "${text}" is out of range for type ${typeName(t)}`,
    );
  }
  return Number(v);
}

// ---- floats ----------------------------------------------------------------------------------------------------

const FLOAT_RE = /^\s*[+-]?(?:\d[\d_]*\.?(?:\d[\d_]*)?(?:[eE][+-]?\d+)?|\.\d[\d_]*(?:[eE][+-]?\d+)?)\s*$/;

function parseFloatText(t: SqlType, text: string): number {
  const s = text.trim().toLowerCase();
  let v: number;
  if (s === "nan") v = Number.NaN;
  else if (s === "infinity" || s === "+infinity" || s === "inf" || s === "+inf") v = Number.POSITIVE_INFINITY;
  else if (s === "-infinity" || s === "-inf") v = Number.NEGATIVE_INFINITY;
  else {
    if (!FLOAT_RE.test(text)) throw invalidInput(t, text);
    v = Number(s.replaceAll("_", ""));
    if (!Number.isFinite(v)) {
      throw sqlError(
        SqlState.NumericValueOutOfRange,
        `"${text.trim()}" is out of range for type ${typeName(t)}`,
      );
    }
  }
  if (t.kind === "float4") {
    const f = Math.fround(v);
    if (Number.isFinite(v) && !Number.isFinite(f)) {
      throw sqlError(SqlState.NumericValueOutOfRange, `"${text.trim()}" is out of range for type real`);
    }
    return f;
  }
  return v;
}

/** float4 value as the JS number a PostgreSQL client would parse from its text form. */
export function float4ToJs(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  for (let p = 1; p <= 9; p++) {
    const n = Number(v.toPrecision(p));
    if (Math.fround(n) === v) return n;
  }
  return v;
}

// ---- bool, bytea, uuid, strings ---------------------------------------------------------------------------------

function parseBoolText(text: string): boolean {
  const s = text.trim().toLowerCase();
  if (s.length > 0) {
    if (
      "true".startsWith(s) ||
      (s.length > 1 && "yes".startsWith(s)) ||
      s === "y" ||
      s === "on" ||
      s === "1"
    ) {
      return true;
    }
    if ("false".startsWith(s) || "no".startsWith(s) || s === "off" || s === "of" || s === "0") {
      return false;
    }
  }
  throw invalidInput(T.bool, text);
}

function parseByteaText(text: string): Uint8Array {
  if (text.startsWith("\\x")) {
    const hex = text.slice(2).replace(/\s+/g, "");
    if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
      throw sqlError(SqlState.InvalidTextRepresentation, `invalid hexadecimal data: odd number of digits`);
    }
    return new Uint8Array(Buffer.from(hex, "hex"));
  }
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) {
      if (text[i + 1] === "\\") {
        out.push(0x5c);
        i++;
      } else if (/^[0-3][0-7][0-7]$/.test(text.slice(i + 1, i + 4))) {
        out.push(Number.parseInt(text.slice(i + 1, i + 4), 8));
        i += 3;
      } else {
        throw sqlError(SqlState.InvalidTextRepresentation, "invalid input syntax for type bytea");
      }
    } else {
      const bytes = Buffer.from(text[i]!, "utf8");
      for (const b of bytes) out.push(b);
    }
  }
  return Uint8Array.from(out);
}

export function formatBytea(b: Uint8Array): string {
  return `\\x${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex")}`;
}

const UUID_RE = /^\{?([0-9a-fA-F]{4}-?){7}[0-9a-fA-F]{4}\}?$/;

function parseUuidText(text: string): string {
  const s = text.trim();
  if (!UUID_RE.test(s) || s.startsWith("{") !== s.endsWith("}")) throw invalidInput(T.uuid, text);
  const hex = s.replace(/[{}-]/g, "").toLowerCase();
  if (hex.length !== 32) throw invalidInput(T.uuid, text);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Length in characters (code points), as PostgreSQL counts for varchar(n). */
export function charLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) n--;
  }
  return n;
}

function sliceChars(s: string, n: number): string {
  if (charLength(s) === s.length) return s.slice(0, n);
  return Array.from(s).slice(0, n).join("");
}

/** varchar(n)/char(n) length rule. Explicit casts truncate; assignment refuses unless the excess is blanks. */
export function applyLength(t: SqlType, s: string, explicit: boolean): string {
  const n = t.length;
  if (n < 0) return s;
  const len = charLength(s);
  if (len > n) {
    const cut = sliceChars(s, n);
    if (!explicit && !/^ *$/.test(s.slice(cut.length))) {
      throw sqlError(SqlState.StringDataRightTruncation, `value too long for type ${typeName(t)}`);
    }
    return cut;
  }
  if (t.kind === "bpchar" && len < n) return s + " ".repeat(n - len);
  return s;
}

/** Compares strings by Unicode code point (PostgreSQL's "C" collation; also the key encoding's order). */
export function compareText(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

function trimEndBlanks(s: string): string {
  let e = s.length;
  while (e > 0 && s.charCodeAt(e - 1) === 32) e--;
  return e === s.length ? s : s.slice(0, e);
}

// ---- input and output --------------------------------------------------------------------------------------------

/** The type's input function: text to value, PostgreSQL's messages on bad input. `now` serves 'now'/'today'. */
export function inputText(t: SqlType, text: string, now: number): Value {
  switch (t.kind) {
    case "int2":
    case "int4":
    case "int8":
      return parseIntText(t, text);
    case "float4":
    case "float8":
      return parseFloatText(t, text);
    case "numeric": {
      const v = normalizeNumericText(text);
      return t.precision >= 0 ? applyNumericTypmod(v, t.precision, t.scale) : v;
    }
    case "bool":
      return parseBoolText(text);
    case "text":
    case "unknown":
      return text;
    case "varchar":
    case "bpchar":
      return applyLength(t, text, false);
    case "bytea":
      return parseByteaText(text);
    case "jsonb":
      return parseJsonb(text);
    case "uuid":
      return parseUuidText(text);
    case "timestamptz":
    case "timestamp":
    case "date":
      return parseDateTime(text, t.kind, now);
    case "array":
      return parseArrayText(text, t.elem ?? T.text, now);
    case "vector":
      return parseVectorText(text, t.length);
  }
}

/** The type's output function: value to PostgreSQL's text form (as `::text` and the wire protocol give it). */
export function outputText(t: SqlType, v: Exclude<Value, null>): string {
  switch (t.kind) {
    case "float4":
      return formatFloat(v as number, true);
    case "float8":
      return formatFloat(v as number);
    case "bool":
      return v ? "true" : "false";
    case "bytea":
      return formatBytea(v as Uint8Array);
    case "jsonb":
      return formatJsonb(v as Jsonb);
    case "timestamptz":
    case "timestamp":
    case "date":
      return formatDateTime(v as number, t.kind);
    case "array":
      return formatArrayText(t.elem!, v as SqlArray);
    case "vector":
      return formatVectorValue(v as Float32Array);
    default:
      return String(v);
  }
}

// ---- casts -------------------------------------------------------------------------------------------------------

export type CastMode = "implicit" | "assignment" | "explicit";

export type CastFn = (v: Exclude<Value, null>, now: number) => Value;

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function floatToInt(kind: "int2" | "int4" | "int8", v: number): number | bigint {
  if (!Number.isFinite(v)) throw outOfRange(kind);
  const r = roundHalfEven(v);
  if (kind === "int8") {
    if (r < -(2 ** 63) || r >= 2 ** 63) throw outOfRange(kind);
    return Number.isSafeInteger(r) ? r : normInt8(BigInt(r));
  }
  return checkInt(kind, r);
}

function numericToInt(kind: "int2" | "int4" | "int8", v: string): number | bigint {
  const b = numericToBigInt(v);
  if (b === undefined) {
    throw sqlError(SqlState.FeatureNotSupported, `cannot convert ${v} to ${typeName(T[kind])}`);
  }
  if (kind === "int8") return normInt8(b);
  if (b < -2147483648n || b > 2147483647n) throw outOfRange(kind);
  return checkInt(kind, Number(b));
}

function intToKind(kind: "int2" | "int4" | "int8", v: number | bigint): number | bigint {
  if (kind === "int8") return typeof v === "bigint" ? normInt8(v) : v;
  if (typeof v === "bigint") throw outOfRange(kind);
  return checkInt(kind, v);
}

/**
 * The cast from `from` to `to` allowed in `mode`, or undefined when PostgreSQL has none. The function receives a
 * non-null value; NULL casts to NULL without calling it.
 */
export function castFunction(from: SqlType, to: SqlType, mode: CastMode): CastFn | undefined {
  const explicit = mode === "explicit";
  const f = from.kind;
  const k = to.kind;
  if (f === "unknown") {
    if (explicit && to.length >= 0 && k !== "vector") return (v) => applyLength(to, String(v), true);
    return (v, now) => inputText(to, String(v), now);
  }
  if (f === "array" && k === "array") {
    // Element by element, with the element cast of the same mode (int4[] → int8[] is implicit, as in PostgreSQL).
    const ef = castFunction(from.elem!, to.elem!, mode);
    if (!ef) return undefined;
    return (v, now) =>
      new SqlArray(
        (v as SqlArray).items.map((x) => (x === null ? null : ef(x as Exclude<Value, null>, now))),
      );
  }
  if (f === k) {
    if (k === "varchar" || k === "bpchar") {
      if (to.length < 0) return (v) => v;
      return (v) => applyLength(to, v as string, explicit);
    }
    if (k === "numeric" && to.precision >= 0)
      return (v) => applyNumericTypmod(v as string, to.precision, to.scale);
    if (k === "vector" && to.length >= 0) return (v) => checkVectorDims(v as Float32Array, to.length);
    return (v) => v;
  }
  const cf = category(from);
  const ct = category(to);
  const assignOk = mode !== "implicit";
  // Anything to a string type: the output function (an assignment cast, as PostgreSQL's I/O conversions are).
  if (ct === "S") {
    if (cf === "S") {
      if (k === "text") return f === "bpchar" ? (v) => trimEndBlanks(v as string) : (v) => v;
      if (f === "bpchar") return (v) => applyLength(to, trimEndBlanks(v as string), explicit);
      return (v) => applyLength(to, v as string, explicit);
    }
    if (!assignOk) return undefined;
    return (v) => applyLength(to, outputText(from, v as Exclude<Value, null>), explicit);
  }
  // A string type to anything: the input function, explicit only.
  if (cf === "S") {
    if (!explicit) return undefined;
    return (v, now) => inputText(to, f === "bpchar" ? trimEndBlanks(v as string) : (v as string), now);
  }
  if (cf === "N" && ct === "N") {
    const up = (NUMERIC_RANK[k] ?? 0) > (NUMERIC_RANK[f] ?? 0);
    if (!up && !assignOk) return undefined;
    const isInt = (x: TypeKind) => x === "int2" || x === "int4" || x === "int8";
    if (isInt(f) && isInt(k)) return (v) => intToKind(k as "int2", v as number | bigint);
    if (isInt(f) && (k === "float4" || k === "float8")) {
      return k === "float4" ? (v) => Math.fround(Number(v)) : (v) => Number(v);
    }
    if (isInt(f) && k === "numeric") {
      return to.precision >= 0
        ? (v) => applyNumericTypmod(String(v), to.precision, to.scale)
        : (v) => String(v);
    }
    if ((f === "float4" || f === "float8") && isInt(k)) return (v) => floatToInt(k as "int2", v as number);
    if (f === "float8" && k === "float4") {
      return (v) => {
        const r = Math.fround(v as number);
        if (Number.isFinite(v as number) && !Number.isFinite(r)) {
          throw sqlError(SqlState.NumericValueOutOfRange, "value out of range: overflow");
        }
        return r;
      };
    }
    if (f === "float4" && k === "float8") return (v) => v;
    if ((f === "float4" || f === "float8") && k === "numeric") {
      const conv = f === "float4" ? float4ToNumeric : floatToNumeric;
      return to.precision >= 0
        ? (v) => applyNumericTypmod(conv(v as number), to.precision, to.scale)
        : (v) => conv(v as number);
    }
    if (f === "numeric" && isInt(k)) return (v) => numericToInt(k as "int2", v as string);
    if (f === "numeric" && (k === "float4" || k === "float8")) {
      return k === "float4" ? (v) => Math.fround(Number(v)) : (v) => Number(v);
    }
    return undefined;
  }
  if (cf === "D" && ct === "D") {
    const up = (DATETIME_RANK[k] ?? 0) > (DATETIME_RANK[f] ?? 0);
    if (!up && !assignOk) return undefined;
    if (f === "date") return (v) => (Number.isFinite(v) ? (v as number) * 86_400_000_000 : v);
    if (k === "date") return (v) => (Number.isFinite(v) ? Math.floor((v as number) / 86_400_000_000) : v);
    return (v) => v; // timestamp <-> timestamptz: the session zone is UTC
  }
  if (f === "int4" && k === "bool" && explicit) return (v) => v !== 0;
  if (f === "bool" && k === "int4" && explicit) return (v) => (v ? 1 : 0);
  if (f === "jsonb" && explicit) {
    if (ct === "N") {
      return (v, now) => {
        const j = (v as Jsonb).value;
        if (typeof j !== "number") {
          throw sqlError(
            SqlState.InvalidParameterValue,
            `cannot cast jsonb ${jsonTypeName(j)} to type ${typeName(to)}`,
          );
        }
        return castFunction(T.numeric, to, "explicit")!(floatToNumericExact(j), now);
      };
    }
    if (k === "bool") {
      return (v) => {
        const j = (v as Jsonb).value;
        if (typeof j !== "boolean") {
          throw sqlError(
            SqlState.InvalidParameterValue,
            `cannot cast jsonb ${jsonTypeName(j)} to type boolean`,
          );
        }
        return j;
      };
    }
  }
  return undefined;
}

function floatToNumericExact(v: number): string {
  return normalizeNumericText(String(v));
}

function jsonTypeName(j: JsonValue): string {
  if (j === null) return "null";
  if (Array.isArray(j)) return "array";
  if (typeof j === "object") return "object";
  return typeof j === "number" ? "numeric" : typeof j === "boolean" ? "boolean" : "string";
}

// ---- comparison and keys -------------------------------------------------------------------------------------

export type Comparator = (a: Exclude<Value, null>, b: Exclude<Value, null>) => number;

function compareFloat(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) return 0;
  // NaN: equal to itself, above everything (PostgreSQL's float order).
  const na = Number.isNaN(a);
  const nb = Number.isNaN(b);
  return na === nb ? 0 : na ? 1 : -1;
}

const compareNumber: Comparator = (a, b) =>
  (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
const compareInt8: Comparator = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** A total order of non-null values of one type. */
export function comparator(t: SqlType): Comparator {
  switch (t.kind) {
    case "int2":
    case "int4":
    case "date":
    case "timestamp":
    case "timestamptz":
      return compareNumber;
    case "int8":
      return compareInt8;
    case "float4":
    case "float8":
      return (a, b) => compareFloat(a as number, b as number);
    case "numeric":
      return (a, b) => compareNumeric(a as string, b as string);
    case "bool":
      return (a, b) => (a === b ? 0 : a ? 1 : -1);
    case "bpchar":
      return (a, b) => compareText(trimEndBlanks(a as string), trimEndBlanks(b as string));
    case "bytea":
      return (a, b) => Buffer.compare(a as Uint8Array, b as Uint8Array);
    case "jsonb":
      return (a, b) => compareJson((a as Jsonb).value, (b as Jsonb).value);
    case "array": {
      const c = arrayComparator(t.elem!);
      return (a, b) => c(a as SqlArray, b as SqlArray);
    }
    case "vector":
      return (a, b) => compareVectors(a as Float32Array, b as Float32Array);
    default:
      return (a, b) => compareText(a as string, b as string);
  }
}

/** Equality of non-null values of one type, consistent with `comparator`. */
export function equality(t: SqlType): (a: Exclude<Value, null>, b: Exclude<Value, null>) => boolean {
  switch (t.kind) {
    case "int2":
    case "int4":
    case "int8":
    case "date":
    case "timestamp":
    case "timestamptz":
    case "text":
    case "varchar":
    case "uuid":
    case "bool":
      return (a, b) => a === b;
    case "float4":
    case "float8":
      return (a, b) => a === b || (Number.isNaN(a) && Number.isNaN(b));
    default: {
      const c = comparator(t);
      return (a, b) => c(a, b) === 0;
    }
  }
}

export type KeyPart = null | boolean | number | bigint | string | Uint8Array;

/** The key-codec part of a value: encodes so that byte order is the type's order (jsonb: equality only). */
export function keyPartFn(t: SqlType): (v: Value) => KeyPart {
  switch (t.kind) {
    case "numeric":
      return (v) => (v === null ? null : numericKey(v as string));
    case "bpchar":
      return (v) => (v === null ? null : trimEndBlanks(v as string));
    case "jsonb":
      return (v) => (v === null ? null : formatJsonb(v as Jsonb));
    case "array":
      throw unsupported("primary keys and indexes on array columns");
    case "vector":
      return (v) => (v === null ? null : vectorKeyPart(v as Float32Array));
    default:
      return (v) => v as KeyPart;
  }
}

/** Whether key order equals the type's order (so range predicates may use an index). */
export function keyOrdered(t: SqlType): boolean {
  return t.kind !== "jsonb" && t.kind !== "vector";
}

// ---- JavaScript boundary ----------------------------------------------------------------------------------------

export interface JsOptions {
  /** How int8 values reach the application. */
  int8: "number" | "bigint";
}

/** A converter from the internal form to what the application receives; undefined means "as is". */
export function toJsFn(t: SqlType, opts: JsOptions): ((v: Exclude<Value, null>) => unknown) | undefined {
  switch (t.kind) {
    case "int8":
      if (opts.int8 === "bigint") return (v) => (typeof v === "bigint" ? v : BigInt(v as number));
      return (v) => {
        if (typeof v === "bigint") {
          throw sqlError(
            SqlState.NumericValueOutOfRange,
            `bigint value ${v} does not fit a JavaScript number exactly`,
            {
              hint: 'open the database with { int8: "bigint" } to receive int8 values as bigint',
            },
          );
        }
        return v;
      };
    case "float4":
      return (v) => float4ToJs(v as number);
    case "jsonb":
      return (v) => jsonbToJs((v as Jsonb).value);
    case "timestamptz":
    case "timestamp":
    case "date":
      return (v) => toJsDate(v as number, t.kind as DateTimeKind);
    case "array": {
      const ef = toJsFn(t.elem!, opts);
      return (v) =>
        (v as SqlArray).items.map((x) => (x === null ? null : ef ? ef(x as Exclude<Value, null>) : x));
    }
    default:
      return undefined;
  }
}

function jsToText(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (v instanceof Date) return new Date(v.getTime()).toISOString();
  if (v instanceof Uint8Array) return formatBytea(v);
  if (typeof v === "object") return JSON.stringify(v);
  throw sqlError(SqlState.InvalidParameterValue, `cannot use a ${typeof v} as a query parameter`);
}

/** A JavaScript parameter value to the internal form of `t` (the bind step). */
export function fromJs(t: SqlType, v: unknown, now: number): Value {
  if (v === null || v === undefined) return null;
  switch (t.kind) {
    case "int2":
    case "int4":
      if (typeof v === "number" && Number.isInteger(v)) {
        if (t.kind === "int4" ? v < -2147483648 || v > 2147483647 : v < -32768 || v > 32767) {
          throw sqlError(
            SqlState.NumericValueOutOfRange,
            `value "${v}" is out of range for type ${typeName(t)}`,
          );
        }
        return v === 0 ? 0 : v;
      }
      break;
    case "int8":
      if (typeof v === "number" && Number.isSafeInteger(v)) return v === 0 ? 0 : v;
      if (typeof v === "bigint") {
        if (v < INT8_MIN || v > INT8_MAX) {
          throw sqlError(SqlState.NumericValueOutOfRange, `value "${v}" is out of range for type bigint`);
        }
        return normInt8(v);
      }
      break;
    case "float8":
      if (typeof v === "number") return v;
      if (typeof v === "bigint") return Number(v);
      break;
    case "float4":
      if (typeof v === "number") return Math.fround(v);
      break;
    case "numeric":
      if (typeof v === "number" && !Number.isFinite(v))
        return Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
      break;
    case "bool":
      if (typeof v === "boolean") return v;
      break;
    case "bytea":
      if (v instanceof Uint8Array) return v.slice();
      break;
    case "jsonb":
      return jsToJsonb(v);
    case "timestamptz":
    case "timestamp":
      if (v instanceof Date) return dateToMicros(v);
      break;
    case "date":
      if (v instanceof Date) return Math.floor(dateToMicros(v) / 86_400_000_000);
      break;
    case "text":
    case "unknown":
      if (typeof v === "string") return v;
      break;
    case "array":
      if (Array.isArray(v)) {
        for (const x of v) if (Array.isArray(x)) throw unsupported("multidimensional arrays");
        return new SqlArray(v.map((x) => fromJs(t.elem!, x, now)));
      }
      if (typeof v === "string") return inputText(t, v, now);
      break;
    case "vector":
      if (typeof v !== "string") return vectorFromJs(v, t.length);
      break;
    default:
      break;
  }
  return inputText(t, jsToText(v), now);
}

/** The type a JavaScript value suggests when the statement gives a parameter no context. */
export function typeOfJs(v: unknown): SqlType {
  if (typeof v === "number")
    return Number.isInteger(v) ? (v >= -2147483648 && v <= 2147483647 ? T.int4 : T.int8) : T.float8;
  if (typeof v === "bigint") return T.int8;
  if (typeof v === "boolean") return T.bool;
  if (v instanceof Date) return T.timestamptz;
  if (v instanceof Uint8Array) return T.bytea;
  if (v instanceof Float32Array) return T.vector;
  if (v !== null && typeof v === "object") return T.jsonb;
  return T.text;
}
