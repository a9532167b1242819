/**
 * PendingKeys: the keys written by queued and in-flight commits, each with how many of them write it — the
 * engine's conflict check against commits newer than any snapshot (see engine.ts `checkPending`).
 *
 * A counted hash set of keys given as latin1 strings with a 32-bit hash of their bytes (`bloomHash`, which the
 * memtable's index uses too, so a commit hashes each key once). Open addressing with linear probing over typed
 * arrays, deletion by backward shift (no tombstones), grown at half load and never shrunk. So a group commit's keys
 * are added and removed without allocating: a Map, emptied after every group and refilled by the next, rehashed
 * (reallocated its table) both ways.
 *
 * Hashes are kept as int32 (`hash | 0`), so unsigned and signed forms of one hash are the same key.
 *
 * Invariants: a slot is empty iff its count is 0 (its key then undefined); each key is in at most one slot, found
 * by probing from `hash & mask` without crossing an empty slot; `size` counts the occupied slots; the table is at
 * most half full.
 */
export class PendingKeys {
  private hashes = new Int32Array(64);
  private counts = new Int32Array(64);
  private keys: (string | undefined)[] = new Array<string | undefined>(64).fill(undefined);
  private occupied = 0;

  /** Distinct keys held. */
  get size(): number {
    return this.occupied;
  }

  has(key: string, hash: number): boolean {
    return this.find(key, hash) >= 0;
  }

  /** Counts one more commit writing `key`. */
  add(key: string, hash: number): void {
    const at = this.find(key, hash);
    if (at >= 0) {
      this.counts[at]!++;
      return;
    }
    if ((this.occupied + 1) * 2 > this.counts.length) this.grow();
    this.place(key, hash, 1);
    this.occupied++;
  }

  /** Counts one commit writing `key` fewer; the key goes when none is left. A key not held is ignored. */
  remove(key: string, hash: number): void {
    let at = this.find(key, hash);
    if (at < 0) return;
    if (--this.counts[at]! > 0) return;
    this.keys[at] = undefined;
    this.occupied--;
    // Backward shift: move later entries of the run into the hole when their probe start allows it, so no lookup
    // ever stops early at an empty slot.
    const mask = this.counts.length - 1;
    let next = (at + 1) & mask;
    while (this.counts[next] !== 0) {
      const home = this.hashes[next]! & mask;
      // `next` may fill the hole at `at` unless its home lies cyclically in (at, next].
      const stays = at <= next ? at < home && home <= next : at < home || home <= next;
      if (!stays) {
        this.hashes[at] = this.hashes[next]!;
        this.counts[at] = this.counts[next]!;
        this.keys[at] = this.keys[next];
        this.counts[next] = 0;
        this.keys[next] = undefined;
        at = next;
      }
      next = (next + 1) & mask;
    }
  }

  /** Every key held (for the check of a large commit, which probes its own write set with them). */
  *all(): IterableIterator<string> {
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i] !== 0) yield this.keys[i]!;
  }

  private find(key: string, hash: number): number {
    const mask = this.counts.length - 1;
    const h = hash | 0;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      if (this.counts[i] === 0) return -1;
      if (this.hashes[i] === h && this.keys[i] === key) return i;
    }
  }

  private place(key: string, hash: number, count: number): void {
    const mask = this.counts.length - 1;
    let i = hash & mask;
    while (this.counts[i] !== 0) i = (i + 1) & mask;
    this.hashes[i] = hash | 0;
    this.counts[i] = count;
    this.keys[i] = key;
  }

  private grow(): void {
    const hashes = this.hashes;
    const counts = this.counts;
    const keys = this.keys;
    const capacity = counts.length * 2;
    this.hashes = new Int32Array(capacity);
    this.counts = new Int32Array(capacity);
    this.keys = new Array<string | undefined>(capacity).fill(undefined);
    for (let i = 0; i < counts.length; i++) if (counts[i] !== 0) this.place(keys[i]!, hashes[i]!, counts[i]!);
  }
}
