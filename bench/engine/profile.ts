/**
 * bench/engine/profile: one phase of bench/engine on its own, for a CPU profile or a quick A/B of a change. Same
 * data layout as engine.bench.ts (16-byte keys, 184-byte values, key-order bulk load, seeded random keys).
 *
 *   get:      bulk-load ROWS rows, flush + compact, then GETS point gets by random key from the SSTs; prints
 *             ops/s and the block cache's hit rate and bytes.
 *   commit16: 16 async loops of durable single-row commits (begin, put, commit), as bench/engine's 16-writer phase.
 *   commit1:  one loop of durable single-row commits, as bench/engine's 1-writer phase.
 *   Both commit phases run --warmup N commits per loop first (default 0; the JIT's warm-up is then outside the
 *   window), build their keys and values before the window (the harness's allocations are not the engine's CPU),
 *   and with --no-sync open the store without fdatasync: the CPU per commit without the sync's wait, for
 *   profiling the engine's own work (the rate is then meaningless as a durable figure).
 *
 * Run: node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/engine/profile.ts get [--rows N] [--gets N]
 *      [--block-bytes N] (the engine's blockBytesTarget, for A/B of data block sizes)
 *      [--memtable-mib N] (the engine's memtableBytesMax: a long commit run under perf without a flush in it)
 * Not a benchmark of record (no peer): the numbers it prints are for comparing two builds on the same machine.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import { Engine } from "../../src/engine/engine.js";
import { openFileStorage } from "../../src/storage/file.js";
import { prng } from "../../src/util/prng.js";
import { numberFlag } from "../lib.js";
import { rowKey as sharedRowKey, rowValue as sharedRowValue, u8 } from "../rows.js";

const phase = process.argv[2] ?? "get";
const ROWS = numberFlag("--rows", 1_000_000);
const GETS = numberFlag("--gets", 200_000);
const COMMITS = numberFlag("--commits", 400);
// Data block size to write (the engine's blockBytesTarget); default: the engine's.
const BLOCK_BYTES = numberFlag("--block-bytes", 0);
const WARMUP = numberFlag("--warmup", 0);
// The engine's memtableBytesMax in MiB (default: the engine's); larger keeps a long commit run (for perf) flush-free.
const MEMTABLE_MIB = numberFlag("--memtable-mib", 0);
const noSync = process.argv.includes("--no-sync");
// Twill gets plain Uint8Array views of the shared rows, as engine.bench.ts passes them.
const rowKey = (i: number, space = 0): Uint8Array => u8(sharedRowKey(i, space));
const rowValue = (i: number): Uint8Array => u8(sharedRowValue(i));

// --ballast: hold 1M separately allocated 16-byte Buffers and a view of each, as engine.bench.ts's key arrays do.
// --ballast-shared: the same keys as views of one buffer.
const shared = Buffer.alloc(16 * 1_000_000);
const ballast = process.argv.includes("--ballast")
  ? Array.from({ length: 1_000_000 }, (_, i) => rowKey(i))
  : process.argv.includes("--ballast-shared")
    ? Array.from({ length: 1_000_000 }, (_, i) => shared.subarray(i * 16, i * 16 + 16))
    : [];
/** GC pauses (count, total ms) while `gcWatch` is on. */
const gcPauses = { count: 0, ms: 0 };
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcPauses.count++;
    gcPauses.ms += e.duration;
  }
});
async function gcWatchEnd(): Promise<string> {
  await new Promise((resolve) => setTimeout(resolve, 10));
  observer.disconnect();
  return `${gcPauses.count} GC pauses, ${gcPauses.ms.toFixed(0)} ms`;
}

const dir = await mkdtemp(join(tmpdir(), "twill-profile-engine-"));
const storage = await openFileStorage(dir, { unsafeNoSync: noSync });
const engine = await Engine.open(storage, {
  ...(BLOCK_BYTES > 0 ? { blockBytesTarget: BLOCK_BYTES } : {}),
  ...(MEMTABLE_MIB > 0 ? { memtableBytesMax: MEMTABLE_MIB * 1024 * 1024 } : {}),
});
try {
  if (phase === "get") {
    const txn = engine.begin();
    for (let i = 0; i < ROWS; i++) txn.put(rowKey(i), rowValue(i));
    await txn.commit();
    await engine.flush();
    await engine.compact();
    const rand = prng(7);
    const keys = Array.from({ length: GETS }, () => rowKey(Math.floor(rand() * ROWS)));
    for (let i = 0; i < Math.min(GETS, 10_000); i++) await engine.read(keys[i]!);
    const before = engine.stats();
    observer.observe({ entryTypes: ["gc"] });
    // CPU time as well as wall time: on a shared machine the wall rate swings with the load, the CPU cost less.
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < GETS; i++) {
      if ((await engine.read(keys[i]!)) === undefined) throw new Error("missing key");
    }
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `get: ${GETS} in ${ms.toFixed(0)} ms = ${Math.round((GETS / ms) * 1000)} ops/s, CPU ${((cpu.user + cpu.system) / GETS).toFixed(2)} us per get; ${await gcWatchEnd()}`,
    );
    console.log("stats before:", JSON.stringify(before));
    console.log("stats after: ", JSON.stringify(engine.stats()));
  } else if (phase === "commit16" || phase === "commit1") {
    const writers = phase === "commit16" ? 16 : 1;
    const space = phase === "commit16" ? 0x41 : 0x40;
    const keysOf = (w: number, from: number, n: number) =>
      Array.from({ length: n }, (_, i) => rowKey(w * 1_000_000 + from + i, space));
    const values = Array.from({ length: Math.max(WARMUP, COMMITS) }, (_, i) => rowValue(i));
    const loops = async (keys: Uint8Array[][]) => {
      await Promise.all(
        keys.map(async (own) => {
          for (let i = 0; i < own.length; i++) {
            const txn = engine.begin();
            txn.put(own[i]!, values[i]!);
            await txn.commit();
          }
        }),
      );
    };
    if (WARMUP > 0) await loops(Array.from({ length: writers }, (_, w) => keysOf(w, 0, WARMUP)));
    const keys = Array.from({ length: writers }, (_, w) => keysOf(w, WARMUP, COMMITS));
    observer.observe({ entryTypes: ["gc"] });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const before = engine.stats().appends;
    await loops(keys);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const n = writers * COMMITS;
    const appends = engine.stats().appends - before;
    console.log(
      `${phase}${noSync ? " (no sync)" : ""}: ${n} in ${ms.toFixed(0)} ms = ${Math.round((n / ms) * 1000)} commits/s, ${(n / appends).toFixed(1)} per append, CPU ${((cpu.user + cpu.system) / n).toFixed(1)} us per commit (user ${(cpu.user / n).toFixed(1)}, system ${(cpu.system / n).toFixed(1)}); ${await gcWatchEnd()}`,
    );
  } else {
    throw new Error(`unknown phase ${phase} (get | commit16 | commit1)`);
  }
  if (ballast.length > 0) console.log(`(ballast of ${ballast.length} keys held)`);
} finally {
  await engine.close();
  await storage.close();
  await rm(dir, { recursive: true, force: true });
}
