/**
 * Row encoding: the value of a table row's key. Compact, positional, self-delimiting.
 *
 *   byte 0        format version (1)
 *   varint        n, the number of columns stored
 *   ceil(n/8)     null bitmap, bit i (LSB first) set when column i is NULL
 *   then, for each non-null column in column order, by the column's type:
 *     bool                  1 byte (0 or 1)
 *     int2, int4, date      zigzag LEB128 varint (date ±infinity: ±(2^31 − 1) / −2^31)
 *     int8, timestamp(tz)   8 bytes little-endian two's complement (timestamps in µs; ±infinity as int64 max/min)
 *     float4                4 bytes IEEE little-endian;  float8: 8 bytes
 *     uuid                  16 bytes
 *     numeric               varint length + canonical ASCII text
 *     text, varchar, bpchar varint length + UTF-8
 *     bytea                 varint length + bytes
 *     jsonb                 varint length + UTF-8 JSON text
 *     array (one dimension) varint n, ceil(n/8) null bitmap, then each non-null element by its element type
 *     vector                varint dimension count n + n float32 little-endian
 *
 * Invariants: a row decodes only with the column types it was written with, in order; columns are appended and
 * never reordered (DROP COLUMN leaves a hidden column in place), so a row shorter than the schema (written before
 * ADD COLUMN) reads its missing columns as the column's "missing value" (catalog.ts), or NULL. Decoding checks bounds and the version byte and
 * throws CORRUPTION on anything else. A decode with a column mask builds only the masked-in columns and walks the
 * bytes only up to the last of them (the block checksum, not this decoder, guards the rest).
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { SqlArray } from "./arrays.js";
import { Jsonb, type JsonValue } from "./jsonb.js";
import { normInt8, type SqlType, type TypeKind, type Value } from "./types.js";

const FORMAT_VERSION = 1;
const TWO32 = 4294967296;

const f64 = new Float64Array(1);
const f64b = new Uint8Array(f64.buffer);
const f32 = new Float32Array(1);
const f32b = new Uint8Array(f32.buffer);
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

let buf = new Uint8Array(1024);
let pos = 0;

function ensure(n: number): void {
  if (pos + n > buf.length) {
    const next = new Uint8Array(Math.max(buf.length * 2, pos + n));
    next.set(buf.subarray(0, pos));
    buf = next;
  }
}

function writeVarint(v: number): void {
  ensure(10);
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
}

function writeUtf8(s: string): void {
  // Byte length first (the prefix), then the bytes.
  let n = s.length;
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    writeVarint(n);
    ensure(n);
    for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i);
    return;
  }
  const bytes = Buffer.from(s, "utf8");
  n = bytes.length;
  writeVarint(n);
  ensure(n);
  buf.set(bytes, pos);
  pos += n;
}

function writeBytes(b: Uint8Array): void {
  writeVarint(b.length);
  ensure(b.length);
  buf.set(b, pos);
  pos += b.length;
}

function writeInt64(v: number): void {
  ensure(8);
  let hi: number;
  let lo: number;
  if (v === Number.POSITIVE_INFINITY) {
    hi = 0x7fffffff;
    lo = 0xffffffff;
  } else if (v === Number.NEGATIVE_INFINITY) {
    hi = -0x80000000;
    lo = 0;
  } else {
    hi = Math.floor(v / TWO32);
    lo = v - hi * TWO32;
  }
  buf[pos++] = lo & 0xff;
  buf[pos++] = (lo >>> 8) & 0xff;
  buf[pos++] = (lo >>> 16) & 0xff;
  buf[pos++] = (lo >>> 24) & 0xff;
  buf[pos++] = hi & 0xff;
  buf[pos++] = (hi >>> 8) & 0xff;
  buf[pos++] = (hi >>> 16) & 0xff;
  buf[pos++] = (hi >>> 24) & 0xff;
}

function writeBigInt64(v: bigint): void {
  ensure(8);
  const u = BigInt.asUintN(64, v);
  for (let i = 0; i < 8; i++) buf[pos++] = Number((u >> BigInt(8 * i)) & 0xffn);
}

function writeFloat64(v: number): void {
  ensure(8);
  f64[0] = v;
  for (let i = 0; i < 8; i++) buf[pos++] = f64b[littleEndian ? i : 7 - i]!;
}

function writeFloat32(v: number): void {
  ensure(4);
  f32[0] = v;
  for (let i = 0; i < 4; i++) buf[pos++] = f32b[littleEndian ? i : 3 - i]!;
}

function writeZigzag(v: number): void {
  writeVarint(v >= 0 ? v * 2 : -v * 2 - 1);
}

const HEX = "0123456789abcdef";

function writeUuid(s: string): void {
  ensure(16);
  for (let i = 0; i < s.length; i += 2) {
    if (s.charCodeAt(i) === 45) i++; // '-'
    buf[pos++] = Number.parseInt(s.slice(i, i + 2), 16);
  }
}

function writeValue(kind: TypeKind, v: Exclude<Value, null>): void {
  switch (kind) {
    case "bool":
      ensure(1);
      buf[pos++] = v ? 1 : 0;
      return;
    case "int2":
    case "int4":
      writeZigzag(v as number);
      return;
    case "date": {
      const d = v as number;
      writeZigzag(
        d === Number.POSITIVE_INFINITY ? 2147483647 : d === Number.NEGATIVE_INFINITY ? -2147483648 : d,
      );
      return;
    }
    case "int8":
      if (typeof v === "bigint") writeBigInt64(v);
      else writeInt64(v as number);
      return;
    case "timestamp":
    case "timestamptz":
      writeInt64(v as number);
      return;
    case "float4":
      writeFloat32(v as number);
      return;
    case "float8":
      writeFloat64(v as number);
      return;
    case "uuid":
      writeUuid(v as string);
      return;
    case "bytea":
      writeBytes(v as Uint8Array);
      return;
    case "jsonb":
      writeUtf8(JSON.stringify((v as Jsonb).value));
      return;
    case "vector": {
      const vec = v as Float32Array;
      writeVarint(vec.length);
      ensure(4 * vec.length);
      if (littleEndian) {
        buf.set(new Uint8Array(vec.buffer, vec.byteOffset, vec.byteLength), pos);
        pos += vec.byteLength;
      } else {
        for (let i = 0; i < vec.length; i++) writeFloat32(vec[i]!);
      }
      return;
    }
    default:
      writeUtf8(v as string);
  }
}

function writeArray(elem: SqlType, a: SqlArray): void {
  const items = a.items;
  const n = items.length;
  writeVarint(n);
  const bitmapAt = pos;
  const bitmapBytes = (n + 7) >> 3;
  ensure(bitmapBytes);
  buf.fill(0, pos, pos + bitmapBytes);
  pos += bitmapBytes;
  for (let i = 0; i < n; i++) {
    const v = items[i]!;
    if (v === null) buf[bitmapAt + (i >> 3)]! |= 1 << (i & 7);
    else writeValue(elem.kind, v);
  }
}

/**
 * Encodes a row. The result is a view of a shared buffer, valid until the next call: hand it straight to
 * `Transaction.put`, which copies it.
 */
export function encodeRowView(types: readonly SqlType[], values: readonly Value[]): Uint8Array {
  const n = types.length;
  pos = 0;
  ensure(16 + (n >> 3));
  buf[pos++] = FORMAT_VERSION;
  writeVarint(n);
  const bitmapAt = pos;
  const bitmapBytes = (n + 7) >> 3;
  ensure(bitmapBytes);
  buf.fill(0, pos, pos + bitmapBytes);
  pos += bitmapBytes;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      buf[bitmapAt + (i >> 3)]! |= 1 << (i & 7);
    } else {
      const t = types[i]!;
      if (t.kind === "array") writeArray(t.elem!, v as SqlArray);
      else writeValue(t.kind, v);
    }
  }
  return buf.subarray(0, pos);
}

/** Encodes a row into fresh bytes. */
export function encodeRow(types: readonly SqlType[], values: readonly Value[]): Uint8Array {
  return encodeRowView(types, values).slice();
}

function corrupt(reason: string): TwillError {
  return new TwillError(ErrorCodes.Corruption, `row value is malformed: ${reason}`);
}

const utf8 = new TextDecoder("utf-8");

/** Decoder state kept in module variables: decoding is synchronous and never re-entered. */
let src: Uint8Array = buf;
let at = 0;

function readVarint(): number {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (at >= src.length) throw corrupt("truncated varint");
    const b = src[at++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) return v;
    mul *= 128;
  }
  throw corrupt("varint too long");
}

function readZigzag(): number {
  const u = readVarint();
  return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
}

function need(n: number): void {
  if (at + n > src.length) throw corrupt(`needs ${n} bytes at ${at}, has ${src.length - at}`);
}

/**
 * Short ASCII strings decoded lately, by a hash of their bytes (direct-mapped, last one wins). Values such as a
 * status or a category repeat across rows: a hit returns the same string object with no allocation, and a Map
 * keyed by it (GROUP BY, DISTINCT) finds its hash already computed. Strings are immutable, so sharing is exact.
 */
const STRING_CACHE_SLOTS = 1024;
const SHORT_STRING_BYTES = 16;
const stringCache: (string | undefined)[] = new Array(STRING_CACHE_SLOTS).fill(undefined);

function readString(): string {
  const n = readVarint();
  need(n);
  const start = at;
  at += n;
  return stringAt(src, start, at);
}

/** The text in bytes [start, end) (bounds already checked). */
function stringAt(bytes: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n > 0 && n <= SHORT_STRING_BYTES) {
    // The slot comes from the length and three bytes (no loop); the comparison then checks every byte, and a
    // cached string is ASCII, so a hit needs no ASCII check of its own.
    const h =
      Math.imul(n, 0x9e3779b1) ^
      Math.imul(bytes[start]!, 0x85ebca6b) ^
      Math.imul(bytes[start + (n >> 1)]!, 0xc2b2ae35) ^
      Math.imul(bytes[end - 1]!, 0x27d4eb2f);
    const slot = (h ^ (h >>> 15)) & (STRING_CACHE_SLOTS - 1);
    const hit = stringCache[slot];
    if (hit !== undefined && hit.length === n) {
      let i = 0;
      while (i < n && hit.charCodeAt(i) === bytes[start + i]) i++;
      if (i === n) return hit;
    }
    let s = "";
    for (let i = start; i < end; i++) {
      const c = bytes[i]!;
      if (c >= 0x80) return utf8.decode(bytes.subarray(start, end));
      s += String.fromCharCode(c);
    }
    stringCache[slot] = s;
    return s;
  }
  if (n <= 24) {
    let s = "";
    for (let i = start; i < end; i++) {
      const c = bytes[i]!;
      if (c >= 0x80) return utf8.decode(bytes.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8.decode(bytes.subarray(start, end));
}

function readInt64(timestamp: boolean): number | bigint {
  need(8);
  const lo = (src[at]! | (src[at + 1]! << 8) | (src[at + 2]! << 16) | (src[at + 3]! << 24)) >>> 0;
  const hi = src[at + 4]! | (src[at + 5]! << 8) | (src[at + 6]! << 16) | (src[at + 7]! << 24);
  at += 8;
  if (timestamp) {
    if (hi === 0x7fffffff && lo === 0xffffffff) return Number.POSITIVE_INFINITY;
    if (hi === -0x80000000 && lo === 0) return Number.NEGATIVE_INFINITY;
  }
  if (hi >= -0x200000 && hi < 0x200000) return hi * TWO32 + lo;
  return normInt8((BigInt(hi) << 32n) + BigInt(lo));
}

function readFloat64(): number {
  need(8);
  for (let i = 0; i < 8; i++) f64b[littleEndian ? i : 7 - i] = src[at + i]!;
  at += 8;
  return f64[0]!;
}

function readFloat32(): number {
  need(4);
  for (let i = 0; i < 4; i++) f32b[littleEndian ? i : 3 - i] = src[at + i]!;
  at += 4;
  return f32[0]!;
}

function readUuid(): string {
  need(16);
  let s = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
    const b = src[at + i]!;
    s += HEX[b >> 4]! + HEX[b & 15]!;
  }
  at += 16;
  return s;
}

function readValue(kind: TypeKind): Value {
  switch (kind) {
    case "bool":
      need(1);
      return src[at++] === 1;
    case "int2":
    case "int4":
      return readZigzag();
    case "date": {
      const d = readZigzag();
      return d === 2147483647 ? Number.POSITIVE_INFINITY : d === -2147483648 ? Number.NEGATIVE_INFINITY : d;
    }
    case "int8":
      return readInt64(false);
    case "timestamp":
    case "timestamptz":
      return readInt64(true) as number;
    case "float4":
      return readFloat32();
    case "float8":
      return readFloat64();
    case "uuid":
      return readUuid();
    case "bytea": {
      const n = readVarint();
      need(n);
      const b = src.slice(at, at + n);
      at += n;
      return b;
    }
    case "jsonb":
      return new Jsonb(JSON.parse(readString()) as JsonValue);
    case "vector": {
      const n = readVarint();
      need(4 * n);
      const out = new Float32Array(n);
      if (littleEndian) new Uint8Array(out.buffer).set(src.subarray(at, at + 4 * n));
      else for (let i = 0; i < n; i++) out[i] = readFloat32();
      if (littleEndian) at += 4 * n;
      return out;
    }
    default:
      return readString();
  }
}

function readArray(elem: SqlType): SqlArray {
  const n = readVarint();
  const bitmapAt = at;
  const bitmapBytes = (n + 7) >> 3;
  need(bitmapBytes);
  at += bitmapBytes;
  const items: Value[] = new Array(n);
  const kind = elem.kind;
  for (let i = 0; i < n; i++) {
    items[i] = (src[bitmapAt + (i >> 3)]! >> (i & 7)) & 1 ? null : readValue(kind);
  }
  return new SqlArray(items);
}

/** Steps over one stored value without building it (a column the query does not read). */
function skipValue(t: SqlType): void {
  switch (t.kind) {
    case "bool":
      need(1);
      at += 1;
      return;
    case "int2":
    case "int4":
    case "date":
      readVarint();
      return;
    case "float4":
      need(4);
      at += 4;
      return;
    case "int8":
    case "timestamp":
    case "timestamptz":
    case "float8":
      need(8);
      at += 8;
      return;
    case "uuid":
      need(16);
      at += 16;
      return;
    case "vector": {
      const n = readVarint();
      need(4 * n);
      at += 4 * n;
      return;
    }
    case "array": {
      const n = readVarint();
      const bitmapAt = at;
      const bitmapBytes = (n + 7) >> 3;
      need(bitmapBytes);
      at += bitmapBytes;
      const elem = t.elem!;
      for (let i = 0; i < n; i++) if (!((src[bitmapAt + (i >> 3)]! >> (i & 7)) & 1)) skipValue(elem);
      return;
    }
    default: {
      // Every other kind is a varint length and that many bytes (text, numeric, bytea, jsonb).
      const n = readVarint();
      need(n);
      at += n;
    }
  }
}

/**
 * Decodes a row into `types.length` values; columns the row does not have (added after it was written) read as
 * their `missing` value, or NULL. With `mask`, only the columns whose mask byte is 1 are built; the others are
 * stepped over (still bounds-checked) and read as NULL, so a caller passes a mask only when nothing reads them.
 * With `into`, the values go into that array (reused across rows by a caller that keeps no row).
 */
export function decodeRow(
  types: readonly SqlType[],
  bytes: Uint8Array,
  missing?: readonly Value[],
  mask?: Uint8Array,
  into?: Value[],
): Value[] {
  if (mask !== undefined || into !== undefined)
    return decodeMasked(
      types,
      bytes,
      missing,
      mask ?? allColumns(types.length),
      into ?? new Array(types.length),
    );
  src = bytes;
  at = 0;
  if (bytes.length < 2 || bytes[0] !== FORMAT_VERSION) throw corrupt(`unknown format version ${bytes[0]}`);
  at = 1;
  const n = readVarint();
  const bitmapAt = at;
  const bitmapBytes = (n + 7) >> 3;
  need(bitmapBytes);
  at += bitmapBytes;
  const width = types.length;
  const out: Value[] = new Array(width);
  const stored = Math.min(n, width);
  for (let i = 0; i < stored; i++) {
    const t = types[i]!;
    out[i] =
      (bytes[bitmapAt + (i >> 3)]! >> (i & 7)) & 1
        ? null
        : t.kind === "array"
          ? readArray(t.elem!)
          : readValue(t.kind);
  }
  for (let i = stored; i < width; i++) out[i] = missing === undefined ? null : missing[i]!;
  if (n <= width && at !== bytes.length) throw corrupt(`${bytes.length - at} trailing bytes`);
  return out;
}

const allMasks: Uint8Array[] = [];

function allColumns(width: number): Uint8Array {
  let m = allMasks[width];
  if (m === undefined) {
    m = new Uint8Array(width).fill(1);
    allMasks[width] = m;
  }
  return m;
}

/** Column kinds the masked decoder reads inline (0: through the general readers). */
const K_OTHER = 0;
const K_BOOL = 1;
const K_INT4 = 2;
const K_DATE = 3;
const K_INT8 = 4;
const K_TIMESTAMP = 5;
const K_FLOAT4 = 6;
const K_FLOAT8 = 7;
const K_TEXT = 8;

function kindCode(t: SqlType): number {
  switch (t.kind) {
    case "bool":
      return K_BOOL;
    case "int2":
    case "int4":
      return K_INT4;
    case "date":
      return K_DATE;
    case "int8":
      return K_INT8;
    case "timestamp":
    case "timestamptz":
      return K_TIMESTAMP;
    case "float4":
      return K_FLOAT4;
    case "float8":
      return K_FLOAT8;
    case "text":
    case "varchar":
    case "bpchar":
    case "numeric":
      return K_TEXT;
    default:
      return K_OTHER;
  }
}

/**
 * Kind codes per column list (a table version's `types` array lives as long as the table version), with the last
 * one in front: a scan decodes one table's rows, a join alternates between two.
 */
const codesByTypes = new WeakMap<readonly SqlType[], Uint8Array>();
let codesFor: readonly SqlType[] | undefined;
let codes: Uint8Array = new Uint8Array(0);

function codesOf(types: readonly SqlType[]): Uint8Array {
  if (types !== codesFor) {
    let c = codesByTypes.get(types);
    if (c === undefined) {
      c = Uint8Array.from(types, kindCode);
      codesByTypes.set(types, c);
    }
    codes = c;
    codesFor = types;
  }
  return codes;
}

/**
 * The masked decode. Positions live in a local variable and the common kinds are read inline; the rare ones go
 * through the general readers (module state), and the result is the same as theirs.
 */
function decodeMasked(
  types: readonly SqlType[],
  bytes: Uint8Array,
  missing: readonly Value[] | undefined,
  mask: Uint8Array,
  out: Value[],
): Value[] {
  const len = bytes.length;
  if (len < 2 || bytes[0] !== FORMAT_VERSION) throw corrupt(`unknown format version ${bytes[0]}`);
  let p = 1;
  let n = bytes[1]!;
  if (n < 0x80) p = 2;
  else {
    src = bytes;
    at = 1;
    n = readVarint();
    p = at;
  }
  const bitmapAt = p;
  p += (n + 7) >> 3;
  if (p > len) throw corrupt(`needs ${p - bitmapAt} bytes at ${bitmapAt}, has ${len - bitmapAt}`);
  const width = types.length;
  const stored = Math.min(n, width);
  const kinds = codesOf(types);
  // The last stored column anyone reads: the bytes after it are not walked at all.
  let last = stored - 1;
  while (last >= 0 && mask[last] === 0) last--;
  for (let i = 0; i <= last; i++) {
    if ((bytes[bitmapAt + (i >> 3)]! >> (i & 7)) & 1) {
      out[i] = null;
      continue;
    }
    const want = mask[i] === 1;
    switch (kinds[i]) {
      case K_BOOL:
        if (p >= len) throw corrupt(`needs 1 bytes at ${p}, has 0`);
        out[i] = want ? bytes[p] === 1 : null;
        p += 1;
        break;
      case K_INT4:
      case K_DATE: {
        let u = bytes[p] ?? 0x100;
        if (u < 0x80) p++;
        else {
          src = bytes;
          at = p;
          u = readVarint();
          p = at;
        }
        if (!want) out[i] = null;
        else {
          const v = u % 2 === 0 ? u / 2 : -(u + 1) / 2;
          out[i] =
            kinds[i] === K_INT4
              ? v
              : v === 2147483647
                ? Number.POSITIVE_INFINITY
                : v === -2147483648
                  ? Number.NEGATIVE_INFINITY
                  : v;
        }
        break;
      }
      case K_INT8:
      case K_TIMESTAMP:
        if (want) {
          src = bytes;
          at = p;
          out[i] = readInt64(kinds[i] === K_TIMESTAMP);
          p = at;
        } else {
          if (p + 8 > len) throw corrupt(`needs 8 bytes at ${p}, has ${len - p}`);
          out[i] = null;
          p += 8;
        }
        break;
      case K_FLOAT8:
        if (p + 8 > len) throw corrupt(`needs 8 bytes at ${p}, has ${len - p}`);
        if (want) {
          if (littleEndian) for (let k = 0; k < 8; k++) f64b[k] = bytes[p + k]!;
          else for (let k = 0; k < 8; k++) f64b[7 - k] = bytes[p + k]!;
          out[i] = f64[0]!;
        } else out[i] = null;
        p += 8;
        break;
      case K_TEXT: {
        let m = bytes[p] ?? 0x100;
        if (m < 0x80) p++;
        else {
          src = bytes;
          at = p;
          m = readVarint();
          p = at;
        }
        if (p + m > len) throw corrupt(`needs ${m} bytes at ${p}, has ${len - p}`);
        out[i] = want ? stringAt(bytes, p, p + m) : null;
        p += m;
        break;
      }
      default: {
        const t = types[i]!;
        src = bytes;
        at = p;
        if (want) out[i] = t.kind === "array" ? readArray(t.elem!) : readValue(t.kind);
        else {
          skipValue(t);
          out[i] = null;
        }
        p = at;
      }
    }
  }
  if (last === stored - 1 && n <= width && p !== len) throw corrupt(`${len - p} trailing bytes`);
  for (let i = last + 1; i < stored; i++) out[i] = null;
  for (let i = stored; i < width; i++) out[i] = missing === undefined || mask[i] === 0 ? null : missing[i]!;
  return out;
}
