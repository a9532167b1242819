/**
 * Order-preserving ("memcomparable") encoding of key tuples: comparing two encodings as unsigned bytes gives the
 * order of the tuples they encode, so the LSM can sort rows and index entries without decoding them.
 *
 * A tuple is its parts' encodings back to back. Each part starts with a tag byte, and tags sort in type order:
 *
 *   0x05 null                 (nothing follows; nulls sort first)
 *   0x06 false, 0x07 true     (nothing follows)
 *   0x10 number               8 bytes, then 3 more for some big integers (below)
 *   0x20 string               UTF-8 with 0x00 escaped as 0x00 0xFF, terminated by 0x00 0x01
 *   0x30 bytes                the bytes, escaped and terminated the same way
 *
 * Numbers. `number` (float64) and `bigint` (int64 range) share one numeric order, so 5, 5n and 5.0 are the same
 * key and 2n**60n + 1n sorts between its float neighbours. Every number is written as the float64 `f` that is the
 * largest float64 <= the value, made order-preserving: big-endian IEEE bits, all bits inverted when negative,
 * else the sign bit set. -0 is written as 0. NaN is written as 8 bytes 0xFF, above +Infinity (PostgreSQL sorts
 * NaN above every number). When the value is a bigint that no float64 holds (|v| > 2^53 and not a multiple of the
 * float spacing there), the remainder `v - f` (1..2047, as the float spacing in int64 range is at most 2^11)
 * follows as 0xFF then a u16 big-endian. 0xFF is above every tag, so after equal `f` bytes the value with a
 * remainder sorts after the value without one whatever part follows it, and fixed-width remainders compare
 * numerically. Decoding gives a `bigint` for integers in int64 range that are not safe integers (the only type
 * that holds them and their neighbours exactly) and a `number` otherwise: values round-trip numerically, and
 * -0 comes back as 0.
 *
 * Strings and bytes. After escaping, a 0x00 byte is always followed by 0xFF (content) or 0x01 (the end). Where
 * two encodings first differ, either both hold content (plain byte order of the contents), or one has ended: its
 * 0x00 0x01 meets the other's content, which is either 0x00 0xFF (greater at the second byte) or a byte >= 0x01
 * (greater at the first). So a string sorts before every longer string it is a prefix of, whatever part follows
 * it, and the terminator keeps part boundaries from mixing with content. Strings sort by Unicode
 * code point (the UTF-8 byte order), like PostgreSQL's "C" collation, not by JavaScript's UTF-16 `<`. Lone
 * surrogates are refused: they have no UTF-8 form and would not round-trip.
 *
 * Tuples. A tuple's encoding is a byte prefix of every longer tuple starting with it, and a shorter tuple sorts
 * first. Byte prefix is not quite tuple prefix, though: the bytes of the number f are also the first bytes of the
 * big integers f+1..f+2047. For "all tuples starting with P" use `tuplePrefixRange(P)`, which ends at
 * `encodeKey(P) ++ 0xFF`, below any remainder and above any tag. `prefixEnd` is for raw byte prefixes.
 */

import { ErrorCodes, TwillError } from "../../errors.js";

export type KeyPart = null | boolean | number | bigint | string | Uint8Array;

export const KeyTag = {
  Null: 0x05,
  False: 0x06,
  True: 0x07,
  Number: 0x10,
  String: 0x20,
  Bytes: 0x30,
} as const;

/** Follows a number's 8 bytes when a big integer's remainder follows; above every tag. */
const REMAINDER_MARK = 0xff;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const SAFE_MIN = BigInt(Number.MIN_SAFE_INTEGER);
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

const f64 = new Float64Array(1);
const f64Bits = new BigInt64Array(f64.buffer);
const f64Bytes = new Uint8Array(f64.buffer);
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Largest float64 <= v, for v outside the safe range (so the result is a non-zero integer). */
function floorFloat(v: bigint): number {
  const f = Number(v);
  if (BigInt(f) <= v) return f;
  // One step towards -Infinity: for an integer-valued float this is adjusting its bit pattern by one.
  f64[0] = f;
  f64Bits[0] = f > 0 ? f64Bits[0]! - 1n : f64Bits[0]! + 1n;
  return f64[0];
}

let scratch = new Uint8Array(256);

function ensureScratch(bytes: number): void {
  if (bytes > scratch.length) scratch = new Uint8Array(Math.max(bytes, scratch.length * 2));
}

function invalid(message: string): TwillError {
  return new TwillError(ErrorCodes.InvalidArgument, message);
}

function writeFloat(out: Uint8Array, at: number, value: number): number {
  if (Number.isNaN(value)) {
    out.fill(0xff, at, at + 8);
    return at + 8;
  }
  f64[0] = value === 0 ? 0 : value; // folds -0 into 0
  // f64Bytes is in platform order; write big-endian.
  for (let i = 0; i < 8; i++) out[at + i] = f64Bytes[littleEndian ? 7 - i : i]!;
  if (out[at]! & 0x80) {
    for (let i = 0; i < 8; i++) out[at + i] = ~out[at + i]! & 0xff;
  } else {
    out[at] = out[at]! | 0x80;
  }
  return at + 8;
}

function readFloat(bytes: Uint8Array, at: number): number {
  let allOnes = true;
  for (let i = 0; i < 8; i++) {
    if (bytes[at + i] !== 0xff) {
      allOnes = false;
      break;
    }
  }
  if (allOnes) return Number.NaN;
  const positive = (bytes[at]! & 0x80) !== 0;
  for (let i = 0; i < 8; i++) {
    let b = bytes[at + i]!;
    if (positive) {
      if (i === 0) b &= 0x7f;
    } else {
      b = ~b & 0xff;
    }
    f64Bytes[littleEndian ? 7 - i : i] = b;
  }
  return f64[0]!;
}

/** Writes `s` as escaped UTF-8 plus terminator; `out` has room for 3 bytes per UTF-16 unit plus 2. */
function writeString(out: Uint8Array, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c === 0) {
        out[at++] = 0x00;
        out[at++] = 0xff;
      } else {
        out[at++] = c;
      }
    } else if (c < 0x800) {
      out[at++] = 0xc0 | (c >> 6);
      out[at++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const lo = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (c > 0xdbff || lo < 0xdc00 || lo > 0xdfff) {
        throw invalid(`key string has a lone UTF-16 surrogate at index ${i}; it has no UTF-8 form`);
      }
      c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
      i++;
      out[at++] = 0xf0 | (c >> 18);
      out[at++] = 0x80 | ((c >> 12) & 0x3f);
      out[at++] = 0x80 | ((c >> 6) & 0x3f);
      out[at++] = 0x80 | (c & 0x3f);
    } else {
      out[at++] = 0xe0 | (c >> 12);
      out[at++] = 0x80 | ((c >> 6) & 0x3f);
      out[at++] = 0x80 | (c & 0x3f);
    }
  }
  out[at++] = 0x00;
  out[at++] = 0x01;
  return at;
}

function writeBytes(out: Uint8Array, at: number, b: Uint8Array): number {
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    out[at++] = c;
    if (c === 0) out[at++] = 0xff;
  }
  out[at++] = 0x00;
  out[at++] = 0x01;
  return at;
}

/** Upper bound of the encoded size of `part`, including its tag. Throws on unsupported values. */
function partBytesMax(part: KeyPart, index: number): number {
  if (part === null || typeof part === "boolean") return 1;
  if (typeof part === "number") return 9;
  if (typeof part === "bigint") {
    if (part < INT64_MIN || part > INT64_MAX) {
      throw invalid(`key part ${index} is a bigint outside the int64 range: ${part}`);
    }
    return 12;
  }
  if (typeof part === "string") return 1 + part.length * 3 + 2;
  if (part instanceof Uint8Array) return 1 + part.length * 2 + 2;
  throw invalid(
    `key part ${index} has unsupported type ${typeof part}; use null, boolean, number, bigint, string or Uint8Array`,
  );
}

/** Appends the encoding of `parts` to `out` at `at`; returns the end. `out` must have room (see partBytesMax). */
function writeParts(out: Uint8Array, at: number, parts: readonly KeyPart[]): number {
  for (const part of parts) {
    if (part === null) {
      out[at++] = KeyTag.Null;
    } else if (part === false) {
      out[at++] = KeyTag.False;
    } else if (part === true) {
      out[at++] = KeyTag.True;
    } else if (typeof part === "number") {
      out[at++] = KeyTag.Number;
      at = writeFloat(out, at, part);
    } else if (typeof part === "bigint") {
      out[at++] = KeyTag.Number;
      if (part >= SAFE_MIN && part <= SAFE_MAX) {
        at = writeFloat(out, at, Number(part));
      } else {
        const f = floorFloat(part);
        at = writeFloat(out, at, f);
        const remainder = Number(part - BigInt(f));
        if (remainder !== 0) {
          out[at++] = REMAINDER_MARK;
          out[at++] = remainder >> 8;
          out[at++] = remainder & 0xff;
        }
      }
    } else if (typeof part === "string") {
      out[at++] = KeyTag.String;
      at = writeString(out, at, part);
    } else {
      out[at++] = KeyTag.Bytes;
      at = writeBytes(out, at, part);
    }
  }
  return at;
}

/** The order-preserving encoding of a tuple. */
export function encodeKey(parts: readonly KeyPart[]): Uint8Array {
  let bytesMax = 0;
  for (let i = 0; i < parts.length; i++) bytesMax += partBytesMax(parts[i]!, i);
  ensureScratch(bytesMax);
  const end = writeParts(scratch, 0, parts);
  return scratch.slice(0, end);
}

/**
 * The key range holding exactly the tuples that start with `parts`: `[start, end)` with start = encodeKey(parts)
 * (the tuple itself sorts first) and end = start ++ 0xFF (see the header for why not `prefixEnd`).
 */
export function tuplePrefixRange(parts: readonly KeyPart[]): { start: Uint8Array; end: Uint8Array } {
  const start = encodeKey(parts);
  const end = new Uint8Array(start.length + 1);
  end.set(start);
  end[start.length] = 0xff;
  return { start, end };
}

/** Smallest byte string greater than every string starting with `prefix`; undefined when there is none (all 0xFF). */
export function prefixEnd(prefix: Uint8Array): Uint8Array | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] !== 0xff) {
      const out = prefix.slice(0, i + 1);
      out[i] = out[i]! + 1;
      return out;
    }
  }
  return undefined;
}

function corrupt(bytes: Uint8Array, at: number, reason: string): TwillError {
  return new TwillError(
    ErrorCodes.Corruption,
    `encoded key of ${bytes.length} bytes is malformed at byte ${at}: ${reason}`,
  );
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads an escaped, terminated run starting at `at`; returns the unescaped content and the end. */
function readEscaped(bytes: Uint8Array, at: number): { content: Uint8Array; end: number } {
  // Fast path: no escapes, so the content is a view up to the terminator.
  let i = at;
  let escapes = 0;
  for (;;) {
    if (i + 1 >= bytes.length) throw corrupt(bytes, at, "string or bytes part has no terminator");
    if (bytes[i] === 0x00) {
      const next = bytes[i + 1];
      if (next === 0x01) break;
      if (next !== 0xff) throw corrupt(bytes, i, `0x00 followed by 0x${next!.toString(16)}`);
      escapes++;
      i += 2;
    } else {
      i++;
    }
  }
  const end = i + 2;
  if (escapes === 0) return { content: bytes.subarray(at, i), end };
  const content = new Uint8Array(i - at - escapes);
  let o = 0;
  for (let j = at; j < i; j++) {
    content[o++] = bytes[j]!;
    if (bytes[j] === 0x00) j++;
  }
  return { content, end };
}

/** Decodes an encoding made by `encodeKey`. Malformed bytes are CORRUPTION: keys come from storage. */
export function decodeKey(bytes: Uint8Array): KeyPart[] {
  const parts: KeyPart[] = [];
  let at = 0;
  while (at < bytes.length) {
    const tag = bytes[at]!;
    const start = at;
    at++;
    switch (tag) {
      case KeyTag.Null:
        parts.push(null);
        break;
      case KeyTag.False:
        parts.push(false);
        break;
      case KeyTag.True:
        parts.push(true);
        break;
      case KeyTag.Number: {
        if (at + 8 > bytes.length) throw corrupt(bytes, start, "number part is shorter than 8 bytes");
        const f = readFloat(bytes, at);
        at += 8;
        if (bytes[at] === REMAINDER_MARK) {
          if (at + 3 > bytes.length) throw corrupt(bytes, at, "big integer remainder is cut short");
          const remainder = (bytes[at + 1]! << 8) | bytes[at + 2]!;
          const value = Number.isInteger(f) ? BigInt(f) + BigInt(remainder) : 0n;
          if (
            !Number.isInteger(f) ||
            remainder === 0 ||
            value < INT64_MIN ||
            value > INT64_MAX ||
            (value >= SAFE_MIN && value <= SAFE_MAX) ||
            floorFloat(value) !== f
          ) {
            throw corrupt(bytes, at, "big integer remainder is not canonical");
          }
          parts.push(value);
          at += 3;
        } else if (Number.isInteger(f) && !Number.isSafeInteger(f) && f >= -(2 ** 63) && f < 2 ** 63) {
          parts.push(BigInt(f));
        } else {
          parts.push(f);
        }
        break;
      }
      case KeyTag.String: {
        const { content, end } = readEscaped(bytes, at);
        try {
          parts.push(utf8.decode(content));
        } catch (cause) {
          throw new TwillError(
            ErrorCodes.Corruption,
            `encoded key has invalid UTF-8 in the string at byte ${start}`,
            {
              cause,
            },
          );
        }
        at = end;
        break;
      }
      case KeyTag.Bytes: {
        const { content, end } = readEscaped(bytes, at);
        parts.push(content.buffer === bytes.buffer ? content.slice() : content);
        at = end;
        break;
      }
      default:
        throw corrupt(bytes, start, `unknown tag 0x${tag.toString(16)}`);
    }
  }
  return parts;
}
