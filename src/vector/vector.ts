/**
 * The vector value: pgvector's text form and Twill DB's binary form.
 *
 * Text form (pgvector's vector_in / vector_out): `[x1,x2,…,xn]`, optional blanks around elements and brackets,
 * each element a float4 as strtof reads it; output is the float4 shortest round-trip text of each element joined
 * by ',' with no blanks ("[1,2.5,-3e-05]"). 1 ≤ n ≤ 16,000. NaN and ±Infinity are refused (22000), as pgvector does.
 *
 * Binary form (row storage and HNSW node records): little-endian u32 dimension count, then n little-endian
 * float32. Invariant: byte length = 4 + 4n, every element finite.
 *
 * In memory a vector is a Float32Array (what the application gets back in results).
 */

import { ErrorCodes, TwillError } from "../errors.js";
import { formatFloat } from "../util/float-text.js";

/** pgvector's VECTOR_MAX_DIM. */
export const VECTOR_MAX_DIM = 16000;

function vectorError(sqlstate: string, message: string, detail?: string): TwillError {
  const code = sqlstate === "0A000" ? ErrorCodes.Unsupported : ErrorCodes.InvalidArgument;
  return new TwillError(code, message, { sqlstate, ...(detail === undefined ? {} : { detail }) });
}

const invalidSyntax = (text: string) =>
  vectorError("22P02", `invalid input syntax for type vector: "${text}"`);

// strtof's grammar for a decimal number (pgvector also accepts what strtof accepts: "inf", "nan", hex floats;
// the first two are refused afterwards anyway).
const NUMBER_RE = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)$/;
const SPECIAL_RE = /^[+-]?(?:inf|infinity|nan)$/i;

function checkElement(v: number): void {
  if (Number.isNaN(v)) throw vectorError("22000", "NaN not allowed in vector");
  if (!Number.isFinite(v)) throw vectorError("22000", "infinite value not allowed in vector");
}

function checkDims(n: number): void {
  if (n < 1) throw vectorError("22000", "vector must have at least 1 dimension");
  if (n > VECTOR_MAX_DIM)
    throw vectorError("54000", `vector cannot have more than ${VECTOR_MAX_DIM} dimensions`);
}

/** pgvector's vector_in. `dims` (the column's typmod) is checked when given. */
export function parseVector(text: string, dims?: number): Float32Array {
  const s = text.trim();
  if (s.length < 2 || s[0] !== "[" || s[s.length - 1] !== "]") throw invalidSyntax(text);
  const body = s.slice(1, -1);
  if (body.trim() === "") {
    checkDims(0);
  }
  const parts = body.split(",");
  checkDims(parts.length);
  const out = new Float32Array(parts.length);
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!.trim();
    let v: number;
    if (NUMBER_RE.test(p)) {
      v = Number(p);
      const f = Math.fround(v);
      if (!Number.isFinite(f)) throw vectorError("22003", `"${p}" is out of range for type vector`);
      v = f;
    } else if (SPECIAL_RE.test(p)) {
      v = p.toLowerCase().includes("nan") ? Number.NaN : p.startsWith("-") ? -1 / 0 : 1 / 0;
    } else {
      throw invalidSyntax(text);
    }
    checkElement(v);
    out[i] = v;
  }
  if (dims !== undefined) checkDimension(out, dims);
  return out;
}

/** A vector from a JavaScript value: Float32Array, number[] (or any typed array of numbers). */
export function vectorFromArray(values: ArrayLike<number>, dims?: number): Float32Array {
  checkDims(values.length);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (typeof x !== "number") throw vectorError("22P02", `vector element ${i} is not a number`);
    const f = Math.fround(x);
    if (Number.isFinite(x) && !Number.isFinite(f))
      throw vectorError("22003", `"${x}" is out of range for type vector`);
    checkElement(f);
    out[i] = f;
  }
  if (dims !== undefined) checkDimension(out, dims);
  return out;
}

/** pgvector's typmod check on write. */
export function checkDimension(v: Float32Array, dims: number): Float32Array {
  if (v.length !== dims) throw vectorError("22000", `expected ${dims} dimensions, not ${v.length}`);
  return v;
}

/** pgvector's typmod input: `vector(n)` with 1 ≤ n ≤ 16,000. */
export function checkTypmod(n: number): number {
  if (!Number.isInteger(n) || n < 1)
    throw vectorError("22023", "dimensions for type vector must be at least 1");
  if (n > VECTOR_MAX_DIM)
    throw vectorError("22023", `dimensions for type vector cannot exceed ${VECTOR_MAX_DIM}`);
  return n;
}

/** Both operands of a binary vector function must have one dimension count. */
export function checkSameDims(a: Float32Array, b: Float32Array): void {
  if (a.length !== b.length)
    throw vectorError("22000", `different vector dimensions ${a.length} and ${b.length}`);
}

export function formatVector(v: Float32Array): string {
  const parts = new Array<string>(v.length);
  for (let i = 0; i < v.length; i++) parts[i] = formatFloat(v[i]!, true);
  return `[${parts.join(",")}]`;
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The binary form: u32 dims, then float32 elements, little-endian. */
export function encodeVector(v: Float32Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * v.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, v.length, true);
  if (littleEndian) out.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), 4);
  else for (let i = 0; i < v.length; i++) dv.setFloat32(4 + 4 * i, v[i]!, true);
  return out;
}

/** Decodes the binary form at `offset`; returns the vector and the offset after it. */
export function decodeVectorAt(bytes: Uint8Array, offset: number): { vector: Float32Array; end: number } {
  if (offset + 4 > bytes.length) throw corrupt("truncated vector header");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(offset, true);
  const end = offset + 4 + 4 * n;
  if (n < 1 || n > VECTOR_MAX_DIM || end > bytes.length) throw corrupt(`bad vector length ${n}`);
  const out = new Float32Array(n);
  if (littleEndian) {
    // Copy through bytes: the source offset need not be 4-aligned.
    new Uint8Array(out.buffer).set(bytes.subarray(offset + 4, end));
  } else {
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(offset + 4 + 4 * i, true);
  }
  return { vector: out, end };
}

export function decodeVector(bytes: Uint8Array): Float32Array {
  const { vector, end } = decodeVectorAt(bytes, 0);
  if (end !== bytes.length) throw corrupt("trailing bytes after vector");
  return vector;
}

function corrupt(what: string): TwillError {
  return new TwillError(ErrorCodes.Corruption, `corrupt vector: ${what}`);
}
