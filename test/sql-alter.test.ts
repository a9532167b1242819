/** ALTER TABLE: ADD/DROP COLUMN, ADD PRIMARY KEY/UNIQUE/CHECK, ALTER COLUMN, RENAME; transactional and durable. */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { open } from "../src/database.js";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempUrl(): string {
  const d = mkdtempSync(join(tmpdir(), "twill-alter-"));
  dirs.push(d);
  return `file://${d}/db`;
}

describe("ADD COLUMN", () => {
  it("gives existing rows the default (evaluated once) and new rows the default too", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, a text)");
    await db.exec("INSERT INTO t VALUES (1, 'x'), (2, 'y')");
    await db.exec("ALTER TABLE t ADD COLUMN b int NOT NULL DEFAULT 7");
    await db.exec("ALTER TABLE t ADD COLUMN c text");
    await db.exec("INSERT INTO t (id, a) VALUES (3, 'z')");
    expect(await db.query("SELECT * FROM t ORDER BY id")).toEqual([
      { id: 1, a: "x", b: 7, c: null },
      { id: 2, a: "y", b: 7, c: null },
      { id: 3, a: "z", b: 7, c: null },
    ]);
    // The old rows are not rewritten, yet they filter, update and index by the default like any other value.
    expect(await db.query("SELECT id FROM t WHERE b = 7 ORDER BY id")).toEqual([
      { id: 1 },
      { id: 2 },
      { id: 3 },
    ]);
    await db.exec("CREATE INDEX t_b ON t (b)");
    expect(await db.query("SELECT count(*)::int AS n FROM t WHERE b = 7")).toEqual([{ n: 3 }]);
    await db.exec("UPDATE t SET c = 'u' WHERE id = 1");
    expect(await db.query("SELECT b, c FROM t WHERE id = 1")).toEqual([{ b: 7, c: "u" }]);
  });

  it("refuses NOT NULL without a default on a non-empty table, allows it on an empty one", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE e (id int PRIMARY KEY)");
    await db.exec("ALTER TABLE e ADD COLUMN x int NOT NULL");
    await expectSqlState(db.exec("INSERT INTO e (id) VALUES (1)"), "23502");
    await db.exec("CREATE TABLE t (id int PRIMARY KEY)");
    await db.exec("INSERT INTO t VALUES (1)");
    await expectSqlState(
      db.exec("ALTER TABLE t ADD COLUMN x int NOT NULL"),
      "23502",
      'column "x" of relation "t" contains null values',
    );
    await expectSqlState(
      db.exec("ALTER TABLE t ADD COLUMN id int"),
      "42701",
      'column "id" of relation "t" already exists',
    );
    await db.exec("ALTER TABLE t ADD COLUMN IF NOT EXISTS id text");
    await expectSqlState(
      db.exec("ALTER TABLE nope ADD COLUMN x int"),
      "42P01",
      'relation "nope" does not exist',
    );
    await db.exec("ALTER TABLE IF EXISTS nope ADD COLUMN x int");
    await expectSqlState(
      db.exec("ALTER TABLE t ADD COLUMN y int CHECK (y > 0) DEFAULT 0"),
      "23514",
      'check constraint "t_y_check" of relation "t" is violated by some row',
    );
    await expectSqlState(db.exec("ALTER TABLE t ADD COLUMN y int UNIQUE"), "0A000");
    expect(await db.query("SELECT * FROM t")).toEqual([{ id: 1 }]);
  });

  it("gives every existing row its own value for a serial or a volatile default", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (name text PRIMARY KEY)");
    await db.exec("INSERT INTO t VALUES ('a'), ('b'), ('c')");
    await db.exec("ALTER TABLE t ADD COLUMN n serial");
    await db.exec("ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid()");
    expect(await db.query("SELECT name, n FROM t ORDER BY name")).toEqual([
      { name: "a", n: 1 },
      { name: "b", n: 2 },
      { name: "c", n: 3 },
    ]);
    expect(await db.query("SELECT count(DISTINCT u)::int AS k FROM t")).toEqual([{ k: 3 }]);
    await db.exec("INSERT INTO t (name) VALUES ('d')");
    expect(await db.query("SELECT n FROM t WHERE name = 'd'")).toEqual([{ n: 4 }]);
  });
});

describe("DROP COLUMN", () => {
  it("hides the column, drops indexes and checks on it, and keeps other columns readable", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, a int CHECK (a > 0), b text UNIQUE, c int)");
    await db.exec("CREATE INDEX t_a ON t (a)");
    await db.exec("CREATE INDEX t_ac ON t (a, c)");
    await db.exec("CREATE INDEX t_c ON t (c)");
    await db.exec("INSERT INTO t VALUES (1, 5, 'x', 10), (2, 6, 'y', 20)");
    await db.exec("ALTER TABLE t DROP COLUMN a");
    expect(await db.query("SELECT * FROM t ORDER BY id")).toEqual([
      { id: 1, b: "x", c: 10 },
      { id: 2, b: "y", c: 20 },
    ]);
    await expectSqlState(db.query("SELECT a FROM t"), "42703");
    await expectSqlState(db.exec("DROP INDEX t_a"), "42704");
    await expectSqlState(db.exec("DROP INDEX t_ac"), "42704");
    // The CHECK went with the column; the index on c still serves lookups.
    await db.exec("INSERT INTO t VALUES (3, 'z', 30)");
    expect(await db.query("SELECT id FROM t WHERE c = 30")).toEqual([{ id: 3 }]);
    expect(
      (await db.query("EXPLAIN SELECT id FROM t WHERE c = 30")).map((r) => r["QUERY PLAN"]).join("\n"),
    ).toMatch(/t_c/);
    await db.exec("ALTER TABLE t DROP COLUMN b");
    await expectSqlState(db.exec("DROP INDEX t_b_key"), "42704");
    // A new column of the old name is a new column: no old value resurfaces.
    await db.exec("ALTER TABLE t ADD COLUMN a int");
    expect(await db.query("SELECT * FROM t ORDER BY id")).toEqual([
      { id: 1, c: 10, a: null },
      { id: 2, c: 20, a: null },
      { id: 3, c: 30, a: null },
    ]);
    await expectSqlState(
      db.exec("ALTER TABLE t DROP COLUMN nope"),
      "42703",
      'column "nope" of relation "t" does not exist',
    );
    await db.exec("ALTER TABLE t DROP COLUMN IF EXISTS nope");
  });

  it("dropping a primary-key column re-keys the table by a hidden rowid, as PostgreSQL drops the key", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)");
    await db.exec("CREATE INDEX t_v ON t (v)");
    await db.exec("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'a')");
    await db.exec("ALTER TABLE t DROP COLUMN id");
    expect(await db.query("SELECT v FROM t ORDER BY v")).toEqual([{ v: "a" }, { v: "a" }, { v: "b" }]);
    expect(await db.query("SELECT count(*)::int AS n FROM t WHERE v = 'a'")).toEqual([{ n: 2 }]);
    await db.exec("INSERT INTO t VALUES ('c'), ('c')");
    expect(await db.query("SELECT count(*)::int AS n FROM t")).toEqual([{ n: 5 }]);
    await expectSqlState(db.exec("ALTER TABLE t ADD PRIMARY KEY (v)"), "23505");
  });
});

describe("ADD PRIMARY KEY / UNIQUE / CHECK", () => {
  it("validates existing rows and re-keys them", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (a int, b text)");
    await db.exec("CREATE INDEX t_b ON t (b)");
    await db.exec("INSERT INTO t VALUES (2, 'x'), (1, 'y'), (NULL, 'z')");
    await expectSqlState(
      db.exec("ALTER TABLE t ADD PRIMARY KEY (a)"),
      "23502",
      'column "a" of relation "t" contains null values',
    );
    await db.exec("UPDATE t SET a = 1 WHERE b = 'z'");
    const e = await expectSqlState(
      db.exec("ALTER TABLE t ADD PRIMARY KEY (a)"),
      "23505",
      'could not create unique index "t_pkey"',
    );
    expect(e.detail).toBe("Key (a)=(1) is duplicated.");
    await db.exec("UPDATE t SET a = 3 WHERE b = 'z'");
    await db.exec("ALTER TABLE t ADD PRIMARY KEY (a)");
    // Now keyed by a: a point lookup by the key, the secondary index rebuilt, and duplicates refused.
    expect(
      (await db.query("EXPLAIN SELECT b FROM t WHERE a = 2")).map((r) => r["QUERY PLAN"]).join("\n"),
    ).toMatch(/t_pkey/);
    expect(await db.query("SELECT b FROM t WHERE a = 2")).toEqual([{ b: "x" }]);
    expect(await db.query("SELECT a FROM t WHERE b = 'z'")).toEqual([{ a: 3 }]);
    expect(await db.query("SELECT * FROM t ORDER BY a")).toEqual([
      { a: 1, b: "y" },
      { a: 2, b: "x" },
      { a: 3, b: "z" },
    ]);
    await expectSqlState(db.exec("INSERT INTO t VALUES (1, 'q')"), "23505");
    await expectSqlState(db.exec("UPDATE t SET a = NULL WHERE a = 1"), "23502");
    await expectSqlState(
      db.exec("ALTER TABLE t ADD PRIMARY KEY (b)"),
      "42P16",
      'multiple primary keys for table "t" are not allowed',
    );
    await expectSqlState(
      db.exec("ALTER TABLE t ALTER COLUMN a DROP NOT NULL"),
      "42P16",
      'column "a" is in a primary key',
    );
  });

  it("adds UNIQUE and CHECK constraints after validating the rows", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, v int)");
    await db.exec("INSERT INTO t VALUES (1, 1), (2, 1)");
    await expectSqlState(
      db.exec("ALTER TABLE t ADD UNIQUE (v)"),
      "23505",
      'could not create unique index "t_v_key"',
    );
    await expectSqlState(
      db.exec("ALTER TABLE t ADD CONSTRAINT v_big CHECK (v > 1)"),
      "23514",
      'check constraint "v_big" of relation "t" is violated by some row',
    );
    await db.exec("UPDATE t SET v = 2 WHERE id = 2");
    await db.exec("ALTER TABLE t ADD UNIQUE (v)");
    await db.exec("ALTER TABLE t ADD CONSTRAINT v_pos CHECK (v > 0)");
    await expectSqlState(db.exec("INSERT INTO t VALUES (3, 2)"), "23505");
    await expectSqlState(db.exec("INSERT INTO t VALUES (3, -1)"), "23514");
  });

  it("ALTER COLUMN SET/DROP DEFAULT and SET/DROP NOT NULL", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, v int)");
    await db.exec("INSERT INTO t VALUES (1, NULL)");
    await db.exec("ALTER TABLE t ALTER COLUMN v SET DEFAULT 9");
    await db.exec("INSERT INTO t (id) VALUES (2)");
    await expectSqlState(
      db.exec("ALTER TABLE t ALTER COLUMN v SET NOT NULL"),
      "23502",
      'column "v" of relation "t" contains null values',
    );
    await db.exec("UPDATE t SET v = 0 WHERE id = 1");
    await db.exec("ALTER TABLE t ALTER COLUMN v SET NOT NULL, ALTER COLUMN v DROP DEFAULT");
    await expectSqlState(db.exec("INSERT INTO t (id) VALUES (3)"), "23502");
    await db.exec("ALTER TABLE t ALTER COLUMN v DROP NOT NULL");
    await db.exec("INSERT INTO t (id) VALUES (3)");
    expect(await db.query("SELECT * FROM t ORDER BY id")).toEqual([
      { id: 1, v: 0 },
      { id: 2, v: 9 },
      { id: 3, v: null },
    ]);
  });
});

describe("RENAME", () => {
  it("renames tables and columns, CHECK constraints follow the column", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, v int CHECK (v > 0))");
    await db.exec("INSERT INTO t VALUES (1, 1)");
    await db.exec("ALTER TABLE t RENAME COLUMN v TO w");
    await db.exec("ALTER TABLE t RENAME TO u");
    await expectSqlState(db.query("SELECT * FROM t"), "42P01");
    expect(await db.query("SELECT * FROM u")).toEqual([{ id: 1, w: 1 }]);
    await expectSqlState(db.exec("INSERT INTO u VALUES (2, 0)"), "23514");
    await db.exec("CREATE TABLE t (x int)");
    await expectSqlState(db.exec("ALTER TABLE t RENAME TO u"), "42P07", 'relation "u" already exists');
    await expectSqlState(
      db.exec("ALTER TABLE u RENAME COLUMN w TO id"),
      "42701",
      'column "id" of relation "u" already exists',
    );
  });
});

describe("the catalog is transactional and durable", () => {
  it("a rolled-back ALTER leaves no trace; a committed one survives reopen", async () => {
    const url = tempUrl();
    {
      await using db = await open(url);
      await db.exec("CREATE TABLE t (id int PRIMARY KEY, a int, b int)");
      await db.exec("INSERT INTO t VALUES (1, 10, 100), (2, 20, 200)");
      await db.exec("BEGIN");
      await db.exec("ALTER TABLE t ADD COLUMN c text DEFAULT 'new'");
      await db.exec("ALTER TABLE t DROP COLUMN a");
      expect(await db.query("SELECT * FROM t WHERE id = 1")).toEqual([{ id: 1, b: 100, c: "new" }]);
      await db.exec("ROLLBACK");
      expect(await db.query("SELECT * FROM t WHERE id = 1")).toEqual([{ id: 1, a: 10, b: 100 }]);
      await expect(
        db.transaction(async (tx) => {
          await tx.exec("ALTER TABLE t RENAME TO gone");
          throw new Error("changed my mind");
        }),
      ).rejects.toThrow("changed my mind");
      expect(await db.query("SELECT count(*)::int AS n FROM t")).toEqual([{ n: 2 }]);
      await db.exec("ALTER TABLE t ADD COLUMN c text DEFAULT 'old'");
      await db.exec("ALTER TABLE t DROP COLUMN a");
      await db.exec("INSERT INTO t VALUES (3, 300, 'mine')");
    }
    {
      await using db = await open(url);
      expect(await db.query("SELECT * FROM t ORDER BY id")).toEqual([
        { id: 1, b: 100, c: "old" },
        { id: 2, b: 200, c: "old" },
        { id: 3, b: 300, c: "mine" },
      ]);
      await db.exec("ALTER TABLE t RENAME COLUMN c TO note");
      await db.exec("CREATE TABLE k (v text)");
      await db.exec("INSERT INTO k VALUES ('p'), ('q')");
      await db.exec("ALTER TABLE k ADD PRIMARY KEY (v)");
    }
    {
      await using db = await open(url);
      expect(await db.query("SELECT note FROM t WHERE id = 2")).toEqual([{ note: "old" }]);
      expect(await db.query("SELECT v FROM k WHERE v = 'q'")).toEqual([{ v: "q" }]);
      await expectSqlState(db.exec("INSERT INTO k VALUES ('p')"), "23505");
    }
  });
});

describe("ALTER COLUMN … TYPE", () => {
  it("rewrites rows with the cast (or USING), rebuilding keys and indexes", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, a text, n numeric(6,2) DEFAULT 1.5)");
    await db.exec("CREATE INDEX t_a ON t (a)");
    await db.exec("INSERT INTO t VALUES (1, '5', 2.25), (2, '12', 3)");
    const e = await expectSqlState(
      db.exec("ALTER TABLE t ALTER COLUMN a TYPE int"),
      "42804",
      'column "a" cannot be cast automatically to type integer',
    );
    expect(e.hint).toBe('You might need to specify "USING a::integer".');
    await db.exec("ALTER TABLE t ALTER COLUMN a TYPE int USING a::int");
    await db.exec("ALTER TABLE t ALTER COLUMN n TYPE int");
    expect(await db.query("SELECT id FROM t WHERE a = 12")).toEqual([{ id: 2 }]);
    await db.exec("ALTER TABLE t ALTER COLUMN id TYPE text");
    expect(await db.query("SELECT a, n FROM t WHERE id = '1'")).toEqual([{ a: 5, n: 2 }]);
    await expectSqlState(db.exec("INSERT INTO t VALUES ('1', 0)"), "23505");
    await expectSqlState(db.exec("ALTER TABLE t ALTER COLUMN a TYPE varchar(1)"), "22001");
    await db.exec("INSERT INTO t (id, a) VALUES ('3', 7)");
    expect(await db.query("SELECT * FROM t ORDER BY id")).toEqual([
      { id: "1", a: 5, n: 2 },
      { id: "2", a: 12, n: 3 },
      { id: "3", a: 7, n: 2 },
    ]);
  });
});

describe("ALTER COLUMN … TYPE and the column's default (found by the ALTER differential test)", () => {
  it("refuses a default that has no assignment cast, and ignores DEFAULT NULL, as PostgreSQL does", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, a text DEFAULT 'd', b text DEFAULT NULL)");
    await db.exec("INSERT INTO t VALUES (1, 'x', '5')");
    // PostgreSQL converts the default before the rows: 42804, not the rows' 22P02.
    await expectSqlState(
      db.exec("ALTER TABLE t ALTER COLUMN a TYPE int USING a::int"),
      "42804",
      'default for column "a" cannot be cast automatically to type integer',
    );
    // DEFAULT NULL is no default in PostgreSQL, so nothing stands in the way of the USING cast.
    await db.exec("ALTER TABLE t ALTER COLUMN b TYPE int USING b::int");
    expect(await db.query("SELECT b FROM t")).toEqual([{ b: 5 }]);
    expect(
      await db.query(
        "SELECT column_name, column_default FROM information_schema.columns ORDER BY ordinal_position",
      ),
    ).toEqual([
      { column_name: "id", column_default: null },
      { column_name: "a", column_default: "'d'::text" },
      { column_name: "b", column_default: null },
    ]);
  });
});
