/**
 * HNSW indexes in SQL: `CREATE INDEX … USING hnsw (col vector_l2_ops | vector_cosine_ops | vector_ip_ops)
 * WITH (m = 16, ef_construction = 64)`, their maintenance on every row write, and the index scan that answers
 * `ORDER BY col <op> $1 LIMIT k`.
 *
 * Storage: the graph (src/vector/hnsw.ts) runs over a node store whose records are engine KV records of the
 * statement's transaction (formats in src/vector/node-codec.ts; keys [indexId, 0] meta, [indexId, 1, pk] a node's
 * vector and [indexId, 1, pk, 1] its links). So a row and its node commit or roll back together, a crash loses neither, reopening never rebuilds the
 * graph, and a search reads only the nodes it visits (through the block cache).
 *
 * Decoded-node cache (per index, shared by all sessions of one SqlEngine). Correctness never depends on it:
 *   - it only holds committed nodes, decoded from what a transaction read;
 *   - a transaction's own writes live in its own overlay and are read from there first; they are encoded into
 *     the transaction once each, just before it commits (TRUNCATE and DROP drop the overlay of the index);
 *   - a commit that wrote nodes of an index marks the index in flight before it starts (nobody reads or fills
 *     the cache meanwhile); once durable it installs the nodes it wrote (exactly the versions committed at its
 *     LSN; a failed commit, or one settling after a newer one, evicts them instead; TRUNCATE empties the index's
 *     cache) and records its commit LSN as the index's `lastWriteLsn`;
 *   - a reader uses the cache only when its snapshot is at or after `lastWriteLsn` (it sees every committed write
 *     of the index, so the cached version is the one it would read), and fills it only if that still holds when
 *     its read returns. Older snapshots read the engine directly. An abort just drops the overlay.
 *   - a flat copy of the cached nodes (ResidentGraph) is set and cleared with the cache's slots, so it holds
 *     exactly the cached versions; an index scan searches it when the cache may answer and its transaction wrote
 *     nothing of the index, and falls back to hnsw.ts over the store at the first node the copy lacks.
 *
 * Vectors that are never indexed (as in pgvector): NULL, and a zero vector under cosine (no direction). An index
 * scan never returns those rows.
 *
 * Reading the hits: a hit's row is read synchronously when it is in memory (memtables, cached blocks, the
 * transaction's writes), and only the columns the query reads are decoded — usually not the vector, whose decode
 * was the largest cost of fetching the k rows. The planner (select.ts) gives the scan those columns and leaves out
 * the hidden ORDER BY distance, which the scan's order makes unneeded. A query without WHERE that reads only the
 * primary key (int2/int4/text/varchar columns) reads no row at all: the node's id is the row's key. That rests on
 * one invariant, kept by leaveIndex: a live node's row exists at every snapshot that sees the node. A transaction
 * that takes a row out of the index without finding its node (its snapshot predates the CREATE INDEX that
 * backfilled it) still writes the node's record, so it conflicts (40001) instead of leaving a live node behind.
 *
 * Filtered search: the scan evaluates the whole WHERE clause on each hit. When WHERE gives the table access a key
 * (an index or primary-key condition), the scan first counts the matching rows through that key, up to
 * PREFILTER_ROWS_MAX: a selective filter is answered exactly from those rows. Otherwise it searches the graph with
 * a beam widened from the observed pass rate (about 2k / rate candidates) until k rows pass or the graph is
 * exhausted, falling back to an exact scan once the beam would exceed BEAM_MAX.
 */

import type { DefElem, IndexStmt, Node } from "libpg-query";
import { l2Normalize, type Metric, norm } from "../../vector/distance.js";
import {
  HandleTable,
  Hnsw,
  type HnswMeta,
  type HnswNode,
  type HnswParams,
  type NodeStore,
  type SearchHit,
} from "../../vector/hnsw.js";
import {
  decodeMeta,
  decodeNode,
  encodeLinks,
  encodeMeta,
  encodeVector,
  idFromBytes,
  idToBytes,
} from "../../vector/node-codec.js";
import { ResidentGraph } from "../../vector/resident-graph.js";
import { decodeKey, encodeKey } from "../lsm/keycodec.js";
import { NEEDS_IO, type NeedsIo } from "../lsm/types.js";
import { Transaction } from "../txn/transaction.js";
import type { IndexDef, TableInfo } from "./catalog.js";
import { SqlState, sqlError, unsupported } from "./errors.js";
import type { Env, Expr, VectorOp } from "./expr.js";
import {
  concatBytes,
  EMPTY_ROW,
  type Emit,
  type ExecCtx,
  type ExplainNode,
  type Kv,
  type RowSource,
  type TableAccess,
} from "./plan.js";
import { decodeRow } from "./row-codec.js";
import { WriteLayer } from "./savepoints.js";
import type { SqlType, Value } from "./types.js";
import { DISTANCES } from "./vector-ops.js";

export interface HnswSpec {
  opclass: "vector_l2_ops" | "vector_cosine_ops" | "vector_ip_ops";
  m: number;
  efConstruction: number;
}

const OPCLASSES: Record<HnswSpec["opclass"], { metric: Metric; op: VectorOp }> = {
  vector_l2_ops: { metric: "l2", op: "<->" },
  vector_cosine_ops: { metric: "cosine", op: "<=>" },
  vector_ip_ops: { metric: "ip", op: "<#>" },
};

/** pgvector's hnsw.ef_search default and range. */
export const EF_SEARCH_DEFAULT = 40;
export const EF_SEARCH_MIN = 1;
export const EF_SEARCH_MAX = 1000;

/** A key-restricted filter matching at most this many rows is answered exactly from them. */
export const PREFILTER_ROWS_MAX = 5000;
/** Beyond this beam width a filtered search scans the table exactly instead. */
export const BEAM_MAX = 20000;

// ---- CREATE INDEX … USING hnsw ---------------------------------------------------------------------------------

function intOption(d: DefElem): number {
  const arg = d.arg as { Integer?: { ival?: number }; Float?: { fval?: string }; String?: { sval?: string } };
  const raw = arg?.Integer ? (arg.Integer.ival ?? 0) : Number(arg?.Float?.fval ?? arg?.String?.sval);
  if (!Number.isInteger(raw)) {
    throw sqlError(SqlState.InvalidParameterValue, `invalid value for integer option "${d.defname}": ${raw}`);
  }
  return raw;
}

function bounded(name: string, v: number, lo: number, hi: number): number {
  if (v < lo || v > hi) {
    throw sqlError(SqlState.InvalidParameterValue, `value ${v} out of bounds for option "${name}"`, {
      detail: `Valid values are between "${lo}" and "${hi}".`,
    });
  }
  return v;
}

/** Validates an hnsw CREATE INDEX as pgvector does and returns its spec (column checks come with the table). */
export function hnswSpecOf(stmt: IndexStmt): HnswSpec {
  if (stmt.unique)
    throw sqlError(SqlState.FeatureNotSupported, 'access method "hnsw" does not support unique indexes');
  const params = stmt.indexParams ?? [];
  if (params.length !== 1) {
    throw sqlError(SqlState.FeatureNotSupported, 'access method "hnsw" does not support multicolumn indexes');
  }
  const el = (params[0] as { IndexElem: { opclass?: Node[] } }).IndexElem;
  const names = (el.opclass ?? []).map((n) => ("String" in n ? (n.String.sval ?? "") : ""));
  const opclass = names[names.length - 1]?.toLowerCase();
  if (opclass === undefined) {
    throw sqlError(
      SqlState.UndefinedObject,
      'data type vector has no default operator class for access method "hnsw"',
      {
        hint: "You must specify an operator class for the index or define a default operator class for the data type.",
      },
    );
  }
  if (!(opclass in OPCLASSES)) {
    throw sqlError(
      SqlState.UndefinedObject,
      `operator class "${opclass}" does not exist for access method "hnsw"`,
      {
        hint: "Twill DB's hnsw operator classes: vector_l2_ops, vector_cosine_ops, vector_ip_ops.",
      },
    );
  }
  let m = 16;
  let efConstruction = 64;
  for (const o of stmt.options ?? []) {
    const d = (o as { DefElem: DefElem }).DefElem;
    const name = (d.defname ?? "").toLowerCase();
    if (name === "m") m = bounded("m", intOption(d), 2, 100);
    else if (name === "ef_construction") efConstruction = bounded("ef_construction", intOption(d), 4, 1000);
    else throw sqlError(SqlState.InvalidParameterValue, `unrecognized parameter "${d.defname}"`);
  }
  if (efConstruction < 2 * m) {
    throw sqlError(SqlState.InvalidParameterValue, "ef_construction must be greater than or equal to 2 * m");
  }
  return { opclass: opclass as HnswSpec["opclass"], m, efConstruction };
}

/** The column checks of pgvector's hnsw build. */
export function checkHnswColumn(spec: HnswSpec, type: SqlType): void {
  if (type.kind !== "vector") {
    throw sqlError(
      SqlState.DatatypeMismatch,
      `operator class "${spec.opclass}" does not accept data type ${type.kind === "int4" ? "integer" : type.kind}`,
    );
  }
  if (type.length < 0) throw sqlError("22000", "column does not have dimensions");
}

export function isHnsw(ix: IndexDef): boolean {
  return ix.hnsw !== undefined;
}

// ---- the decoded-node cache and the commit protocol -------------------------------------------------------------

/**
 * One index's handle table and decoded committed nodes. Handles are given out per index for the life of the
 * SqlEngine (ids are never forgotten: a few dozen bytes per row ever indexed), so every session's graph over
 * this index names a node by the same integer, and the cache is an array indexed by it.
 */
class IndexCache extends HandleTable {
  /** Handles in the order their nodes entered the cache (eviction order; may repeat or be stale). */
  readonly order: number[] = [];
  orderHead = 0;
  meta: HnswMeta | undefined;
  lastWriteLsn = 0;
  inFlight = 0;
  /**
   * The cached nodes again in flat arrays (src/vector/resident-graph.ts), for searches: always exactly the
   * versions in `slots` (set and cleared with them), so it is usable exactly when the cache is.
   */
  resident: ResidentGraph | undefined;

  usable(snapshot: number): boolean {
    return this.inFlight === 0 && snapshot >= this.lastWriteLsn;
  }
}

/**
 * One transaction's decoded nodes of one index, in an array by handle: a write transaction's searches look
 * here first for every node they visit, and a Map lookup there was the SQL store's largest cost in a build.
 */
class Overlay {
  private readonly byHandle: (HnswNode | undefined)[] = [];
  /** Handles put, in first-put order. */
  private readonly handles: number[] = [];

  get(h: number): HnswNode | undefined {
    return h < this.byHandle.length ? this.byHandle[h] : undefined;
  }

  set(node: HnswNode): void {
    const h = node.handle;
    const a = this.byHandle;
    while (a.length <= h) a.push(undefined);
    if (a[h] === undefined) this.handles.push(h);
    a[h] = node;
  }

  clear(): void {
    this.byHandle.length = 0;
    this.handles.length = 0;
  }

  *values(): IterableIterator<HnswNode> {
    for (const h of this.handles) yield this.byHandle[h]!;
  }
}

/** One transaction's HNSW writes: decoded nodes it put (its overlay, by handle) and indexes it emptied. */
class TxnWrites {
  readonly nodes = new Map<number, Overlay>();
  readonly metas = new Map<number, HnswMeta>();
  readonly emptied = new Set<number>();

  touched(): Set<number> {
    return new Set([...this.nodes.keys(), ...this.metas.keys(), ...this.emptied]);
  }
}

/** A decoded node's approximate heap size (computed twice per node a commit installs: a plain loop). */
function nodeBytes(n: HnswNode): number {
  let s = 96 + 4 * n.vector.length;
  const levels = n.neighbors;
  for (let l = 0; l < levels.length; l++) s += 8 * levels[l]!.length + 16;
  return s;
}

/** Per SqlEngine: the caches of all HNSW indexes and the writes of open transactions. */
export class VectorIndexes {
  private readonly caches = new Map<number, IndexCache>();
  private readonly txns = new WeakMap<Transaction, TxnWrites>();
  private bytes = 0;
  /** Counters for profiles and tests: nodes decoded from engine records, and cache entries evicted for room. */
  decodes = 0;
  evictions = 0;
  /**
   * Index-scan searches answered from the cache's flat copy (ResidentGraph), and those that tried it but met a
   * node it does not hold (then answered by hnsw.ts over the store).
   */
  residentSearches = 0;
  residentMisses = 0;

  /** The decoded-node cache's size: its entries across indexes and their estimated bytes. */
  stats(): {
    nodes: number;
    bytes: number;
    decodes: number;
    evictions: number;
    residentSearches: number;
    residentMisses: number;
  } {
    let nodes = 0;
    for (const c of this.caches.values()) for (const n of c.slots) if (n !== undefined) nodes++;
    return {
      nodes,
      bytes: this.bytes,
      decodes: this.decodes,
      evictions: this.evictions,
      residentSearches: this.residentSearches,
      residentMisses: this.residentMisses,
    };
  }

  constructor(
    /** Budget of decoded nodes across indexes; beyond it the oldest entries are evicted. */
    readonly cacheBytesMax = 256 * 1024 * 1024,
  ) {}

  cache(indexId: number): IndexCache {
    let c = this.caches.get(indexId);
    if (!c) {
      c = new IndexCache();
      this.caches.set(indexId, c);
    }
    return c;
  }

  writes(txn: Transaction, create: true): TxnWrites;
  writes(txn: Transaction, create: false): TxnWrites | undefined;
  writes(txn: Transaction, create: boolean): TxnWrites | undefined {
    let w = this.txns.get(txn);
    if (!w && create) {
      w = new TxnWrites();
      this.txns.set(txn, w);
      this.overlaysCreated++;
    }
    return w;
  }

  /** Counts overlays ever created, so a store that found none can tell cheaply whether to look again. */
  overlaysCreated = 0;

  /**
   * Vector arrays known to equal their node's committed vector record in this database: decoded from it, or
   * committed by a transaction. A node version that keeps such an array (a relink, a delete) needs only its links
   * record written. Arrays are never shared between nodes or modified (hnsw.ts), so identity is enough.
   */
  readonly storedVectors = new WeakSet<Float32Array>();

  add(cache: IndexCache, node: HnswNode): void {
    if (cache.slots[node.handle] !== undefined) return;
    cache.slots[node.handle] = node;
    cache.resident?.set(node);
    cache.order.push(node.handle);
    this.bytes += nodeBytes(node);
    if (this.bytes > this.cacheBytesMax) this.evict(cache);
  }

  private evict(cache: IndexCache): void {
    // Oldest first, from the index being filled, down to 7/8 of the budget.
    const order = cache.order;
    while (this.bytes > (this.cacheBytesMax * 7) / 8 && cache.orderHead < order.length) {
      if (this.drop(cache, order[cache.orderHead++]!)) this.evictions++;
    }
    if (cache.orderHead > 4096 && cache.orderHead * 2 > order.length) {
      order.splice(0, cache.orderHead);
      cache.orderHead = 0;
    }
  }

  /** Removes handle h's cached node; false when none was cached. */
  private drop(cache: IndexCache, h: number): boolean {
    const n = cache.slots[h];
    if (!n) return false;
    cache.slots[h] = undefined;
    cache.resident?.clear(h);
    this.bytes -= nodeBytes(n);
    return true;
  }

  /** An index's nodes are all gone in this transaction (TRUNCATE, DROP). */
  emptied(txn: Transaction, indexId: number): void {
    const w = this.writes(txn, true);
    w.emptied.add(indexId);
    // Cleared, not deleted: a store of this transaction may hold the map.
    w.nodes.get(indexId)?.clear();
    w.metas.delete(indexId);
  }

  /**
   * Called before a transaction commits; returns what to call once the commit settled (with its LSN, or
   * undefined when it failed), or undefined when the transaction wrote no HNSW record.
   */
  beginCommit(txn: Transaction): ((lsn: number | undefined) => void) | undefined {
    const w = this.txns.get(txn);
    if (!w) return undefined;
    this.txns.delete(txn);
    // The overlay's nodes become the transaction's records now (put defers them), so the commit carries them.
    // Links always (a concurrent writer of the same node then conflicts on that key); the vector only when it is
    // not already the stored one (a relink or a delete keeps the node's vector array).
    for (const [indexId, nodes] of w.nodes) {
      const handles = this.cache(indexId);
      for (const node of nodes.values()) {
        if (!this.storedVectors.has(node.vector)) txn.put(nodeKey(indexId, node.id), encodeVector(node));
        txn.put(linksKey(indexId, node.id), encodeLinks(node, handles));
      }
    }
    const touched = w.touched();
    for (const id of touched) this.cache(id).inFlight++;
    return (lsn) => {
      for (const id of touched) {
        const c = this.cache(id);
        c.inFlight--;
        if (w.emptied.has(id)) {
          for (let h = 0; h < c.slots.length; h++) this.drop(c, h);
          c.order.length = 0;
          c.orderHead = 0;
          c.meta = undefined;
        }
        // The committed versions are the newest as of `lsn`: install them for readers at or after it, unless a
        // newer commit of this index already settled (then its versions, or the engine, must answer).
        const install = lsn !== undefined && lsn >= c.lastWriteLsn && !w.emptied.has(id);
        for (const node of w.nodes.get(id)?.values() ?? []) {
          this.drop(c, node.handle);
          if (install) this.add(c, node);
        }
        if (w.metas.has(id) || w.emptied.has(id)) c.meta = install ? w.metas.get(id) : undefined;
        if (lsn !== undefined) {
          c.lastWriteLsn = Math.max(c.lastWriteLsn, lsn);
          if (!w.emptied.has(id))
            for (const node of w.nodes.get(id)?.values() ?? []) this.storedVectors.add(node.vector);
        }
      }
    };
  }

  aborted(txn: Transaction): void {
    this.txns.delete(txn);
  }

  /** The node store of one index for one statement's transaction. */
  store(ctx: ExecCtx, ix: IndexDef): KvNodeStore {
    const { txn, inSavepoint } = rootTransaction(ctx);
    const c = this.cache(ix.id);
    if (c.resident === undefined) {
      // Created with the index's parameters by its first store, from whatever the cache holds by then.
      c.resident = new ResidentGraph(params(ix));
      for (const n of c.slots) if (n !== undefined) c.resident.set(n);
    }
    return new KvNodeStore(this, ix.id, ctx.kv, txn, inSavepoint);
  }
}

/**
 * The engine transaction under a statement's writer, and whether a savepoint layer sits between them. The
 * transaction's HNSW overlay (decoded nodes, written to the transaction only at commit) has no savepoint layers:
 * ROLLBACK TO could not undo a relink in it. So graph writes are refused while a savepoint is open; reads are
 * fine, because no layer above the transaction can then hold a graph record.
 */
function rootTransaction(ctx: ExecCtx): { txn: Transaction | undefined; inSavepoint: boolean } {
  let w: unknown = ctx.txn;
  let inSavepoint = false;
  while (w instanceof WriteLayer) {
    inSavepoint = true;
    w = w.below;
  }
  return { txn: w instanceof Transaction ? w : undefined, inSavepoint };
}

function refuseInSavepoint(inSavepoint: boolean): void {
  if (inSavepoint) {
    throw unsupported(
      "changing a table with an HNSW index inside a SAVEPOINT",
      "write it before the SAVEPOINT or after RELEASE SAVEPOINT",
    );
  }
}

/** DROP/TRUNCATE emptied an index in this statement's transaction. */
export function hnswEmptied(ctx: ExecCtx, indexId: number): void {
  const { txn, inSavepoint } = rootTransaction(ctx);
  refuseInSavepoint(inSavepoint);
  if (txn) ctx.services.vectors?.emptied(txn, indexId);
}

const metaKey = (indexId: number) => encodeKey([indexId, 0]);
const nodeKey = (indexId: number, id: string) => encodeKey([indexId, 1, idToBytes(id)]);
const linksKey = (indexId: number, id: string) => encodeKey([indexId, 1, idToBytes(id), 1]);

/** NodeStore over the statement's transaction, with the transaction's overlay and the shared cache. */
export class KvNodeStore implements NodeStore {
  private readonly cache: IndexCache;
  private readonly snapshot: number;
  /** The transaction's overlay of this index, once it exists. */
  private mine: Overlay | undefined;
  private writes: TxnWrites | undefined;
  /** `owner.overlaysCreated` when this store last looked for its transaction's overlay. */
  private looked = -1;

  constructor(
    private readonly owner: VectorIndexes,
    private readonly indexId: number,
    private readonly kv: Kv,
    private readonly txn: Transaction | undefined,
    private readonly inSavepoint = false,
  ) {
    this.cache = owner.cache(indexId);
    this.snapshot = txn ? txn.snapshotLsn : -1;
  }

  handle(id: string): number {
    return this.cache.handle(id);
  }

  idOf(handle: number): string {
    return this.cache.idOf(handle);
  }

  /** The transaction's HNSW writes; looked up again only when some overlay was created since the last look. */
  private own(): TxnWrites | undefined {
    if (this.writes === undefined && this.txn && this.looked !== this.owner.overlaysCreated) {
      this.looked = this.owner.overlaysCreated;
      this.writes = this.owner.writes(this.txn, false);
    }
    if (this.writes !== undefined && this.mine === undefined) this.mine = this.writes.nodes.get(this.indexId);
    return this.writes;
  }

  private cacheOk(w: TxnWrites | undefined): boolean {
    // Per visited node of every search: the size test keeps the set lookup off the common path.
    return (
      this.txn !== undefined &&
      (w === undefined || w.emptied.size === 0 || !w.emptied.has(this.indexId)) &&
      this.cache.usable(this.snapshot)
    );
  }

  get(h: number): HnswNode | undefined | Promise<HnswNode | undefined> {
    const w = this.own();
    if (w !== undefined) {
      const mine = this.mine?.get(h);
      if (mine) return mine;
      if (!this.cacheOk(w)) return this.load(h, w);
    } else if (this.txn === undefined || !this.cache.usable(this.snapshot)) return this.load(h, w);
    return this.cache.slots[h] ?? this.load(h, w);
  }

  peek(h: number): HnswNode | undefined | null {
    const w = this.own();
    if (w !== undefined) {
      const mine = this.mine?.get(h);
      if (mine) return mine;
      if (!this.cacheOk(w)) return null;
    } else if (this.txn === undefined || !this.cache.usable(this.snapshot)) return null;
    return this.cache.slots[h] ?? null;
  }

  /**
   * Reads a node from the engine: synchronously when both records are in memory (memtables, cached blocks, the
   * transaction's writes), which every insert of a new row does once (its node does not exist yet).
   */
  private load(h: number, w: TxnWrites | undefined): HnswNode | undefined | Promise<HnswNode | undefined> {
    const id = this.cache.idOf(h);
    const vKey = nodeKey(this.indexId, id);
    const lKey = linksKey(this.indexId, id);
    const kv = this.kv;
    if (kv.getSync !== undefined) {
      const bytes = kv.getSync(vKey);
      if (bytes === undefined) return undefined; // no vector record: no node, whatever its links say
      if (bytes !== NEEDS_IO) {
        const links = kv.getSync(lKey);
        if (links !== NEEDS_IO) return this.loaded(id, vKey, lKey, bytes, links, w);
      }
    }
    return this.loadAsync(id, vKey, lKey, w);
  }

  private async loadAsync(
    id: string,
    vKey: Uint8Array,
    lKey: Uint8Array,
    w: TxnWrites | undefined,
  ): Promise<HnswNode | undefined> {
    const [bytes, links] = await Promise.all([this.kv.get(vKey), this.kv.get(lKey)]);
    return bytes === undefined ? undefined : this.loaded(id, vKey, lKey, bytes, links, w);
  }

  private loaded(
    id: string,
    vKey: Uint8Array,
    lKey: Uint8Array,
    bytes: Uint8Array,
    links: Uint8Array | undefined,
    w: TxnWrites | undefined,
  ): HnswNode {
    const node = decodeNode(id, bytes, links, this.cache);
    this.owner.decodes++;
    this.owner.storedVectors.add(node.vector);
    // Only a committed version may enter the cache: not one this transaction wrote (or deleted) itself.
    const ownKey = this.txn ? this.txn.hasWrite(vKey) || this.txn.hasWrite(lKey) : true;
    if (!ownKey && this.cacheOk(w)) this.owner.add(this.cache, node);
    return node;
  }

  /**
   * Records a node in the transaction's overlay only; `beginCommit` encodes each changed node once into the
   * transaction. A bulk load relinks the same neighbours many times per transaction, and encoding every version
   * cost more than the rest of the SQL layer's share of a build.
   */
  put(node: HnswNode): void {
    refuseInSavepoint(this.inSavepoint);
    const txn = this.txn;
    if (!txn) throw new Error("HNSW write outside a transaction");
    if (this.mine === undefined) {
      const w = this.owner.writes(txn, true);
      this.writes = w;
      let m = w.nodes.get(this.indexId);
      if (!m) {
        m = new Overlay();
        w.nodes.set(this.indexId, m);
      }
      this.mine = m;
    }
    this.mine.set(node);
  }

  /**
   * The search over the cache's flat copy (the same answer as hnsw.ts's search over this store), when this
   * store may read the cache and the transaction wrote nothing of the index; undefined otherwise, or when the
   * search met a node the cache does not hold (then hnsw.ts's search reads it).
   */
  residentSearch(
    q: Float32Array,
    k: number,
    ef: number,
  ): { hits: SearchHit[]; exhausted: boolean } | undefined {
    const w = this.own();
    if (
      w !== undefined &&
      (this.mine !== undefined || w.metas.has(this.indexId) || w.emptied.has(this.indexId))
    )
      return undefined;
    const cache = this.cache;
    const meta = cache.meta;
    if (meta === undefined || cache.resident === undefined || !this.cacheOk(w)) return undefined;
    const found = cache.resident.search(q, k, ef, meta.entry, meta.maxLevel, (h) => cache.idOf(h));
    if (found === undefined) this.owner.residentMisses++;
    else this.owner.residentSearches++;
    return found;
  }

  meta(): HnswMeta | undefined | Promise<HnswMeta | undefined> {
    const w = this.own();
    const mine = w?.metas.get(this.indexId);
    if (mine) return mine;
    if (this.cacheOk(w) && this.cache.meta) return this.cache.meta;
    return this.loadMeta(w);
  }

  private async loadMeta(w: TxnWrites | undefined): Promise<HnswMeta | undefined> {
    const bytes = await this.kv.get(metaKey(this.indexId));
    if (bytes === undefined) return undefined;
    const meta = decodeMeta(bytes, this.cache);
    const ownKey = this.txn?.hasWrite(metaKey(this.indexId)) ?? true;
    if (!ownKey && this.cacheOk(w)) this.cache.meta = meta;
    return meta;
  }

  putMeta(meta: HnswMeta): void {
    refuseInSavepoint(this.inSavepoint);
    const txn = this.txn;
    if (!txn) throw new Error("HNSW write outside a transaction");
    txn.put(metaKey(this.indexId), encodeMeta(meta, this.cache));
    const w = this.owner.writes(txn, true);
    this.writes = w;
    w.metas.set(this.indexId, meta);
  }
}

// ---- maintenance ---------------------------------------------------------------------------------------------------

function params(ix: IndexDef): HnswParams {
  const s = ix.hnsw!;
  return { m: s.m, efConstruction: s.efConstruction, metric: OPCLASSES[s.opclass].metric };
}

function registry(ctx: ExecCtx): VectorIndexes {
  const v = ctx.services.vectors;
  if (!v) throw unsupported("HNSW indexes on this connection (no vector index registry)");
  return v;
}

/** The vector the graph stores for `v`, or undefined when pgvector would not index it. */
function prepare(metric: Metric, v: Value): Float32Array | undefined {
  if (v === null) return undefined;
  const vec = v as Float32Array;
  if (metric !== "cosine") return vec;
  return norm(vec) > 0 ? l2Normalize(vec) : undefined;
}

/**
 * The vector an index scan searches for `q`. Under cosine the graph's order for a query is the same at any
 * length (1 − |q|·cos is monotone in cos), so a query already of about unit length (embeddings usually are) is
 * searched as given rather than normalised into a new array; far from unit length it is normalised, so the
 * graph's float32 distances keep their precision. A zero query has no direction: undefined.
 */
function searchVector(metric: Metric, q: Float32Array): Float32Array | undefined {
  if (metric !== "cosine") return q;
  const n = norm(q);
  if (!(n > 0)) return undefined;
  return Math.abs(n - 1) <= 1e-3 ? q : l2Normalize(q);
}

function graph(ctx: ExecCtx, ix: IndexDef): Hnsw {
  return new Hnsw(params(ix), registry(ctx).store(ctx, ix));
}

/**
 * Indexes a new row (or the new version of a row). `newRow`: the key had no row at the transaction's snapshot, so
 * no node can exist for it that a conflict on the row's own key would not already catch.
 */
export async function hnswInsert(
  ctx: ExecCtx,
  ix: IndexDef,
  row: readonly Value[],
  pk: Uint8Array,
  newRow = false,
): Promise<void> {
  const vec = prepare(params(ix).metric, row[ix.columns[0]!]!);
  if (vec === undefined) {
    // Not indexed (NULL, or a zero vector under cosine); an update to one leaves the index.
    if (!newRow) await leaveIndex(ctx, ix, graph(ctx, ix), idFromBytes(pk));
    return;
  }
  const g = graph(ctx, ix);
  const id = idFromBytes(pk);
  await g.insert(id, vec);
}

export async function hnswDelete(ctx: ExecCtx, ix: IndexDef, pk: Uint8Array): Promise<void> {
  await leaveIndex(ctx, ix, graph(ctx, ix), idFromBytes(pk));
}

/**
 * Takes row `id` out of the index: marks its node deleted, or, when the transaction's snapshot has no node for it,
 * deletes the node's vector record anyway. That delete changes nothing when no node exists, but when one was
 * committed after the snapshot (a CREATE INDEX that backfilled this row while the transaction ran), both wrote
 * the record and first-committer-wins fails this transaction with 40001 instead of leaving a live node whose row
 * is gone. The invariant it keeps (a live node's row exists at every snapshot that sees the node) is what lets an
 * index scan answer a primary-key-only query without reading the rows. It is written through the statement's
 * writer, so a ROLLBACK TO undoes it with the row's delete.
 */
async function leaveIndex(ctx: ExecCtx, ix: IndexDef, g: Hnsw, id: string): Promise<void> {
  if (!(await g.markDeleted(id))) ctx.txn!.delete(nodeKey(ix.id, id));
}

/** Whether an update must touch the index: the row moved, or its vector changed. */
export function hnswChanged(
  ix: IndexDef,
  oldRow: readonly Value[],
  newRow: readonly Value[],
  pkChanged: boolean,
): boolean {
  if (pkChanged) return true;
  const a = oldRow[ix.columns[0]!]! as Float32Array | null;
  const b = newRow[ix.columns[0]!]! as Float32Array | null;
  if (a === null || b === null) return a !== b;
  if (a.length !== b.length) return true;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return true;
  return false;
}

/** Builds the graph of a new index from the table's rows (CREATE INDEX on a filled table). */
export async function hnswBackfill(ctx: ExecCtx, table: TableInfo, ix: IndexDef): Promise<void> {
  for await (const kv of ctx.kv.scan(table.range)) {
    const row = decodeRow(table.types, kv.value, table.missing);
    await hnswInsert(ctx, ix, row, kv.key.slice(table.keyPrefix.length));
  }
}

// ---- planning and the index scan ---------------------------------------------------------------------------------

/** The HNSW index that can order `table` by `vd`, if any. */
export function matchHnsw(table: TableInfo, vd: { op: VectorOp; column: number }): IndexDef | undefined {
  return table.def.indexes.find(
    (ix) => ix.hnsw !== undefined && ix.columns[0] === vd.column && OPCLASSES[ix.hnsw.opclass].op === vd.op,
  );
}

/** Key types whose key part (types.ts keyPartFn) is the value itself, so a decoded key is the column's value. */
const KEY_IS_VALUE: ReadonlySet<string> = new Set(["int2", "int4", "text", "varchar"]);

function limitOf(e: Expr | undefined, env: Env): number | undefined {
  if (!e) return undefined;
  const v = e.eval(EMPTY_ROW, env);
  return v === null ? undefined : Number(v);
}

/**
 * Rows of one table in ascending distance from a query vector, read through an HNSW index. It replaces the
 * table access and the sort of `SELECT … WHERE … ORDER BY col <op> q LIMIT k`; the LIMIT node above still cuts.
 */
export class HnswScan implements RowSource {
  limit: Expr | undefined;
  offset: Expr | undefined;

  constructor(
    readonly access: TableAccess,
    readonly index: IndexDef,
    readonly order: { op: VectorOp; column: number; query: Expr },
    /** The whole WHERE clause (all of it was pushed into `access`). */
    readonly where: Expr | undefined,
    readonly orderText: string,
  ) {}

  /**
   * The columns of a fetched hit the query reads (its output and WHERE), set by the planner; undefined: all. A
   * hit's vector is usually not among them, and decoding it was the largest cost of fetching the k rows.
   */
  private fetchMask: Uint8Array | undefined;

  /**
   * Whether the query reads nothing of a hit but its primary key (and has no WHERE): the hits' ids are then the
   * answer, and no row is read. Sound because a live node's row exists at every snapshot that sees the node (see
   * leaveIndex), and the node's id is the row's encoded key. Only for key types whose key part is the value itself,
   * so that decoding the key gives back exactly what the row holds.
   */
  private keyOnly = false;

  /** Planner: only these row positions are read above the scan (the exact fallbacks read the access's rows). */
  readColumns(read: readonly number[]): void {
    const table = this.access.table;
    const n = table.types.length;
    const mask = new Uint8Array(n);
    let all = true;
    for (const c of read) if (c >= 0 && c < n) mask[c] = 1;
    for (let i = 0; i < n; i++) if (mask[i] === 0) all = false;
    this.fetchMask = all ? undefined : mask;
    const pk = table.def.primaryKey;
    this.keyOnly =
      this.where === undefined &&
      this.fetchMask !== undefined &&
      pk.every((c) => KEY_IS_VALUE.has(table.types[c]!.kind)) &&
      mask.every((m, c) => m === 0 || pk.includes(c));
  }

  /** The row of an index-only hit: its primary key's columns from the node's id, NULL elsewhere (never read). */
  private keyRow(id: string): Value[] {
    const table = this.access.table;
    const row: Value[] = new Array(table.types.length).fill(null);
    const parts = decodeKey(idToBytes(id));
    const pk = table.def.primaryKey;
    for (let i = 0; i < pk.length; i++) row[pk[i]!] = parts[i] as Value;
    return row;
  }

  async *rows(ctx: ExecCtx): AsyncIterable<Value[]> {
    yield* await this.answer(ctx);
  }

  /** Push execution: the answer is computed whole (k rows), then emitted without a promise per row. */
  async each(ctx: ExecCtx, _outer: Value[] | undefined, emit: Emit): Promise<void> {
    const rows = await this.answer(ctx);
    for (let i = 0; i < rows.length; i++) if (emit(rows[i]!) === false) return;
  }

  private async answer(ctx: ExecCtx): Promise<Value[][]> {
    const env = ctx.env;
    const table = this.access.table;
    const qv = this.order.query.eval(EMPTY_ROW, env) as Float32Array | null;
    const limit = limitOf(this.limit, env);
    const metric = params(this.index).metric;
    if (qv !== null) {
      const dims = table.types[this.order.column]!.length;
      if (dims >= 0 && qv.length !== dims) {
        throw sqlError("22000", `different vector dimensions ${dims} and ${qv.length}`);
      }
    }
    const q = qv === null ? undefined : searchVector(metric, qv);
    if (q === undefined || limit === undefined) {
      // No direction to search (NULL or a zero query under cosine) or no LIMIT: the exact answer.
      return this.exact(ctx, this.access.rows(ctx), qv, Number.POSITIVE_INFINITY);
    }
    const k = limit + (limitOf(this.offset, env) ?? 0);
    if (k <= 0) return [];
    const efSearch = env.efSearch ?? EF_SEARCH_DEFAULT;
    if (this.where && this.access.path.kind !== "seq") {
      // A key-restricted filter: count the rows it keeps, up to a bound; few rows are answered exactly.
      const kept: Value[][] = [];
      let small = true;
      for await (const r of this.access.rows(ctx)) {
        kept.push(r);
        if (kept.length > PREFILTER_ROWS_MAX) {
          small = false;
          break;
        }
      }
      if (small) return this.exact(ctx, kept, qv, k);
    }
    const store = registry(ctx).store(ctx, this.index);
    // Only a filtered search can widen and meet a hit again.
    const fetched = this.where ? new Map<string, Value[] | null>() : undefined;
    let ef = Math.max(efSearch, k);
    for (;;) {
      let found = store.residentSearch(q, ef, ef);
      if (found === undefined) found = await new Hnsw(params(this.index), store).search(q, ef, ef);
      const { hits, exhausted } = found;
      const out: Value[][] = [];
      if (this.keyOnly) {
        // Unfiltered: the first k hits are the answer (ef >= k, and the search returns live nodes only).
        for (let i = 0; i < hits.length && out.length < k; i++) out.push(this.keyRow(hits[i]!.id));
        return out;
      }
      // Rows are read from memory synchronously; those that need I/O a batch at a time, concurrently (one await
      // per batch, not per row): unfiltered, the first k live hits are the answer (ef >= k), so the first batch
      // is usually the last.
      let i = 0;
      while (i < hits.length && (this.where || out.length < k)) {
        const n = Math.min(hits.length - i, this.where ? Math.max(k, 16) : k - out.length);
        const rows: (Value[] | null)[] = new Array(n);
        let waits: Promise<void>[] | undefined;
        for (let j = 0; j < n; j++) {
          const id = hits[i + j]!.id;
          const r = this.fetchSync(ctx, fetched, id);
          if (r !== NEEDS_IO) {
            rows[j] = r;
            continue;
          }
          if (waits === undefined) waits = [];
          waits.push(
            this.fetch(ctx, fetched, id).then((row) => {
              rows[j] = row;
            }),
          );
        }
        if (waits !== undefined) await Promise.all(waits);
        i += n;
        for (let j = 0; j < n; j++) {
          const row = rows[j]!;
          if (row === null) continue;
          out.push(row);
          if (!this.where && out.length >= k) break;
        }
      }
      if (out.length >= k || exhausted || !this.where) return out;
      const rate = Math.max(out.length, 1) / Math.max(hits.length, 1);
      const next = Math.max(ef * 2, Math.ceil((2 * k) / rate));
      if (next > BEAM_MAX) return this.exact(ctx, this.access.rows(ctx), qv, k);
      ef = next;
    }
  }

  /** A hit's stored row decoded (only the read columns) and filtered, or null. */
  private accept(ctx: ExecCtx, bytes: Uint8Array | undefined): Value[] | null {
    if (bytes === undefined) return null;
    const table = this.access.table;
    const row = decodeRow(table.types, bytes, table.missing, this.fetchMask);
    return this.where && this.where.eval(row, ctx.env) !== true ? null : row;
  }

  private rowKey(id: string): Uint8Array {
    return concatBytes(this.access.table.keyPrefix, idToBytes(id));
  }

  /** `fetch` from memory only (memtables, cached blocks, the transaction's writes), or NEEDS_IO. */
  private fetchSync(
    ctx: ExecCtx,
    fetched: Map<string, Value[] | null> | undefined,
    id: string,
  ): Value[] | null | NeedsIo {
    const seen = fetched?.get(id);
    if (seen !== undefined) return seen;
    const kv = ctx.kv;
    if (kv.getSync === undefined) return NEEDS_IO;
    const bytes = kv.getSync(this.rowKey(id));
    if (bytes === NEEDS_IO) return NEEDS_IO;
    const row = this.accept(ctx, bytes);
    fetched?.set(id, row);
    return row;
  }

  /** The row of a hit that passes the WHERE clause, or null; each id is read once per scan. */
  private async fetch(
    ctx: ExecCtx,
    fetched: Map<string, Value[] | null> | undefined,
    id: string,
  ): Promise<Value[] | null> {
    const seen = fetched?.get(id);
    if (seen !== undefined) return seen;
    const row = this.accept(ctx, await ctx.kv.get(this.rowKey(id)));
    fetched?.set(id, row);
    return row;
  }

  /** The exact top `k` of `rows` by the SQL distance (rows whose distance is NULL are not returned). */
  private async exact(
    _ctx: ExecCtx,
    rows: AsyncIterable<Value[]> | Iterable<Value[]>,
    q: Float32Array | null,
    k: number,
  ): Promise<Value[][]> {
    const col = this.order.column;
    const f = DISTANCES[this.order.op];
    const scored: { d: number; row: Value[] }[] = [];
    if (q === null) {
      for await (const r of rows) scored.push({ d: 0, row: r });
      return scored.slice(0, k).map((s) => s.row);
    }
    for await (const r of rows) {
      const v = r[col] as Float32Array | null;
      if (v === null) continue;
      if (v.length !== q.length)
        throw sqlError("22000", `different vector dimensions ${v.length} and ${q.length}`);
      scored.push({ d: f(v, q), row: r });
    }
    // NaN (a zero vector under cosine) sorts last, as PostgreSQL orders float8.
    scored.sort((a, b) =>
      Number.isNaN(a.d) ? (Number.isNaN(b.d) ? 0 : 1) : Number.isNaN(b.d) ? -1 : a.d - b.d,
    );
    return (scored.length > k ? scored.slice(0, k) : scored).map((s) => s.row);
  }

  explain(): ExplainNode {
    const t = this.access.table;
    const name = this.access.alias === t.name ? t.name : `${t.name} ${this.access.alias}`;
    const details = [`Order By: ${this.orderText}`];
    if (this.where) details.push(`Filter: ${this.where.text}`);
    return { label: `Index Scan using ${this.index.name} on ${name}`, details, children: [] };
  }
}
