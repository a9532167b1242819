/**
 * bench/engine: the Twill engine on file:// against SQLite (better-sqlite3, WAL, synchronous=FULL) in the same
 * process, on the same data. Measures durable single-row commits (1 writer and 16 concurrent writers), a bulk load
 * of N rows in one transaction, point gets and 1,000-row range scans on the loaded database, and checks the
 * targets of the engine issue.
 *
 * Rows: 16-byte keys (8-byte big-endian row number, then 8 fixed bytes) and 184-byte incompressible values. The
 * bulk load inserts in key order (the order SQLite's B-tree likes best). Random keys come from a seeded PRNG, so
 * both systems get the same sequence. The durable-commit measures alternate the two systems over several rounds
 * (the VM's fsync latency drifts), after unmeasured warm-up rounds of the same loops (WARMUP_ROUNDS: V8 optimises
 * Twill's commit path only after a few thousand commits; the warm-up rounds are reported as info rows), and
 * report the pooled samples; so do the point gets and range scans, with both
 * databases loaded and open. Point gets are measured on SQLite twice: with better-sqlite3's default page cache
 * (16 MB, the target's reference) and, as an info row, with a page cache of Twill's block-cache size (64 MiB).
 *
 * Run: npx tsx bench/engine/engine.bench.ts [--quick]    (--quick: 100k rows and fewer operations)
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import Database from "better-sqlite3";
import { Engine, type EngineOptions } from "../../src/engine/engine.js";
import { openStorage } from "../../src/storage/open.js";
import type { Storage } from "../../src/storage/types.js";
import { prng } from "../../src/util/prng.js";
import { fmt, type LatencySummary, machine, measure, percentile, printTable, writeResult } from "../lib.js";
import { rowKey, rowValue, u8, VALUE_BYTES } from "../rows.js";

const quick = process.argv.includes("--quick");
const ROWS = quick ? 100_000 : 1_000_000;
const ROUNDS = quick ? 2 : 4;
/**
 * Unmeasured rounds of the durable-commit loops before the measured ones, for both systems. Twill's commit path is
 * JavaScript that V8 optimises only after a few thousand commits: in a replica of this phase (2026-12-01, load
 * 4-5, no fsync), Twill's CPU per commit fell round by round from 58-110 µs (1 writer) and 40-90 µs (16 writers)
 * in the first two rounds to 21-30 and 4-7 µs in the fourth, and the 1-writer loop was still at 18 µs after three
 * warm-up rounds but at 9-12 µs (SQLite 13-15 µs) after six, while SQLite's native code runs at its speed from the
 * first insert. Without warm-up the rows measured mostly V8's compiler; the warm-up rounds are still reported, as
 * info rows.
 */
const WARMUP_ROUNDS = quick ? 2 : 6;
/**
 * Measured rounds of the durable-commit loops (500 commits of 1 writer, 16 x 50 of 16 writers each): eight, so that
 * a burst of another process's fsyncs on this shared disk lands on both systems more evenly (at four, single
 * multi-millisecond syncs decided a ratio). The reads keep ROUNDS.
 */
const COMMIT_ROUNDS = quick ? 2 : 8;
const COMMITS_1 = quick ? 400 : 4_000;
const WRITERS = 16;
const COMMITS_PER_WRITER = quick ? 40 : 400;
const GETS = quick ? 20_000 : 100_000;
const SCANS = quick ? 200 : 1_000;
const SCAN_ROWS = 1_000;

// ---- data -------------------------------------------------------------------------------------------------------

// Bulk rows live under key space 0x00; the commit benchmarks write under 0x40 (1 writer) and 0x41 (16 writers).

function randomKeys(count: number, seed: number): Buffer[] {
  const rand = prng(seed);
  return Array.from({ length: count }, () => rowKey(Math.floor(rand() * ROWS)));
}

function summarise(samplesMs: number[], totalMs: number): LatencySummary {
  samplesMs.sort((a, b) => a - b);
  return {
    ops: samplesMs.length,
    opsPerSec: (samplesMs.length / totalMs) * 1000,
    p50Us: percentile(samplesMs, 50) * 1000,
    p99Us: percentile(samplesMs, 99) * 1000,
  };
}

/**
 * GC pauses (count, ms) that began inside the windows `during` timed. All of this process's pauses count, so a
 * system's rounds are charged what the rounds before left behind as well as what they allocated. Point gets are
 * judged on the mean, and a pause lands on the few gets it stalls. Entries reach the observer late, so they are
 * kept with their start times and matched to the windows at the end.
 */
class GcPauses {
  private static readonly pauses: { start: number; ms: number }[] = [];
  private static readonly observer = (() => {
    const o = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) GcPauses.pauses.push({ start: e.startTime, ms: e.duration });
    });
    o.observe({ entryTypes: ["gc"] });
    return o;
  })();
  private readonly windows: [number, number][] = [];
  async during<T>(run: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await run();
    } finally {
      this.windows.push([start, performance.now()]);
    }
  }
  /** Call after the last window, once the observer has had a turn of the event loop. */
  summary(): { count: number; ms: number } {
    let count = 0;
    let ms = 0;
    for (const p of GcPauses.pauses) {
      if (this.windows.some(([a, b]) => p.start >= a && p.start < b)) {
        count++;
        ms += p.ms;
      }
    }
    return { count, ms };
  }
  static close(): void {
    GcPauses.observer.disconnect();
  }
}

/** Latency samples and wall time, accumulated over several rounds. */
class Samples {
  readonly ms: number[] = [];
  totalMs = 0;
  /** Process CPU time (all threads: a system's GC helpers count) over the rounds, in µs. */
  cpuUs = 0;
  summary(): LatencySummary {
    return summarise([...this.ms], this.totalMs);
  }
  /** CPU µs per operation: steadier than wall time on a shared machine, where a preempted operation takes ms. */
  cpuPerOp(): number {
    return this.cpuUs / this.ms.length;
  }
}

/**
 * `writers` async loops, each running `perWriter` operations one after another; with writers = 1 that is a plain
 * sequential loop. Adds per-operation latency and the wall time to `into`.
 */
async function runLoops(
  into: Samples,
  writers: number,
  perWriter: number,
  op: (writer: number, i: number) => Promise<unknown> | unknown,
): Promise<void> {
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; i < perWriter; i++) {
        const t = performance.now();
        await op(w, i);
        into.ms.push(performance.now() - t);
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  into.cpuUs += cpu.user + cpu.system;
  into.totalMs += performance.now() - start;
}

function bulkSummary(totalMs: number): LatencySummary {
  return { ops: ROWS, opsPerSec: (ROWS / totalMs) * 1000, p50Us: Number.NaN, p99Us: Number.NaN };
}

const gc = (globalThis as { gc?: () => void }).gc;
function collect(): void {
  gc?.();
}

// ---- results ----------------------------------------------------------------------------------------------------

interface Row {
  system: "sqlite" | "twill";
  measure: string;
  summary: LatencySummary;
  note?: string;
}
const rows: Row[] = [];
const add = (system: Row["system"], measureName: string, summary: LatencySummary, note?: string) => {
  rows.push({ system, measure: measureName, summary, ...(note ? { note } : {}) });
  const s = summary;
  console.log(
    `  ${system.padEnd(6)} ${measureName.padEnd(38)} ${fmt(s.opsPerSec).padStart(12)} ops/s  p50 ${fmt(s.p50Us, 1)} µs  p99 ${fmt(s.p99Us, 1)} µs`,
  );
};
const find = (system: Row["system"], measureName: string) =>
  rows.find((r) => r.system === system && r.measure === measureName)?.summary;

const M = {
  commit1: "durable commit, 1 writer",
  commit16: `durable commit, ${WRITERS} writers`,
  commit1Warmup: "durable commit, 1 writer, warm-up (info)",
  commit16Warmup: `durable commit, ${WRITERS} writers, warm-up (info)`,
  bulk: `bulk load ${ROWS.toLocaleString("en-US")} rows, 1 txn`,
  getSst: "point get (SSTs, after flush+compact)",
  getSst64: "point get, SQLite page cache 64 MiB (info)",
  getMem: "point get (memtable-resident)",
  scanSst: `range scan ${SCAN_ROWS} rows (SSTs)`,
  scanMem: `range scan ${SCAN_ROWS} rows (memtable)`,
};

const tempDir = await mkdtemp(join(tmpdir(), "twill-bench-engine-"));
console.log(`bench/engine: ${ROWS} rows${quick ? " (quick)" : ""}, temp dir ${tempDir}`);
// The bulk loads' keys exist only around the loads: held for the whole run, their 2M small objects (a Buffer and a
// view per row) were harness memory that every V8 full GC of the engine under test marked, in the commit and
// point-get phases too (about 20% of the point-get rate in bench/engine/profile.ts --ballast); SQLite, which
// allocates nothing per operation, never paid for them.
let bulkKeys: Buffer[] = [];
let bulkKeysU8: Uint8Array[] = [];
function makeBulkKeys(): void {
  bulkKeys = Array.from({ length: ROWS }, (_, i) => rowKey(i));
  bulkKeysU8 = bulkKeys.map(u8);
}
function dropBulkKeys(): void {
  bulkKeys = [];
  bulkKeysU8 = [];
}
const getKeys = randomKeys(GETS, 7);
const scanKeys = randomKeys(SCANS, 8);

// ---- durable commits: both systems open, interleaved rounds (the VM's fsync latency drifts) ----------------------

const db = new Database(join(tempDir, "sqlite.db"));
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.exec("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID");
const insert = db.prepare("INSERT INTO kv (k, v) VALUES (?, ?)");
const twillStorage: Storage = await openStorage(`file://${join(tempDir, "twill")}`);
const engine = await Engine.open(twillStorage);
{
  const s1 = new Samples();
  const s16 = new Samples();
  const t1 = new Samples();
  const t16 = new Samples();
  // The warm-up rounds' samples, kept apart (info rows).
  const w1 = { sqlite: new Samples(), twill: new Samples() };
  const w16 = { sqlite: new Samples(), twill: new Samples() };
  const per1 = COMMITS_1 / COMMIT_ROUNDS;
  const per16 = COMMITS_PER_WRITER / COMMIT_ROUNDS;
  const twillCommit = async (key: Buffer, value: Buffer) => {
    const txn = engine.begin();
    txn.put(u8(key), u8(value));
    await txn.commit();
  };
  let appends16 = 0;
  // Warm-up rounds first (r < 0), on keys of their own, then the measured rounds.
  for (let r = -WARMUP_ROUNDS; r < COMMIT_ROUNDS; r++) {
    const warm = r < 0;
    const k = r + WARMUP_ROUNDS;
    await runLoops(warm ? w1.sqlite : s1, 1, per1, (_, i) =>
      insert.run(rowKey(k * per1 + i, 0x40), rowValue(i)),
    );
    await runLoops(warm ? w1.twill : t1, 1, per1, (_, i) =>
      twillCommit(rowKey(k * per1 + i, 0x40), rowValue(i)),
    );
    await runLoops(warm ? w16.sqlite : s16, WRITERS, per16, (w, i) =>
      insert.run(rowKey(w * 1_000_000 + k * per16 + i, 0x41), rowValue(i)),
    );
    const before = engine.stats().appends;
    await runLoops(warm ? w16.twill : t16, WRITERS, per16, (w, i) =>
      twillCommit(rowKey(w * 1_000_000 + k * per16 + i, 0x41), rowValue(i)),
    );
    if (!warm) appends16 += engine.stats().appends - before;
  }
  const warmNote = `warm-up rounds (${WARMUP_ROUNDS}) before the measured ones, not in the targets`;
  add("sqlite", M.commit1Warmup, w1.sqlite.summary(), warmNote);
  add("twill", M.commit1Warmup, w1.twill.summary(), warmNote);
  add("sqlite", M.commit16Warmup, w16.sqlite.summary(), warmNote);
  add("twill", M.commit16Warmup, w16.twill.summary(), warmNote);
  // Process CPU per commit (all threads, the fdatasync's system time included): steadier than the rate here.
  const cpu = (x: Samples) => `CPU ${fmt(x.cpuPerOp(), 1)} µs/op`;
  add("sqlite", M.commit1, s1.summary(), `one INSERT, autocommit; ${cpu(s1)}`);
  add("twill", M.commit1, t1.summary(), `begin, put, commit; ${cpu(t1)}`);
  add(
    "sqlite",
    M.commit16,
    s16.summary(),
    `SQLite is synchronous: the 16 loops' autocommits run one after another; ${cpu(s16)}`,
  );
  add(
    "twill",
    M.commit16,
    t16.summary(),
    `${fmt((WRITERS * COMMITS_PER_WRITER) / appends16, 1)} commits per log append (group commit); ${cpu(t16)}`,
  );
}

// ---- bulk loads, then gets and scans in interleaved rounds --------------------------------------------------------
//
// Both databases are loaded first and stay open, and the read measures alternate between the systems in ROUNDS
// rounds, as the durable commits do: the machine is shared, and a run that measured one system's reads in a busy
// minute and the other's in a quiet one would compare the load, not the engines.

const select = db.prepare("SELECT v FROM kv WHERE k = ?").pluck();
const range = db.prepare("SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?").raw();
makeBulkKeys();
{
  collect();
  const loadAll = db.transaction(() => {
    for (let i = 0; i < ROWS; i++) insert.run(bulkKeys[i], rowValue(i));
  });
  const t0 = performance.now();
  loadAll();
  const loadMs = performance.now() - t0;
  add("sqlite", M.bulk, bulkSummary(loadMs), "ops = rows; one transaction of prepared inserts");
  db.pragma("wal_checkpoint(TRUNCATE)");
}

async function twillGet(engine: Engine, i: number): Promise<void> {
  if ((await engine.read(getKeys[i]!)) === undefined) throw new Error("missing key");
}

async function twillScan(engine: Engine, i: number): Promise<void> {
  let n = 0;
  for await (const _ of engine.readRange({ start: scanKeys[i]!, limit: SCAN_ROWS })) n++;
  if (n === 0) throw new Error("empty scan");
}

async function bulkLoad(engine: Engine): Promise<number> {
  collect();
  const t0 = performance.now();
  const txn = engine.begin();
  for (let i = 0; i < ROWS; i++) txn.put(bulkKeysU8[i]!, u8(rowValue(i)));
  await txn.commit();
  return performance.now() - t0;
}

let twillStats: Record<string, unknown> = {};
/** CPU µs per point get from SSTs, for the targets table. */
const pointGetCpu = { twill: Number.NaN, sqlite: Number.NaN };
{
  const loadMs = await bulkLoad(engine);
  add("twill", M.bulk, bulkSummary(loadMs), "ops = rows; begin, N puts, commit (by ingest)");
  dropBulkKeys();

  const tf = performance.now();
  await engine.flush();
  await engine.compact();
  const settleMs = performance.now() - tf;
  console.log(`  twill  flush+compact after the load: ${fmt(settleMs)} ms`);
  const afterCompact = engine.stats();

  // SQLite as configured above keeps better-sqlite3's default page cache, 16 MB (cache_size = -16000), where Twill's
  // block cache is 64 MiB; both read the rest from the OS page cache. So that the comparison is fair in both
  // directions, a second connection with a page cache of Twill's size is measured in the same rounds (info row).
  const db64 = new Database(join(tempDir, "sqlite.db"));
  db64.pragma(`cache_size = -${64 * 1024}`);
  const select64 = db64.prepare("SELECT v FROM kv WHERE k = ?").pluck();
  // Warm-up of all, then the rounds.
  for (let i = 0; i < Math.min(GETS, 10_000); i++) select.get(getKeys[i]);
  for (let i = 0; i < Math.min(GETS, 10_000); i++) select64.get(getKeys[i]);
  for (let i = 0; i < Math.min(GETS, 10_000); i++) await twillGet(engine, i);
  const sg = new Samples();
  const sg64 = new Samples();
  const tg = new Samples();
  const sgGc = new GcPauses();
  const tgGc = new GcPauses();
  const ss = new Samples();
  const ts = new Samples();
  const getsPerRound = GETS / ROUNDS;
  const scansPerRound = SCANS / ROUNDS;
  for (let r = 0; r < ROUNDS; r++) {
    await sgGc.during(() =>
      runLoops(sg, 1, getsPerRound, (_, i) => select.get(getKeys[r * getsPerRound + i]!)),
    );
    await tgGc.during(() => runLoops(tg, 1, getsPerRound, (_, i) => twillGet(engine, r * getsPerRound + i)));
    await runLoops(sg64, 1, getsPerRound, (_, i) => select64.get(getKeys[r * getsPerRound + i]!));
    await runLoops(ss, 1, scansPerRound, (_, i) => {
      if (range.all(scanKeys[r * scansPerRound + i]!, SCAN_ROWS).length === 0) throw new Error("empty scan");
    });
    await runLoops(ts, 1, scansPerRound, (_, i) => twillScan(engine, r * scansPerRound + i));
  }
  await new Promise((resolve) => setTimeout(resolve, 20));
  const sgPauses = sgGc.summary();
  const tgPauses = tgGc.summary();
  const gcNote = (g: { count: number; ms: number }) =>
    `GC pauses in these rounds: ${g.count}, ${fmt(g.ms)} ms`;
  const cpuNote = (x: Samples) => `CPU ${fmt(x.cpuPerOp(), 2)} µs/op`;
  add(
    "sqlite",
    M.getSst,
    sg.summary(),
    `SELECT v FROM kv WHERE k = ?, default 16 MB page cache; ${cpuNote(sg)}; ${gcNote(sgPauses)}`,
  );
  add(
    "twill",
    M.getSst,
    tg.summary(),
    `engine.read(key), 64 MiB block cache; ${cpuNote(tg)}; ${gcNote(tgPauses)}`,
  );
  add("sqlite", M.getSst64, sg64.summary(), `the same SELECT, cache_size = -65536; ${cpuNote(sg64)}`);
  add("sqlite", M.scanSst, ss.summary(), "SELECT k, v ... WHERE k >= ? ORDER BY k LIMIT 1000");
  add("twill", M.scanSst, ts.summary(), "engine.readRange({ start, limit: 1000 })");
  twillStats = {
    afterCompact,
    afterReads: engine.stats(),
    flushAndCompactMs: settleMs,
    pointGetGcPauses: { twill: tgPauses, sqlite: sgPauses },
    pointGetCpuUsPerOp: { twill: tg.cpuPerOp(), sqlite: sg.cpuPerOp(), sqlite64MiB: sg64.cpuPerOp() },
  };
  pointGetCpu.twill = tg.cpuPerOp();
  pointGetCpu.sqlite = sg.cpuPerOp();
  db64.close();
  db.close();
  await engine.close();
  await twillStorage.close();
}

// Memtable-resident reads: the same rows in a memtable large enough to hold them (not the default options).
{
  // No ingest either: the load must land in the memtable, which is what this measures.
  const options: EngineOptions = {
    memtableBytesMax: 1024 ** 3,
    autoMaintenance: false,
    ingestBytesMin: Number.MAX_SAFE_INTEGER,
  };
  const storage = await openStorage(`file://${join(tempDir, "twill-mem")}`);
  const engine = await Engine.open(storage, options);
  makeBulkKeys();
  await bulkLoad(engine);
  dropBulkKeys();
  for (let i = 0; i < Math.min(GETS, 10_000); i++) await twillGet(engine, i);
  add(
    "twill",
    M.getMem,
    await measure(GETS, (i) => twillGet(engine, i)),
    "memtableBytesMax 1 GiB, autoMaintenance off, no ingest",
  );
  add(
    "twill",
    M.scanMem,
    await measure(SCANS, (i) => twillScan(engine, i)),
    "memtableBytesMax 1 GiB, autoMaintenance off, no ingest",
  );
  await engine.close();
  await storage.close();
}

GcPauses.close();
await rm(tempDir, { recursive: true, force: true });

// ---- report -----------------------------------------------------------------------------------------------------

const title = `bench/engine — ${new Date().toISOString().slice(0, 10)}, ${machine().cpu}, ${machine().cores} cores, ${ROWS.toLocaleString("en-US")} rows${quick ? " (quick)" : ""}`;
printTable(
  title,
  ["measure", "system", "ops", "ops/s", "p50 µs", "p99 µs", "note"],
  rows.map((r) => [
    r.measure,
    r.system,
    r.summary.ops,
    fmt(r.summary.opsPerSec),
    r.measure === M.bulk ? "-" : fmt(r.summary.p50Us, 1),
    r.measure === M.bulk ? "-" : fmt(r.summary.p99Us, 1),
    r.note ?? "",
  ]),
);

interface Target {
  target: string;
  measured: number;
  reference: number;
  required: number;
  ratio: number;
  pass: boolean;
}
const rate = (s: Row["system"], m: string) => find(s, m)?.opsPerSec ?? Number.NaN;
const ratioTarget = (target: string, measured: number, reference: number, required: number): Target => {
  const ratio = measured / reference;
  return { target, measured, reference, required, ratio, pass: ratio >= required };
};
const targets: Target[] = [
  ratioTarget(
    "durable commits/s ≥ SQLite (1 writer)",
    rate("twill", M.commit1),
    rate("sqlite", M.commit1),
    1,
  ),
  ratioTarget(
    `${WRITERS} concurrent ≥ 5× Twill 1 writer`,
    rate("twill", M.commit16),
    rate("twill", M.commit1),
    5,
  ),
  ratioTarget(
    `${WRITERS} concurrent ≥ SQLite ${WRITERS} loops (info)`,
    rate("twill", M.commit16),
    rate("sqlite", M.commit16),
    1,
  ),
  ratioTarget("point get ≥ 1× SQLite (SSTs)", rate("twill", M.getSst), rate("sqlite", M.getSst), 1),
  ratioTarget("point get CPU per op, SQLite / Twill (info)", pointGetCpu.sqlite, pointGetCpu.twill, 1),
  ratioTarget(
    "point get vs SQLite with a 64 MiB page cache (info)",
    rate("twill", M.getSst),
    rate("sqlite", M.getSst64),
    1,
  ),
  ratioTarget("point get ≥ 1× SQLite (memtable, info)", rate("twill", M.getMem), rate("sqlite", M.getSst), 1),
  ratioTarget(
    "range scan vs SQLite (info, no target)",
    rate("twill", M.scanSst),
    rate("sqlite", M.scanSst),
    0,
  ),
  ratioTarget("bulk load ≥ 300k rows/s", rate("twill", M.bulk), 300_000, 1),
];
printTable(
  "targets",
  ["target", "Twill", "reference", "ratio", "required", "result"],
  targets.map((t) => [
    t.target,
    fmt(t.measured),
    fmt(t.reference),
    `${fmt(t.ratio, 2)}×`,
    t.required === 0 ? "-" : `${t.required}×`,
    t.required === 0 ? "info" : t.pass ? "pass" : "MISS",
  ]),
);

writeResult("bench/results/engine.json", {
  machine: machine(),
  quick,
  config: {
    rows: ROWS,
    keyBytes: 16,
    valueBytes: VALUE_BYTES,
    commits1: COMMITS_1,
    writers: WRITERS,
    commitsPerWriter: COMMITS_PER_WRITER,
    commitRounds: COMMIT_ROUNDS,
    commitWarmupRounds: WARMUP_ROUNDS,
    gets: GETS,
    scans: SCANS,
    scanRows: SCAN_ROWS,
  },
  rows,
  targets,
  twillStats,
});
