/** CrashSimStorage, the crash-simulating storage double: what survives a crash, and how. */

import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorCodes } from "../src/errors.js";
import { CrashSimStorage, type RecoveredState } from "../src/storage/crash-sim.js";
import { dropMemoryStore, openMemoryStorage } from "../src/storage/memory.js";
import type { Storage } from "../src/storage/types.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function frames(storage: Storage, name: string, from = 1): Promise<{ lsn: number; data: string }[]> {
  const log = await storage.openLog(name, { readOnly: true });
  const out: { lsn: number; data: string }[] = [];
  for await (const f of log.read(from)) out.push({ lsn: f.lsn, data: dec(f.data) });
  await log.close();
  return out;
}

async function nextLsn(storage: Storage, name: string): Promise<number> {
  const log = await storage.openLog(name, { readOnly: true });
  const next = log.nextLsn();
  await log.close();
  return next;
}

async function objectOrUndefined(storage: Storage, key: string): Promise<string | undefined> {
  try {
    return dec(await storage.read(key));
  } catch (error) {
    if ((error as { code?: string }).code === ErrorCodes.NotFound) return undefined;
    throw error;
  }
}

function release(state: RecoveredState): void {
  if (state.storage.kind === "memory") dropMemoryStore(state.storage.url.slice("memory://".length));
}

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe("CrashSimStorage", () => {
  it("passes operations through to the inner store until the crash, numbering them", async () => {
    const sim = new CrashSimStorage({ seed: 3 });
    await sim.write("a/1", enc("one"));
    expect(await sim.writeIfAbsent("a/1", enc("other"))).toBe(false);
    expect(await sim.writeIfAbsent("a/2", enc("two"))).toBe(true);
    expect(dec(await sim.read("a/1", { offset: 1 }))).toBe("ne");
    expect(await sim.size("a/2")).toBe(3);
    const keys: string[] = [];
    for await (const k of sim.list("a/")) keys.push(k);
    expect(keys).toEqual(["a/1", "a/2"]);
    await sim.delete("a/1");
    const log = await sim.openLog("main");
    expect(await log.append([enc("f1"), enc("f2")])).toEqual({ firstLsn: 1, nextLsn: 3 });
    await log.truncate(2);
    const read: string[] = [];
    for await (const f of log.read(1)) read.push(`${f.lsn}:${dec(f.data)}`);
    expect(read).toEqual(["2:f2"]);
    expect(sim.operations).toBe(11);
    expect(sim.trace.map((t) => t.op)).toEqual([
      "write",
      "writeIfAbsent",
      "writeIfAbsent",
      "read",
      "size",
      "list",
      "delete",
      "openLog",
      "append",
      "truncate",
      "logRead",
    ]);
    expect(sim.crashed).toBe(false);
    expect(sim.logNames).toEqual(["main"]);
    // The inner store has it all, durably.
    expect(await objectOrUndefined(sim.inner, "a/1")).toBeUndefined();
    expect(await objectOrUndefined(sim.inner, "a/2")).toBe("two");
    await sim.close();
  });

  it("rejects the crashing operation and every later one, and settles pending ones with an error", async () => {
    const sim = new CrashSimStorage({ crashAt: 3, maxDelayTurns: 3 });
    await sim.write("k/1", enc("1"));
    const pending = sim.write("k/2", enc("2")); // operation 2, in flight
    const crashing = sim.write("k/3", enc("3")); // operation 3: the crash
    const [p, c] = await Promise.allSettled([pending, crashing]);
    expect(c).toMatchObject({
      status: "rejected",
      reason: { code: ErrorCodes.Io, message: /simulated crash/ },
    });
    expect(p).toMatchObject({ status: "rejected", reason: { code: ErrorCodes.Io } });
    await expect(sim.read("k/1")).rejects.toMatchObject({ code: ErrorCodes.Io });
    expect(sim.crashed).toBe(true);
    expect(sim.crashedAtOperation).toBe(3);
    expect(sim.operations).toBe(3); // operations after the crash never started
    expect(sim.inFlight.map((m) => m.target)).toEqual(["k/2", "k/3"]);
    // Nothing reached the inner store after the crash.
    expect(await objectOrUndefined(sim.inner, "k/2")).toBeUndefined();
  });

  it("keeps every resolved mutation and keeps or drops each in-flight object write whole", async () => {
    const seen = new Set<string>();
    for (let seed = 1; seed <= 40; seed++) {
      const sim = new CrashSimStorage({ seed });
      await sim.write("done", enc("durable"));
      await sim.write("obj", enc("old"));
      await sim.write("gone", enc("x"));
      const inFlight = [
        sim.write("obj", enc("new")),
        sim.writeIfAbsent("cas", enc("won")),
        sim.delete("gone"),
      ];
      sim.crash();
      for (const r of await Promise.allSettled(inFlight)) expect(r.status).toBe("rejected");
      const state = await sim.recover({ seed });
      try {
        expect(await objectOrUndefined(state.storage, "done")).toBe("durable");
        const obj = await objectOrUndefined(state.storage, "obj");
        const cas = await objectOrUndefined(state.storage, "cas");
        const gone = await objectOrUndefined(state.storage, "gone");
        expect(["old", "new"]).toContain(obj);
        expect([undefined, "won"]).toContain(cas);
        expect([undefined, "x"]).toContain(gone);
        expect(state.outcomes.map((o) => `${o.op} ${o.target}`)).toEqual([
          "write obj",
          "writeIfAbsent cas",
          "delete gone",
        ]);
        // The outcome list says what happened.
        expect(obj === "new").toBe(state.outcomes[0]!.choice === "keep");
        expect(cas === "won").toBe(state.outcomes[1]!.choice === "keep");
        expect(gone === undefined).toBe(state.outcomes[2]!.choice === "keep");
        seen.add(`${obj}/${cas}/${gone}`);
      } finally {
        release(state);
      }
    }
    expect(seen.size).toBeGreaterThanOrEqual(6); // the choices vary with the seed
  });

  it("is deterministic: the same seeds give the same schedule and the same post-crash state", async () => {
    const run = async () => {
      const sim = new CrashSimStorage({ seed: 9, crashAt: 6 });
      const log = await sim.openLog("main");
      const ops = [
        log.append([enc("a")]),
        sim.write("x", enc("1")),
        log.append([enc("b"), enc("c")]),
        sim.write("y", enc("2")),
        log.append([enc("d")]),
      ];
      await Promise.allSettled(ops);
      const state = await sim.recover({ seed: 4 });
      const result = {
        trace: sim.trace,
        outcomes: state.outcomes,
        frames: await frames(state.storage, "main"),
        x: await objectOrUndefined(state.storage, "x"),
        y: await objectOrUndefined(state.storage, "y"),
      };
      release(state);
      return result;
    };
    expect(await run()).toEqual(await run());
  });

  it("recover() leaves the crashed state alone, so one crash can be recovered many ways", async () => {
    const sim = new CrashSimStorage();
    const log = await sim.openLog("main");
    await log.append([enc("a")]);
    const p = log.append([enc("b"), enc("c"), enc("d")]);
    sim.crash();
    await expect(p).rejects.toThrow();
    const kept = new Set<number>();
    for (let seed = 1; seed <= 30; seed++) {
      const state = await sim.recover({ seed });
      const got = await frames(state.storage, "main");
      kept.add(got.length - 1);
      release(state);
    }
    expect(kept).toEqual(new Set([0, 1, 2, 3])); // drop, tear at 1 or 2 frames, keep
    expect(await frames(sim.inner, "main")).toEqual([{ lsn: 1, data: "a" }]);
  });

  it("tears in-flight appends to a prefix, and a torn or dropped append ends the log", async () => {
    const shapes = new Set<string>();
    for (let seed = 1; seed <= 60; seed++) {
      const sim = new CrashSimStorage({ seed, maxDelayTurns: 0 });
      const log = await sim.openLog("main");
      await log.append([enc("1"), enc("2")]);
      // Two appends in flight at once (a log serialises them, so the second can only follow the first whole).
      const first = log.append([enc("3"), enc("4"), enc("5")]);
      const second = log.append([enc("6"), enc("7")]);
      sim.crash();
      await Promise.allSettled([first, second]);
      const state = await sim.recover({ seed });
      const got = await frames(state.storage, "main");
      const data = got.map((f) => f.data).join("");
      expect("1234567".startsWith(data)).toBe(true); // a prefix of what was appended, in order
      expect(data.length).toBeGreaterThanOrEqual(2); // the durable frames
      expect(got.map((f) => f.lsn)).toEqual(got.map((_, i) => i + 1)); // LSNs unchanged
      expect(await nextLsn(state.storage, "main")).toBe(got.length + 1);
      const [a, b] = state.outcomes;
      if (a!.choice !== "keep") expect(b).toMatchObject({ choice: "drop", applied: 0 });
      shapes.add(data);
      release(state);
    }
    expect(shapes).toEqual(new Set(["12", "123", "1234", "12345", "123456", "1234567"]));
  });

  it("keeps the log's positions when an in-flight truncate applies, partially applies or not", async () => {
    const firsts = new Set<number>();
    for (let seed = 1; seed <= 40; seed++) {
      const sim = new CrashSimStorage({ seed });
      const log = await sim.openLog("main");
      await log.append([enc("a"), enc("b"), enc("c"), enc("d"), enc("e")]);
      await log.truncate(2);
      const p = log.truncate(5);
      sim.crash();
      await expect(p).rejects.toThrow();
      const state = await sim.recover({ seed });
      const got = await frames(state.storage, "main");
      expect(got.at(-1)).toEqual({ lsn: 5, data: "e" }); // the end is never lost
      expect(got[0]!.lsn).toBeGreaterThanOrEqual(2); // the durable truncation holds
      expect(got[0]!.lsn).toBeLessThanOrEqual(5);
      expect(got.map((f) => f.lsn)).toEqual(Array.from({ length: got.length }, (_, i) => got[0]!.lsn + i));
      expect(await nextLsn(state.storage, "main")).toBe(6);
      // A reader asking for the truncated range gets no frames it may not see; appends continue at 6.
      const writer = await state.storage.openLog("main");
      expect((await writer.append([enc("f")])).firstLsn).toBe(6);
      await writer.close();
      firsts.add(got[0]!.lsn);
      release(state);
    }
    expect(firsts.has(2)).toBe(true);
    expect(firsts.has(5)).toBe(true);
    expect(firsts.size).toBeGreaterThanOrEqual(3); // partial truncations happen too
  });

  it("rebuilds a fully truncated log with its end intact", async () => {
    const sim = new CrashSimStorage();
    const log = await sim.openLog("main");
    await log.append([enc("a"), enc("b")]);
    await log.truncate(3);
    const state = await sim.recover();
    expect(await frames(state.storage, "main")).toEqual([]);
    expect(await nextLsn(state.storage, "main")).toBe(3);
    release(state);
  });

  it("writes the state as a file:// database with a real torn frame, which file recovery cuts off", async () => {
    const garbles = new Set<string>();
    for (let seed = 1; seed <= 24; seed++) {
      const sim = new CrashSimStorage({ seed });
      await sim.write("obj/a", enc("A"));
      const log = await sim.openLog("main");
      await log.append([enc("one"), enc("two")]);
      const p = log.append([enc("three"), enc("four-is-longer-than-the-header-alone")]);
      sim.crash();
      await expect(p).rejects.toThrow();
      const directory = await mkdtemp(join(tmpdir(), "twill-crashsim-unit-"));
      dirs.push(directory);
      const state = await sim.recover({ seed, directory, weights: { keep: 0, drop: 0, tear: 1 } });
      const outcome = state.outcomes[0]!;
      expect(outcome.choice).toBe("tear");
      garbles.add(outcome.garbled!);
      // The segment file holds the kept frames plus the torn one's bytes.
      const segments = await readdir(join(directory, "log", "main"));
      expect(segments).toEqual(["0000000000000001.seg"]);
      const bytes = await readFile(join(directory, "log", "main", segments[0]!));
      expect(bytes.length).toBeGreaterThan(2 * 20 + 6);
      const got = await frames(state.storage, "main");
      expect(got.map((f) => f.data)).toEqual(["one", "two", "three"].slice(0, 2 + outcome.applied!));
      expect(dec(await state.storage.read("obj/a"))).toBe("A");
      // A writer cuts the torn bytes off and appends after the kept frames.
      const writer = await state.storage.openLog("main");
      expect(writer.nextLsn()).toBe(3 + outcome.applied!);
      await writer.append([enc("next")]);
      await writer.close();
      expect((await frames(state.storage, "main")).at(-1)!.data).toBe("next");
      await state.storage.close();
    }
    expect(garbles).toEqual(new Set(["cut", "flipped"]));
  });

  it("can sit on a recovered state, to crash again during recovery", async () => {
    const sim = new CrashSimStorage();
    const log = await sim.openLog("main");
    await log.append([enc("a")]);
    await sim.write("o", enc("1"));
    const first = await sim.recover();
    const again = new CrashSimStorage({ inner: first.storage, logNames: first.logNames, crashAt: 3 });
    const log2 = await again.openLog("main");
    await log2.append([enc("b")]);
    await expect(log2.append([enc("c")])).rejects.toThrow(/simulated crash/);
    const second = await again.recover({ seed: 2, weights: { keep: 0, drop: 1, tear: 0 } });
    expect(await frames(second.storage, "main")).toEqual([
      { lsn: 1, data: "a" },
      { lsn: 2, data: "b" },
    ]);
    expect(dec(await second.storage.read("o"))).toBe("1");
    release(first);
    release(second);
  });

  it("works over a caller's named store", async () => {
    const inner = openMemoryStorage("crash-sim-unit-named");
    await inner.write("pre", enc("existing"));
    const sim = new CrashSimStorage({ inner, crashAt: 1 });
    await expect(sim.write("x", enc("1"))).rejects.toThrow();
    const state = await sim.recover({ seed: 1, weights: { keep: 1, drop: 0, tear: 0 } });
    expect(dec(await state.storage.read("pre"))).toBe("existing");
    expect(dec(await state.storage.read("x"))).toBe("1");
    expect(await objectOrUndefined(inner, "x")).toBeUndefined();
    release(state);
    dropMemoryStore("crash-sim-unit-named");
  });
});
