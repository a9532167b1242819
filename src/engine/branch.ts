/**
 * Branches: fork, list, drop and merge (docs/BRANCHES.md has the format, protocol, invariants and the alternatives
 * rejected). The engine calls in here; this module owns the branch protocol, the engine owns commits and reads.
 *
 *   fork:  register the fork LSN as a live snapshot of the parent, then one `writeIfAbsent` of the child's first
 *          manifest version (the one object creation writes). Nothing is copied.
 *   open:  a branch reads through a BranchView: its own tree, then each ancestor's tree cut at the fork LSN below
 *          it. The parent's live tree when opened from it in this process; otherwise read-only trees built from
 *          the ancestors' newest manifests and their unflushed log frames up to the cut.
 *   drop:  log writer lock (refuses a branch open elsewhere), manifests oldest first, SST namespace, log prefix.
 *   merge: the branch's own newest versions, applied to the parent in one transaction; conflicts are keys the
 *          parent changed after the fork.
 *
 * Invariants:
 *   - A branch's own versions all have lsn > its fork LSN (lsnBase = forkLsn); its ancestors' versions that it
 *     sees all have lsn <= its fork LSN.
 *   - While a branch exists, its fork LSN is a live snapshot of its parent whenever the parent is open, so the
 *     parent's compaction keeps every version the branch reads.
 *   - Nothing here writes to an ancestor except `merge`, through an ordinary parent transaction.
 */

import { randomBytes } from "node:crypto";
import { z } from "zod";
import { ErrorCodes, isTwillError, TwillError } from "../errors.js";
import type { Log, Storage } from "../storage/types.js";
import type { Engine, ParsedEngineOptions } from "./engine.js";
import { BranchView, type Layer } from "./lsm/branch-view.js";
import {
  encodeManifest,
  listBranchNames,
  loadLatestManifest,
  type Manifest,
  manifestKey,
  manifestPrefix,
} from "./lsm/manifest.js";
import { LsmTree, type ScanRange } from "./lsm/tree.js";
import { bytesEqual, type Entry, EntryKind, lsnMax } from "./lsm/types.js";
import type { Transaction } from "./txn/transaction.js";

// ---- names and options ---------------------------------------------------------------------------------------

/** `~` is kept out: it separates the branch name from the unique suffix of its log name. */
export const branchNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9._=+-]{1,48}$/, "must be 1..48 characters of [A-Za-z0-9._=+-]")
  .refine((n) => n !== "." && n !== "..", "must not be . or ..")
  .refine((n) => n !== "main", "main is the base branch; pick another name");

export const createBranchOptionsSchema = z
  .object({
    /** Fork at this LSN of the parent (default: its newest commit). */
    at: z.number().int().nonnegative().optional(),
  })
  .strict();
export type CreateBranchOptions = z.input<typeof createBranchOptionsSchema>;

export const dropBranchOptionsSchema = z
  .object({
    /** Also drop the branch's descendants (refused without it when it has any). */
    cascade: z.boolean().default(false),
  })
  .strict();
export type DropBranchOptions = z.input<typeof dropBranchOptionsSchema>;

export const mergeOptionsSchema = z
  .object({
    /** fail: abort listing the conflicts; ours: the branch's version wins; theirs: the parent's version stays. */
    onConflict: z.enum(["fail", "ours", "theirs"]).default("fail"),
  })
  .strict();
export type MergeOptions = z.input<typeof mergeOptionsSchema>;

function parse<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || what}: ${i.message}`).join("; ");
    throw new TwillError(ErrorCodes.InvalidArgument, `invalid ${what}: ${issues}`);
  }
  return parsed.data;
}

export function checkBranchName(name: unknown): string {
  return parse(branchNameSchema, name, "branch name");
}

// ---- listing -------------------------------------------------------------------------------------------------

export interface BranchInfo {
  name: string;
  parent: string;
  forkLsn: number;
  createdAt: string;
}

function infoOf(name: string, m: Manifest): BranchInfo | undefined {
  if (m.parent === undefined || m.forkLsn === undefined) return undefined;
  return { name, parent: m.parent, forkLsn: m.forkLsn, createdAt: m.branchCreatedAt ?? m.createdAt };
}

/** Newest manifest of every branch (main included); a branch dropped while listing is skipped. */
async function allManifests(storage: Storage): Promise<Map<string, Manifest>> {
  const out = new Map<string, Manifest>();
  for (const name of await listBranchNames(storage)) {
    try {
      const m = await loadLatestManifest(storage, name);
      if (m) out.set(name, m);
    } catch (error) {
      if (!isTwillError(error, ErrorCodes.NotFound)) throw error;
    }
  }
  return out;
}

/** Every branch except main, in name order. */
export async function listBranches(storage: Storage): Promise<BranchInfo[]> {
  const out: BranchInfo[] = [];
  for (const [name, m] of await allManifests(storage)) {
    const info = infoOf(name, m);
    if (info) out.push(info);
  }
  return out;
}

// ---- engines open in this process ----------------------------------------------------------------------------

const openEngines = new WeakMap<Storage, Map<string, Engine>>();

/** @internal engine.ts: an engine of `storage` opened branch `engine.branchName`. */
export function trackOpen(engine: Engine): void {
  let m = openEngines.get(engine.storage);
  if (!m) {
    m = new Map();
    openEngines.set(engine.storage, m);
  }
  m.set(engine.branchName, engine);
}

/** @internal engine.ts */
export function untrackOpen(engine: Engine): void {
  const m = openEngines.get(engine.storage);
  if (m?.get(engine.branchName) === engine) m.delete(engine.branchName);
}

function openEngine(storage: Storage, name: string): Engine | undefined {
  return openEngines.get(storage)?.get(name);
}

// ---- open ----------------------------------------------------------------------------------------------------

/** Root of every branch's SST namespace: apart from main's `sst/`, so main's orphan sweep never lists them. */
const BRANCH_SST_ROOT = "bsst/";

export function sstPrefixOf(m: Manifest): string {
  return m.parent === undefined ? "sst/" : `${BRANCH_SST_ROOT}${m.log}/`;
}

export interface BranchOpenContext {
  lsnBase: number;
  sstPrefix: string;
  parentInfo: { name: string; forkLsn: number } | undefined;
  /** The live parent engine this branch was opened from, if any. */
  parent: Engine | undefined;
  /** Set by `attach`; undefined for main (the engine then reads its tree directly). */
  view: BranchView | undefined;
  attach(tree: LsmTree): void;
  /** Releases read-only ancestor trees. */
  close(): Promise<void>;
}

type Replay = (log: Log, tree: LsmTree, flushedLsn: number, base: number, upTo: number) => Promise<number>;

const ANCESTOR_OPEN_ATTEMPTS = 5;
const DEPTH_MAX = 256;

/**
 * What a branch reads below its own tree. A live parent serves reads in this process; otherwise every ancestor is
 * opened read-only from its newest manifest plus its log frames after `flushedLsn` up to the cut.
 */
export async function openBranchContext(
  storage: Storage,
  manifest: Manifest,
  opts: ParsedEngineOptions,
  liveParent: Engine | undefined,
  replay: Replay,
): Promise<BranchOpenContext> {
  const lsnBase = manifest.lsnBase ?? 0;
  if (manifest.parent === undefined || manifest.forkLsn === undefined) {
    return {
      lsnBase,
      sstPrefix: sstPrefixOf(manifest),
      parentInfo: undefined,
      parent: undefined,
      view: undefined,
      attach() {},
      async close() {},
    };
  }
  const forkLsn = manifest.forkLsn;
  const parent = liveParent ?? undefined;
  if (parent && parent.branchName !== manifest.parent) {
    throw new TwillError(
      ErrorCodes.Internal,
      `branch ${manifest.log} has parent ${manifest.parent}, not ${parent.branchName}`,
    );
  }
  let below: Layer[];
  let owned: LsmTree[] = [];
  if (parent) {
    const v = parent.view;
    below = v instanceof BranchView ? v.layersBelow(forkLsn) : [{ tree: parent.ownTree, cut: forkLsn }];
  } else {
    ({ layers: below, trees: owned } = await openAncestors(storage, manifest.parent, forkLsn, opts, replay));
  }
  const ctx: BranchOpenContext = {
    lsnBase,
    sstPrefix: sstPrefixOf(manifest),
    parentInfo: { name: manifest.parent, forkLsn },
    parent,
    view: undefined,
    attach(tree) {
      // Read-only ancestors can be reopened when another handle's compaction deleted an SST they name.
      const parentView = parent?.view;
      const reload = parent
        ? parentView instanceof BranchView
          ? async () => {
              await parentView.reload();
              return parentView.layersBelow(forkLsn);
            }
          : undefined
        : async () => {
            const fresh = await openAncestors(storage, manifest.parent!, forkLsn, opts, replay);
            // The old trees hold no resources beyond memory; reads still running on them finish or retry.
            owned = fresh.trees;
            return fresh.layers;
          };
      ctx.view = new BranchView([{ tree, cut: lsnMax }, ...below], reload);
    },
    async close() {
      for (const t of owned) await t.close();
      owned = [];
    },
  };
  return ctx;
}

async function openAncestors(
  storage: Storage,
  first: string,
  firstCut: number,
  opts: ParsedEngineOptions,
  replay: Replay,
): Promise<{ layers: Layer[]; trees: LsmTree[] }> {
  const layers: Layer[] = [];
  const trees: LsmTree[] = [];
  let name: string | undefined = first;
  let cut = firstCut;
  try {
    while (name !== undefined) {
      if (layers.length >= DEPTH_MAX) {
        throw new TwillError(ErrorCodes.Corruption, `branch ancestry deeper than ${DEPTH_MAX} (a cycle?)`);
      }
      const { tree, manifest } = await openAncestor(storage, name, cut, opts, replay);
      trees.push(tree);
      layers.push({ tree, cut });
      if (manifest.parent !== undefined && manifest.forkLsn !== undefined) {
        cut = Math.min(cut, manifest.forkLsn);
        name = manifest.parent;
      } else {
        name = undefined;
      }
    }
    return { layers, trees };
  } catch (error) {
    for (const t of trees) await t.close();
    throw error;
  }
}

/** One ancestor, read-only, as of `cut`. A flush racing the replay (log truncated under it) is retried. */
async function openAncestor(
  storage: Storage,
  name: string,
  cut: number,
  opts: ParsedEngineOptions,
  replay: Replay,
): Promise<{ tree: LsmTree; manifest: Manifest }> {
  for (let attempt = 1; ; attempt++) {
    const manifest = await loadLatestManifest(storage, name);
    if (!manifest) {
      throw new TwillError(
        ErrorCodes.Corruption,
        `branch ${JSON.stringify(name)} is missing, but a descendant still reads from it`,
        { hint: "restore its manifest objects from a backup" },
      );
    }
    const tree = new LsmTree(
      storage,
      name,
      manifest,
      { ...opts, autoMaintenance: false },
      () => [],
      sstPrefixOf(manifest),
    );
    const base = manifest.lsnBase ?? 0;
    if (manifest.flushedLsn >= cut) return { tree, manifest };
    const log = await storage.openLog(manifest.log, { readOnly: true });
    try {
      const last = await replay(log, tree, manifest.flushedLsn, base, cut);
      if (last < cut) {
        throw new TwillError(
          ErrorCodes.Corruption,
          `log ${manifest.log} of branch ${name} ends at lsn ${last}, before the fork lsn ${cut} a child needs`,
          { hint: "the log was removed or replaced; restore it from a backup" },
        );
      }
      return { tree, manifest };
    } catch (error) {
      await tree.close();
      if (attempt < ANCESTOR_OPEN_ATTEMPTS && isTwillError(error, ErrorCodes.Corruption)) continue;
      throw error;
    } finally {
      await log.close();
    }
  }
}

// ---- fork ----------------------------------------------------------------------------------------------------

function duplicate(name: string): TwillError {
  return new TwillError(ErrorCodes.InvalidArgument, `branch ${JSON.stringify(name)} already exists`, {
    sqlstate: "42710",
    hint: "pick another name, or drop the existing branch first",
  });
}

/** Writes the first manifest of a new branch of `parent` and returns it. One object write. */
export async function createBranch(
  parent: Engine,
  nameInput: unknown,
  options: CreateBranchOptions | undefined,
): Promise<Manifest> {
  const name = checkBranchName(nameInput);
  const opts = parse(createBranchOptionsSchema, options ?? {}, "branch options");
  const last = parent.lastCommittedLsn;
  const oldest = parent.oldestForkableLsn;
  const forkLsn = opts.at ?? last;
  if (forkLsn > last || forkLsn < oldest) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `cannot fork branch ${parent.branchName} at lsn ${forkLsn}: positions ${oldest}..${last} are retained`,
      {
        sqlstate: "22023",
        hint:
          forkLsn > last
            ? "that position has not been committed yet"
            : "older versions were merged away by compaction; fork at a later position",
      },
    );
  }
  // Before any await: a compaction starting from here on keeps the versions at forkLsn.
  if (!parent.registerChild(name, forkLsn)) throw duplicate(name);
  try {
    for await (const _ of parent.storage.list(manifestPrefix(name))) throw duplicate(name);
    const now = new Date().toISOString();
    const manifest: Manifest = {
      format: 1,
      version: 1,
      epoch: 1,
      log: `${name}~${Date.now().toString(36)}${randomBytes(4).toString("hex")}`,
      flushedLsn: forkLsn,
      nextSstId: 1,
      ssts: [],
      createdAt: now,
      parent: parent.branchName,
      forkLsn,
      lsnBase: forkLsn,
      branchCreatedAt: now,
    };
    if (!(await parent.storage.writeIfAbsent(manifestKey(name, 1), encodeManifest(manifest)))) {
      throw duplicate(name);
    }
    return manifest;
  } catch (error) {
    parent.unregisterChild(name);
    throw error;
  }
}

// ---- drop ----------------------------------------------------------------------------------------------------

/** Drops `name` (with `cascade`, its descendants first); returns the names dropped, in order. */
export async function dropBranch(
  storage: Storage,
  nameInput: unknown,
  options: DropBranchOptions | undefined,
): Promise<string[]> {
  if (nameInput === "main") {
    throw new TwillError(ErrorCodes.InvalidArgument, "the main branch cannot be dropped", {
      hint: "delete the database's storage to remove everything",
    });
  }
  const name = checkBranchName(nameInput);
  const opts = parse(dropBranchOptionsSchema, options ?? {}, "drop options");
  const manifests = await allManifests(storage);
  const target = manifests.get(name);
  if (!target || target.parent === undefined) {
    throw new TwillError(ErrorCodes.NotFound, `branch ${JSON.stringify(name)} does not exist`, {
      sqlstate: "42704",
    });
  }
  // Post-order: children before their parent.
  const order: string[] = [];
  const visit = (n: string, depth: number) => {
    if (depth > DEPTH_MAX) throw new TwillError(ErrorCodes.Corruption, "branch ancestry has a cycle");
    for (const [child, m] of manifests) if (m.parent === n) visit(child, depth + 1);
    order.push(n);
  };
  visit(name, 0);
  if (order.length > 1 && !opts.cascade) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `branch ${JSON.stringify(name)} has child branches: ${order.slice(0, -1).join(", ")}`,
      { sqlstate: "2BP01", hint: "drop them first, or pass { cascade: true }" },
    );
  }
  for (const n of order) {
    if (openEngine(storage, n)) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `branch ${JSON.stringify(n)} is open in this process`,
        {
          sqlstate: "55006",
          hint: "close it first, or call discard() on it",
        },
      );
    }
  }
  for (const n of order) await dropOne(storage, n, manifests.get(n)!);
  await sweepDroppedBranches(storage);
  return order;
}

async function dropOne(storage: Storage, name: string, m: Manifest): Promise<void> {
  // The writer lock proves no other process (file://, memory://) has the branch open.
  let log: Log;
  try {
    log = await storage.openLog(m.log);
  } catch (error) {
    if (isTwillError(error, ErrorCodes.Locked)) {
      throw new TwillError(ErrorCodes.Locked, `branch ${JSON.stringify(name)} is open in another process`, {
        cause: error,
        hint: "close it there first",
      });
    }
    throw error;
  }
  try {
    const keys: string[] = [];
    for await (const key of storage.list(manifestPrefix(name))) keys.push(key);
    // Oldest first: a crash leaves the branch whole at a newer version, or gone, never at an older one.
    for (const key of keys) await storage.delete(key);
    if (m.parent !== undefined) openEngine(storage, m.parent)?.unregisterChild(name);
    for await (const key of storage.list(sstPrefixOf(m))) await storage.delete(key);
    await log.truncate(log.nextLsn());
  } finally {
    await log.close();
  }
}

/**
 * Deletes SST namespaces (`bsst/<log>/`) that no branch's manifest names: what a drop that crashed half way left.
 * Manifests are listed again after the SSTs, so a branch created meanwhile (its manifest precedes its SSTs) is
 * never mistaken for a dropped one.
 */
export async function sweepDroppedBranches(storage: Storage): Promise<number> {
  const liveLogs = async () => new Set([...(await allManifests(storage)).values()].map((m) => m.log));
  const before = await liveLogs();
  const candidates = new Map<string, string[]>();
  for await (const key of storage.list(BRANCH_SST_ROOT)) {
    const rest = key.slice(BRANCH_SST_ROOT.length);
    const slash = rest.indexOf("/");
    if (slash < 0) continue;
    const ns = rest.slice(0, slash);
    if (before.has(ns)) continue;
    let list = candidates.get(ns);
    if (!list) {
      list = [];
      candidates.set(ns, list);
    }
    list.push(key);
  }
  if (candidates.size === 0) return 0;
  const after = await liveLogs();
  let deleted = 0;
  for (const [ns, keys] of candidates) {
    if (after.has(ns)) continue;
    for (const key of keys) {
      await storage.delete(key);
      deleted++;
    }
  }
  return deleted;
}

// ---- merge ---------------------------------------------------------------------------------------------------

/** One key the branch changed since the fork: its newest version on the branch. */
export interface BranchChange {
  key: Uint8Array;
  /** undefined: the branch deleted the key. */
  value: Uint8Array | undefined;
}

export interface MergeConflict {
  key: Uint8Array;
  /** Filled in by the SQL layer: the table (or "(catalog)", "(sequence)") and primary key of the row. */
  table?: string;
  primaryKey?: unknown[];
  index?: string;
}

export interface MergeContext {
  changes: readonly BranchChange[];
  parent: Engine;
  forkLsn: number;
  /** Whether the parent changed any key in `range` after the fork. */
  parentChangedSince(range: ScanRange): Promise<boolean>;
}

/** How a layer above the engine (SQL) takes part in a merge. */
export interface MergeHooks {
  /** Runs before anything is written; may refuse the merge by throwing. */
  beforeMerge?(ctx: MergeContext): Promise<void>;
  /**
   * A key both sides changed: return the bytes to write (null: delete) to resolve it without a conflict, or
   * undefined for an ordinary conflict.
   */
  reconcile?(
    key: Uint8Array,
    branch: Uint8Array | undefined,
    parent: Uint8Array | undefined,
  ): Uint8Array | null | undefined;
  describe?(key: Uint8Array): Omit<MergeConflict, "key">;
  /**
   * With "ours" or "theirs": sees every conflict with both values, and may add writes (`set`, undefined = delete)
   * so that what depends on the winner stays consistent (the SQL layer: index entries of a row), or refuse by
   * throwing (the SQL layer: a unique value both sides used for different rows).
   */
  resolveConflicts?(resolution: ConflictResolution): void;
  /**
   * Keys derived from rows that `maintainDerived` rebuilds on the parent instead of merging them key by key (the
   * SQL layer: HNSW graph nodes, whose neighbour lists from two diverged graphs cannot be combined per key).
   */
  isDerived?(key: Uint8Array): boolean;
  /**
   * Updates derived records for the rows the merge writes, in the merge's own transaction, before it commits.
   * Returns what to call once the commit settled (with its LSN, or undefined when it failed).
   */
  maintainDerived?(
    txn: Transaction,
    writes: readonly { key: Uint8Array; value: Uint8Array | undefined }[],
  ): Promise<((lsn: number | undefined) => void) | undefined>;
  /** Runs after the merge committed. */
  afterMerge?(ctx: MergeContext, result: MergeResult): Promise<void>;
}

/** A key both sides changed, with the branch's and the parent's newest values (undefined = deleted). */
export interface BothChanged {
  key: Uint8Array;
  branch: Uint8Array | undefined;
  parent: Uint8Array | undefined;
}

export interface ConflictResolution {
  conflicts: readonly BothChanged[];
  onConflict: "ours" | "theirs";
  set(key: Uint8Array, value: Uint8Array | undefined): void;
}

function planKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1");
}

export interface MergeResult {
  /** The parent's commit LSN of the merge (its newest LSN when there was nothing to write). */
  commitLsn: number;
  /** Keys written to the parent. */
  applied: number;
  /** Keys both sides changed (resolved per the policy; with "fail" the merge threw instead). */
  conflicts: MergeConflict[];
  onConflict: "fail" | "ours" | "theirs";
}

export class MergeConflictError extends TwillError {
  constructor(
    readonly conflicts: MergeConflict[],
    child: string,
    parent: string,
  ) {
    const shown = conflicts
      .slice(0, 10)
      .map((c) =>
        c.table !== undefined
          ? `${c.table}${c.index ? ` (index ${c.index})` : ""} ${JSON.stringify(c.primaryKey ?? [], (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`
          : Buffer.from(c.key).toString("hex"),
      )
      .join(", ");
    super(
      ErrorCodes.SerializationFailure,
      `merge of branch ${child} into ${parent} conflicts on ${conflicts.length} key(s): ${shown}${conflicts.length > 10 ? ", …" : ""}`,
      {
        sqlstate: "40001",
        hint: 'both changed them since the fork; merge with { onConflict: "ours" } (branch wins) or "theirs" (parent wins)',
      },
    );
    this.name = "MergeConflictError";
  }
}

function sameValue(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a === undefined || b === undefined ? a === b : bytesEqual(a, b);
}

async function valueAt(engine: Engine, key: Uint8Array, lsn: number): Promise<Uint8Array | undefined> {
  const e = await engine.view.getVersion(key, lsn);
  return e?.kind === EntryKind.Put ? e.value : undefined;
}

/** The branch's own changes: per key, its newest version in the branch's own tree. */
async function ownChanges(child: Engine): Promise<BranchChange[]> {
  const { entries, release } = child.ownTree.scanEntries({}, child.lastCommittedLsn);
  const out: BranchChange[] = [];
  try {
    let last: Uint8Array | undefined;
    for await (const e of entries as AsyncIterable<Entry>) {
      if (e.lsn > child.lastCommittedLsn) continue;
      if (last !== undefined && bytesEqual(last, e.key)) continue;
      last = e.key;
      out.push({ key: e.key, value: e.kind === EntryKind.Put ? e.value : undefined });
    }
  } finally {
    release();
  }
  return out;
}

async function changedSince(engine: Engine, range: ScanRange, lsn: number): Promise<boolean> {
  const { entries, release } = engine.ownTree.scanEntries(range, lsnMax - 1);
  try {
    for await (const e of entries as AsyncIterable<Entry>) if (e.lsn > lsn) return true;
    return false;
  } finally {
    release();
  }
}

/**
 * Merges `child` into its parent: the live parent engine in this process, or the parent opened here as writer
 * for the duration of the merge.
 */
export async function mergeBranch(
  child: Engine,
  options: MergeOptions | undefined,
  hooks: MergeHooks | undefined,
  openParent: (name: string) => Promise<Engine>,
): Promise<MergeResult> {
  const opts = parse(mergeOptionsSchema, options ?? {}, "merge options");
  const info = child.parentBranch;
  if (!info) {
    throw new TwillError(ErrorCodes.InvalidArgument, "the main branch has no parent to merge into");
  }
  let parent = child.liveParent ?? openEngine(child.storage, info.name);
  let opened: Engine | undefined;
  if (!parent) {
    opened = await openParent(info.name);
    parent = opened;
  }
  try {
    const p = parent;
    const changes = await ownChanges(child);
    const ctx: MergeContext = {
      changes,
      parent: p,
      forkLsn: info.forkLsn,
      parentChangedSince: (range) => changedSince(p, range, info.forkLsn),
    };
    await hooks?.beforeMerge?.(ctx);
    const txn = p.begin();
    const conflicts: MergeConflict[] = [];
    const both: BothChanged[] = [];
    /** What the merge writes, by key: undefined value = delete. */
    const plan = new Map<string, { key: Uint8Array; value: Uint8Array | undefined }>();
    try {
      for (const c of changes) {
        if (hooks?.isDerived?.(c.key)) continue;
        const pv = await p.view.getVersion(c.key, txn.snapshotLsn);
        let value = c.value;
        const theirs = pv?.kind === EntryKind.Put ? pv.value : undefined;
        // Changed = a newer version whose value differs from the one at the fork (compaction may drop a put and
        // delete pair made after the fork, but always keeps the version at the fork: it is a live snapshot).
        if (
          pv !== undefined &&
          pv.lsn > info.forkLsn &&
          !sameValue(theirs, await valueAt(p, c.key, info.forkLsn))
        ) {
          if (sameValue(theirs, value)) continue;
          const resolved = hooks?.reconcile?.(c.key, value, theirs);
          if (resolved !== undefined) {
            value = resolved ?? undefined;
          } else {
            conflicts.push({ key: c.key, ...hooks?.describe?.(c.key) });
            both.push({ key: c.key, branch: value, parent: theirs });
            if (opts.onConflict !== "ours") continue;
          }
        }
        plan.set(planKey(c.key), { key: c.key, value });
      }
      if (opts.onConflict === "fail" && conflicts.length > 0) {
        throw new MergeConflictError(conflicts, child.branchName, p.branchName);
      }
      if (both.length > 0) {
        hooks?.resolveConflicts?.({
          conflicts: both,
          onConflict: opts.onConflict as "ours" | "theirs",
          set: (key, value) => plan.set(planKey(key), { key, value }),
        });
      }
      for (const w of plan.values()) {
        if (w.value === undefined) txn.delete(w.key);
        else txn.put(w.key, w.value);
      }
      const applied = plan.size;
      const settle = await hooks?.maintainDerived?.(txn, [...plan.values()]);
      let commitLsn: number;
      try {
        commitLsn = await txn.commit();
      } catch (error) {
        settle?.(undefined);
        throw error;
      }
      settle?.(commitLsn);
      const result: MergeResult = { commitLsn, applied, conflicts, onConflict: opts.onConflict };
      await hooks?.afterMerge?.(ctx, result);
      return result;
    } finally {
      txn.abort();
    }
  } finally {
    await opened?.close();
  }
}
