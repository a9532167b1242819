/**
 * Profiling tool for the direct HNSW API on the recall bench's data (not a benchmark: it prints timings only to
 * orient a profile). Builds an n × d graph, then runs the queries at one ef_search. The graph is the direct
 * in-memory index (MemoryHnsw, memory-hnsw.ts) unless `--records` is given: then hnsw.ts over a MemoryNodeStore
 * (the node-record algorithm the SQL index runs, without the SQL store). `--hnswlib` also builds and searches
 * hnswlib-node on the same data afterwards and prints both CPU ratios (CPU seconds: less swing on a shared machine).
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/recall/profile.ts [n] [d] [ef] [queries] [--records]
 *   node --trace-gc --import tsx bench/recall/profile.ts 20000 384 40 | grep -c Scavenge
 *
 * Defaults: 50,000 × 384, ef 40, 1,000 queries (the default bench's 384-dim set). Under tsx the profile's line
 * ticks all read line 1; for per-line ticks bundle first and profile the bundle:
 *   npx esbuild bench/recall/profile.ts --bundle --platform=node --format=esm --outfile=/tmp/prof.mjs
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof /tmp/prof.mjs 10000
 * CPU seconds are printed beside wall time: on the shared machine they swing less.
 */

import hnswlib from "hnswlib-node";
import { Hnsw, MemoryNodeStore } from "../../src/vector/hnsw.js";
import { MemoryHnsw } from "../../src/vector/memory-hnsw.js";
import { makeDataset } from "./dataset.js";

const records = process.argv.includes("--records");
const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const n = Number(args[0] ?? 50_000);
const d = Number(args[1] ?? 384);
const ef = Number(args[2] ?? 40);
const queries = Number(args[3] ?? 1000);

const ds = makeDataset("clustered", n, d, queries, 20261201);
const params = { m: 16, efConstruction: 200, metric: "cosine" } as const;
const graph = records ? new Hnsw(params, new MemoryNodeStore()) : new MemoryHnsw(params);
const cpu = () => process.cpuUsage().user / 1e6;
let t = performance.now();
let c = cpu();
for (let i = 0; i < n; i++) await graph.insert(String(i), ds.data[i]!);
const buildCpu = cpu() - c;
console.log(
  `${records ? "hnsw.ts over MemoryNodeStore" : "MemoryHnsw"}: build ${n} x ${d}: ${((performance.now() - t) / 1000).toFixed(2)} s wall, ${buildCpu.toFixed(2)} s cpu`,
);
for (let i = 0; i < 50; i++) await graph.search(ds.queries[i % queries]!, 10, ef);
t = performance.now();
c = cpu();
for (let rep = 0; rep < 3; rep++) for (const q of ds.queries) await graph.search(q, 10, ef);
const s = (performance.now() - t) / 1000;
const searchCpu = cpu() - c;
console.log(
  `search ef=${ef}: ${((3 * queries) / s).toFixed(0)} QPS wall, ${((3 * queries) / searchCpu).toFixed(0)} per cpu-second`,
);

if (process.argv.includes("--hnswlib")) {
  const index = new hnswlib.HierarchicalNSW("cosine", d);
  index.initIndex({ maxElements: n, m: 16, efConstruction: 200, randomSeed: 100 });
  const rows = ds.data.map((v) => Array.from(v));
  const qs = ds.queries.map((v) => Array.from(v));
  c = cpu();
  for (let i = 0; i < n; i++) index.addPoint(rows[i]!, i);
  const refBuild = cpu() - c;
  index.setEf(ef);
  for (let i = 0; i < 50; i++) index.searchKnn(qs[i % queries]!, 10);
  c = cpu();
  for (let rep = 0; rep < 3; rep++) for (const q of qs) index.searchKnn(q, 10);
  const refSearch = cpu() - c;
  console.log(
    `hnswlib: build ${refBuild.toFixed(2)} s cpu, search ${((3 * queries) / refSearch).toFixed(0)} per cpu-second; ` +
      `build ratio ${(buildCpu / refBuild).toFixed(2)}x, search QPS ratio ${(refSearch / searchCpu).toFixed(2)}x`,
  );
}
