/**
 * xxHash32 (Yann Collet's XXH32, the algorithm of the reference implementation and of the LZ4 frame format's
 * content checksum): the checksum of SST blocks in format version 2 (still read; version 4 moved to XXH64 in
 * WebAssembly, src/util/xxhash64.ts).
 *
 * Why not CRC-32C as elsewhere: a table-driven CRC in V8 runs at about 0.7 GB/s (6 µs per 4 KiB block), which was
 * the largest single cost of a point read that misses the block cache. XXH32 needs one 32-bit multiply per four
 * bytes and no table, and runs at about 4 GB/s here when the bytes are 4-byte aligned (every block a reader or
 * writer holds is: each is its own buffer or starts at offset 0 of one). RocksDB made the same trade (xxHash
 * block checksums). Its detection of random damage is that of any good 32-bit hash, 1 in 2^32.
 *
 * The result equals the reference XXH32(bytes, seed) for every input; the aligned and unaligned paths are
 * separate functions so that each stays monomorphic.
 */

const P1 = 0x9e3779b1 | 0;
const P2 = 0x85ebca77 | 0;
const P3 = 0xc2b2ae3d | 0;
const P4 = 0x27d4eb2f | 0;
const P5 = 0x165667b1 | 0;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function u32At(bytes: Uint8Array, p: number): number {
  return bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
}

/** The four-lane loop over 16-byte stripes of an aligned region, read as little-endian words. */
function stripesAligned(words: Int32Array, stripes: number, seed: number): number {
  let v1 = (seed + P1 + P2) | 0;
  let v2 = (seed + P2) | 0;
  let v3 = seed | 0;
  let v4 = (seed - P1) | 0;
  const end = stripes * 4;
  for (let j = 0; j < end; j += 4) {
    v1 = Math.imul(rotl((v1 + Math.imul(words[j]!, P2)) | 0, 13), P1);
    v2 = Math.imul(rotl((v2 + Math.imul(words[j + 1]!, P2)) | 0, 13), P1);
    v3 = Math.imul(rotl((v3 + Math.imul(words[j + 2]!, P2)) | 0, 13), P1);
    v4 = Math.imul(rotl((v4 + Math.imul(words[j + 3]!, P2)) | 0, 13), P1);
  }
  return (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
}

function stripesUnaligned(bytes: Uint8Array, stripes: number, seed: number): number {
  let v1 = (seed + P1 + P2) | 0;
  let v2 = (seed + P2) | 0;
  let v3 = seed | 0;
  let v4 = (seed - P1) | 0;
  const end = stripes * 16;
  for (let i = 0; i < end; i += 16) {
    v1 = Math.imul(rotl((v1 + Math.imul(u32At(bytes, i), P2)) | 0, 13), P1);
    v2 = Math.imul(rotl((v2 + Math.imul(u32At(bytes, i + 4), P2)) | 0, 13), P1);
    v3 = Math.imul(rotl((v3 + Math.imul(u32At(bytes, i + 8), P2)) | 0, 13), P1);
    v4 = Math.imul(rotl((v4 + Math.imul(u32At(bytes, i + 12), P2)) | 0, 13), P1);
  }
  return (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
}

// Int32Array reads are in platform byte order; XXH32 is defined on little-endian words.
const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** XXH32 of `bytes` with a 32-bit `seed` (taken modulo 2^32). */
export function xxhash32(bytes: Uint8Array, seed = 0): number {
  const n = bytes.length;
  const s = seed | 0;
  const stripes = n >>> 4;
  let h: number;
  if (stripes > 0) {
    h =
      littleEndian && (bytes.byteOffset & 3) === 0
        ? stripesAligned(new Int32Array(bytes.buffer, bytes.byteOffset, stripes * 4), stripes, s)
        : stripesUnaligned(bytes, stripes, s);
  } else {
    h = (s + P5) | 0;
  }
  h = (h + n) | 0;
  let i = stripes * 16;
  for (; i + 4 <= n; i += 4) h = Math.imul(rotl((h + Math.imul(u32At(bytes, i), P3)) | 0, 17), P4);
  for (; i < n; i++) h = Math.imul(rotl((h + Math.imul(bytes[i]!, P5)) | 0, 11), P1);
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}
