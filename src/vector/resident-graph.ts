/**
 * A read-only copy of a node store's nodes in flat arrays, for searches: the SQL index keeps one beside its
 * decoded-node cache (src/engine/sql/hnsw-index.ts), holding exactly the node versions the cache holds, so a
 * search that may use the cache can run here instead of over the node objects. Profiled at 100k × 384 the walk
 * over node objects (a node, its links array, each neighbour's node and arena hint: dependent cache misses per
 * visited node) cost the SQL search about as much as everything else it does; memory-hnsw.ts's layout avoids them.
 *
 * Layout: a copy lives in a slot (slots are reused through a free list, so the memory follows the number of
 * copies held, not the number of handles the store ever gave out: an index larger than its cache must not grow a
 * slab per row); links name the store's handles.
 *   per handle   slotOf: Int32Array, the handle's slot or −1 (no copy here)
 *   vectors      VectorSlab (simd.ts): the vector of slot s at a fixed byte offset of this graph's own memory
 *   level 0      links0: Int32Array, S0 = 1 + 2M entries per slot: [count, link_0 … link_{2M−1}]
 *   levels 1..L  upper[s]: Int32Array of L · S1 entries, S1 = 1 + M, level l at (l − 1) · S1: [count, links…]
 *   per slot     level, deleted (Uint8Array), handleOf (Int32Array)
 * Invariants: a handle with a slot holds a copy of one node version given to `set` (its vector, level, deleted
 * flag and links); slotOf and handleOf are inverse on used slots; a list's count ≤ its capacity (a node whose
 * lists do not fit is not copied).
 *
 * A search follows hnsw.ts's search comparison for comparison (the same kernels, the same order of heap pushes,
 * as memory-hnsw.ts does), so its answer is the one hnsw.ts would give over the same nodes. It never decides that
 * a node is absent: when it meets a handle without a copy it gives up (returns undefined) and the caller runs
 * hnsw.ts's search over its store, which can read the node. Which versions are right for a reader is the owner's
 * business (the SQL cache's rules); this class only mirrors what it is given.
 *
 * Not re-entrant: every method is synchronous.
 */

import type { Metric } from "./distance.js";
import type { HnswNode, HnswParams, SearchHit } from "./hnsw.js";
import { grown, MaxHeap, MinHeap } from "./memory-hnsw.js";
import { SLAB_BATCH_MAX, VectorSlab } from "./simd.js";

/** hnsw.ts caps levels at 16. */
const LEVEL_MAX = 16;

export class ResidentGraph {
  private slab: VectorSlab | undefined;
  /** Set when a vector could not be copied (another dimension count, or the slab's 4 GiB bound): no searches. */
  private broken = false;
  private readonly s0: number;
  private readonly s1: number;
  private readonly m: number;
  private readonly metric: Metric;
  /** Per handle. */
  private handles = 0;
  private slotOf = new Int32Array(0);
  /** Per slot. */
  private slotCap = 0;
  private used = 0;
  private readonly free: number[] = [];
  private levels = new Uint8Array(0);
  private deleted = new Uint8Array(0);
  private handleOf = new Int32Array(0);
  private links0 = new Int32Array(0);
  private marks = new Uint32Array(0);
  private readonly upper: (Int32Array | undefined)[] = [];
  /** The array whose copy sits in each slot's vector: a relink keeps its node's array, so no copy. */
  private readonly copied: (Float32Array | undefined)[] = [];
  private stamp = 0;
  private readonly offset: number;
  private readonly sign: number;
  private readonly cand = new MinHeap();
  private readonly res = new MaxHeap();
  private readonly batchS = new Int32Array(SLAB_BATCH_MAX);
  /** A search's beam (slots), nearest first, as it leaves the max-heap. */
  private outS = new Int32Array(64);
  private outD = new Float64Array(64);
  private greedyS = 0;
  private greedyD = 0;
  /** Nodes copied in (for tests and profiles). */
  copies = 0;

  constructor(params: HnswParams) {
    this.m = params.m;
    this.metric = params.metric;
    this.s0 = 1 + 2 * params.m;
    this.s1 = 1 + params.m;
    this.offset = params.metric === "cosine" ? 1 : 0;
    this.sign = params.metric === "l2" ? 1 : -1;
  }

  private growHandles(n: number): void {
    const cap = Math.max(n, 2 * this.handles, 256);
    this.slotOf = grown(this.slotOf, cap, -1);
    this.handles = cap;
  }

  private growSlots(): void {
    const cap = Math.max(2 * this.slotCap, 256);
    this.slab!.ensure(cap); // throws past the slab's bound: the caller marks the copy broken
    this.levels = grown(this.levels, cap);
    this.deleted = grown(this.deleted, cap);
    this.handleOf = grown(this.handleOf, cap);
    this.links0 = grown(this.links0, cap * this.s0);
    this.marks = grown(this.marks, cap);
    this.slotCap = cap;
  }

  /** Whether handle h has a copy here. */
  has(h: number): boolean {
    return h < this.handles && this.slotOf[h]! >= 0;
  }

  /** Copies held. */
  get size(): number {
    return this.used - this.free.length;
  }

  /** Copies `node` (replacing any earlier version of its handle); a node that does not fit is left out. */
  set(node: HnswNode): void {
    const h = node.handle;
    if (this.broken) return;
    const v = node.vector;
    if (this.slab === undefined) this.slab = new VectorSlab(v.length, this.metric);
    const slab = this.slab;
    let fits = v.length === slab.dims && node.level <= LEVEL_MAX && node.neighbors.length === node.level + 1;
    for (let l = 0; fits && l <= node.level; l++)
      if (node.neighbors[l]!.length > (l === 0 ? 2 * this.m : this.m)) fits = false;
    if (!fits) {
      this.clear(h);
      return;
    }
    if (h >= this.handles) this.growHandles(h + 1);
    let s = this.slotOf[h]!;
    if (s < 0) {
      const reused = this.free.pop();
      if (reused !== undefined) s = reused;
      else {
        if (this.used >= this.slotCap) {
          try {
            this.growSlots();
          } catch {
            this.broken = true;
            return;
          }
        }
        s = this.used++;
      }
      this.slotOf[h] = s;
      this.handleOf[s] = h;
    }
    if (this.copied[s] !== v) {
      slab.write(slab.nodeBase + s * slab.strideBytes, v);
      while (this.copied.length <= s) this.copied.push(undefined);
      this.copied[s] = v;
    }
    const l0 = node.neighbors[0]!;
    const p0 = s * this.s0;
    this.links0[p0] = l0.length;
    for (let i = 0; i < l0.length; i++) this.links0[p0 + 1 + i] = l0[i]!;
    let u: Int32Array | undefined;
    if (node.level > 0) {
      u = new Int32Array(node.level * this.s1);
      for (let l = 1; l <= node.level; l++) {
        const links = node.neighbors[l]!;
        const p = (l - 1) * this.s1;
        u[p] = links.length;
        for (let i = 0; i < links.length; i++) u[p + 1 + i] = links[i]!;
      }
    }
    while (this.upper.length <= s) this.upper.push(undefined);
    this.upper[s] = u;
    this.deleted[s] = node.deleted ? 1 : 0;
    this.levels[s] = node.level;
    this.copies++;
  }

  /** Forgets handle h's copy; its slot goes back to the free list. */
  clear(h: number): void {
    if (h >= this.handles) return;
    const s = this.slotOf[h]!;
    if (s < 0) return;
    this.slotOf[h] = -1;
    this.upper[s] = undefined;
    this.copied[s] = undefined;
    this.free.push(s);
  }

  /** Forgets every copy. */
  clearAll(): void {
    this.slotOf.fill(-1);
    this.free.length = 0;
    this.used = 0;
    this.upper.length = 0;
    this.copied.length = 0;
  }

  /**
   * hnsw.ts's search for the `k` nearest live nodes by a beam of width max(ef, k) from the entry point `entry`
   * on level `maxLevel` (the store's meta record), with ids from `idOf`; undefined when the search met a handle
   * without a copy here (or cannot run: no vectors yet, another dimension count).
   */
  search(
    q: Float32Array,
    k: number,
    ef: number,
    entry: number,
    maxLevel: number,
    idOf: (h: number) => string,
  ): { hits: SearchHit[]; exhausted: boolean } | undefined {
    const slab = this.slab;
    if (slab === undefined || this.broken || q.length !== slab.dims || !this.has(entry)) return undefined;
    const qa = slab.scratch;
    slab.write(qa, q);
    this.greedyS = this.slotOf[entry]!;
    this.greedyD = this.offset + this.sign * slab.raw(qa, slab.nodeBase + this.greedyS * slab.strideBytes);
    for (let l = maxLevel; l > 0; l--) if (!this.greedy(slab, qa, l)) return undefined;
    const width = Math.max(ef, k);
    const n = this.searchLayer(slab, qa, width);
    if (n < 0) return undefined;
    const res = this.res;
    // The max-heap pops farthest first; the hits are the nearest k of the beam.
    if (this.outS.length < n) {
      this.outS = new Int32Array(2 * n);
      this.outD = new Float64Array(2 * n);
    }
    const ss = this.outS;
    const ds = this.outD;
    for (let i = n - 1; i >= 0; i--) {
      ds[i] = res.d[0]!;
      ss[i] = res.pop();
    }
    const m = Math.min(k, n);
    const hits: SearchHit[] = new Array(m);
    for (let i = 0; i < m; i++) hits[i] = { id: idOf(this.handleOf[ss[i]!]!), distance: ds[i]! };
    return { hits, exhausted: n < width };
  }

  /** hnsw.ts's greedy descent on one level from (greedyS, greedyD); false when it met a handle without a copy. */
  private greedy(slab: VectorSlab, q: number, level: number): boolean {
    const list = slab.list;
    const out = slab.out;
    const base = slab.nodeBase;
    const stride = slab.strideBytes;
    const slotOf = this.slotOf;
    const handles = this.handles;
    const batchS = this.batchS;
    const p = (level - 1) * this.s1;
    for (let changed = true; changed; ) {
      changed = false;
      if (this.levels[this.greedyS]! < level) return true; // no list on this level: hnsw.ts's `?? []`
      const arr = this.upper[this.greedyS]!;
      const count = arr[p]!;
      for (let i = 0; i < count; i++) {
        const h = arr[p + 1 + i]!;
        const s = h < handles ? slotOf[h]! : -1;
        if (s < 0) return false;
        list[i] = base + s * stride;
        batchS[i] = s;
      }
      slab.batch(q, count);
      for (let i = 0; i < count; i++) {
        const d = this.offset + this.sign * out[i]!;
        if (d < this.greedyD) {
          this.greedyS = batchS[i]!;
          this.greedyD = d;
          changed = true;
        }
      }
    }
    return true;
  }

  /**
   * hnsw.ts's searchLayer on level 0 (live results only) from (greedyS, greedyD): leaves the result (slots) in
   * `res` and returns its size, or −1 when it met a handle without a copy.
   */
  private searchLayer(slab: VectorSlab, q: number, ef: number): number {
    const cand = this.cand;
    const res = this.res;
    const marks = this.marks;
    if (this.stamp === 0xffffffff) {
      marks.fill(0);
      this.stamp = 0;
    }
    const stamp = ++this.stamp;
    const deleted = this.deleted;
    const slotOf = this.slotOf;
    const handles = this.handles;
    cand.size = 0;
    res.size = 0;
    const e = this.greedyS;
    marks[e] = stamp;
    cand.push(this.greedyD, e);
    if (deleted[e] === 0) res.push(this.greedyD, e);
    const list = slab.list;
    const out = slab.out;
    const batchS = this.batchS;
    const base = slab.nodeBase;
    const stride = slab.strideBytes;
    const offset = this.offset;
    const sign = this.sign;
    const links0 = this.links0;
    const s0 = this.s0;
    while (cand.size > 0) {
      if (res.size >= ef && cand.d[0]! > res.d[0]!) break;
      const c = cand.pop();
      const p = c * s0;
      const count = links0[p]!;
      let nb = 0;
      for (let i = 1; i <= count; i++) {
        const h = links0[p + i]!;
        const s = h < handles ? slotOf[h]! : -1;
        if (s < 0) return -1;
        if (marks[s] === stamp) continue;
        marks[s] = stamp;
        list[nb] = base + s * stride;
        batchS[nb++] = s;
      }
      if (nb === 0) continue;
      slab.batch(q, nb);
      for (let j = 0; j < nb; j++) {
        const d = offset + sign * out[j]!;
        if (res.size < ef || d < res.d[0]!) {
          const s = batchS[j]!;
          cand.push(d, s);
          if (deleted[s] === 0) {
            res.push(d, s);
            if (res.size > ef) res.pop();
          }
        }
      }
    }
    return res.size;
  }
}
