/**
 * The SQL face of pgvector's `vector(n)` type: input and output functions, the typmod check, comparison (btree
 * order as pgvector defines it) and parameter conversion. The codec itself lives in src/vector/vector.ts; this
 * module turns its errors into SqlErrors with the same SQLSTATE and message. It imports nothing from the SQL
 * layer but errors.ts, so types.ts can depend on it without an import cycle.
 */

import { isTwillError } from "../../errors.js";
import {
  checkDimension,
  checkTypmod,
  encodeVector,
  formatVector,
  parseVector,
  vectorFromArray,
} from "../../vector/vector.js";
import { SqlState, sqlError } from "./errors.js";

/** Runs a codec call, re-raising its TwillError as a SqlError (SQLSTATE and message unchanged). */
export function asSql<R>(f: () => R): R {
  try {
    return f();
  } catch (e) {
    if (isTwillError(e) && e.sqlstate) throw sqlError(e.sqlstate, e.message);
    throw e;
  }
}

export function parseVectorText(text: string, dims: number): Float32Array {
  return asSql(() => parseVector(text, dims >= 0 ? dims : undefined));
}

export function formatVectorValue(v: Float32Array): string {
  return formatVector(v);
}

export function checkVectorDims(v: Float32Array, dims: number): Float32Array {
  return asSql(() => checkDimension(v, dims));
}

export function vectorTypmod(n: number): number {
  return asSql(() => checkTypmod(n));
}

/** pgvector's vector_cmp: element by element, then the shorter vector first. */
export function compareVectors(a: Float32Array, b: Float32Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i]! < b[i]!) return -1;
    if (a[i]! > b[i]!) return 1;
  }
  return a.length - b.length;
}

/**
 * A key part for a vector: its binary form. Equality in key space is equality of vectors (for GROUP BY, DISTINCT
 * and equality lookups), but byte order is not pgvector's order, so `keyOrdered` is false for vectors.
 */
export function vectorKeyPart(v: Float32Array): Uint8Array {
  return encodeVector(v);
}

/** A JavaScript parameter for a vector: Float32Array (or another typed array of numbers) or number[]. */
export function vectorFromJs(v: unknown, dims: number): Float32Array {
  const d = dims >= 0 ? dims : undefined;
  if (Array.isArray(v) || v instanceof Float32Array || v instanceof Float64Array) {
    return asSql(() => vectorFromArray(v as ArrayLike<number>, d));
  }
  throw sqlError(
    SqlState.InvalidParameterValue,
    `a vector parameter must be a Float32Array, a number[] or the text form '[1,2,3]', not ${v === null ? "null" : typeof v}`,
  );
}
