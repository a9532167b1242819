/**
 * MurmurHash3's 32-bit finaliser: mixes every input bit into every output bit, so a hash built from a cheap
 * per-byte loop (the bloom filter's murmur3, HNSW's FNV-1a of a node id) avalanches before it is used.
 */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
