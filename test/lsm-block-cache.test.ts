import { describe, expect, it } from "vitest";
import { BlockCache } from "../src/engine/lsm/block-cache.js";
import { deferred } from "./helpers/deferred.js";

describe("BlockCache", () => {
  it("evicts the least recently used blocks to stay within cacheBytesMax", () => {
    const cache = new BlockCache({ cacheBytesMax: 300 });
    cache.put(cache.object("a"), 0, "a0", 100);
    cache.put(cache.object("a"), 100, "a100", 100);
    cache.put(cache.object("b"), 0, "b0", 100);
    expect(cache.get(cache.object("a"), 0)).toBe("a0"); // a0 is now the most recent
    cache.put(cache.object("b"), 100, "b100", 100); // evicts a100, the least recent
    expect(cache.get(cache.object("a"), 100)).toBeUndefined();
    expect(cache.get(cache.object("a"), 0)).toBe("a0");
    expect(cache.get(cache.object("b"), 0)).toBe("b0");
    expect(cache.get(cache.object("b"), 100)).toBe("b100");
    const s = cache.stats();
    expect(s).toMatchObject({ entries: 3, bytes: 300, evictions: 1, hits: 4, cacheBytesMax: 300 });
    cache.put(cache.object("c"), 0, "big", 250); // evicts until it fits
    expect(cache.stats().bytes).toBeLessThanOrEqual(300);
    expect(cache.get(cache.object("c"), 0)).toBe("big");
  });

  it("accepts the budget as a number and does not keep values larger than it", () => {
    const cache = new BlockCache(100);
    cache.put(cache.object("a"), 0, "x", 50);
    cache.put(cache.object("a"), 1, "huge", 101);
    expect(cache.get(cache.object("a"), 1)).toBeUndefined();
    expect(cache.get(cache.object("a"), 0)).toBe("x");
    expect(cache.stats().bytes).toBe(50);
  });

  it("replaces a value put twice and keeps the byte count right", () => {
    const cache = new BlockCache(1000);
    cache.put(cache.object("a"), 0, "one", 100);
    cache.put(cache.object("a"), 0, "two", 200);
    expect(cache.get(cache.object("a"), 0)).toBe("two");
    expect(cache.stats()).toMatchObject({ entries: 1, bytes: 200 });
    cache.delete(cache.object("a"), 0);
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
    // Replacing an object's only block, then adding and replacing others: evictObject still finds them all.
    cache.put(cache.object("a"), 0, "three", 100);
    cache.put(cache.object("a"), 0, "four", 100);
    cache.put(cache.object("a"), 5, "five", 100);
    cache.put(cache.object("a"), 5, "six", 50);
    expect([cache.get(cache.object("a"), 0), cache.get(cache.object("a"), 5)]).toEqual(["four", "six"]);
    expect(cache.stats()).toMatchObject({ entries: 2, bytes: 150 });
    cache.evictObject("a");
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
    expect([cache.get(cache.object("a"), 0), cache.get(cache.object("a"), 5)]).toEqual([
      undefined,
      undefined,
    ]);
  });

  it("evictObject drops every block of one object", () => {
    const cache = new BlockCache(1000);
    for (let i = 0; i < 5; i++) cache.put(cache.object("a"), i, i, 10);
    cache.put(cache.object("b"), 0, "b", 10);
    cache.evictObject("a");
    expect(cache.stats()).toMatchObject({ entries: 1, bytes: 10 });
    expect(cache.get(cache.object("a"), 3)).toBeUndefined();
    expect(cache.get(cache.object("b"), 0)).toBe("b");
    cache.clear();
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
  });

  it("shares one load between concurrent misses of a block", async () => {
    const cache = new BlockCache(1000);
    const d = deferred<{ value: string; bytes: number }>();
    let calls = 0;
    const loader = () => {
      calls++;
      return d.promise;
    };
    const p1 = cache.load(cache.object("a"), 0, loader);
    const p2 = cache.load(cache.object("a"), 0, loader);
    expect(cache.stats()).toMatchObject({ loads: 1, sharedLoads: 1, misses: 2, pendingLoads: 1 });
    d.resolve({ value: "block", bytes: 10 });
    expect(await p1).toBe("block");
    expect(await p2).toBe("block");
    expect(calls).toBe(1);
    expect(cache.stats().pendingLoads).toBe(0);
    expect(await cache.load(cache.object("a"), 0, loader)).toBe("block"); // now a hit
    expect(calls).toBe(1);
    expect(cache.stats().hits).toBe(1);
  });

  it("forgets a failed load so that the next request retries", async () => {
    const cache = new BlockCache(1000);
    const failing = () => Promise.reject(new Error("boom"));
    await expect(cache.load(cache.object("a"), 0, failing)).rejects.toThrow("boom");
    const throwing = (): Promise<{ value: string; bytes: number }> => {
      throw new Error("sync boom");
    };
    await expect(cache.load(cache.object("a"), 0, throwing)).rejects.toThrow("sync boom");
    expect(cache.stats()).toMatchObject({ pendingLoads: 0, entries: 0 });
    expect(await cache.load(cache.object("a"), 0, async () => ({ value: "ok", bytes: 1 }))).toBe("ok");
  });

  it("agrees with a reference LRU through 10^5 puts and gets across objects (heavy eviction)", () => {
    const cache = new BlockCache(1000 * 64);
    // The reference: a Map in recency order (a re-inserted key moves to the end).
    const model = new Map<string, number>();
    const touch = (k: string, v: number) => {
      model.delete(k);
      model.set(k, v);
    };
    let x = 1;
    const rand = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % n;
    };
    for (let i = 0; i < 100_000; i++) {
      const o = `sst/${rand(37)}`;
      const b = rand(200);
      if (rand(3) === 0) {
        cache.put(cache.object(o), b, i, 64);
        touch(`${o}#${b}`, i);
        while (model.size > 1000) model.delete(model.keys().next().value!);
      } else {
        const want = model.get(`${o}#${b}`);
        expect(cache.get(cache.object(o), b)).toBe(want);
        if (want !== undefined) touch(`${o}#${b}`, want);
      }
    }
    expect(cache.stats().entries).toBe(model.size);
    cache.evictObject("sst/3");
    for (const k of [...model.keys()]) if (k.startsWith("sst/3#")) model.delete(k);
    expect(cache.stats().entries).toBe(model.size);
    for (const [k, v] of model) {
      const [o, b] = k.split("#");
      expect(cache.get(cache.object(o!), Number(b))).toBe(v);
    }
  });

  it("refuses block indexes that are not small non-negative integers", () => {
    const cache = new BlockCache(1000);
    for (const bad of [-1, 1.5, 2 ** 31, Number.NaN])
      expect(() => cache.put(cache.object("a"), bad, "x", 1)).toThrow(/block index/);
    expect(cache.stats().entries).toBe(0);
  });

  it("hands one object per key, and a fresh one after evictObject", () => {
    const cache = new BlockCache(1000);
    const a = cache.object("a", 4);
    expect(cache.object("a")).toBe(a);
    cache.put(a, 2, "x", 10);
    cache.evictObject("a");
    expect(cache.get(a, 2)).toBeUndefined();
    expect(cache.object("a")).not.toBe(a);
    // A reader still holding the evicted object may cache into it; the LRU bounds those blocks as any other.
    cache.put(a, 3, "late", 10);
    expect(cache.get(a, 3)).toBe("late");
    expect(cache.stats()).toMatchObject({ entries: 1, bytes: 10 });
    cache.clear();
    expect(cache.get(a, 3)).toBeUndefined();
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
  });
});
