/**
 * bench/engine/rss: the larger-than-memory check. Loads N rows (default 5,000,000) of ~200 bytes into a file://
 * database in transactions of 20,000 rows (blockCacheBytesMax 64 MiB, default memtable), settles it (flush and
 * compact), runs random point gets and 1,000-row range scans, closes, reopens through a CountingStorage (open time
 * and which objects open reads: it must not read every SST), and reads again. Target: peak RSS < 400 MiB.
 *
 * RSS is sampled every 100 ms from /proc by a child process (outside the measured process; a timer on the main
 * thread would starve while the engine runs long microtask chains). Per phase, the table also gives the kernel's
 * high-water mark (VmHWM, reset at each phase start through /proc/self/clear_refs), which catches peaks between
 * samples. Nothing calls gc(). Linux only. Under tsx, the loader itself accounts for about 35 MiB of the RSS
 * (plain node starts at about 40 MiB, node --import tsx at about 75 MiB); the "baseline" line reports it.
 *
 * Keys are 16 bytes: 8-byte big-endian scramble(i) (a bijection, so rows arrive in random key order and every
 * flush overlaps L1), then 8 fixed bytes. Values are 184 incompressible bytes.
 *
 * Run: node --import tsx bench/engine/rss.bench.ts [--rows N] [--sequential] [--options JSON]
 *      (--sequential: insert in key order instead of random order; --options: extra engine options, for diagnosis)
 */

import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Engine, type EngineOptions } from "../../src/engine/engine.js";
import { CountingStorage } from "../../src/storage/counting.js";
import { openStorage } from "../../src/storage/open.js";
import type { ByteRange } from "../../src/storage/types.js";
import { fmt, type LatencySummary, machine, measure, printTable, writeResult } from "../lib.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}
const ROWS = Number(arg("--rows") ?? 5_000_000);
if (!Number.isInteger(ROWS) || ROWS < 1000 || ROWS > 2 ** 32)
  throw new Error("--rows must be an integer >= 1000");
const SEQUENTIAL = process.argv.includes("--sequential");
const TXN_ROWS = 20_000;
const GETS = 100_000;
const SCANS = 1_000;
const GETS_REOPENED = 50_000;
const SCANS_REOPENED = 500;
const SCAN_ROWS = 1_000;
const VALUE_BYTES = 184;
const RSS_TARGET_MIB = 400;
const BLOCK_CACHE_BYTES = 64 * 1024 * 1024;
const MiB = 1024 * 1024;
const baselineRssMiB = process.memoryUsage().rss / MiB;

// ---- RSS sampling -----------------------------------------------------------------------------------------------

/**
 * A child process reads this process's RSS from /proc/<pid>/statm every 100 ms and, when told to stop, prints the
 * samples. Being outside the process it adds nothing to the RSS it measures and keeps sampling while the main
 * thread is busy (a timer here would starve during the engine's long microtask chains). Phases are matched to
 * samples by wall-clock time afterwards.
 */
const samplerSource = `
  const { readFileSync } = require("node:fs");
  const pid = Number(process.argv[1]);
  const page = Number(process.argv[2]);
  const samples = [];
  const tick = () => {
    try {
      const rssPages = Number(readFileSync("/proc/" + pid + "/statm", "utf8").split(" ")[1]);
      samples.push([Date.now(), rssPages * page]);
    } catch {}
  };
  tick();
  const timer = setInterval(tick, 100);
  process.stdin.on("data", () => {
    clearInterval(timer);
    tick();
    process.stdout.write(JSON.stringify(samples), () => process.exit(0));
  });
`;
const sampler = spawn(process.execPath, ["-e", samplerSource, String(process.pid), "4096"], {
  stdio: ["pipe", "pipe", "inherit"],
});
let samplerOut = "";
sampler.stdout.setEncoding("utf8").on("data", (chunk: string) => {
  samplerOut += chunk;
});
async function stopSampler(): Promise<[number, number][]> {
  const exited = new Promise((resolve) => sampler.once("exit", resolve));
  sampler.stdin.write("stop\n");
  await exited;
  return JSON.parse(samplerOut) as [number, number][];
}

function resetHwm(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}
function hwmBytes(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

interface PhaseResult {
  phase: string;
  seconds: number;
  peakRssMiB: number;
  hwmMiB: number;
  samples: number;
  endRssMiB: number;
  endHeapUsedMiB: number;
  endExternalMiB: number;
  endArrayBuffersMiB: number;
  detail: string;
}
const phases: PhaseResult[] = [];

/** Phase windows in wall-clock ms, matched with the sampler's samples at the end. */
const windows: { index: number; from: number; to: number }[] = [];

async function phase<T>(
  name: string,
  work: () => Promise<T>,
  detail: (result: T) => string = () => "",
): Promise<T> {
  const index = phases.length;
  const hwmOk = resetHwm();
  const from = Date.now();
  const t0 = performance.now();
  const result = await work();
  const seconds = (performance.now() - t0) / 1000;
  const hwm = hwmOk ? hwmBytes() : Number.NaN;
  windows.push({ index, from, to: Date.now() });
  const mem = process.memoryUsage();
  const r: PhaseResult = {
    phase: name,
    seconds,
    peakRssMiB: mem.rss / MiB, // raised to the sampled peak at the end
    hwmMiB: hwm / MiB,
    samples: 0,
    endRssMiB: mem.rss / MiB,
    endHeapUsedMiB: mem.heapUsed / MiB,
    endExternalMiB: mem.external / MiB,
    endArrayBuffersMiB: mem.arrayBuffers / MiB,
    detail: detail(result),
  };
  phases.push(r);
  console.log(
    `  ${name.padEnd(17)} ${fmt(seconds, 1).padStart(7)} s  VmHWM ${fmt(r.hwmMiB).padStart(5)} MiB  end RSS ${fmt(r.endRssMiB).padStart(5)} MiB  heap ${fmt(r.endHeapUsedMiB)} MiB  external ${fmt(r.endExternalMiB)} MiB  arrayBuffers ${fmt(r.endArrayBuffersMiB)} MiB  ${r.detail}`,
  );
  return result;
}

// ---- data -------------------------------------------------------------------------------------------------------

/** A bijection on 32-bit integers (odd multiply and xorshift), so distinct rows get distinct, well spread keys. */
function scramble(i: number): number {
  let x = Math.imul(i ^ 0x5bd1e995, 0x9e3779b1) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  return x >>> 0;
}
function rowKey(i: number): Uint8Array {
  const key = new Uint8Array(16);
  const view = new DataView(key.buffer);
  view.setUint32(0, SEQUENTIAL ? 0 : scramble(i));
  view.setUint32(4, i);
  key.set([0x74, 0x77, 0x69, 0x6c, 0x6c, 0x72, 0x6f, 0x77], 8);
  return key;
}
const pool = new Uint8Array(1 << 20);
{
  let s = 42;
  for (let i = 0; i < pool.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    pool[i] = s >>> 24;
  }
}
function rowValue(i: number): Uint8Array {
  const at = (i * 997) % (pool.length - VALUE_BYTES);
  return pool.subarray(at, at + VALUE_BYTES);
}
let seed = 7;
function randomRow(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return Math.floor((seed / 2 ** 32) * ROWS);
}

/** Counts reads of SST objects as well as the totals. */
class SstCountingStorage extends CountingStorage {
  sstReads = 0;
  sstReadBytes = 0;
  readonly sstsRead = new Set<string>();
  override async read(key: string, range?: ByteRange): Promise<Uint8Array> {
    const bytes = await super.read(key, range);
    if (key.startsWith("sst/")) {
      this.sstReads++;
      this.sstReadBytes += bytes.length;
      this.sstsRead.add(key);
    }
    return bytes;
  }
}

async function gets(engine: Engine, count: number): Promise<LatencySummary> {
  return measure(count, async () => {
    if ((await engine.read(rowKey(randomRow()))) === undefined) throw new Error("missing row");
  });
}
async function scans(engine: Engine, count: number): Promise<LatencySummary> {
  return measure(count, async () => {
    let n = 0;
    for await (const _ of engine.readRange({ start: rowKey(randomRow()), limit: SCAN_ROWS })) n++;
    if (n === 0) throw new Error("empty scan");
  });
}
const latency = (s: LatencySummary) =>
  `${fmt(s.opsPerSec)} ops/s, p50 ${fmt(s.p50Us, 1)} µs, p99 ${fmt(s.p99Us, 1)} µs`;

// ---- run --------------------------------------------------------------------------------------------------------

const tempDir = await mkdtemp(join(tmpdir(), "twill-bench-rss-"));
const url = `file://${tempDir}`;
/** --options '{"memtableBytesMax": 8388608}': extra engine options, for diagnosis only (the check uses none). */
const extraOptions = arg("--options") ? (JSON.parse(arg("--options")!) as EngineOptions) : {};
const engineOptions: EngineOptions = { blockCacheBytesMax: BLOCK_CACHE_BYTES, ...extraOptions };
console.log(
  `bench/engine/rss: ${ROWS.toLocaleString("en-US")} rows of ${16 + VALUE_BYTES} B in ${SEQUENTIAL ? "key" : "random key"} order, transactions of ${TXN_ROWS}, engine options ${JSON.stringify(engineOptions)}, temp dir ${tempDir}`,
);
const results: Record<string, unknown> = {};
try {
  const storage = await openStorage(url);
  const engine = await phase("open", () => Engine.open(storage, engineOptions));

  const load = await phase(
    "load",
    async () => {
      let maxCommitMs = 0;
      const maxMem = { heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
      for (let from = 0; from < ROWS; from += TXN_ROWS) {
        const t = performance.now();
        const txn = engine.begin();
        const to = Math.min(ROWS, from + TXN_ROWS);
        for (let i = from; i < to; i++) txn.put(rowKey(i), rowValue(i));
        await txn.commit();
        maxCommitMs = Math.max(maxCommitMs, performance.now() - t);
        const m = process.memoryUsage();
        for (const k of ["heapUsed", "heapTotal", "external", "arrayBuffers"] as const)
          maxMem[k] = Math.max(maxMem[k], m[k]);
      }
      return { maxCommitMs, maxMem };
    },
    (r) =>
      `slowest ${TXN_ROWS}-row txn ${fmt(r.maxCommitMs)} ms; max after a commit: heapUsed ${fmt(r.maxMem.heapUsed / MiB)}, heapTotal ${fmt(r.maxMem.heapTotal / MiB)}, external ${fmt(r.maxMem.external / MiB)}, arrayBuffers ${fmt(r.maxMem.arrayBuffers / MiB)} MiB`,
  );
  const loadPhase = phases.at(-1)!;
  results.loadRowsPerSec = ROWS / loadPhase.seconds;
  results.slowestTxnMs = load.maxCommitMs;
  results.loadMaxMemoryAfterCommit = load.maxMem;
  results.statsAfterLoad = engine.stats();

  await phase(
    "settle",
    async () => {
      await engine.flush();
      await engine.compact();
      return engine.stats();
    },
    (s) =>
      `${s.l0Ssts} L0 + ${s.l1Ssts} L1 SSTs, ${fmt(s.sstBytes / MiB)} MiB, ${s.flushes} flushes, ${s.compactions} compactions`,
  );
  results.statsAfterSettle = engine.stats();

  results.gets = await phase("gets", () => gets(engine, GETS), latency);
  results.scans = await phase("scans", () => scans(engine, SCANS), latency);
  results.statsBeforeClose = engine.stats();
  await phase("close", async () => {
    await engine.close();
    await storage.close();
  });

  const counting = new SstCountingStorage(await openStorage(url));
  const reopened = await phase(
    "reopen",
    () => Engine.open(counting, engineOptions),
    () =>
      `${counting.counters.reads} reads (${counting.sstReads} of SSTs, ${fmt(counting.sstReadBytes / 1024)} KiB), ${counting.counters.lists} lists, ${counting.counters.logReads} log reads`,
  );
  const sstCount = reopened.stats().l0Ssts + reopened.stats().l1Ssts;
  results.reopen = {
    seconds: phases.at(-1)!.seconds,
    counters: { ...counting.counters },
    sstReads: counting.sstReads,
    sstReadBytes: counting.sstReadBytes,
    sstsRead: counting.sstsRead.size,
    sstCount,
    readsAllSsts: counting.sstsRead.size >= sstCount,
  };
  counting.reset();
  results.getsReopened = await phase("gets (reopened)", () => gets(reopened, GETS_REOPENED), latency);
  results.scansReopened = await phase("scans (reopened)", () => scans(reopened, SCANS_REOPENED), latency);
  results.statsReopened = reopened.stats();
  await reopened.close();
  await counting.close();
} finally {
  await rm(tempDir, { recursive: true, force: true });
}

const samples = await stopSampler();
for (const w of windows) {
  const p = phases[w.index]!;
  for (const [t, rss] of samples) {
    if (t < w.from || t > w.to) continue;
    p.samples++;
    p.peakRssMiB = Math.max(p.peakRssMiB, rss / MiB);
  }
}
/** One sample a second, as objects (biome keeps them as written; it would re-wrap number arrays). */
const timeline = samples
  .filter((_, i) => i % 10 === 0)
  .map(([t, rss]) => ({ ms: t - samples[0]![0], rssMiB: Math.round(rss / MiB) }));

// ---- report -----------------------------------------------------------------------------------------------------

const peak = Math.max(
  ...phases.map((p) => p.peakRssMiB),
  ...phases.map((p) => (Number.isNaN(p.hwmMiB) ? 0 : p.hwmMiB)),
);
printTable(
  `bench/engine/rss — ${new Date().toISOString().slice(0, 10)}, ${machine().cpu}, ${machine().cores} cores, ${ROWS.toLocaleString("en-US")} rows${SEQUENTIAL ? " (key order)" : ""}`,
  [
    "phase",
    "seconds",
    "peak RSS MiB (100 ms)",
    "VmHWM MiB",
    "end heap MiB",
    "end external MiB",
    "end arrayBuffers MiB",
    "detail",
  ],
  phases.map((p) => [
    p.phase,
    fmt(p.seconds, 1),
    fmt(p.peakRssMiB),
    fmt(p.hwmMiB),
    fmt(p.endHeapUsedMiB),
    fmt(p.endExternalMiB),
    fmt(p.endArrayBuffersMiB),
    p.detail,
  ]),
);
const reopen = results.reopen as { sstsRead: number; sstCount: number; readsAllSsts: boolean };
const pass = peak < RSS_TARGET_MIB;
console.log(
  `\nload: ${fmt(results.loadRowsPerSec as number)} rows/s; reopen read ${reopen.sstsRead} of ${reopen.sstCount} SSTs (${reopen.readsAllSsts ? "MISS: reads them all" : "pass: not all"})`,
);
console.log(`baseline RSS before opening (node + tsx loader): ${fmt(baselineRssMiB)} MiB`);
console.log(`peak RSS ${fmt(peak)} MiB, target < ${RSS_TARGET_MIB} MiB: ${pass ? "pass" : "MISS"}`);

writeResult("bench/results/engine-rss.json", {
  machine: machine(),
  config: {
    rows: ROWS,
    order: SEQUENTIAL ? "key" : "random",
    txnRows: TXN_ROWS,
    keyBytes: 16,
    valueBytes: VALUE_BYTES,
    engineOptions,
    gets: GETS,
    scans: SCANS,
    getsReopened: GETS_REOPENED,
    scansReopened: SCANS_REOPENED,
  },
  phases,
  baselineRssMiB,
  peakRssMiB: peak,
  targetMiB: RSS_TARGET_MIB,
  pass,
  ...results,
  timeline,
});
