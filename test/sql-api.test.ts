/** The public API: open(), query/execute/exec/prepare, placeholders, transaction(), close(), options. */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { open } from "../src/database.js";
import { rewritePlaceholders } from "../src/engine/sql/parser.js";
import { TwillError } from "../src/errors.js";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("open()", () => {
  it("runs the issue's example end to end", async () => {
    await using db = await open("memory://");
    await db.exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`);
    await db.query("INSERT INTO notes VALUES (?, ?)", [1, "hello"]);
    expect(await db.query("SELECT id, body FROM notes")).toEqual([{ id: 1, body: "hello" }]);
    const stmt = db.prepare("SELECT body FROM notes WHERE id = $1");
    expect(await stmt.get([1])).toEqual({ body: "hello" });
    expect(await stmt.get([2])).toBeUndefined();
    await db.transaction(async (tx) => {
      await tx.query("INSERT INTO notes VALUES ($1, $2)", [2, "world"]);
    });
    expect(await stmt.all([2])).toEqual([{ body: "world" }]);
    await db.close();
    await db.close(); // idempotent
  });

  it("rejects bad options and URLs with what is accepted", async () => {
    const e = await expectSqlState(open("memory://", { int8: "string" as never }), "22023");
    expect(e.message).toMatch(/int8/);
    expect(e.hint).toMatch(/accepted options: int8, statementCacheSize, storage, engine/);
    const e2 = await expectSqlState(open("memory://", { nope: 1 } as never), "22023");
    expect(e2.message).toMatch(/nope/);
    const e3 = await expectSqlState(open("ftp://x"), "22023");
    expect(e3.message).toMatch(/unknown scheme/);
    expect(e3.hint).toMatch(/memory:\/\//);
    await expectSqlState(open("memory://", { engine: { memtableBytesMax: 1 } }), "22023", /memtableBytesMax/);
  });

  it("refuses use after close with 55000", async () => {
    const db = await memoryDb();
    await db.close();
    await expectSqlState(db.query("SELECT 1"), "55000", "the database is closed");
    expect(() => db.prepare("SELECT 1")).toThrow(TwillError);
  });

  it("keeps data across close and reopen on file://", async () => {
    const dir = await mkdtemp(join(tmpdir(), "twill-sql-"));
    dirs.push(dir);
    const url = `file://${dir}/db`;
    {
      await using db = await open(url);
      await db.exec(`
        CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL UNIQUE, n numeric(8,2) DEFAULT 1.5);
        CREATE INDEX t_n ON t (n);
        INSERT INTO t (name) VALUES ('a'), ('b');
        CREATE TABLE plain (x int);
        INSERT INTO plain VALUES (1), (1), (2);
      `);
    }
    {
      await using db = await open(url);
      expect(await db.query("SELECT id, name, n FROM t ORDER BY id")).toEqual([
        { id: 1, name: "a", n: "1.50" },
        { id: 2, name: "b", n: "1.50" },
      ]);
      // The sequence continues (possibly after a gap, as PostgreSQL's cache leaves one).
      const [row] = await db.query<{ id: number }>("INSERT INTO t (name) VALUES ('c') RETURNING id");
      expect(row!.id).toBeGreaterThan(2);
      await expectSqlState(db.query("INSERT INTO t (name) VALUES ('a')"), "23505");
      expect(await db.query("SELECT name FROM t WHERE n = 1.5 ORDER BY name")).toHaveLength(3);
      expect(await db.query("SELECT x, count(*) AS c FROM plain GROUP BY x ORDER BY x")).toEqual([
        { x: 1, c: 2 },
        { x: 2, c: 1 },
      ]);
      await db.exec("DROP TABLE plain");
    }
    {
      await using db = await open(url);
      await expectSqlState(db.query("SELECT * FROM plain"), "42P01");
      expect(await db.query("SELECT count(*) AS c FROM t")).toEqual([{ c: 3 }]);
    }
  });

  it("keeps data across reopen of a named memory:// store", async () => {
    const url = `memory://sql-reopen-${Date.now()}`;
    {
      await using db = await open(url);
      await db.exec("CREATE TABLE k (a int PRIMARY KEY); INSERT INTO k VALUES (7)");
    }
    await using db = await open(url);
    expect(await db.query("SELECT a FROM k")).toEqual([{ a: 7 }]);
  });
});

describe("statements", () => {
  it("execute() gives rows, column names and type OIDs, row count and command", async () => {
    await using db = await memoryDb();
    await db.exec(
      "CREATE TABLE t (a int4, b int8, c text, d bool, e numeric, f timestamptz, g jsonb, h bytea, i float8, j uuid)",
    );
    const ins = await db.execute("INSERT INTO t (a) VALUES (1), (2)");
    expect(ins).toMatchObject({ command: "INSERT", rowCount: 2, rows: [], columns: [] });
    const r = await db.execute("SELECT * FROM t WHERE a = 1");
    expect(r.command).toBe("SELECT");
    expect(r.rowCount).toBe(1);
    expect(r.columns.map((c) => [c.name, c.typeOid])).toEqual([
      ["a", 23],
      ["b", 20],
      ["c", 25],
      ["d", 16],
      ["e", 1700],
      ["f", 1184],
      ["g", 3802],
      ["h", 17],
      ["i", 701],
      ["j", 2950],
    ]);
    expect((await db.execute("UPDATE t SET c = 'x'")).rowCount).toBe(2);
    expect((await db.execute("DELETE FROM t WHERE a = 2")).rowCount).toBe(1);
    expect((await db.execute("CREATE TABLE u (x int)")).command).toBe("CREATE TABLE");
  });

  it("names columns as PostgreSQL does", async () => {
    await using db = await memoryDb();
    const r = await db.execute(
      "SELECT 1, 1 + 1 AS two, 'a'::text, count(*), coalesce(null, 1), CASE WHEN true THEN 1 END, now() IS NULL, (SELECT 5 AS five)",
    );
    expect(r.columns.map((c) => c.name)).toEqual([
      "?column?",
      "two",
      "text",
      "count",
      "coalesce",
      "case",
      "?column?",
      "five",
    ]);
  });

  it("accepts ? and $n placeholders and rewrites ? only outside literals and comments", async () => {
    await using db = await memoryDb();
    expect(
      await db.query('SELECT ? AS a, \'?\' AS b, "?" AS c -- ?\n FROM (SELECT 1 AS "?") s /* ? */', ["x"]),
    ).toEqual([{ a: "x", b: "?", c: 1 }]);
    expect(await db.query("SELECT $2::int + $1::int AS s", [1, 2])).toEqual([{ s: 3 }]);
    expect(rewritePlaceholders("SELECT ?, E'\\'?', $$?$$, ?").text).toBe("SELECT $1, E'\\'?', $$?$$, $2");
    expect(rewritePlaceholders("SELECT '{}'::jsonb ?| $1").text).toBe("SELECT '{}'::jsonb ?| $1");
    await expectSqlState(
      db.query("SELECT $1::int", []),
      "08P01",
      'bind message supplies 0 parameters, but prepared statement "" requires 1',
    );
    await expectSqlState(db.query("SELECT $2::int", [1, 2]), "42P18");
  });

  it("caches parses and plans by SQL text", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY)");
    const sql = "SELECT id FROM t WHERE id = $1";
    await db.query(sql, [1]);
    const engine = (db as unknown as { sqlEngine: { entry(s: string): { plans: unknown[] } } }).sqlEngine;
    const entry = engine.entry(sql);
    const plan = entry.plans[0];
    await db.query(sql, [2]);
    expect(engine.entry(sql)).toBe(entry);
    expect(entry.plans[0]).toBe(plan);
    // DDL makes a new catalog: the statement is re-planned (not re-parsed) next time.
    await db.exec("CREATE TABLE u (x int)");
    await db.query(sql, [3]);
    expect(engine.entry(sql)).toBe(entry);
    expect(entry.plans[0]).not.toBe(plan);
  });

  it("re-plans a prepared statement when the table changes under it", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    await db.query("INSERT INTO t VALUES (1, 'a')");
    const stmt = db.prepare("SELECT * FROM t WHERE id = $1");
    expect(await stmt.get([1])).toEqual({ id: 1, v: "a" });
    await db.exec("DROP TABLE t; CREATE TABLE t (id int PRIMARY KEY, w int)");
    await db.query("INSERT INTO t VALUES (1, 9)");
    expect(await stmt.get([1])).toEqual({ id: 1, w: 9 });
    await db.exec("DROP TABLE t");
    await expectSqlState(stmt.get([1]), "42P01");
  });

  it("refuses several statements in query() and runs them in exec()", async () => {
    await using db = await memoryDb();
    await expectSqlState(
      db.query("SELECT 1; SELECT 2"),
      "42601",
      "cannot insert multiple commands into a prepared statement",
    );
    const results = await db.exec("CREATE TABLE t (a int); INSERT INTO t VALUES (1); SELECT a FROM t");
    expect(results.map((r) => r.command)).toEqual(["CREATE TABLE", "INSERT", "SELECT"]);
    expect(results[2]!.rows).toEqual([{ a: 1 }]);
    expect(await db.query("")).toEqual([]);
  });

  it("runs a multi-statement exec() as one implicit transaction", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int PRIMARY KEY)");
    await expectSqlState(db.exec("INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)"), "23505");
    expect(await db.query("SELECT * FROM t")).toEqual([]);
    await expectSqlState(db.exec("CREATE TABLE u (a int); SELECT * FROM nope"), "42P01");
    await expectSqlState(db.query("SELECT * FROM u"), "42P01");
  });

  it("maps int8 to number or bigint by option", async () => {
    await using db = await memoryDb();
    expect(await db.query("SELECT 5::int8 AS a, count(*) AS n")).toEqual([{ a: 5, n: 1 }]);
    await expectSqlState(
      db.query("SELECT 9007199254740993::int8 AS a"),
      "22003",
      /does not fit a JavaScript number/,
    );
    await using db2 = await memoryDb({ int8: "bigint" });
    expect(await db2.query("SELECT 9007199254740993::int8 AS a, 5::int8 AS b")).toEqual([
      { a: 9007199254740993n, b: 5n },
    ]);
    expect(await db2.query("SELECT $1::int8 AS a", [2n ** 62n])).toEqual([{ a: 2n ** 62n }]);
  });

  it("wraps every error in a TwillError with a SQLSTATE", async () => {
    await using db = await memoryDb();
    const e = await expectSqlState(db.query("SELEC 1"), "42601", 'syntax error at or near "SELEC"');
    expect((e as unknown as { position: number }).position).toBe(1);
    const e2 = await expectSqlState(db.query("SELECT ? FRM t", [1]), "42601");
    expect((e2 as unknown as { position: number }).position).toBe(14); // "t", mapped back over the ? → $1 rewrite
    await expectSqlState(db.query("SELECT 1", {} as never), "22023", /must be an array/);
  });
});

describe("transactions", () => {
  it("commits on resolve and rolls back on throw", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int PRIMARY KEY)");
    const r = await db.transaction(async (tx) => {
      await tx.query("INSERT INTO t VALUES (1)");
      return (await tx.query("SELECT count(*) AS n FROM t"))[0];
    });
    expect(r).toEqual({ n: 1 });
    await expect(
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO t VALUES (2)");
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await db.query("SELECT a FROM t")).toEqual([{ a: 1 }]);
  });

  it("isolates a transaction's writes until commit (snapshot isolation)", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int PRIMARY KEY, v int)");
    await db.query("INSERT INTO t VALUES (1, 0)");
    await db.transaction(async (tx) => {
      await tx.query("UPDATE t SET v = 1 WHERE a = 1");
      expect(await tx.query("SELECT v FROM t WHERE a = 1")).toEqual([{ v: 1 }]);
      expect(await db.query("SELECT v FROM t WHERE a = 1")).toEqual([{ v: 0 }]);
      await db.query("INSERT INTO t VALUES (2, 0)");
      expect(await tx.query("SELECT count(*) AS n FROM t")).toEqual([{ n: 1 }]); // its snapshot predates that
    });
    expect(await db.query("SELECT v FROM t WHERE a = 1")).toEqual([{ v: 1 }]);
  });

  it("reports a write-write conflict as 40001 and does not retry", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int PRIMARY KEY, v int)");
    await db.query("INSERT INTO t VALUES (1, 0)");
    let attempts = 0;
    const e = await expectSqlState(
      db.transaction(async (tx) => {
        attempts++;
        await tx.query("UPDATE t SET v = v + 1 WHERE a = 1");
        await db.query("UPDATE t SET v = v + 10 WHERE a = 1"); // commits first
      }),
      "40001",
    );
    expect(e.code).toBe("SERIALIZATION_FAILURE");
    expect(attempts).toBe(1);
    expect(await db.query("SELECT v FROM t")).toEqual([{ v: 10 }]);
  });

  it("turns a race on the same unique value into 40001, never a duplicate", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, email text UNIQUE)");
    const e = await expectSqlState(
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO t VALUES (1, 'x@y')");
        await db.query("INSERT INTO t VALUES (2, 'x@y')");
      }),
      "40001",
    );
    expect(e).toBeInstanceOf(TwillError);
    expect(await db.query("SELECT id FROM t")).toEqual([{ id: 2 }]);
  });

  it("supports BEGIN / COMMIT / ROLLBACK through query and exec", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int)");
    expect((await db.execute("BEGIN")).command).toBe("BEGIN");
    expect(db.inTransaction).toBe(true);
    await db.query("INSERT INTO t VALUES (1)");
    expect((await db.execute("ROLLBACK")).command).toBe("ROLLBACK");
    expect(await db.query("SELECT * FROM t")).toEqual([]);
    await db.exec("BEGIN; INSERT INTO t VALUES (2); COMMIT");
    expect(await db.query("SELECT * FROM t")).toEqual([{ a: 2 }]);
    await db.exec("START TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    await db.exec("INSERT INTO t VALUES (3); END");
    expect(await db.query("SELECT count(*) AS n FROM t")).toEqual([{ n: 2 }]);
    // COMMIT with nothing open is a no-op, as in PostgreSQL (which warns).
    expect((await db.execute("COMMIT")).command).toBe("COMMIT");
    await expectSqlState(db.query("BEGIN ISOLATION LEVEL SERIALIZABLE"), "0A000", /SERIALIZABLE/);
    await expectSqlState(
      db.query("SAVEPOINT s"),
      "25P01",
      "SAVEPOINT can only be used in transaction blocks",
    );
  });

  it("makes DDL transactional", async () => {
    await using db = await memoryDb();
    await db.exec("BEGIN; CREATE TABLE t (a int); INSERT INTO t VALUES (1)");
    expect(await db.query("SELECT a FROM t")).toEqual([{ a: 1 }]);
    await db.exec("ROLLBACK");
    await expectSqlState(db.query("SELECT a FROM t"), "42P01");
    await db.transaction(async (tx) => {
      await tx.exec("CREATE TABLE t (a int PRIMARY KEY)");
      await tx.query("INSERT INTO t VALUES (5)");
      await expectSqlState(db.query("SELECT a FROM t"), "42P01"); // not visible outside before commit
    });
    expect(await db.query("SELECT a FROM t")).toEqual([{ a: 5 }]);
  });

  it("puts a transaction in the failed state after an error (25P02) until ROLLBACK", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int PRIMARY KEY)");
    await db.exec("BEGIN");
    await db.query("INSERT INTO t VALUES (1)");
    await expectSqlState(db.query("INSERT INTO t VALUES (1)"), "23505");
    await expectSqlState(
      db.query("SELECT 1"),
      "25P02",
      "current transaction is aborted, commands ignored until end of transaction block",
    );
    expect((await db.execute("COMMIT")).command).toBe("ROLLBACK");
    expect(await db.query("SELECT * FROM t")).toEqual([]);
  });

  it("rolls back a transaction() whose statement failed even if the callback caught the error", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int PRIMARY KEY)");
    await expectSqlState(
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO t VALUES (1)");
        await tx.query("INSERT INTO t VALUES (1)").catch(() => undefined);
      }),
      "25P02",
    );
    expect(await db.query("SELECT * FROM t")).toEqual([]);
  });

  it("refuses COMMIT inside transaction() and use of the scope after it ended", async () => {
    await using db = await memoryDb();
    let saved: { query(sql: string): Promise<unknown> } | undefined;
    await expectSqlState(
      db.transaction(async (tx) => {
        saved = tx;
        await tx.query("COMMIT");
      }),
      "25000",
    );
    await expectSqlState(saved!.query("SELECT 1"), "25000");
  });

  it("serialises concurrent statements inside one transaction", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int PRIMARY KEY)");
    await db.transaction(async (tx) => {
      await Promise.all(Array.from({ length: 20 }, (_v, i) => tx.query("INSERT INTO t VALUES ($1)", [i])));
    });
    expect(await db.query("SELECT count(*) AS n FROM t")).toEqual([{ n: 20 }]);
  });
});

describe("errors inside a transaction block", () => {
  it("abort it even when they happen while parsing or planning", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int)");
    await db.exec("BEGIN");
    await db.query("INSERT INTO t VALUES (1)");
    await expectSqlState(db.query("SELEC 1"), "42601");
    await expectSqlState(db.query("INSERT INTO t VALUES (2)"), "25P02");
    await db.exec("ROLLBACK");
    await expectSqlState(
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO t VALUES (3)");
        await tx.query("SELECT * FROM nope").catch(() => undefined);
      }),
      "25P02",
    );
    expect(await db.query("SELECT * FROM t")).toEqual([]);
  });
});
