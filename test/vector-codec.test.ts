import { describe, expect, it } from "vitest";
import {
  cosineDistance,
  innerProduct,
  l2Distance,
  l2Normalize,
  l2Squared,
  norm,
} from "../src/vector/distance.js";
import {
  checkTypmod,
  decodeVector,
  encodeVector,
  formatVector,
  parseVector,
  vectorFromArray,
} from "../src/vector/vector.js";

function sqlstate(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { sqlstate?: string }).sqlstate;
  }
  return undefined;
}

describe("vector text form (pgvector's vector_in / vector_out)", () => {
  it("round-trips as pgvector prints it", () => {
    expect(formatVector(parseVector("[1,2,3]"))).toBe("[1,2,3]");
    expect(formatVector(parseVector(" [ 1.5 , -2 ,3e-5 ] "))).toBe("[1.5,-2,3e-05]");
    expect(formatVector(parseVector("[0.1,1e10,-0]"))).toBe("[0.1,1e+10,-0]");
    expect(formatVector(parseVector("[123456,1234567]"))).toBe("[123456,1.234567e+06]");
    expect(formatVector(parseVector("[3.4028235e38]"))).toBe("[3.4028235e+38]");
  });

  it("refuses malformed text with 22P02", () => {
    for (const t of ["1,2", "[1,2", "[1,,2]", "[a]", "(1,2)", "[1 2]", "", "[1,2]x"]) {
      expect(
        sqlstate(() => parseVector(t)),
        t,
      ).toBe("22P02");
    }
  });

  it("refuses NaN and Infinity with 22000 and out-of-range with 22003", () => {
    expect(sqlstate(() => parseVector("[NaN]"))).toBe("22000");
    expect(sqlstate(() => parseVector("[1,Infinity]"))).toBe("22000");
    expect(sqlstate(() => parseVector("[-inf]"))).toBe("22000");
    expect(sqlstate(() => parseVector("[1e39]"))).toBe("22003");
    expect(sqlstate(() => vectorFromArray([1, Number.NaN]))).toBe("22000");
    expect(sqlstate(() => vectorFromArray([Number.POSITIVE_INFINITY]))).toBe("22000");
  });

  it("checks dimensions 1..16000 and the column's typmod", () => {
    expect(sqlstate(() => parseVector("[]"))).toBe("22000");
    expect(parseVector(`[${new Array(16000).fill(1).join(",")}]`).length).toBe(16000);
    expect(sqlstate(() => parseVector(`[${new Array(16001).fill(1).join(",")}]`))).toBe("54000");
    expect(sqlstate(() => parseVector("[1,2]", 3))).toBe("22000");
    expect(() => parseVector("[1,2]", 3)).toThrow("expected 3 dimensions, not 2");
    expect(sqlstate(() => checkTypmod(0))).toBe("22023");
    expect(sqlstate(() => checkTypmod(16001))).toBe("22023");
    expect(checkTypmod(4096)).toBe(4096);
  });

  it("binary form round-trips and refuses corrupt bytes", () => {
    const v = vectorFromArray([1, -2.5, 3.25, 1e-7]);
    const b = encodeVector(v);
    expect(b.length).toBe(4 + 16);
    expect([...decodeVector(b)]).toEqual([...v]);
    // unaligned source
    const shifted = new Uint8Array(b.length + 1);
    shifted.set(b, 1);
    expect([...decodeVector(shifted.subarray(1))]).toEqual([...v]);
    expect(() => decodeVector(b.subarray(0, 10))).toThrow(/corrupt vector/);
  });
});

describe("distance kernels (pgvector's results)", () => {
  const a = vectorFromArray([1, 2, 3]);
  const b = vectorFromArray([4, 5, 6]);

  it("L2, inner product, cosine and norm", () => {
    expect(l2Squared(a, b)).toBe(27);
    expect(l2Distance(a, b)).toBeCloseTo(5.196152422706632, 12);
    expect(innerProduct(a, b)).toBe(32);
    expect(cosineDistance(a, b)).toBeCloseTo(0.025368153802923787, 12);
    expect(norm(vectorFromArray([3, 4]))).toBe(5);
  });

  it("matches a plain loop for every length (the unrolled tail)", () => {
    for (let n = 1; n < 23; n++) {
      const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1));
      const y = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 3));
      let l2 = 0;
      let ip = 0;
      for (let i = 0; i < n; i++) {
        l2 += (x[i]! - y[i]!) ** 2;
        ip += x[i]! * y[i]!;
      }
      expect(l2Squared(x, y)).toBeCloseTo(l2, 10);
      expect(innerProduct(x, y)).toBeCloseTo(ip, 10);
    }
  });

  it("zero vector under cosine is NaN; l2_normalize keeps zero", () => {
    expect(cosineDistance(vectorFromArray([0, 0]), vectorFromArray([1, 1]))).toBeNaN();
    expect([...l2Normalize(vectorFromArray([0, 0]))]).toEqual([0, 0]);
    expect([...l2Normalize(vectorFromArray([3, 4]))]).toEqual([Math.fround(0.6), Math.fround(0.8)]);
    // clamped: identical vectors are exactly 0 apart, opposite exactly 2
    expect(cosineDistance(a, a)).toBe(0);
    expect(cosineDistance(a, vectorFromArray([-1, -2, -3]))).toBe(2);
  });
});

describe("WASM SIMD kernels", () => {
  it("agree with the TypeScript kernels for every dimension count and when dimensions change", async () => {
    const { graphDistance, simdAvailable } = await import("../src/vector/simd.js");
    const { indexDistance } = await import("../src/vector/distance.js");
    expect(simdAvailable()).toBe(true);
    for (const metric of ["l2", "cosine", "ip"] as const) {
      const fast = graphDistance(metric);
      const slow = indexDistance(metric);
      for (const n of [1, 3, 7, 8, 9, 16, 31, 384, 1536, 16000, 5]) {
        const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7) / 3);
        for (let j = 0; j < 3; j++) {
          const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 1.3 + j) / 3);
          expect(fast(a, b)).toBeCloseTo(slow(a, b), 3);
          expect(fast(b, a)).toBeCloseTo(slow(b, a), 3);
        }
      }
    }
  });
});

describe("vector arena (vectors resident in WASM memory)", () => {
  it("gives exact kernel distances while slots are reused far beyond its capacity", async () => {
    const { newArena, graphKernel } = await import("../src/vector/simd.js");
    const { indexDistance } = await import("../src/vector/distance.js");
    const { prng } = await import("../src/util/prng.js");
    const dims = 37; // stride 40 floats = 160 bytes: 8 slots in 1,280 bytes
    const arena = newArena(dims, 8 * 160)!;
    expect(arena).not.toBeNull();
    const r = prng(9);
    const holders = Array.from({ length: 40 }, () => ({
      vector: Float32Array.from({ length: dims }, () => r() - 0.5),
      slot: -1,
      epoch: 0,
    }));
    for (const metric of ["l2", "cosine", "ip"] as const) {
      const k = graphKernel(metric, dims, arena);
      const slow = indexDistance(metric);
      // Pairs in an order that keeps evicting: every holder's hint goes stale many times over.
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < holders.length; i++) {
          const a = holders[i]!;
          const b = holders[(i * 7 + round * 3 + 1) % holders.length]!;
          expect(k.distance(a, b)).toBeCloseTo(slow(a.vector, b.vector), 4);
          expect(k.distance(b, a)).toBeCloseTo(slow(b.vector, a.vector), 4);
        }
      }
    }
    expect(arena.slots).toBe(8);
  });

  it("recopies a vector whose slot another vector took, even when the hint points at that slot", async () => {
    const { newArena, graphKernel } = await import("../src/vector/simd.js");
    const arena = newArena(8, 8 * 32)!;
    const k = graphKernel("ip", 8, arena);
    const ones = { vector: new Float32Array(8).fill(1), slot: -1, epoch: 0 };
    const twos = { vector: new Float32Array(8).fill(2), slot: -1, epoch: 0 };
    expect(k.distance(ones, ones)).toBe(-8);
    // A different array claiming the same slot (a copied node object, a stale hint) must not read ones' copy.
    const liar = { vector: new Float32Array(8).fill(3), slot: ones.slot, epoch: 0 };
    expect(k.distance(liar, twos)).toBe(-48);
    expect(k.distance(ones, twos)).toBe(-16);
    k.release(twos);
    expect(twos.slot).toBe(-1);
    expect(k.distance(twos, twos)).toBe(-32);
  });

  it("stops trusting hints once a full arena gives a slot to another vector", async () => {
    const { newArena, graphKernel } = await import("../src/vector/simd.js");
    const arena = newArena(8, 8 * 32)!;
    const k = graphKernel("ip", 8, arena);
    expect(arena.slots).toBe(8);
    const hs = Array.from({ length: 12 }, (_, i) => ({
      vector: new Float32Array(8).fill(i + 1),
      slot: -1,
      epoch: 0,
    }));
    // Twelve vectors through eight slots: the last four overwrite the copies of the first four, whose hints
    // (slot and epoch) were trusted a moment ago.
    for (const h of hs) expect(k.distance(h, h)).toBe(-8 * (h.vector[0]! * h.vector[0]!));
    const probe = { vector: new Float32Array(8).fill(1), slot: -1, epoch: 0 };
    for (const h of hs) expect(k.distance(h, probe)).toBe(-8 * h.vector[0]!);
  });
});

describe("HNSW node records (node-codec.ts)", () => {
  const table = async () => {
    const { MemoryNodeStore } = await import("../src/vector/hnsw.js");
    return new MemoryNodeStore();
  };

  it("round-trips a node through its vector and links records", async () => {
    const { decodeNode, encodeLinks, encodeVector } = await import("../src/vector/node-codec.js");
    const ids = await table();
    const node = {
      id: "\u0001a",
      handle: ids.handle("\u0001a"),
      vector: Float32Array.from([0.5, -1, 2]),
      level: 1,
      neighbors: [[ids.handle("b"), ids.handle("\u00ffc")], [ids.handle("b")]],
      deleted: true,
      slot: -1,
      epoch: 0,
    };
    const back = decodeNode(node.id, encodeVector(node), encodeLinks(node, ids), ids);
    expect([...back.vector]).toEqual([0.5, -1, 2]);
    expect(back.level).toBe(1);
    expect(back.deleted).toBe(true);
    expect(back.neighbors.map((l) => l.map((h) => ids.idOf(h)))).toEqual([["b", "\u00ffc"], ["b"]]);
    // The vector record does not carry the links: a relink rewrites only the small record.
    expect(encodeVector(node).length).toBe(8 + 4 * 3);
  });

  it("reads format-1 node records (written before the split), superseded by a links record once written", async () => {
    const { decodeNode, encodeLinks } = await import("../src/vector/node-codec.js");
    const ids = await table();
    // format 1: header (format 1, deleted, level 0), n = 2, two floats, then level 0's links: 1 link "xy"
    const v1 = new Uint8Array(8 + 8 + 2 + 2 + 2);
    const dv = new DataView(v1.buffer);
    v1.set([1, 1, 0, 0]);
    dv.setUint32(4, 2, true);
    dv.setFloat32(8, 1.5, true);
    dv.setFloat32(12, -2, true);
    dv.setUint16(16, 1, true);
    dv.setUint16(18, 2, true);
    v1.set([0x78, 0x79], 20);
    const old = decodeNode("n", v1, undefined, ids);
    expect([...old.vector]).toEqual([1.5, -2]);
    expect(old.deleted).toBe(true);
    expect(old.neighbors.map((l) => l.map((h) => ids.idOf(h)))).toEqual([["xy"]]);
    const relinked = { ...old, neighbors: [[ids.handle("zz")]], deleted: false };
    const now = decodeNode("n", v1, encodeLinks(relinked, ids), ids);
    expect(now.deleted).toBe(false);
    expect(now.neighbors.map((l) => l.map((h) => ids.idOf(h)))).toEqual([["zz"]]);
  });

  it("refuses inconsistent records with CORRUPTION", async () => {
    const { decodeNode, encodeLinks, encodeVector } = await import("../src/vector/node-codec.js");
    const ids = await table();
    const node = {
      id: "a",
      handle: ids.handle("a"),
      vector: Float32Array.from([1, 2]),
      level: 0,
      neighbors: [[]],
      deleted: false,
      slot: -1,
      epoch: 0,
    };
    const vec = encodeVector(node);
    expect(() => decodeNode("a", vec, undefined, ids)).toThrow(/links record missing/);
    const tallLinks = encodeLinks({ ...node, level: 1, neighbors: [[], []] }, ids);
    expect(() => decodeNode("a", vec, tallLinks, ids)).toThrow(/links level/);
    expect(() => decodeNode("a", vec.subarray(0, 10), encodeLinks(node, ids), ids)).toThrow(/runs past/);
    try {
      decodeNode("a", vec, undefined, ids);
    } catch (e) {
      expect((e as { code?: string }).code).toBe("CORRUPTION");
    }
  });
});
