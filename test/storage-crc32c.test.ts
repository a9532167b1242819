import { describe, expect, it } from "vitest";
import { crc32c, crc32cRange } from "../src/storage/crc32c.js";

/** Bit-at-a-time CRC-32C, the definition the table-driven version must match. */
function reference(bytes: Uint8Array, seed = 0): number {
  let c = ~seed >>> 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe("crc32c", () => {
  it("matches the standard check values", () => {
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it("matches the bitwise definition at every alignment and length, and continues from a seed", () => {
    const data = new Uint8Array(700).map((_, i) => (i * 2654435761) >>> 24);
    for (let offset = 0; offset < 8; offset++) {
      for (let length = 0; length < 300; length += 1 + (length >> 4)) {
        const part = data.subarray(offset, offset + length);
        expect(crc32c(part, 77)).toBe(reference(part, 77));
      }
    }
    const whole = crc32c(data);
    expect(crc32c(data.subarray(333), crc32c(data.subarray(0, 333)))).toBe(whole);
  });

  it("checksums a range through a word view of the whole buffer, also from a view that starts mid-buffer", () => {
    const backing = new Uint8Array(708).map((_, i) => (i * 2654435761) >>> 24);
    const words = new Int32Array(backing.buffer);
    // `bytes` itself starts at byte 4 and then at 5 of the buffer: the range's alignment is the buffer's.
    for (const start of [4, 5]) {
      const bytes = backing.subarray(start, start + 700);
      for (let from = 0; from < 8; from++) {
        for (let length = 0; length < 300; length += 1 + (length >> 4)) {
          const expected = reference(bytes.subarray(from, from + length), 77);
          expect(crc32cRange(bytes, from, from + length, 77, words)).toBe(expected);
        }
      }
    }
  });
});
