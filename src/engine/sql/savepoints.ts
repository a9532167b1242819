/**
 * Savepoints (SAVEPOINT / RELEASE SAVEPOINT / ROLLBACK TO SAVEPOINT) without help from the engine: each open
 * savepoint is a write layer over the transaction (or over the savepoint before it). Statements after a SAVEPOINT
 * read and write the top layer; ROLLBACK TO drops the layers above and empties the named one; RELEASE folds the
 * named layer and those above into the one below; COMMIT folds all of them into the transaction first.
 *
 * Invariants: a layer holds the newest write of each key made since its savepoint (a put, or a delete as
 * `value === undefined`) and copies keys and values (callers pass views of shared buffers). Reads through a layer
 * see its writes over everything below, exactly as the transaction would after folding, so folding never changes
 * what a statement saw. The engine sees a write only once it is folded into the transaction: conflicts (40001)
 * are checked at COMMIT for what survived, as in PostgreSQL. With no savepoint open the transaction is used
 * directly, so savepoints cost nothing until used.
 */

import type { KeyValue } from "../lsm/tree.js";
import { compareBytes, NEEDS_IO, type NeedsIo } from "../lsm/types.js";
import { resolveRange, type TxnScanOptions } from "../txn/transaction.js";
import type { Kv, KvWriter } from "./plan.js";

/** What a layer sits on: the transaction itself or another layer. */
export type KvLayer = Kv & KvWriter;

interface LayerWrite {
  key: Uint8Array;
  value: Uint8Array | undefined;
}

const keyString = (k: Uint8Array) => Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString("latin1");

export class WriteLayer implements KvLayer {
  private readonly writes = new Map<string, LayerWrite>();
  private sorted: LayerWrite[] | undefined;

  constructor(readonly below: KvLayer) {}

  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    const w = this.writes.get(keyString(key));
    if (w) return Promise.resolve(w.value);
    return this.below.get(key);
  }

  getSync(key: Uint8Array): Uint8Array | undefined | NeedsIo {
    const w = this.writes.get(keyString(key));
    if (w) return w.value;
    return this.below.getSync === undefined ? NEEDS_IO : this.below.getSync(key);
  }

  put(key: Uint8Array, value: Uint8Array): void {
    this.writes.set(keyString(key), { key: key.slice(), value: value.slice() });
    this.sorted = undefined;
  }

  delete(key: Uint8Array): void {
    this.writes.set(keyString(key), { key: key.slice(), value: undefined });
    this.sorted = undefined;
  }

  scan(options: TxnScanOptions): AsyncIterable<KeyValue> {
    const range = resolveRange(options);
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const reverse = options.reverse ?? false;
    if (range === undefined || limit <= 0) return (async function* () {})();
    this.sorted ??= [...this.writes.values()].sort((a, b) => compareBytes(a.key, b.key));
    const own = this.sorted.filter(
      (w) =>
        (!range.start || compareBytes(w.key, range.start) >= 0) &&
        (!range.end || compareBytes(w.key, range.end) < 0),
    );
    const below = this.below.scan({ ...range, reverse });
    return merge(below, reverse ? own.reverse() : own, reverse, limit);
  }

  /** Applies this layer's writes to the layer (or transaction) below. */
  fold(): void {
    for (const w of this.writes.values()) {
      if (w.value === undefined) this.below.delete(w.key);
      else this.below.put(w.key, w.value);
    }
    this.writes.clear();
    this.sorted = undefined;
  }
}

/** The pairs below, with this layer's writes replacing (or, for deletes, hiding) equal keys. */
async function* merge(
  below: AsyncIterable<KeyValue>,
  own: LayerWrite[],
  reverse: boolean,
  limit: number,
): AsyncIterable<KeyValue> {
  let i = 0;
  let emitted = 0;
  const before = (a: Uint8Array, b: Uint8Array) =>
    reverse ? compareBytes(a, b) > 0 : compareBytes(a, b) < 0;
  for await (const kv of below) {
    while (i < own.length && before(own[i]!.key, kv.key)) {
      const w = own[i++]!;
      if (w.value !== undefined) {
        yield { key: w.key, value: w.value };
        if (++emitted >= limit) return;
      }
    }
    if (i < own.length && compareBytes(own[i]!.key, kv.key) === 0) {
      const w = own[i++]!;
      if (w.value !== undefined) {
        yield { key: w.key, value: w.value };
        if (++emitted >= limit) return;
      }
      continue;
    }
    yield kv;
    if (++emitted >= limit) return;
  }
  for (; i < own.length; i++) {
    const w = own[i]!;
    if (w.value !== undefined) {
      yield { key: w.key, value: w.value };
      if (++emitted >= limit) return;
    }
  }
}
