/**
 * The two counted sets of the commit path, each against a Map model on random operation sequences: PendingKeys
 * (the conflict check's keys of queued commits: open addressing with backward-shift deletion, so hashes are drawn
 * from a tiny range to force long collision runs across the table's wrap-around) and CountedNumbers (live
 * snapshot LSNs, and the LSM tree's reads by view seq, with a hot slot for the newest).
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PendingKeys } from "../src/engine/txn/pending-keys.js";
import { CountedNumbers } from "../src/util/counted-numbers.js";

describe("PendingKeys", () => {
  it("agrees with a counted Map under colliding hashes, growth and deletion", () => {
    // Keys "k0".."k199"; a key's hash is one of 8 values (or its negative-int32 twin), so runs collide and wrap.
    const hashOf = (i: number) => (i % 2 === 0 ? (i * 7) % 8 : ((i * 7) % 8) + 0xfffffff8);
    const op = fc.record({
      kind: fc.constantFrom("add", "add", "remove", "has"),
      key: fc.integer({ min: 0, max: 199 }),
    });
    fc.assert(
      fc.property(fc.array(op, { minLength: 50, maxLength: 600, size: "max" }), (ops) => {
        const set = new PendingKeys();
        const model = new Map<string, number>();
        for (const { kind, key } of ops) {
          const k = `k${key}`;
          const h = hashOf(key);
          if (kind === "add") {
            set.add(k, h);
            model.set(k, (model.get(k) ?? 0) + 1);
          } else if (kind === "remove") {
            set.remove(k, h);
            const n = (model.get(k) ?? 0) - 1;
            if (n <= 0) model.delete(k);
            else model.set(k, n);
          }
          expect(set.has(k, h)).toBe(model.has(k));
          expect(set.size).toBe(model.size);
        }
        // Every key is still found after all the shifting, and nothing else is.
        for (let i = 0; i < 200; i++) expect(set.has(`k${i}`, hashOf(i))).toBe(model.has(`k${i}`));
        expect([...set.all()].sort()).toEqual([...model.keys()].sort());
      }),
      { numRuns: 60 },
    );
  });

  it("tells keys with the same hash apart, and takes a hash in unsigned or int32 form alike", () => {
    const set = new PendingKeys();
    set.add("a", 0xffffffff);
    expect(set.has("a", -1)).toBe(true);
    expect(set.has("b", 0xffffffff)).toBe(false);
    set.add("b", -1);
    set.remove("a", -1);
    expect(set.has("a", 0xffffffff)).toBe(false);
    expect(set.has("b", 0xffffffff)).toBe(true);
    // Removing a key that is not held changes nothing.
    set.remove("zz", 5);
    expect(set.size).toBe(1);
  });
});

describe("CountedNumbers", () => {
  it("agrees with a counted Map, whichever order LSNs are taken and let go", () => {
    const op = fc.record({
      acquire: fc.boolean(),
      lsn: fc.integer({ min: 0, max: 12 }),
    });
    fc.assert(
      fc.property(fc.array(op, { minLength: 20, maxLength: 300, size: "max" }), (ops) => {
        const counts = new CountedNumbers();
        const model = new Map<number, number>();
        for (const { acquire, lsn } of ops) {
          if (acquire) {
            counts.acquire(lsn);
            model.set(lsn, (model.get(lsn) ?? 0) + 1);
          } else {
            const left = counts.release(lsn);
            const n = (model.get(lsn) ?? 0) - 1;
            if (n <= 0) model.delete(lsn);
            else model.set(lsn, n);
            expect(left).toBe(Math.max(n, 0));
          }
          const held = [...model.keys()].sort((a, b) => a - b);
          expect(counts.sorted()).toEqual(held);
          expect(counts.count(lsn)).toBe(model.get(lsn) ?? 0);
          expect(counts.min()).toBe(held[0]);
          expect(counts.anyIn(lsn - 2, lsn + 1)).toBe(held.some((x) => x >= lsn - 2 && x < lsn + 1));
        }
      }),
      { numRuns: 150 },
    );
  });
});
