/**
 * bench/engine/ab-get: point gets from SSTs of several engine builds in one process, in alternating rounds, so
 * that a shared machine's load falls on every build alike (separate runs of profile.ts at a load of 4-7 swung
 * by ±30%, more than the differences being measured). Each build is a source tree (for example a `git archive`
 * of a commit unpacked next to a node_modules link) with its own module graph, loaded with bench/engine's rows
 * (1M by default: 16-byte keys, 184-byte values), flushed and compacted, then read with one seeded sequence of
 * random keys.
 *
 * Run: npx tsx bench/engine/ab-get.ts <root>:<blockBytes> [<root>:<blockBytes> …] [--rows N] [--rounds N]
 *   e.g. npx tsx bench/engine/ab-get.ts /tmp/old:4096 .:4096 .:16384
 * Prints CPU and wall µs per get (median and minimum over the rounds) and the block cache hit rate per build.
 * Not a benchmark of record (no peer): for comparing builds and block sizes on the same machine.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { numberFlag } from "../lib.js";

const args = process.argv.slice(2);
const ROWS = numberFlag("--rows", 1_000_000);
const ROUNDS = numberFlag("--rounds", 10);
const GETS_PER_ROUND = 20_000;
const builds = args
  .filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"))
  .map((a) => {
    const at = a.lastIndexOf(":");
    return { root: resolve(a.slice(0, at)), blockBytes: Number(a.slice(at + 1)) };
  });
if (builds.length === 0) throw new Error("usage: ab-get.ts <root>:<blockBytes> …");

/** What is used of a build: its own Engine and storage, so no type is shared across builds. */
interface Build {
  label: string;
  read(key: Uint8Array): Promise<Uint8Array | undefined>;
  hitRate(): number;
  close(): Promise<void>;
  cpu: number[];
  wall: number[];
}

interface EngineLike {
  begin(): { put(k: Uint8Array, v: Uint8Array): void; commit(): Promise<unknown> };
  flush(): Promise<unknown>;
  compact(): Promise<unknown>;
  read(key: Uint8Array): Promise<Uint8Array | undefined>;
  stats(): { blockCache: { hits: number; misses: number } };
  close(): Promise<void>;
}

const load = (root: string, path: string) => import(pathToFileURL(join(root, path)).href);
const loaded: Build[] = [];
let rowKey: ((i: number) => Uint8Array) | undefined;
for (const { root, blockBytes } of builds) {
  const { Engine } = await load(root, "src/engine/engine.ts");
  const { openStorage } = await load(root, "src/storage/open.ts");
  const rows = await load(root, "bench/rows.ts");
  const key = (i: number): Uint8Array => rows.u8(rows.rowKey(i, 0));
  rowKey ??= key;
  const dir = await mkdtemp(join(tmpdir(), "twill-ab-get-"));
  const storage = await openStorage(`file://${dir}`);
  const engine = (await Engine.open(storage, { blockBytesTarget: blockBytes })) as EngineLike;
  const txn = engine.begin();
  for (let i = 0; i < ROWS; i++) txn.put(key(i), rows.u8(rows.rowValue(i)));
  await txn.commit();
  await engine.flush();
  await engine.compact();
  loaded.push({
    label: `${root === process.cwd() ? "." : root} @ ${blockBytes}`,
    read: (k) => engine.read(k),
    hitRate: () => {
      const s = engine.stats().blockCache;
      return s.hits / (s.hits + s.misses);
    },
    close: async () => {
      await engine.close();
      await storage.close();
      await rm(dir, { recursive: true, force: true });
    },
    cpu: [],
    wall: [],
  });
}

// One seeded sequence for all (an LCG: the builds' own PRNGs may differ).
let x = 7;
const rand = (): number => {
  x = (Math.imul(x, 1103515245) + 12345) >>> 0;
  return x / 2 ** 32;
};
const keys = Array.from({ length: GETS_PER_ROUND * ROUNDS }, () => rowKey!(Math.floor(rand() * ROWS)));
try {
  for (const b of loaded) for (let i = 0; i < Math.min(keys.length, 20_000); i++) await b.read(keys[i]!);
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate the order too, so that no build always runs after the same one's garbage.
    for (const b of r % 2 === 0 ? loaded : [...loaded].reverse()) {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = r * GETS_PER_ROUND; i < (r + 1) * GETS_PER_ROUND; i++) {
        if ((await b.read(keys[i]!)) === undefined) throw new Error("missing key");
      }
      const cpu = process.cpuUsage(cpu0);
      b.wall.push(((performance.now() - t0) * 1000) / GETS_PER_ROUND);
      b.cpu.push((cpu.user + cpu.system) / GETS_PER_ROUND);
    }
  }
  const median = (a: number[]): number => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)]!;
  console.log(
    `${ROWS} rows, ${ROUNDS} rounds of ${GETS_PER_ROUND} gets per build, load ${(await import("node:os")).loadavg()[0]!.toFixed(2)}`,
  );
  console.log("build | CPU µs/get median (min) | wall µs/get median (min) | cache hit rate");
  for (const b of loaded) {
    console.log(
      `${b.label} | ${median(b.cpu).toFixed(2)} (${Math.min(...b.cpu).toFixed(2)}) | ${median(b.wall).toFixed(2)} (${Math.min(...b.wall).toFixed(2)}) | ${b.hitRate().toFixed(3)}`,
    );
  }
} finally {
  for (const b of loaded) await b.close();
}
