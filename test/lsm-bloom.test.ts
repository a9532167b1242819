import { describe, expect, it } from "vitest";
import { Bloom, BloomBuilder, bloomHash } from "../src/engine/lsm/bloom.js";
import { encodeKey } from "../src/engine/lsm/keycodec.js";
import { isTwillError } from "../src/errors.js";

function keyOf(table: number, id: number): Uint8Array {
  return encodeKey([table, id]);
}

describe("bloom filter", () => {
  it("has no false negatives and under 2% false positives at 10 bits per key", () => {
    const n = 20_000;
    const builder = new BloomBuilder(10);
    for (let i = 0; i < n; i++) builder.add(keyOf(7, i));
    const bloom = Bloom.from(builder.finish().serialize());
    expect(bloom.probeCount).toBe(7);
    for (let i = 0; i < n; i++) expect(bloom.mayContain(keyOf(7, i))).toBe(true);
    let falsePositives = 0;
    const probes = 200_000;
    for (let i = 0; i < probes; i++) if (bloom.mayContain(keyOf(7, n + i))) falsePositives++;
    const rate = falsePositives / probes;
    // Also keys that differ in a way a weak hash would miss: another table, text keys.
    let textFalsePositives = 0;
    for (let i = 0; i < probes; i++) if (bloom.mayContain(encodeKey([`user-${i}`]))) textFalsePositives++;
    console.log(
      `bloom: ${(rate * 100).toFixed(3)}% false positives (integer keys), ${((textFalsePositives / probes) * 100).toFixed(3)}% (text keys)`,
    );
    expect(rate).toBeLessThan(0.02);
    expect(textFalsePositives / probes).toBeLessThan(0.02);
  });

  it("round-trips and answers the same after serialization", () => {
    const builder = new BloomBuilder(12);
    for (let i = 0; i < 100; i++) builder.add(keyOf(1, i));
    const a = builder.finish();
    const b = Bloom.from(a.serialize());
    expect(b.bitCount).toBe(a.bitCount);
    for (let i = 0; i < 1000; i++) expect(b.mayContain(keyOf(1, i))).toBe(a.mayContain(keyOf(1, i)));
    expect(b.mayContainHash(bloomHash(keyOf(1, 5)))).toBe(true);
  });

  it("works with no keys and with empty keys", () => {
    const empty = new BloomBuilder().finish();
    expect(empty.mayContain(new Uint8Array([1]))).toBe(false);
    const b = new BloomBuilder();
    b.add(new Uint8Array());
    expect(Bloom.from(b.finish().serialize()).mayContain(new Uint8Array())).toBe(true);
  });

  it("hashes like MurmurHash3 x86_32 for every tail length", () => {
    // Distinct for prefixes of one buffer: every tail length path is used and mixes its bytes.
    const bytes = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const seen = new Set<number>();
    for (let i = 0; i <= bytes.length; i++) seen.add(bloomHash(bytes.subarray(0, i)));
    expect(seen.size).toBe(bytes.length + 1);
  });

  it("rejects malformed serializations as corruption", () => {
    const good = new BloomBuilder().finish().serialize();
    const bad = [
      good.subarray(0, 4),
      good.subarray(0, good.length - 1),
      Uint8Array.from(good, (b, i) => (i === 0 ? 9 : b)),
      Uint8Array.from(good, (b, i) => (i === 1 ? 0 : b)),
      Uint8Array.from(good, (b, i) => (i === 2 ? 1 : b)),
      Uint8Array.from(good, (b, i) => (i === 4 ? 8 : b)),
    ];
    for (const bytes of bad) {
      let error: unknown;
      try {
        Bloom.from(bytes, "the filter");
      } catch (e) {
        error = e;
      }
      expect(isTwillError(error, "CORRUPTION")).toBe(true);
      expect((error as Error).message).toMatch(/^the filter is corrupt/);
    }
  });
});
