/** Non-recursive WITH queries (common table expressions) in SELECT, checked against PGlite (WITH RECURSIVE: sql-recursive). */

import type { PGlite } from "@electric-sql/pglite";
import { describe, expect, it } from "vitest";
import type { Database } from "../src/database.js";
import { pairWithPglite } from "./helpers/pglite-pair.js";
import { expectSqlState } from "./sql-helpers.js";

let pg: PGlite;
let db: Database;
const SETUP = [
  "CREATE TABLE t (id int4 PRIMARY KEY, g int4, v text)",
  "INSERT INTO t VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c'), (4, NULL, 'd')",
];

pairWithPglite(SETUP, (p, d) => {
  pg = p;
  db = d;
});

const QUERIES = [
  "WITH x AS (SELECT g, count(*) AS n FROM t GROUP BY g) SELECT * FROM x ORDER BY g NULLS FIRST",
  "WITH x AS (SELECT g, count(*) AS n FROM t GROUP BY g), y (gg, nn) AS (SELECT * FROM x WHERE n > 1) SELECT * FROM y",
  "WITH t AS (SELECT 42 AS id) SELECT * FROM t",
  "WITH x AS (SELECT id FROM t) SELECT count(*) AS c FROM x a JOIN x b ON a.id = b.id",
  "WITH x AS (SELECT id FROM t WHERE g = 1) SELECT v FROM t WHERE id IN (SELECT id FROM x) ORDER BY v",
  "WITH x AS (SELECT id, v FROM t) SELECT v FROM x WHERE id = 3",
  "SELECT * FROM (WITH z AS (SELECT v FROM t WHERE g = 2) SELECT * FROM z) s",
  "WITH a AS (SELECT 1 AS n), b AS (SELECT n + 1 AS n FROM a) SELECT * FROM a UNION ALL SELECT * FROM b ORDER BY n",
  "WITH x (k) AS (SELECT id FROM t ORDER BY id DESC LIMIT 2) SELECT k FROM x ORDER BY k",
];

describe("WITH queries match PostgreSQL", () => {
  const text = (rows: Record<string, unknown>[]) =>
    rows.map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? null : String(v)])),
    );
  it.each(QUERIES)("%s", async (q) => {
    expect(text(await db.query(q))).toEqual(text((await pg.query<Record<string, unknown>>(q)).rows));
  });

  it("refuses what it does not do, with PostgreSQL's errors where PostgreSQL refuses too", async () => {
    await expectSqlState(db.query("WITH x AS (SELECT 1), x AS (SELECT 2) SELECT * FROM x"), "42712");
    await expectSqlState(db.query("WITH x (a, b) AS (SELECT 1) SELECT * FROM x"), "42P10");
    await expectSqlState(db.query("WITH d AS (DELETE FROM t RETURNING id) SELECT * FROM d"), "0A000");
  });
});
