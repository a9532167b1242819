/**
 * The key-value rows bench/engine, its profiler and bench/branch all use, so their figures describe the same data:
 * 16-byte keys (a 1-byte key space, a big-endian row number, "twillrow") and 184-byte values that differ per row
 * (windows into a seeded random pool, so the values neither compress nor repeat in a block).
 */

import { prng } from "../src/util/prng.js";

export const VALUE_BYTES = 184;

/** Row `i`'s key in key space `space` (bulk rows use 0; the commit benchmarks use their own spaces). */
export function rowKey(i: number, space = 0): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32BE(space << 24, 0);
  key.writeUInt32BE(i, 4);
  key.write("twillrow", 8, "latin1");
  return key;
}

const pool = (() => {
  const rand = prng(42);
  const bytes = Buffer.alloc(1 << 20);
  for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32LE(Math.floor(rand() * 2 ** 32), i);
  return bytes;
})();

/** Row `i`'s value: a view into the pool, not a copy (Twill's put copies; SQLite binds the bytes). */
export function rowValue(i: number): Buffer {
  const at = (i * 997) % (pool.length - VALUE_BYTES);
  return pool.subarray(at, at + VALUE_BYTES);
}

/** The same bytes as a plain Uint8Array view. */
export function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}
