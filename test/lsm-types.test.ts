import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ByteReader, ByteWriter, varintBytes } from "../src/engine/lsm/byte-io.js";
import {
  bytesEqual,
  compareBytes,
  compareEntries,
  type Entry,
  EntryKind,
  entryDefect,
} from "../src/engine/lsm/types.js";
import { isTwillError } from "../src/errors.js";

const sign = (x: number): number => Math.sign(x) || 0;

describe("byte order and entry order", () => {
  it("compareBytes is unsigned lexicographic order", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), (a, b) => {
        expect(sign(compareBytes(a, b))).toBe(sign(Buffer.compare(a, b)));
        expect(bytesEqual(a, b)).toBe(Buffer.compare(a, b) === 0);
      }),
    );
    expect(compareBytes(new Uint8Array([0x80]), new Uint8Array([0x7f]))).toBeGreaterThan(0);
  });

  it("compareEntries puts keys ascending, then newest version first", () => {
    const e = (k: number, lsn: number): Entry => ({
      key: new Uint8Array([k]),
      lsn,
      kind: EntryKind.Put,
      value: new Uint8Array(),
    });
    expect(compareEntries(e(1, 5), e(2, 1))).toBeLessThan(0);
    expect(compareEntries(e(1, 5), e(1, 3))).toBeLessThan(0);
    expect(compareEntries(e(1, 3), e(1, 5))).toBeGreaterThan(0);
    expect(compareEntries(e(1, 3), e(1, 3))).toBe(0);
  });

  it("entryDefect finds malformed entries", () => {
    const key = new Uint8Array([1]);
    expect(entryDefect({ key, lsn: 1, kind: EntryKind.Put, value: new Uint8Array([1]) })).toBeUndefined();
    expect(entryDefect({ key, lsn: 0, kind: EntryKind.Put, value: new Uint8Array() })).toMatch(/lsn/);
    expect(entryDefect({ key, lsn: 2 ** 53, kind: EntryKind.Put, value: new Uint8Array() })).toMatch(/lsn/);
    expect(entryDefect({ key, lsn: 1.5, kind: EntryKind.Put, value: new Uint8Array() })).toMatch(/lsn/);
    expect(entryDefect({ key, lsn: 1, kind: EntryKind.Delete, value: new Uint8Array([1]) })).toMatch(
      /Delete/,
    );
    expect(entryDefect({ key, lsn: 1, kind: 3 as EntryKind, value: new Uint8Array() })).toMatch(/kind/);
  });
});

describe("ByteWriter / ByteReader", () => {
  it("round-trips varints, u32, u64 and bytes, growing as needed", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ t: fc.constant("varint" as const), v: fc.maxSafeNat() }),
            fc.record({ t: fc.constant("varint" as const), v: fc.nat(300) }),
            fc.record({ t: fc.constant("u32" as const), v: fc.nat({ max: 0xffffffff }) }),
            fc.record({ t: fc.constant("u64" as const), v: fc.maxSafeNat() }),
            fc.record({ t: fc.constant("bytes" as const), v: fc.uint8Array({ maxLength: 100 }) }),
          ),
          { maxLength: 50 },
        ),
        (items) => {
          const w = new ByteWriter(16);
          for (const item of items) {
            if (item.t === "bytes") w.varint(item.v.length).bytes(item.v);
            else if (item.t === "varint") w.varint(item.v);
            else if (item.t === "u32") w.u32(item.v);
            else w.u64(item.v);
          }
          const r = new ByteReader(w.finish(), "test bytes");
          for (const item of items) {
            if (item.t === "bytes") expect(r.bytesView(r.varint())).toEqual(item.v);
            else if (item.t === "varint") expect(r.varint()).toBe(item.v);
            else if (item.t === "u32") expect(r.u32()).toBe(item.v);
            else expect(r.u64()).toBe(item.v);
          }
          r.expectEnd();
        },
      ),
    );
  });

  it("varintBytes matches the encoding", () => {
    for (const v of [0, 127, 128, 16383, 16384, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]) {
      expect(new ByteWriter().varint(v).length).toBe(varintBytes(v));
    }
    expect(new ByteWriter().varint(2 ** 53 - 1).length).toBe(8);
  });

  it("reports overruns, overlong and oversized varints as corruption", () => {
    const cases = [
      () => new ByteReader(new Uint8Array([0x80]), "x").varint(),
      () => new ByteReader(new Uint8Array(9).fill(0x80), "x").varint(),
      () => new ByteReader(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x10]), "x").varint(),
      () => new ByteReader(new Uint8Array(3), "x").u32(),
      () => new ByteReader(new Uint8Array(2), "x").bytesView(3),
      () => new ByteReader(new Uint8Array([0, 0, 0, 0, 0, 0, 0x20, 0]), "x").u64(),
      () => new ByteReader(new Uint8Array(1), "x").expectEnd(),
    ];
    for (const run of cases) {
      let error: unknown;
      try {
        run();
      } catch (e) {
        error = e;
      }
      expect(isTwillError(error, "CORRUPTION")).toBe(true);
      expect((error as Error).message).toMatch(/^x is corrupt/);
    }
  });
});
