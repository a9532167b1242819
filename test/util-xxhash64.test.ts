import { describe, expect, it, vi } from "vitest";
import { xxhash64Low32, xxhash64Native, xxhash64Reference } from "../src/util/xxhash64.js";

const text = new TextEncoder();

/** The test bytes the vectors below were taken over: byte i = the top byte of i * 0x9e3779b1 (mod 2^32). */
function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.imul(i, 0x9e3779b1) >>> 24;
  return b;
}

/** XXH64 with seed 0 of pattern(n), from `xxhsum -H64` (xxHash 0.8.1, Debian's build): [n, hex digest]. */
const vectors: [number, string][] = [
  [1, "e934a84adb052768"],
  [3, "a9cf36b41f9e7d09"],
  [4, "435f59a33b7eb3d1"],
  [7, "651c1bb8102d53ea"],
  [8, "538cac3b18f9ef8e"],
  [31, "4071dd1310fa5da9"],
  [32, "13ee8a64346f0691"],
  [33, "f75619499e2e2e99"],
  [63, "63a89bd4f10c9d1e"],
  [100, "8a5b7a72e578e053"],
  [4092, "6f56146ed696e672"],
  [131072, "6d751511b5652bdf"],
  [131073, "308b73a5f2fc83a4"],
  [300001, "e446fcb82b3eb28e"],
];

const low32 = (hex: string): number => Number.parseInt(hex.slice(8), 16);

describe("xxhash64Low32", () => {
  it("runs on WebAssembly here (the BigInt fallback serves only hosts without it)", () => {
    expect(xxhash64Native).toBe(true);
  });

  it("matches the reference XXH64 test vectors, in both implementations", () => {
    const known: [string, string][] = [
      ["", "ef46db3751d8e999"],
      ["a", "d24ec4f1a98c6e5b"],
      ["abc", "44bc2cf5ad770999"],
      ["Nobody inspects the spammish repetition", "fbcea83c8a378bf1"],
    ];
    for (const [s, hex] of known) {
      const bytes = text.encode(s);
      expect(xxhash64Low32(bytes, bytes.length, 0), s).toBe(low32(hex));
      expect(xxhash64Reference(bytes, 0), s).toBe(low32(hex));
    }
  });

  it("matches xxhsum over inputs of every tail shape, and past the module's memory (hashed in chunks)", () => {
    for (const [n, hex] of vectors) {
      const bytes = pattern(n);
      expect(xxhash64Low32(bytes, n, 0), `length ${n}`).toBe(low32(hex));
      if (n <= 4096) expect(xxhash64Reference(bytes, 0), `length ${n}`).toBe(low32(hex));
    }
  });

  it("agrees with the BigInt implementation at every length and seed, over buffers that run past the length", () => {
    const base = pattern(700);
    for (let n = 0; n <= 600; n++) {
      for (const seed of [0, 1, 4096, 0x7fffffff, 0xffffffff]) {
        // Hashed out of the whole 700-byte buffer (as a pooled block buffer is), and out of an exact view.
        const expected = xxhash64Reference(base.subarray(0, n), seed);
        expect(xxhash64Low32(base, n, seed), `length ${n} seed ${seed}`).toBe(expected);
        expect(xxhash64Low32(base.subarray(0, n), n, seed)).toBe(expected);
      }
    }
    const big = pattern(200_003);
    expect(xxhash64Low32(big, big.length, 77)).toBe(xxhash64Reference(big, 77));
    expect(xxhash64Low32(big, 131_075, 5)).toBe(xxhash64Reference(big.subarray(0, 131_075), 5));
  });

  it("gives the same values through the BigInt fallback on a host without WebAssembly", async () => {
    vi.resetModules();
    vi.stubGlobal("WebAssembly", undefined);
    try {
      const fallback = await import("../src/util/xxhash64.js");
      expect(fallback.xxhash64Native).toBe(false);
      for (const [n, hex] of vectors.filter(([n]) => n <= 4092)) {
        expect(fallback.xxhash64Low32(pattern(n + 9), n, 0), `length ${n}`).toBe(low32(hex));
      }
    } finally {
      vi.unstubAllGlobals();
      vi.resetModules();
    }
  });

  it("refuses a length outside the buffer with a typed error", () => {
    for (const length of [-1, 5, Number.NaN]) {
      expect(() => xxhash64Low32(new Uint8Array(4), length, 0)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }),
      );
    }
  });

  it("takes the seed modulo 2^32 and changes with it", () => {
    const bytes = text.encode("twill block at an offset, long enough for the four lanes");
    const n = bytes.length;
    expect(xxhash64Low32(bytes, n, 2 ** 32 + 5)).toBe(xxhash64Low32(bytes, n, 5));
    expect(xxhash64Low32(bytes, n, 0xffffffff)).toBe(xxhash64Low32(bytes, n, -1));
    expect(xxhash64Low32(bytes, n, 4096)).not.toBe(xxhash64Low32(bytes, n, 8192));
  });

  it("changes with every single flipped bit of a 4 KiB block", () => {
    const block = pattern(4092);
    const sum = xxhash64Low32(block, block.length, 8192);
    for (let bit = 0; bit < block.length * 8; bit++) {
      block[bit >>> 3] = block[bit >>> 3]! ^ (1 << (bit & 7));
      expect(xxhash64Low32(block, block.length, 8192)).not.toBe(sum);
      block[bit >>> 3] = block[bit >>> 3]! ^ (1 << (bit & 7));
    }
  });
});
