/**
 * Bloom filter over user keys, stored in each SST so that a point read skips SSTs that lack the key without
 * fetching a block.
 *
 * Serialized layout (little-endian):
 *   0  u8   format version (1)
 *   1  u8   probes per key, k (1..30)
 *   2  u16  reserved, 0
 *   4  u32  bit count m, a multiple of 512
 *   8  ...  m / 8 bytes of bits; bit i is (byte i >> 3) & (1 << (i & 7))
 *
 * Cache-local ("blocked") filter, as RocksDB's FastLocalBloom: the bits form 64-byte blocks, a key's k probes all
 * fall in one block, so a lookup costs one cache miss instead of k — on a large filter that is most of its cost.
 * h1 = MurmurHash3 x86_32 of the key (seed 0xbc9f1d34) picks the block: floor(h1 · blocks / 2^32). h2 = the murmur
 * finalizer of h1 ^ 0x9e3779b9 drives the probes: h2 ← h2 · 0x9e3779b9 (mod 2^32) before each one, and the top 9
 * bits are the bit within the block. At 10 bits per key and k = 7 about 0.9% of absent keys pass.
 *
 * Invariants: a key added is always reported as possibly present (no false negatives); the byte length matches
 * m exactly. The checksum lives in the enclosing SST block, not here.
 */

import { ErrorCodes, TwillError } from "../../errors.js";
import { fmix32 } from "../../util/fmix32.js";

const FORMAT_VERSION = 1;
const HEADER_BYTES = 8;
const SEED = 0xbc9f1d34;
const blockBits = 512;
const probesMax = 30;

/** MurmurHash3 x86_32 of `key`: the one hash a point read computes and tests against every SST's filter. */
export function bloomHash(key: Uint8Array): number {
  const n = key.length;
  const end4 = n & ~3;
  let h = SEED;
  for (let i = 0; i < end4; i += 4) {
    let k = key[i]! | (key[i + 1]! << 8) | (key[i + 2]! << 16) | (key[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = n & 3;
  if (tail !== 0) {
    let k = key[end4]!;
    if (tail > 1) k |= key[end4 + 1]! << 8;
    if (tail > 2) k |= key[end4 + 2]! << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  return fmix32(h);
}

export class Bloom {
  private constructor(
    private readonly bits: Uint8Array,
    readonly bitCount: number,
    readonly probeCount: number,
  ) {}

  /** Builds a filter for the given key hashes (see `bloomHash`). */
  static fromHashes(hashes: ArrayLike<number>, count: number, bitsPerKey = 10): Bloom {
    if (!(bitsPerKey >= 1 && bitsPerKey <= 64)) {
      throw new TwillError(ErrorCodes.InvalidArgument, `bloom bits per key must be 1..64, got ${bitsPerKey}`);
    }
    const bitCount = Math.max(1, Math.ceil((count * bitsPerKey) / blockBits)) * blockBits;
    const probeCount = Math.min(probesMax, Math.max(1, Math.round(bitsPerKey * Math.LN2)));
    const bloom = new Bloom(new Uint8Array((bitCount + 7) >>> 3), bitCount, probeCount);
    for (let i = 0; i < count; i++) bloom.addHash(hashes[i]!);
    return bloom;
  }

  /** Parses a serialized filter; malformed bytes are CORRUPTION naming `what`. */
  static from(bytes: Uint8Array, what = "bloom filter"): Bloom {
    const corrupt = (reason: string) =>
      new TwillError(ErrorCodes.Corruption, `${what} is corrupt: ${reason}`);
    if (bytes.length < HEADER_BYTES) throw corrupt(`${bytes.length} bytes is shorter than its header`);
    if (bytes[0] !== FORMAT_VERSION) throw corrupt(`unknown format version ${bytes[0]}`);
    const probeCount = bytes[1]!;
    if (probeCount < 1 || probeCount > probesMax)
      throw corrupt(`probe count ${probeCount} is outside 1..${probesMax}`);
    if (bytes[2] !== 0 || bytes[3] !== 0) throw corrupt("reserved bytes are not zero");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const bitCount = view.getUint32(4, true);
    if (bitCount === 0 || bitCount % blockBits !== 0)
      throw corrupt(`bit count ${bitCount} is not a multiple of ${blockBits}`);
    const expected = HEADER_BYTES + ((bitCount + 7) >>> 3);
    if (bytes.length !== expected)
      throw corrupt(`${bytes.length} bytes, expected ${expected} for ${bitCount} bits`);
    return new Bloom(bytes.subarray(HEADER_BYTES), bitCount, probeCount);
  }

  /** Byte offset of the 64-byte block that holds h1's probes. */
  private blockOffset(h1: number): number {
    return Math.floor((h1 * (this.bitCount / blockBits)) / 4294967296) * (blockBits / 8);
  }

  private addHash(h1: number): void {
    const bits = this.bits;
    const base = this.blockOffset(h1);
    let h = fmix32(h1 ^ 0x9e3779b9);
    for (let j = 0; j < this.probeCount; j++) {
      h = Math.imul(h, 0x9e3779b9);
      const bit = h >>> 23;
      bits[base + (bit >>> 3)] = bits[base + (bit >>> 3)]! | (1 << (bit & 7));
    }
  }

  mayContainHash(h1: number): boolean {
    const bits = this.bits;
    const base = this.blockOffset(h1);
    let h = fmix32(h1 ^ 0x9e3779b9);
    for (let j = 0; j < this.probeCount; j++) {
      h = Math.imul(h, 0x9e3779b9);
      const bit = h >>> 23;
      if ((bits[base + (bit >>> 3)]! & (1 << (bit & 7))) === 0) return false;
    }
    return true;
  }

  /** False means the key was certainly not added; true means it may have been. */
  mayContain(key: Uint8Array): boolean {
    return this.mayContainHash(bloomHash(key));
  }

  /** Bytes held in memory (for cache and budget accounting). */
  get byteLength(): number {
    return this.bits.length + HEADER_BYTES;
  }

  serialize(): Uint8Array {
    const out = new Uint8Array(HEADER_BYTES + this.bits.length);
    out[0] = FORMAT_VERSION;
    out[1] = this.probeCount;
    new DataView(out.buffer).setUint32(4, this.bitCount, true);
    out.set(this.bits, HEADER_BYTES);
    return out;
  }
}

/** Collects key hashes (4 bytes per key) until the key count, and so the filter size, is known. */
export class BloomBuilder {
  private hashes = new Uint32Array(1024);
  private count = 0;

  constructor(readonly bitsPerKey = 10) {}

  get keyCount(): number {
    return this.count;
  }

  add(key: Uint8Array): void {
    this.addHash(bloomHash(key));
  }

  addHash(h: number): void {
    if (this.count === this.hashes.length) {
      const next = new Uint32Array(this.hashes.length * 2);
      next.set(this.hashes);
      this.hashes = next;
    }
    this.hashes[this.count++] = h;
  }

  finish(): Bloom {
    return Bloom.fromHashes(this.hashes, this.count, this.bitsPerKey);
  }
}
