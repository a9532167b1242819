import { describe, expect, it } from "vitest";
import { isTwillError } from "../src/errors.js";
import { prng } from "../src/util/prng.js";
import { indexDistance, l2Normalize, type Metric } from "../src/vector/distance.js";
import { Hnsw, type HnswParams, MemoryNodeStore } from "../src/vector/hnsw.js";
import { MemoryHnsw } from "../src/vector/memory-hnsw.js";
import { decodeNode, encodeLinks, encodeVector } from "../src/vector/node-codec.js";
import { type ArenaHolder, graphKernel, newArena, VectorSlab } from "../src/vector/simd.js";

function randomVectors(n: number, dim: number, seed: number, metric: Metric): Float32Array[] {
  const r = prng(seed);
  return Array.from({ length: n }, () => {
    const v = Float32Array.from({ length: dim }, () => r() - 0.5);
    return metric === "cosine" ? l2Normalize(v) : v;
  });
}

/** Every node of a record store as ids: level, deleted flag, links per level. */
function recordGraph(store: MemoryNodeStore): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const n of store.nodes()) {
    out.set(n.id, {
      level: n.level,
      deleted: n.deleted,
      links: n.neighbors.map((l) => l.map((h) => store.idOf(h))),
      vector: Array.from(n.vector),
    });
  }
  return out;
}

function flatGraph(g: MemoryHnsw): Map<string, unknown> {
  const ids: string[] = [];
  for (const n of g.nodes()) ids[n.handle] = n.id;
  const out = new Map<string, unknown>();
  for (const n of g.nodes()) {
    out.set(n.id, {
      level: n.level,
      deleted: n.deleted,
      links: n.neighbors.map((l) => l.map((h) => ids[h]!)),
      vector: Array.from(n.vector),
    });
  }
  return out;
}

/**
 * The same script of inserts, re-inserts (updates) and deletes on hnsw.ts over a MemoryNodeStore and on
 * MemoryHnsw: both must hold the same graph and answer every search the same.
 */
async function twins(metric: Metric, dim: number, n: number, params: Omit<HnswParams, "metric">) {
  const p = { ...params, metric };
  const store = new MemoryNodeStore();
  const ref = new Hnsw(p, store);
  const flat = new MemoryHnsw(p);
  const data = randomVectors(n, dim, 11 + dim, metric);
  const moved = randomVectors(n, dim, 99 + dim, metric);
  const r = prng(5);
  for (let i = 0; i < n; i++) {
    await ref.insert(String(i), data[i]!);
    flat.insert(String(i), data[i]!);
    const x = r();
    if (x < 0.05 && i > 10) {
      const id = String(Math.floor(r() * i));
      await ref.markDeleted(id);
      flat.markDeleted(id);
    } else if (x < 0.1 && i > 10) {
      const j = Math.floor(r() * i);
      await ref.insert(String(j), moved[j]!);
      flat.insert(String(j), moved[j]!);
    }
  }
  return { store, ref, flat };
}

describe("MemoryHnsw (the direct in-memory index)", () => {
  for (const [metric, dim] of [
    ["l2", 5],
    ["cosine", 24],
    ["ip", 17],
    ["cosine", 1536],
  ] as const) {
    it(`builds exactly hnsw.ts's graph and answers its searches (${metric}, ${dim} dims)`, async () => {
      const n = dim > 1000 ? 300 : 1500;
      const { store, ref, flat } = await twins(metric, dim, n, { m: 6, efConstruction: 24 });
      expect(flatGraph(flat)).toEqual(recordGraph(store));
      const queries = randomVectors(40, dim, 3, metric);
      for (const ef of [1, 10, 50]) {
        for (const q of queries) {
          const want = await ref.search(q, 7, ef);
          expect(flat.search(q, 7, ef)).toEqual(want);
        }
      }
    }, 60_000);
  }

  it("keeps pgvector's bar: recall >= 0.99 for top-20 on 10k random vectors, default parameters", () => {
    for (const metric of ["l2", "cosine"] as const) {
      const data = randomVectors(10_000, 3, 42, metric);
      const g = new MemoryHnsw({ m: 16, efConstruction: 64, metric });
      for (let i = 0; i < data.length; i++) g.insert(String(i), data[i]!);
      const dist = indexDistance(metric);
      let found = 0;
      const queries = randomVectors(50, 3, 7, metric);
      for (const q of queries) {
        const truth = new Set(
          data
            .map((v, i) => ({ i, d: dist(q, v) }))
            .sort((a, b) => a.d - b.d)
            .slice(0, 20)
            .map((x) => String(x.i)),
        );
        for (const hit of g.search(q, 20, 40).hits) if (truth.has(hit.id)) found++;
      }
      expect(found / (queries.length * 20)).toBeGreaterThanOrEqual(0.99);
    }
  }, 60_000);

  it("round-trips through node records: writeTo a store, encode, decode, from", async () => {
    const { flat } = await twins("l2", 8, 400, { m: 4, efConstruction: 16 });
    const store = new MemoryNodeStore();
    flat.writeTo(store);
    // Through the KV record format too: what the SQL index would store for this graph.
    const decoded = new MemoryNodeStore();
    for (const node of store.nodes()) {
      const copy = decodeNode(node.id, encodeVector(node), encodeLinks(node, store), decoded);
      decoded.put(copy);
    }
    const meta = store.meta()!;
    decoded.putMeta({ entry: decoded.handle(store.idOf(meta.entry)), maxLevel: meta.maxLevel });
    const back = MemoryHnsw.from(flat.params, decoded.nodes(), decoded.meta(), (h) => decoded.idOf(h));
    expect(flatGraph(back)).toEqual(flatGraph(flat));
    const viaRecords = new Hnsw(flat.params, decoded);
    for (const q of randomVectors(20, 8, 4, "l2")) {
      expect(back.search(q, 5, 20)).toEqual(flat.search(q, 5, 20));
      expect(await viaRecords.search(q, 5, 20)).toEqual(flat.search(q, 5, 20));
    }
    expect(back.size).toBe(flat.size);
  });

  it("counts live nodes; deleted ones route but are never returned", () => {
    const g = new MemoryHnsw({ m: 8, efConstruction: 32, metric: "l2" });
    expect(g.search(Float32Array.from([1, 2]), 3, 10)).toEqual({ hits: [], exhausted: true });
    const data = randomVectors(300, 2, 8, "l2");
    for (let i = 0; i < data.length; i++) g.insert(String(i), data[i]!);
    expect(g.size).toBe(300);
    g.markDeleted("5");
    g.markDeleted("5");
    g.markDeleted("no such id");
    expect(g.size).toBe(299);
    expect(g.has("5")).toBe(false);
    expect(g.search(data[5]!, 10, 40).hits.map((h) => h.id)).not.toContain("5");
    g.insert("5", data[5]!);
    expect(g.size).toBe(300);
    expect(g.search(data[5]!, 1, 40).hits[0]!.id).toBe("5");
    for (let i = 0; i < data.length; i++) g.markDeleted(String(i));
    expect(g.size).toBe(0);
    expect(g.search(data[5]!, 3, 40)).toEqual({ hits: [], exhausted: true });
  });

  it("refuses bad input with typed errors and keeps the graph usable", () => {
    const bad = (f: () => unknown, code = "INVALID_ARGUMENT") => {
      let error: unknown;
      try {
        f();
      } catch (e) {
        error = e;
      }
      expect(isTwillError(error)).toBe(true);
      expect((error as { code: string }).code).toBe(code);
    };
    bad(() => new MemoryHnsw({ m: 1, efConstruction: 64, metric: "l2" }));
    bad(() => new MemoryHnsw({ m: 16, efConstruction: 64, metric: "manhattan" as Metric }));
    bad(() => new MemoryHnsw({ m: 16.5, efConstruction: 64, metric: "l2" }));
    const g = new MemoryHnsw({ m: 4, efConstruction: 8, metric: "cosine" });
    bad(() => g.insert("a", new Float32Array(0)));
    g.insert("a", Float32Array.from([1, 0, 0]));
    bad(() => g.insert("b", Float32Array.from([1, 0])));
    bad(() => g.insert("b", Float32Array.from([1, Number.NaN, 0])));
    bad(() => g.insert("b", [1, 0, 0] as unknown as Float32Array));
    bad(() => g.search(Float32Array.from([1, 0]), 1, 10));
    bad(() => g.search(Float32Array.from([1, Number.POSITIVE_INFINITY, 0]), 1, 10));
    bad(() => g.search(Float32Array.from([1, 0, 0]), -1, 10));
    bad(() => g.search(Float32Array.from([1, 0, 0]), 1, 0));
    bad(() => g.search(Float32Array.from([1, 0, 0]), 1, 1.5));
    expect(g.search(Float32Array.from([1, 0, 0]), 1, 10).hits.map((h) => h.id)).toEqual(["a"]);
    expect(g.size).toBe(1);
  });

  it("refuses corrupt records in from", () => {
    const store = new MemoryNodeStore();
    const ref = new Hnsw({ m: 4, efConstruction: 8, metric: "l2" }, store);
    const p = { m: 4, efConstruction: 8, metric: "l2" as const };
    let error: unknown;
    try {
      MemoryHnsw.from(
        p,
        [
          {
            id: "x",
            handle: 0,
            vector: Float32Array.from([1]),
            level: 0,
            neighbors: [[7]],
            deleted: false,
            slot: -1,
            epoch: 0,
          },
        ],
        { entry: 0, maxLevel: 0 },
        (h) => (h === 0 ? "x" : "y"),
      );
    } catch (e) {
      error = e;
    }
    expect(isTwillError(error, "CORRUPTION")).toBe(true);
    expect(ref.params.m).toBe(4);
  });

  it("batch distances equal pairwise ones, across slab growth", () => {
    for (const metric of ["l2", "cosine"] as const) {
      const slab = new VectorSlab(40, metric);
      const data = randomVectors(500, 40, 2, metric);
      slab.ensure(data.length);
      for (let i = 0; i < data.length; i++) slab.write(slab.nodeBase + i * slab.strideBytes, data[i]!);
      slab.ensure(5000); // grows the memory: the vectors stay
      slab.write(slab.scratch, data[3]!);
      for (let j = 0; j < 200; j++) slab.list[j] = slab.nodeBase + ((j * 7) % 500) * slab.strideBytes;
      slab.batch(slab.scratch, 1); // the odd last one alone
      expect(slab.out[0]).toBe(slab.raw(slab.scratch, slab.list[0]!));
      slab.batch(slab.scratch, 199); // pairs, then an odd last one
      const last = slab.out[198];
      slab.batch(slab.scratch, 200);
      expect(slab.out[198]).toBe(last);
      const ts =
        metric === "l2"
          ? indexDistance("l2")
          : (a: Float32Array, b: Float32Array) => 1 - indexDistance("cosine")(a, b);
      for (let j = 0; j < 200; j++) {
        const b = slab.nodeBase + ((j * 7) % 500) * slab.strideBytes;
        expect(slab.out[j]).toBe(slab.raw(slab.scratch, b));
        expect(slab.out[j]).toBeCloseTo(ts(data[3]!, data[(j * 7) % 500]!), 4);
      }
    }
  });

  it("the arena's batch distances equal its pairwise ones, also when a batch outgrows the arena", () => {
    for (const metric of ["l2", "cosine", "ip"] as const) {
      // Room for 12 slots: a batch of 30 must reuse slots while gathering and take the pairwise path.
      const arena = newArena(20, 12 * 80)!;
      const k = graphKernel(metric, 20, arena);
      const holders: ArenaHolder[] = randomVectors(30, 20, 6, metric).map((vector) => ({
        vector,
        slot: -1,
        epoch: 0,
      }));
      const q: ArenaHolder = { vector: randomVectors(1, 20, 9, metric)[0]!, slot: -1, epoch: 0 };
      for (const count of [5, 30]) {
        const out = new Float64Array(count);
        k.distances(q, holders, count, out);
        for (let j = 0; j < count; j++) expect(out[j]).toBe(k.distance(q, holders[j]!));
      }
    }
  });
});

describe("MemoryHnsw from the package entry", () => {
  it("is exported by twilldb and finds the nearest of three points", async () => {
    const { MemoryHnsw: Exported } = await import("../src/index.js");
    const g = new Exported({ m: 4, efConstruction: 16, metric: "l2" });
    g.insert("a", new Float32Array([0, 0]));
    g.insert("b", new Float32Array([10, 10]));
    g.insert("c", new Float32Array([1, 0]));
    const { hits } = g.search(new Float32Array([0.9, 0.1]), 2, 10);
    expect(hits.map((h) => h.id)).toEqual(["c", "a"]);
  });
});
