/**
 * bench/recall: approximate nearest-neighbour quality and speed, ann-benchmarks style, in one process:
 *
 *   twill-sql     Twill DB through SQL: memory:// database, `CREATE INDEX … USING hnsw (emb vector_cosine_ops)
 *                 WITH (m = 16, ef_construction = 200)` before loading (rows inserted 500 per transaction, so the
 *                 build time includes the rows, their commits, the graph's KV records and the wait for the
 *                 compaction the load left running), then
 *                 `SET hnsw.ef_search = ef` and `SELECT id FROM docs ORDER BY emb <=> $1 LIMIT 10`
 *   twill-direct  the direct in-memory index (src/vector/memory-hnsw.ts): hnsw.ts's algorithm, comparison for
 *                 comparison, over flat typed arrays, without SQL, transactions or KV records
 *   hnswlib       hnswlib-node (C++ hnswlib, the reference), space "cosine", same M and efConstruction,
 *                 addPoint one at a time (single thread), searchKnn
 *   pglite        PostgreSQL 17 + pgvector in WASM (@electric-sql/pglite 0.4 with its vector extension), on a
 *                 subset it can build in reasonable time: rows loaded first, then CREATE INDEX (pgvector's usual
 *                 path; build time = the CREATE INDEX), queries as for twill-sql
 *
 * Datasets (seeded, deterministic): unit-normalised points from a mixture of Gaussian clusters (centroids
 * N(0,1)^d, points centroid + N(0, 0.9²)^d, n/500 clusters), which gives the uneven density of real embeddings,
 * and queries drawn from the same mixture (not from the data). Ground truth: exact top-10 by cosine distance,
 * cached in bench/.data/ (gitignored) keyed by dataset, size, seed and query count.
 *
 * Measures per system and ef_search ∈ {10, 20, 40, 80, 160}: recall@10 (mean |result ∩ truth| / 10), single-
 * thread QPS over all queries run one after another, p50/p99 latency; per system: build time and peak RSS growth
 * over the RSS before the system started (sampled during build and search; GC'd between systems when run with
 * --expose-gc, as `npm run bench:recall` does). Comparisons: Twill's QPS at the smallest ef where it reaches
 * recall ≥ 0.95 over hnswlib's QPS at the smallest ef where hnswlib does, and Twill's build time / hnswlib's.
 *
 * Run: npm run bench:recall [-- --quick] [-- --full] [-- --systems twill-sql,twill-direct,hnswlib,pglite]
 *      [-- --chart-from bench/results/recall-full.json]  (only redraws that file's chart)
 *   default  50,000 × 384 and 10,000 × 1,536, 1,000 queries, PGlite on 10,000 × 384
 *   --quick  5,000 × 384 and 1,000 × 1,536, 200 queries, PGlite on 2,000 × 384 (a couple of minutes)
 *   --full   100,000 × 384 and 20,000 × 1,536 (the issue's sizes; long on 2 cores)
 * Writes bench/results/recall.json and bench/results/recall.svg (recall vs QPS, log scale; recall-full.* for
 * --full, so the issue-size run and the default run are both kept); a run narrowed by
 * --systems writes them to $TMPDIR instead.
 */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { vector as pgvector } from "@electric-sql/pglite/vector";
import hnswlib from "hnswlib-node";
import { type Database, open } from "../../src/database.js";
import { MemoryHnsw } from "../../src/vector/memory-hnsw.js";
import { graphDistance, simdAvailable } from "../../src/vector/simd.js";
import { formatVector } from "../../src/vector/vector.js";
import { fmt, machine, percentile, printTable, writeResult } from "../lib.js";
import { type Dataset, makeDataset } from "./dataset.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const quick = process.argv.includes("--quick");
const full = process.argv.includes("--full");
const ALL_SYSTEMS = ["twill-sql", "twill-direct", "hnswlib", "pglite"] as const;
type SystemName = (typeof ALL_SYSTEMS)[number];
const systems = new Set((arg("--systems") ?? ALL_SYSTEMS.join(",")).split(",").filter(Boolean));
const narrowed = systems.size < ALL_SYSTEMS.length;

const EFS = [10, 20, 40, 80, 160];
const K = 10;
const M = 16;
const EF_CONSTRUCTION = 200;
const QUERIES = quick ? 200 : 1000;
const DATASETS = quick
  ? [
      { name: "clustered-384", n: 5_000, d: 384 },
      { name: "clustered-1536", n: 1_000, d: 1536 },
    ]
  : full
    ? [
        { name: "clustered-384", n: 100_000, d: 384 },
        { name: "clustered-1536", n: 20_000, d: 1536 },
      ]
    : [
        { name: "clustered-384", n: 50_000, d: 384 },
        { name: "clustered-1536", n: 10_000, d: 1536 },
      ];
const PGLITE_N = quick ? 2_000 : 10_000;
const SEED = 20261201;
const DATA_DIR = join(import.meta.dirname, "..", ".data");

// ---- data ------------------------------------------------------------------------------------------------------------

/** Exact top-K ids per query (cosine distance on unit vectors), cached on disk. */
function groundTruth(ds: Dataset, n = ds.n): Int32Array[] {
  // The key names the full dataset's size too: a subset is the first n points of a mixture that depends on it
  // (clusters = size / 500), so the 10,000-point PGlite subset of the default and the --full set differ.
  const file = join(DATA_DIR, `recall-${ds.name}-${ds.n}-${n}x${ds.d}-s${SEED}-q${ds.queries.length}.gt`);
  if (existsSync(file)) {
    const buf = readFileSync(file);
    const all = new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    if (all.length === ds.queries.length * K) return ds.queries.map((_, i) => all.slice(i * K, (i + 1) * K));
  }
  const t = performance.now();
  const dist = graphDistance("cosine");
  const out = ds.queries.map((q) => {
    const best: { id: number; d: number }[] = [];
    for (let i = 0; i < n; i++) {
      const d = dist(q, ds.data[i]!);
      if (best.length < K || d < best[best.length - 1]!.d) {
        best.push({ id: i, d });
        best.sort((a, b) => a.d - b.d);
        if (best.length > K) best.pop();
      }
    }
    return Int32Array.from(best.map((b) => b.id));
  });
  mkdirSync(DATA_DIR, { recursive: true });
  const all = new Int32Array(ds.queries.length * K);
  for (let i = 0; i < out.length; i++) all.set(out[i]!, i * K);
  writeFileSync(file, all);
  console.log(`  ground truth for ${ds.name} (${n}): ${fmt((performance.now() - t) / 1000, 1)} s, cached`);
  return out;
}

// ---- measuring --------------------------------------------------------------------------------------------------------

class Rss {
  private base = 0;
  private peak = 0;
  start(): void {
    (globalThis as { gc?: () => void }).gc?.();
    this.base = process.memoryUsage.rss();
    this.peak = this.base;
  }
  sample(): void {
    const r = process.memoryUsage.rss();
    if (r > this.peak) this.peak = r;
  }
  growthMiB(): number {
    this.sample();
    return (this.peak - this.base) / 1024 ** 2;
  }
}

interface Point {
  ef: number;
  recall: number;
  qps: number;
  p50Ms: number;
  p99Ms: number;
}

interface SystemResult {
  system: SystemName;
  dataset: string;
  n: number;
  d: number;
  buildS: number;
  rssMiB: number;
  points: Point[];
}

interface Runner {
  build(data: Float32Array[], rss: Rss): Promise<void>;
  setEf(ef: number): Promise<void>;
  search(q: Float32Array, i: number): Promise<ArrayLike<number>> | ArrayLike<number>;
  close(): Promise<void>;
}

async function run(
  system: SystemName,
  ds: Dataset,
  n: number,
  truth: Int32Array[],
  make: () => Promise<Runner>,
): Promise<SystemResult> {
  const rss = new Rss();
  rss.start();
  const runner = await make();
  const data = ds.data.slice(0, n);
  const t0 = performance.now();
  await runner.build(data, rss);
  const buildS = (performance.now() - t0) / 1000;
  console.log(`  ${system} on ${ds.name} (${fmt(n)}): built in ${fmt(buildS, 1)} s`);
  const points: Point[] = [];
  for (const ef of EFS) {
    await runner.setEf(ef);
    for (let i = 0; i < Math.min(20, ds.queries.length); i++) await runner.search(ds.queries[i]!, i); // warm-up
    const lat = new Array<number>(ds.queries.length);
    let found = 0;
    const start = performance.now();
    for (let i = 0; i < ds.queries.length; i++) {
      const t = performance.now();
      const got = await runner.search(ds.queries[i]!, i);
      lat[i] = performance.now() - t;
      const want = truth[i]!;
      for (let j = 0; j < got.length; j++) if (want.includes(got[j]!)) found++;
    }
    const total = performance.now() - start;
    rss.sample();
    lat.sort((a, b) => a - b);
    points.push({
      ef,
      recall: found / (ds.queries.length * K),
      qps: (ds.queries.length / total) * 1000,
      p50Ms: percentile(lat, 50),
      p99Ms: percentile(lat, 99),
    });
  }
  const rssMiB = rss.growthMiB();
  await runner.close();
  return { system, dataset: ds.name, n, d: ds.d, buildS, rssMiB, points };
}

// ---- systems ----------------------------------------------------------------------------------------------------------

async function twillSql(d: number): Promise<Runner> {
  const db: Database = await open("memory://");
  await db.exec(`CREATE TABLE docs (id int PRIMARY KEY, emb vector(${d}))`);
  await db.exec(
    `CREATE INDEX docs_emb ON docs USING hnsw (emb vector_cosine_ops) WITH (m = ${M}, ef_construction = ${EF_CONSTRUCTION})`,
  );
  const search = db.prepare<{ id: number }>("SELECT id FROM docs ORDER BY emb <=> $1 LIMIT 10");
  return {
    async build(data, rss) {
      for (let i = 0; i < data.length; i += 500) {
        await db.transaction(async (tx) => {
          for (let j = i; j < Math.min(data.length, i + 500); j++) {
            await tx.query("INSERT INTO docs VALUES ($1, $2)", [j, data[j]]);
          }
        });
        rss.sample();
      }
      // The load leaves an L0 -> L1 compaction running on this thread; searched during it, the first passes
      // interleave with the merge (at 50k x 384 it was ~23% of a search pass's profile). Waiting for it here
      // counts it in the build time and measures the searches on a settled database, as hnswlib's are.
      await (
        db as unknown as { sqlEngine: { engine: { compact(): Promise<void> } } }
      ).sqlEngine.engine.compact();
      rss.sample();
    },
    async setEf(ef) {
      await db.exec(`SET hnsw.ef_search = ${ef}`);
    },
    async search(q) {
      const rows = await search.all([q]);
      return rows.map((r) => r.id);
    },
    close: () => db.close(),
  };
}

async function twillDirect(): Promise<Runner> {
  const h = new MemoryHnsw({ m: M, efConstruction: EF_CONSTRUCTION, metric: "cosine" });
  let ef = 40;
  return {
    async build(data, rss) {
      for (let i = 0; i < data.length; i++) {
        h.insert(String(i), data[i]!);
        if (i % 1000 === 0) rss.sample();
      }
    },
    async setEf(e) {
      ef = e;
    },
    search(q) {
      const { hits } = h.search(q, K, ef);
      return hits.map((x) => Number(x.id));
    },
    async close() {},
  };
}

async function hnswlibRunner(d: number, n: number, queries: Float32Array[]): Promise<Runner> {
  const index = new hnswlib.HierarchicalNSW("cosine", d);
  index.initIndex({ maxElements: n, m: M, efConstruction: EF_CONSTRUCTION, randomSeed: 100 });
  // hnswlib-node takes number[]; queries are converted before timing.
  const qs = queries.map((q) => Array.from(q));
  return {
    async build(data, rss) {
      for (let i = 0; i < data.length; i++) {
        index.addPoint(Array.from(data[i]!), i);
        if (i % 1000 === 0) rss.sample();
      }
    },
    async setEf(ef) {
      index.setEf(ef);
    },
    search(_q, i) {
      return index.searchKnn(qs[i]!, K).neighbors;
    },
    async close() {},
  };
}

async function pgliteRunner(d: number): Promise<Runner> {
  const pg = await PGlite.create({ extensions: { vector: pgvector } });
  await pg.exec("CREATE EXTENSION IF NOT EXISTS vector");
  await pg.exec(`CREATE TABLE docs (id int PRIMARY KEY, emb vector(${d}))`);
  await pg.exec("SET maintenance_work_mem = '256MB'");
  return {
    async build(data, rss) {
      // Rows first, then the index (pgvector's usual path); the reported build time is the CREATE INDEX.
      for (let i = 0; i < data.length; i += 200) {
        const values: string[] = [];
        for (let j = i; j < Math.min(data.length, i + 200); j++)
          values.push(`(${j}, '${formatVector(data[j]!)}')`);
        await pg.exec(`INSERT INTO docs VALUES ${values.join(",")}`);
      }
      rss.sample();
      const t = performance.now();
      await pg.exec(
        `CREATE INDEX ON docs USING hnsw (emb vector_cosine_ops) WITH (m = ${M}, ef_construction = ${EF_CONSTRUCTION})`,
      );
      pgIndexBuildS = (performance.now() - t) / 1000;
      rss.sample();
    },
    async setEf(ef) {
      await pg.exec(`SET hnsw.ef_search = ${ef}`);
    },
    async search(q) {
      const r = await pg.query<{ id: number }>("SELECT id FROM docs ORDER BY emb <=> $1 LIMIT 10", [
        formatVector(q),
      ]);
      return r.rows.map((x) => x.id);
    },
    close: () => pg.close(),
  };
}

let pgIndexBuildS = Number.NaN;

// ---- the chart ------------------------------------------------------------------------------------------------------

const COLORS: Record<SystemName, string> = {
  "twill-sql": "#d62728",
  "twill-direct": "#ff7f0e",
  hnswlib: "#1f77b4",
  pglite: "#2ca02c",
};

function svgChart(results: SystemResult[]): string {
  const groups = [...new Set(results.map((r) => `${r.dataset} ${r.n}×${r.d}`))];
  const W = 520;
  const H = 380;
  const pad = { l: 64, r: 16, t: 36, b: 48 };
  const parts: string[] = [];
  groups.forEach((g, gi) => {
    const rs = results.filter((r) => `${r.dataset} ${r.n}×${r.d}` === g);
    const pts = rs.flatMap((r) => r.points);
    const xmin = Math.min(0.5, ...pts.map((p) => p.recall));
    const qmin = Math.min(...pts.map((p) => p.qps));
    const qmax = Math.max(...pts.map((p) => p.qps));
    const lo = Math.floor(Math.log10(qmin));
    const hi = Math.ceil(Math.log10(qmax));
    const x = (v: number) => gi * W + pad.l + ((v - xmin) / (1 - xmin)) * (W - pad.l - pad.r);
    const y = (q: number) => pad.t + (1 - (Math.log10(q) - lo) / Math.max(1, hi - lo)) * (H - pad.t - pad.b);
    parts.push(`<text x="${gi * W + W / 2}" y="20" text-anchor="middle" font-weight="bold">${g}</text>`);
    parts.push(
      `<rect x="${gi * W + pad.l}" y="${pad.t}" width="${W - pad.l - pad.r}" height="${H - pad.t - pad.b}" fill="none" stroke="#999"/>`,
    );
    for (let e = lo; e <= hi; e++) {
      parts.push(
        `<text x="${gi * W + pad.l - 6}" y="${y(10 ** e) + 4}" text-anchor="end" font-size="11">${fmt(10 ** e)}</text>`,
      );
      parts.push(
        `<line x1="${gi * W + pad.l}" x2="${gi * W + W - pad.r}" y1="${y(10 ** e)}" y2="${y(10 ** e)}" stroke="#eee"/>`,
      );
    }
    for (let i = 0; i <= 5; i++) {
      const v = xmin + ((1 - xmin) * i) / 5;
      parts.push(
        `<text x="${x(v)}" y="${H - pad.b + 16}" text-anchor="middle" font-size="11">${v.toFixed(2)}</text>`,
      );
    }
    parts.push(
      `<text x="${gi * W + W / 2}" y="${H - 10}" text-anchor="middle" font-size="12">recall@10</text>`,
    );
    parts.push(
      `<text x="${gi * W + 14}" y="${H / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 ${gi * W + 14} ${H / 2})">queries/s (log)</text>`,
    );
    rs.forEach((r, ri) => {
      const c = COLORS[r.system];
      const path = r.points.map((p) => `${x(p.recall).toFixed(1)},${y(p.qps).toFixed(1)}`).join(" ");
      parts.push(`<polyline points="${path}" fill="none" stroke="${c}" stroke-width="2"/>`);
      for (const p of r.points) {
        parts.push(`<circle cx="${x(p.recall).toFixed(1)}" cy="${y(p.qps).toFixed(1)}" r="3" fill="${c}"/>`);
      }
      parts.push(
        `<text x="${gi * W + pad.l + 8}" y="${pad.t + 16 + 14 * ri}" font-size="12" fill="${c}">${r.system} (n=${fmt(r.n)})</text>`,
      );
    });
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W * groups.length}" height="${H}" font-family="sans-serif">\n<title>bench/recall: recall@10 against queries per second</title>\n<rect width="100%" height="100%" fill="white"/>\n${parts.join("\n")}\n</svg>\n`;
}

// ---- main -----------------------------------------------------------------------------------------------------------

function firstAtRecall(r: SystemResult | undefined, target: number): Point | undefined {
  return r?.points.find((p) => p.recall >= target);
}

async function main(): Promise<void> {
  console.log(
    `bench/recall: ${quick ? "quick" : full ? "full" : "default"} sizes, ${QUERIES} queries, M=${M}, efConstruction=${EF_CONSTRUCTION}, WASM SIMD kernels: ${simdAvailable()}`,
  );
  const results: SystemResult[] = [];
  for (const spec of DATASETS) {
    const ds = makeDataset(spec.name, spec.n, spec.d, QUERIES, SEED);
    const truth = groundTruth(ds);
    if (systems.has("hnswlib"))
      results.push(await run("hnswlib", ds, ds.n, truth, () => hnswlibRunner(ds.d, ds.n, ds.queries)));
    if (systems.has("twill-direct"))
      results.push(await run("twill-direct", ds, ds.n, truth, () => twillDirect()));
    if (systems.has("twill-sql")) results.push(await run("twill-sql", ds, ds.n, truth, () => twillSql(ds.d)));
    if (systems.has("pglite") && spec.d === 384) {
      const n = Math.min(PGLITE_N, ds.n);
      const subTruth = groundTruth(ds, n);
      const r = await run("pglite", ds, n, subTruth, () => pgliteRunner(ds.d));
      console.log(`    (pglite: CREATE INDEX alone ${fmt(pgIndexBuildS, 1)} s of the ${fmt(r.buildS, 1)} s)`);
      results.push({ ...r, buildS: pgIndexBuildS });
      // Twill on the same subset, so the PGlite row has a same-size peer.
      if (systems.has("twill-sql"))
        results.push(await run("twill-sql", ds, n, subTruth, () => twillSql(ds.d)));
    }
  }

  printTable(
    "recall@10 and single-thread speed per ef_search",
    ["dataset", "system", "n", "ef", "recall@10", "QPS", "p50 ms", "p99 ms", "build s", "RSS +MiB"],
    results.flatMap((r) =>
      r.points.map((p) => [
        r.dataset,
        r.system,
        fmt(r.n),
        p.ef,
        fmt(p.recall, 3),
        fmt(p.qps),
        fmt(p.p50Ms, 3),
        fmt(p.p99Ms, 3),
        fmt(r.buildS, 1),
        fmt(r.rssMiB),
      ]),
    ),
  );

  const comparisons: Record<string, unknown>[] = [];
  for (const spec of DATASETS) {
    const of = (s: SystemName) =>
      results.find((r) => r.dataset === spec.name && r.system === s && r.n === spec.n);
    const ref = of("hnswlib");
    for (const s of ["twill-direct", "twill-sql"] as const) {
      const mine = of(s);
      if (!mine || !ref) continue;
      const a = firstAtRecall(mine, 0.95);
      const b = firstAtRecall(ref, 0.95);
      comparisons.push({
        dataset: `${spec.name} ${spec.n}×${spec.d}`,
        system: s,
        bestRecall: Math.max(...mine.points.map((p) => p.recall)),
        efAt095: a?.ef,
        recallAt: a?.recall,
        qps: a?.qps,
        hnswlibEf: b?.ef,
        hnswlibRecall: b?.recall,
        hnswlibQps: b?.qps,
        qpsRatio: a && b ? a.qps / b.qps : undefined,
        buildRatio: mine.buildS / ref.buildS,
      });
    }
  }
  printTable(
    "Twill vs hnswlib-node: QPS of each at its first ef reaching recall ≥ 0.95; targets: QPS ≥ 0.5×, build ≤ 3×",
    [
      "dataset",
      "system",
      "best recall",
      "ef",
      "recall",
      "QPS",
      "hnswlib ef",
      "hnswlib QPS",
      "QPS ratio",
      "build ratio",
    ],
    comparisons.map((c) => [
      String(c.dataset),
      String(c.system),
      fmt(c.bestRecall as number, 3),
      String(c.efAt095 ?? "-"),
      fmt((c.recallAt as number) ?? Number.NaN, 3),
      fmt((c.qps as number) ?? Number.NaN),
      String(c.hnswlibEf ?? "-"),
      fmt((c.hnswlibQps as number) ?? Number.NaN),
      `${fmt((c.qpsRatio as number) ?? Number.NaN, 2)}×`,
      `${fmt(c.buildRatio as number, 2)}×`,
    ]),
  );

  const outDir = narrowed ? tmpdir() : join(import.meta.dirname, "..", "results");
  const base = full ? "recall-full" : "recall";
  writeResult(join(outDir, `${base}.json`), {
    machine: machine(),
    sizes: quick ? "quick" : full ? "full" : "default",
    queries: QUERIES,
    m: M,
    efConstruction: EF_CONSTRUCTION,
    simd: simdAvailable(),
    results,
    comparisons,
  });
  writeFileSync(join(outDir, `${base}.svg`), svgChart(results));
  console.log(`chart written to ${join(outDir, `${base}.svg`)}`);
}

// --chart-from <results.json>: redraw a results file's chart (after results were corrected by hand) and stop.
const chartFrom = arg("--chart-from");
if (chartFrom !== undefined) {
  const saved = JSON.parse(readFileSync(chartFrom, "utf8")) as { results: SystemResult[] };
  writeFileSync(chartFrom.replace(/\.json$/, ".svg"), svgChart(saved.results));
} else await main();
