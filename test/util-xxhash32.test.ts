import { describe, expect, it } from "vitest";
import { xxhash32 } from "../src/util/xxhash32.js";

const text = new TextEncoder();

describe("xxhash32", () => {
  it("matches the reference XXH32 test vectors", () => {
    expect(xxhash32(new Uint8Array(0))).toBe(0x02cc5d05);
    expect(xxhash32(new Uint8Array(0), 1)).toBe(0x0b2cb792);
    expect(xxhash32(text.encode("a"))).toBe(0x550d7456);
    expect(xxhash32(text.encode("abc"))).toBe(0x32d153ff);
    expect(xxhash32(text.encode("Nobody inspects the spammish repetition"))).toBe(0xe2293b2f);
  });

  it("gives the same result on aligned and unaligned copies of the same bytes, at every length", () => {
    const base = new Uint8Array(300);
    for (let i = 0; i < base.length; i++) base[i] = (i * 2654435761) >>> 24;
    const shifted = new Uint8Array(base.length + 1);
    for (let n = 0; n < base.length; n++) {
      shifted.set(base.subarray(0, n), 1);
      const unaligned = shifted.subarray(1, 1 + n);
      expect(unaligned.byteOffset & 3).toBe(1);
      expect(xxhash32(unaligned, n)).toBe(xxhash32(base.subarray(0, n), n));
    }
  });

  it("takes the seed modulo 2^32 and changes with it", () => {
    const bytes = text.encode("twill block at an offset");
    expect(xxhash32(bytes, 2 ** 32 + 5)).toBe(xxhash32(bytes, 5));
    expect(xxhash32(bytes, 0xffffffff)).toBe(xxhash32(bytes, -1));
    expect(xxhash32(bytes, 4096)).not.toBe(xxhash32(bytes, 8192));
  });
});
