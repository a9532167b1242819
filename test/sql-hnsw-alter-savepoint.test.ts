/**
 * HNSW indexes meeting the later SQL features: ALTER TABLE (rows written before ADD COLUMN read the column's
 * stored default through the index scan too; row rewrites are refused rather than leaving the graph keyed by old
 * primary keys; DROP COLUMN drops the graph) and savepoints (graph writes inside one are refused, since the
 * graph's overlay cannot be rolled back to a savepoint; everything around them stays consistent).
 */

import { describe, expect, it } from "vitest";
import type { Database } from "../src/database.js";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

const Q = "[0.5,0.5,0.5]";

async function table(db: Database): Promise<void> {
  await db.exec("CREATE TABLE docs (id INT PRIMARY KEY, emb vector(3))");
  await db.exec("CREATE INDEX docs_emb ON docs USING hnsw (emb vector_l2_ops)");
  for (let i = 1; i <= 20; i++)
    await db.query("INSERT INTO docs VALUES ($1, $2)", [i, [i / 20, (20 - i) / 20, 0]]);
  await db.exec("SET hnsw.ef_search = 100");
}

async function nearest(db: Database, k: number): Promise<number[]> {
  const rows = await db.query<{ id: number }>(`SELECT id FROM docs ORDER BY emb <-> '${Q}' LIMIT ${k}`);
  return rows.map((r) => r.id);
}

describe("HNSW with ALTER TABLE", () => {
  it("returns an added column's default for rows written before the ALTER, through the index scan", async () => {
    await using db = await memoryDb();
    await table(db);
    await db.exec("ALTER TABLE docs ADD COLUMN tag TEXT NOT NULL DEFAULT 'old'");
    await db.query("INSERT INTO docs VALUES (100, '[0.5,0.5,0.5]', 'new')");
    const rows = await db.query<{ id: number; tag: string }>(
      `SELECT id, tag FROM docs ORDER BY emb <-> '${Q}' LIMIT 3`,
    );
    expect(rows.map((r) => r.id)[0]).toBe(100);
    expect(rows.map((r) => r.tag)).toEqual(["new", "old", "old"]);
    const filtered = await db.query<{ id: number }>(
      `SELECT id FROM docs WHERE tag = 'old' ORDER BY emb <-> '${Q}' LIMIT 2`,
    );
    expect(filtered).toHaveLength(2);
    expect(filtered.every((r) => r.id !== 100)).toBe(true);
  });

  it("refuses a row rewrite of an HNSW-indexed table with 0A000 and leaves table and index as they were", async () => {
    await using db = await memoryDb();
    await table(db);
    const before = await nearest(db, 5);
    await expectSqlState(db.exec("ALTER TABLE docs ADD COLUMN u uuid DEFAULT gen_random_uuid()"), "0A000");
    await expectSqlState(db.exec("ALTER TABLE docs ALTER COLUMN id TYPE bigint"), "0A000");
    expect(await nearest(db, 5)).toEqual(before);
    // The hint's way round works: drop the index, alter, create it again.
    await db.exec("DROP INDEX docs_emb");
    await db.exec("ALTER TABLE docs ALTER COLUMN id TYPE bigint");
    await db.exec("CREATE INDEX docs_emb ON docs USING hnsw (emb vector_l2_ops)");
    expect((await nearest(db, 5)).map(Number)).toEqual(before);
  });

  it("drops the graph with its column", async () => {
    await using db = await memoryDb();
    await table(db);
    await db.exec("ALTER TABLE docs DROP COLUMN emb");
    expect(await db.query("SELECT count(*)::int AS n FROM pg_indexes WHERE indexname = 'docs_emb'")).toEqual([
      { n: 0 },
    ]);
    await db.exec("ALTER TABLE docs ADD COLUMN emb vector(3)");
    await db.query("UPDATE docs SET emb = '[0.5,0.5,0.5]' WHERE id = 7");
    await db.exec("CREATE INDEX docs_emb ON docs USING hnsw (emb vector_l2_ops)");
    expect(await nearest(db, 5)).toEqual([7]);
  });
});

describe("HNSW with savepoints", () => {
  it("refuses graph writes inside a savepoint, recovers with ROLLBACK TO, and stays exact around it", async () => {
    await using db = await memoryDb();
    await table(db);
    await db.exec("BEGIN");
    await db.query("INSERT INTO docs VALUES (50, '[0.5,0.5,0.5]')"); // before the savepoint: allowed
    await db.exec("SAVEPOINT s1");
    expect(await nearest(db, 1)).toEqual([50]); // reads inside the savepoint see the transaction's graph
    await expectSqlState(db.query("INSERT INTO docs VALUES (51, '[0.5,0.5,0.51]')"), "0A000");
    await expectSqlState(db.exec("TRUNCATE docs"), "25P02");
    await db.exec("ROLLBACK TO SAVEPOINT s1");
    await expectSqlState(db.exec("DELETE FROM docs WHERE id = 50"), "0A000");
    await db.exec("ROLLBACK TO SAVEPOINT s1");
    await db.exec("RELEASE SAVEPOINT s1");
    await db.query("INSERT INTO docs VALUES (52, '[0.5,0.5,0.52]')"); // after RELEASE: allowed again
    await db.exec("COMMIT");
    expect(await nearest(db, 2)).toEqual([50, 52]);
    expect(await db.query("SELECT count(*)::int AS n FROM docs")).toEqual([{ n: 22 }]);
  });

  it("leaves tables without an HNSW index free to use savepoints in the same transaction", async () => {
    await using db = await memoryDb();
    await table(db);
    await db.exec("CREATE TABLE plain (id INT PRIMARY KEY)");
    await db.exec("BEGIN");
    await db.exec("SAVEPOINT a");
    await db.query("INSERT INTO plain VALUES (1)");
    await db.exec("ROLLBACK TO SAVEPOINT a");
    await db.query("INSERT INTO plain VALUES (2)");
    await db.exec("COMMIT");
    expect(await db.query("SELECT id FROM plain")).toEqual([{ id: 2 }]);
    expect(await nearest(db, 20)).toHaveLength(20);
  });
});
