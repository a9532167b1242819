/** Shared helpers for the bench/ scripts: timing, percentiles, a printed table and a JSON result file. */

import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname } from "node:path";

/** The number after `name` on the command line (`--rows 1000`), or `fallback` when `name` is not there. */
export function numberFlag(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

export function percentile(sortedMs: number[], p: number): number {
  if (sortedMs.length === 0) return Number.NaN;
  const i = Math.min(sortedMs.length - 1, Math.max(0, Math.ceil((p / 100) * sortedMs.length) - 1));
  return sortedMs[i]!;
}

export interface LatencySummary {
  ops: number;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
}

/** Runs `op` `count` times one after another and summarises the per-call latency. */
export async function measure(
  count: number,
  op: (i: number) => Promise<unknown> | unknown,
): Promise<LatencySummary> {
  const samples = new Array<number>(count);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await op(i);
    samples[i] = performance.now() - t;
  }
  const totalMs = performance.now() - start;
  samples.sort((a, b) => a - b);
  return {
    ops: count,
    opsPerSec: (count / totalMs) * 1000,
    p50Us: percentile(samples, 50) * 1000,
    p99Us: percentile(samples, 99) * 1000,
  };
}

export function machine(): Record<string, string | number> {
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
  };
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return "-";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function printTable(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? "").length)));
  const line = (r: string[]) =>
    `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(" | ")} |`;
  console.log(`\n${title}\n`);
  console.log(line(header));
  console.log(`|${widths.map((w, c) => (c === 0 ? `-${"-".repeat(w)}-` : `-${"-".repeat(w)}:`)).join("|")}|`);
  for (const r of cells.slice(1)) console.log(line(r));
}

export function writeResult(path: string, result: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\nresult written to ${path}`);
}
