/**
 * One conformance suite for every storage backend: the semantics written in src/storage/types.ts, checked the same
 * way on memory://, file:// and s3:// (the real server).
 */

import { afterAll, describe, expect, it } from "vitest";
import { ErrorCodes, TwillError } from "../src/errors.js";
import type { Storage } from "../src/storage/types.js";
import { backends } from "./helpers/backends.js";

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function pattern(length: number, seed = 7): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<TwillError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(TwillError);
    expect((error as TwillError).code).toBe(code);
    return error as TwillError;
  }
  throw new Error(`expected a ${code} error, got success`);
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`storage conformance: ${backend.name}://`, () => {
    const opened: Storage[] = [];
    const fresh = async () => {
      const s = await backend.open();
      opened.push(s);
      return s;
    };
    afterAll(async () => {
      for (const s of opened) await s.close();
      await backend.cleanup();
    });

    describe("objects", () => {
      it("round-trips empty, small and 16 MiB objects", async () => {
        const s = await fresh();
        const big = pattern(16 * 1024 * 1024);
        await s.write("empty", new Uint8Array(0));
        await s.write("small", bytesOf("hello"));
        await s.write("dir/big", big);
        expect(await s.read("empty")).toEqual(new Uint8Array(0));
        expect(new TextDecoder().decode(await s.read("small"))).toBe("hello");
        const back = await s.read("dir/big");
        expect(back.length).toBe(big.length);
        expect(Buffer.compare(Buffer.from(back), Buffer.from(big))).toBe(0);
        expect(await s.size("dir/big")).toBe(big.length);
        expect(await s.size("empty")).toBe(0);
      });

      it("write replaces, and stored bytes do not alias the caller's buffer", async () => {
        const s = await fresh();
        const buf = bytesOf("first");
        await s.write("k", buf);
        buf[0] = 0x58;
        expect(new TextDecoder().decode(await s.read("k"))).toBe("first");
        await s.write("k", bytesOf("second!"));
        expect(new TextDecoder().decode(await s.read("k"))).toBe("second!");
        const read = await s.read("k");
        read[0] = 0;
        expect(new TextDecoder().decode(await s.read("k"))).toBe("second!");
      });

      it("serves ranged reads at the edges", async () => {
        const s = await fresh();
        const data = pattern(1000);
        await s.write("r", data);
        expect(await s.read("r", { offset: 0, length: 10 })).toEqual(data.slice(0, 10));
        expect(await s.read("r", { offset: 990, length: 10 })).toEqual(data.slice(990));
        expect(await s.read("r", { offset: 999, length: 1 })).toEqual(data.slice(999));
        expect(await s.read("r", { offset: 995, length: 100 })).toEqual(data.slice(995));
        expect(await s.read("r", { offset: 500 })).toEqual(data.slice(500));
        expect(await s.read("r", { offset: 0 })).toEqual(data);
        expect(await s.read("r", { offset: 1000 })).toEqual(new Uint8Array(0));
        expect(await s.read("r", { offset: 1000, length: 5 })).toEqual(new Uint8Array(0));
        expect(await s.read("r", { offset: 10, length: 0 })).toEqual(new Uint8Array(0));
        await expectCode(s.read("r", { offset: 1001 }), ErrorCodes.InvalidArgument);
        await expectCode(s.read("r", { offset: -1 }), ErrorCodes.InvalidArgument);
        await expectCode(s.read("r", { offset: 1.5 }), ErrorCodes.InvalidArgument);
        await s.write("zero", new Uint8Array(0));
        expect(await s.read("zero", { offset: 0, length: 4 })).toEqual(new Uint8Array(0));
      });

      it("offers readIntoSync on local backends only, with the semantics of a ranged read", async () => {
        const s = await fresh();
        if (backend.name === "s3") {
          expect(s.readIntoSync).toBeUndefined();
          return;
        }
        const readIntoSync = s.readIntoSync!.bind(s);
        const data = pattern(1000);
        await s.write("r", data);
        const into = new Uint8Array(64).fill(0xee);
        expect(readIntoSync("r", 10, into.subarray(0, 20))).toBe(20);
        expect(into.subarray(0, 20)).toEqual(data.slice(10, 30));
        expect(into[20]).toBe(0xee);
        expect(readIntoSync("r", 990, into)).toBe(10);
        expect(into.subarray(0, 10)).toEqual(data.slice(990));
        expect(readIntoSync("r", 1000, into)).toBe(0);
        // An explicit length fills only into[0, length) of a larger buffer, and never more than the buffer holds.
        into.fill(0xee);
        expect(readIntoSync("r", 100, into, 8)).toBe(8);
        expect(into.subarray(0, 8)).toEqual(data.slice(100, 108));
        expect(into[8]).toBe(0xee);
        expect(readIntoSync("r", 995, into, 20)).toBe(5);
        for (const bad of [65, -1, 2.5])
          expect(() => readIntoSync("r", 0, into, bad)).toThrow(
            expect.objectContaining({ code: ErrorCodes.InvalidArgument }),
          );
        expect(() => readIntoSync("r", 1001, into)).toThrow(
          expect.objectContaining({ code: ErrorCodes.InvalidArgument }),
        );
        expect(() => readIntoSync("r", -1, into)).toThrow(
          expect.objectContaining({ code: ErrorCodes.InvalidArgument }),
        );
        expect(() => readIntoSync("missing", 0, into)).toThrow(
          expect.objectContaining({ code: ErrorCodes.NotFound }),
        );
        // A rewrite is what the next read sees, not bytes of the old object behind a cached descriptor.
        await s.write("r", pattern(1000, 99));
        expect(readIntoSync("r", 0, into.subarray(0, 8))).toBe(8);
        expect(into.subarray(0, 8)).toEqual(pattern(1000, 99).slice(0, 8));
      });

      it("offers writeChunks on local backends only, writing what write would write of the concatenation", async () => {
        const s = await fresh();
        if (backend.name === "s3") {
          expect(s.writeChunks).toBeUndefined();
          return;
        }
        const data = pattern(3 * 1024 * 1024 + 77);
        // Parts of many sizes: empty, tiny, around and above the file backend's 1 MiB staging buffer.
        const cuts = [
          0,
          0,
          1,
          4096,
          4096 + 300,
          1024 * 1024,
          2 * 1024 * 1024 + 5,
          2 * 1024 * 1024 + 9,
          data.length,
        ];
        const parts = cuts.slice(1).map((end, i) => data.subarray(cuts[i]!, end));
        await s.writeChunks!("chunked", parts);
        const back = await s.read("chunked");
        expect(back.length).toBe(data.length);
        expect(Buffer.compare(Buffer.from(back), Buffer.from(data))).toBe(0);
        // The stored bytes do not alias the parts, and a rewrite replaces the object.
        const before = data.slice(0, 4096);
        parts[2]!.fill(0);
        expect(await s.read("chunked", { offset: 0, length: 4096 })).toEqual(before);
        await s.writeChunks!("chunked", [bytesOf("new")]);
        expect(new TextDecoder().decode(await s.read("chunked"))).toBe("new");
      });

      it("reports a missing key as NOT_FOUND on read and size, and delete is idempotent", async () => {
        const s = await fresh();
        await expectCode(s.read("missing"), ErrorCodes.NotFound);
        await expectCode(s.read("missing", { offset: 0, length: 1 }), ErrorCodes.NotFound);
        await expectCode(s.size("missing/deeper"), ErrorCodes.NotFound);
        await s.delete("missing");
        await s.write("gone", bytesOf("x"));
        await s.delete("gone");
        await s.delete("gone");
        await expectCode(s.read("gone"), ErrorCodes.NotFound);
        expect(await s.writeIfAbsent("gone", bytesOf("again"))).toBe(true);
      });

      it("lists more than 1,000 keys in order, by prefix, across pages", async () => {
        const s = await fresh();
        const keys: string[] = [];
        for (let i = 0; i < 1100; i++) keys.push(`many/${String(i).padStart(5, "0")}`);
        const others = ["manx", "many-not", "m/0", "other/1", "many.x"];
        const all = [...keys, ...others];
        for (let i = 0; i < all.length; i += 50) {
          await Promise.all(all.slice(i, i + 50).map((k) => s.write(k, bytesOf(k))));
        }
        expect(await collect(s.list("many/"))).toEqual(keys);
        expect(await collect(s.list("many"))).toEqual([...keys, "many-not", "many.x"].sort());
        expect(await collect(s.list("many/0100"))).toEqual(keys.filter((k) => k.startsWith("many/0100")));
        expect(await collect(s.list("nothing/"))).toEqual([]);
        const everything = await collect(s.list(""));
        expect(everything).toEqual([...all].sort());
      });

      it("lets exactly one of 50 concurrent writeIfAbsent calls win", async () => {
        const s = await fresh();
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => s.writeIfAbsent("cas/manifest-1", bytesOf(`writer-${i}`))),
        );
        const winners = results.flatMap((won, i) => (won ? [i] : []));
        expect(winners).toHaveLength(1);
        expect(new TextDecoder().decode(await s.read("cas/manifest-1"))).toBe(`writer-${winners[0]}`);
        expect(await s.writeIfAbsent("cas/manifest-1", bytesOf("late"))).toBe(false);
      });

      it("rejects malformed keys with INVALID_ARGUMENT", async () => {
        const s = await fresh();
        for (const key of ["", "/a", "a/", "a//b", "../x", "a/./b", "a b", "ä", "x".repeat(513)]) {
          await expectCode(s.write(key, bytesOf("x")), ErrorCodes.InvalidArgument);
          await expectCode(s.read(key), ErrorCodes.InvalidArgument);
        }
      });
    });

    describe("log", () => {
      it("appends with consecutive LSNs, reads from any LSN and survives reopen", async () => {
        const url = await backend.freshUrl();
        let s = await backend.open(url);
        let log = await s.openLog("main");
        expect(log.nextLsn()).toBe(1);
        expect(await log.append([bytesOf("a"), bytesOf("b")])).toEqual({ firstLsn: 1, nextLsn: 3 });
        expect(await log.append([bytesOf("c")])).toEqual({ firstLsn: 3, nextLsn: 4 });
        const frames = await collect(log.read());
        expect(frames.map((f) => [f.lsn, new TextDecoder().decode(f.data)])).toEqual([
          [1, "a"],
          [2, "b"],
          [3, "c"],
        ]);
        expect((await collect(log.read(3))).map((f) => f.lsn)).toEqual([3]);
        expect(await collect(log.read(4))).toEqual([]);
        await log.close();
        await s.close();

        s = await backend.open(url);
        opened.push(s);
        log = await s.openLog("main");
        expect(log.nextLsn()).toBe(4);
        expect((await collect(log.read(2))).map((f) => f.lsn)).toEqual([2, 3]);
        expect((await log.append([new Uint8Array(0)])).firstLsn).toBe(4);
        await log.close();
      });

      it("gives concurrent appends consecutive, non-overlapping LSNs", async () => {
        const s = await fresh();
        const log = await s.openLog("concurrent");
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => log.append([bytesOf(`x${i}`), bytesOf(`y${i}`)])),
        );
        const starts = results.map((r) => r.firstLsn).sort((a, b) => a - b);
        expect(starts).toEqual(Array.from({ length: 20 }, (_, i) => 1 + 2 * i));
        const frames = await collect(log.read());
        expect(frames.map((f) => f.lsn)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
        for (const r of results) {
          const x = new TextDecoder().decode(frames[r.firstLsn - 1]!.data);
          const y = new TextDecoder().decode(frames[r.firstLsn]!.data);
          expect(x.slice(1)).toBe(y.slice(1));
        }
        await log.close();
      });

      it("truncates a prefix but never forgets the end", async () => {
        const url = await backend.freshUrl();
        let s = await backend.open(url);
        let log = await s.openLog("trunc");
        for (let i = 0; i < 10; i++) await log.append([bytesOf(`f${i + 1}`)]);
        await log.truncate(6);
        const kept = (await collect(log.read())).map((f) => f.lsn);
        expect(kept.at(-1)).toBe(10);
        for (let lsn = 6; lsn <= 10; lsn++) expect(kept).toContain(lsn);
        expect((await collect(log.read(6))).map((f) => f.lsn)).toEqual([6, 7, 8, 9, 10]);
        await log.truncate(11);
        expect((await collect(log.read(11))).length).toBe(0);
        await log.close();
        await s.close();
        s = await backend.open(url);
        opened.push(s);
        log = await s.openLog("trunc");
        expect(log.nextLsn()).toBe(11);
        await log.append([bytesOf("f11")]);
        expect((await collect(log.read(11))).map((f) => new TextDecoder().decode(f.data))).toEqual(["f11"]);
        await log.close();
      });

      it("keeps logs apart by name and refuses a second writer", async () => {
        const s = await fresh();
        const a = await s.openLog("a");
        const b = await s.openLog("b");
        await a.append([bytesOf("1")]);
        expect(b.nextLsn()).toBe(1);
        // memory and file refuse at open (a lock); s3 fences the second writer at its first append.
        let refused: TwillError | undefined;
        try {
          const second = await s.openLog("a");
          try {
            await second.append([bytesOf("2")]);
            await a.append([bytesOf("3")]);
          } finally {
            await second.close();
          }
        } catch (error) {
          refused = error as TwillError;
        }
        expect(refused).toBeInstanceOf(TwillError);
        expect([ErrorCodes.Locked, ErrorCodes.Fenced]).toContain(refused!.code);
        const reader = await s.openLog("a", { readOnly: true });
        expect((await collect(reader.read())).length).toBeGreaterThanOrEqual(1);
        await expectCode(reader.append([bytesOf("no")]), ErrorCodes.InvalidArgument);
        await reader.close();
        await a.close();
        await b.close();
        const again = await s.openLog("a");
        await again.close();
      });

      it("rejects bad appends and log names", async () => {
        const s = await fresh();
        await expectCode(s.openLog("bad/name"), ErrorCodes.InvalidArgument);
        await expectCode(s.openLog(""), ErrorCodes.InvalidArgument);
        const log = await s.openLog("ok");
        await expectCode(log.append([]), ErrorCodes.InvalidArgument);
        await expectCode(log.append(["x" as unknown as Uint8Array]), ErrorCodes.InvalidArgument);
        expect(log.nextLsn()).toBe(1);
        await log.close();
      });
    });
  });
}
