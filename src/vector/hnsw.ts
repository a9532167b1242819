/**
 * HNSW (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical
 * Navigable Small World graphs", 2016), written against a small node store so the same algorithm runs over an
 * in-memory map (tests, the direct API) and over engine KV records inside a transaction (the SQL index).
 *
 * - A node's level is floor(−ln(U)·mL) with mL = 1/ln(M), U drawn from a hash of the node id, so a node keeps
 *   its level when re-inserted and a graph built from the same rows is the same whatever the process.
 * - Insert: greedy descent (ef = 1) from the entry point down to the node's level, then on each level a beam
 *   search with ef_construction, the neighbour-selection heuristic (Algorithm 4: keep a candidate only if it is
 *   closer to the new node than to every neighbour already kept), and bidirectional links; a neighbour whose list
 *   overflows (M above level 0, 2M at level 0) is pruned with the same heuristic.
 * - Delete marks the node deleted: it still routes searches (the graph stays connected) but is never returned,
 *   and pruning treats it like a live node. Re-inserting an id (an update: delete + insert of the same id)
 *   writes its new vector and links, keeping its old links while the list has room, so nodes that were reachable
 *   through it stay reachable. Nothing reclaims deleted nodes yet (pgvector's VACUUM repair is not built).
 * - Nodes handed out by the store are treated as immutable: a change writes a new node object through `put`,
 *   so a store may share decoded nodes between readers (a cache) without a writer changing what they see.
 *
 * The store may answer synchronously (memory, cached blocks) or with a promise (I/O); the algorithm awaits only
 * when it gets a promise, so a search over cached nodes costs one promise in all.
 *
 * Nodes are named inside the graph by integer handles the store hands out (`handle(id)`, stable for the
 * store's life), not by their ids: neighbour lists are small integer arrays, the store's lookup is an array
 * index, and the visited set of a search is a stamped Uint32Array (taken from a pool, so searches interleaving
 * at an await never share one). Distances run on the arena kernels (simd.ts): a node's vector is copied into
 * WASM memory once, not once per distance.
 */

import { ErrorCodes, TwillError } from "../errors.js";
import { fmix32 } from "../util/fmix32.js";
import type { Metric } from "./distance.js";
import { type ArenaHolder, type GraphKernel, graphKernel } from "./simd.js";

export interface HnswNode extends ArenaHolder {
  /** The node's id outside the graph (for the SQL index: the row's encoded primary key, latin1). */
  readonly id: string;
  /** The store's integer handle of `id`. */
  readonly handle: number;
  /** The vector the graph compares (unit length under cosine). Never modified once in a graph. */
  readonly vector: Float32Array;
  readonly level: number;
  /** neighbours[l] for l = 0..level: handles of the node's links on that level. */
  readonly neighbors: readonly (readonly number[])[];
  readonly deleted: boolean;
}

export interface HnswMeta {
  /** The entry point's handle: a node on the top level. */
  readonly entry: number;
  readonly maxLevel: number;
}

type MaybePromise<T> = T | Promise<T>;

/** Where the graph lives. `put` and `putMeta` must be visible to later `get`/`meta` calls of the same store. */
export interface NodeStore {
  /** The handle of `id`, given out on first use and stable for the store's life. */
  handle(id: string): number;
  /** The id a handle stands for. */
  idOf(handle: number): string;
  get(handle: number): MaybePromise<HnswNode | undefined>;
  /**
   * The node when the store has it at hand (memory, cache, overlay): the node, undefined when it is known
   * absent, or null when only `get` can tell. Lets the search loop skip a promise check per visited node.
   */
  peek(handle: number): HnswNode | undefined | null;
  put(node: HnswNode): void;
  meta(): MaybePromise<HnswMeta | undefined>;
  putMeta(meta: HnswMeta): void;
}

export interface HnswParams {
  /** Links per node above level 0 (2M at level 0). pgvector's default 16, range 2..100. */
  m: number;
  /** Beam width while inserting. pgvector's default 64, range 4..1000. */
  efConstruction: number;
  metric: Metric;
}

export interface SearchHit {
  id: string;
  /** The graph's distance (squared L2, 1 − cos, or −ip); monotone in the SQL operator's distance. */
  distance: number;
}

/** Levels are capped so a node header fits a byte and a pathological hash cannot build a tall tower. */
const MAX_LEVEL = 16;

/** A 32-bit hash of the id (FNV-1a, then murmur3's finaliser for avalanche). */
function hashId(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

export function levelFor(id: string, m: number): number {
  const u = (hashId(id) + 1) / 4294967297; // (0, 1)
  return Math.min(MAX_LEVEL, Math.floor(-Math.log(u) / Math.log(m)));
}

/**
 * Binary heaps of (distance, node) pairs, one class per order so the comparisons carry no branch on the order,
 * distances in a Float64Array that grows by doubling (a search's heaps are sized for its beam up front).
 */
class MinHeap {
  d = new Float64Array(256);
  readonly n: HnswNode[] = [];
  size = 0;
  topDist(): number {
    return this.d[0]!;
  }
  push(dist: number, node: HnswNode): void {
    if (this.size === this.d.length) {
      const bigger = new Float64Array(2 * this.d.length);
      bigger.set(this.d);
      this.d = bigger;
    }
    const d = this.d;
    const n = this.n;
    let i = this.size++;
    // Sift up by moving parents down, then place the new pair once.
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (d[p]! <= dist) break;
      d[i] = d[p]!;
      n[i] = n[p]!;
      i = p;
    }
    d[i] = dist;
    n[i] = node;
  }
  pop(): HnswNode {
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

class MaxHeap {
  d = new Float64Array(256);
  readonly n: HnswNode[] = [];
  size = 0;
  topDist(): number {
    return this.d[0]!;
  }
  push(dist: number, node: HnswNode): void {
    if (this.size === this.d.length) {
      const bigger = new Float64Array(2 * this.d.length);
      bigger.set(this.d);
      this.d = bigger;
    }
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
    n[i] = node;
  }
  pop(): HnswNode {
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

/**
 * A search's scratch: the visited set (a Uint32Array of stamps, cleared by bumping the stamp) and both heaps,
 * pooled because typed arrays are dear to allocate and a build runs a search per level per insert. A pooled
 * heap keeps references to the nodes of its last search until it is reused; they are at most a beam's worth.
 */
class Visited {
  readonly cand = new MinHeap();
  readonly res = new MaxHeap();
  /** One expanded node's unvisited neighbours and their distances (one batch kernel call). */
  readonly batch: HnswNode[] = [];
  batchD = new Float64Array(64);
  marks: Uint32Array = new Uint32Array(1024);
  stamp = 0;

  reset(size: number): void {
    if (this.marks.length < size) this.marks = new Uint32Array(Math.max(size, 2 * this.marks.length));
    if (this.stamp === 0xffffffff) {
      this.marks.fill(0);
      this.stamp = 0;
    }
    this.stamp++;
  }

  /** Room for handle `h`; returns the (new) stamp array. */
  grow(h: number): Uint32Array {
    const bigger = new Uint32Array(Math.max(h + 1, 2 * this.marks.length));
    bigger.set(this.marks);
    this.marks = bigger;
    return bigger;
  }

  /** Adds `h`; false when it was already there. */
  add(h: number): boolean {
    const m = h >= this.marks.length ? this.grow(h) : this.marks;
    if (m[h] === this.stamp) return false;
    m[h] = this.stamp;
    return true;
  }
}

/** Visited sets not in use; a search takes one and gives it back, so interleaved searches never share one. */
const visitedPool: Visited[] = [];

interface Candidate {
  d: number;
  node: HnswNode;
}

/** The query of one search or insert, as an arena holder of its own. */
function holder(vector: Float32Array): ArenaHolder {
  return { vector, slot: -1, epoch: 0 };
}

export class Hnsw {
  private kernel: GraphKernel | undefined;
  private dims = -1;

  constructor(
    readonly params: HnswParams,
    readonly store: NodeStore,
  ) {}

  /** The kernel for this graph's dimension count, fixed by the first vector it sees. */
  private k(n: number): GraphKernel {
    if (this.kernel === undefined) {
      this.kernel = graphKernel(this.params.metric, n);
      this.dims = n;
    } else if (n !== this.dims) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `vector has ${n} dimensions, the graph's vectors have ${this.dims}`,
      );
    }
    return this.kernel;
  }

  private async node(h: number): Promise<HnswNode | undefined> {
    return this.store.get(h);
  }

  /**
   * Beam search on one level from `entries`. `live`: only non-deleted nodes enter the result (they all route).
   * `exclude`: a handle never returned (the node being re-inserted). Returns up to ef nodes, nearest first.
   */
  private async searchLayer(
    q: ArenaHolder,
    entries: readonly Candidate[],
    ef: number,
    level: number,
    live: boolean,
    exclude = -1,
  ): Promise<Candidate[]> {
    const k = this.k(q.vector.length);
    const store = this.store;
    const visited = visitedPool.pop() ?? new Visited();
    try {
      visited.reset(0);
      const cand = visited.cand;
      const res = visited.res;
      cand.size = 0;
      res.size = 0;
      for (const e of entries) {
        visited.add(e.node.handle);
        cand.push(e.d, e.node);
        if ((!live || !e.node.deleted) && e.node.handle !== exclude) res.push(e.d, e.node);
      }
      // The loop reads the stamp array once, not through a method per link: per visited node the time is in
      // dependent loads, and the fewer the better. The distances of one expanded node's unvisited neighbours are
      // one kernel call, then taken in link order (the order of the heaps' pushes is the same as one at a time).
      const stamp = visited.stamp;
      let marks: Uint32Array = visited.marks;
      const batch = visited.batch;
      while (cand.size > 0) {
        const cd = cand.topDist();
        if (res.size >= ef && cd > res.topDist()) break;
        const c = cand.pop();
        const links = c.neighbors[level];
        if (links === undefined) continue;
        let nb = 0;
        for (let i = 0; i < links.length; i++) {
          const h = links[i]!;
          if (h >= marks.length) marks = visited.grow(h);
          if (marks[h] === stamp) continue;
          marks[h] = stamp;
          let n = store.peek(h);
          if (n === null) n = await store.get(h);
          if (n === undefined) continue;
          batch[nb++] = n;
        }
        if (nb === 0) continue;
        if (visited.batchD.length < nb) visited.batchD = new Float64Array(2 * nb);
        const ds = visited.batchD;
        k.distances(q, batch, nb, ds);
        for (let j = 0; j < nb; j++) {
          const n = batch[j]!;
          const h = n.handle;
          const d = ds[j]!;
          if (res.size < ef || d < res.topDist()) {
            cand.push(d, n);
            if ((!live || !n.deleted) && h !== exclude) {
              res.push(d, n);
              if (res.size > ef) res.pop();
            }
          }
        }
      }
      const out: Candidate[] = new Array(res.size);
      for (let i = out.length - 1; i >= 0; i--) {
        const d = res.topDist();
        out[i] = { d, node: res.pop() };
      }
      return out;
    } finally {
      visitedPool.push(visited);
    }
  }

  /** Greedy descent on one level: move to a closer neighbour while there is one. */
  private async greedy(q: ArenaHolder, start: Candidate, level: number): Promise<Candidate> {
    const k = this.k(q.vector.length);
    let cur = start;
    for (let changed = true; changed; ) {
      changed = false;
      const links = cur.node.neighbors[level] ?? [];
      for (const h of links) {
        let n = this.store.peek(h);
        if (n === null) n = await this.store.get(h);
        if (n === undefined) continue;
        const d = k.distance(q, n);
        if (d < cur.d) {
          cur = { d, node: n };
          changed = true;
        }
      }
    }
    return cur;
  }

  /** Algorithm 4 without extending candidates: `cands` sorted nearest first. */
  private selectNeighbors(cands: readonly Candidate[], m: number): Candidate[] {
    const out: Candidate[] = [];
    if (cands.length === 0) return out;
    // The kernel once: reading each candidate's vector length was a cache miss per candidate.
    const k = this.k(cands[0]!.node.vector.length);
    for (const c of cands) {
      if (out.length >= m) break;
      let good = true;
      for (const r of out) {
        if (k.distance(c.node, r.node) < c.d) {
          good = false;
          break;
        }
      }
      if (good) out.push(c);
    }
    return out;
  }

  private maxLinks(level: number): number {
    return level === 0 ? 2 * this.params.m : this.params.m;
  }

  /**
   * Inserts (or re-inserts) `id`. `vector` is what the graph compares (normalised by the caller for cosine); the
   * graph keeps a copy, so the caller may reuse the array.
   */
  async insert(id: string, vector: Float32Array): Promise<void> {
    const store = this.store;
    const k = this.k(vector.length);
    const level = levelFor(id, this.params.m);
    const handle = store.handle(id);
    const meta = await store.meta();
    const own = new Float32Array(vector);
    const neighbors: number[][] = Array.from({ length: level + 1 }, () => []);
    if (meta === undefined) {
      store.put({ id, handle, vector: own, level, neighbors, deleted: false, slot: -1, epoch: 0 });
      store.putMeta({ entry: handle, maxLevel: level });
      return;
    }
    const entry = await this.node(meta.entry);
    if (entry === undefined) throw new Error(`HNSW entry point ${meta.entry} is missing`);
    const q = holder(own);
    let ep: Candidate = { d: k.distance(q, entry), node: entry };
    for (let l = meta.maxLevel; l > level; l--) ep = await this.greedy(q, ep, l);
    let entries: Candidate[] = [ep];
    const linked: Candidate[][] = [];
    let previous = store.peek(handle);
    if (previous === null) previous = await store.get(handle);
    for (let l = Math.min(level, meta.maxLevel); l >= 0; l--) {
      // Deleted nodes may become links (as in hnswlib): they still route, and a new node among deleted ones must
      // be reachable.
      const w = await this.searchLayer(q, entries, this.params.efConstruction, l, false, handle);
      const chosen = this.selectNeighbors(w, this.params.m);
      const mine = chosen.map((c) => c.node.handle);
      neighbors[l] = mine;
      // Re-insert (an update): keep the old links while there is room. Nodes near the old position may be
      // reachable only through this node; dropping its links would cut them off the graph.
      const old = previous?.neighbors[l];
      if (old) {
        const room = this.maxLinks(l) - mine.length;
        const kept = old.filter((x) => x !== handle && !mine.includes(x)).slice(0, Math.max(0, room));
        mine.push(...kept);
      }
      linked[l] = chosen;
      if (w.length > 0) entries = w;
    }
    const self: HnswNode = {
      id,
      handle,
      vector: own,
      level,
      neighbors,
      deleted: false,
      slot: q.slot,
      epoch: q.epoch,
    };
    store.put(self);
    for (let l = Math.min(level, meta.maxLevel); l >= 0; l--) {
      for (const c of linked[l] ?? []) {
        const pending = this.link(c.node.handle, self, l);
        if (pending) await pending;
      }
    }
    if (level > meta.maxLevel) store.putMeta({ entry: handle, maxLevel: level });
  }

  /**
   * Adds `to` to the links of `fromH` on `level`, pruning with the heuristic when the list overflows.
   * Synchronous when the store has every node at hand (a build relinks up to 2M nodes per insert, and a promise
   * per relink was measurable); returns a promise only when it had to read.
   */
  private link(fromH: number, to: HnswNode, level: number): Promise<void> | undefined {
    // Re-read: an earlier link in this insert may have replaced the node.
    const from = this.store.peek(fromH);
    if (from === null) return this.linkAfterReads(fromH, to, level);
    if (from === undefined || from.level < level) return;
    const current = from.neighbors[level] ?? [];
    if (current.includes(to.handle)) return;
    if (current.length < this.maxLinks(level)) {
      this.relink(from, level, [...current, to.handle]);
      return;
    }
    const nodes: HnswNode[] = [];
    for (const h of current) {
      const n = this.store.peek(h);
      if (n === null) return this.linkAfterReads(fromH, to, level);
      if (n !== undefined) nodes.push(n);
    }
    this.prune(from, to, nodes, level);
  }

  private async linkAfterReads(fromH: number, to: HnswNode, level: number): Promise<void> {
    const from = await this.node(fromH);
    if (from === undefined || from.level < level) return;
    const current = from.neighbors[level] ?? [];
    if (current.includes(to.handle)) return;
    if (current.length < this.maxLinks(level)) {
      this.relink(from, level, [...current, to.handle]);
      return;
    }
    const nodes: HnswNode[] = [];
    for (const h of current) {
      const n = await this.node(h);
      if (n !== undefined) nodes.push(n);
    }
    this.prune(from, to, nodes, level);
  }

  /**
   * `from`'s full list on `level` plus `to`, pruned by the heuristic. Deleted nodes compete like live ones: they
   * still route, and dropping them could strand the nodes reachable only through them (no vacuum repairs the
   * graph yet).
   */
  private prune(from: HnswNode, to: HnswNode, current: readonly HnswNode[], level: number): void {
    const k = this.k(from.vector.length);
    const dTo = k.distance(from, to);
    const cands: Candidate[] = [{ d: dTo, node: to }];
    for (const n of current) cands.push({ d: k.distance(from, n), node: n });
    // When the new node would be rejected, the list stays as it was (not the pruned subset hnswlib would
    // write): a node keeps its links, and a build writes no new version of a node whose links it did not
    // extend. The cheap test first: a link nearer to `from` that is also nearer to `to` than `from` is
    // rejects it (the heuristic's own test, against every nearer link rather than only the kept ones), at
    // most one distance per link instead of the heuristic's pairwise pass.
    for (let i = 1; i < cands.length; i++) {
      const c = cands[i]!;
      if (c.d < dTo && k.distance(to, c.node) < dTo) return;
    }
    cands.sort((a, b) => a.d - b.d);
    const kept = this.selectNeighbors(cands, this.maxLinks(level));
    if (!kept.some((c) => c.node === to)) return;
    this.relink(
      from,
      level,
      kept.map((c) => c.node.handle),
    );
  }

  private relink(from: HnswNode, level: number, next: number[]): void {
    const neighbors = from.neighbors.slice();
    neighbors[level] = next;
    const f = from;
    this.store.put({
      id: f.id,
      handle: f.handle,
      vector: f.vector,
      level: f.level,
      neighbors,
      deleted: f.deleted,
      slot: f.slot,
      epoch: f.epoch,
    });
  }

  /**
   * Marks `id` deleted: it keeps routing searches but is never returned. No-op when absent. Resolves to whether
   * the store has a node for `id` (live or already deleted): a caller whose view may lag other writers (an MVCC
   * snapshot) needs to know when it found none.
   */
  async markDeleted(id: string): Promise<boolean> {
    const n = await this.node(this.store.handle(id));
    if (n === undefined) return false;
    if (n.deleted) return true;
    this.store.put({
      id: n.id,
      handle: n.handle,
      vector: n.vector,
      level: n.level,
      neighbors: n.neighbors,
      deleted: true,
      slot: n.slot,
      epoch: n.epoch,
    });
    return true;
  }

  /**
   * The `k` nearest live nodes to `q` by a beam of width max(ef, k). Also says whether the beam visited every
   * node it could reach (`exhausted`: fewer live nodes than the beam width), so a caller that filters results
   * knows when widening cannot find more.
   */
  async search(q: Float32Array, k: number, ef: number): Promise<{ hits: SearchHit[]; exhausted: boolean }> {
    const meta = await this.store.meta();
    if (meta === undefined || k <= 0) return { hits: [], exhausted: true };
    const entry = await this.node(meta.entry);
    if (entry === undefined) throw new Error(`HNSW entry point ${meta.entry} is missing`);
    const kern = this.k(q.length);
    // A private copy: the caller's array may change while the search awaits, and the arena keys copies by array.
    const qh = holder(new Float32Array(q));
    try {
      let ep: Candidate = { d: kern.distance(qh, entry), node: entry };
      for (let l = meta.maxLevel; l > 0; l--) ep = await this.greedy(qh, ep, l);
      const width = Math.max(ef, k);
      const w = await this.searchLayer(qh, [ep], width, 0, true);
      const hits = w.slice(0, k).map((c) => ({ id: c.node.id, distance: c.d }));
      return { hits, exhausted: w.length < width };
    } finally {
      kern.release(qh);
    }
  }
}

/** Integer handles for node ids, given out in first-use order, so a graph's arrays can be indexed by handle. */
export class NodeIds {
  private readonly handles = new Map<string, number>();
  private readonly ids: string[] = [];

  handle(id: string): number {
    let h = this.handles.get(id);
    if (h === undefined) {
      h = this.ids.length;
      this.ids.push(id);
      this.handles.set(id, h);
      this.added();
    }
    return h;
  }
  /** Called once per handle given out (a subclass keeps a per-handle array as long as the handles). */
  protected added(): void {}
  idOf(handle: number): string {
    return this.ids[handle]!;
  }
  /** The handle of an id, if one was given out. */
  find(id: string): number | undefined {
    return this.handles.get(id);
  }
  /** How many handles were given out (handles are 0 … count − 1). */
  get count(): number {
    return this.ids.length;
  }
}

/**
 * NodeIds with a slot per handle for the owner's decoded node. Both node stores (the in-memory one below and the
 * SQL index cache) name nodes this way.
 */
export class HandleTable extends NodeIds {
  /** The decoded node of each handle, or undefined; always as long as the handles given out (no holes). */
  readonly slots: (HnswNode | undefined)[] = [];

  protected override added(): void {
    this.slots.push(undefined);
  }
}

/** A NodeStore over arrays indexed by handle: the direct in-memory API and the reference for tests. */
export class MemoryNodeStore extends HandleTable implements NodeStore {
  private m: HnswMeta | undefined;

  get(handle: number): HnswNode | undefined {
    return this.slots[handle];
  }
  peek(handle: number): HnswNode | undefined {
    return this.slots[handle];
  }
  put(node: HnswNode): void {
    this.slots[node.handle] = node;
  }
  meta(): HnswMeta | undefined {
    return this.m;
  }
  putMeta(meta: HnswMeta): void {
    this.m = meta;
  }
  /** The node of an id, if stored. */
  node(id: string): HnswNode | undefined {
    const h = this.find(id);
    return h === undefined ? undefined : this.slots[h];
  }
  /** Every stored node. */
  *nodes(): IterableIterator<HnswNode> {
    for (const n of this.slots) if (n) yield n;
  }
}
