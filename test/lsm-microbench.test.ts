/**
 * Not a timed test: prints how fast the LSM pieces run on this machine, so regressions show up in the log.
 * The point-read target is SQLite's point get through better-sqlite3 (around 1–2 µs on this class of machine).
 */

import { describe, expect, it } from "vitest";
import { BlockCache } from "../src/engine/lsm/block-cache.js";
import type { Cursor } from "../src/engine/lsm/cursor.js";
import { encodeKey } from "../src/engine/lsm/keycodec.js";
import { Memtable } from "../src/engine/lsm/memtable.js";
import { mergeIterators, visibleEntries } from "../src/engine/lsm/merge.js";
import { SstReader, SstWriter } from "../src/engine/lsm/sst.js";
import { type Entry, EntryKind, lsnMax, NEEDS_IO } from "../src/engine/lsm/types.js";
import { MapStore } from "./helpers/map-store.js";

/** Runs `run` and returns its result and the CPU milliseconds it took (CPU time: the machine is shared). */
function time<T>(run: () => T): [T, number] {
  const c0 = process.cpuUsage();
  const result = run();
  const c = process.cpuUsage(c0);
  return [result, (c.user + c.system) / 1000];
}

async function timeAsync<T>(run: () => Promise<T>): Promise<[T, number]> {
  const c0 = process.cpuUsage();
  const result = await run();
  const c = process.cpuUsage(c0);
  return [result, (c.user + c.system) / 1000];
}

function drainSync(cursor: Cursor<Entry>): number {
  let n = 0;
  for (;;) {
    const e = cursor.nextSync();
    if (e === undefined) return n;
    if (e === NEEDS_IO) throw new Error("unexpected I/O");
    n++;
  }
}

const N = 1_000_000;
/** Iterations of each point-read loop (after a warm-up round). */
const M = 300_000;

describe("LSM micro-benchmarks (printed, not asserted)", () => {
  it("builds, opens and reads a 1M-entry SST; fills and reads a 1M-entry memtable", async () => {
    const lines: string[] = [];
    let found = 0;
    const report = (what: string, ms: number, ops: number) =>
      lines.push(
        `${what.padEnd(52)} ${ms.toFixed(0).padStart(6)} ms  ${((ms * 1000) / ops).toFixed(3).padStart(9)} µs/op`,
      );

    const value = new Uint8Array(16).fill(7);
    // Keys are made as they are consumed, as a flush or compaction streams them: holding 1M entries for the whole
    // run would put every later measurement under the garbage collector's weight.
    const keyOf = (i: number) => encodeKey([1, i]);
    const [, genMs] = time(() => {
      for (let i = 0; i < N; i++) found += keyOf(i).length;
    });
    report("encodeKey([1, i])", genMs, N);

    const [bytes, buildMs] = time(() => {
      const w = new SstWriter();
      for (let i = 0; i < N; i++) w.add({ key: keyOf(i), lsn: i + 1, kind: EntryKind.Put, value });
      return w.finish();
    });
    report(`encodeKey + SstWriter.add: 1M entries -> ${(bytes.length / 1048576).toFixed(1)} MiB`, buildMs, N);

    const store = new MapStore();
    await store.write("sst/bench.sst", bytes);
    const cache = new BlockCache(256 * 1024 * 1024);
    const [reader, openMs] = await timeAsync(() =>
      SstReader.open(store, "sst/bench.sst", cache, { sizeBytes: bytes.length }),
    );
    report(
      `SstReader.open (${reader.blockCount} blocks, meta ${(reader.metaBytes / 1024).toFixed(0)} KiB)`,
      openMs,
      1,
    );

    // Cold point reads, then a cold scan that leaves every block in the cache.
    const [, coldMs] = await timeAsync(async () => {
      for (let i = 0; i < N; i += 5000) await reader.get(keyOf(i), lsnMax - 1);
    });
    report("get, cold (one block fetch + verify each)", coldMs, N / 5000);
    let coldScanned = 0;
    const [, coldScanMs] = await timeAsync(async () => {
      for await (const _ of reader.iterate()) coldScanned++;
    });
    report("SST scan, cold, for await", coldScanMs, coldScanned);

    const hotKeys = Array.from({ length: 16 }, (_, i) => keyOf(5000 + i));
    let hotMs = 0;
    for (let round = 0; round < 2; round++) {
      [, hotMs] = time(() => {
        for (let i = 0; i < M; i++) if (reader.getCached(hotKeys[i & 15]!, lsnMax - 1) !== undefined) found++;
      });
    }
    report("getCached, hot block (16 keys)", hotMs, M);
    const probes = Array.from({ length: 4096 }, (_, i) => keyOf((i * 104_729) % N));
    let randomMs = 0;
    for (let round = 0; round < 2; round++) {
      [, randomMs] = time(() => {
        for (let i = 0; i < M; i++)
          if (reader.getCached(probes[i & 4095]!, lsnMax - 1) !== undefined) found++;
      });
    }
    report("getCached, random keys over all cached blocks", randomMs, M);
    const missKey = encodeKey([1, N + 5]);
    const [, missMs] = time(() => {
      for (let i = 0; i < M; i++) if (reader.getCached(missKey, lsnMax - 1) !== undefined) found++;
    });
    report("getCached, absent key (range check)", missMs, M);
    const bloomMiss = encodeKey([1, 5000.5]);
    const [, bloomMs] = time(() => {
      for (let i = 0; i < M; i++) if (reader.getCached(bloomMiss, lsnMax - 1) !== undefined) found++;
    });
    report("getCached, absent key inside the range (bloom)", bloomMs, M);
    expect(found).toBeGreaterThan(0);

    const [scanned, scanMs] = time(() => drainSync(reader.iterate()));
    report("SST scan, cached, cursor.nextSync", scanMs, scanned);
    let viaAwait = 0;
    const [, awaitMs] = await timeAsync(async () => {
      for await (const _ of reader.iterate()) viaAwait++;
    });
    report("SST scan, cached, for await", awaitMs, viaAwait);
    expect([coldScanned, scanned, viaAwait]).toEqual([N, N, N]);

    // Fresh entries in scattered key order, as commits would bring them (a pre-built array read in random order
    // would mostly measure cache misses on the input).
    const memtable = new Memtable();
    const [, insertMs] = time(() => {
      for (let i = 0; i < N; i++) {
        const k = (i * 7_919) % N;
        memtable.put({ key: encodeKey([1, k]), lsn: k + 1, kind: EntryKind.Put, value });
      }
    });
    report("encodeKey + Memtable.put, 1M in scattered order", insertMs, N);
    const [, seqMs] = time(() => {
      const sequential = new Memtable();
      for (let i = 0; i < N; i++) sequential.put({ key: keyOf(i), lsn: i + 1, kind: EntryKind.Put, value });
    });
    report("encodeKey + Memtable.put, 1M in key order", seqMs, N);
    const [, mgetMs] = time(() => {
      for (let i = 0; i < M; i++) if (memtable.get(probes[i & 4095]!, lsnMax - 1) !== undefined) found++;
    });
    report("Memtable.get, hit, 1M entries", mgetMs, M);
    const [, mmissMs] = time(() => {
      for (let i = 0; i < M; i++) if (memtable.get(bloomMiss, lsnMax - 1) !== undefined) found++;
    });
    report("Memtable.get, miss, 1M entries", mmissMs, M);
    const [mscan, mscanMs] = time(() => drainSync(memtable.iterate()));
    report("Memtable scan", mscanMs, mscan);

    const [visible, mergeMs] = time(() =>
      drainSync(visibleEntries(mergeIterators([memtable.iterate(), reader.iterate()]), lsnMax - 1)),
    );
    report("merge(memtable, SST) + visibleEntries, 2M versions", mergeMs, 2 * N);
    expect(visible).toBe(N);

    console.log(
      `\nLSM micro-benchmarks, CPU time (${process.version}, ${process.arch})\n${lines.join("\n")}`,
    );
    // It asserts nothing about speed, so only a hang should fail it: on a shared 2-core machine running the
    // whole suite it has taken over the default 60 s.
  }, 240_000);
});
