/** WITH RECURSIVE, checked row for row against PostgreSQL (PGlite), errors included. */

import type { PGlite } from "@electric-sql/pglite";
import { describe, expect, it } from "vitest";
import type { Database } from "../src/database.js";
import { RecursiveUnion } from "../src/engine/sql/recursive.js";
import { TwillError } from "../src/errors.js";
import { pairWithPglite } from "./helpers/pglite-pair.js";

let pg: PGlite;
let db: Database;
const SETUP = [
  "CREATE TABLE emp (id int4 PRIMARY KEY, boss int4, name text NOT NULL)",
  "CREATE INDEX emp_boss ON emp (boss)",
  "INSERT INTO emp VALUES (1, NULL, 'ceo'), (2, 1, 'cto'), (3, 1, 'cfo'), (4, 2, 'dev1'), (5, 2, 'dev2'), (6, 4, 'intern'), (7, 3, 'acct')",
  // A graph with a cycle (1 → 2 → 3 → 1) and a tail (3 → 4 → 5).
  "CREATE TABLE edge (src int4, dst int4, w int4, PRIMARY KEY (src, dst))",
  "INSERT INTO edge VALUES (1, 2, 5), (2, 3, 1), (3, 1, 2), (3, 4, 7), (4, 5, 1)",
];

pairWithPglite(SETUP, (p, d) => {
  pg = p;
  db = d;
});

const QUERIES = [
  "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 10) SELECT * FROM t",
  "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 100) SELECT sum(n), count(*), max(n) FROM t",
  // An endless recursion stops at the outer LIMIT.
  "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n * 2 FROM t) SELECT n FROM t LIMIT 12",
  // Down the hierarchy through the index on boss, with the depth and the path.
  `WITH RECURSIVE sub AS (
     SELECT id, name, 0 AS depth, name AS path FROM emp WHERE id = 2
     UNION ALL
     SELECT e.id, e.name, s.depth + 1, s.path || '/' || e.name FROM emp e JOIN sub s ON e.boss = s.id)
   SELECT * FROM sub ORDER BY id`,
  // The worktable on the right of the join.
  `WITH RECURSIVE up(id, boss, name) AS (
     SELECT id, boss, name FROM emp WHERE id = 6
     UNION ALL
     SELECT e.id, e.boss, e.name FROM up JOIN emp e ON e.id = up.boss)
   SELECT name FROM up ORDER BY id`,
  // UNION ends a cycle; UNION ALL with a bound does not need to.
  "WITH RECURSIVE r(n) AS (SELECT 1 UNION SELECT e.dst FROM edge e JOIN r ON e.src = r.n) SELECT n FROM r ORDER BY n",
  `WITH RECURSIVE walk(node, hops) AS (
     SELECT 1, 0 UNION ALL SELECT e.dst, w.hops + 1 FROM edge e JOIN walk w ON e.src = w.node WHERE w.hops < 6)
   SELECT node, hops FROM walk ORDER BY hops, node`,
  // Cheapest known distance per node, then grouped outside the recursion.
  `WITH RECURSIVE d(node, cost, hops) AS (
     SELECT 1, 0, 0 UNION ALL SELECT e.dst, d.cost + e.w, d.hops + 1 FROM d JOIN edge e ON e.src = d.node WHERE d.hops < 5)
   SELECT node, min(cost) AS best FROM d GROUP BY node ORDER BY node`,
  // A recursive query next to a plain one, used in a subquery and in a join.
  `WITH RECURSIVE bosses AS (SELECT id FROM emp WHERE boss IS NULL),
     chain(id, lvl) AS (SELECT id, 1 FROM bosses UNION ALL SELECT e.id, c.lvl + 1 FROM emp e, chain c WHERE e.boss = c.id)
   SELECT e.name, c.lvl FROM emp e JOIN chain c ON c.id = e.id WHERE c.lvl IN (SELECT lvl FROM chain WHERE lvl > 2) ORDER BY e.name`,
  // Text built up, NULLs carried, DISTINCT on the result.
  "WITH RECURSIVE s(x, y) AS (SELECT 'a', NULL::int4 UNION ALL SELECT x || 'b', y FROM s WHERE length(x) < 4) SELECT * FROM s",
  "WITH RECURSIVE s(k) AS (SELECT 3 UNION ALL SELECT k - 1 FROM s WHERE k > 0) SELECT DISTINCT k % 2 AS p FROM s ORDER BY p",
  // Not self-referencing: an ordinary WITH query.
  "WITH RECURSIVE r (n) AS (SELECT 1) SELECT * FROM r",
  // A correlated subquery reading the recursive row, and a generate_series inside the recursion.
  `WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 4)
   SELECT n, (SELECT count(*) FROM emp WHERE emp.boss = t.n) AS reports FROM t ORDER BY n`,
  "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT t.n + g FROM t, generate_series(1, 2) g WHERE t.n < 5) SELECT n, count(*) FROM t GROUP BY n ORDER BY n",
  "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < $1) SELECT count(*) AS c FROM t",
];

const text = (rows: Record<string, unknown>[]) =>
  rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? null : String(v)])));

describe("WITH RECURSIVE matches PostgreSQL", () => {
  it.each(QUERIES)("%s", async (q) => {
    const params = q.includes("$1") ? [7] : [];
    expect(text(await db.query(q, params))).toEqual(
      text((await pg.query<Record<string, unknown>>(q, params)).rows),
    );
  });

  const ERRORS = [
    // The recursive term's types must be the non-recursive term's.
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n::int8 + 1 FROM t WHERE n < 3) SELECT * FROM t",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT count(*) FROM t) SELECT * FROM t",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT a.n FROM t a, t b) SELECT * FROM t",
    "WITH RECURSIVE t(n) AS (SELECT n FROM t UNION ALL SELECT 1) SELECT * FROM t",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < (SELECT max(n) FROM t)) SELECT * FROM t",
    "WITH RECURSIVE t(n) AS (SELECT 1 INTERSECT SELECT n FROM t) SELECT * FROM t",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n, n FROM t) SELECT * FROM t",
  ];
  it.each(ERRORS)("refuses as PostgreSQL does: %s", async (q) => {
    let theirs: string | undefined;
    try {
      await pg.query(q);
    } catch (e) {
      theirs = (e as { code?: string }).code;
    }
    let ours: unknown;
    try {
      await db.query(q);
    } catch (e) {
      ours = e;
    }
    expect(theirs).toBeDefined();
    expect(ours).toBeInstanceOf(TwillError);
    expect((ours as TwillError).sqlstate).toBe(theirs);
  });

  it("explains the plan and refuses ORDER BY / LIMIT inside the recursion with 0A000", async () => {
    const plan = (
      await db.query<{ "QUERY PLAN": string }>(
        "EXPLAIN WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t",
      )
    ).map((r) => r["QUERY PLAN"]);
    expect(plan.join("\n")).toMatch(/Recursive Union[\s\S]*WorkTable Scan on t/);
    for (const q of [
      "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL (SELECT n + 1 FROM t ORDER BY n LIMIT 1)) SELECT * FROM t",
      "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3 ORDER BY 1) SELECT * FROM t",
      "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SEARCH DEPTH FIRST BY n SET o SELECT * FROM t",
    ]) {
      let error: unknown;
      try {
        await db.query(q);
      } catch (e) {
        error = e;
      }
      expect((error as TwillError).sqlstate, q).toBe("0A000");
    }
  });

  it("stops a runaway recursion with 54000 instead of exhausting memory, but not one an outer LIMIT ends", async () => {
    const saved = RecursiveUnion.rowsMax;
    RecursiveUnion.rowsMax = 1000;
    try {
      let error: unknown;
      try {
        await db.query(
          "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
        );
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TwillError);
      expect((error as TwillError).sqlstate).toBe("54000");
      expect((error as TwillError).message).toMatch(/recursive query "t" produced more than 1000 rows/);
      const rows = await db.query(
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT n FROM t LIMIT 5",
      );
      expect(rows).toEqual([1, 2, 3, 4, 5].map((n) => ({ n })));
      // A bounded recursion under the cap is untouched.
      expect(
        await db.query(
          "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 999) SELECT count(*) AS c FROM t",
        ),
      ).toEqual([{ c: 999 }]);
    } finally {
      RecursiveUnion.rowsMax = saved;
    }
  });

  it("keeps each execution's working table apart when one cached plan runs twice at once", async () => {
    // The series is materialised first, with a pause every 4096 rows, so the other execution runs before this
    // one reads its working table.
    const q =
      "WITH RECURSIVE t(n) AS (SELECT $1::int4 UNION ALL SELECT n + 1 FROM t, generate_series(1, 5000) g WHERE g = 1 AND n < $1 + 50) SELECT sum(n) AS s FROM t";
    const [a, b] = await Promise.all([db.query(q, [1]), db.query(q, [1000])]);
    expect(Number((a[0] as { s: unknown }).s)).toBe(((1 + 51) * 51) / 2);
    expect(Number((b[0] as { s: unknown }).s)).toBe(((1000 + 1050) * 51) / 2);
  });
});
