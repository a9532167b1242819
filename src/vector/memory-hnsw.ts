/**
 * The direct, in-memory HNSW index: the algorithm of hnsw.ts (same levels, same beam search, same heuristic,
 * same relink and delete rules, same order of every comparison) over flat typed arrays instead of node objects
 * behind a NodeStore. The SQL index keeps its nodes as engine records (hnsw.ts over the transaction's store);
 * this is the working form for a graph that lives only in memory, and it converts to and from those node
 * records (`writeTo`, `from`), so a graph means the same in either form. test/vector-memory-hnsw.test.ts builds
 * the same data both ways and requires identical link lists and search results.
 *
 * Layout (handle h = the order in which ids were first inserted; one slab slot per handle):
 *   vectors      VectorSlab (simd.ts): vector h at a fixed byte offset of the graph's own WASM memory
 *   level 0      links0: Int32Array, per handle S0 = 1 + 2M slots: [count, link_0 … link_{2M−1}]
 *   levels 1..L  upper[h]: Int32Array of L · S1 slots, S1 = 1 + M, level l at (l − 1) · S1: [count, links…]
 *   per handle   levels: Uint8Array (NO_NODE: a handle without a node), deleted: Uint8Array (1 = deleted)
 * Invariants: a list's count ≤ its capacity (2M at level 0, M above); every link names a handle with a node
 * whose level ≥ the list's level; the entry point is a node on the top level.
 *
 * What the layout buys over the node objects (bench/recall/profile.ts; the direct search at 50k × 384 spent
 * 10% on a node's arena-epoch load and 5% on its links array, both cache misses per visited node): a visited
 * node costs a stamp check and an offset store; the distances of one expanded node's unvisited neighbours are
 * one WASM call (`VectorSlab.batch`); relinks rewrite a list in place; heaps hold handles in Int32Arrays; and an
 * insert allocates nothing but its id's entries (scratch arrays live with the graph).
 *
 * Not thread-safe, and not re-entrant: every method is synchronous and runs to completion.
 */

import { z } from "zod";
import { ErrorCodes, TwillError } from "../errors.js";
import type { Metric } from "./distance.js";
import {
  type HnswMeta,
  type HnswNode,
  type HnswParams,
  levelFor,
  NodeIds,
  type NodeStore,
  type SearchHit,
} from "./hnsw.js";
import { SLAB_BATCH_MAX, VectorSlab } from "./simd.js";

const NO_NODE = 255;
/** hnsw.ts caps levels at 16. */
const LEVEL_MAX = 16;

const paramsSchema = z.object({
  m: z.number().int().min(2).max(100),
  efConstruction: z.number().int().min(4).max(1000),
  metric: z.enum(["l2", "cosine", "ip"]),
});

/** The storage of a binary heap of (distance, handle) pairs; the order lives in the subclass (no branch on it). */
class HandleHeap {
  d = new Float64Array(256);
  n = new Int32Array(256);
  size = 0;
  protected grow(): void {
    const d = new Float64Array(2 * this.d.length);
    d.set(this.d);
    const n = new Int32Array(2 * this.n.length);
    n.set(this.n);
    this.d = d;
    this.n = n;
  }
}

/** Binary min-heap of (distance, handle): the algorithm of hnsw.ts's MinHeap (same ties) over an Int32Array. */
export class MinHeap extends HandleHeap {
  push(dist: number, h: number): void {
    if (this.size === this.d.length) this.grow();
    const d = this.d;
    const n = this.n;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (d[p]! <= dist) break;
      d[i] = d[p]!;
      n[i] = n[p]!;
      i = p;
    }
    d[i] = dist;
    n[i] = h;
  }
  pop(): number {
    const d = this.d;
    const n = this.n;
    const top = n[0]!;
    const len = --this.size;
    const lastD = d[len]!;
    const lastN = n[len]!;
    if (len > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= len) break;
        const r = l + 1;
        const c = r < len && d[r]! < d[l]! ? r : l;
        if (d[c]! >= lastD) break;
        d[i] = d[c]!;
        n[i] = n[c]!;
        i = c;
      }
      d[i] = lastD;
      n[i] = lastN;
    }
    return top;
  }
}

/** Binary max-heap of (distance, handle), as hnsw.ts's MaxHeap. */
export class MaxHeap extends HandleHeap {
  push(dist: number, h: number): void {
    if (this.size === this.d.length) this.grow();
    const d = this.d;
    const n = this.n;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (d[p]! >= dist) break;
      d[i] = d[p]!;
      n[i] = n[p]!;
      i = p;
    }
    d[i] = dist;
    n[i] = h;
  }
  pop(): number {
    const d = this.d;
    const n = this.n;
    const top = n[0]!;
    const len = --this.size;
    const lastD = d[len]!;
    const lastN = n[len]!;
    if (len > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= len) break;
        const r = l + 1;
        const c = r < len && d[r]! > d[l]! ? r : l;
        if (d[c]! <= lastD) break;
        d[i] = d[c]!;
        n[i] = n[c]!;
        i = c;
      }
      d[i] = lastD;
      n[i] = lastN;
    }
    return top;
  }
}

/** A (handle, distance) list nearest first: a beam's result, the entries of the next level, a selection. */
class Beam {
  h = new Int32Array(256);
  d = new Float64Array(256);
  size = 0;
  reserve(n: number): void {
    if (n <= this.h.length) return;
    const h = new Int32Array(Math.max(n, 2 * this.h.length));
    h.set(this.h);
    const d = new Float64Array(h.length);
    d.set(this.d);
    this.h = h;
    this.d = d;
  }
}

/** A copy of `a` in a new array of `length` elements (`fill` past the old ones): how the flat layouts grow. */
export function grown<T extends Uint8Array | Int32Array | Uint32Array>(a: T, length: number, fill = 0): T {
  const b = new (a.constructor as new (n: number) => T)(length);
  if (fill !== 0) b.fill(fill, a.length);
  b.set(a);
  return b;
}

export class MemoryHnsw {
  readonly params: HnswParams;
  private readonly ids = new NodeIds();
  private slab: VectorSlab | undefined;
  private readonly s0: number;
  private readonly s1: number;
  private cap = 0;
  private levels = new Uint8Array(0);
  private deletedFlags = new Uint8Array(0);
  private links0 = new Int32Array(0);
  private readonly upper: (Int32Array | undefined)[] = [];
  private marks = new Uint32Array(0);
  private stamp = 0;
  private entry = -1;
  private maxLevel = -1;
  private live = 0;
  /** distance = offset + sign · raw kernel value (exactly hnsw.ts's 1 − a·b, −a·b or Σ(a − b)²). */
  private readonly offset: number;
  private readonly sign: number;
  // Scratch, reused by every search and insert.
  private readonly cand = new MinHeap();
  private readonly res = new MaxHeap();
  /** A level's entries and its result: the result of one level is the entries of the next (swapped). */
  private beam = new Beam();
  private spare = new Beam();
  private readonly chosen: Int32Array[];
  private readonly chosenCount = new Int32Array(LEVEL_MAX + 1);
  private readonly batchH = new Int32Array(SLAB_BATCH_MAX);
  private readonly candH: Int32Array;
  private readonly candD: Float64Array;
  private readonly keptH: Int32Array;
  private readonly keptD: Float64Array;
  private readonly rowBuf: Int32Array;
  private greedyH = 0;
  private greedyD = 0;

  constructor(params: HnswParams) {
    const p = paramsSchema.safeParse(params);
    if (!p.success)
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `invalid HNSW parameters: ${p.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")} (m 2..100, efConstruction 4..1000, metric l2 | cosine | ip)`,
      );
    this.params = p.data;
    const m = p.data.m;
    this.s0 = 1 + 2 * m;
    this.s1 = 1 + m;
    this.offset = p.data.metric === "cosine" ? 1 : 0;
    this.sign = p.data.metric === "l2" ? 1 : -1;
    this.chosen = Array.from({ length: LEVEL_MAX + 1 }, () => new Int32Array(m));
    this.candH = new Int32Array(2 * m + 1);
    this.candD = new Float64Array(2 * m + 1);
    this.keptH = new Int32Array(2 * m + 1);
    this.keptD = new Float64Array(2 * m + 1);
    this.rowBuf = new Int32Array(2 * m);
  }

  /** Live (not deleted) nodes. */
  get size(): number {
    return this.live;
  }

  /** The metric, fixed at construction. */
  get metric(): Metric {
    return this.params.metric;
  }

  private maxLinks(level: number): number {
    return level === 0 ? 2 * this.params.m : this.params.m;
  }

  /** The slab, created by the first vector (which fixes the dimension count); checks every later one. */
  private vectors(v: Float32Array, what: string): VectorSlab {
    if (!(v instanceof Float32Array) || v.length === 0)
      throw new TwillError(ErrorCodes.InvalidArgument, `${what} must be a non-empty Float32Array`);
    for (let i = 0; i < v.length; i++) {
      if (!Number.isFinite(v[i]!))
        throw new TwillError(
          ErrorCodes.InvalidArgument,
          `${what} has a non-finite component at ${i}: ${v[i]}`,
        );
    }
    if (this.slab === undefined) {
      this.slab = new VectorSlab(v.length, this.params.metric);
    } else if (v.length !== this.slab.dims) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `${what} has ${v.length} dimensions, the graph's vectors have ${this.slab.dims}`,
      );
    }
    return this.slab;
  }

  /** The handle of `id`, given out (with room in every per-handle array) on first insert. */
  private handleFor(id: string): number {
    const known = this.ids.find(id);
    if (known !== undefined) return known;
    const h = this.ids.handle(id);
    if (h >= this.cap) this.grow(h + 1);
    this.levels[h] = NO_NODE;
    return h;
  }

  private grow(n: number): void {
    const cap = Math.max(n, 2 * this.cap, 256);
    this.levels = grown(this.levels, cap, NO_NODE);
    this.deletedFlags = grown(this.deletedFlags, cap);
    this.links0 = grown(this.links0, cap * this.s0);
    this.marks = grown(this.marks, cap);
    this.cap = cap;
    this.slab?.ensure(cap);
  }

  private nodeAt(h: number): number {
    return this.slab!.nodeBase + h * this.slab!.strideBytes;
  }

  private newStamp(): number {
    if (this.stamp === 0xffffffff) {
      this.marks.fill(0);
      this.stamp = 0;
    }
    return ++this.stamp;
  }

  /**
   * hnsw.ts's searchLayer from the entries in `from`, with the query at byte `q`; leaves up to ef results in
   * `beam`, nearest first. `live`: only non-deleted nodes enter the result; `exclude`: a handle never in it.
   */
  private searchLayer(
    q: number,
    from: Beam,
    beam: Beam,
    ef: number,
    level: number,
    live: boolean,
    exclude: number,
  ): void {
    const slab = this.slab!;
    const cand = this.cand;
    const res = this.res;
    const marks = this.marks;
    const stamp = this.newStamp();
    const deleted = this.deletedFlags;
    cand.size = 0;
    res.size = 0;
    for (let i = 0; i < from.size; i++) {
      const h = from.h[i]!;
      const d = from.d[i]!;
      marks[h] = stamp;
      cand.push(d, h);
      if ((!live || deleted[h] === 0) && h !== exclude) res.push(d, h);
    }
    const list = slab.list;
    const out = slab.out;
    const batchH = this.batchH;
    const base = slab.nodeBase;
    const stride = slab.strideBytes;
    const offset = this.offset;
    const sign = this.sign;
    const links0 = this.links0;
    const upper = this.upper;
    const s1 = this.s1;
    const s0 = this.s0;
    while (cand.size > 0) {
      if (res.size >= ef && cand.d[0]! > res.d[0]!) break;
      const c = cand.pop();
      let arr: Int32Array;
      let p: number;
      if (level === 0) {
        arr = links0;
        p = c * s0;
      } else {
        const u = upper[c];
        if (u === undefined) continue;
        arr = u;
        p = (level - 1) * s1;
      }
      const count = arr[p]!;
      let nb = 0;
      for (let i = 1; i <= count; i++) {
        const h = arr[p + i]!;
        if (marks[h] === stamp) continue;
        marks[h] = stamp;
        list[nb] = base + h * stride;
        batchH[nb++] = h;
      }
      if (nb === 0) continue;
      slab.batch(q, nb);
      for (let j = 0; j < nb; j++) {
        const d = offset + sign * out[j]!;
        if (res.size < ef || d < res.d[0]!) {
          const h = batchH[j]!;
          cand.push(d, h);
          if ((!live || deleted[h] === 0) && h !== exclude) {
            res.push(d, h);
            if (res.size > ef) res.pop();
          }
        }
      }
    }
    const n = res.size;
    beam.reserve(n);
    for (let i = n - 1; i >= 0; i--) {
      beam.d[i] = res.d[0]!;
      beam.h[i] = res.pop();
    }
    beam.size = n;
  }

  /** hnsw.ts's greedy descent on one level from (greedyH, greedyD); leaves the result there. */
  private greedy(q: number, level: number): void {
    const slab = this.slab!;
    const list = slab.list;
    const out = slab.out;
    const base = slab.nodeBase;
    const stride = slab.strideBytes;
    const p = (level - 1) * this.s1;
    for (let changed = true; changed; ) {
      changed = false;
      const arr = this.upper[this.greedyH];
      if (arr === undefined) return;
      const count = arr[p]!;
      for (let i = 0; i < count; i++) list[i] = base + arr[p + 1 + i]! * stride;
      slab.batch(q, count);
      for (let i = 0; i < count; i++) {
        const d = this.offset + this.sign * out[i]!;
        if (d < this.greedyD) {
          this.greedyH = arr[p + 1 + i]!;
          this.greedyD = d;
          changed = true;
        }
      }
    }
  }

  private dist(a: number, b: number): number {
    return this.offset + this.sign * this.slab!.raw(a, b);
  }

  /**
   * hnsw.ts's selectNeighbors (Algorithm 4 without extending candidates) over candidates nearest first in
   * (hs, ds)[0..n): the kept ones go to (outH, outD); returns how many.
   */
  private select(
    hs: Int32Array,
    ds: Float64Array,
    n: number,
    m: number,
    outH: Int32Array,
    outD: Float64Array | undefined,
  ): number {
    let kept = 0;
    for (let i = 0; i < n && kept < m; i++) {
      const c = hs[i]!;
      const cd = ds[i]!;
      const ca = this.nodeAt(c);
      let good = true;
      for (let j = 0; j < kept; j++) {
        if (this.dist(ca, this.nodeAt(outH[j]!)) < cd) {
          good = false;
          break;
        }
      }
      if (good) {
        outH[kept] = c;
        if (outD) outD[kept] = cd;
        kept++;
      }
    }
    return kept;
  }

  /** The list of `h` on `level`: the array and the offset of its count slot. */
  private listOf(h: number, level: number): { arr: Int32Array; p: number } {
    return level === 0
      ? { arr: this.links0, p: h * this.s0 }
      : { arr: this.upper[h]!, p: (level - 1) * this.s1 };
  }

  /**
   * Inserts (or re-inserts) `id`. As hnsw.ts: `vector` is what the graph compares (unit length for cosine: the
   * caller normalises), and the graph keeps a copy.
   */
  insert(id: string, vector: Float32Array): void {
    if (typeof id !== "string")
      throw new TwillError(ErrorCodes.InvalidArgument, "an HNSW node id must be a string");
    const slab = this.vectors(vector, "the vector");
    const m = this.params.m;
    const level = levelFor(id, m);
    const handle = this.handleFor(id);
    slab.ensure(this.cap);
    const existed = this.levels[handle] !== NO_NODE;
    if (this.entry === -1) {
      this.place(handle, level, vector);
      this.entry = handle;
      this.maxLevel = level;
      return;
    }
    const q = slab.scratch;
    slab.write(q, vector);
    this.greedyH = this.entry;
    this.greedyD = this.dist(q, this.nodeAt(this.entry));
    for (let l = this.maxLevel; l > level; l--) this.greedy(q, l);
    let entries = this.spare;
    let beam = this.beam;
    entries.h[0] = this.greedyH;
    entries.d[0] = this.greedyD;
    entries.size = 1;
    const top = Math.min(level, this.maxLevel);
    // Lists are written in place level by level: a level's search reads only that level's lists, and this node's
    // list on level l is written after the search of level l, so the searches see what hnsw.ts's see.
    if (!existed) this.allocate(handle, level);
    for (let l = top; l >= 0; l--) {
      this.searchLayer(q, entries, beam, this.params.efConstruction, l, false, handle);
      const chosen = this.chosen[l]!;
      const k = this.select(beam.h, beam.d, beam.size, m, chosen, undefined);
      this.chosenCount[l] = k;
      const { arr, p } = this.listOf(handle, l);
      const row = this.rowBuf;
      let n = 0;
      for (let i = 0; i < k; i++) row[n++] = chosen[i]!;
      if (existed) {
        // Re-insert (an update): keep the old links while there is room (hnsw.ts's reason).
        const room = this.maxLinks(l) - k;
        const oldCount = arr[p]!;
        let added = 0;
        for (let i = 1; i <= oldCount && added < room; i++) {
          const x = arr[p + i]!;
          if (x === handle || chosen.subarray(0, k).includes(x)) continue;
          row[n++] = x;
          added++;
        }
      }
      arr[p] = n;
      for (let i = 0; i < n; i++) arr[p + 1 + i] = row[i]!;
      // The result is the next level's entries; an empty one keeps the previous entries (as hnsw.ts).
      if (beam.size > 0) {
        const t = entries;
        entries = beam;
        beam = t;
      }
    }
    slab.write(this.nodeAt(handle), vector);
    if (this.deletedFlags[handle] === 1 || !existed) this.live++;
    this.deletedFlags[handle] = 0;
    this.levels[handle] = level;
    for (let l = top; l >= 0; l--) {
      const chosen = this.chosen[l]!;
      const k = this.chosenCount[l]!;
      for (let i = 0; i < k; i++) this.link(chosen[i]!, handle, l);
    }
    if (level > this.maxLevel) {
      this.entry = handle;
      this.maxLevel = level;
    }
  }

  /** The first node of a graph: its vector and empty lists. */
  private place(handle: number, level: number, vector: Float32Array): void {
    this.allocate(handle, level);
    this.slab!.write(this.nodeAt(handle), vector);
    this.levels[handle] = level;
    this.deletedFlags[handle] = 0;
    this.live++;
  }

  /** Empty lists on every level of a new node. */
  private allocate(handle: number, level: number): void {
    this.links0[handle * this.s0] = 0;
    while (this.upper.length <= handle) this.upper.push(undefined);
    this.upper[handle] = level > 0 ? new Int32Array(level * this.s1) : undefined;
  }

  /** hnsw.ts's link: adds `to` to the list of `from` on `level`, pruning with the heuristic when it is full. */
  private link(from: number, to: number, level: number): void {
    if (this.levels[from]! < level) return;
    const { arr, p } = this.listOf(from, level);
    const count = arr[p]!;
    for (let i = 1; i <= count; i++) if (arr[p + i] === to) return;
    if (count < this.maxLinks(level)) {
      arr[p + 1 + count] = to;
      arr[p] = count + 1;
      return;
    }
    this.prune(from, to, arr, p, level);
  }

  /** hnsw.ts's prune: the full list of `from` plus `to`, by the heuristic; unchanged when `to` would be rejected. */
  private prune(from: number, to: number, arr: Int32Array, p: number, level: number): void {
    const slab = this.slab!;
    const fa = this.nodeAt(from);
    const ta = this.nodeAt(to);
    const count = arr[p]!;
    const hs = this.candH;
    const ds = this.candD;
    const dTo = this.dist(fa, ta);
    hs[0] = to;
    ds[0] = dTo;
    const list = slab.list;
    for (let i = 0; i < count; i++) list[i] = this.nodeAt(arr[p + 1 + i]!);
    slab.batch(fa, count);
    const out = slab.out;
    for (let i = 0; i < count; i++) {
      hs[i + 1] = arr[p + 1 + i]!;
      ds[i + 1] = this.offset + this.sign * out[i]!;
    }
    const n = count + 1;
    for (let i = 1; i < n; i++) {
      if (ds[i]! < dTo && this.dist(ta, this.nodeAt(hs[i]!)) < dTo) return;
    }
    // A stable sort by distance (Array.prototype.sort is stable; insertion sort with a strict test is too).
    for (let i = 1; i < n; i++) {
      const h = hs[i]!;
      const d = ds[i]!;
      let j = i - 1;
      while (j >= 0 && ds[j]! > d) {
        hs[j + 1] = hs[j]!;
        ds[j + 1] = ds[j]!;
        j--;
      }
      hs[j + 1] = h;
      ds[j + 1] = d;
    }
    const kept = this.select(hs, ds, n, this.maxLinks(level), this.keptH, this.keptD);
    let hasTo = false;
    for (let i = 0; i < kept; i++) if (this.keptH[i] === to) hasTo = true;
    if (!hasTo) return;
    arr[p] = kept;
    for (let i = 0; i < kept; i++) arr[p + 1 + i] = this.keptH[i]!;
  }

  /** Marks `id` deleted: it keeps routing searches but is never returned. No-op when absent. */
  markDeleted(id: string): void {
    const h = this.ids.find(id);
    if (h === undefined || this.levels[h] === NO_NODE || this.deletedFlags[h] === 1) return;
    this.deletedFlags[h] = 1;
    this.live--;
  }

  /** Whether `id` is a live node. */
  has(id: string): boolean {
    const h = this.ids.find(id);
    return h !== undefined && this.levels[h] !== NO_NODE && this.deletedFlags[h] === 0;
  }

  /**
   * The `k` nearest live nodes to `q` by a beam of width max(ef, k), as hnsw.ts's search (`exhausted`: the beam
   * held fewer live nodes than its width, so widening cannot find more).
   */
  search(q: Float32Array, k: number, ef: number): { hits: SearchHit[]; exhausted: boolean } {
    if (!Number.isInteger(k) || k < 0)
      throw new TwillError(ErrorCodes.InvalidArgument, `k must be a non-negative integer, got ${k}`);
    if (!Number.isInteger(ef) || ef < 1 || ef > 100_000)
      throw new TwillError(ErrorCodes.InvalidArgument, `ef must be an integer in 1..100000, got ${ef}`);
    if (this.entry === -1 || k === 0) return { hits: [], exhausted: true };
    const slab = this.vectors(q, "the query");
    const qa = slab.scratch;
    slab.write(qa, q);
    this.greedyH = this.entry;
    this.greedyD = this.dist(qa, this.nodeAt(this.entry));
    for (let l = this.maxLevel; l > 0; l--) this.greedy(qa, l);
    const width = Math.max(ef, k);
    const entries = this.spare;
    const beam = this.beam;
    entries.h[0] = this.greedyH;
    entries.d[0] = this.greedyD;
    entries.size = 1;
    this.searchLayer(qa, entries, beam, width, 0, true, -1);
    const n = Math.min(k, beam.size);
    const hits: SearchHit[] = new Array(n);
    for (let i = 0; i < n; i++) hits[i] = { id: this.ids.idOf(beam.h[i]!), distance: beam.d[i]! };
    return { hits, exhausted: beam.size < width };
  }

  /** The node of `id` in hnsw.ts's record form (a copy), if it has one. */
  node(id: string): HnswNode | undefined {
    const h = this.ids.find(id);
    return h === undefined ? undefined : this.nodeOf(h, (x) => x);
  }

  private nodeOf(h: number, handleOf: (h: number) => number): HnswNode | undefined {
    const level = this.levels[h]!;
    if (level === NO_NODE) return undefined;
    const slab = this.slab!;
    const at = this.nodeAt(h) >> 2;
    const neighbors: number[][] = [];
    for (let l = 0; l <= level; l++) {
      const { arr, p } = this.listOf(h, l);
      const row: number[] = [];
      for (let i = 1; i <= arr[p]!; i++) row.push(handleOf(arr[p + i]!));
      neighbors.push(row);
    }
    return {
      id: this.ids.idOf(h),
      handle: handleOf(h),
      vector: slab.f32.slice(at, at + slab.dims),
      level,
      neighbors,
      deleted: this.deletedFlags[h] === 1,
      slot: -1,
      epoch: 0,
    };
  }

  /** Every node in record form (copies), in handle order. */
  *nodes(): IterableIterator<HnswNode> {
    for (let h = 0; h < this.ids.count; h++) {
      const n = this.nodeOf(h, (x) => x);
      if (n) yield n;
    }
  }

  /**
   * Writes the graph as records into `store` (handles translated through the store's table): what the SQL index
   * or any NodeStore would hold for the same graph.
   */
  writeTo(store: NodeStore): void {
    const map = (h: number) => store.handle(this.ids.idOf(h));
    for (let h = 0; h < this.ids.count; h++) {
      const n = this.nodeOf(h, map);
      if (n) store.put(n);
    }
    if (this.entry !== -1) store.putMeta({ entry: map(this.entry), maxLevel: this.maxLevel });
  }

  /**
   * A graph from records: every node `nodes` yields (its links naming handles of `idOf`), and the meta record.
   * The parameters must be the ones the records were built with.
   */
  static from(
    params: HnswParams,
    nodes: Iterable<HnswNode>,
    meta: HnswMeta | undefined,
    idOf: (handle: number) => string,
  ): MemoryHnsw {
    const g = new MemoryHnsw(params);
    const all = [...nodes];
    for (const n of all) {
      const slab = g.vectors(n.vector, `node ${JSON.stringify(n.id)}'s vector`);
      const h = g.handleFor(n.id);
      slab.ensure(g.cap);
      if (n.level > LEVEL_MAX || n.neighbors.length !== n.level + 1)
        throw new TwillError(ErrorCodes.Corruption, `HNSW node ${JSON.stringify(n.id)}: bad level`);
      g.allocate(h, n.level);
      g.levels[h] = n.level;
      g.deletedFlags[h] = n.deleted ? 1 : 0;
      if (!n.deleted) g.live++;
      slab.write(g.nodeAt(h), n.vector);
    }
    for (const n of all) {
      const h = g.ids.find(n.id)!;
      for (let l = 0; l <= n.level; l++) {
        const links = n.neighbors[l]!;
        if (links.length > g.maxLinks(l))
          throw new TwillError(
            ErrorCodes.Corruption,
            `HNSW node ${JSON.stringify(n.id)}: level ${l} overfull`,
          );
        const { arr, p } = g.listOf(h, l);
        arr[p] = links.length;
        for (let i = 0; i < links.length; i++) {
          const t = g.ids.find(idOf(links[i]!));
          if (t === undefined || g.levels[t]! < l)
            throw new TwillError(ErrorCodes.Corruption, `HNSW node ${JSON.stringify(n.id)}: dangling link`);
          arr[p + 1 + i] = t;
        }
      }
    }
    if (meta !== undefined) {
      const e = g.ids.find(idOf(meta.entry));
      if (e === undefined || g.levels[e] !== meta.maxLevel)
        throw new TwillError(ErrorCodes.Corruption, "HNSW meta: the entry point is not a top-level node");
      g.entry = e;
      g.maxLevel = meta.maxLevel;
    } else if (all.length > 0)
      throw new TwillError(ErrorCodes.Corruption, "HNSW meta missing for a non-empty graph");
    return g;
  }
}
