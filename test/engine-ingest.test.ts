/**
 * Ingest: a transaction past `ingestBytesMin` commits as SSTs plus one INGEST log frame (engine.ts header). The
 * same reads, snapshots, conflicts, reopen and branch behaviour as a commit through the memtable, on every backend.
 */

import { describe, expect, it } from "vitest";
import { Engine, type EngineOptions } from "../src/engine/engine.js";
import { decodeFrame, encodeIngest, FrameType } from "../src/engine/txn/commit-record.js";
import { ErrorCodes, isTwillError } from "../src/errors.js";
import { backends, storageScope } from "./helpers/backends.js";
import { smallEngine } from "./helpers/engine-options.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

const options: EngineOptions = { ...smallEngine, ingestBytesMin: 8 * 1024 };

/** One transaction writing `count` keys `${prefix}${i}` (zero-padded) with values `${tag}:${i}` and some padding. */
async function bulk(engine: Engine, prefix: string, count: number, tag: string, from = 0): Promise<number> {
  const txn = engine.begin();
  for (let i = from; i < from + count; i++) {
    txn.put(enc(`${prefix}${String(i).padStart(5, "0")}`), enc(`${tag}:${i}:${"p".repeat(100)}`));
  }
  return txn.commit();
}

async function tagOf(engine: Engine, key: string): Promise<string | undefined> {
  return dec(await engine.read(enc(key)))
    ?.split(":")
    .slice(0, 2)
    .join(":");
}

async function countRange(engine: Engine, prefix: string): Promise<number> {
  let n = 0;
  for await (const _ of engine.readRange({ prefix: enc(prefix) })) n++;
  return n;
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`ingest on ${backend.name}://`, () => {
    const openStorage = storageScope(backend);

    it("commits a big transaction as L1 SSTs when nothing overlaps, visible at its LSN only", async () => {
      const url = await backend.freshUrl();
      const engine = await Engine.open(await openStorage(url), options);
      const small = engine.begin();
      small.put(enc("z-small"), enc("1"));
      await small.commit();
      const before = engine.begin();
      const lsn = await bulk(engine, "b", 1500, "one");
      const stats = engine.stats();
      expect(stats.ingests).toBe(1);
      expect(stats.l1Ssts).toBeGreaterThan(1); // cut at sstBytesTarget
      expect(stats.l0Ssts).toBe(0);
      expect(engine.lastCommittedLsn).toBe(lsn);
      expect(await tagOf(engine, "b00000")).toBe("one:0");
      expect(await tagOf(engine, "b01499")).toBe("one:1499");
      expect(await countRange(engine, "b")).toBe(1500);
      expect(dec(await engine.read(enc("z-small")))).toBe("1");
      // A snapshot taken before the commit sees none of it.
      expect(await before.get(enc("b00123"))).toBeUndefined();
      let seen = 0;
      for await (const _ of before.scan({ prefix: enc("b") })) seen++;
      expect(seen).toBe(0);
      before.abort();
      await engine.close();
      const again = await Engine.open(await openStorage(url), options);
      expect(await countRange(again, "b")).toBe(1500);
      expect(await tagOf(again, "b00200")).toBe("one:200");
      expect(dec(await again.read(enc("z-small")))).toBe("1");
      await again.close();
    });

    it("puts an overlapping big transaction above older versions in memtables and SSTs", async () => {
      const url = await backend.freshUrl();
      const engine = await Engine.open(await openStorage(url), options);
      await bulk(engine, "k", 300, "first");
      // Newer small commits on some of the keys, still in the memtable.
      const txn = engine.begin();
      txn.put(enc("k00010"), enc("mem:10"));
      txn.delete(enc("k00011"));
      txn.put(enc("k99999"), enc("mem:99999"));
      await txn.commit();
      const mid = engine.begin();
      // The second ingest overwrites keys held by the first ingest's SSTs and by the memtable, and deletes one.
      const second = engine.begin();
      for (let i = 0; i < 300; i += 2) {
        second.put(enc(`k${String(i).padStart(5, "0")}`), enc(`second:${i}:${"q".repeat(100)}`));
      }
      second.delete(enc("k00001"));
      await second.commit();
      const stats = engine.stats();
      expect(stats.ingests).toBe(2);
      expect(stats.l0Ssts).toBeGreaterThanOrEqual(1);
      const check = async (e: Engine) => {
        expect(await tagOf(e, "k00010")).toBe("second:10");
        expect(await e.read(enc("k00011"))).toBeUndefined(); // deleted in the memtable, not rewritten since
        expect(await e.read(enc("k00001"))).toBeUndefined(); // deleted by the ingest
        expect(await tagOf(e, "k00003")).toBe("first:3");
        expect(await tagOf(e, "k00298")).toBe("second:298");
        expect(await tagOf(e, "k99999")).toBe("mem:99999");
        expect(await countRange(e, "k")).toBe(300 - 2 + 1);
      };
      await check(engine);
      // The snapshot between sees the memtable commit but not the second ingest.
      expect(dec(await mid.get(enc("k00010")))).toBe("mem:10");
      expect(dec(await mid.get(enc("k00002")))?.startsWith("first:2")).toBe(true);
      mid.abort();
      await engine.compact();
      await check(engine);
      await engine.close();
      const again = await Engine.open(await openStorage(url), options);
      await check(again);
      await again.close();
    });

    it("is first-committer-wins in both directions", async () => {
      const engine = await Engine.open(await openStorage(), options);
      await bulk(engine, "c", 200, "base");
      // A transaction that began before an ingest and writes one of its keys loses.
      const loser = engine.begin();
      loser.put(enc("c00050"), enc("late"));
      await bulk(engine, "c", 200, "ingest");
      await expect(loser.commit()).rejects.toMatchObject({ code: ErrorCodes.SerializationFailure });
      // An ingest that began before a small commit of one of its keys loses.
      const big = engine.begin();
      for (let i = 0; i < 200; i++)
        big.put(enc(`c${String(i).padStart(5, "0")}`), enc(`x${"r".repeat(100)}`));
      const small = engine.begin();
      small.put(enc("c00007"), enc("small:7"));
      await small.commit();
      await expect(big.commit()).rejects.toMatchObject({ code: ErrorCodes.SerializationFailure });
      expect(dec(await engine.read(enc("c00007")))).toBe("small:7");
      expect(await tagOf(engine, "c00008")).toBe("ingest:8");
      expect(engine.stats().ingests).toBe(2);
      await engine.close();
    });

    it("replays an INGEST frame the manifest did not take in", async () => {
      const url = await backend.freshUrl();
      const storage = await openStorage(url);
      const engine = await Engine.open(storage, options);
      // A commit left in the memtable keeps the log from being truncated past the ingest.
      const small = engine.begin();
      small.put(enc("a-small"), enc("1"));
      await small.commit();
      await bulk(engine, "r", 300, "one");
      const lsn = engine.lastCommittedLsn;
      await engine.close();
      // Remove the manifest version the ingest installed (and the later one the close left, if any): what a crash
      // after the INGEST frame and before that install leaves behind.
      const keys: string[] = [];
      for await (const k of storage.list("manifest/main/")) keys.push(k);
      let removed = 0;
      for (const k of keys.reverse()) {
        const text = dec(await storage.read(k)) ?? "";
        if (!text.includes('"ingestedLsn"')) break;
        await storage.delete(k);
        removed++;
      }
      expect(removed).toBeGreaterThan(0);
      const again = await Engine.open(storage, options);
      expect(again.lastCommittedLsn).toBe(lsn + 1); // its own EPOCH frame follows
      expect(await countRange(again, "r")).toBe(300);
      expect(dec(await again.read(enc("a-small")))).toBe("1");
      expect(again.stats().deletedObjects).toBe(0); // the SSTs were adopted, not swept as orphans
      await again.close();
      const third = await Engine.open(storage, options);
      expect(await countRange(third, "r")).toBe(300);
      await third.close();
    });

    it("keeps branches apart: a fork before the ingest does not see it, one after does", async () => {
      const engine = await Engine.open(await openStorage(), options);
      await bulk(engine, "p", 100, "base");
      const early = await engine.branch("early");
      await bulk(engine, "p", 200, "main");
      const late = await engine.branch("late");
      expect(await tagOf(early, "p00010")).toBe("base:10");
      expect(await early.read(enc("p00150"))).toBeUndefined();
      expect(await tagOf(late, "p00150")).toBe("main:150");
      // An ingest on a branch stays on the branch.
      await bulk(early, "p", 150, "early");
      expect(await tagOf(early, "p00120")).toBe("early:120");
      expect(await tagOf(engine, "p00120")).toBe("main:120");
      await engine.compact();
      expect(await tagOf(early, "p00160")).toBeUndefined();
      expect(await tagOf(late, "p00010")).toBe("main:10");
      await engine.close();
    });
  });
}

describe("INGEST frames", () => {
  const meta = {
    id: 3,
    key: "sst/000000000003.sst",
    level: 1 as const,
    sizeBytes: 100,
    minKey: "61",
    maxKey: "62",
    minLsn: 9,
    maxLsn: 9,
    entries: 2,
  };

  it("round-trips the SST records", () => {
    const decoded = decodeFrame(encodeIngest([meta]), 9);
    expect(decoded).toEqual({ type: FrameType.Ingest, ssts: [meta] });
  });

  it("refuses a malformed body with CORRUPTION naming the lsn", () => {
    const bad = [
      new Uint8Array([FrameType.Ingest, 0x7b]),
      encodeIngest([]),
      encodeIngest([{ ...meta, level: 2 as unknown as 1 }]),
      encodeIngest([{ ...meta, minKey: "zz" }]),
    ];
    for (const frame of bad) {
      let error: unknown;
      try {
        decodeFrame(frame, 42);
      } catch (e) {
        error = e;
      }
      expect(isTwillError(error, ErrorCodes.Corruption), String(error)).toBe(true);
      expect((error as Error).message).toContain("lsn 42");
    }
  });
});
