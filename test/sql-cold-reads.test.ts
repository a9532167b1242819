/**
 * Reads that must wait for storage: after a reopen, the rows sit in SSTs whose blocks are not cached, so the
 * SQL layer's memory-first reads (index fetches, uniqueness probes) see NEEDS_IO and must fall back to the
 * asynchronous read with the same answer.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { open } from "../src/database.js";
import { expectSqlState } from "./sql-helpers.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

// Small memtables and blocks: the load is flushed into several SSTs of many blocks.
const small = { engine: { memtableBytesMax: 64 * 1024, blockBytesTarget: 1024, sstBytesTarget: 64 * 1024 } };

describe("cold reads after reopen", () => {
  it("index joins, unique probes and ON CONFLICT read uncached blocks correctly", async () => {
    const dir = await mkdtemp(join(tmpdir(), "twill-cold-"));
    dirs.push(dir);
    const url = `file://${dir}`;
    {
      await using db = await open(url, small);
      await db.exec("CREATE TABLE u (id int4 PRIMARY KEY, email text NOT NULL UNIQUE, name text)");
      await db.exec("CREATE TABLE o (id int8 PRIMARY KEY, uid int4 NOT NULL, qty int4, pad text)");
      await db.exec("CREATE INDEX o_uid ON o (uid)");
      await db.transaction(async (tx) => {
        for (let i = 1; i <= 500; i++)
          await tx.query("INSERT INTO u VALUES ($1, $2, $3)", [i, `u${i}@x`, `name ${i}`]);
        for (let i = 1; i <= 3000; i++)
          await tx.query("INSERT INTO o VALUES ($1, $2, $3, $4)", [i, 1 + (i % 500), i % 13, "p".repeat(60)]);
      });
    }
    await using db = await open(url, small);
    // The join's inner side fetches each row by primary key from an index entry.
    const rows = await db.query<{ name: string; id: number; qty: number }>(
      "SELECT u.name, o.id, o.qty FROM u JOIN o ON o.uid = u.id WHERE u.id BETWEEN 100 AND 104 ORDER BY u.id, o.id",
    );
    const expected: { name: string; id: number; qty: number }[] = [];
    for (let uid = 100; uid <= 104; uid++)
      for (let i = 1; i <= 3000; i++)
        if (1 + (i % 500) === uid) expected.push({ name: `name ${uid}`, id: i, qty: i % 13 });
    expect(rows).toEqual(expected);
    // A unique index lookup, then its row.
    expect(await db.query("SELECT id, name FROM u WHERE email = 'u321@x'")).toEqual([
      { id: 321, name: "name 321" },
    ]);
    // Uniqueness probes: the primary key, then the unique index.
    await expectSqlState(db.query("INSERT INTO u VALUES (250, 'new@x', 'n')"), "23505", /u_pkey/);
    await expectSqlState(db.query("INSERT INTO u VALUES (9999, 'u77@x', 'n')"), "23505", /u_email_key/);
    await db.query(
      "INSERT INTO u VALUES (77, 'u77@x', 'other') ON CONFLICT (id) DO UPDATE SET name = excluded.name",
    );
    expect(await db.query("SELECT name FROM u WHERE id = 77")).toEqual([{ name: "other" }]);
    await db.query("INSERT INTO u VALUES (9998, 'u78@x', 'x') ON CONFLICT DO NOTHING");
    expect(await db.query("SELECT count(*) AS n FROM u")).toEqual([{ n: 500 }]);
    expect(await db.query("SELECT sum(qty) AS q, count(*) AS n FROM o WHERE uid = 42")).toEqual([
      { q: sumQty(42), n: 6 },
    ]);
  });
});

function sumQty(uid: number): number {
  let q = 0;
  for (let i = 1; i <= 3000; i++) if (1 + (i % 500) === uid) q += i % 13;
  return q;
}
