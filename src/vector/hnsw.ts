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
 */

import type { Metric } from "./distance.js";
import { graphDistance } from "./simd.js";

export interface HnswNode {
  readonly id: string;
  /** The vector the graph compares (unit length under cosine). */
  readonly vector: Float32Array;
  readonly level: number;
  /** neighbours[l] for l = 0..level: ids of the node's links on that level. */
  readonly neighbors: readonly (readonly string[])[];
  readonly deleted: boolean;
}

export interface HnswMeta {
  /** The entry point: a node on the top level. */
  readonly entry: string;
  readonly maxLevel: number;
}

type MaybePromise<T> = T | Promise<T>;

/** Where the graph lives. `put` and `putMeta` must be visible to later `get`/`meta` calls of the same store. */
export interface NodeStore {
  get(id: string): MaybePromise<HnswNode | undefined>;
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
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function levelFor(id: string, m: number): number {
  const u = (hashId(id) + 1) / 4294967297; // (0, 1)
  return Math.min(MAX_LEVEL, Math.floor(-Math.log(u) / Math.log(m)));
}

/** A binary heap of (distance, node) pairs; `max` selects a max-heap. */
class Heap {
  readonly d: number[] = [];
  readonly n: HnswNode[] = [];
  constructor(private readonly max: boolean) {}
  get size(): number {
    return this.d.length;
  }
  topDist(): number {
    return this.d[0]!;
  }
  private above(a: number, b: number): boolean {
    return this.max ? this.d[a]! > this.d[b]! : this.d[a]! < this.d[b]!;
  }
  private swap(a: number, b: number): void {
    const d = this.d[a]!;
    this.d[a] = this.d[b]!;
    this.d[b] = d;
    const n = this.n[a]!;
    this.n[a] = this.n[b]!;
    this.n[b] = n;
  }
  push(dist: number, node: HnswNode): void {
    this.d.push(dist);
    this.n.push(node);
    let i = this.d.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): HnswNode {
    const top = this.n[0]!;
    const lastD = this.d.pop()!;
    const lastN = this.n.pop()!;
    if (this.d.length > 0) {
      this.d[0] = lastD;
      this.n[0] = lastN;
      let i = 0;
      const len = this.d.length;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < len && this.above(l, best)) best = l;
        if (r < len && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

interface Candidate {
  d: number;
  node: HnswNode;
}

export class Hnsw {
  readonly dist: (a: Float32Array, b: Float32Array) => number;

  constructor(
    readonly params: HnswParams,
    readonly store: NodeStore,
  ) {
    this.dist = graphDistance(params.metric);
  }

  private async node(id: string): Promise<HnswNode | undefined> {
    return this.store.get(id);
  }

  /**
   * Beam search on one level from `entries`. `live`: only non-deleted nodes enter the result (they all route).
   * `exclude`: a node never returned (the node being re-inserted). Returns up to ef nodes, nearest first, and
   * whether the search ran out of nodes to visit before the beam filled.
   */
  private async searchLayer(
    q: Float32Array,
    entries: readonly Candidate[],
    ef: number,
    level: number,
    live: boolean,
    exclude?: string,
  ): Promise<Candidate[]> {
    const dist = this.dist;
    const visited = new Set<string>();
    const cand = new Heap(false);
    const res = new Heap(true);
    for (const e of entries) {
      visited.add(e.node.id);
      cand.push(e.d, e.node);
      if ((!live || !e.node.deleted) && e.node.id !== exclude) res.push(e.d, e.node);
    }
    while (cand.size > 0) {
      const cd = cand.topDist();
      if (res.size >= ef && cd > res.topDist()) break;
      const c = cand.pop();
      const links = c.neighbors[level];
      if (links === undefined) continue;
      for (let i = 0; i < links.length; i++) {
        const id = links[i]!;
        if (visited.has(id)) continue;
        visited.add(id);
        let n = this.store.get(id);
        if (n instanceof Promise) n = await n;
        if (n === undefined) continue;
        const d = dist(q, n.vector);
        if (res.size < ef || d < res.topDist()) {
          cand.push(d, n);
          if ((!live || !n.deleted) && id !== exclude) {
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
  }

  /** Greedy descent on one level: move to a closer neighbour while there is one. */
  private async greedy(q: Float32Array, start: Candidate, level: number): Promise<Candidate> {
    let cur = start;
    for (let changed = true; changed; ) {
      changed = false;
      const links = cur.node.neighbors[level] ?? [];
      for (const id of links) {
        let n = this.store.get(id);
        if (n instanceof Promise) n = await n;
        if (n === undefined) continue;
        const d = this.dist(q, n.vector);
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
    for (const c of cands) {
      if (out.length >= m) break;
      let good = true;
      for (const r of out) {
        if (this.dist(c.node.vector, r.node.vector) < c.d) {
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

  /** Inserts (or re-inserts) `id`. `vector` is what the graph compares (normalised by the caller for cosine). */
  async insert(id: string, vector: Float32Array): Promise<void> {
    const store = this.store;
    const level = levelFor(id, this.params.m);
    const meta = await store.meta();
    const neighbors: string[][] = Array.from({ length: level + 1 }, () => []);
    if (meta === undefined) {
      store.put({ id, vector, level, neighbors, deleted: false });
      store.putMeta({ entry: id, maxLevel: level });
      return;
    }
    const entry = await this.node(meta.entry);
    if (entry === undefined) throw new Error(`HNSW entry point ${JSON.stringify(meta.entry)} is missing`);
    let ep: Candidate = { d: this.dist(vector, entry.vector), node: entry };
    for (let l = meta.maxLevel; l > level; l--) ep = await this.greedy(vector, ep, l);
    let entries: Candidate[] = [ep];
    const linked: Candidate[][] = [];
    let previous = store.get(id);
    if (previous instanceof Promise) previous = await previous;
    for (let l = Math.min(level, meta.maxLevel); l >= 0; l--) {
      // Deleted nodes may become links (as in hnswlib): they still route, and a new node among deleted ones must
      // be reachable.
      const w = await this.searchLayer(vector, entries, this.params.efConstruction, l, false, id);
      const chosen = this.selectNeighbors(w, this.params.m);
      const mine = chosen.map((c) => c.node.id);
      neighbors[l] = mine;
      // Re-insert (an update): keep the old links while there is room. Nodes near the old position may be
      // reachable only through this node; dropping its links would cut them off the graph.
      const old = previous?.neighbors[l];
      if (old) {
        const room = this.maxLinks(l) - mine.length;
        const kept = old.filter((x) => x !== id && !mine.includes(x)).slice(0, Math.max(0, room));
        mine.push(...kept);
      }
      linked[l] = chosen;
      if (w.length > 0) entries = w;
    }
    const self: HnswNode = { id, vector, level, neighbors, deleted: false };
    store.put(self);
    for (let l = Math.min(level, meta.maxLevel); l >= 0; l--) {
      for (const c of linked[l] ?? []) await this.link(c.node.id, id, vector, l);
    }
    if (level > meta.maxLevel) store.putMeta({ entry: id, maxLevel: level });
  }

  /** Adds `to` to the links of `from` on `level`, pruning with the heuristic when the list overflows. */
  private async link(fromId: string, to: string, toVector: Float32Array, level: number): Promise<void> {
    // Re-read: an earlier link in this insert may have replaced the node.
    const from = await this.node(fromId);
    if (from === undefined || from.level < level) return;
    const current = from.neighbors[level] ?? [];
    if (current.includes(to)) return;
    let next: string[];
    if (current.length < this.maxLinks(level)) {
      next = [...current, to];
    } else {
      const cands: Candidate[] = [
        { d: this.dist(from.vector, toVector), node: await this.stub(to, toVector) },
      ];
      for (const id of current) {
        let n = this.store.get(id);
        if (n instanceof Promise) n = await n;
        // Deleted nodes compete like live ones: they still route, and dropping them could strand the nodes
        // that are reachable only through them (there is no vacuum that repairs the graph yet).
        if (n !== undefined) cands.push({ d: this.dist(from.vector, n.vector), node: n });
      }
      cands.sort((a, b) => a.d - b.d);
      next = this.selectNeighbors(cands, this.maxLinks(level)).map((c) => c.node.id);
    }
    const neighbors = from.neighbors.slice();
    neighbors[level] = next;
    this.store.put({ ...from, neighbors });
  }

  private async stub(id: string, vector: Float32Array): Promise<HnswNode> {
    return (await this.node(id)) ?? { id, vector, level: 0, neighbors: [], deleted: false };
  }

  /** Marks `id` deleted: it keeps routing searches but is never returned. No-op when absent. */
  async markDeleted(id: string): Promise<void> {
    const n = await this.node(id);
    if (n === undefined || n.deleted) return;
    this.store.put({ ...n, deleted: true });
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
    if (entry === undefined) throw new Error(`HNSW entry point ${JSON.stringify(meta.entry)} is missing`);
    let ep: Candidate = { d: this.dist(q, entry.vector), node: entry };
    for (let l = meta.maxLevel; l > 0; l--) ep = await this.greedy(q, ep, l);
    const width = Math.max(ef, k);
    const w = await this.searchLayer(q, [ep], width, 0, true);
    const hits = w.slice(0, k).map((c) => ({ id: c.node.id, distance: c.d }));
    return { hits, exhausted: w.length < width };
  }
}

/** A NodeStore over a Map: the direct in-memory API and the reference for tests. */
export class MemoryNodeStore implements NodeStore {
  readonly nodes = new Map<string, HnswNode>();
  private m: HnswMeta | undefined;
  get(id: string): HnswNode | undefined {
    return this.nodes.get(id);
  }
  put(node: HnswNode): void {
    this.nodes.set(node.id, node);
  }
  meta(): HnswMeta | undefined {
    return this.m;
  }
  putMeta(meta: HnswMeta): void {
    this.m = meta;
  }
}
