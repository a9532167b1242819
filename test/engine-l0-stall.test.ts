/**
 * Bounded read amplification when writes outrun compaction: flushes wait while L0 is at its stop trigger, so a
 * point get never has more than that many L0 SSTs (plus one of L1) to probe, and commits wait on the memtables
 * instead of piling SSTs up. Compaction is held back here by gating the SST reads it makes (a flush only writes).
 */

import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { isTwillError } from "../src/errors.js";
import { openMemoryStorage } from "../src/storage/memory.js";
import type { Storage } from "../src/storage/types.js";
import { deferred } from "./helpers/deferred.js";
import { smallEngine } from "./helpers/engine-options.js";

const enc = (s: string) => new TextEncoder().encode(s);
// Keys spread over the whole key space in every batch, as random writes are: every L0 SST overlaps every other.
const key = (i: number) => enc(`k${String((i * 7919) % 100_003).padStart(6, "0")}`);
const value = (i: number) => enc(`value ${i} `.padEnd(200, "."));

/**
 * `inner` with its async reads of the SSTs `held` picks waiting while the gate is held (compaction reads its
 * inputs through `read`; a flush only writes). By default every SST is held.
 */
function gatedReads(inner: Storage): {
  storage: Storage;
  hold(held?: (key: string) => boolean): void;
  release(): void;
} {
  let gate: Promise<void> | undefined;
  let isHeld = (_key: string) => false;
  let open = () => {};
  const storage = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "read") {
        return async (key: string, range?: { offset: number; length?: number }) => {
          while (gate && key.startsWith("sst/") && isHeld(key)) await gate;
          return target.read(key, range);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return {
    storage,
    hold(held = () => true) {
      const d = deferred<void>();
      gate = d.promise;
      isHeld = held;
      open = () => d.resolve();
    },
    release() {
      gate = undefined;
      open();
    },
  };
}

describe("L0 stop trigger", () => {
  it("holds flushes back while compaction lags, so L0 never passes the trigger, then catches up", async () => {
    const gated = gatedReads(openMemoryStorage(""));
    const engine = await Engine.open(gated.storage, {
      ...smallEngine,
      l0CompactionTrigger: 2,
      l0StopWritesTrigger: 3,
    });
    try {
      // Enough writes for many memtables' worth of flushes (64 KiB each, ~200 B rows).
      const rows = 3000;
      gated.hold();
      let maxL0 = 0;
      const commits: Promise<number>[] = [];
      for (let i = 0; i < rows; i++) {
        const txn = engine.begin();
        txn.put(key(i), value(i));
        commits.push(txn.commit());
        if (i % 50 === 49) {
          // Let the background work run between batches, as a real writer's awaits would.
          await new Promise((resolve) => setTimeout(resolve, 1));
          maxL0 = Math.max(maxL0, engine.stats().l0Runs);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      maxL0 = Math.max(maxL0, engine.stats().l0Runs);
      const stalled = engine.stats();
      expect(maxL0).toBeLessThanOrEqual(3);
      expect(stalled.l0Stalls).toBeGreaterThan(0);
      // The writes that did not fit wait (the memtables are full) rather than being lost or failing.
      const settled = await Promise.race([Promise.all(commits).then(() => true), Promise.resolve(false)]);
      expect(settled).toBe(false);
      gated.release();
      await Promise.all(commits);
      maxL0 = Math.max(maxL0, engine.stats().l0Runs);
      expect(maxL0).toBeLessThanOrEqual(3);
      for (let i = 0; i < rows; i += 97) expect(await engine.read(key(i))).toEqual(value(i));
      await engine.flush();
      await engine.compact();
      expect(engine.stats()).toMatchObject({ l0Ssts: 0 });
      for (let i = 0; i < rows; i += 89) expect(await engine.read(key(i))).toEqual(value(i));
    } finally {
      gated.release();
      await engine.close();
    }
  });

  it("merges the L0 runs a running compaction did not take, so writes go on while it lags", async () => {
    // Reads of SSTs up to `heldUpTo` wait: the compaction that takes the first two flushes is held, and the
    // SSTs flushed after it stay readable for the L0 merge.
    const inner = openMemoryStorage("");
    const gated = gatedReads(inner);
    const storage = gated.storage;
    const idOf = (k: string) => Number(/(\d+)\.sst$/.exec(k)?.[1] ?? Number.NaN);
    // A stop of 4 with a compaction holding 2: two runs it did not take are there to merge when a flush stops.
    const engine = await Engine.open(storage, {
      ...smallEngine,
      l0CompactionTrigger: 2,
      l0StopWritesTrigger: 4,
    });
    try {
      const write = async (from: number, to: number) => {
        const commits: Promise<number>[] = [];
        for (let i = from; i < to; i++) {
          const txn = engine.begin();
          txn.put(key(i), value(i));
          commits.push(txn.commit());
        }
        await Promise.all(commits);
      };
      await write(0, 200);
      await engine.flush();
      const first: string[] = [];
      for await (const k of inner.list("sst/")) first.push(k);
      expect(first).toHaveLength(1);
      // The next flush's SST is the one after it: both go to the compaction the second flush starts.
      const heldUpTo = idOf(first[0]!) + 1;
      gated.hold((k) => idOf(k) <= heldUpTo);
      await write(200, 400);
      await engine.flush();
      let maxRuns = 0;
      // New keys, and newer versions (or deletes) of the first 400, whose oldest versions the held SSTs hold.
      const latest = new Map<number, Uint8Array | undefined>();
      for (let from = 400, batch = 0; from < 3400; from += 100, batch++) {
        await write(from, from + 100);
        const txn = engine.begin();
        for (let i = (batch * 50) % 400; i < ((batch * 50) % 400) + 50; i++) {
          const v = enc(`version ${batch} of ${i}`);
          txn.put(key(i), v);
          latest.set(i, v);
        }
        txn.delete(key((batch * 7) % 400));
        latest.set((batch * 7) % 400, undefined);
        await txn.commit();
        const stats = engine.stats();
        maxRuns = Math.max(maxRuns, stats.l0Runs);
      }
      // Every commit above settled with the compaction still held: the merges made the room.
      const stats = engine.stats();
      expect(stats.compactions).toBe(0);
      expect(stats.l0Merges).toBeGreaterThan(0);
      expect(maxRuns).toBeLessThanOrEqual(4);
      // The newest version of a rewritten key lies in the merged runs, in front of the held SSTs: a read finds it
      // there, newest first, without waiting for them.
      expect(latest.size).toBe(400);
      for (const [i, v] of latest) expect(await engine.read(key(i)), `key ${i}`).toEqual(v);
      gated.release();
      for (let i = 400; i < 3400; i += 37) expect(await engine.read(key(i))).toEqual(value(i));
      await engine.flush();
      await engine.compact();
      expect(engine.stats().l0Ssts).toBe(0);
      for (let i = 400; i < 3400; i += 31) expect(await engine.read(key(i))).toEqual(value(i));
      for (const [i, v] of latest) expect(await engine.read(key(i)), `key ${i}`).toEqual(v);
      await engine.close();
      // The runs survive a reopen (the manifest records them).
      const reopened = await Engine.open(storage, smallEngine);
      for (let i = 400; i < 3400; i += 41) expect(await reopened.read(key(i))).toEqual(value(i));
      for (const [i, v] of latest) expect(await reopened.read(key(i)), `key ${i}`).toEqual(v);
      await reopened.close();
    } finally {
      gated.release();
      await engine.close().catch(() => undefined);
    }
  });

  it("does not hold flushes without automatic maintenance (nothing would compact)", async () => {
    const engine = await Engine.open(openMemoryStorage(""), {
      ...smallEngine,
      l0CompactionTrigger: 2,
      l0StopWritesTrigger: 3,
      autoMaintenance: false,
    });
    try {
      for (let f = 0; f < 5; f++) {
        const txn = engine.begin();
        for (let i = 0; i < 20; i++) txn.put(key(f * 20 + i), value(i));
        await txn.commit();
        await engine.flush();
      }
      expect(engine.stats()).toMatchObject({ l0Ssts: 5, l0Stalls: 0 });
    } finally {
      await engine.close();
    }
  });

  it("refuses a stop trigger at or below the compaction trigger", async () => {
    const error = await Engine.open(openMemoryStorage(""), {
      l0CompactionTrigger: 4,
      l0StopWritesTrigger: 4,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isTwillError(error, "INVALID_ARGUMENT"), String(error)).toBe(true);
    expect(String(error)).toContain("l0StopWritesTrigger");
  });
});
