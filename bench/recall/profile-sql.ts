/**
 * Profiling tool for the SQL path of the recall bench (not a benchmark: it prints timings only to orient a
 * profile): the bench's twill-sql runner (CREATE INDEX before loading, INSERT 500 rows per transaction, then
 * `SELECT id FROM docs ORDER BY emb <=> $1 LIMIT 10` at one ef_search) on the bench's dataset generator.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/recall/profile-sql.ts [n] [d] [ef] [queries]
 *   node --import tsx bench/recall/profile-sql.ts 10000 384 40 500 backfill   (rows first, then CREATE INDEX)
 *   node --import tsx bench/recall/profile-sql.ts 50000 384 40 1000 direct    (and the direct API, same run)
 *
 * Defaults: 10,000 × 384, ef 40, 1,000 queries. For per-line ticks bundle first (see profile.ts). CPU seconds
 * are printed beside wall time: on the shared machine they swing less. With `direct` the bench's twill-direct
 * runner (the same data over a MemoryNodeStore) is built too, and the two searches alternate, three passes
 * each, so the SQL path's cost over the direct API (µs per query, what this tool is for) is measured in the
 * same minute. The direct system is the bench's MemoryHnsw, whose vectors sit in its own slab: a second graph on
 * hnsw.ts would share the SQL graph's vector arena (one per dimension count, 256 MiB) and, at 100k × 384, two
 * graphs overflow it and both searches recopy vectors. Each SQL pass prints the nodes it decoded, the cache
 * entries evicted and the vectors copied into the arena, per query (all ~0 when warm), and every pass its µs per
 * query and the engine's flush and compaction counts. A third system, `resident`, runs the SQL index's own flat
 * graph (ResidentGraph) with no SQL around it, so "sql − resident" is what the statement and its k row reads add.
 * `settle` first waits for the compaction the load left running (timed apart), so it cannot interleave with the
 * SQL passes (their queries await; the direct and resident passes never yield). `prof=DIR` writes a CPU profile of each system's second search pass to DIR (sql-search.cpuprofile,
 * direct-search.cpuprofile) through node:inspector, so a profile shows one system's search and nothing else.
 */

import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import { open } from "../../src/database.js";
import type { VectorIndexes } from "../../src/engine/sql/hnsw-index.js";
import { MemoryHnsw } from "../../src/vector/memory-hnsw.js";
import { arenaFor } from "../../src/vector/simd.js";
import { makeDataset } from "./dataset.js";

const n = Number(process.argv[2] ?? 10_000);
const d = Number(process.argv[3] ?? 384);
const ef = Number(process.argv[4] ?? 40);
const queries = Number(process.argv[5] ?? 1000);
const flags = new Set(process.argv.slice(6));
const backfill = flags.has("backfill");
const direct = flags.has("direct");
const profDir = [...flags].find((f) => f.startsWith("prof="))?.slice(5);
const inspector = profDir === undefined ? undefined : new Session();
if (inspector) {
  inspector.connect();
  await inspector.post("Profiler.enable");
}

const ds = makeDataset("clustered", n, d, queries, 20261201);
const cpu = () => process.cpuUsage().user / 1e6;

const db = await open("memory://");
await db.exec(`CREATE TABLE docs (id int PRIMARY KEY, emb vector(${d}))`);
const createIndex =
  "CREATE INDEX docs_emb ON docs USING hnsw (emb vector_cosine_ops) WITH (m = 16, ef_construction = 200)";
let t = performance.now();
let c = cpu();
if (!backfill) await db.exec(createIndex);
for (let i = 0; i < n; i += 500) {
  await db.transaction(async (tx) => {
    for (let j = i; j < Math.min(n, i + 500); j++)
      await tx.query("INSERT INTO docs VALUES ($1, $2)", [j, ds.data[j]]);
  });
}
if (backfill) await db.exec(createIndex);
const sqlBuild = { wall: (performance.now() - t) / 1000, cpu: cpu() - c };
console.log(
  `sql build ${n} x ${d}${backfill ? " (backfill)" : ""}: ${sqlBuild.wall.toFixed(2)} s wall, ${sqlBuild.cpu.toFixed(2)} s cpu`,
);

// `settle`: wait for the load's background compaction to finish before searching (timed apart from the build).
if (flags.has("settle")) {
  const t1 = performance.now();
  const c1 = cpu();
  await (db as unknown as { sqlEngine: { engine: { compact(): Promise<void> } } }).sqlEngine.engine.compact();
  console.log(
    `settle (compaction the load left running): ${((performance.now() - t1) / 1000).toFixed(2)} s wall, ${(cpu() - c1).toFixed(2)} s cpu`,
  );
}

// The SQL graph's decoded-node cache and vector arena, so a pass can say what it decoded and copied.
const vectors = (db as unknown as { sqlEngine: { vectors: VectorIndexes } }).sqlEngine.vectors;
const arena = arenaFor(d);
const counters = () => ({ ...vectors.stats(), copies: arena?.copies ?? 0 });
console.log("sql index cache after build:", counters(), `arena slots ${arena?.slots}`);

let graph: MemoryHnsw | undefined;
if (direct) {
  // The bench's twill-direct: its vectors live in its own slab, so it never competes with the SQL graph's arena.
  graph = new MemoryHnsw({ m: 16, efConstruction: 200, metric: "cosine" });
  t = performance.now();
  c = cpu();
  for (let i = 0; i < n; i++) graph.insert(String(i), ds.data[i]!);
  const wall = (performance.now() - t) / 1000;
  const used = cpu() - c;
  console.log(
    `direct build: ${wall.toFixed(2)} s wall, ${used.toFixed(2)} s cpu; sql / direct ${(sqlBuild.cpu / used).toFixed(2)}x cpu`,
  );
}

await db.exec(`SET hnsw.ef_search = ${ef}`);
const search = db.prepare<{ id: number }>("SELECT id FROM docs ORDER BY emb <=> $1 LIMIT 10");
const passes: Record<string, { wall: number; cpu: number }[]> = { sql: [], direct: [], resident: [] };
// The SQL index's own flat graph searched directly (no SQL, no row reads): what the SQL path adds on top of it.
// Background flushes and compactions of the load interleave with the SQL passes (each query awaits), not with
// the synchronous direct and resident passes: each pass prints the engine's counts so far.
const engine = (db as unknown as { engine: { stats(): { flushes: number; compactions: number } } }).engine;
const sqlEngine = (
  db as unknown as {
    sqlEngine: { catalog: { table(n: string): { def: { indexes: { id: number; hnsw?: unknown }[] } } } };
  }
).sqlEngine;
const indexId = sqlEngine.catalog.table("docs")!.def.indexes.find((i) => i.hnsw)!.id;
async function pass(which: "sql" | "direct" | "resident", profile: boolean): Promise<void> {
  if (profile) await inspector?.post("Profiler.start");
  const before = counters();
  const t0 = performance.now();
  const c0 = cpu();
  if (which === "sql") for (const q of ds.queries) await search.all([q]);
  else if (which === "direct") for (const q of ds.queries) graph!.search(q, 10, ef);
  else {
    const cache = vectors.cache(indexId);
    const meta = cache.meta!;
    for (const q of ds.queries)
      cache.resident!.search(q, ef, ef, meta.entry, meta.maxLevel, (h) => cache.idOf(h));
  }
  const p = { wall: performance.now() - t0, cpu: cpu() - c0 };
  passes[which]!.push(p);
  const e = engine.stats();
  console.log(
    `  ${which} pass: ${((p.wall * 1000) / queries).toFixed(0)} µs wall, ${((p.cpu * 1e6) / queries).toFixed(0)} µs cpu per query${profile && inspector ? " (profiled)" : ""}; engine so far: ${e.flushes} flushes, ${e.compactions} compactions`,
  );
  if (which === "sql") {
    const after = counters();
    const per = (k: "decodes" | "evictions" | "copies") => ((after[k] - before[k]) / queries).toFixed(1);
    console.log(
      `  sql pass: per query ${per("decodes")} nodes decoded, ${per("evictions")} evicted, ${per("copies")} vectors copied into the arena; cache ${after.nodes} nodes, ${(after.bytes / 2 ** 20).toFixed(0)} MiB estimated`,
    );
  }
  if (profile && inspector) {
    const { profile: p } = await inspector.post("Profiler.stop");
    writeFileSync(join(profDir!, `${which}-search.cpuprofile`), JSON.stringify(p));
  }
}
for (let i = 0; i < 50; i++) {
  await search.all([ds.queries[i % queries]!]);
  graph?.search(ds.queries[i % queries]!, 10, ef);
}
for (let rep = 0; rep < 3; rep++) {
  await pass("sql", rep === 1);
  if (graph) await pass("direct", rep === 1);
  await pass("resident", false);
}
const us = (which: string) => {
  // The profiled pass (rep 1) is left out: the inspector's sampling slows some passes more than others.
  const p = passes[which]!.filter((_, i) => profDir === undefined || i !== 1);
  const wall = p.reduce((s, x) => s + x.wall, 0) / (p.length * queries);
  const used = p.reduce((s, x) => s + x.cpu, 0) / (p.length * queries);
  return { wall: wall * 1000, cpu: used * 1e6 };
};
const s = us("sql");
console.log(
  `sql search ef=${ef}: ${(1e6 / s.wall).toFixed(0)} QPS wall, ${(1e6 / s.cpu).toFixed(0)} per cpu-second (${s.cpu.toFixed(0)} µs cpu per query)`,
);
if (graph) {
  const g = us("direct");
  console.log(
    `direct search ef=${ef}: ${(1e6 / g.wall).toFixed(0)} QPS wall, ${(1e6 / g.cpu).toFixed(0)} per cpu-second (${g.cpu.toFixed(0)} µs cpu per query); sql - direct ${(s.cpu - g.cpu).toFixed(0)} µs cpu per query, sql / direct QPS ${(g.cpu / s.cpu).toFixed(2)}x`,
  );
}
const r = us("resident");
console.log(
  `the SQL index's flat graph alone: ${(1e6 / r.cpu).toFixed(0)} per cpu-second (${r.cpu.toFixed(0)} µs cpu per query); sql - it ${(s.cpu - r.cpu).toFixed(0)} µs cpu per query`,
);
await db.close();
