/** Transaction.getSync: the memory-only read the SQL layer's index fetches use; it must agree with `get`. */

import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine/engine.js";
import { NEEDS_IO } from "../src/engine/lsm/types.js";
import { openStorage } from "../src/storage/index.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined | typeof NEEDS_IO) =>
  b === NEEDS_IO ? "NEEDS_IO" : b === undefined ? undefined : new TextDecoder().decode(b);

describe("Transaction.getSync", () => {
  it("reads the snapshot and the transaction's own writes, as get does", async () => {
    const engine = await Engine.open(await openStorage("memory://"));
    try {
      const w = engine.begin();
      w.put(enc("a"), enc("1"));
      w.put(enc("b"), enc("2"));
      await w.commit();

      const t = engine.begin();
      // A commit after the snapshot is not seen.
      const later = engine.begin();
      later.put(enc("a"), enc("changed"));
      later.delete(enc("b"));
      await later.commit();
      expect(dec(t.getSync(enc("a")))).toBe("1");
      expect(dec(t.getSync(enc("b")))).toBe("2");
      expect(dec(t.getSync(enc("zz")))).toBeUndefined();
      // Own writes win, deletes hide.
      t.put(enc("a"), enc("mine"));
      t.delete(enc("b"));
      t.put(enc("c"), enc("3"));
      for (const k of ["a", "b", "c", "zz"]) expect(dec(t.getSync(enc(k)))).toBe(dec(await t.get(enc(k))));
      expect(dec(t.getSync(enc("a")))).toBe("mine");
      expect(dec(t.getSync(enc("b")))).toBeUndefined();
      t.abort();
      // A finished transaction refuses, as get does.
      expect(() => t.getSync(enc("a"))).toThrow(/aborted/);
    } finally {
      await engine.close();
    }
  });

  it("says NEEDS_IO rather than guessing when the host has no memory-only read", async () => {
    const { Transaction } = await import("../src/engine/txn/transaction.js");
    const host = {
      get: async () => enc("x"),
      scan: () => {
        throw new Error("unused");
      },
      commit: async () => 1,
      release: () => undefined,
    };
    const t = new Transaction(host, 0);
    expect(t.getSync(enc("k"))).toBe(NEEDS_IO);
    t.put(enc("k"), enc("own"));
    expect(dec(t.getSync(enc("k")))).toBe("own");
  });
});
