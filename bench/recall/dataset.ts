/**
 * The recall bench's datasets, shared by recall.bench.ts and the profiling tool (profile.ts): unit-normalised
 * points from a seeded mixture of Gaussian clusters (centroids N(0,1)^d, points centroid + N(0, 0.9²)^d, n/500
 * clusters) and queries drawn from the same mixture. Deterministic in (n, d, queryCount, seed).
 */

import { prng } from "../../src/util/prng.js";

function gaussian(r: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    const u = Math.max(r(), 1e-12);
    const v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    spare = m * Math.sin(2 * Math.PI * v);
    return m * Math.cos(2 * Math.PI * v);
  };
}

function normalise(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const n = Math.sqrt(s);
  for (let i = 0; i < v.length; i++) v[i] = v[i]! / n;
  return v;
}

export interface Dataset {
  name: string;
  n: number;
  d: number;
  data: Float32Array[];
  queries: Float32Array[];
}

export function makeDataset(name: string, n: number, d: number, queryCount: number, seed: number): Dataset {
  const g = gaussian(prng(seed ^ d));
  const clusters = Math.max(4, Math.round(n / 500));
  const centroids = Array.from({ length: clusters }, () => Float32Array.from({ length: d }, g));
  const pick = prng(seed + 1);
  const point = () => {
    const c = centroids[Math.floor(pick() * clusters)]!;
    const v = new Float32Array(d);
    for (let i = 0; i < d; i++) v[i] = c[i]! + 0.9 * g();
    return normalise(v);
  };
  const data = Array.from({ length: n }, point);
  const queries = Array.from({ length: queryCount }, point);
  return { name, n, d, data, queries };
}
