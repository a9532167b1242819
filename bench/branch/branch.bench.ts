/**
 * bench/branch: the cost of a branch. In one process run:
 *
 *   1. Fork time and bytes written on file:// for a database of SMALL rows and of LARGE rows (10k and 1M; with
 *      --quick 10k and 100k), anchored against what an SQLite user does to "branch": copy the database file
 *      (better-sqlite3, checkpointed, same rows), which grows with the size. Target: fork time ratio
 *      LARGE/SMALL <= 1.5, each fork < 5 ms.
 *   2. Object writes of one fork on s3:// (when TWILL_TEST_S3_URL is set). Target: exactly one.
 *   3. Point-read latency on a branch at depth 1 and depth 5 (branches with no writes of their own: every read
 *      falls through to the base's data) versus the same reads on the base. Target <= 1.3x the base.
 *
 * A fork here is `engine.branch(name)`: the manifest write plus opening the branch as a writer (its log, the
 * branch's own SST namespace), measured from call to resolved; the branch is then closed and dropped (not timed).
 * Forks of the two sizes alternate, after untimed warm-up forks.
 *
 * Rows: 16-byte keys, 184-byte incompressible values, loaded in key order (as bench/engine does).
 * Run: npx tsx bench/branch/branch.bench.ts [--quick]
 */

import { copyFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Engine, type EngineOptions } from "../../src/engine/engine.js";
import { CountingStorage } from "../../src/storage/counting.js";
import { openStorage } from "../../src/storage/open.js";
import { prng } from "../../src/util/prng.js";
import { fmt, machine, percentile, printTable, writeResult } from "../lib.js";
import { rowKey as sharedRowKey, rowValue as sharedRowValue, u8 } from "../rows.js";

const quick = process.argv.includes("--quick");
const SMALL = 10_000;
const LARGE = quick ? 100_000 : 1_000_000;
const FORKS = quick ? 10 : 30;
const READS = quick ? 20_000 : 100_000;
const READ_ROUNDS = quick ? 3 : 5;
const OPTIONS: EngineOptions = {};

const rowKey = (i: number): Uint8Array => u8(sharedRowKey(i));
const rowValue = (i: number): Uint8Array => u8(sharedRowValue(i));

const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

async function loadTwill(engine: Engine, rows: number): Promise<void> {
  const batch = 50_000;
  for (let from = 0; from < rows; from += batch) {
    const txn = engine.begin();
    for (let i = from; i < Math.min(rows, from + batch); i++) txn.put(rowKey(i), rowValue(i));
    await txn.commit();
  }
}

function loadSqlite(path: string, rows: number): void {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.exec("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID");
  const insert = db.prepare("INSERT INTO kv VALUES (?, ?)");
  db.transaction(() => {
    for (let i = 0; i < rows; i++) insert.run(Buffer.from(rowKey(i)), Buffer.from(rowValue(i)));
  })();
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
}

interface ForkResult {
  rows: number;
  forkMsMedian: number;
  forkMsP90: number;
  bytesWritten: number;
  objectWrites: number;
  logAppends: number;
  sqliteCopyMs: number;
  sqliteCopyBytes: number;
}

/** A loaded database on file:// behind a CountingStorage, with the SQLite file of the same rows beside it. */
async function prepare(rows: number, dir: string) {
  const counting = new CountingStorage(await openStorage(`file://${join(dir, `twill-${rows}`)}`));
  const engine = await Engine.open(counting, OPTIONS);
  await loadTwill(engine, rows);
  await engine.flush();
  // Some recent rows only in the log and memtable, as in a live database.
  const tail = engine.begin();
  for (let i = 0; i < 100; i++) tail.put(rowKey(rows + i), rowValue(i));
  await tail.commit();
  const sqlitePath = join(dir, `sqlite-${rows}.db`);
  loadSqlite(sqlitePath, rows);
  return { rows, counting, engine, sqlitePath, times: [] as number[], bytes: 0, writes: 0, appends: 0 };
}
type Prepared = Awaited<ReturnType<typeof prepare>>;

async function forkOnce(p: Prepared, name: string, record: boolean): Promise<void> {
  p.counting.reset();
  const t = performance.now();
  const branch = await p.engine.branch(name);
  const ms = performance.now() - t;
  const c = p.counting.reset();
  if (record) {
    p.times.push(ms);
    p.bytes = Math.max(p.bytes, c.writeBytes + c.appendBytes);
    p.writes = Math.max(p.writes, c.writes + c.conditionalWrites);
    p.appends = Math.max(p.appends, c.appends);
  }
  await branch.close();
  await p.engine.dropBranch(name);
}

async function finish(p: Prepared): Promise<ForkResult> {
  await p.engine.close();
  await p.counting.close();
  const copies: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    copyFileSync(p.sqlitePath, `${p.sqlitePath}.branch${i}`);
    copies.push(performance.now() - t);
  }
  const sorted = [...p.times].sort((a, b) => a - b);
  return {
    rows: p.rows,
    forkMsMedian: percentile(sorted, 50),
    forkMsP90: percentile(sorted, 90),
    bytesWritten: p.bytes,
    objectWrites: p.writes,
    logAppends: p.appends,
    sqliteCopyMs: median(copies),
    sqliteCopyBytes: statSync(p.sqlitePath).size,
  };
}

/** Forks of the two sizes alternate (the shared VM's load drifts), after untimed warm-up forks of each. */
async function forksOnFile(dir: string): Promise<[ForkResult, ForkResult]> {
  const small = await prepare(SMALL, dir);
  const large = await prepare(LARGE, dir);
  for (let w = 0; w < 3; w++) {
    await forkOnce(small, `warm${w}`, false);
    await forkOnce(large, `warm${w}`, false);
  }
  for (let f = 0; f < FORKS; f++) {
    await forkOnce(f % 2 === 0 ? small : large, `fork${f}a`, true);
    await forkOnce(f % 2 === 0 ? large : small, `fork${f}b`, true);
  }
  return [await finish(small), await finish(large)];
}

async function forkOnS3(): Promise<
  { rows: number; objectWrites: number; bytesWritten: number; forkMs: number } | undefined
> {
  const base = process.env.TWILL_TEST_S3_URL;
  if (!base) return undefined;
  const url = `${base.replace(/\/$/, "")}/bench-branch-${Date.now().toString(36)}`;
  const counting = new CountingStorage(await openStorage(url));
  const engine = await Engine.open(counting, OPTIONS);
  await loadTwill(engine, SMALL);
  await engine.flush();
  counting.reset();
  const t = performance.now();
  const branch = await engine.branch("s3fork");
  const forkMs = performance.now() - t;
  const c = counting.reset();
  await branch.close();
  await engine.dropBranch("s3fork");
  await engine.close();
  // Leave nothing behind on the server.
  for await (const key of counting.list("")) await counting.delete(key);
  await counting.close();
  return { rows: SMALL, objectWrites: c.writes + c.conditionalWrites, bytesWritten: c.writeBytes, forkMs };
}

async function pointReads(
  dir: string,
): Promise<{ base: number; depth1: number; depth5: number; rows: number }> {
  const storage = await openStorage(`file://${join(dir, "reads")}`);
  const main = await Engine.open(storage, OPTIONS);
  const rows = LARGE;
  await loadTwill(main, rows);
  await main.flush();
  const chain: Engine[] = [main];
  for (let d = 1; d <= 5; d++) chain.push(await chain[d - 1]!.branch(`depth${d}`));
  const keys = (() => {
    const rand = prng(7);
    return Array.from({ length: READS }, () => rowKey(Math.floor(rand() * rows)));
  })();
  const run = async (engine: Engine): Promise<number> => {
    const samples = new Array<number>(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const t = performance.now();
      const v = await engine.read(keys[i]!);
      samples[i] = performance.now() - t;
      if (v === undefined) throw new Error("missing row");
    }
    return percentile(
      samples.sort((a, b) => a - b),
      50,
    );
  };
  // Warm the shared block cache once, then alternate the three readers over several rounds.
  await run(main);
  const out = { base: [] as number[], depth1: [] as number[], depth5: [] as number[] };
  for (let r = 0; r < READ_ROUNDS; r++) {
    out.base.push(await run(main));
    out.depth1.push(await run(chain[1]!));
    out.depth5.push(await run(chain[5]!));
  }
  await main.close();
  await storage.close();
  return {
    rows,
    base: median(out.base) * 1000,
    depth1: median(out.depth1) * 1000,
    depth5: median(out.depth5) * 1000,
  };
}

const dir = await mkdtemp(join(tmpdir(), "twill-bench-branch-"));
try {
  console.log(`bench/branch${quick ? " --quick" : ""}: forks of ${SMALL} and ${LARGE} rows on file://`);
  const [small, large] = await forksOnFile(dir);
  const s3 = await forkOnS3();
  const reads = await pointReads(dir);

  printTable(
    "Fork (twill: engine.branch on file://; sqlite: copy of the checkpointed database file)",
    [
      "rows",
      "twill fork p50 ms",
      "twill fork p90 ms",
      "twill bytes written",
      "objects written",
      "sqlite copy ms",
      "sqlite bytes",
      "sqlite/twill time",
    ],
    [small, large].map((r) => [
      fmt(r.rows),
      fmt(r.forkMsMedian, 2),
      fmt(r.forkMsP90, 2),
      fmt(r.bytesWritten),
      fmt(r.objectWrites),
      fmt(r.sqliteCopyMs, 2),
      fmt(r.sqliteCopyBytes),
      `${fmt(r.sqliteCopyMs / r.forkMsMedian, 1)}x`,
    ]),
  );
  const ratio = large.forkMsMedian / small.forkMsMedian;
  printTable(
    "Point reads (p50 µs, block cache warm, same keys; branches have no writes of their own)",
    ["reader", "p50 µs", "vs base"],
    [
      ["base (main)", fmt(reads.base, 2), "1.00x"],
      ["branch depth 1", fmt(reads.depth1, 2), `${fmt(reads.depth1 / reads.base, 2)}x`],
      ["branch depth 5", fmt(reads.depth5, 2), `${fmt(reads.depth5 / reads.base, 2)}x`],
    ],
  );
  const targets = [
    { target: `fork time ${LARGE}/${SMALL} rows <= 1.5`, value: ratio, met: ratio <= 1.5 },
    { target: "fork < 5 ms (small)", value: small.forkMsMedian, met: small.forkMsMedian < 5 },
    { target: "fork < 5 ms (large)", value: large.forkMsMedian, met: large.forkMsMedian < 5 },
    {
      target: "one object written per fork (file)",
      value: large.objectWrites,
      met: large.objectWrites === 1,
    },
    ...(s3
      ? [{ target: "one object written per fork (s3)", value: s3.objectWrites, met: s3.objectWrites === 1 }]
      : []),
    {
      target: "point read depth 1 <= 1.3x base",
      value: reads.depth1 / reads.base,
      met: reads.depth1 / reads.base <= 1.3,
    },
    {
      target: "point read depth 5 <= 1.3x base",
      value: reads.depth5 / reads.base,
      met: reads.depth5 / reads.base <= 1.3,
    },
  ];
  printTable(
    "Targets",
    ["target", "measured", "met"],
    targets.map((t) => [t.target, fmt(t.value, 2), t.met ? "yes" : "NO"]),
  );
  if (s3)
    console.log(
      `\ns3:// fork of ${fmt(s3.rows)} rows: ${s3.objectWrites} object write(s), ${s3.bytesWritten} bytes, ${fmt(s3.forkMs, 1)} ms`,
    );
  else console.log("\ns3:// skipped (TWILL_TEST_S3_URL not set)");
  writeResult(join(import.meta.dirname, "..", "results", quick ? "branch-quick.json" : "branch.json"), {
    machine: machine(),
    quick,
    forks: { small, large, ratio },
    s3: s3 ?? null,
    pointReadsP50Us: reads,
    targets,
  });
} finally {
  await rm(dir, { recursive: true, force: true });
}
