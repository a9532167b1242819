/**
 * BranchView: what a branch reads — its own tree, then each ancestor's tree as of the fork point below it
 * (docs/BRANCHES.md, "Reads").
 *
 * Layers are `(tree, cut)`, own tree first with cut = lsnMax, then the parent with cut = the branch's fork LSN, the
 * grandparent with the parent's fork LSN, and so on; cuts strictly decrease. A reader at snapshot S sees in a
 * layer only versions with lsn <= min(S, cut).
 *
 * Invariants:
 *   - Versions are disjoint across layers: a layer's own versions are all > the cut of the layer below it, so the
 *     first layer holding a version (a put or a tombstone) <= its bound decides a point read, and one merge in
 *     internal order (key ascending, LSN descending) orders every layer's versions correctly for a scan.
 *   - A view never writes: layers below the first belong to the parent engine (live, in this process) or are
 *     read-only trees opened from the ancestors' manifests and logs.
 *   - Read-only ancestor trees are a picture of each ancestor's manifest at open. When another handle compacts
 *     that ancestor and deletes an SST the picture names, a read meets NOT_FOUND: the view then reopens the
 *     ancestors from their newest manifests (which keep every version at the fork, a live snapshot of theirs) and
 *     retries; a scan resumes after the last key it returned.
 */

import { ErrorCodes, isTwillError } from "../../errors.js";
import { bloomHash } from "./bloom.js";
import { AsyncCursor, type Cursor, toCursor } from "./cursor.js";
import { mergeIterators, visibleEntries } from "./merge.js";
import type { KeyValue, LsmTree, ScanRange } from "./tree.js";
import { type Entry, EntryKind, lsnMax, NEEDS_IO, type NeedsIo } from "./types.js";

/** What the engine reads through: an LsmTree for main, a BranchView for a branch. */
export interface VersionReader {
  getVersionSync(key: Uint8Array, snapshotLsn: number, keyHash?: number): Entry | undefined | NeedsIo;
  getVersion(key: Uint8Array, snapshotLsn: number): Promise<Entry | undefined>;
  get(key: Uint8Array, snapshotLsn: number): Promise<Uint8Array | undefined>;
  scan(range: ScanRange, snapshotLsn: number): AsyncCursor<KeyValue>;
}

export interface Layer {
  tree: LsmTree;
  /** Versions above this LSN are not this branch's to see. */
  cut: number;
}

const RELOADS_MAX = 3;

export class BranchView implements VersionReader {
  private current: readonly Layer[];
  private reloading: Promise<void> | undefined;

  constructor(
    layers: readonly Layer[],
    /** Reopens the layers below the own tree from the ancestors' newest manifests; absent for live parents. */
    private readonly reloadBelow?: () => Promise<Layer[]>,
  ) {
    this.current = layers;
  }

  get layers(): readonly Layer[] {
    return this.current;
  }

  /** @internal Whether a NOT_FOUND from `error` may be cured by reopening the ancestors. */
  canRetry(error: unknown, attempt: number): boolean {
    return (
      this.reloadBelow !== undefined && attempt < RELOADS_MAX && isTwillError(error, ErrorCodes.NotFound)
    );
  }

  /** @internal Reopens the ancestors (one reload at a time; concurrent callers share it). */
  reload(): Promise<void> {
    const reloadBelow = this.reloadBelow;
    if (!reloadBelow) return Promise.resolve();
    this.reloading ??= reloadBelow()
      .then((below) => {
        this.current = [this.current[0]!, ...below];
      })
      .finally(() => {
        this.reloading = undefined;
      });
    return this.reloading;
  }

  /** The layers a child forked at `forkLsn` reads below its own tree. */
  layersBelow(forkLsn: number): Layer[] {
    return this.layers.map((l) => ({ tree: l.tree, cut: Math.min(l.cut, forkLsn) }));
  }

  getVersionSync(
    key: Uint8Array,
    snapshotLsn: number,
    keyHash: number = bloomHash(key),
  ): Entry | undefined | NeedsIo {
    for (const { tree, cut } of this.layers) {
      const e = tree.getVersionSync(key, Math.min(snapshotLsn, cut), keyHash);
      if (e !== undefined) return e;
    }
    return undefined;
  }

  async getVersion(key: Uint8Array, snapshotLsn: number): Promise<Entry | undefined> {
    const keyHash = bloomHash(key);
    const fast = this.getVersionSync(key, snapshotLsn, keyHash);
    if (fast !== NEEDS_IO) return fast;
    for (let attempt = 0; ; attempt++) {
      try {
        for (const { tree, cut } of this.layers) {
          const e = await tree.getVersion(key, Math.min(snapshotLsn, cut));
          if (e) return e;
        }
        return undefined;
      } catch (error) {
        if (!this.canRetry(error, attempt)) throw error;
        await this.reload();
      }
    }
  }

  async get(key: Uint8Array, snapshotLsn: number): Promise<Uint8Array | undefined> {
    const e = await this.getVersion(key, snapshotLsn);
    return e && e.kind === EntryKind.Put ? e.value : undefined;
  }

  scan(range: ScanRange, snapshotLsn: number): AsyncCursor<KeyValue> {
    return new ViewCursor(this, range, snapshotLsn);
  }

  /** @internal One attempt at a scan over the current layers. */
  openScan(range: ScanRange, snapshotLsn: number): LayeredCursor {
    const releases: (() => void)[] = [];
    try {
      const sources = this.layers.map(({ tree, cut }) => {
        const bound = Math.min(snapshotLsn, cut);
        const { entries, release } = tree.scanEntries(range, bound);
        releases.push(release);
        return cut >= lsnMax ? entries : new CeilingCursor(entries, cut);
      });
      const reverse = range.reverse ?? false;
      const visible = visibleEntries(mergeIterators(sources, { reverse }), snapshotLsn, { reverse });
      return new LayeredCursor(visible, () => {
        for (const r of releases) r();
      });
    } catch (error) {
      for (const r of releases) r();
      throw error;
    }
  }
}

/** Drops versions above `cut`: a parent's commits after the fork point. */
class CeilingCursor extends AsyncCursor<Entry> {
  private readonly inner: Cursor<Entry>;

  constructor(
    inner: Cursor<Entry>,
    private readonly cut: number,
  ) {
    super();
    this.inner = toCursor(inner);
  }

  nextSync(): Entry | undefined | NeedsIo {
    for (;;) {
      const e = this.inner.nextSync();
      if (e === undefined || e === NEEDS_IO || e.lsn <= this.cut) return e;
    }
  }

  fill(): Promise<void> {
    return this.inner.fill();
  }

  override close(): void {
    (this.inner as { close?: () => void }).close?.();
  }
}

/** The smallest key after `key`. */
function successor(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out.set(key);
  return out;
}

/** A scan that, when an ancestor's SST vanished under it, reopens the ancestors and resumes after its last key. */
class ViewCursor extends AsyncCursor<KeyValue> {
  private inner: LayeredCursor;
  private lastKey: Uint8Array | undefined;
  private attempts = 0;
  private ended = false;

  constructor(
    private readonly view: BranchView,
    private readonly range: ScanRange,
    private readonly snapshotLsn: number,
  ) {
    super();
    this.inner = view.openScan(range, snapshotLsn);
  }

  nextSync(): KeyValue | undefined | NeedsIo {
    if (this.ended) return undefined;
    const e = this.inner.nextSync();
    if (e === undefined) this.ended = true;
    else if (e !== NEEDS_IO) this.lastKey = e.key;
    return e;
  }

  async fill(): Promise<void> {
    try {
      await this.inner.fill();
    } catch (error) {
      if (!this.view.canRetry(error, this.attempts++)) {
        this.close();
        throw error;
      }
      this.inner.close();
      await this.view.reload();
      const rest: ScanRange = { ...this.range };
      if (this.lastKey) {
        if (this.range.reverse) rest.end = this.lastKey;
        else rest.start = successor(this.lastKey);
      }
      this.inner = this.view.openScan(rest, this.snapshotLsn);
    }
  }

  override close(): void {
    this.ended = true;
    this.inner.close();
  }
}

/** Releases every layer's read once, when the cursor ends, fails or is closed. */
class LayeredCursor extends AsyncCursor<KeyValue> {
  private released = false;

  constructor(
    private readonly inner: AsyncCursor<Entry>,
    private readonly release: () => void,
  ) {
    super();
  }

  nextSync(): KeyValue | undefined | NeedsIo {
    if (this.released) return undefined;
    const e = this.inner.nextSync();
    if (e === undefined) this.done();
    return e;
  }

  fill(): Promise<void> {
    return this.inner.fill().catch((error: unknown) => {
      this.done();
      throw error;
    });
  }

  override close(): void {
    this.inner.close();
    this.done();
  }

  private done(): void {
    if (this.released) return;
    this.released = true;
    this.release();
  }
}
