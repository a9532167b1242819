/**
 * numeric: PostgreSQL's arbitrary-precision decimal, held as its canonical text ("1.50", "-3", "NaN") and computed
 * as a bigint mantissa with a decimal scale. The scale rules are PostgreSQL's, so results print the same digits:
 * a + b and a - b keep max(scale), a * b adds the scales, a / b uses `select_div_scale` (at least 16 significant
 * digits), rounding is half away from zero.
 *
 * Key encoding (`numericKey`): an order-preserving byte string, so numerically equal values (1.5 and 1.50) are one
 * key and byte order is numeric order:
 *   0x01 -Infinity | 0x02 negative | 0x03 zero | 0x04 positive | 0x05 +Infinity | 0x06 NaN (above all, as in PG)
 * A finite non-zero value is 0.d1d2…dn × 10^e with d1 ≠ 0 and no trailing zero digit. Positive: 3 bytes of
 * e + 2^23 big-endian, then each digit as d + 1. Negative: the exponent bytes inverted (0xFFFFFF − (e + 2^23)), each
 * digit as 10 − d, then 0xFF, so that a longer digit string (a larger magnitude) sorts first.
 */

import { SqlState, sqlError } from "./errors.js";

export interface Dec {
  /** Signed mantissa: the value is m × 10^-s. */
  m: bigint;
  /** Digits after the decimal point (PostgreSQL's display scale), >= 0. */
  s: number;
}

export type NumericSpecial = "NaN" | "Infinity" | "-Infinity";

const NUMERIC_RE = /^\s*([+-]?)(\d[\d_]*)?(?:\.(\d[\d_]*)?)?(?:[eE]([+-]?\d+))?\s*$/;
const SCALE_MAX = 16383;
const MIN_SIG_DIGITS = 16;

const pow10Cache: bigint[] = [];
export function pow10(n: number): bigint {
  if (n < 64) {
    let p = pow10Cache[n];
    if (p === undefined) {
      p = 10n ** BigInt(n);
      pow10Cache[n] = p;
    }
    return p;
  }
  return 10n ** BigInt(n);
}

function invalidNumeric(text: string) {
  return sqlError(SqlState.InvalidTextRepresentation, `invalid input syntax for type numeric: "${text}"`);
}

export function isSpecial(text: string): text is NumericSpecial {
  return text === "NaN" || text === "Infinity" || text === "-Infinity";
}

/** Parses numeric input text; returns a special or a Dec. */
export function parseNumericText(text: string): Dec | NumericSpecial {
  const t = text.trim().toLowerCase();
  if (t === "nan") return "NaN";
  if (t === "infinity" || t === "+infinity" || t === "inf" || t === "+inf") return "Infinity";
  if (t === "-infinity" || t === "-inf") return "-Infinity";
  const m = NUMERIC_RE.exec(text);
  if (!m || (m[2] === undefined && m[3] === undefined)) throw invalidNumeric(text);
  const intPart = (m[2] ?? "").replaceAll("_", "");
  const fracPart = (m[3] ?? "").replaceAll("_", "");
  if ((m[2] ?? "").endsWith("_") || (m[3] ?? "").endsWith("_") || /__/.test(text)) throw invalidNumeric(text);
  let scale = fracPart.length;
  let mant = BigInt((intPart || "0") + fracPart);
  const exp = m[4] === undefined ? 0 : Number(m[4]);
  if (!Number.isFinite(exp) || Math.abs(exp) > 1000 + SCALE_MAX) {
    throw sqlError(SqlState.NumericValueOutOfRange, "value overflows numeric format");
  }
  scale -= exp;
  if (scale < 0) {
    mant *= pow10(-scale);
    scale = 0;
  }
  if (scale > SCALE_MAX) throw sqlError(SqlState.NumericValueOutOfRange, "value overflows numeric format");
  if (m[1] === "-") mant = -mant;
  return { m: mant, s: scale };
}

export function formatDec(d: Dec): string {
  const neg = d.m < 0n;
  const abs = (neg ? -d.m : d.m).toString();
  if (d.s === 0) return neg ? `-${abs}` : abs;
  const padded = abs.length <= d.s ? "0".repeat(d.s - abs.length + 1) + abs : abs;
  const cut = padded.length - d.s;
  return `${neg ? "-" : ""}${padded.slice(0, cut)}.${padded.slice(cut)}`;
}

/** Canonical text of numeric input (keeps the input's scale, as PostgreSQL does). */
export function normalizeNumericText(text: string): string {
  const p = parseNumericText(text);
  return typeof p === "string" ? p : formatDec(p);
}

/** A canonical numeric string to a Dec; specials are returned as is. */
export function toDec(text: string): Dec | NumericSpecial {
  if (isSpecial(text)) return text;
  const dot = text.indexOf(".");
  if (dot === -1) return { m: BigInt(text), s: 0 };
  return { m: BigInt(text.slice(0, dot) + text.slice(dot + 1)), s: text.length - dot - 1 };
}

function rescale(d: Dec, s: number): bigint {
  return s >= d.s ? d.m * pow10(s - d.s) : divRound(d.m, pow10(d.s - s));
}

/** Integer division rounding half away from zero. */
export function divRound(n: bigint, d: bigint): bigint {
  const neg = n < 0n !== d < 0n;
  const an = n < 0n ? -n : n;
  const ad = d < 0n ? -d : d;
  const q = (2n * an + ad) / (2n * ad);
  return neg ? -q : q;
}

export function roundDec(d: Dec, s: number): Dec {
  if (s >= d.s) return { m: d.m * pow10(s - d.s), s };
  if (s >= 0) return { m: divRound(d.m, pow10(d.s - s)), s };
  const unit = pow10(d.s - s);
  return { m: divRound(d.m, unit) * pow10(-s), s: 0 };
}

export function truncDec(d: Dec, s: number): Dec {
  if (s >= d.s) return { m: d.m * pow10(s - d.s), s };
  const unit = pow10(d.s - Math.max(s, 0));
  const m = d.m / unit; // bigint division truncates toward zero
  return s >= 0 ? { m, s } : { m: (m / pow10(-s)) * pow10(-s), s: 0 };
}

export function compareDec(a: Dec, b: Dec): number {
  const s = Math.max(a.s, b.s);
  const x = a.s === s ? a.m : a.m * pow10(s - a.s);
  const y = b.s === s ? b.m : b.m * pow10(s - b.s);
  return x < y ? -1 : x > y ? 1 : 0;
}

function specialRank(v: Dec | NumericSpecial): number {
  if (v === "-Infinity") return -1;
  if (v === "Infinity") return 1;
  if (v === "NaN") return 2;
  return 0;
}

/** Numeric comparison of two canonical numeric strings (NaN above everything, equal to itself). */
export function compareNumeric(a: string, b: string): number {
  if (a === b) return 0;
  const x = toDec(a);
  const y = toDec(b);
  const rx = specialRank(x);
  const ry = specialRank(y);
  if (rx !== 0 || ry !== 0) return rx === ry ? 0 : rx < ry ? -1 : 1;
  return compareDec(x as Dec, y as Dec);
}

function special(a: Dec | NumericSpecial, b: Dec | NumericSpecial, op: string): string | undefined {
  if (typeof a !== "string" && typeof b !== "string") return undefined;
  if (a === "NaN" || b === "NaN") return "NaN";
  const fa = typeof a === "string" ? (a === "Infinity" ? 1 : -1) : 0;
  const fb = typeof b === "string" ? (b === "Infinity" ? 1 : -1) : 0;
  const sign = (d: Dec | NumericSpecial) => (typeof d === "string" ? 0 : d.m < 0n ? -1 : d.m > 0n ? 1 : 0);
  switch (op) {
    case "+":
      if (fa !== 0 && fb !== 0) return fa === fb ? (fa > 0 ? "Infinity" : "-Infinity") : "NaN";
      return (fa || fb) > 0 ? "Infinity" : "-Infinity";
    case "-":
      if (fa !== 0 && fb !== 0) return fa !== fb ? (fa > 0 ? "Infinity" : "-Infinity") : "NaN";
      return fa !== 0 ? (fa > 0 ? "Infinity" : "-Infinity") : fb > 0 ? "-Infinity" : "Infinity";
    case "*": {
      const s = (fa || sign(a)) * (fb || sign(b));
      return s === 0 ? "NaN" : s > 0 ? "Infinity" : "-Infinity";
    }
    case "/": {
      if (fa !== 0 && fb !== 0) return "NaN";
      if (fb !== 0) return "0";
      if (sign(b) === 0) throw sqlError(SqlState.DivisionByZero, "division by zero");
      return fa * sign(b) > 0 ? "Infinity" : "-Infinity";
    }
    default:
      return "NaN";
  }
}

export function addNumeric(a: string, b: string): string {
  const x = toDec(a);
  const y = toDec(b);
  const sp = special(x, y, "+");
  if (sp !== undefined) return sp;
  const dx = x as Dec;
  const dy = y as Dec;
  const s = Math.max(dx.s, dy.s);
  return formatDec({ m: rescale(dx, s) + rescale(dy, s), s });
}

export function subNumeric(a: string, b: string): string {
  const x = toDec(a);
  const y = toDec(b);
  const sp = special(x, y, "-");
  if (sp !== undefined) return sp;
  const dx = x as Dec;
  const dy = y as Dec;
  const s = Math.max(dx.s, dy.s);
  return formatDec({ m: rescale(dx, s) - rescale(dy, s), s });
}

export function mulNumeric(a: string, b: string): string {
  const x = toDec(a);
  const y = toDec(b);
  const sp = special(x, y, "*");
  if (sp !== undefined) return sp;
  const dx = x as Dec;
  const dy = y as Dec;
  let s = dx.s + dy.s;
  let d: Dec = { m: dx.m * dy.m, s };
  if (s > SCALE_MAX) {
    d = roundDec(d, SCALE_MAX);
    s = SCALE_MAX;
  }
  return formatDec(d);
}

/** Weight (in base-10000 digits) and first base-10000 digit of |d|, as PostgreSQL's select_div_scale reads them. */
function weightAndFirst(d: Dec): { weight: number; first: number } {
  if (d.m === 0n) return { weight: 0, first: 0 };
  const abs = d.m < 0n ? -d.m : d.m;
  const p = abs.toString().length - d.s - 1; // power of ten of the leading digit
  const weight = Math.floor(p / 4);
  const shift = d.s + 4 * weight;
  const scaled = shift >= 0 ? abs / pow10(shift) : abs * pow10(-shift);
  return { weight, first: Number(scaled % 10000n) };
}

function selectDivScale(a: Dec, b: Dec): number {
  const wa = weightAndFirst(a);
  const wb = weightAndFirst(b);
  let qweight = wa.weight - wb.weight;
  if (wa.first <= wb.first) qweight--;
  let rscale = MIN_SIG_DIGITS - qweight * 4;
  rscale = Math.max(rscale, a.s, b.s, 0);
  return Math.min(rscale, 1000);
}

export function divDec(a: Dec, b: Dec, rscale?: number): Dec {
  if (b.m === 0n) throw sqlError(SqlState.DivisionByZero, "division by zero");
  const s = rscale ?? selectDivScale(a, b);
  const e = b.s - a.s + s;
  const m = e >= 0 ? divRound(a.m * pow10(e), b.m) : divRound(a.m, b.m * pow10(-e));
  return { m, s };
}

export function divNumeric(a: string, b: string): string {
  const x = toDec(a);
  const y = toDec(b);
  const sp = special(x, y, "/");
  if (sp !== undefined) return sp;
  return formatDec(divDec(x as Dec, y as Dec));
}

export function modNumeric(a: string, b: string): string {
  const x = toDec(a);
  const y = toDec(b);
  if (typeof x === "string" || typeof y === "string") return "NaN";
  if (y.m === 0n) throw sqlError(SqlState.DivisionByZero, "division by zero");
  const s = Math.max(x.s, y.s);
  return formatDec({ m: rescale(x, s) % rescale(y, s), s });
}

export function negNumeric(a: string): string {
  if (a === "NaN") return a;
  if (a === "Infinity") return "-Infinity";
  if (a === "-Infinity") return "Infinity";
  if (a.startsWith("-")) return a.slice(1);
  return /^[0.]+$/.test(a) ? a : `-${a}`;
}

export function absNumeric(a: string): string {
  if (a === "-Infinity") return "Infinity";
  return a.startsWith("-") ? a.slice(1) : a;
}

/** round(x, s), PostgreSQL's numeric round: half away from zero; negative s rounds left of the point. */
export function roundNumeric(a: string, s: number): string {
  const d = toDec(a);
  if (typeof d === "string") return d;
  return formatDec(roundDec(d, s));
}

export function truncNumeric(a: string, s: number): string {
  const d = toDec(a);
  if (typeof d === "string") return d;
  return formatDec(truncDec(d, s));
}

export function floorNumeric(a: string): string {
  const d = toDec(a);
  if (typeof d === "string") return d;
  const t = truncDec(d, 0);
  return formatDec(t.m * pow10(d.s) > d.m ? { m: t.m - 1n, s: 0 } : t);
}

export function ceilNumeric(a: string): string {
  const d = toDec(a);
  if (typeof d === "string") return d;
  const t = truncDec(d, 0);
  return formatDec(t.m * pow10(d.s) < d.m ? { m: t.m + 1n, s: 0 } : t);
}

export function signNumeric(a: string): string {
  const d = toDec(a);
  if (typeof d === "string") return d === "NaN" ? "NaN" : d === "Infinity" ? "1" : "-1";
  return d.m > 0n ? "1" : d.m < 0n ? "-1" : "0";
}

/** Applies numeric(precision, scale): rounds to the scale and checks the digits left of the point. */
export function applyNumericTypmod(text: string, precision: number, scale: number): string {
  const d = toDec(text);
  if (typeof d === "string") {
    if (d === "NaN") return d;
    throw sqlError(SqlState.NumericValueOutOfRange, "numeric field overflow", {
      detail: `A field with precision ${precision}, scale ${scale} cannot hold an infinite value.`,
    });
  }
  const r = roundDec(d, scale);
  const abs = r.m < 0n ? -r.m : r.m;
  if (abs !== 0n && abs.toString().length - scale > precision - scale) {
    throw sqlError(SqlState.NumericValueOutOfRange, "numeric field overflow", {
      detail: `A field with precision ${precision}, scale ${scale} must round to an absolute value less than ${
        precision - scale === 0 ? "1" : `10^${precision - scale}`
      }.`,
    });
  }
  return formatDec(r);
}

/** numeric to an integer, rounding half away from zero; undefined when it is NaN or infinite. */
export function numericToBigInt(a: string): bigint | undefined {
  const d = toDec(a);
  if (typeof d === "string") return undefined;
  return roundDec(d, 0).m;
}

/** float8 to numeric as PostgreSQL does it: 15 significant digits. */
export function floatToNumeric(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "Infinity";
  if (v === Number.NEGATIVE_INFINITY) return "-Infinity";
  const text = v.toPrecision(15);
  const d = parseNumericText(text) as Dec;
  // %g drops trailing zeros of the fraction.
  let m = d.m;
  let s = d.s;
  while (s > 0 && m % 10n === 0n) {
    m /= 10n;
    s--;
  }
  return formatDec({ m, s });
}

/** float4 to numeric: 6 significant digits (FLT_DIG). */
export function float4ToNumeric(v: number): string {
  if (!Number.isFinite(v)) return floatToNumeric(v);
  const d = parseNumericText(v.toPrecision(6)) as Dec;
  let m = d.m;
  let s = d.s;
  while (s > 0 && m % 10n === 0n) {
    m /= 10n;
    s--;
  }
  return formatDec({ m, s });
}

const EXP_BIAS = 1 << 23;

/** Order-preserving key bytes of a canonical numeric string (see the header). */
export function numericKey(a: string): Uint8Array {
  if (a === "NaN") return Uint8Array.of(0x06);
  if (a === "Infinity") return Uint8Array.of(0x05);
  if (a === "-Infinity") return Uint8Array.of(0x01);
  const d = toDec(a) as Dec;
  if (d.m === 0n) return Uint8Array.of(0x03);
  const neg = d.m < 0n;
  let digits = (neg ? -d.m : d.m).toString();
  const e = digits.length - d.s;
  digits = digits.replace(/0+$/, "");
  const out = new Uint8Array(4 + digits.length + (neg ? 1 : 0));
  let ex = e + EXP_BIAS;
  if (neg) ex = 0xffffff - ex;
  out[0] = neg ? 0x02 : 0x04;
  out[1] = (ex >> 16) & 0xff;
  out[2] = (ex >> 8) & 0xff;
  out[3] = ex & 0xff;
  for (let i = 0; i < digits.length; i++) {
    const dg = digits.charCodeAt(i) - 48;
    out[4 + i] = neg ? 10 - dg : dg + 1;
  }
  if (neg) out[out.length - 1] = 0xff;
  return out;
}
