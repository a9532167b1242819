/**
 * SnapshotCounts: the live snapshot LSNs of an engine (open transactions, child branches' fork points), each with
 * how many holders it has — a multiset, read by compaction as the ascending list of distinct LSNs.
 *
 * Nearly every transaction begins at the newest LSN and ends before the next few begin. Kept in a Map alone, one
 * short transaction after another emptied and refilled it, and V8 reallocates a Map's table on both (it shrinks a
 * sparse one): two allocations per commit of a single writer. So the newest LSN held gets two fields of its own
 * (`hotLsn`, `hotCount`), and only older LSNs still held when a newer one is taken go into the Map.
 *
 * Invariants: an LSN is counted in at most one place (the hot fields or the Map); every Map count is >= 1;
 * `hotCount` 0 means the hot fields hold nothing (`hotLsn` is then stale and ignored).
 */
export class SnapshotCounts {
  private hotLsn = 0;
  private hotCount = 0;
  private readonly older = new Map<number, number>();

  /** Counts one more holder of `lsn`. */
  acquire(lsn: number): void {
    if (this.hotCount > 0 && lsn === this.hotLsn) {
      this.hotCount++;
      return;
    }
    const held = this.older.get(lsn);
    if (held !== undefined) {
      this.older.set(lsn, held + 1);
    } else if (this.hotCount === 0) {
      this.hotLsn = lsn;
      this.hotCount = 1;
    } else if (lsn > this.hotLsn) {
      this.older.set(this.hotLsn, this.hotCount);
      this.hotLsn = lsn;
      this.hotCount = 1;
    } else {
      this.older.set(lsn, 1);
    }
  }

  /** Counts one holder of `lsn` fewer; an LSN nobody holds is ignored. */
  release(lsn: number): void {
    if (this.hotCount > 0 && lsn === this.hotLsn) {
      this.hotCount--;
      return;
    }
    const held = this.older.get(lsn);
    if (held === undefined) return;
    if (held <= 1) this.older.delete(lsn);
    else this.older.set(lsn, held - 1);
  }

  /** How many holders `lsn` has. */
  count(lsn: number): number {
    if (this.hotCount > 0 && lsn === this.hotLsn) return this.hotCount;
    return this.older.get(lsn) ?? 0;
  }

  /** The distinct LSNs held, ascending. */
  sorted(): number[] {
    const out = [...this.older.keys()];
    if (this.hotCount > 0) out.push(this.hotLsn);
    return out.sort((a, b) => a - b);
  }
}
