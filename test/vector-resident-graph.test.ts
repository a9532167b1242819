/**
 * ResidentGraph (src/vector/resident-graph.ts): the flat copy of a node store's nodes gives exactly hnsw.ts's
 * search answer over the same nodes, follows the versions it is given, and gives up (undefined) rather than
 * answer when a search meets a node it has no copy of.
 */

import { describe, expect, it } from "vitest";
import { prng } from "../src/util/prng.js";
import { l2Normalize, type Metric } from "../src/vector/distance.js";
import { Hnsw, MemoryNodeStore } from "../src/vector/hnsw.js";
import { ResidentGraph } from "../src/vector/resident-graph.js";

function randomVectors(n: number, dim: number, seed: number, metric: Metric): Float32Array[] {
  const r = prng(seed);
  return Array.from({ length: n }, () => {
    const v = Float32Array.from({ length: dim }, () => r() - 0.5);
    return metric === "cosine" ? l2Normalize(v) : v;
  });
}

async function built(metric: Metric, n: number) {
  const params = { m: 6, efConstruction: 40, metric };
  const store = new MemoryNodeStore();
  const g = new Hnsw(params, store);
  const data = randomVectors(n, 20, 7, metric);
  for (let i = 0; i < n; i++) await g.insert(String(i), data[i]!);
  for (let i = 0; i < n; i += 9) await g.markDeleted(String(i));
  const resident = new ResidentGraph(params);
  for (const node of store.nodes()) resident.set(node);
  return { g, store, resident, queries: randomVectors(40, 20, 8, metric) };
}

function residentSearch(r: ResidentGraph, store: MemoryNodeStore, q: Float32Array, k: number, ef: number) {
  const meta = store.meta()!;
  return r.search(q, k, ef, meta.entry, meta.maxLevel, (h) => store.idOf(h));
}

describe("ResidentGraph", () => {
  for (const metric of ["l2", "cosine", "ip"] as const) {
    it(`answers exactly as hnsw.ts's search over the same nodes (${metric})`, async () => {
      const { g, store, resident, queries } = await built(metric, 1500);
      for (const ef of [1, 10, 64, 2000]) {
        for (const q of queries) {
          const want = await g.search(q, 10, ef);
          expect(residentSearch(resident, store, q, 10, ef)).toEqual(want);
        }
      }
    });
  }

  it("follows the versions it is given: a node marked deleted leaves the answers, one set back returns", async () => {
    const { g, store, resident, queries } = await built("l2", 800);
    const q = queries[0]!;
    const first = (await g.search(q, 5, 100)).hits[0]!.id;
    await g.markDeleted(first);
    const h = store.handle(first);
    // Not yet given the new version: the copy still answers with the old one.
    expect(residentSearch(resident, store, q, 5, 100)!.hits[0]!.id).toBe(first);
    resident.set(store.get(h)!);
    const after = residentSearch(resident, store, q, 5, 100)!;
    expect(after.hits.map((x) => x.id)).not.toContain(first);
    expect(after).toEqual(await g.search(q, 5, 100));
    // A re-insert (an update) writes a new vector and links; the copy follows once given the version.
    await g.insert(first, q);
    resident.set(store.get(h)!);
    for (const n of store.nodes()) resident.set(n); // the re-insert relinked neighbours too
    const back = residentSearch(resident, store, q, 5, 100)!;
    expect(back.hits[0]!.id).toBe(first);
    expect(back).toEqual(await g.search(q, 5, 100));
  });

  it("gives up when a search meets a node it holds no copy of, and answers exactly when it does not", async () => {
    const { g, store, resident, queries } = await built("cosine", 1200);
    const r = prng(3);
    for (let h = 0; h < store.count; h++) if (r() < 0.02) resident.clear(h);
    let gaveUp = 0;
    for (const q of queries) {
      for (const ef of [10, 40]) {
        const got = residentSearch(resident, store, q, 10, ef);
        if (got === undefined) gaveUp++;
        else expect(got).toEqual(await g.search(q, 10, ef));
      }
    }
    expect(gaveUp).toBeGreaterThan(0);
    // Without the entry point nothing can start.
    const meta = store.meta()!;
    resident.clear(meta.entry);
    expect(residentSearch(resident, store, queries[0]!, 10, 10)).toBeUndefined();
    // clearAll forgets everything; copies set again answer again.
    resident.clearAll();
    expect(resident.has(0)).toBe(false);
    for (const node of store.nodes()) resident.set(node);
    for (const q of queries.slice(0, 5))
      expect(residentSearch(resident, store, q, 10, 40)).toEqual(await g.search(q, 10, 40));
  });

  it("reuses the slots of forgotten copies: the same answers whatever the order copies come back in", async () => {
    const { g, store, resident, queries } = await built("ip", 1000);
    expect(resident.size).toBe(1000);
    for (let h = 0; h < store.count; h++) resident.clear(h);
    expect(resident.size).toBe(0);
    // Back in reverse handle order (each lands in a freed slot of another handle), half at a time.
    const nodes = [...store.nodes()].reverse();
    for (const n of nodes.slice(0, 500)) resident.set(n);
    expect(resident.size).toBe(500);
    for (const n of nodes.slice(500)) resident.set(n);
    expect(resident.size).toBe(1000);
    for (const q of queries)
      expect(residentSearch(resident, store, q, 10, 40)).toEqual(await g.search(q, 10, 40));
  });

  it("leaves out a node whose lists do not fit its capacity, or of another dimension count", async () => {
    const { store, resident, queries } = await built("l2", 300);
    const meta = store.meta()!;
    const entry = store.get(meta.entry)!;
    const overfull = {
      ...entry,
      neighbors: entry.neighbors.map((l, i) => (i === 0 ? [...l, ...l, ...l, ...l] : l)),
    };
    resident.set(overfull);
    expect(resident.has(meta.entry)).toBe(false);
    expect(residentSearch(resident, store, queries[0]!, 5, 10)).toBeUndefined();
    resident.set({ ...entry, vector: new Float32Array(3) });
    expect(resident.has(meta.entry)).toBe(false);
    // A query of another dimension count is not searched here (hnsw.ts raises the error).
    resident.set(entry);
    expect(residentSearch(resident, store, new Float32Array(5), 5, 10)).toBeUndefined();
    expect(residentSearch(resident, store, queries[0]!, 5, 10)).toBeDefined();
  });
});
