/**
 * Profiling tool for the SQL path of the recall bench (not a benchmark: it prints timings only to orient a
 * profile): the bench's twill-sql runner (CREATE INDEX before loading, INSERT 500 rows per transaction, then
 * `SELECT id FROM docs ORDER BY emb <=> $1 LIMIT 10` at one ef_search) on the bench's dataset generator.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/recall/profile-sql.ts [n] [d] [ef] [queries]
 *   node --import tsx bench/recall/profile-sql.ts 10000 384 40 500 backfill   (rows first, then CREATE INDEX)
 *
 * Defaults: 10,000 × 384, ef 40, 1,000 queries. For per-line ticks bundle first (see profile.ts). CPU seconds
 * are printed beside wall time: on the shared machine they swing less.
 */

import { open } from "../../src/database.js";
import { makeDataset } from "./dataset.js";

const n = Number(process.argv[2] ?? 10_000);
const d = Number(process.argv[3] ?? 384);
const ef = Number(process.argv[4] ?? 40);
const queries = Number(process.argv[5] ?? 1000);
const backfill = process.argv[6] === "backfill";

const ds = makeDataset("clustered", n, d, queries, 20261201);
const db = await open("memory://");
await db.exec(`CREATE TABLE docs (id int PRIMARY KEY, emb vector(${d}))`);
const createIndex =
  "CREATE INDEX docs_emb ON docs USING hnsw (emb vector_cosine_ops) WITH (m = 16, ef_construction = 200)";
const cpu = () => process.cpuUsage().user / 1e6;
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
console.log(
  `sql build ${n} x ${d}${backfill ? " (backfill)" : ""}: ${((performance.now() - t) / 1000).toFixed(2)} s wall, ${(cpu() - c).toFixed(2)} s cpu`,
);
await db.exec(`SET hnsw.ef_search = ${ef}`);
const search = db.prepare<{ id: number }>("SELECT id FROM docs ORDER BY emb <=> $1 LIMIT 10");
for (let i = 0; i < 50; i++) await search.all([ds.queries[i % queries]!]);
t = performance.now();
c = cpu();
for (let rep = 0; rep < 3; rep++) for (const q of ds.queries) await search.all([q]);
const s = (performance.now() - t) / 1000;
console.log(
  `sql search ef=${ef}: ${((3 * queries) / s).toFixed(0)} QPS wall, ${((3 * queries) / (cpu() - c)).toFixed(0)} per cpu-second`,
);
await db.close();
