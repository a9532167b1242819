import { describe, expect, it } from "vitest";
import { prng } from "../src/util/prng.js";
import { indexDistance, l2Normalize, type Metric } from "../src/vector/distance.js";
import { Hnsw, levelFor, MemoryNodeStore } from "../src/vector/hnsw.js";

function randomVectors(n: number, dim: number, seed: number): Float32Array[] {
  const r = prng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, () => r()));
}

function exactTopK(metric: Metric, data: Float32Array[], q: Float32Array, k: number): string[] {
  const d = indexDistance(metric);
  return data
    .map((v, i) => ({ i, d: d(q, v) }))
    .sort((a, b) => a.d - b.d)
    .slice(0, k)
    .map((x) => String(x.i));
}

async function recall(metric: Metric, dim: number, k: number, ef: number): Promise<number> {
  const prep = (v: Float32Array) => (metric === "cosine" ? l2Normalize(v) : v);
  const data = randomVectors(10_000, dim, 42).map(prep);
  const h = new Hnsw({ m: 16, efConstruction: 64, metric }, new MemoryNodeStore());
  for (let i = 0; i < data.length; i++) await h.insert(String(i), data[i]!);
  const queries = randomVectors(50, dim, 7).map(prep);
  let found = 0;
  for (const q of queries) {
    const truth = new Set(exactTopK(metric, data, q, k));
    const { hits } = await h.search(q, k, ef);
    for (const hit of hits) if (truth.has(hit.id)) found++;
  }
  return found / (queries.length * k);
}

describe("HNSW (in-memory node store)", () => {
  it("levels follow -ln(U)/ln(M) and are stable per id", () => {
    const counts = new Array(17).fill(0);
    for (let i = 0; i < 100_000; i++) counts[levelFor(`n${i}`, 16)]++;
    // P(level >= 1) = 1/16
    expect(counts[0] / 100_000).toBeGreaterThan(0.92);
    expect(counts[0] / 100_000).toBeLessThan(0.955);
    expect(counts[1]).toBeGreaterThan(counts[2]);
    expect(levelFor("abc", 16)).toBe(levelFor("abc", 16));
  });

  it("meets pgvector's bar: recall >= 0.99 for top-20 on 10k random vectors, default parameters", async () => {
    expect(await recall("l2", 3, 20, 40)).toBeGreaterThanOrEqual(0.99);
    expect(await recall("cosine", 3, 20, 40)).toBeGreaterThanOrEqual(0.99);
  }, 120_000);

  it("keeps high recall in higher dimensions", async () => {
    expect(await recall("l2", 32, 10, 80)).toBeGreaterThanOrEqual(0.95);
  }, 120_000);

  it("links are bidirectional-capped: no list exceeds M (2M at level 0)", async () => {
    const store = new MemoryNodeStore();
    const h = new Hnsw({ m: 4, efConstruction: 16, metric: "l2" }, store);
    const data = randomVectors(2000, 8, 3);
    for (let i = 0; i < data.length; i++) await h.insert(String(i), data[i]!);
    for (const n of store.nodes()) {
      expect(n.neighbors.length).toBe(n.level + 1);
      n.neighbors.forEach((l, lv) => {
        expect(l.length).toBeLessThanOrEqual(lv === 0 ? 8 : 4);
        for (const h of l) expect(store.get(h)!.level).toBeGreaterThanOrEqual(lv);
      });
    }
    const meta = store.meta()!;
    expect(store.get(meta.entry)!.level).toBe(meta.maxLevel);
  });

  it("deleted nodes are never returned; re-insert moves a node", async () => {
    const store = new MemoryNodeStore();
    const h = new Hnsw({ m: 8, efConstruction: 32, metric: "l2" }, store);
    const data = randomVectors(500, 4, 5);
    for (let i = 0; i < data.length; i++) await h.insert(String(i), data[i]!);
    const q = data[17]!;
    expect((await h.search(q, 1, 40)).hits[0]!.id).toBe("17");
    await h.markDeleted("17");
    const after = await h.search(q, 10, 40);
    expect(after.hits.map((x) => x.id)).not.toContain("17");
    expect(after.hits).toHaveLength(10);
    // update: id 3 moves onto a far point
    const far = Float32Array.from([10, 10, 10, 10]);
    await h.insert("3", far);
    expect((await h.search(far, 1, 40)).hits[0]!.id).toBe("3");
    // deleting everything returns nothing, and inserting again works through the deleted routing nodes
    for (let i = 0; i < data.length; i++) await h.markDeleted(String(i));
    expect((await h.search(q, 5, 40)).hits).toEqual([]);
    await h.insert("new", q);
    expect((await h.search(q, 5, 40)).hits.map((x) => x.id)).toEqual(["new"]);
  });

  it("reports an exhausted beam on a small graph", async () => {
    const h = new Hnsw({ m: 16, efConstruction: 64, metric: "ip" }, new MemoryNodeStore());
    expect(await h.search(Float32Array.from([1]), 3, 40)).toEqual({ hits: [], exhausted: true });
    for (let i = 0; i < 5; i++) await h.insert(String(i), Float32Array.from([i]));
    const r = await h.search(Float32Array.from([1]), 3, 40);
    expect(r.exhausted).toBe(true);
    expect(r.hits.map((x) => x.id)).toEqual(["4", "3", "2"]); // largest inner product first
  });
});
