/**
 * Does PGlite's file mode make a commit durable? Runs PGlite on a data directory (NODEFS) in a child process
 * under `strace -f`, in three modes (in memory; data dir with PGlite's default start flags, which include -F,
 * fsync=off; data dir started without -F, fsync=on), commits N single-row INSERTs in each, and counts the
 * fsync/fdatasync/sync_file_range/msync system calls the child made. A durable commit needs at least one per
 * commit (Twill and SQLite with synchronous=FULL make one). Prints a table and writes
 * bench/results/pglite-sync.json.
 *
 * Run: npx tsx bench/sql/pglite-sync-check.ts [N]   (needs strace; Linux)
 */

import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { fmt, machine, printTable, writeResult } from "../lib.js";

const COMMITS = Number(process.argv[2] ?? 300);
const SYNC_CALLS = ["fsync", "fdatasync", "sync_file_range", "msync"];

if (process.env.PGLITE_SYNC_CHILD) {
  // Child: one mode, N autocommit INSERTs, then report the rate and the fsync setting on stdout.
  const mode = process.env.PGLITE_SYNC_CHILD;
  const dir = await mkdtemp(join(tmpdir(), "twill-pglite-sync-"));
  try {
    const pg =
      mode === "memory"
        ? await PGlite.create()
        : await PGlite.create(join(dir, "pgdata"), {
            ...(mode === "dir-fsync-on"
              ? { startParams: PGlite.defaultStartParams.filter((p) => p !== "-F") }
              : {}),
          });
    await pg.exec("CREATE TABLE e (id int8 PRIMARY KEY, body text)");
    const fsync = (await pg.query<{ fsync: string }>("SHOW fsync")).rows[0]?.fsync;
    // The marker separates setup (initdb writes files) from the commits being counted.
    process.stderr.write("PGLITE-SYNC-START\n");
    const t = performance.now();
    for (let i = 0; i < COMMITS; i++) await pg.query("INSERT INTO e VALUES ($1, $2)", [i, "x".repeat(40)]);
    const ms = performance.now() - t;
    process.stderr.write("PGLITE-SYNC-END\n");
    await pg.close();
    process.stdout.write(`${JSON.stringify({ fsync, perSec: (COMMITS / ms) * 1000 })}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
} else {
  const rows: { mode: string; fsync: string; commits: number; syncCalls: number; perSec: number }[] = [];
  for (const mode of ["memory", "dir-default", "dir-fsync-on"]) {
    const trace = join(tmpdir(), `twill-pglite-sync-${mode}-${process.pid}.strace`);
    const r = spawnSync(
      "strace",
      [
        "-f",
        "-e",
        `trace=${SYNC_CALLS.join(",")},write`,
        "-e",
        "signal=none",
        "-o",
        trace,
        process.execPath,
        ...process.execArgv,
        process.argv[1]!,
        String(COMMITS),
      ],
      { env: { ...process.env, PGLITE_SYNC_CHILD: mode }, encoding: "utf8" },
    );
    if (r.error || r.status !== 0) {
      throw new Error(`strace run failed (is strace installed?): ${r.error?.message ?? r.stderr}`);
    }
    const lines = (await readFile(trace, "utf8")).split("\n");
    await rm(trace, { force: true });
    // Count sync calls between the child's two stderr markers (strace logs those writes too).
    const start = lines.findIndex((l) => l.includes("PGLITE-SYNC-START"));
    const end = lines.findIndex((l) => l.includes("PGLITE-SYNC-END"));
    if (start < 0 || end < 0) throw new Error("markers not found in the strace output");
    const syncCalls = lines
      .slice(start, end)
      .filter((l) => SYNC_CALLS.some((c) => new RegExp(`\\b${c}\\(`).test(l))).length;
    const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as { fsync: string; perSec: number };
    rows.push({ mode, fsync: out.fsync, commits: COMMITS, syncCalls, perSec: out.perSec });
  }
  printTable(
    "PGlite: sync system calls during autocommit INSERTs (under strace, so rates are slowed)",
    ["mode", "SHOW fsync", "commits", "fsync-family calls", "commits/s under strace"],
    rows.map((r) => [r.mode, r.fsync, r.commits, r.syncCalls, fmt(r.perSec)]),
  );
  const durable = rows.filter((r) => r.syncCalls >= r.commits).map((r) => r.mode);
  console.log(
    durable.length === 0
      ? "no PGlite mode syncs per commit: none is durable"
      : `modes with a sync per commit: ${durable.join(", ")}`,
  );
  writeResult("bench/results/pglite-sync.json", { machine: machine(), commits: COMMITS, rows, durable });
}
