/**
 * CountedNumbers: a multiset of numbers, each with how many holders it has. It holds an engine's live snapshot
 * LSNs (open transactions, child branches' fork points; compaction reads them as an ascending list) and the LSM
 * tree's running reads and scans by the view seq they began on.
 *
 * In both, nearly every holder takes the newest number and lets go before the next few begin. Kept in a Map alone,
 * one short holder after another emptied and refilled it, and V8 reallocates a Map's table on both (it shrinks a
 * sparse one): two allocations per commit of a single writer. So the newest number held gets two fields of its own
 * (`hotValue`, `hotCount`), and only older numbers still held when a newer one is taken go into the Map.
 *
 * Invariants: a number is counted in at most one place (the hot fields or the Map); every Map count is >= 1;
 * `hotCount` 0 means the hot fields hold nothing (`hotValue` is then stale and ignored).
 */
export class CountedNumbers {
  private hotValue = 0;
  private hotCount = 0;
  private readonly older = new Map<number, number>();

  /** Counts one more holder of `n`. */
  acquire(n: number): void {
    if (this.hotCount > 0 && n === this.hotValue) {
      this.hotCount++;
      return;
    }
    const held = this.older.get(n);
    if (held !== undefined) {
      this.older.set(n, held + 1);
    } else if (this.hotCount === 0) {
      this.hotValue = n;
      this.hotCount = 1;
    } else if (n > this.hotValue) {
      this.older.set(this.hotValue, this.hotCount);
      this.hotValue = n;
      this.hotCount = 1;
    } else {
      this.older.set(n, 1);
    }
  }

  /** Counts one holder of `n` fewer and returns how many are left; a number nobody holds is ignored (0). */
  release(n: number): number {
    if (this.hotCount > 0 && n === this.hotValue) return --this.hotCount;
    const held = this.older.get(n);
    if (held === undefined) return 0;
    if (held <= 1) {
      this.older.delete(n);
      return 0;
    }
    this.older.set(n, held - 1);
    return held - 1;
  }

  /** How many holders `n` has. */
  count(n: number): number {
    if (this.hotCount > 0 && n === this.hotValue) return this.hotCount;
    return this.older.get(n) ?? 0;
  }

  /** The smallest number held, or undefined when none is. */
  min(): number | undefined {
    let min = this.hotCount > 0 ? this.hotValue : undefined;
    for (const n of this.older.keys()) if (min === undefined || n < min) min = n;
    return min;
  }

  /** Whether some number in [from, to) is held. */
  anyIn(from: number, to: number): boolean {
    if (this.hotCount > 0 && this.hotValue >= from && this.hotValue < to) return true;
    for (const n of this.older.keys()) if (n >= from && n < to) return true;
    return false;
  }

  /** The distinct numbers held, ascending. */
  sorted(): number[] {
    const out = [...this.older.keys()];
    if (this.hotCount > 0) out.push(this.hotValue);
    return out.sort((a, b) => a - b);
  }
}
