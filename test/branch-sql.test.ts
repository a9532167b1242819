/**
 * Branches through the public API: db.branch / branches / dropBranch / discard / merge with SQL tables, indexes,
 * serial sequences and DDL; `?branch=` reopen on file://; conflicts named as (table, primary key).
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { open } from "../src/database.js";
import { MergeConflictError } from "../src/engine/branch.js";
import { expectSqlState } from "./sql-helpers.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempUrl(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "twill-branch-sql-"));
  dirs.push(dir);
  return `file://${dir}/db`;
}

describe("branches through open()", () => {
  it("forks tables and indexes, isolates both ways, and reopens with ?branch=", async () => {
    const url = await tempUrl();
    const db = await open(url);
    await db.exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, tag TEXT)`);
    await db.exec(`CREATE INDEX notes_tag ON notes (tag)`);
    for (let i = 1; i <= 50; i++)
      await db.query("INSERT INTO notes VALUES ($1, $2, $3)", [i, `n${i}`, `t${i % 5}`]);
    const preview = await db.branch("preview");
    expect(preview.branchName).toBe("preview");
    await preview.query("UPDATE notes SET body = 'changed' WHERE id = 1");
    await preview.query("DELETE FROM notes WHERE tag = 't2'");
    await preview.query("INSERT INTO notes VALUES (100, 'branch only', 't9')");
    await db.query("INSERT INTO notes VALUES (200, 'base only', 't9')");

    expect(await preview.query("SELECT body FROM notes WHERE id = 1")).toEqual([{ body: "changed" }]);
    expect(await db.query("SELECT body FROM notes WHERE id = 1")).toEqual([{ body: "n1" }]);
    expect(await preview.query("SELECT count(*)::int AS n FROM notes")).toEqual([{ n: 41 }]);
    expect(await db.query("SELECT count(*)::int AS n FROM notes")).toEqual([{ n: 51 }]);
    expect(await preview.query("SELECT id FROM notes WHERE tag = 't9' ORDER BY id")).toEqual([{ id: 100 }]);
    expect(await db.query("SELECT id FROM notes WHERE tag = 't9' ORDER BY id")).toEqual([{ id: 200 }]);

    const list = await db.branches();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ name: "preview", parent: "main" });
    expect(typeof list[0]!.forkLsn).toBe("number");
    expect(Number.isNaN(Date.parse(list[0]!.createdAt))).toBe(false);
    await db.close();
    expect(() => preview.prepare("SELECT 1")).toThrow(/closed/);

    const alone = await open(`${url}?branch=preview`);
    expect(alone.branchName).toBe("preview");
    expect(await alone.query("SELECT count(*)::int AS n FROM notes")).toEqual([{ n: 41 }]);
    expect(await alone.query("SELECT body FROM notes WHERE id = 100")).toEqual([{ body: "branch only" }]);
    await alone.close();
    const viaOption = await open(url, { branch: "preview" });
    expect(await viaOption.query("SELECT body FROM notes WHERE id = 1")).toEqual([{ body: "changed" }]);
    await viaOption.close();
    await expectSqlState(open(`${url}?branch=nope`), "58P01");
    await expectSqlState(open(`${url}?branch=bad%20name`), "22023");
    await expectSqlState(open(`${url}?branch=a`, { branch: "b" }), "22023");
    // Discarding a branch opened alone drops it and closes its storage.
    const last = await open(`${url}?branch=preview`);
    await last.discard();
    expect(() => last.prepare("SELECT 1")).toThrow(/closed/);
    const base = await open(url);
    expect(await base.branches()).toEqual([]);
    expect(await base.query("SELECT count(*)::int AS n FROM notes")).toEqual([{ n: 51 }]);
    await base.close();
  });

  it("merges rows with each policy and names conflicts as (table, primary key)", async () => {
    await using db = await open("memory://");
    await db.exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v INT)`);
    await db.exec(`INSERT INTO kv VALUES ('a', 1), ('b', 1), ('c', 1)`);
    const b = await db.branch("b");
    await b.exec(`UPDATE kv SET v = 2 WHERE k IN ('a', 'b'); INSERT INTO kv VALUES ('d', 2)`);
    await db.exec(`UPDATE kv SET v = 3 WHERE k = 'a'`);
    const stmt = db.prepare("SELECT v FROM kv WHERE k = $1");
    expect(await stmt.get(["a"])).toEqual({ v: 3 });

    const e = await expectSqlState(b.merge(), "40001");
    expect(e).toBeInstanceOf(MergeConflictError);
    expect((e as MergeConflictError).conflicts).toMatchObject([{ table: "kv", primaryKey: ["a"] }]);
    expect(e.message).toMatch(/kv \["a"\]/);
    expect(await db.query("SELECT k, v FROM kv ORDER BY k")).toEqual([
      { k: "a", v: 3 },
      { k: "b", v: 1 },
      { k: "c", v: 1 },
    ]);
    const r = await b.merge({ onConflict: "theirs" });
    expect(r.applied).toBe(2);
    expect(await db.query("SELECT k, v FROM kv ORDER BY k")).toEqual([
      { k: "a", v: 3 },
      { k: "b", v: 2 },
      { k: "c", v: 1 },
      { k: "d", v: 2 },
    ]);
    const b2 = await db.branch("b2");
    await b2.exec(`UPDATE kv SET v = 9 WHERE k = 'a'`);
    await db.exec(`UPDATE kv SET v = 8 WHERE k = 'a'`);
    await b2.merge({ onConflict: "ours" });
    expect(await stmt.get(["a"])).toEqual({ v: 9 }); // the prepared point read sees the merge
    await expectSqlState(b2.merge({ onConflict: "nope" } as never), "22023");
  });

  it("keeps secondary and unique indexes consistent with the rows whichever side wins", async () => {
    for (const policy of ["ours", "theirs"] as const) {
      await using db = await open("memory://");
      await db.exec(`CREATE TABLE t (id INT PRIMARY KEY, tag TEXT, note TEXT)`);
      await db.exec(`CREATE INDEX t_tag ON t (tag)`);
      await db.exec(`INSERT INTO t VALUES (1, 'fork', 'x'), (2, 'fork', 'x'), (3, 'fork', 'x')`);
      const b = await db.branch(`idx-${policy}`);
      await b.exec(
        `UPDATE t SET tag = 'branch' WHERE id = 1; DELETE FROM t WHERE id = 2; UPDATE t SET tag = 'branch' WHERE id = 3`,
      );
      await db.exec(
        `UPDATE t SET tag = 'parent' WHERE id = 1; UPDATE t SET tag = 'parent' WHERE id = 2; UPDATE t SET note = 'y' WHERE id = 3`,
      );
      const r = await b.merge({ onConflict: policy });
      expect(r.conflicts.map((c) => c.primaryKey)).toEqual([[1], [2], [3]]);
      const rows = await db.query<{ id: number; tag: string }>("SELECT id, tag FROM t ORDER BY id");
      expect(rows).toEqual(
        policy === "ours"
          ? [
              { id: 1, tag: "branch" },
              { id: 3, tag: "branch" },
            ]
          : [
              { id: 1, tag: "parent" },
              { id: 2, tag: "parent" },
              { id: 3, tag: "fork" },
            ],
      );
      // What the index finds (tag = $1) must match what a scan finds (tag || '' = $1) for every tag.
      for (const tag of ["fork", "branch", "parent"]) {
        const viaIndex = await db.query("SELECT id FROM t WHERE tag = $1 ORDER BY id", [tag]);
        const viaScan = await db.query("SELECT id FROM t WHERE tag || '' = $1 ORDER BY id", [tag]);
        expect(viaIndex, `${policy}: tag ${tag}`).toEqual(viaScan);
      }
    }
  });

  it("refuses a merge that would give two rows one unique value", async () => {
    await using db = await open("memory://");
    await db.exec(`CREATE TABLE users (id INT PRIMARY KEY, email TEXT UNIQUE)`);
    const b = await db.branch("u");
    await b.exec(`INSERT INTO users VALUES (1, 'a@x')`);
    await db.exec(`INSERT INTO users VALUES (2, 'a@x')`);
    const e = await expectSqlState(b.merge(), "40001");
    expect((e as MergeConflictError).conflicts).toMatchObject([{ table: "users", index: "users_email_key" }]);
    await expectSqlState(b.merge({ onConflict: "ours" }), "23505", /unique index "users_email_key"/);
    await expectSqlState(b.merge({ onConflict: "theirs" }), "23505");
    expect(await db.query("SELECT id, email FROM users")).toEqual([{ id: 2, email: "a@x" }]);
  });

  it("merges DDL into the parent's catalog and cached plans, and refuses DDL on both sides", async () => {
    await using db = await open("memory://");
    await db.exec(`CREATE TABLE t (id INT PRIMARY KEY)`);
    const probe = db.prepare("SELECT count(*)::int AS n FROM t");
    expect(await probe.get()).toEqual({ n: 0 });
    const b = await db.branch("ddl");
    await b.exec(`CREATE TABLE fresh (id SERIAL PRIMARY KEY, note TEXT)`);
    await b.exec(`INSERT INTO fresh (note) VALUES ('x'), ('y')`);
    await b.exec(`INSERT INTO t VALUES (1)`);
    await expectSqlState(db.query("SELECT * FROM fresh"), "42P01");
    await b.merge();
    expect(await db.query("SELECT id, note FROM fresh ORDER BY id")).toEqual([
      { id: 1, note: "x" },
      { id: 2, note: "y" },
    ]);
    expect(await probe.get()).toEqual({ n: 1 });
    // The parent's serial continues past every id the branch handed out.
    await db.exec(`INSERT INTO fresh (note) VALUES ('z')`);
    const ids = (await db.query<{ id: number }>("SELECT id FROM fresh ORDER BY id")).map((r) => r.id);
    expect(new Set(ids).size).toBe(3);

    const both = await db.branch("both");
    await both.exec(`CREATE TABLE on_branch (id INT PRIMARY KEY)`);
    await db.exec(`CREATE TABLE on_parent (id INT PRIMARY KEY)`);
    const e = await expectSqlState(both.merge({ onConflict: "ours" }), "0A000");
    expect(e.message).toMatch(/schema/);
  });

  it("serial ids never repeat across a merge, and sequences themselves never conflict", async () => {
    await using db = await open("memory://");
    await db.exec(`CREATE TABLE ev (id BIGSERIAL PRIMARY KEY, who TEXT)`);
    await db.exec(`INSERT INTO ev (who) VALUES ('base')`);
    const b = await db.branch("seq");
    for (let i = 0; i < 3; i++) await b.query("INSERT INTO ev (who) VALUES ('branch')");
    // Enough parent inserts to take a new block of the sequence after the fork: both sides changed its key.
    for (let i = 0; i < 140; i++) await db.query("INSERT INTO ev (who) VALUES ('parent')");
    const e = await expectSqlState(b.merge(), "40001");
    const conflicts = (e as MergeConflictError).conflicts;
    expect(conflicts.every((c) => c.table === "ev")).toBe(true); // rows only: the sequence merged by its maximum
    await b.merge({ onConflict: "theirs" });
    for (let i = 0; i < 300; i++) await db.query("INSERT INTO ev (who) VALUES ('after')");
    const rows = await db.query<{ id: number; who: string }>("SELECT id, who FROM ev ORDER BY id");
    expect(rows.filter((r) => r.who === "parent")).toHaveLength(140);
    expect(rows.filter((r) => r.who === "after")).toHaveLength(300);
    expect(rows.filter((r) => r.who === "branch").length).toBe(3 - conflicts.length);
    expect(new Set(rows.map((r) => r.id)).size).toBe(rows.length);
  });

  it("discards and drops branches, refusing a parent with children unless cascade", async () => {
    await using db = await open("memory://");
    await db.exec(`CREATE TABLE t (id INT PRIMARY KEY)`);
    const a = await db.branch("a");
    const aa = await a.branch("aa");
    await aa.exec(`INSERT INTO t VALUES (1)`);
    await expectSqlState(a.discard(), "2BP01");
    await aa.discard();
    expect((await db.branches()).map((x) => x.name)).toEqual(["a"]);
    const ab = await a.branch("ab");
    await ab.close();
    await a.close();
    expect(await db.dropBranch("a", { cascade: true })).toEqual(["ab", "a"]);
    expect(await db.branches()).toEqual([]);
    await expectSqlState(db.discard(), "22023");
    await expectSqlState(db.branch("a", { at: -3 }), "22023");
    await expectSqlState(db.dropBranch("a"), "42704");
  });
});
