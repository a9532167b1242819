/** DDL: CREATE/DROP TABLE and INDEX, constraints, index backfill and maintenance. */

import { describe, expect, it } from "vitest";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

describe("CREATE TABLE", () => {
  it("creates, refuses duplicates, and honours IF NOT EXISTS", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int)");
    await expectSqlState(db.exec("CREATE TABLE t (a int)"), "42P07", 'relation "t" already exists');
    expect((await db.execute("CREATE TABLE IF NOT EXISTS t (b int)")).command).toBe("CREATE TABLE");
    expect(await db.execute("SELECT * FROM t")).toMatchObject({ columns: [{ name: "a" }] });
    await expectSqlState(
      db.exec("CREATE TABLE u (a int, a text)"),
      "42701",
      'column "a" specified more than once',
    );
    await expectSqlState(
      db.exec("CREATE TABLE u (a int PRIMARY KEY, b int PRIMARY KEY)"),
      "42P16",
      'multiple primary keys for table "u" are not allowed',
    );
    await expectSqlState(
      db.exec("CREATE TABLE u (a nosuchtype)"),
      "42704",
      'type "nosuchtype" does not exist',
    );
    await expectSqlState(
      db.exec("CREATE TABLE u (a int REFERENCES t(a))"),
      "0A000",
      "feature not supported: foreign keys (REFERENCES)",
    );
    await expectSqlState(
      db.exec("CREATE TABLE u (a int[][] PRIMARY KEY)"),
      "0A000",
      "feature not supported: primary keys and indexes on array columns",
    );
    await expectSqlState(
      db.exec("CREATE TABLE u (a interval)"),
      "0A000",
      "feature not supported: type interval",
    );
    await expectSqlState(
      db.exec("CREATE TEMP TABLE u (a int)"),
      "0A000",
      "feature not supported: TEMPORARY tables",
    );
    await expectSqlState(
      db.exec("CREATE TABLE u (a int DEFAULT b)"),
      "0A000",
      "cannot use column reference in DEFAULT expression",
    );
    await expectSqlState(db.exec("CREATE TABLE u (a int DEFAULT 'x')"), "22P02");
    await expectSqlState(db.exec("CREATE TABLE u (a int, PRIMARY KEY (b))"), "42703");
  });

  it("supports composite primary keys", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int, b text, v int, PRIMARY KEY (a, b))");
    await db.query("INSERT INTO t VALUES (1, 'x', 1), (1, 'y', 2), (2, 'x', 3)");
    await expectSqlState(
      db.query("INSERT INTO t VALUES (1, 'x', 9)"),
      "23505",
      'duplicate key value violates unique constraint "t_pkey"',
    );
    const e = await expectSqlState(db.query("INSERT INTO t VALUES (1, 'y', 9)"), "23505");
    expect(e.detail).toBe("Key (a, b)=(1, y) already exists.");
    await expectSqlState(
      db.query("INSERT INTO t VALUES (NULL, 'z', 9)"),
      "23502",
      'null value in column "a" of relation "t" violates not-null constraint',
    );
    expect(await db.query("SELECT v FROM t WHERE a = 1 AND b = 'y'")).toEqual([{ v: 2 }]);
    expect(await db.query("SELECT v FROM t WHERE a = 1 ORDER BY b DESC")).toEqual([{ v: 2 }, { v: 1 }]);
    expect((await db.query("EXPLAIN SELECT v FROM t WHERE a = 1 AND b = 'y'"))[0]).toEqual({
      "QUERY PLAN": "Index Scan using t_pkey on t",
    });
  });

  it("gives tables without a primary key a hidden rowid", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int, b text)");
    await db.query("INSERT INTO t VALUES (1, 'x'), (1, 'x'), (2, NULL)");
    expect(await db.query("SELECT * FROM t")).toEqual([
      { a: 1, b: "x" },
      { a: 1, b: "x" },
      { a: 2, b: null },
    ]);
    expect((await db.execute("UPDATE t SET b = 'y' WHERE a = 1")).rowCount).toBe(2);
    expect((await db.execute("DELETE FROM t WHERE b = 'y'")).rowCount).toBe(2);
    expect(await db.query("SELECT * FROM t")).toEqual([{ a: 2, b: null }]);
    await expectSqlState(db.query("SELECT rowid FROM t"), "42703");
  });

  it("enforces NOT NULL, UNIQUE, CHECK and DEFAULT", async () => {
    await using db = await memoryDb();
    await db.exec(`CREATE TABLE t (
      id serial PRIMARY KEY,
      email text NOT NULL UNIQUE,
      age int CHECK (age >= 0),
      kind text DEFAULT 'user',
      lo int, hi int,
      CONSTRAINT range_ok CHECK (lo <= hi),
      UNIQUE (lo, hi))`);
    await db.query("INSERT INTO t (email, age, lo, hi) VALUES ('a', 1, 1, 2)");
    expect(await db.query("SELECT id, kind FROM t")).toEqual([{ id: 1, kind: "user" }]);
    const e1 = await expectSqlState(
      db.query("INSERT INTO t (email) VALUES ('a')"),
      "23505",
      'duplicate key value violates unique constraint "t_email_key"',
    );
    expect(e1.detail).toBe("Key (email)=(a) already exists.");
    const e2 = await expectSqlState(
      db.query("INSERT INTO t (email, age) VALUES ('b', -1)"),
      "23514",
      'new row for relation "t" violates check constraint "t_age_check"',
    );
    expect(e2.detail).toBe("Failing row contains (3, b, -1, user, null, null)."); // id 2 went to the failed insert, as in PostgreSQL
    await expectSqlState(
      db.query("INSERT INTO t (email, lo, hi) VALUES ('c', 3, 2)"),
      "23514",
      'new row for relation "t" violates check constraint "range_ok"',
    );
    await expectSqlState(
      db.query("INSERT INTO t (email, lo, hi) VALUES ('c', 1, 2)"),
      "23505",
      'duplicate key value violates unique constraint "t_lo_hi_key"',
    );
    // NULLs never collide in a unique constraint; a NULL check passes.
    await db.query("INSERT INTO t (email, lo, hi) VALUES ('d', NULL, 2), ('e', NULL, 2)");
    await expectSqlState(
      db.query("INSERT INTO t (age) VALUES (1)"),
      "23502",
      'null value in column "email" of relation "t" violates not-null constraint',
    );
    await expectSqlState(db.query("UPDATE t SET age = -5"), "23514");
    await expectSqlState(db.query("UPDATE t SET email = 'a' WHERE email = 'd'"), "23505");
    await db.query("UPDATE t SET email = 'a2' WHERE email = 'a'");
    await db.query("UPDATE t SET email = 'a' WHERE email = 'd'"); // the old value is free again
    expect(
      (await db.query<{ email: string }>("SELECT email FROM t ORDER BY email")).map((r) => r.email),
    ).toEqual(["a", "a2", "e"]);
  });

  it("supports identity columns", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)");
    await db.query("INSERT INTO t (v) VALUES ('a'), ('b')");
    expect(await db.query("SELECT * FROM t ORDER BY id")).toEqual([
      { id: 1, v: "a" },
      { id: 2, v: "b" },
    ]);
    await expectSqlState(
      db.query("INSERT INTO t (id, v) VALUES (10, 'c')"),
      "428C9",
      'cannot insert a non-DEFAULT value into column "id"',
    );
    await db.query("INSERT INTO t (id, v) OVERRIDING SYSTEM VALUE VALUES (10, 'c')");
    await expectSqlState(db.query("UPDATE t SET id = 11"), "428C9");
    await db.exec("CREATE TABLE u (id bigint GENERATED BY DEFAULT AS IDENTITY, v text)");
    await db.query("INSERT INTO u (id, v) VALUES (100, 'x')");
    await db.query("INSERT INTO u (v) VALUES ('y')");
    expect(await db.query("SELECT id FROM u ORDER BY id")).toEqual([{ id: 1 }, { id: 100 }]);
  });

  it("reports the end of a serial sequence", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id smallserial, v int)");
    await db.query("INSERT INTO t (v) SELECT x FROM generate_series(1, 32767) AS g(x)");
    await expectSqlState(
      db.query("INSERT INTO t (v) VALUES (0)"),
      "2200H",
      'nextval: reached maximum value of sequence "t_id_seq" (32767)',
    );
  });
});

describe("indexes", () => {
  it("backfills, maintains and uses a secondary index", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, cat text, n int)");
    await db.query("INSERT INTO t SELECT x, 'c' || (x % 3), x FROM generate_series(1, 30) AS g(x)");
    await db.exec("CREATE INDEX t_cat ON t (cat, n)");
    const plan = (
      await db.query<{ "QUERY PLAN": string }>("EXPLAIN SELECT id FROM t WHERE cat = 'c1' AND n > 20")
    ).map((r) => r["QUERY PLAN"]);
    expect(plan[0]).toBe("Index Scan using t_cat on t");
    expect(plan[1]).toBe("  Index Cond: (cat = 'c1'::text AND n > 20)");
    expect(await db.query("SELECT id FROM t WHERE cat = 'c1' AND n > 20 ORDER BY id")).toEqual([
      { id: 22 },
      { id: 25 },
      { id: 28 },
    ]);
    await db.query("UPDATE t SET cat = 'c9' WHERE id = 22");
    await db.query("DELETE FROM t WHERE id = 25");
    await db.query("UPDATE t SET id = 100 WHERE id = 28");
    expect(await db.query("SELECT id FROM t WHERE cat = 'c1' AND n > 20 ORDER BY id")).toEqual([{ id: 100 }]);
    expect(await db.query("SELECT id FROM t WHERE cat = 'c9'")).toEqual([{ id: 22 }]);
    // Every index entry points at a live row, and every row has its entry.
    expect(await db.query("SELECT count(*) AS n FROM t WHERE cat >= ''")).toEqual([{ n: 29 }]);
  });

  it("creates unique indexes, refusing existing duplicates", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, email text)");
    await db.query("INSERT INTO t VALUES (1, 'a'), (2, 'a'), (3, NULL), (4, NULL)");
    const e = await expectSqlState(
      db.exec("CREATE UNIQUE INDEX t_email ON t (email)"),
      "23505",
      'could not create unique index "t_email"',
    );
    expect(e.detail).toBe("Key (email)=(a) is duplicated.");
    await db.query("UPDATE t SET email = 'b' WHERE id = 2");
    await db.exec("CREATE UNIQUE INDEX t_email ON t (email)");
    await expectSqlState(
      db.query("INSERT INTO t VALUES (5, 'b')"),
      "23505",
      'duplicate key value violates unique constraint "t_email"',
    );
    expect(await db.query("SELECT id FROM t WHERE email = 'b'")).toEqual([{ id: 2 }]);
    expect((await db.query("EXPLAIN SELECT id FROM t WHERE email = 'b'"))[0]).toEqual({
      "QUERY PLAN": "Index Scan using t_email on t",
    });
    expect(await db.query("SELECT id FROM t WHERE email IS NULL ORDER BY id")).toEqual([
      { id: 3 },
      { id: 4 },
    ]);
  });

  it("handles IF NOT EXISTS, generated names and DROP INDEX", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int UNIQUE, b int)");
    await db.exec("CREATE INDEX ON t (b)");
    await db.exec("CREATE INDEX IF NOT EXISTS t_b_idx ON t (a)");
    await expectSqlState(
      db.exec("CREATE INDEX t_b_idx ON t (a)"),
      "42P07",
      'relation "t_b_idx" already exists',
    );
    await expectSqlState(db.exec("CREATE INDEX x ON nope (a)"), "42P01");
    await expectSqlState(db.exec("CREATE INDEX x ON t (nope)"), "42703");
    await expectSqlState(
      db.exec("CREATE INDEX x ON t ((a + 1))"),
      "0A000",
      "feature not supported: indexes on expressions",
    );
    await expectSqlState(db.exec("CREATE INDEX x ON t (a) WHERE a > 0"), "0A000");
    await expectSqlState(db.exec("CREATE INDEX x ON t USING gin (a)"), "0A000");
    await expectSqlState(
      db.exec("DROP INDEX t_a_key"),
      "2BP01",
      "cannot drop index t_a_key because constraint t_a_key on table t requires it",
    );
    await db.exec("DROP INDEX t_b_idx");
    await expectSqlState(db.exec("DROP INDEX t_b_idx"), "42704", 'index "t_b_idx" does not exist');
    await db.exec("DROP INDEX IF EXISTS t_b_idx");
    await db.query("INSERT INTO t VALUES (1, 1)");
    expect(await db.query("SELECT a FROM t WHERE b = 1")).toEqual([{ a: 1 }]);
  });
});

describe("DROP TABLE", () => {
  it("drops tables and their data", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int PRIMARY KEY, b text UNIQUE); INSERT INTO t VALUES (1, 'x')");
    await db.exec("DROP TABLE t");
    await expectSqlState(db.query("SELECT * FROM t"), "42P01", 'relation "t" does not exist');
    await expectSqlState(db.exec("DROP TABLE t"), "42P01", 'table "t" does not exist');
    await db.exec("DROP TABLE IF EXISTS t");
    await db.exec("CREATE TABLE t (a int PRIMARY KEY, b text UNIQUE)");
    await db.query("INSERT INTO t VALUES (1, 'x')"); // nothing of the old table is left
    expect(await db.query("SELECT * FROM t")).toEqual([{ a: 1, b: "x" }]);
  });

  it("truncates", async () => {
    await using db = await memoryDb();
    await db.exec(
      "CREATE TABLE t (a int PRIMARY KEY, b text UNIQUE); INSERT INTO t VALUES (1, 'x'), (2, 'y')",
    );
    await db.exec("TRUNCATE t");
    expect(await db.query("SELECT * FROM t")).toEqual([]);
    await db.query("INSERT INTO t VALUES (1, 'x')");
  });
});

describe("unsupported statements", () => {
  it("say exactly what is unsupported", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int)");
    await expectSqlState(
      db.exec("ALTER TABLE t DROP CONSTRAINT t_a_check"),
      "0A000",
      "feature not supported: ALTER TABLE … DROP CONSTRAINT",
    );
    await expectSqlState(db.exec("CREATE VIEW v AS SELECT 1"), "0A000", "feature not supported: views");
    await expectSqlState(
      db.query(
        "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x) CYCLE n SET c USING p SELECT * FROM x",
      ),
      "0A000",
      "feature not supported: SEARCH/CYCLE in WITH",
    );
    await expectSqlState(
      db.query("SELECT a, row_number() OVER () FROM t"),
      "0A000",
      "feature not supported: window functions",
    );
    expect(await db.query("SELECT * FROM t WHERE a = ANY ($1)", [[1, 2]])).toEqual([]);
    await expectSqlState(db.query("SELECT * FROM t FOR UPDATE"), "0A000");
    await expectSqlState(db.query("SET work_mem = '1MB'"), "0A000");
    expect((await db.execute("SET TIME ZONE 'UTC'")).command).toBe("SET");
    expect(await db.query("SHOW server_version")).toEqual([{ server_version: "18.0" }]);
  });
});

describe("key size limit", () => {
  it("refuses an index entry over the key limit with 54000 and finds nothing for such a key", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (k text PRIMARY KEY, v text UNIQUE)");
    const big = "x".repeat(20_000);
    await expectSqlState(
      db.query("INSERT INTO t VALUES ($1, 'a')", [big]),
      "54000",
      /exceeds maximum 16384 for index "t_pkey"/,
    );
    await expectSqlState(db.query("INSERT INTO t VALUES ('a', $1)", [big]), "54000", /for index "t_v_key"/);
    expect(await db.query("SELECT * FROM t WHERE k = $1", [big])).toEqual([]);
    expect(await db.query("SELECT * FROM t WHERE v = $1", [big])).toEqual([]);
    await db.query("INSERT INTO t VALUES ('a', 'b')");
    expect(await db.query("SELECT k FROM t WHERE k = 'a'")).toEqual([{ k: "a" }]);
  });
});
