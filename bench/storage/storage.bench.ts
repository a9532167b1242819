/**
 * bench/storage: the floor later issues build on. Per backend: object write and read latency and throughput
 * (4 KiB and 1 MiB objects), writeIfAbsent latency, and durable log append latency (one 128-byte frame per append,
 * and 16-frame batches). s3:// runs when TWILL_TEST_S3_URL is set (npm run s3:start; eval "$(bash scripts/s3-server.sh env)").
 *
 * Run: npm run bench:storage [-- --quick]
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StorageOptions } from "../../src/storage/open.js";
import { openStorage } from "../../src/storage/open.js";
import { fmt, type LatencySummary, machine, measure, printTable, writeResult } from "../lib.js";

const quick = process.argv.includes("--quick");
const n = (full: number) => (quick ? Math.max(10, Math.floor(full / 10)) : full);

interface Target {
  name: string;
  url: string;
  options: StorageOptions;
}

const tempDir = await mkdtemp(join(tmpdir(), "twill-bench-storage-"));
const targets: Target[] = [
  { name: "memory://", url: "memory://bench", options: {} },
  { name: "file://", url: `file://${tempDir}`, options: {} },
];
if (process.env.TWILL_TEST_S3_URL) {
  targets.push({
    name: "s3:// (Ceph RGW, loopback)",
    url: `${process.env.TWILL_TEST_S3_URL.replace(/\/$/, "")}/bench-${Date.now()}`,
    options: {
      endpoint: process.env.TWILL_S3_ENDPOINT,
      region: process.env.AWS_REGION ?? "us-east-1",
      forcePathStyle: true,
    },
  });
} else {
  console.warn("TWILL_TEST_S3_URL not set: s3:// is not measured");
}

const small = new Uint8Array(4096).fill(1);
const large = new Uint8Array(1024 * 1024).fill(2);
const frame = new Uint8Array(128).fill(3);
const batch16 = Array.from({ length: 16 }, () => frame);

interface Row {
  backend: string;
  measure: string;
  summary: LatencySummary;
  mbPerSec?: number;
}
const rows: Row[] = [];

for (const target of targets) {
  const storage = await openStorage(target.url, target.options);
  const add = (measureName: string, summary: LatencySummary, bytesPerOp?: number) =>
    rows.push({
      backend: target.name,
      measure: measureName,
      summary,
      ...(bytesPerOp ? { mbPerSec: (summary.opsPerSec * bytesPerOp) / 1024 ** 2 } : {}),
    });

  add("write 4 KiB", await measure(n(500), (i) => storage.write(`small/${i}`, small)), small.length);
  add("read 4 KiB", await measure(n(500), (i) => storage.read(`small/${i % n(500)}`)), small.length);
  add(
    "read 512 B range",
    await measure(n(500), (i) => storage.read(`small/${i % n(500)}`, { offset: 1024, length: 512 })),
    512,
  );
  add("write 1 MiB", await measure(n(50), (i) => storage.write(`large/${i}`, large)), large.length);
  add("read 1 MiB", await measure(n(50), (i) => storage.read(`large/${i % n(50)}`)), large.length);
  add(
    "writeIfAbsent 4 KiB",
    await measure(n(300), (i) => storage.writeIfAbsent(`cas/${i}`, small)),
    small.length,
  );
  const log = await storage.openLog("bench");
  add("append 1×128 B (durable)", await measure(n(500), () => log.append([frame])), frame.length);
  add("append 16×128 B (durable)", await measure(n(300), () => log.append(batch16)), frame.length * 16);
  await log.close();
  await storage.close();
}
await rm(tempDir, { recursive: true, force: true });

printTable(
  `bench/storage — ${new Date().toISOString().slice(0, 10)}, ${machine().cpu}, ${machine().cores} cores${quick ? " (quick)" : ""}`,
  ["backend", "operation", "ops", "ops/s", "MiB/s", "p50 µs", "p99 µs"],
  rows.map((r) => [
    r.backend,
    r.measure,
    r.summary.ops,
    fmt(r.summary.opsPerSec),
    r.mbPerSec === undefined ? "-" : fmt(r.mbPerSec, 1),
    fmt(r.summary.p50Us),
    fmt(r.summary.p99Us),
  ]),
);
writeResult("bench/results/storage.json", { machine: machine(), quick, rows });
