/**
 * HNSW indexes through SQL: pgvector's recall bar, EXPLAIN, consistency with the exact answer under inserts,
 * updates, deletes and rollbacks, snapshot isolation of the node cache, filtered search, and a reopen that reads
 * only what a search touches.
 */

import { describe, expect, it } from "vitest";
import { Database, open } from "../src/database.js";
import { Engine } from "../src/engine/engine.js";
import { encodeKey } from "../src/engine/lsm/keycodec.js";
import { SqlEngine } from "../src/engine/sql/session.js";
import { CountingStorage } from "../src/storage/counting.js";
import { openStorage } from "../src/storage/open.js";
import { prng } from "../src/util/prng.js";
import { deferred } from "./helpers/deferred.js";
import { expectSqlState, memoryDb } from "./sql-helpers.js";

type Vec = Float32Array;

function randomVectors(n: number, dim: number, seed: number): Vec[] {
  const r = prng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, () => r()));
}

function l2(a: Vec, b: Vec): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
}

function cos(a: Vec, b: Vec): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! ** 2;
    bb += b[i]! ** 2;
  }
  return 1 - ab / Math.sqrt(aa * bb);
}

function exact(rows: Map<number, Vec>, q: Vec, k: number, d = l2, keep?: (id: number) => boolean): number[] {
  return [...rows]
    .filter(([id]) => !keep || keep(id))
    .map(([id, v]) => ({ id, d: d(v, q) }))
    .sort((a, b) => a.d - b.d || a.id - b.id)
    .slice(0, k)
    .map((x) => x.id);
}

async function load(
  db: Database,
  table: string,
  vectors: Vec[],
  extra?: (i: number) => number,
): Promise<void> {
  for (let i = 0; i < vectors.length; i += 500) {
    await db.transaction(async (tx) => {
      for (let j = i; j < Math.min(vectors.length, i + 500); j++) {
        if (extra) await tx.query(`INSERT INTO ${table} VALUES ($1, $2, $3)`, [j, extra(j), vectors[j]]);
        else await tx.query(`INSERT INTO ${table} VALUES ($1, $2)`, [j, vectors[j]]);
      }
    });
  }
}

async function ids(db: Database, sql: string, params: unknown[]): Promise<number[]> {
  return (await db.query<{ id: number }>(sql, params)).map((r) => r.id);
}

/** Counts the engine's point reads of keys that start with `prefix` (an index's [indexId] or a table's rows). */
function countReads(db: Database, prefix: Uint8Array): { n: number } {
  const counter = { n: 0 };
  const engine = (db as unknown as { engine: Engine }).engine;
  const matches = (k: Uint8Array) => prefix.every((b, i) => k[i] === b);
  const get = engine.get.bind(engine);
  const getSync = engine.getSync.bind(engine);
  engine.get = (key, lsn) => {
    if (matches(key)) counter.n++;
    return get(key, lsn);
  };
  engine.getSync = (key, lsn) => {
    if (matches(key)) counter.n++;
    return getSync(key, lsn);
  };
  return counter;
}

describe("HNSW through SQL", () => {
  it("meets pgvector's bar: recall >= 0.99 for top-20 on 10k random vectors with default parameters", async () => {
    await using db = await memoryDb();
    for (const [name, ops, d] of [
      ["l2t", "vector_l2_ops", l2],
      ["cost", "vector_cosine_ops", cos],
    ] as const) {
      await db.exec(`CREATE TABLE ${name} (id int PRIMARY KEY, emb vector(3))`);
      await db.exec(`CREATE INDEX ON ${name} USING hnsw (emb ${ops})`);
      const data = randomVectors(10_000, 3, 11);
      await load(db, name, data);
      const all = new Map(data.map((v, i) => [i, v]));
      const op = ops === "vector_l2_ops" ? "<->" : "<=>";
      let found = 0;
      const queries = randomVectors(50, 3, 12);
      for (const q of queries) {
        const got = await ids(db, `SELECT id FROM ${name} ORDER BY emb ${op} $1 LIMIT 20`, [q]);
        const truth = new Set(exact(all, q, 20, d));
        for (const id of got) if (truth.has(id)) found++;
      }
      expect(found / (queries.length * 20)).toBeGreaterThanOrEqual(0.99);
    }
  }, 120_000);

  it("EXPLAIN shows the index for the matching operator class only; without one the query is exact", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, tenant int, emb vector(2))");
    await db.query("INSERT INTO t VALUES (1, 1, '[0,0]'), (2, 1, '[1,1]'), (3, 2, '[2,2]'), (4, 2, NULL)");
    const plan = async (sql: string) =>
      (await db.query(`EXPLAIN ${sql}`)).map((r) => Object.values(r)[0]).join("\n");
    expect(await plan("SELECT id FROM t ORDER BY emb <-> '[1,1]' LIMIT 2")).toContain("Sort");
    expect(await ids(db, "SELECT id FROM t ORDER BY emb <-> '[2,2]' LIMIT 4", [])).toEqual([3, 2, 1, 4]);
    await db.exec("CREATE INDEX t_emb ON t USING hnsw (emb vector_l2_ops) WITH (m = 4, ef_construction = 8)");
    expect(await plan("SELECT id FROM t ORDER BY emb <-> $1 LIMIT 2")).toBe(
      "Limit\n  ->  Index Scan using t_emb on t\n        Order By: (emb <-> $1)",
    );
    expect(await plan("SELECT id FROM t WHERE tenant = 1 ORDER BY emb <-> $1 LIMIT 2")).toContain(
      "Filter: (tenant = 1)",
    );
    // another operator, DESC, or no LIMIT: not the index
    expect(await plan("SELECT id FROM t ORDER BY emb <=> '[1,1]' LIMIT 2")).toContain("Sort");
    expect(await plan("SELECT id FROM t ORDER BY emb <-> '[1,1]' DESC LIMIT 2")).toContain("Sort");
    expect(await plan("SELECT id FROM t ORDER BY emb <-> '[1,1]'")).toContain("Sort");
    // the index never returns NULL vectors (as pgvector's); OFFSET still applies
    expect(await ids(db, "SELECT id FROM t ORDER BY emb <-> '[2,2]' LIMIT 4", [])).toEqual([3, 2, 1]);
    expect(await ids(db, "SELECT id FROM t ORDER BY emb <-> '[2,2]' LIMIT 2 OFFSET 1", [])).toEqual([2, 1]);
    expect(await ids(db, "SELECT id FROM t WHERE tenant = 1 ORDER BY emb <-> '[2,2]' LIMIT 4", [])).toEqual([
      2, 1,
    ]);
    await expectSqlState(db.query("SELECT id FROM t ORDER BY emb <-> '[1,1,1]' LIMIT 2"), "22000");
  });

  it("text keys, two operator classes on one column, LIMIT $n, DROP INDEX back to exact", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE notes (key text PRIMARY KEY, emb vector(2))");
    await db.exec("CREATE INDEX notes_l2 ON notes USING hnsw (emb vector_l2_ops)");
    await db.exec("CREATE INDEX notes_ip ON notes USING hnsw (emb vector_ip_ops)");
    await db.query("INSERT INTO notes VALUES ('a', '[1,0]'), ('b', '[0,2]'), ('ü-long key', '[3,3]')");
    await db.query("UPDATE notes SET emb = '[5,5]' WHERE key = 'a'");
    const keys = async (sql: string, params: unknown[]) =>
      (await db.query<{ key: string }>(sql, params)).map((r) => r.key);
    expect(await keys("SELECT key FROM notes ORDER BY emb <-> $1 LIMIT $2", ["[0,1.9]", 2])).toEqual([
      "b",
      "ü-long key",
    ]);
    expect(await keys("SELECT key FROM notes ORDER BY emb <#> $1 LIMIT $2", ["[1,1]", 3])).toEqual([
      "a",
      "ü-long key",
      "b",
    ]);
    expect(await keys("SELECT key FROM notes ORDER BY emb <-> $1 LIMIT 0", ["[0,0]"])).toEqual([]);
    const plan = async () =>
      (await db.query("EXPLAIN SELECT key FROM notes ORDER BY emb <#> '[1,1]' LIMIT 1"))
        .map((r) => Object.values(r)[0])
        .join("\n");
    expect(await plan()).toContain("notes_ip");
    await db.exec("DROP INDEX notes_ip");
    expect(await plan()).toContain("Sort");
    expect(await keys("SELECT key FROM notes ORDER BY emb <#> $1 LIMIT 3", ["[1,1]"])).toEqual([
      "a",
      "ü-long key",
      "b",
    ]);
  });

  it("an index scan returns exactly the columns asked for: unread ones are skipped, read ones are whole", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE docs (id int PRIMARY KEY, tag text, n int, emb vector(2))");
    await db.exec("CREATE INDEX docs_l2 ON docs USING hnsw (emb vector_l2_ops)");
    await db.query(
      "INSERT INTO docs VALUES (1, 'a', 10, '[1,0]'), (2, 'b', 20, '[0,2]'), (3, 'a', 30, '[3,3]'), (4, NULL, 40, '[0,0]')",
    );
    // The ORDER BY key is not in the select list: no extra column comes out.
    expect(await db.query("SELECT id FROM docs ORDER BY emb <-> $1 LIMIT 2", ["[0,1.9]"])).toEqual([
      { id: 2 },
      { id: 4 },
    ]);
    // Columns the scan's hits must decode: the vector itself, a distance over it, and ones the WHERE reads.
    const rows = await db.query<{ id: number; emb: Float32Array; d: number; n: number }>(
      "SELECT id, emb, emb <-> $1 AS d, n FROM docs WHERE tag = 'a' ORDER BY emb <-> $1 LIMIT 2",
      ["[1,0]"],
    );
    expect(rows.map((r) => [r.id, Array.from(r.emb), r.d, r.n])).toEqual([
      [1, [1, 0], 0, 10],
      [3, [3, 3], Math.sqrt(13), 30],
    ]);
    expect(await db.query("SELECT * FROM docs ORDER BY emb <-> $1 LIMIT 1", ["[3,3]"])).toEqual([
      { id: 3, tag: "a", n: 30, emb: Float32Array.from([3, 3]) },
    ]);
    // A key-restricted filter answered exactly reads the ordered column from the table access.
    await db.exec("CREATE INDEX docs_tag ON docs (tag)");
    expect(
      await db.query("SELECT n FROM docs WHERE tag = 'a' ORDER BY emb <-> $1 LIMIT 1 OFFSET 1", ["[1,0]"]),
    ).toEqual([{ n: 30 }]);
  });

  it("a cosine index scan orders the same for a query at any length, tiny or huge", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE docs (id int PRIMARY KEY, emb vector(8))");
    await db.exec("CREATE INDEX docs_cos ON docs USING hnsw (emb vector_cosine_ops)");
    const vectors = randomVectors(300, 8, 71).map((v) => v.map((x) => x - 0.5));
    await load(db, "docs", vectors);
    const rows = new Map(vectors.map((v, i) => [i, v] as const));
    for (const [qi, q] of randomVectors(5, 8, 72).entries()) {
      const unit = q.map((x) => x - 0.5);
      const want = exact(rows, unit, 5, cos);
      for (const scale of [1e-30, 1e-3, 1, 1.0005, 1e6]) {
        const got = await ids(db, "SELECT id FROM docs ORDER BY emb <=> $1 LIMIT 5", [
          unit.map((x) => x * scale),
        ]);
        expect(got, `query ${qi} scaled by ${scale}`).toEqual(want);
      }
    }
  });

  it("zero vectors are not indexed under cosine; bad CREATE INDEX and SET are refused", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, n int, emb vector(2), raw vector)");
    await db.query(
      "INSERT INTO t VALUES (1, 1, '[0,0]', NULL), (2, 1, '[1,0]', NULL), (3, 1, '[0,1]', NULL)",
    );
    await db.exec("CREATE INDEX ON t USING hnsw (emb vector_cosine_ops)");
    expect(await ids(db, "SELECT id FROM t ORDER BY emb <=> '[1,0.1]' LIMIT 5", [])).toEqual([2, 3]);
    await expectSqlState(
      db.exec("CREATE INDEX ON t USING hnsw (emb foo_ops)"),
      "42704",
      'operator class "foo_ops" does not exist for access method "hnsw"',
    );
    await expectSqlState(db.exec("CREATE INDEX ON t USING hnsw (emb)"), "42704");
    await expectSqlState(db.exec("CREATE INDEX ON t USING hnsw (n vector_l2_ops)"), "42804");
    await expectSqlState(db.exec("CREATE INDEX ON t USING hnsw (raw vector_l2_ops)"), "22000");
    await expectSqlState(db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops) WITH (m = 1)"), "22023");
    await expectSqlState(
      db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops) WITH (ef_construction = 2000)"),
      "22023",
    );
    await expectSqlState(db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops) WITH (foo = 1)"), "22023");
    await expectSqlState(db.exec("CREATE UNIQUE INDEX ON t USING hnsw (emb vector_l2_ops)"), "0A000");
    await expectSqlState(
      db.exec("SET hnsw.ef_search = 0"),
      "22023",
      '0 is outside the valid range for parameter "hnsw.ef_search" (1 .. 1000)',
    );
    await expectSqlState(db.exec("SET hnsw.ef_search = 1001"), "22023");
    await expectSqlState(db.exec("SET hnsw.ef_search = 'many'"), "22023");
    await db.exec("SET hnsw.ef_search = 200");
    expect(await db.query("SHOW hnsw.ef_search")).toEqual([{ "hnsw.ef_search": "200" }]);
    await db.exec("RESET hnsw.ef_search");
    expect(await db.query("SHOW hnsw.ef_search")).toEqual([{ "hnsw.ef_search": "40" }]);
  });

  it("stays equal to the exact answer through inserts, updates, deletes, rollbacks and TRUNCATE", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, emb vector(4))");
    await db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops)");
    await db.exec("SET hnsw.ef_search = 1000"); // a beam wider than the table: the search must be exact
    const r = prng(99);
    const vec = () => Float32Array.from({ length: 4 }, () => Math.round(r() * 1000) / 100);
    const model = new Map<number, Vec>();
    const check = async () => {
      for (let i = 0; i < 3; i++) {
        const q = vec();
        expect(await ids(db, "SELECT id FROM t ORDER BY emb <-> $1 LIMIT 7", [q])).toEqual(
          exact(model, q, 7),
        );
      }
    };
    for (let step = 0; step < 300; step++) {
      const id = Math.floor(r() * 60);
      const x = r();
      if (x < 0.4) {
        const v = vec();
        await db.query("INSERT INTO t VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET emb = excluded.emb", [
          id,
          v,
        ]);
        model.set(id, v);
      } else if (x < 0.55) {
        await db.query("DELETE FROM t WHERE id = $1", [id]);
        model.delete(id);
      } else if (x < 0.65) {
        await db.query("UPDATE t SET emb = NULL WHERE id = $1", [id]);
        model.delete(id);
      } else if (x < 0.75 && model.has(id) && !model.has(id + 100)) {
        await db.query("UPDATE t SET id = id + 100 WHERE id = $1", [id]);
        model.set(id + 100, model.get(id)!);
        model.delete(id);
      } else if (x < 0.85) {
        // a rolled-back transaction leaves no trace, also not in the node cache
        const fail = new Error("roll back");
        await expect(
          db.transaction(async (tx) => {
            await tx.query(
              "INSERT INTO t VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET emb = excluded.emb",
              [id, vec()],
            );
            await tx.query("DELETE FROM t WHERE id = $1", [(id + 1) % 60]);
            await tx.query("SELECT id FROM t ORDER BY emb <-> $1 LIMIT 3", [vec()]);
            throw fail;
          }),
        ).rejects.toBe(fail);
      } else {
        await db.query("UPDATE t SET emb = $2 WHERE id = $1", [id, vec()]).then(async () => {
          const [row] = await db.query<{ emb: Vec }>("SELECT emb FROM t WHERE id = $1", [id]);
          if (row?.emb) model.set(id, row.emb);
        });
      }
      if (step % 10 === 0) await check();
    }
    await check();
    await db.exec("TRUNCATE t");
    model.clear();
    await check();
    await db.query("INSERT INTO t VALUES (1, '[1,1,1,1]')");
    model.set(1, Float32Array.from([1, 1, 1, 1]));
    await check();
  }, 60_000);

  it("a snapshot sees its own uncommitted nodes and never another transaction's", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, emb vector(2))");
    await db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops)");
    await db.query("INSERT INTO t VALUES (1, '[0,0]'), (2, '[5,5]')");
    const q = [1, 1];
    await db.query("SELECT id FROM t ORDER BY emb <-> $1 LIMIT 5", [q]); // warms the node cache
    let inside: number[] = [];
    let outsideDuring: number[] = [];
    let oldSnapshot: number[] = [];
    const reader = db.transaction(async (tx) => {
      // this snapshot starts before the writer commits
      expect(
        await ids(tx as unknown as Database, "SELECT id FROM t ORDER BY emb <-> $1 LIMIT 5", [q]),
      ).toEqual([1, 2]);
      await writerDone;
      oldSnapshot = await ids(tx as unknown as Database, "SELECT id FROM t ORDER BY emb <-> $1 LIMIT 5", [q]);
    });
    let writerDone!: Promise<void>;
    writerDone = db.transaction(async (tx) => {
      await tx.query("INSERT INTO t VALUES (3, '[1,1]')");
      await tx.query("UPDATE t SET emb = '[9,9]' WHERE id = 1");
      inside = await ids(tx as unknown as Database, "SELECT id FROM t ORDER BY emb <-> $1 LIMIT 5", [q]);
      outsideDuring = await ids(db, "SELECT id FROM t ORDER BY emb <-> $1 LIMIT 5", [q]);
    });
    await writerDone;
    await reader;
    expect(inside).toEqual([3, 2, 1]);
    expect(outsideDuring).toEqual([1, 2]);
    expect(oldSnapshot).toEqual([1, 2]);
    expect(await ids(db, "SELECT id FROM t ORDER BY emb <-> $1 LIMIT 5", [q])).toEqual([3, 2, 1]);
  });

  it("warm searches take every node from the decoded cache; a snapshot older than the index's last write reads the engine", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, emb vector(8))");
    await db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops)");
    const data = randomVectors(600, 8, 41);
    await load(db, "t", data);
    // Count the engine reads of the index's records (keys [indexId, …]); row reads are [tableId, …].
    const inner = db as unknown as { sqlEngine: SqlEngine };
    const ix = inner.sqlEngine.catalog.table("t")!.def.indexes.find((i) => i.hnsw)!;
    const indexReads = countReads(db, encodeKey([ix.id]));
    const model = new Map(data.map((v, i) => [i, v]));
    const search = "SELECT id FROM t ORDER BY emb <-> $1 LIMIT 5";
    await db.exec("SET hnsw.ef_search = 1000");
    const queries = randomVectors(10, 8, 42);
    for (const q of queries) expect(await ids(db, search, [q])).toEqual(exact(model, q, 5));
    // Every node and the entry point were installed by the commits that wrote them.
    expect(indexReads.n).toBe(0);

    // A rolled-back writer leaves the cache as it was (its nodes lived only in its overlay).
    const fail = new Error("roll back");
    await expect(
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO t VALUES (1000, $1)", [queries[0]]);
        await tx.query("DELETE FROM t WHERE id = 3");
        throw fail;
      }),
    ).rejects.toBe(fail);
    indexReads.n = 0; // the writer's own read: its new row's node, which no cache can have
    for (const q of queries) expect(await ids(db, search, [q])).toEqual(exact(model, q, 5));
    expect(indexReads.n).toBe(0);

    // A reader whose snapshot predates a commit of the index reads the engine (the cache holds the newer
    // versions) and sees the old graph; a new snapshot is back on the cache and sees the commit.
    let before: number[] = [];
    let after: number[] = [];
    let reads = 0;
    const committed = deferred();
    const reader = db.transaction(async (tx) => {
      await tx.query("SELECT 1");
      await committed.promise;
      const r0 = indexReads.n;
      before = await ids(tx as unknown as Database, search, [queries[1]]);
      reads = indexReads.n - r0;
    });
    await db.query("INSERT INTO t VALUES (1001, $1)", [queries[1]]);
    await db.query("DELETE FROM t WHERE id = $1", [exact(model, queries[1]!, 1)[0]]);
    committed.resolve();
    await reader;
    expect(before).toEqual(exact(model, queries[1]!, 5));
    expect(reads).toBeGreaterThan(0);
    model.delete(exact(model, queries[1]!, 1)[0]!);
    model.set(1001, queries[1]!);
    const r1 = indexReads.n;
    after = await ids(db, search, [queries[1]]);
    expect(after).toEqual(exact(model, queries[1]!, 5));
    expect(after[0]).toBe(1001);
    expect(indexReads.n).toBe(r1);
  });

  it("warm searches run on the cache's flat copy only when the cache may answer, and give the exact answer", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, emb vector(8))");
    await db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops)");
    const data = randomVectors(600, 8, 51);
    await load(db, "t", data);
    const vectors = (db as unknown as { sqlEngine: SqlEngine }).sqlEngine.vectors;
    const ix = (db as unknown as { sqlEngine: SqlEngine }).sqlEngine.catalog
      .table("t")!
      .def.indexes.find((i) => i.hnsw)!;
    const flat = () => vectors.stats().residentSearches;
    const misses = () => vectors.stats().residentMisses;
    const model = new Map(data.map((v, i) => [i, v]));
    const search = "SELECT id FROM t ORDER BY emb <-> $1 LIMIT 5";
    await db.exec("SET hnsw.ef_search = 1000"); // the beam covers the graph: the answer is the exact one
    const queries = randomVectors(10, 8, 52);
    let s0 = flat();
    for (const q of queries) expect(await ids(db, search, [q])).toEqual(exact(model, q, 5));
    expect(flat() - s0).toBe(queries.length);

    // A transaction that wrote nodes of the index searches its own overlay through the store, never the copy.
    s0 = flat();
    await db
      .transaction(async (tx) => {
        await tx.query("INSERT INTO t VALUES (1000, $1)", [queries[0]]);
        await tx.query("DELETE FROM t WHERE id = $1", [exact(model, queries[1]!, 1)[0]]);
        const mine = new Map(model);
        mine.set(1000, queries[0]!);
        mine.delete(exact(model, queries[1]!, 1)[0]!);
        for (const q of queries.slice(0, 2))
          expect(await ids(tx as unknown as Database, search, [q])).toEqual(exact(mine, q, 5));
        throw new Error("roll back");
      })
      .catch(() => {});
    expect(flat()).toBe(s0);
    // The rollback left the copy as it was.
    for (const q of queries) expect(await ids(db, search, [q])).toEqual(exact(model, q, 5));

    // A commit's node versions reach the copy: a deleted row's node is marked, an updated row's is moved.
    const gone = exact(model, queries[2]!, 1)[0]!;
    await db.query("DELETE FROM t WHERE id = $1", [gone]);
    model.delete(gone);
    await db.query("UPDATE t SET emb = $1 WHERE id = 7", [queries[3]]);
    model.set(7, queries[3]!);
    s0 = flat();
    for (const q of queries) expect(await ids(db, search, [q])).toEqual(exact(model, q, 5));
    expect(flat() - s0).toBe(queries.length);
    expect((await ids(db, search, [queries[3]]))[0]).toBe(7);

    // A snapshot older than the index's last commit reads the engine, not the copy, and sees the old graph.
    const committed = deferred();
    let before: number[] = [];
    let used = -1;
    const old = new Map(model);
    const reader = db.transaction(async (tx) => {
      await tx.query("SELECT 1");
      await committed.promise;
      const f0 = flat();
      before = await ids(tx as unknown as Database, search, [queries[4]]);
      used = flat() - f0;
    });
    await db.query("INSERT INTO t VALUES (1001, $1)", [queries[4]]);
    committed.resolve();
    await reader;
    expect(before).toEqual(exact(old, queries[4]!, 5));
    expect(used).toBe(0);
    model.set(1001, queries[4]!);
    expect((await ids(db, search, [queries[4]]))[0]).toBe(1001);

    // A node missing from the copy (as after an eviction) makes the search fall back to the store: same answer.
    const copy = vectors.cache(ix.id).resident!;
    for (let h = 0; h < 600; h += 3) copy.clear(h);
    const m0 = misses();
    for (const q of queries) expect(await ids(db, search, [q])).toEqual(exact(model, q, 5));
    expect(misses() - m0).toBe(queries.length);

    // TRUNCATE empties the cache and with it the copy.
    await db.exec("TRUNCATE t");
    for (let h = 0; h < 700; h++) expect(copy.has(h)).toBe(false);
    expect(await ids(db, search, [queries[0]])).toEqual([]);
    await db.query("INSERT INTO t VALUES (1, $1), (2, $2)", [queries[0], queries[1]]);
    expect(await ids(db, search, [queries[0]])).toEqual([1, 2]);
  });

  it("a transaction older than a CREATE INDEX that takes a backfilled row out of the index fails with 40001", async () => {
    // Its graph read (at its snapshot) finds no node for the row. It deletes the node's record anyway, which the
    // backfill wrote after that snapshot: first-committer-wins, instead of a live node without its row (DELETE)
    // or a NULL vector the index still returns (UPDATE to NULL).
    for (const change of ["DELETE FROM t WHERE id = 2", "UPDATE t SET emb = NULL WHERE id = 2"]) {
      await using db = await memoryDb();
      await db.exec("CREATE TABLE t (id int PRIMARY KEY, emb vector(2))");
      await db.query("INSERT INTO t VALUES (1, '[0,0]'), (2, '[1,1]'), (3, '[2,1.5]')");
      const created = deferred();
      const older = db.transaction(async (tx) => {
        await tx.query("SELECT 1");
        await created.promise;
        await tx.query(change);
      });
      await db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops)");
      created.resolve();
      await expectSqlState(older, "40001");
      expect(await ids(db, "SELECT id FROM t ORDER BY emb <-> '[1,1]' LIMIT 3", [])).toEqual([2, 3, 1]);
      // Retried after the index exists, the change leaves the index.
      await db.query(change);
      expect(await ids(db, "SELECT id FROM t ORDER BY emb <-> '[1,1]' LIMIT 3", [])).toEqual([3, 1]);
    }
  });

  it("a primary-key-only query is answered from the index without reading rows, with the same answer", async () => {
    for (const pkType of ["int", "text"]) {
      await using db = await memoryDb();
      await db.exec(`CREATE TABLE t (id ${pkType} PRIMARY KEY, note text, emb vector(8))`);
      await db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops)");
      const data = randomVectors(400, 8, 51);
      const key = (i: number) => (pkType === "int" ? i : `k${i}`);
      await db.transaction(async (tx) => {
        for (let i = 0; i < data.length; i++)
          await tx.query("INSERT INTO t VALUES ($1, $2, $3)", [key(i), `n${i}`, data[i]]);
      });
      // Rows that leave the index: deleted, set to NULL, moved to another key.
      const model = new Map(data.map((v, i) => [i, v]));
      for (let i = 0; i < 400; i += 7) {
        await db.query("DELETE FROM t WHERE id = $1", [key(i)]);
        model.delete(i);
      }
      for (let i = 3; i < 400; i += 11) {
        if (!model.has(i)) continue;
        await db.query("UPDATE t SET emb = NULL WHERE id = $1", [key(i)]);
        model.delete(i);
      }
      const inner = db as unknown as { sqlEngine: SqlEngine };
      const rowReads = countReads(db, inner.sqlEngine.catalog.table("t")!.keyPrefix);
      await db.exec("SET hnsw.ef_search = 400");
      for (const q of randomVectors(8, 8, 52)) {
        const truth = exact(model, q, 10).map(key);
        rowReads.n = 0;
        const keyOnly = await db.query<{ id: unknown }>("SELECT id FROM t ORDER BY emb <-> $1 LIMIT 10", [q]);
        expect(rowReads.n).toBe(0);
        expect(keyOnly.map((r) => r.id)).toEqual(truth);
        const withNote = await db.query<{ id: unknown; note: string }>(
          "SELECT id, note FROM t ORDER BY emb <-> $1 LIMIT 10",
          [q],
        );
        expect(rowReads.n).toBeGreaterThan(0);
        expect(withNote.map((r) => r.id)).toEqual(truth);
        expect(withNote.map((r) => r.note)).toEqual(truth.map((k) => `n${String(k).replace("k", "")}`));
      }
    }
  });

  it("deleting a row the index never held (a NULL vector) writes no conflict with other rows", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE t (id int PRIMARY KEY, emb vector(2))");
    await db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops)");
    await db.query("INSERT INTO t VALUES (1, NULL), (2, '[1,1]'), (3, NULL)");
    const go = deferred();
    const a = db.transaction(async (tx) => {
      await tx.query("SELECT 1");
      await go.promise;
      await tx.query("DELETE FROM t WHERE id = 1");
    });
    await db.query("DELETE FROM t WHERE id = 3");
    go.resolve();
    await a;
    expect(await ids(db, "SELECT id FROM t ORDER BY id", [])).toEqual([2]);
    expect(await ids(db, "SELECT id FROM t ORDER BY emb <-> '[1,1]' LIMIT 3", [])).toEqual([2]);
  });

  it("filtered search keeps recall >= 0.9 when the filter keeps 1% of rows, with and without an index on it", async () => {
    await using db = await memoryDb();
    await db.exec("CREATE TABLE docs (id int PRIMARY KEY, tenant int, emb vector(16))");
    await db.exec("CREATE INDEX ON docs USING hnsw (emb vector_cosine_ops)");
    const data = randomVectors(10_000, 16, 21);
    const tenantOf = (i: number) => (i * 7919) % 100;
    await load(db, "docs", data, tenantOf);
    const all = new Map(data.map((v, i) => [i, v]));
    const queries = randomVectors(20, 16, 22);
    const measure = async () => {
      let found = 0;
      for (let i = 0; i < queries.length; i++) {
        const tenant = i * 5;
        const got = await ids(db, "SELECT id FROM docs WHERE tenant = $2 ORDER BY emb <=> $1 LIMIT 10", [
          queries[i],
          tenant,
        ]);
        const truth = new Set(exact(all, queries[i]!, 10, cos, (id) => tenantOf(id) === tenant));
        expect(got.every((id) => tenantOf(id) === tenant)).toBe(true);
        for (const id of got) if (truth.has(id)) found++;
      }
      return found / (queries.length * 10);
    };
    expect(await measure()).toBeGreaterThanOrEqual(0.9); // widening beam
    await db.exec("CREATE INDEX ON docs (tenant)");
    expect(await measure()).toBe(1); // exact pre-filter through the tenant index
  }, 120_000);

  it("reopening reads no graph; a cold search reads a small part of the index", async () => {
    const url = `memory://hnsw-reopen-${process.pid}`;
    const engineOpts = { memtableBytesMax: 256 * 1024, blockCacheBytesMax: 64 * 1024 };
    const data = randomVectors(10_000, 8, 31);
    {
      const db = await open(url, { engine: engineOpts });
      await db.exec("CREATE TABLE t (id int PRIMARY KEY, emb vector(8))");
      await db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops)");
      await load(db, "t", data);
      await db.close();
    }
    const counting = new CountingStorage(await openStorage(url));
    let total = 0;
    for await (const key of counting.list("")) total += await counting.size(key);
    counting.reset();
    const engine = await Engine.open(counting, engineOpts);
    const sql = await SqlEngine.open(engine, { int8: "number", statementCacheSize: 10 });
    const db = new Database(sql, engine, counting, url);
    const atOpen = counting.reset().readBytes;
    expect(atOpen).toBeLessThan(total * 0.05);
    await db.exec("SET hnsw.ef_search = 10");
    const q = data[1234]!;
    const got = await ids(db, "SELECT id FROM t ORDER BY emb <-> $1 LIMIT 5", [q]);
    const search = counting.reset().readBytes;
    expect(got[0]).toBe(1234);
    expect(search).toBeGreaterThan(0);
    expect(search).toBeLessThan(total * 0.3);
    await db.close();
  }, 120_000);

  it("an insert rewrites only the links of the neighbours it joins, not their vectors", async () => {
    const url = `memory://hnsw-relink-${process.pid}`;
    const dims = 256;
    const data = randomVectors(1500, dims, 77);
    const counting = new CountingStorage(await openStorage(url));
    const engine = await Engine.open(counting, {});
    const sql = await SqlEngine.open(engine, { int8: "number", statementCacheSize: 10 });
    const db = new Database(sql, engine, counting, url);
    await db.exec(`CREATE TABLE t (id int PRIMARY KEY, emb vector(${dims}))`);
    await db.exec("CREATE INDEX ON t USING hnsw (emb vector_l2_ops)");
    await load(db, "t", data);
    const before = counting.reset();
    expect(before.appendBytes).toBeGreaterThan(0);
    const extra = randomVectors(20, dims, 78);
    for (let i = 0; i < extra.length; i++)
      await db.query("INSERT INTO t VALUES ($1, $2)", [10_000 + i, extra[i]]);
    const perInsert = counting.reset().appendBytes / extra.length;
    // The row and the new node each carry the vector once (2 × 1 KiB); each relinked neighbour (up to 2M = 32)
    // adds its links (~250 bytes with key and framing). Whole node records would add each one's 1 KiB vector too.
    expect(perInsert).toBeLessThan(10 * 4 * dims);
    const got = await ids(db, "SELECT id FROM t ORDER BY emb <-> $1 LIMIT 1", [extra[3]!]);
    expect(got).toEqual([10_003]);
    await db.close();
  }, 120_000);
});
