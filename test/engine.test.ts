/** The engine on every backend: commits, reads, MVCC, conflicts, group commit, flush, compaction and reopen. */

import { afterAll, describe, expect, it } from "vitest";
import { defaultBlockBytes, Engine, type EngineOptions } from "../src/engine/engine.js";
import { BlockCache } from "../src/engine/lsm/block-cache.js";
import { SstReader } from "../src/engine/lsm/sst.js";
import { ErrorCodes, TwillError } from "../src/errors.js";
import { CountingStorage } from "../src/storage/counting.js";
import { backends, storageScope } from "./helpers/backends.js";
import { smallEngine } from "./helpers/engine-options.js";
import { frameEnd } from "./helpers/log-bytes.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));
const key = (i: number) => enc(`k${String(i).padStart(6, "0")}`);

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function put(engine: Engine, pairs: [string, string | null][]): Promise<number> {
  const txn = engine.begin();
  for (const [k, v] of pairs) {
    if (v === null) txn.delete(enc(k));
    else txn.put(enc(k), enc(v));
  }
  return txn.commit();
}

const small = smallEngine;

for (const backend of backends) {
  describe.skipIf(!backend.available)(`engine on ${backend.name}://`, () => {
    const openStorage = storageScope(backend);

    it("commits, reads its own writes, and reads committed state", async () => {
      const engine = await Engine.open(await openStorage());
      const txn = engine.begin();
      txn.put(enc("a"), enc("1"));
      expect(dec(await txn.get(enc("a")))).toBe("1");
      const other = engine.begin();
      expect(await other.get(enc("a"))).toBeUndefined();
      const lsn = await txn.commit();
      expect(lsn).toBeGreaterThan(0);
      expect(dec(await engine.read(enc("a")))).toBe("1");
      expect(await other.get(enc("a"))).toBeUndefined(); // its snapshot predates the commit
      other.abort();
      await put(engine, [["a", null]]);
      expect(await engine.read(enc("a"))).toBeUndefined();
      await engine.close();
    });

    it("replays committed transactions on reopen", async () => {
      const url = await backend.freshUrl();
      let engine = await Engine.open(await openStorage(url));
      for (let i = 0; i < 50; i++) await put(engine, [[`k${i}`, `v${i}`]]);
      await put(engine, [["k7", null]]);
      await engine.close();
      engine = await Engine.open(await openStorage(url));
      expect(dec(await engine.read(enc("k3")))).toBe("v3");
      expect(await engine.read(enc("k7"))).toBeUndefined();
      expect((await collect(engine.readRange({ prefix: enc("k") }))).length).toBe(49);
      await engine.close();
    });

    it("aborts the second of two conflicting writers with SQLSTATE 40001", async () => {
      const engine = await Engine.open(await openStorage());
      await put(engine, [["x", "0"]]);
      const t1 = engine.begin();
      const t2 = engine.begin();
      t1.put(enc("x"), enc("1"));
      t2.put(enc("x"), enc("2"));
      await t1.commit();
      const error = await t2.commit().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TwillError);
      expect((error as TwillError).code).toBe(ErrorCodes.SerializationFailure);
      expect((error as TwillError).sqlstate).toBe("40001");
      expect(dec(await engine.read(enc("x")))).toBe("1");
      // Disjoint writers both commit.
      const t3 = engine.begin();
      const t4 = engine.begin();
      t3.put(enc("p"), enc("3"));
      t4.put(enc("q"), enc("4"));
      await Promise.all([t3.commit(), t4.commit()]);
      await engine.close();
    });

    it("detects a conflict with a version that was flushed to an SST", async () => {
      const engine = await Engine.open(await openStorage(), small);
      const old = engine.begin();
      await put(engine, [["hot", "new"]]);
      await engine.flush();
      old.put(enc("hot"), enc("stale"));
      await expect(old.commit()).rejects.toMatchObject({ code: ErrorCodes.SerializationFailure });
      await engine.close();
    });

    it("shares one log append among concurrent committers (group commit)", async () => {
      const counting = new CountingStorage(await openStorage());
      const engine = await Engine.open(counting);
      counting.reset();
      await Promise.all(Array.from({ length: 16 }, (_, i) => put(engine, [[`g${i}`, `${i}`]])));
      const { appends } = counting.reset();
      expect(appends).toBeLessThanOrEqual(4);
      for (let i = 0; i < 16; i++) await put(engine, [[`s${i}`, `${i}`]]);
      expect(counting.reset().appends).toBe(16);
      expect(engine.stats().commits).toBe(32);
      await engine.close();
    });

    it("refuses a commit that writes a key a queued commit writes, small or large, and frees keys once applied", async () => {
      const engine = await Engine.open(await openStorage());
      const wide = (from: number, count: number, tag: string) => {
        const txn = engine.begin();
        for (let i = from; i < from + count; i++) txn.put(key(i), enc(`${tag}${i}`));
        return txn;
      };
      // Committed in the same tick: the second and third find the first still queued.
      const results = await Promise.allSettled([
        wide(0, 3, "a").commit(),
        wide(2, 1, "b").commit(), // small vs small
        wide(1, 400, "c").commit(), // large (> 256 writes) vs small
        wide(1000, 400, "d").commit(), // large, disjoint: commits
        wide(1399, 1, "e").commit(), // small vs large
        wide(5000, 1, "h").commit(), // one write: its key counted alone, not as an array of one
        wide(5000, 1, "i").commit(), // one write vs one write
        wide(4999, 2, "j").commit(), // small vs one write
        wide(2000, 300, "k").commit(), // large, disjoint: commits
        wide(2299, 1, "l").commit(), // one write vs large
      ]);
      expect(results.map((r) => r.status)).toEqual([
        "fulfilled",
        "rejected",
        "rejected",
        "fulfilled",
        "rejected",
        "fulfilled",
        "rejected",
        "rejected",
        "fulfilled",
        "rejected",
      ]);
      for (const r of results) {
        if (r.status === "rejected")
          expect(r.reason).toMatchObject({ code: ErrorCodes.SerializationFailure });
      }
      // Applied: new transactions on those keys commit.
      await wide(2, 1, "f").commit();
      await wide(1399, 1, "g").commit();
      await wide(5000, 1, "m").commit();
      expect(dec(await engine.read(key(5000)))).toBe("m5000");
      expect(dec(await engine.read(key(4999)))).toBeUndefined();
      expect(dec(await engine.read(key(2299)))).toBe("k2299");
      expect(dec(await engine.read(key(2)))).toBe("f2");
      expect(dec(await engine.read(key(1399)))).toBe("g1399");
      expect(dec(await engine.read(key(1)))).toBe("a1");
      await engine.close();
    });

    it("lets the event loop turn during a stream of commits (timers and I/O callbacks are not starved)", async () => {
      const engine = await Engine.open(await openStorage());
      let turnedAt: number | undefined;
      let i = 0;
      setImmediate(() => {
        turnedAt = i;
      });
      for (; i < 100; i++) await put(engine, [[`t${i}`, "x"]]);
      // The pipeline yields an event-loop turn every few appends; a stream of microtask-only commits (memory://,
      // file://) would otherwise run to the end before any callback.
      expect(turnedAt).toBeDefined();
      expect(turnedAt!).toBeLessThan(100);
      await engine.close();
    });

    it("gives back its block cache on close, and refuses reads after it", async () => {
      const engine = await Engine.open(await openStorage(), small);
      const txn = engine.begin();
      for (let i = 0; i < 500; i++) txn.put(key(i), enc(`v${i}${"z".repeat(100)}`));
      await txn.commit();
      await engine.flush();
      for (let i = 0; i < 500; i += 7) expect(dec(await engine.read(key(i)))).toBe(`v${i}${"z".repeat(100)}`);
      expect(engine.stats().blockCache.bytes).toBeGreaterThan(0);
      await engine.close();
      expect(engine.stats().blockCache.bytes).toBe(0);
      expect(() => engine.readSync(key(1))).toThrow(TwillError);
      await expect(engine.read(key(1))).rejects.toMatchObject({ code: ErrorCodes.Closed });
    });

    it("writes data blocks of the backend's default size: 4 KiB locally, 64 KiB on s3://", async () => {
      const storage = await openStorage();
      const engine = await Engine.open(storage);
      try {
        const txn = engine.begin();
        for (let i = 0; i < 4000; i++) txn.put(key(i), enc(`${i} `.padEnd(200, "v")));
        await txn.commit();
        await engine.flush();
        const want = backend.name === "s3" ? 64 * 1024 : 4 * 1024;
        expect(defaultBlockBytes(storage.kind)).toBe(want);
        let checked = 0;
        for await (const objectKey of storage.list("sst/")) {
          const reader = await SstReader.open(storage, objectKey, new BlockCache(1 << 20));
          // Blocks are cut once they pass the target, so the mean lies just above it (the last one is short).
          const mean = reader.sizeBytes / reader.properties.blockCount;
          expect(mean, objectKey).toBeGreaterThan(want * 0.75);
          expect(mean, objectKey).toBeLessThan(want * 1.25);
          checked++;
        }
        expect(checked).toBeGreaterThan(0);
      } finally {
        await engine.close();
      }
    });

    it("flushes to SSTs, compacts, and reads everything back after reopen", async () => {
      const url = await backend.freshUrl();
      let engine = await Engine.open(await openStorage(url), small);
      const expected = new Map<string, string>();
      for (let round = 0; round < 8; round++) {
        const txn = engine.begin();
        for (let i = 0; i < 300; i++) {
          const k = (i * 7 + round * 13) % 1000;
          const v = `r${round}-${i}-${"x".repeat(40)}`;
          txn.put(key(k), enc(v));
          expected.set(dec(key(k))!, v);
        }
        if (round % 3 === 2) {
          txn.delete(key(round));
          expected.delete(dec(key(round))!);
        }
        await txn.commit();
      }
      await engine.flush();
      let stats = engine.stats();
      expect(stats.flushes).toBeGreaterThan(0);
      await engine.compact();
      stats = engine.stats();
      expect(stats.l0Ssts).toBe(0);
      expect(stats.l1Ssts).toBeGreaterThan(0);
      const check = async (e: Engine) => {
        const all = await collect(e.readRange({}));
        expect(all.map((kv) => dec(kv.key))).toEqual([...expected.keys()].sort());
        for (const kv of all) expect(dec(kv.value)).toBe(expected.get(dec(kv.key)!));
        const reversed = await collect(e.readRange({ reverse: true, limit: 5 }));
        expect(reversed.map((kv) => dec(kv.key))).toEqual([...expected.keys()].sort().reverse().slice(0, 5));
        for (const k of [0, 1, 2, 5, 500, 999])
          expect(dec(await e.read(key(k)))).toBe(expected.get(dec(key(k))!));
      };
      await check(engine);
      await engine.close();
      engine = await Engine.open(await openStorage(url), small);
      await check(engine);
      await engine.close();
    });

    it("keeps a transaction's snapshot stable across flush and compaction", async () => {
      const engine = await Engine.open(await openStorage(), small);
      for (let i = 0; i < 200; i++) await put(engine, [[`s${i}`, "old"]]);
      const reader = engine.begin();
      for (let i = 0; i < 200; i++) await put(engine, [[`s${i}`, "new"]]);
      await engine.flush();
      await engine.compact();
      const seen = await collect(reader.scan({ prefix: enc("s") }));
      expect(seen.length).toBe(200);
      expect(new Set(seen.map((kv) => dec(kv.value)))).toEqual(new Set(["old"]));
      expect(dec(await reader.get(enc("s5")))).toBe("old");
      reader.abort();
      expect(dec(await engine.read(enc("s5")))).toBe("new");
      await engine.close();
    });

    it("never stalls commits on a full memtable when maintenance is manual", async () => {
      // Regression: with autoMaintenance off, a frozen memtable made every later commit wait for a flush that
      // nobody would start, and close() then spun forever waiting for them.
      const engine = await Engine.open(await openStorage(), { ...small, autoMaintenance: false });
      for (let i = 0; i < 600; i++) await put(engine, [[`m${i}`, "v".repeat(200)]]);
      expect(engine.stats().immutableMemtables).toBeGreaterThan(0);
      await engine.flush();
      expect(engine.stats().immutableMemtables).toBe(0);
      expect(dec(await engine.read(enc("m599")))).toBe("v".repeat(200));
      await engine.close();
    });

    it("merges a transaction's own writes into its scans", async () => {
      const engine = await Engine.open(await openStorage());
      await put(engine, [
        ["a", "1"],
        ["c", "3"],
        ["e", "5"],
      ]);
      const txn = engine.begin();
      txn.put(enc("b"), enc("2"));
      txn.delete(enc("c"));
      txn.put(enc("e"), enc("five"));
      txn.put(enc("f"), enc("6"));
      const forward = await collect(txn.scan({}));
      expect(forward.map((kv) => `${dec(kv.key)}=${dec(kv.value)}`)).toEqual(["a=1", "b=2", "e=five", "f=6"]);
      const backward = await collect(txn.scan({ reverse: true, limit: 3 }));
      expect(backward.map((kv) => dec(kv.key))).toEqual(["f", "e", "b"]);
      const ranged = await collect(txn.scan({ start: enc("b"), end: enc("f") }));
      expect(ranged.map((kv) => dec(kv.key))).toEqual(["b", "e"]);
      txn.abort();
      await engine.close();
    });

    it("refuses a second writer on the same database", async () => {
      const url = await backend.freshUrl();
      const first = await Engine.open(await openStorage(url));
      await put(first, [["mine", "1"]]);
      let secondError: unknown;
      let second: Engine | undefined;
      try {
        second = await Engine.open(await openStorage(url));
      } catch (error) {
        secondError = error;
      }
      if (second) {
        // s3: the newcomer fenced the first writer; its next commit fails and nothing it acknowledged is lost.
        expect(dec(await second.read(enc("mine")))).toBe("1");
        await expect(put(first, [["late", "x"]])).rejects.toMatchObject({
          code: ErrorCodes.Fenced,
          message: "database is locked by another writer",
        });
        await second.close();
      } else {
        expect(secondError).toMatchObject({ code: ErrorCodes.Locked });
      }
      await first.close();
    });

    it("rejects bad keys, values and options with clear errors", async () => {
      const storage = await openStorage();
      await expect(Engine.open(storage, { memtableBytesMax: 1 })).rejects.toMatchObject({
        code: ErrorCodes.InvalidArgument,
      });
      await expect(Engine.open(storage, { nope: true } as never)).rejects.toThrow(/invalid engine options/);
      const engine = await Engine.open(storage);
      const txn = engine.begin();
      expect(() => txn.put(new Uint8Array(0), enc("v"))).toThrow(/key must be/);
      expect(() => txn.put(enc("k"), "v" as never)).toThrow(/value must be/);
      txn.abort();
      expect(() => txn.put(enc("k"), enc("v"))).toThrow(/aborted/);
      await engine.close();
    });
  });
}

describe("engine: bad and damaged input (file://)", () => {
  const file = backends.find((b) => b.name === "file")!;
  afterAll(() => file.cleanup());

  async function seeded(options: EngineOptions = small) {
    const url = await file.freshUrl();
    const storage = await file.open(url);
    const engine = await Engine.open(storage, options);
    for (let i = 0; i < 400; i++)
      await put(engine, [[`d${String(i).padStart(4, "0")}`, `value-${i}-${"z".repeat(60)}`]]);
    await engine.flush();
    await engine.close();
    return { url, storage, dir: url.slice("file://".length) };
  }

  async function errorOf(p: Promise<unknown>): Promise<TwillError> {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(TwillError);
    return e as TwillError;
  }

  it("drops a torn last commit at every byte offset and keeps every earlier one", async () => {
    const { readdir, readFile, writeFile } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const url = await file.freshUrl();
    const dir = url.slice("file://".length);
    let engine = await Engine.open(await file.open(url));
    await put(engine, [["a", "1"]]);
    await put(engine, [["b", "2"]]);
    await put(engine, [
      ["c", "3"],
      ["d", "4"],
    ]);
    await engine.close();
    const segDir = join(dir, "log", "main");
    const seg = join(
      segDir,
      (await readdir(segDir))
        .filter((n) => n.endsWith(".seg"))
        .sort()
        .at(-1)!,
    );
    const full = await readFile(seg);
    const end = frameEnd(full);
    // The last frame is the COMMIT of {c, d}: 20-byte header + type + count + 2 × (kind, len, key, len, value).
    const lastFrameBytes = 20 + 1 + 1 + 2 * (1 + 1 + 1 + 1 + 1);
    for (let cut = end - lastFrameBytes; cut < end; cut++) {
      await writeFile(seg, full.subarray(0, cut));
      engine = await Engine.open(await file.open(url));
      expect(dec(await engine.read(enc("a")))).toBe("1");
      expect(dec(await engine.read(enc("b")))).toBe("2");
      expect(await engine.read(enc("c"))).toBeUndefined();
      expect(await engine.read(enc("d"))).toBeUndefined();
      await engine.close();
      await writeFile(seg, full); // the reopen appended an epoch frame; restore the original bytes
    }
  });

  it("names the object when an SST is corrupt or truncated", async () => {
    const { readdir, readFile, writeFile } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const { url, dir } = await seeded();
    const sstDir = join(dir, "obj", "sst");
    const name = (await readdir(sstDir))[0]!;
    const path = join(sstDir, name);
    const bytes = await readFile(path);
    const flipped = Buffer.from(bytes);
    flipped[100] = flipped[100]! ^ 0xff; // inside the first data block
    await writeFile(path, flipped);
    let engine = await Engine.open(await file.open(url), small);
    const e1 = await errorOf(engine.read(enc("d0000")));
    expect(e1.code).toBe(ErrorCodes.Corruption);
    expect(e1.message).toContain(`sst/${name}`);
    await engine.close();
    await writeFile(path, bytes.subarray(0, bytes.length - 10));
    engine = await Engine.open(await file.open(url), small);
    const e2 = await errorOf(engine.read(enc("d0001")));
    expect(e2.code).toBe(ErrorCodes.Corruption);
    expect(e2.message).toContain(`sst/${name}`);
    await engine.close();
  });

  it("reports a missing SST object and a corrupt manifest by name", async () => {
    const { readdir, rm, readFile, writeFile } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const { url, dir } = await seeded();
    const sstDir = join(dir, "obj", "sst");
    const name = (await readdir(sstDir))[0]!;
    await rm(join(sstDir, name));
    const engine = await Engine.open(await file.open(url), { ...small, autoMaintenance: false });
    const e1 = await errorOf(engine.read(enc("d0000")));
    expect([ErrorCodes.NotFound, ErrorCodes.Corruption]).toContain(e1.code);
    expect(e1.message).toContain(`sst/${name}`);
    await engine.close();
    const manifestDir = join(dir, "obj", "manifest", "main");
    const newest = (await readdir(manifestDir)).sort().at(-1)!;
    const m = await readFile(join(manifestDir, newest));
    m[m.length - 3] = m[m.length - 3]! ^ 0x20;
    await writeFile(join(manifestDir, newest), m);
    const e2 = await errorOf(Engine.open(await file.open(url), small));
    expect(e2.code).toBe(ErrorCodes.Corruption);
    expect(e2.message).toContain(`manifest/main/${newest}`);
  });

  it("refuses to open when the manifest is missing but the log was truncated after a flush", async () => {
    const { rm } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const { url, dir } = await seeded({ ...small, memtableBytesMax: 64 * 1024 });
    await rm(join(dir, "obj", "manifest"), { recursive: true });
    const e = await errorOf(Engine.open(await file.open(url), small));
    expect(e.code).toBe(ErrorCodes.Corruption);
    expect(e.message).toMatch(/manifest needs every frame from lsn 1/);
  });
});
