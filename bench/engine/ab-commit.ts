/**
 * bench/engine/ab-commit: durable single-row commits (begin, put, commit) of several engine builds in one process,
 * in alternating rounds, so that a shared machine's load falls on every build alike: separate runs of
 * `profile.ts commit16 --no-sync` swung from 4.4 to 10 µs of CPU per commit at a load of 2-4, more than the
 * differences being measured. Each build is a source tree (a `git archive` of a commit unpacked next to a
 * node_modules link, or `.`) with its own module graph, engine and file:// store, opened without fdatasync (the
 * engine's own CPU, as profile.ts --no-sync; the rates are not durable figures). Rows as bench/engine's commit
 * phases: 16-byte keys under key space 0x41 (0x40 for one writer), 184-byte values.
 *
 * Run: npx tsx bench/engine/ab-commit.ts <root> [<root> …] [--writers N] [--rounds N] [--commits N] [--warmup N]
 *   e.g. npx tsx bench/engine/ab-commit.ts /tmp/old .
 *   --commits: commits per writer per round (default 100: 1,600 a round with 16 writers); --warmup: commits per
 *   writer before the measured rounds (default 800), for V8's optimising compiler.
 * Prints CPU µs per commit (median and minimum over the rounds) per build. The memtable is sized so that no flush
 * falls into the rounds. Not a benchmark of record (no peer): for comparing builds on the same machine.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { numberFlag } from "../lib.js";

const args = process.argv.slice(2);
const WRITERS = numberFlag("--writers", 16);
const ROUNDS = numberFlag("--rounds", 21);
const COMMITS = numberFlag("--commits", 100);
const WARMUP = numberFlag("--warmup", 800);
const roots = args
  .filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"))
  .map((a) => resolve(a));
if (roots.length === 0) throw new Error("usage: ab-commit.ts <root> [<root> …]");

interface EngineLike {
  begin(): { put(k: Uint8Array, v: Uint8Array): void; commit(): Promise<unknown> };
  stats(): { appends: number };
  close(): Promise<void>;
}

interface Build {
  label: string;
  engine: EngineLike;
  close(): Promise<void>;
  cpu: number[];
  perAppend: number[];
}

const load = (root: string, path: string) => import(pathToFileURL(join(root, path)).href);
const builds: Build[] = [];
let rowKey: ((i: number, space: number) => Uint8Array) | undefined;
let rowValue: ((i: number) => Uint8Array) | undefined;
const total = WRITERS * (WARMUP + ROUNDS * COMMITS);
for (const root of roots) {
  const { Engine } = await load(root, "src/engine/engine.ts");
  const { openFileStorage } = await load(root, "src/storage/file.ts");
  const rows = await load(root, "bench/rows.ts");
  rowKey ??= (i, space) => rows.u8(rows.rowKey(i, space));
  rowValue ??= (i) => rows.u8(rows.rowValue(i));
  const dir = await mkdtemp(join(tmpdir(), "twill-ab-commit-"));
  const storage = await openFileStorage(dir, { unsafeNoSync: true });
  // ~310 bytes of memtable per row (memtable.ts): room for every commit of the run, so no flush is measured.
  const memtableBytesMax = Math.max(16 * 1024 * 1024, total * 400);
  const engine = (await Engine.open(storage, { memtableBytesMax })) as EngineLike;
  builds.push({
    label: root === process.cwd() ? "." : root,
    engine,
    close: async () => {
      await engine.close();
      await storage.close();
      await rm(dir, { recursive: true, force: true });
    },
    cpu: [],
    perAppend: [],
  });
}

// Keys and values made before any round: the harness's allocations are not the engine's CPU.
const space = WRITERS === 1 ? 0x40 : 0x41;
const perWriter = WARMUP + ROUNDS * COMMITS;
const keys = Array.from({ length: WRITERS }, (_, w) =>
  Array.from({ length: perWriter }, (_, i) => rowKey!(w * 1_000_000 + i, space)),
);
const values = Array.from({ length: perWriter }, (_, i) => rowValue!(i));

async function loops(engine: EngineLike, from: number, to: number): Promise<void> {
  await Promise.all(
    keys.map(async (own) => {
      for (let i = from; i < to; i++) {
        const txn = engine.begin();
        txn.put(own[i]!, values[i]!);
        await txn.commit();
      }
    }),
  );
}

try {
  for (const b of builds) await loops(b.engine, 0, WARMUP);
  for (let r = 0; r < ROUNDS; r++) {
    const from = WARMUP + r * COMMITS;
    // Alternate the order too, so that no build always runs after the same one's garbage.
    for (const b of r % 2 === 0 ? builds : [...builds].reverse()) {
      const appends0 = b.engine.stats().appends;
      const cpu0 = process.cpuUsage();
      await loops(b.engine, from, from + COMMITS);
      const cpu = process.cpuUsage(cpu0);
      const n = WRITERS * COMMITS;
      b.cpu.push((cpu.user + cpu.system) / n);
      b.perAppend.push(n / (b.engine.stats().appends - appends0));
    }
  }
  const median = (a: number[]): number => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)]!;
  console.log(
    `${WRITERS} writers, ${ROUNDS} rounds of ${WRITERS} x ${COMMITS} commits per build (no fdatasync), load ${loadavg()[0]!.toFixed(2)}`,
  );
  console.log("build | CPU µs/commit median (min) | commits per append (median)");
  for (const b of builds) {
    console.log(
      `${b.label} | ${median(b.cpu).toFixed(2)} (${Math.min(...b.cpu).toFixed(2)}) | ${median(b.perAppend).toFixed(1)}`,
    );
  }
} finally {
  for (const b of builds) await b.close();
}
