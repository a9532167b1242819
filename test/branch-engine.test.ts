/**
 * Branches in the engine on every backend: O(1) fork (one object written), isolation both ways, depth, reopen
 * alone (ancestors read-only), retention through parent compaction and GC (the Neon branch-and-GC scenario),
 * fork positions, drop, merge policies, bad input.
 */

import { describe, expect, it } from "vitest";
import { MergeConflictError } from "../src/engine/branch.js";
import { Engine, type EngineOptions } from "../src/engine/engine.js";
import { ErrorCodes, isTwillError } from "../src/errors.js";
import { CountingStorage } from "../src/storage/counting.js";
import { backends, storageScope } from "./helpers/backends.js";
import { smallEngine } from "./helpers/engine-options.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

async function put(engine: Engine, pairs: [string, string | null][]): Promise<number> {
  const txn = engine.begin();
  for (const [k, v] of pairs) {
    if (v === null) txn.delete(enc(k));
    else txn.put(enc(k), enc(v));
  }
  return txn.commit();
}

async function all(engine: Engine): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const kv of engine.readRange({})) out[dec(kv.key)!] = dec(kv.value)!;
  return out;
}

async function rejects(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  try {
    await p;
  } catch (error) {
    expect(isTwillError(error), String(error)).toBe(true);
    expect((error as { code: string }).code).toBe(code);
    if (message) expect((error as Error).message).toMatch(message);
    return;
  }
  throw new Error("expected a rejection");
}

const small = smallEngine;

for (const backend of backends) {
  describe.skipIf(!backend.available)(`branches on ${backend.name}://`, () => {
    const openStorage = storageScope(backend);

    it("forks by writing exactly one object, and isolates both ways", async () => {
      const counting = new CountingStorage(await openStorage());
      const main = await Engine.open(counting, small);
      await put(main, [
        ["a", "1"],
        ["b", "1"],
      ]);
      await main.flush();
      await put(main, [["c", "1"]]); // one in the memtable, two in an SST
      counting.reset();
      const child = await main.branch("child");
      const c = counting.reset();
      expect(c.writes + c.conditionalWrites).toBe(1);
      expect(c.appends).toBe(0);
      expect(c.deletes).toBe(0);

      expect(await all(child)).toEqual({ a: "1", b: "1", c: "1" });
      await put(child, [
        ["a", "child"],
        ["b", null],
        ["d", "child"],
      ]);
      await put(main, [
        ["a", "main"],
        ["e", "main"],
      ]);
      expect(await all(child)).toEqual({ a: "child", c: "1", d: "child" });
      expect(await all(main)).toEqual({ a: "main", b: "1", c: "1", e: "main" });
      expect(dec(await child.read(enc("b")))).toBeUndefined();
      expect(dec(await child.read(enc("e")))).toBeUndefined();
      expect(dec(await main.read(enc("d")))).toBeUndefined();
      // The branch's commits are numbered above its fork point.
      expect(child.lastCommittedLsn).toBeGreaterThan(child.parentBranch!.forkLsn);
      expect(await main.branches()).toMatchObject([{ name: "child", parent: "main" }]);
      await main.close();
    });

    it("branches of branches to depth 6, reopened alone after restart", async () => {
      const url = await backend.freshUrl();
      let storage = await openStorage(url);
      const main = await Engine.open(storage, small);
      await put(main, [["k0", "main"]]);
      const chain: Engine[] = [main];
      for (let d = 1; d <= 6; d++) {
        const b = await chain[d - 1]!.branch(`b${d}`);
        await put(b, [
          [`k${d}`, `b${d}`],
          ["shared", `b${d}`],
        ]);
        // Later writes on the parent must stay invisible to the child.
        await put(chain[d - 1]!, [[`late${d - 1}`, "x"]]);
        chain.push(b);
      }
      const expected = (d: number) => {
        const out: Record<string, string> = {};
        for (let i = 0; i <= d; i++) out[`k${i}`] = i === 0 ? "main" : `b${i}`;
        if (d > 0) out.shared = `b${d}`;
        for (let i = 0; i < d - 1; i++) {
          // late{i} was written on b{i} after b{i+1} forked: invisible to b{i+1} and below.
        }
        return out;
      };
      const leaf = chain[6]!;
      expect(await all(leaf)).toEqual(expected(6));
      await main.close(); // closes the whole family
      await storage.close();

      storage = await openStorage(url);
      const alone = await Engine.open(storage, { ...small, branch: "b6" });
      expect(await all(alone)).toEqual(expected(6));
      await put(alone, [["k6", "again"]]);
      expect(dec(await alone.read(enc("k6")))).toBe("again");
      expect(dec(await alone.read(enc("late5")))).toBeUndefined();
      await alone.close();
      const mid = await Engine.open(storage, { ...small, branch: "b3" });
      expect(await all(mid)).toEqual({ ...expected(3), late3: "x" });
      await mid.close();
    });

    it("keeps what a child reads through parent writes, flush, compaction and GC (branch-and-GC)", async () => {
      const url = await backend.freshUrl();
      let storage = await openStorage(url);
      const opts: EngineOptions = { ...small, autoMaintenance: false };
      let main = await Engine.open(storage, opts);
      const n = 300;
      const base: [string, string][] = [];
      for (let i = 0; i < n; i++) base.push([`key${String(i).padStart(4, "0")}`, `v0-${i}`]);
      await put(main, base);
      await main.flush();
      const child = await main.branch("child");
      const want = Object.fromEntries(base);
      // Overwrite and delete every key on the parent, several times, with flushes and compactions between.
      for (let round = 1; round <= 3; round++) {
        await put(
          main,
          base.map(([k], i) => [k, i % 3 === 0 ? null : `v${round}-${i}`] as [string, string | null]),
        );
        await main.flush();
        await main.compact();
      }
      expect(main.stats().deletedObjects).toBeGreaterThan(0);
      expect(await all(child)).toEqual(want);
      await main.close();
      await storage.close();
      // After a restart, the parent re-registers the child's fork point before compacting again.
      storage = await openStorage(url);
      main = await Engine.open(storage, opts);
      await put(main, [["key0001", "later"]]);
      await main.flush();
      await main.compact();
      await main.close();
      const alone = await Engine.open(storage, { ...opts, branch: "child" });
      expect(await all(alone)).toEqual(want);
      await alone.close();
    });

    it("dropping a child releases its fork point: the parent's next compaction reclaims the old versions", async () => {
      const storage = await openStorage();
      const main = await Engine.open(storage, { ...small, autoMaintenance: false });
      const rows: [string, string][] = [];
      for (let i = 0; i < 300; i++)
        rows.push([`r${String(i).padStart(4, "0")}`, `old-${i}-${"x".repeat(100)}`]);
      await put(main, rows);
      await main.flush();
      const child = await main.branch("child");
      await child.close();
      await put(
        main,
        rows.map(([k]) => [k, "new"] as [string, string]),
      );
      await main.flush();
      await main.compact();
      const retained = main.stats().sstBytes;
      await main.dropBranch("child");
      await put(main, [["r0000", "newer"]]);
      await main.flush();
      await main.compact();
      expect(main.stats().sstBytes).toBeLessThan(retained / 2);
      await main.close();
    });

    it("a branch's compaction keeps its deletes of inherited keys", async () => {
      const storage = await openStorage();
      const main = await Engine.open(storage, { ...small, autoMaintenance: false });
      await put(main, [
        ["x", "1"],
        ["y", "1"],
      ]);
      await main.flush();
      const child = await main.branch("child");
      await put(child, [["x", null]]);
      await child.flush();
      await put(child, [["y", "2"]]);
      await child.flush();
      await child.compact();
      expect(child.stats().l1Ssts).toBe(1);
      expect(await all(child)).toEqual({ y: "2" });
      expect(dec(await child.read(enc("x")))).toBeUndefined();
      await main.close();
    });

    it("a branch opened alone keeps reading while another handle compacts its parent away under it", async () => {
      const url = await backend.freshUrl();
      const storage = await openStorage(url);
      const opts: EngineOptions = { ...small, autoMaintenance: false };
      const main = await Engine.open(storage, opts);
      const rows: [string, string][] = [];
      for (let i = 0; i < 400; i++) rows.push([`r${String(i).padStart(4, "0")}`, `v${i}`]);
      await put(main, rows);
      await main.flush();
      await (await main.branch("side")).close();
      // Another handle on the same database (as another process would be) opens the branch alone.
      const other = await openStorage(url);
      const alone = await Engine.open(other, { ...opts, blockCacheBytesMax: 64 * 1024, branch: "side" });
      const scan = alone.readRange({})[Symbol.asyncIterator]();
      const first = await scan.next();
      expect(dec(first.value?.key)).toBe("r0000");
      // The parent rewrites everything and compaction deletes the SST the branch's picture of it names.
      await put(
        main,
        rows.map(([k]) => [k, "new"] as [string, string]),
      );
      await main.flush();
      await main.compact();
      expect(main.stats().deletedObjects).toBeGreaterThan(0);
      let n = 1;
      for (let r = await scan.next(); !r.done; r = await scan.next()) {
        expect(dec(r.value.value)).toBe(`v${n}`);
        n++;
      }
      expect(n).toBe(rows.length);
      expect(dec(await alone.read(enc("r0399")))).toBe("v399");
      await alone.close();
      await main.close();
    });

    it("forks in the past while retained, and refuses positions compaction merged away", async () => {
      const storage = await openStorage();
      const main = await Engine.open(storage, { ...small, autoMaintenance: false });
      const l1 = await put(main, [["x", "1"]]);
      const l2 = await put(main, [["x", "2"]]);
      const past = await main.branch("past", { at: l1 });
      expect(dec(await past.read(enc("x")))).toBe("1");
      await rejects(main.branch("future", { at: main.lastCommittedLsn + 5 }), ErrorCodes.InvalidArgument);
      await main.flush();
      await put(main, [["x", "3"]]);
      await main.flush();
      await main.compact();
      expect(main.oldestForkableLsn).toBeGreaterThanOrEqual(l2);
      await rejects(main.branch("old", { at: l1 - 1 }), ErrorCodes.InvalidArgument, /retained/);
      // The live child's fork point survived that compaction.
      expect(dec(await past.read(enc("x")))).toBe("1");
      await main.close();
    });

    it("drops branches (cascade for children), reclaims their objects and reuses names", async () => {
      const storage = await openStorage();
      const main = await Engine.open(storage, small);
      await put(main, [["a", "1"]]);
      const p = await main.branch("p");
      await put(p, [["a", "p"]]);
      await p.flush();
      const c = await p.branch("c");
      await put(c, [["a", "c"]]);
      await c.flush();
      await rejects(main.dropBranch("c"), ErrorCodes.InvalidArgument, /open in this process/);
      await c.close();
      await rejects(main.dropBranch("p"), ErrorCodes.InvalidArgument, /child branches: c/);
      await p.close();
      await rejects(main.dropBranch("nope"), ErrorCodes.NotFound);
      await rejects(main.dropBranch("main"), ErrorCodes.InvalidArgument);
      const ssts = async () => {
        const keys: string[] = [];
        for await (const k of storage.list("bsst/")) keys.push(k);
        return keys;
      };
      expect(await ssts()).toHaveLength(2);
      expect(await main.dropBranch("p", { cascade: true })).toEqual(["c", "p"]);
      expect(await main.branches()).toEqual([]);
      expect(await ssts()).toEqual([]);
      // The name is free again, and the new branch starts from the current state, not the dropped one's.
      const again = await main.branch("p");
      expect(dec(await again.read(enc("a")))).toBe("1");
      await main.close();
      const reopened = await Engine.open(storage, { ...small, branch: "p" });
      expect(await all(reopened)).toEqual({ a: "1" });
      await put(reopened, [["a", "p2"]]);
      await reopened.flush();
      await reopened.close();
      // A drop that crashed after deleting the manifests: main's next open sweeps the SSTs nobody names.
      for await (const k of storage.list("manifest/p/")) await storage.delete(k);
      expect(await ssts()).toHaveLength(1);
      await (await Engine.open(storage, small)).close();
      expect(await ssts()).toEqual([]);
    });

    it("merges with each conflict policy", async () => {
      const storage = await openStorage();
      const main = await Engine.open(storage, small);
      await put(main, [
        ["same", "0"],
        ["both", "0"],
        ["gone", "0"],
        ["parentOnly", "0"],
      ]);
      const setup = async (name: string) => {
        const b = await main.branch(name);
        await put(b, [
          ["both", `${name}`],
          ["gone", null],
          ["new", name],
          ["same", "same-both"],
        ]);
        return b;
      };
      const b1 = await setup("b1");
      const b2 = await setup("b2");
      const b3 = await setup("b3");
      await put(main, [
        ["both", "main"],
        ["parentOnly", "main"],
        ["same", "same-both"],
      ]);
      const before = await all(main);
      try {
        await b1.merge({ onConflict: "fail" });
        throw new Error("expected a conflict");
      } catch (error) {
        expect(error).toBeInstanceOf(MergeConflictError);
        expect((error as MergeConflictError).conflicts.map((c) => dec(c.key))).toEqual(["both"]);
        expect((error as MergeConflictError).sqlstate).toBe("40001");
      }
      expect(await all(main)).toEqual(before); // nothing written
      const theirs = await b2.merge({ onConflict: "theirs" });
      expect(theirs.conflicts.map((c) => dec(c.key))).toEqual(["both"]);
      expect(await all(main)).toEqual({ both: "main", parentOnly: "main", same: "same-both", new: "b2" });
      const ours = await b3.merge({ onConflict: "ours" });
      // b2's merge changed "new" and "gone" on the parent after b3's fork: those are conflicts now too.
      expect(ours.conflicts.map((c) => dec(c.key)).sort()).toEqual(["both", "new"]);
      expect(await all(main)).toEqual({ both: "b3", parentOnly: "main", same: "same-both", new: "b3" });
      await rejects(b1.merge({ onConflict: "sideways" } as never), ErrorCodes.InvalidArgument);
      await rejects(main.merge(), ErrorCodes.InvalidArgument, /no parent/);
      await main.close();
    });

    it("fences the creator of a fresh branch when another writer opened it before its first commit", async () => {
      const url = await backend.freshUrl();
      const storage = await openStorage(url);
      const main = await Engine.open(storage, small);
      await put(main, [["a", "1"]]);
      const fresh = await main.branch("fresh");
      // The creator took no lock and wrote no EPOCH frame: another writer can open the branch...
      const other = await openStorage(url);
      const second = await Engine.open(other, { ...small, branch: "fresh" });
      await put(second, [["a", "second"]]);
      // ...and then the creator's first commit finds itself displaced.
      await rejects(put(fresh, [["a", "stale"]]), ErrorCodes.Fenced);
      expect(dec(await second.read(enc("a")))).toBe("second");
      await second.close();
      await main.close();
    });

    it("a fresh branch dropped by another handle cannot be resurrected by its creator's first commit", async () => {
      const url = await backend.freshUrl();
      const storage = await openStorage(url);
      const main = await Engine.open(storage, small);
      const fresh = await main.branch("doomed");
      const other = await openStorage(url);
      expect(await Engine.dropBranchOn(other, "doomed")).toEqual(["doomed"]);
      await rejects(put(fresh, [["a", "x"]]), ErrorCodes.Fenced);
      expect(await main.branches()).toEqual([]);
      await main.close();
    });

    it("rejects bad input with typed errors", async () => {
      const storage = await openStorage();
      const main = await Engine.open(storage, small);
      await rejects(main.branch("bad name"), ErrorCodes.InvalidArgument);
      await rejects(main.branch(""), ErrorCodes.InvalidArgument);
      await rejects(main.branch("main"), ErrorCodes.InvalidArgument);
      await rejects(main.branch("x".repeat(49)), ErrorCodes.InvalidArgument);
      await rejects(main.branch("ok", { at: -1 }), ErrorCodes.InvalidArgument);
      await rejects(main.branch("ok", { at: 1.5 }), ErrorCodes.InvalidArgument);
      await rejects(main.branch("ok", { extra: 1 } as never), ErrorCodes.InvalidArgument);
      const dup = await main.branch("dup");
      await rejects(main.branch("dup"), ErrorCodes.InvalidArgument, /already exists/);
      await dup.close();
      await rejects(Engine.open(storage, { branch: "missing" }), ErrorCodes.NotFound, /does not exist/);
      await main.close();
    });
  });
}
