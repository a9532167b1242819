/**
 * bench/engine/s3-blocks: what the data block size does to reads on s3://, where every block the cache lacks is a
 * ranged GET. For each block size: a load of ROWS bench rows (16-byte keys, 184-byte values) in one transaction,
 * flush and compaction, then a reopen (cold cache) with a block cache far smaller than the data, so that reads
 * miss as they do on a database larger than memory: random point gets, and 1,000-row range scans from random
 * keys. Counts the storage reads each took. Against the project's own S3 server (Ceph RGW, scripts/s3-server.sh);
 * the latencies are a local server's, a fraction of a real region's, so the request counts are the figure that
 * carries over. The same reads on file:// are bench/engine/ab-get.ts's business (4 KiB wins there).
 *
 * Run: npm run s3:start; eval "$(bash scripts/s3-server.sh env)"; npm run bench:engine:s3 [-- --rows N]
 * Not a peer comparison (no other system stores on S3 here): it is the measurement behind the per-backend
 * default of `blockBytesTarget` (src/engine/engine.ts).
 */

import { Engine } from "../../src/engine/engine.js";
import { CountingStorage } from "../../src/storage/counting.js";
import { openStorage } from "../../src/storage/open.js";
import { prng } from "../../src/util/prng.js";
import { fmt, machine, numberFlag, percentile, printTable, writeResult } from "../lib.js";
import { rowKey, rowValue, u8 } from "../rows.js";

const ROWS = numberFlag("--rows", 100_000);
const GETS = numberFlag("--gets", 1000);
const SCANS = numberFlag("--scans", 50);
const SCAN_ROWS = 1000;
const CACHE_BYTES = 1024 * 1024;
const base = process.env.TWILL_TEST_S3_URL;
if (!base)
  throw new Error('TWILL_TEST_S3_URL is not set: npm run s3:start; eval "$(bash scripts/s3-server.sh env)"');

interface Row {
  blockBytes: number;
  phase: string;
  ops: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  readsPerOp: number;
  kibPerOp: number;
}
const rows: Row[] = [];
const run = Date.now().toString(36);

for (const blockBytes of [4096, 16384, 65536]) {
  const url = `${base.replace(/\/$/, "")}/bench-s3-blocks-${run}-${blockBytes}`;
  {
    const storage = await openStorage(url);
    const engine = await Engine.open(storage, { blockBytesTarget: blockBytes });
    const txn = engine.begin();
    for (let i = 0; i < ROWS; i++) txn.put(u8(rowKey(i)), u8(rowValue(i)));
    await txn.commit();
    await engine.flush();
    await engine.compact();
    await engine.close();
    await storage.close();
  }
  const storage = new CountingStorage(await openStorage(url));
  const engine = await Engine.open(storage, {
    blockBytesTarget: blockBytes,
    blockCacheBytesMax: CACHE_BYTES,
  });
  const rand = prng(11);
  const measure = async (phase: string, n: number, op: (i: number) => Promise<void>) => {
    const reads0 = storage.counters.reads;
    const bytes0 = storage.counters.readBytes;
    const ms: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await op(i);
      ms.push(performance.now() - t);
    }
    const total = performance.now() - t0;
    ms.sort((a, b) => a - b);
    rows.push({
      blockBytes,
      phase,
      ops: n,
      opsPerSec: (n / total) * 1000,
      p50Ms: percentile(ms, 50),
      p99Ms: percentile(ms, 99),
      readsPerOp: (storage.counters.reads - reads0) / n,
      kibPerOp: (storage.counters.readBytes - bytes0) / n / 1024,
    });
  };
  // Open every SST reader first, so that the figures are of data blocks only.
  for (let i = 0; i < 50; i++) await engine.read(u8(rowKey(Math.floor(rand() * ROWS))));
  await measure("point get", GETS, async () => {
    if ((await engine.read(u8(rowKey(Math.floor(rand() * ROWS))))) === undefined)
      throw new Error("missing key");
  });
  await measure(`range scan ${SCAN_ROWS} rows`, SCANS, async () => {
    let n = 0;
    const start = u8(rowKey(Math.floor(rand() * (ROWS - SCAN_ROWS))));
    for await (const _ of engine.readRange({ start, limit: SCAN_ROWS })) n++;
    if (n !== SCAN_ROWS) throw new Error(`scan returned ${n} rows`);
  });
  await engine.close();
  await storage.close();
}

printTable(
  `bench/engine/s3-blocks — ${new Date().toISOString().slice(0, 10)}, ${machine().cpu}, ${fmt(ROWS)} rows, block cache ${CACHE_BYTES / 1024} KiB, ${base}`,
  ["block", "read", "ops", "ops/s", "p50 ms", "p99 ms", "GETs/op", "KiB read/op"],
  rows.map((r) => [
    `${r.blockBytes / 1024} KiB`,
    r.phase,
    String(r.ops),
    fmt(r.opsPerSec),
    fmt(r.p50Ms, 2),
    fmt(r.p99Ms, 2),
    fmt(r.readsPerOp, 1),
    fmt(r.kibPerOp, 1),
  ]),
);
writeResult("bench/results/engine-s3-blocks.json", {
  machine: machine(),
  rows: ROWS,
  cacheBytes: CACHE_BYTES,
  results: rows,
});
