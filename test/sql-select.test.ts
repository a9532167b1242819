/** SELECT: filters, ordering, limits, DISTINCT, aggregates, joins, subqueries, set operations, EXPLAIN. */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../src/database.js";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

let db: Database;

beforeAll(async () => {
  db = await memoryDb();
  await db.exec(`
    CREATE TABLE emp (id int PRIMARY KEY, name text NOT NULL, dept text, salary numeric(10,2), boss int, hired date);
    CREATE INDEX emp_dept ON emp (dept);
    CREATE TABLE dept (code text PRIMARY KEY, title text);
    INSERT INTO dept VALUES ('eng', 'Engineering'), ('ops', 'Operations'), ('hr', 'People');
    INSERT INTO emp VALUES
      (1, 'Ada', 'eng', 200, NULL, '2020-01-01'),
      (2, 'Bob', 'eng', 120.5, 1, '2021-06-01'),
      (3, 'Cy', 'ops', 90, 1, '2022-03-15'),
      (4, 'Di', NULL, 75, 3, '2023-07-01'),
      (5, 'Eve', 'eng', 120.5, 2, NULL);
  `);
});
afterAll(async () => {
  await db.close();
});

const col = async (sql: string, name: string, params?: unknown[]) =>
  (await db.query<Record<string, unknown>>(sql, params)).map((r) => r[name]);

describe("filters and expressions", () => {
  it("evaluates WHERE with AND/OR/NOT/IN/BETWEEN/LIKE/ILIKE/IS NULL", async () => {
    expect(
      await col(
        "SELECT name FROM emp WHERE dept = 'eng' AND salary > 150 OR dept IS NULL ORDER BY id",
        "name",
      ),
    ).toEqual(["Ada", "Di"]);
    expect(await col("SELECT name FROM emp WHERE NOT (dept = 'eng') ORDER BY id", "name")).toEqual(["Cy"]);
    expect(await col("SELECT name FROM emp WHERE id IN (1, 3, 99) ORDER BY id", "name")).toEqual([
      "Ada",
      "Cy",
    ]);
    expect(await col("SELECT name FROM emp WHERE id NOT IN (1, 3) ORDER BY id", "name")).toEqual([
      "Bob",
      "Di",
      "Eve",
    ]);
    expect(await col("SELECT name FROM emp WHERE id NOT IN (1, NULL)", "name")).toEqual([]);
    expect(await col("SELECT name FROM emp WHERE salary BETWEEN 90 AND 120.5 ORDER BY id", "name")).toEqual([
      "Bob",
      "Cy",
      "Eve",
    ]);
    expect(
      await col("SELECT name FROM emp WHERE salary NOT BETWEEN 90 AND 120.5 ORDER BY id", "name"),
    ).toEqual(["Ada", "Di"]);
    expect(await col("SELECT name FROM emp WHERE name LIKE '_o%' ORDER BY id", "name")).toEqual(["Bob"]);
    expect(
      await col(
        "SELECT name FROM emp WHERE name ILIKE 'a%' OR name NOT LIKE '%e%' AND id > 3 ORDER BY id",
        "name",
      ),
    ).toEqual(["Ada", "Di"]);
    expect(await col("SELECT name FROM emp WHERE hired IS NULL", "name")).toEqual(["Eve"]);
    expect(
      await col("SELECT name FROM emp WHERE boss IS NOT NULL AND hired > '2021-12-31' ORDER BY id", "name"),
    ).toEqual(["Cy", "Di"]);
    expect(await col("SELECT name FROM emp WHERE dept IS DISTINCT FROM 'eng' ORDER BY id", "name")).toEqual([
      "Cy",
      "Di",
    ]);
  });

  it("computes CASE, COALESCE, NULLIF, GREATEST, casts and string functions", async () => {
    expect(
      await db.query(`SELECT name,
        CASE WHEN salary >= 150 THEN 'high' WHEN salary >= 100 THEN 'mid' ELSE 'low' END AS band,
        CASE dept WHEN 'eng' THEN 1 WHEN 'ops' THEN 2 END AS code,
        coalesce(dept, 'none') AS d, nullif(dept, 'eng') AS n, greatest(id, 3) AS g, least(id, 3) AS l,
        upper(name) || '-' || length(name) AS u, salary::int AS s
        FROM emp WHERE id IN (1, 4) ORDER BY id`),
    ).toEqual([
      { name: "Ada", band: "high", code: 1, d: "eng", n: null, g: 3, l: 1, u: "ADA-3", s: 200 },
      { name: "Di", band: "low", code: null, d: "none", n: null, g: 4, l: 3, u: "DI-2", s: 75 },
    ]);
    expect(
      await db.query(
        "SELECT substr('hello', 2, 3) AS a, trim('  x  ') AS b, replace('aXbX', 'X', '-') AS c, position('l' in 'hello') AS d, lpad('7', 3, '0') AS e, split_part('a,b,c', ',', 2) AS f, round(2.567, 2) AS g, abs(-3) AS h, concat('a', NULL, 1) AS i",
      ),
    ).toEqual([{ a: "ell", b: "x", c: "a-b-", d: 3, e: "007", f: "b", g: "2.57", h: 3, i: "a1" }]);
  });
});

describe("ordering and limits", () => {
  it("orders with ASC/DESC and NULLS FIRST/LAST, by name, position or expression", async () => {
    expect(await col("SELECT dept FROM emp ORDER BY dept, id", "dept")).toEqual([
      "eng",
      "eng",
      "eng",
      "ops",
      null,
    ]);
    expect(await col("SELECT dept FROM emp ORDER BY dept DESC, id", "dept")).toEqual([
      null,
      "ops",
      "eng",
      "eng",
      "eng",
    ]);
    expect(await col("SELECT dept FROM emp ORDER BY dept NULLS FIRST, id", "dept")).toEqual([
      null,
      "eng",
      "eng",
      "eng",
      "ops",
    ]);
    expect(await col("SELECT dept FROM emp ORDER BY dept DESC NULLS LAST, id", "dept")).toEqual([
      "ops",
      "eng",
      "eng",
      "eng",
      null,
    ]);
    expect(await col("SELECT name, salary FROM emp ORDER BY 2 DESC, 1", "name")).toEqual([
      "Ada",
      "Bob",
      "Eve",
      "Cy",
      "Di",
    ]);
    expect(await col("SELECT name AS n FROM emp ORDER BY n DESC", "n")).toEqual([
      "Eve",
      "Di",
      "Cy",
      "Bob",
      "Ada",
    ]);
    expect(await col("SELECT name FROM emp ORDER BY length(name), id DESC", "name")).toEqual([
      "Di",
      "Cy",
      "Eve",
      "Bob",
      "Ada",
    ]);
    await expectSqlState(
      db.query("SELECT name FROM emp ORDER BY 3"),
      "42P10",
      "ORDER BY position 3 is not in select list",
    );
  });

  it("applies LIMIT and OFFSET, including parameters", async () => {
    expect(await col("SELECT id FROM emp ORDER BY id LIMIT 2", "id")).toEqual([1, 2]);
    expect(await col("SELECT id FROM emp ORDER BY id LIMIT 2 OFFSET 3", "id")).toEqual([4, 5]);
    expect(await col("SELECT id FROM emp ORDER BY id DESC LIMIT $1 OFFSET $2", "id", [2, 1])).toEqual([4, 3]);
    expect(await col("SELECT id FROM emp ORDER BY id LIMIT ALL", "id")).toHaveLength(5);
    expect(await col("SELECT id FROM emp ORDER BY id FETCH FIRST 1 ROWS ONLY", "id")).toEqual([1]);
    await expectSqlState(db.query("SELECT id FROM emp LIMIT -1"), "2201W", "LIMIT must not be negative");
    await expectSqlState(db.query("SELECT id FROM emp OFFSET -1"), "2201X", "OFFSET must not be negative");
  });

  it("uses the primary key order instead of sorting", async () => {
    const plan = await col("EXPLAIN SELECT id FROM emp ORDER BY id DESC LIMIT 2", "QUERY PLAN");
    expect(plan).toEqual(["Limit", "  ->  Seq Scan Backward on emp"]);
    expect(await col("SELECT id FROM emp WHERE id < 4 ORDER BY id DESC LIMIT 2", "id")).toEqual([3, 2]);
  });

  it("removes duplicates with DISTINCT and DISTINCT ON", async () => {
    expect(await col("SELECT DISTINCT dept FROM emp ORDER BY dept", "dept")).toEqual(["eng", "ops", null]);
    expect(
      await db.query("SELECT DISTINCT ON (dept) dept, name FROM emp ORDER BY dept, salary DESC"),
    ).toEqual([
      { dept: "eng", name: "Ada" },
      { dept: "ops", name: "Cy" },
      { dept: null, name: "Di" },
    ]);
    await expectSqlState(
      db.query("SELECT DISTINCT dept FROM emp ORDER BY id"),
      "42P10",
      "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
    );
  });
});

describe("aggregates", () => {
  it("computes count/sum/avg/min/max with GROUP BY and HAVING", async () => {
    expect(
      await db.query(
        "SELECT dept, count(*) AS n, count(boss) AS nb, sum(salary) AS total, avg(salary) AS mean, min(name) AS first, max(hired) AS last FROM emp GROUP BY dept ORDER BY dept",
      ),
    ).toEqual([
      {
        dept: "eng",
        n: 3,
        nb: 2,
        total: "441.00",
        mean: "147.0000000000000000",
        first: "Ada",
        last: new Date("2021-06-01T00:00:00Z"),
      },
      {
        dept: "ops",
        n: 1,
        nb: 1,
        total: "90.00",
        mean: "90.0000000000000000",
        first: "Cy",
        last: new Date("2022-03-15T00:00:00Z"),
      },
      {
        dept: null,
        n: 1,
        nb: 1,
        total: "75.00",
        mean: "75.0000000000000000",
        first: "Di",
        last: new Date("2023-07-01T00:00:00Z"),
      },
    ]);
    expect(await db.query("SELECT dept, count(*) AS n FROM emp GROUP BY 1 HAVING count(*) > 1")).toEqual([
      { dept: "eng", n: 3 },
    ]);
    expect(
      await db.query(
        "SELECT count(*) AS n, sum(id) AS s, avg(id) AS a, max(id) AS m FROM emp WHERE id > 100",
      ),
    ).toEqual([{ n: 0, s: null, a: null, m: null }]);
    expect(
      await db.query(
        "SELECT count(DISTINCT salary) AS n, sum(DISTINCT salary) AS s, count(*) FILTER (WHERE boss = 1) AS f FROM emp",
      ),
    ).toEqual([{ n: 4, s: "485.50", f: 2 }]);
    expect(
      await db.query(
        "SELECT string_agg(name, ',') AS s, bool_and(id > 0) AS a, bool_or(id > 4) AS o FROM emp",
      ),
    ).toEqual([{ s: "Ada,Bob,Cy,Di,Eve", a: true, o: true }]);
    expect(
      await db.query("SELECT length(name) AS l, count(*) AS n FROM emp GROUP BY length(name) ORDER BY l"),
    ).toEqual([
      { l: 2, n: 2 },
      { l: 3, n: 3 },
    ]);
    expect(
      await db.query(
        "SELECT dept, max(salary) - min(salary) AS spread FROM emp GROUP BY dept HAVING dept IS NOT NULL ORDER BY spread DESC",
      ),
    ).toEqual([
      { dept: "eng", spread: "79.50" },
      { dept: "ops", spread: "0.00" },
    ]);
    expect(
      await db.query("SELECT sum(x) AS s, avg(x::float8) AS a FROM generate_series(1, 100) AS g(x)"),
    ).toEqual([{ s: 5050, a: 50.5 }]);
  });

  it("reports grouping errors", async () => {
    await expectSqlState(
      db.query("SELECT name, count(*) FROM emp"),
      "42803",
      'column "emp.name" must appear in the GROUP BY clause or be used in an aggregate function',
    );
    await expectSqlState(
      db.query("SELECT id FROM emp WHERE count(*) > 1"),
      "42803",
      "aggregate functions are not allowed in WHERE",
    );
    await expectSqlState(
      db.query("SELECT sum(count(*)) FROM emp"),
      "42803",
      "aggregate function calls cannot be nested",
    );
  });
});

describe("joins", () => {
  it("joins with INNER, LEFT, RIGHT, FULL, USING and comma", async () => {
    expect(
      await db.query("SELECT e.name, d.title FROM emp e JOIN dept d ON d.code = e.dept ORDER BY e.id"),
    ).toEqual([
      { name: "Ada", title: "Engineering" },
      { name: "Bob", title: "Engineering" },
      { name: "Cy", title: "Operations" },
      { name: "Eve", title: "Engineering" },
    ]);
    expect(
      await col(
        "SELECT e.name, d.title FROM emp e LEFT JOIN dept d ON d.code = e.dept ORDER BY e.id",
        "title",
      ),
    ).toEqual(["Engineering", "Engineering", "Operations", null, "Engineering"]);
    expect(
      await db.query(
        "SELECT d.code, count(e.id) AS n FROM emp e RIGHT JOIN dept d ON d.code = e.dept GROUP BY d.code ORDER BY d.code",
      ),
    ).toEqual([
      { code: "eng", n: 3 },
      { code: "hr", n: 0 },
      { code: "ops", n: 1 },
    ]);
    expect(
      await db.query(
        "SELECT e.name, d.code FROM emp e FULL JOIN dept d ON d.code = e.dept WHERE e.name IS NULL OR d.code IS NULL ORDER BY 1, 2",
      ),
    ).toEqual([
      { name: "Di", code: null },
      { name: null, code: "hr" },
    ]);
    expect(
      await col("SELECT e.name, b.name AS boss FROM emp e, emp b WHERE b.id = e.boss ORDER BY e.id", "boss"),
    ).toEqual(["Ada", "Ada", "Cy", "Bob"]);
    await db.exec("CREATE TABLE bonus (dept text, pct int)");
    await db.query("INSERT INTO bonus VALUES ('eng', 10), ('ops', 5)");
    expect(
      await db.query("SELECT dept, pct, title FROM bonus JOIN dept ON dept.code = bonus.dept ORDER BY pct"),
    ).toEqual([
      { dept: "ops", pct: 5, title: "Operations" },
      { dept: "eng", pct: 10, title: "Engineering" },
    ]);
    expect(
      await db.query(
        "SELECT dept, count(*) AS n FROM emp JOIN bonus USING (dept) GROUP BY dept ORDER BY dept",
      ),
    ).toEqual([
      { dept: "eng", n: 3 },
      { dept: "ops", n: 1 },
    ]);
    await expectSqlState(
      db.query("SELECT id FROM emp e JOIN emp b ON b.id = e.boss"),
      "42702",
      'column reference "id" is ambiguous',
    );
    await expectSqlState(
      db.query("SELECT x.id FROM emp"),
      "42P01",
      'missing FROM-clause entry for table "x"',
    );
  });

  it("looks up the inner side through an index when the join key allows it", async () => {
    const plan = await col(
      "EXPLAIN SELECT e.name, d.title FROM emp e JOIN dept d ON d.code = e.dept",
      "QUERY PLAN",
    );
    expect(plan).toContain("  ->  Index Scan using dept_pkey on dept d");
    const plan2 = await col(
      "EXPLAIN SELECT d.title, e.name FROM dept d JOIN emp e ON e.dept = d.code",
      "QUERY PLAN",
    );
    expect(plan2).toContain("  ->  Index Scan using emp_dept on emp e");
  });
});

describe("subqueries, set operations, VALUES and generate_series", () => {
  it("evaluates IN, EXISTS, scalar and FROM subqueries", async () => {
    expect(
      await col("SELECT name FROM emp WHERE dept IN (SELECT code FROM dept WHERE title LIKE 'O%')", "name"),
    ).toEqual(["Cy"]);
    expect(
      await col("SELECT name FROM emp WHERE salary > (SELECT avg(salary) FROM emp) ORDER BY id", "name"),
    ).toEqual(["Ada"]);
    expect(
      await col(
        "SELECT name FROM emp WHERE salary > (SELECT min(salary) FROM emp WHERE dept = 'ops') ORDER BY id",
        "name",
      ),
    ).toEqual(["Ada", "Bob", "Eve"]);
    expect(
      await col(
        "SELECT name FROM emp WHERE EXISTS (SELECT 1 FROM dept WHERE code = 'hr') AND id = 1",
        "name",
      ),
    ).toEqual(["Ada"]);
    expect(await col("SELECT name FROM emp WHERE salary >= ALL (SELECT salary FROM emp)", "name")).toEqual([
      "Ada",
    ]);
    expect(
      await db.query(
        "SELECT s.d, s.n FROM (SELECT dept AS d, count(*) AS n FROM emp GROUP BY dept) s WHERE s.n > 1",
      ),
    ).toEqual([{ d: "eng", n: 3 }]);
    expect(await db.query("SELECT (SELECT name FROM emp WHERE id = 2) AS b")).toEqual([{ b: "Bob" }]);
    expect(await db.query("SELECT (SELECT name FROM emp WHERE id = 99) AS b")).toEqual([{ b: null }]);
  });

  it("evaluates correlated subqueries per outer row, through an index when one fits", async () => {
    expect(
      await col(
        "SELECT code FROM dept d WHERE EXISTS (SELECT 1 FROM emp e WHERE e.dept = d.code) ORDER BY code",
        "code",
      ),
    ).toEqual(["eng", "ops"]);
    expect(
      await col("SELECT code FROM dept d WHERE NOT EXISTS (SELECT 1 FROM emp WHERE dept = d.code)", "code"),
    ).toEqual(["hr"]);
    expect(
      await db.query(
        "SELECT code, (SELECT count(*) FROM emp e WHERE e.dept = d.code) AS n FROM dept d ORDER BY code",
      ),
    ).toEqual([
      { code: "eng", n: 3 },
      { code: "hr", n: 0 },
      { code: "ops", n: 1 },
    ]);
    expect(
      await col(
        "SELECT name FROM emp e WHERE salary = (SELECT max(salary) FROM emp x WHERE x.dept = e.dept) ORDER BY id",
        "name",
      ),
    ).toEqual(["Ada", "Cy"]);
    expect(
      await col(
        "SELECT name FROM emp e WHERE id IN (SELECT boss FROM emp WHERE emp.salary < e.salary) ORDER BY id",
        "name",
      ),
    ).toEqual(["Ada", "Cy"]);
    const plan = await col(
      "EXPLAIN SELECT code FROM dept d WHERE EXISTS (SELECT 1 FROM emp e WHERE e.dept = d.code)",
      "QUERY PLAN",
    );
    expect(plan).toEqual([
      "Seq Scan on dept d",
      "  Filter: EXISTS(SubPlan 1)",
      "  ->  SubPlan 1",
      "        ->  Index Scan using emp_dept on emp e",
      "              Index Cond: (dept = d.code)",
    ]);
    await expectSqlState(
      db.query("SELECT (SELECT (SELECT e.id)) FROM emp e"),
      "0A000",
      /two or more query levels up/,
    );
    await expectSqlState(
      db.query("SELECT dept FROM emp e GROUP BY dept HAVING EXISTS (SELECT 1 FROM dept WHERE code = e.dept)"),
      "0A000",
    );
  });

  it("combines with UNION, UNION ALL, INTERSECT and EXCEPT", async () => {
    expect(await col("SELECT dept FROM emp UNION SELECT code FROM dept ORDER BY 1", "dept")).toEqual([
      "eng",
      "hr",
      "ops",
      null,
    ]);
    expect(
      await col(
        "SELECT id FROM emp WHERE id < 3 UNION ALL SELECT id FROM emp WHERE id < 2 ORDER BY id",
        "id",
      ),
    ).toEqual([1, 1, 2]);
    expect(await col("SELECT code FROM dept INTERSECT SELECT dept FROM emp ORDER BY code", "code")).toEqual([
      "eng",
      "ops",
    ]);
    expect(await col("SELECT code FROM dept EXCEPT SELECT dept FROM emp", "code")).toEqual(["hr"]);
    expect(await col("SELECT 1 AS x UNION SELECT 2.5 ORDER BY x DESC LIMIT 1", "x")).toEqual(["2.5"]);
    await expectSqlState(
      db.query("SELECT 1 UNION SELECT 1, 2"),
      "42601",
      "each UNION query must have the same number of columns",
    );
    await expectSqlState(
      db.query("SELECT 1 UNION SELECT 'a'::text"),
      "42804",
      "UNION types integer and text cannot be matched",
    );
  });

  it("selects from VALUES and generate_series", async () => {
    expect(await db.query("SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(n, s) WHERE n > 1")).toEqual([
      { n: 2, s: "b" },
    ]);
    expect(await db.query("VALUES (1, 'x'), (2, NULL) ORDER BY 1 DESC")).toEqual([
      { column1: 2, column2: null },
      { column1: 1, column2: "x" },
    ]);
    expect(await col("SELECT g FROM generate_series(10, 1, -3) AS g", "g")).toEqual([10, 7, 4, 1]);
    expect(await col("SELECT x * 2 AS y FROM generate_series(1, 3) x", "y")).toEqual([2, 4, 6]);
    await expectSqlState(
      db.query("SELECT * FROM generate_series(1, 5, 0)"),
      "22023",
      "step size cannot equal zero",
    );
  });
});

describe("EXPLAIN and access paths", () => {
  const plan = (sql: string) => col(`EXPLAIN ${sql}`, "QUERY PLAN");
  it("shows point lookups, ranges, index scans and full scans", async () => {
    expect(await plan("SELECT * FROM emp WHERE id = $1")).toEqual([
      "Index Scan using emp_pkey on emp",
      "  Index Cond: (id = $1)",
    ]);
    expect(await plan("SELECT * FROM emp WHERE id IN (1, 2)")).toEqual([
      "Index Scan using emp_pkey on emp",
      "  Index Cond: (id IN (1, 2))",
    ]);
    expect(await plan("SELECT * FROM emp WHERE id >= 2 AND id < 4")).toEqual([
      "Index Scan using emp_pkey on emp",
      "  Index Cond: (id >= 2 AND id < 4)",
    ]);
    expect(await plan("SELECT * FROM emp WHERE dept = 'ops' AND salary > 10")).toEqual([
      "Index Scan using emp_dept on emp",
      "  Index Cond: (dept = 'ops'::text)",
      "  Filter: (salary > (10)::numeric)",
    ]);
    expect(await plan("SELECT * FROM emp WHERE name = 'Ada'")).toEqual([
      "Seq Scan on emp",
      "  Filter: (name = 'Ada'::text)",
    ]);
    expect(await plan("SELECT dept, count(*) FROM emp GROUP BY dept ORDER BY 2")).toEqual([
      "Sort",
      "  Sort Key: count(*)",
      "  ->  HashAggregate",
      "        Group Key: dept",
      "        ->  Seq Scan on emp",
    ]);
    expect(await plan("UPDATE emp SET salary = 1 WHERE id = 1")).toEqual([
      "Update on emp",
      "  ->  Index Scan using emp_pkey on emp",
      "        Index Cond: (id = 1)",
    ]);
    await expectSqlState(
      db.query("EXPLAIN ANALYZE SELECT 1"),
      "0A000",
      "feature not supported: EXPLAIN ANALYZE",
    );
  });

  it("gives the same answers through every access path", async () => {
    for (const id of [0, 1, 3, 5, 6]) {
      const viaKey = await db.query("SELECT name FROM emp WHERE id = $1", [id]);
      const viaScan = await db.query("SELECT name FROM emp WHERE id + 0 = $1", [id]);
      expect(viaKey).toEqual(viaScan);
    }
    for (const [lo, hi] of [
      [0, 9],
      [2, 4],
      [4, 2],
      [5, 5],
    ] as const) {
      expect(await db.query("SELECT id FROM emp WHERE id > $1 AND id <= $2 ORDER BY id", [lo, hi])).toEqual(
        await db.query("SELECT id FROM emp WHERE id + 0 > $1 AND id + 0 <= $2 ORDER BY id", [lo, hi]),
      );
    }
    expect(await db.query("SELECT id FROM emp WHERE dept < 'f' ORDER BY id")).toEqual(
      await db.query("SELECT id FROM emp WHERE dept || '' < 'f' ORDER BY id"),
    );
    expect(await db.query("SELECT id FROM emp WHERE id = 1.5")).toEqual([]);
    expect(await db.query("SELECT id FROM emp WHERE id = 2.0")).toEqual([{ id: 2 }]);
    expect(await db.query("SELECT id FROM emp WHERE id = NULL")).toEqual([]);
  });
});
