/**
 * Sequences (serial/bigserial/identity columns and the hidden rowid of tables without a primary key).
 *
 * Like PostgreSQL's, they are not transactional: a value once handed out is never handed out again, even if the
 * transaction that took it rolls back. Values are allocated in blocks: the high-water mark `[1, id] → {hw}` is
 * raised by BLOCK in its own small engine transaction, then values are served from memory until the block is
 * used up. A restart skips the rest of a block (gaps, as PostgreSQL's sequence cache leaves). The only writer of
 * a sequence key is this process (the engine admits one writer), so block allocations never conflict with user
 * transactions, which do not touch sequence keys.
 */

import { ErrorCodes, isTwillError } from "../../errors.js";
import type { Engine } from "../engine.js";
import { sequenceKey } from "./catalog.js";
import { SqlState, sqlError } from "./errors.js";

const BLOCK = 128;
const ALLOC_ATTEMPTS_MAX = 5;

interface State {
  next: number;
  /** Exclusive end of the allocated block. */
  limit: number;
}

export class Sequences {
  private readonly cache = new Map<number, State>();
  private readonly refilling = new Map<number, Promise<void>>();

  constructor(private readonly engine: Engine) {}

  next(id: number, max: number, name: string): number | Promise<number> {
    const s = this.cache.get(id);
    if (s && s.next < s.limit) {
      if (s.next > max) throw limitReached(name, max);
      return s.next++;
    }
    return this.nextSlow(id, max, name);
  }

  private async nextSlow(id: number, max: number, name: string): Promise<number> {
    for (;;) {
      const s = this.cache.get(id);
      if (s && s.next < s.limit) {
        if (s.next > max) throw limitReached(name, max);
        return s.next++;
      }
      let p = this.refilling.get(id);
      if (!p) {
        p = this.refill(id).finally(() => this.refilling.delete(id));
        this.refilling.set(id, p);
      }
      await p;
    }
  }

  private async refill(id: number): Promise<void> {
    const key = sequenceKey(id);
    for (let attempt = 1; ; attempt++) {
      const txn = this.engine.begin();
      try {
        const bytes = await txn.get(key);
        const hw = bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as { hw: number }).hw : 0;
        const from = Math.max(hw, (this.cache.get(id)?.limit ?? 1) - 1);
        txn.put(key, new TextEncoder().encode(JSON.stringify({ hw: from + BLOCK })));
        await txn.commit();
        this.cache.set(id, { next: from + 1, limit: from + BLOCK + 1 });
        return;
      } catch (error) {
        txn.abort();
        if (attempt < ALLOC_ATTEMPTS_MAX && isTwillError(error, ErrorCodes.SerializationFailure)) continue;
        throw error;
      }
    }
  }

  /** Forgets a dropped sequence (its key is deleted by the DROP's transaction). */
  forget(id: number): void {
    this.cache.delete(id);
  }
}

function limitReached(name: string, max: number) {
  return sqlError(SqlState.SequenceLimit, `nextval: reached maximum value of sequence "${name}" (${max})`);
}
