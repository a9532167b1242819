/** SAVEPOINT / RELEASE / ROLLBACK TO: writes, indexes, DDL and the failed state, checked against PGlite. */

import { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

let pg: PGlite;
beforeAll(async () => {
  pg = await PGlite.create();
}, 60_000);
afterAll(async () => {
  await pg?.close();
});

/** Runs the statements on both systems; each statement's outcome (rows as text, or the SQLSTATE) must agree. */
async function same(statements: string[]): Promise<void> {
  await using db = await memoryDb();
  await pg.exec("DROP TABLE IF EXISTS t; DROP TABLE IF EXISTS u");
  const outcome = async (run: () => Promise<Record<string, unknown>[]>) => {
    try {
      const rows = await run();
      return rows.map((r) => Object.values(r).map((v) => (v === null ? null : String(v))));
    } catch (e) {
      return `error ${(e as { code?: string; sqlstate?: string }).sqlstate ?? (e as { code?: string }).code}`;
    }
  };
  for (const s of statements) {
    const want = await outcome(async () => (await pg.query<Record<string, unknown>>(s)).rows);
    const got = await outcome(() => db.query(s));
    expect(got, s).toEqual(want);
  }
  await pg.exec("ROLLBACK").catch(() => undefined);
}

describe("savepoints behave as in PostgreSQL", () => {
  it("ROLLBACK TO undoes rows and index entries written after the savepoint, and keeps the savepoint", async () => {
    await same([
      "CREATE TABLE t (id int PRIMARY KEY, v text UNIQUE, n int)",
      "CREATE INDEX t_n ON t (n)",
      "BEGIN",
      "INSERT INTO t VALUES (1, 'a', 10)",
      "SAVEPOINT s1",
      "INSERT INTO t VALUES (2, 'b', 20)",
      "UPDATE t SET n = 11 WHERE id = 1",
      "DELETE FROM t WHERE id = 1",
      "SELECT id, v, n FROM t ORDER BY id",
      "ROLLBACK TO SAVEPOINT s1",
      "SELECT id, v, n FROM t ORDER BY id",
      "SELECT id FROM t WHERE n = 10",
      "SELECT id FROM t WHERE n = 20",
      "INSERT INTO t VALUES (2, 'b', 21)",
      "ROLLBACK TO s1",
      "INSERT INTO t VALUES (3, 'b', 30)",
      "COMMIT",
      "SELECT id, v, n FROM t ORDER BY id",
      "SELECT id FROM t WHERE v = 'b'",
    ]);
  });

  it("recovers from an error with ROLLBACK TO; RELEASE keeps the writes; nested savepoints", async () => {
    await same([
      "CREATE TABLE t (id int PRIMARY KEY, v int)",
      "BEGIN",
      "INSERT INTO t VALUES (1, 1)",
      "SAVEPOINT a",
      "INSERT INTO t VALUES (1, 2)",
      "SELECT * FROM t",
      "ROLLBACK TO a",
      "SELECT * FROM t",
      "SAVEPOINT b",
      "INSERT INTO t VALUES (2, 2)",
      "SAVEPOINT c",
      "INSERT INTO t VALUES (3, 3)",
      "RELEASE b",
      "ROLLBACK TO c",
      "SELECT * FROM t ORDER BY id",
      "ROLLBACK TO a",
      "SELECT * FROM t ORDER BY id",
      "SAVEPOINT a",
      "INSERT INTO t VALUES (4, 4)",
      "SAVEPOINT a",
      "INSERT INTO t VALUES (5, 5)",
      "ROLLBACK TO a",
      "RELEASE a",
      "SELECT * FROM t ORDER BY id",
      "RELEASE a",
      "RELEASE a",
      "ROLLBACK",
      "SELECT * FROM t ORDER BY id",
    ]);
  });

  it("DDL after a savepoint rolls back with it", async () => {
    await same([
      "BEGIN",
      "CREATE TABLE t (id int PRIMARY KEY)",
      "SAVEPOINT s",
      "CREATE TABLE u (x int)",
      "ALTER TABLE t ADD COLUMN w text DEFAULT 'd'",
      "INSERT INTO t VALUES (1)",
      "SELECT * FROM t",
      "ROLLBACK TO s",
      "SELECT * FROM u",
      "ROLLBACK TO s",
      "INSERT INTO t VALUES (2)",
      "SELECT * FROM t",
      "COMMIT",
      "SELECT * FROM t",
    ]);
  });

  it("outside a block and for unknown names", async () => {
    await using db = await memoryDb();
    await expectSqlState(db.query("RELEASE SAVEPOINT x"), "25P01");
    await expectSqlState(db.query("ROLLBACK TO SAVEPOINT x"), "25P01");
    await db.exec("CREATE TABLE t (id int PRIMARY KEY)");
    await db.transaction(async (tx) => {
      await tx.query("INSERT INTO t VALUES (1)");
      await tx.query("SAVEPOINT s");
      await tx.query("INSERT INTO t VALUES (2)");
      await tx.query("ROLLBACK TO SAVEPOINT s");
      await expectSqlState(tx.query("RELEASE nope"), "3B001", 'savepoint "nope" does not exist');
      await tx.query("ROLLBACK TO s");
    });
    expect(await db.query("SELECT id FROM t")).toEqual([{ id: 1 }]);
  });
});
