import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EntryKind } from "../src/engine/lsm/types.js";
import { decodeFrame, encodeCommit, WriteKind } from "../src/engine/txn/commit-record.js";
import { stampEntries, WriteBuffer } from "../src/engine/txn/write-buffer.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

type Op =
  | { op: "put"; key: number[]; value: number[] }
  | { op: "delete"; key: number[] }
  | { op: "get"; key: number[] }
  | { op: "sorted" };

const keyArb = fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 3 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant("put" as const),
    key: keyArb,
    value: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 5 }),
  }),
  fc.record({ op: fc.constant("delete" as const), key: keyArb }),
  fc.record({ op: fc.constant("get" as const), key: keyArb }),
  fc.record({ op: fc.constant("sorted" as const) }),
);

describe("WriteBuffer", () => {
  it("behaves like a map with the latest write per key, whatever the order of writes and lookups", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const buffer = new WriteBuffer();
        const model = new Map<string, { kind: number; value: string }>();
        for (const o of ops) {
          if (o.op === "put") {
            buffer.put(new Uint8Array(o.key), new Uint8Array(o.value));
            model.set(hex(new Uint8Array(o.key)), {
              kind: WriteKind.Put,
              value: hex(new Uint8Array(o.value)),
            });
          } else if (o.op === "delete") {
            buffer.delete(new Uint8Array(o.key));
            model.set(hex(new Uint8Array(o.key)), { kind: WriteKind.Delete, value: "" });
          } else if (o.op === "get") {
            const w = buffer.get(new Uint8Array(o.key));
            const m = model.get(hex(new Uint8Array(o.key)));
            expect(w && { kind: w.kind, value: hex(w.value) }).toEqual(m);
            expect(buffer.has(new Uint8Array(o.key))).toBe(m !== undefined);
          } else {
            const sorted = buffer.sorted().map((w) => [hex(w.key), w.kind, hex(w.value)]);
            const want = [...model.entries()]
              .sort(([a], [b]) => Buffer.compare(Buffer.from(a, "hex"), Buffer.from(b, "hex")))
              .map(([k, m]) => [k, m.kind, m.value]);
            expect(sorted).toEqual(want);
          }
          expect(buffer.size).toBe(model.size);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("keeps a load in key order as it came, and copies the caller's bytes", () => {
    const buffer = new WriteBuffer();
    const key = new Uint8Array(8);
    const value = new Uint8Array(300);
    for (let i = 0; i < 5000; i++) {
      new DataView(key.buffer).setUint32(4, i);
      value.fill(i & 0xff);
      buffer.put(key, value);
    }
    key.fill(0xff);
    value.fill(0);
    const sorted = buffer.sorted();
    expect(sorted.length).toBe(5000);
    for (let i = 0; i < 5000; i++) {
      const w = sorted[i]!;
      expect(new DataView(w.key.buffer, w.key.byteOffset).getUint32(4)).toBe(i);
      expect(w.value.length).toBe(300);
      expect(w.value[299]).toBe(i & 0xff);
    }
    // A large value gets a buffer of its own rather than a chunk.
    buffer.put(new Uint8Array([9]), new Uint8Array(100_000).fill(7));
    expect(buffer.get(new Uint8Array([9]))!.value.byteLength).toBe(100_000);
    expect(buffer.get(new Uint8Array([9]))!.value[99_999]).toBe(7);
  });

  it("keeps every buffer's writes its own, a large first write and a buffer cleared and written again too", () => {
    // Buffers start from shared empty arrays until their first write: no write may land in another buffer.
    const a = new WriteBuffer();
    const b = new WriteBuffer();
    const c = new WriteBuffer();
    a.put(new Uint8Array([1]), new Uint8Array(100_000).fill(5));
    b.put(new Uint8Array([2]), new Uint8Array([6]));
    c.delete(new Uint8Array([3]));
    c.clear();
    c.put(new Uint8Array([4]), new Uint8Array(70_000).fill(8));
    c.put(new Uint8Array([5]), new Uint8Array([9]));
    const fresh = new WriteBuffer();
    expect([fresh.size, fresh.sorted()]).toEqual([0, []]);
    expect(a.sorted().map((w) => [[...w.key], w.value.length, w.value[99_999]])).toEqual([[[1], 100_000, 5]]);
    expect(b.sorted().map((w) => [[...w.key], [...w.value]])).toEqual([[[2], [6]]]);
    expect(c.sorted().map((w) => [[...w.key], w.value.length, w.value[0]])).toEqual([
      [[4], 70_000, 8],
      [[5], 1, 9],
    ]);
  });

  it("lays a one-write commit's frame out in place: the bytes encodeCommit makes, and none for other counts", () => {
    // Keys and values of every varint width the record can have (a 16 KiB key, values up to past 64 KiB, which
    // get a chunk of their own), puts, deletes and overwrites, after other buffers' writes in the shared chunk.
    const sizeArb = fc.constantFrom(0, 1, 127, 128, 300, 16_383, 16_384, 70_000);
    fc.assert(
      fc.property(
        fc.array(fc.record({ key: fc.integer({ min: 1, max: 16_384 }), value: sizeArb, del: fc.boolean() }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.boolean(),
        (writes, sameKey) => {
          const other = new WriteBuffer();
          other.put(new Uint8Array([9]), new Uint8Array(5).fill(9));
          const buffer = new WriteBuffer();
          for (const [i, w] of writes.entries()) {
            const key = new Uint8Array(sameKey ? writes[0]!.key : w.key).fill(sameKey ? 1 : i + 1);
            if (w.del) buffer.delete(key);
            else buffer.put(key, new Uint8Array(w.value).fill(0x5a));
          }
          const sorted = buffer.sorted();
          const frame = buffer.oneWriteFrame();
          if (sorted.length !== 1) {
            expect(frame).toBeUndefined();
            return;
          }
          expect(hex(frame!)).toBe(hex(encodeCommit(sorted)[0]!));
          const decoded = decodeFrame(frame!, 1);
          expect(decoded.type === 2 && decoded.writes.map((w) => [w.kind, hex(w.key), hex(w.value)])).toEqual(
            sorted.map((w) => [w.kind, hex(w.key), hex(w.value)]),
          );
          // The other buffer's write is untouched by the frame's header bytes.
          expect(hex(other.sorted()[0]!.value)).toBe("0909090909");
        },
      ),
      { numRuns: 200 },
    );
  });

  it("turns the writes of a commit into memtable entries carrying the commit LSN", () => {
    const buffer = new WriteBuffer();
    buffer.put(new Uint8Array([2]), new Uint8Array([20]));
    buffer.delete(new Uint8Array([1]));
    buffer.put(new Uint8Array([3]), new Uint8Array(0));
    const entries = stampEntries(buffer.sorted(), 42);
    expect(entries.map((e) => [[...e.key], e.lsn, e.kind, [...e.value]])).toEqual([
      [[1], 42, EntryKind.Delete, []],
      [[2], 42, EntryKind.Put, [20]],
      [[3], 42, EntryKind.Put, []],
    ]);
  });
});
