import { describe, expect, it } from "vitest";
import { BlockCache } from "../src/engine/lsm/block-cache.js";
import { deferred } from "./helpers/deferred.js";

describe("BlockCache", () => {
  it("evicts the least recently used blocks to stay within cacheBytesMax", () => {
    const cache = new BlockCache({ cacheBytesMax: 300 });
    cache.put("a", 0, "a0", 100);
    cache.put("a", 100, "a100", 100);
    cache.put("b", 0, "b0", 100);
    expect(cache.get("a", 0)).toBe("a0"); // a0 is now the most recent
    cache.put("b", 100, "b100", 100); // evicts a100, the least recent
    expect(cache.get("a", 100)).toBeUndefined();
    expect(cache.get("a", 0)).toBe("a0");
    expect(cache.get("b", 0)).toBe("b0");
    expect(cache.get("b", 100)).toBe("b100");
    const s = cache.stats();
    expect(s).toMatchObject({ entries: 3, bytes: 300, evictions: 1, hits: 4, cacheBytesMax: 300 });
    cache.put("c", 0, "big", 250); // evicts until it fits
    expect(cache.stats().bytes).toBeLessThanOrEqual(300);
    expect(cache.get("c", 0)).toBe("big");
  });

  it("accepts the budget as a number and does not keep values larger than it", () => {
    const cache = new BlockCache(100);
    cache.put("a", 0, "x", 50);
    cache.put("a", 1, "huge", 101);
    expect(cache.get("a", 1)).toBeUndefined();
    expect(cache.get("a", 0)).toBe("x");
    expect(cache.stats().bytes).toBe(50);
  });

  it("replaces a value put twice and keeps the byte count right", () => {
    const cache = new BlockCache(1000);
    cache.put("a", 0, "one", 100);
    cache.put("a", 0, "two", 200);
    expect(cache.get("a", 0)).toBe("two");
    expect(cache.stats()).toMatchObject({ entries: 1, bytes: 200 });
    cache.delete("a", 0);
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
    // Replacing an object's only block, then adding and replacing others: evictObject still finds them all.
    cache.put("a", 0, "three", 100);
    cache.put("a", 0, "four", 100);
    cache.put("a", 5, "five", 100);
    cache.put("a", 5, "six", 50);
    expect([cache.get("a", 0), cache.get("a", 5)]).toEqual(["four", "six"]);
    expect(cache.stats()).toMatchObject({ entries: 2, bytes: 150 });
    cache.evictObject("a");
    expect(cache.stats()).toMatchObject({ entries: 0, bytes: 0 });
    expect([cache.get("a", 0), cache.get("a", 5)]).toEqual([undefined, undefined]);
  });

  it("evictObject drops every block of one object", () => {
    const cache = new BlockCache(1000);
    for (let i = 0; i < 5; i++) cache.put("a", i, i, 10);
    cache.put("b", 0, "b", 10);
    cache.evictObject("a");
    expect(cache.stats()).toMatchObject({ entries: 1, bytes: 10 });
    expect(cache.get("a", 3)).toBeUndefined();
    expect(cache.get("b", 0)).toBe("b");
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
    const p1 = cache.load("a", 0, loader);
    const p2 = cache.load("a", 0, loader);
    expect(cache.stats()).toMatchObject({ loads: 1, sharedLoads: 1, misses: 2, pendingLoads: 1 });
    d.resolve({ value: "block", bytes: 10 });
    expect(await p1).toBe("block");
    expect(await p2).toBe("block");
    expect(calls).toBe(1);
    expect(cache.stats().pendingLoads).toBe(0);
    expect(await cache.load("a", 0, loader)).toBe("block"); // now a hit
    expect(calls).toBe(1);
    expect(cache.stats().hits).toBe(1);
  });

  it("forgets a failed load so that the next request retries", async () => {
    const cache = new BlockCache(1000);
    const failing = () => Promise.reject(new Error("boom"));
    await expect(cache.load("a", 0, failing)).rejects.toThrow("boom");
    const throwing = (): Promise<{ value: string; bytes: number }> => {
      throw new Error("sync boom");
    };
    await expect(cache.load("a", 0, throwing)).rejects.toThrow("sync boom");
    expect(cache.stats()).toMatchObject({ pendingLoads: 0, entries: 0 });
    expect(await cache.load("a", 0, async () => ({ value: "ok", bytes: 1 }))).toBe("ok");
  });

  it("does get and put in constant time (10^5 blocks, heavy eviction)", () => {
    const cache = new BlockCache(1000 * 64);
    const t0 = performance.now();
    for (let i = 0; i < 100_000; i++) {
      cache.put(`sst/${i % 37}`, i * 64, i, 64);
      cache.get(`sst/${(i * 7) % 37}`, ((i * 7) % 1000) * 64);
    }
    const ms = performance.now() - t0;
    expect(cache.stats().entries).toBe(1000);
    expect(ms).toBeLessThan(2000);
  });
});
