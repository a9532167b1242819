/**
 * HNSW indexes on branches: the graph's nodes are ordinary engine records, so a branch shares its parent's graph
 * copy-on-write. Inserts, updates and deletes on either side change only that side's index; a branch reopened
 * alone searches the inherited graph without rebuilding it; a merge brings the branch's nodes to the parent.
 * Searches run with ef_search above the row count, where the beam covers the whole graph, so their answer must
 * equal the exact one computed here.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Database, open } from "../src/database.js";
import { prng } from "../src/util/prng.js";

const DIM = 8;
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function vector(random: () => number): number[] {
  return Array.from({ length: DIM }, () => random() * 2 - 1);
}

function l2(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
}

/** The exact top-k ids by L2 distance (ties by id), from a model of the table. */
function exact(rows: ReadonlyMap<number, number[]>, q: readonly number[], k: number): number[] {
  return [...rows]
    .map(([id, v]) => ({ id, d: l2(v, q) }))
    .sort((a, b) => a.d - b.d || a.id - b.id)
    .slice(0, k)
    .map((x) => x.id);
}

async function search(db: Database, q: readonly number[], k: number): Promise<number[]> {
  const rows = await db.query<{ id: number }>("SELECT id FROM mem ORDER BY emb <-> $1 LIMIT $2", [q, k]);
  return rows.map((r) => r.id);
}

async function usesIndex(db: Database): Promise<boolean> {
  const plan = await db.query<{ "QUERY PLAN": string }>(
    "EXPLAIN SELECT id FROM mem ORDER BY emb <-> '[0,0,0,0,0,0,0,0]' LIMIT 5",
  );
  return plan.some((r) => /Index Scan using mem_emb/.test(r["QUERY PLAN"]));
}

describe("HNSW index on branches", () => {
  it("is copy-on-write: each side's writes change only its own index, and merge brings the branch's nodes back", async () => {
    const dir = await mkdtemp(join(tmpdir(), "twill-branch-vector-"));
    dirs.push(dir);
    const url = `file://${dir}/db`;
    const random = prng(20261201);
    const base = new Map<number, number[]>();

    const db = await open(url);
    await db.exec(`CREATE TABLE mem (id INT PRIMARY KEY, emb vector(${DIM}))`);
    await db.exec(
      "CREATE INDEX mem_emb ON mem USING hnsw (emb vector_l2_ops) WITH (m = 8, ef_construction = 64)",
    );
    await db.transaction(async (tx) => {
      for (let id = 1; id <= 300; id++) {
        const v = vector(random);
        base.set(id, v);
        await tx.query("INSERT INTO mem VALUES ($1, $2)", [id, v]);
      }
    });
    await db.exec("SET hnsw.ef_search = 1000");

    const branch = await db.branch("explore");
    await branch.exec("SET hnsw.ef_search = 1000");
    const forked = new Map(base);

    // Branch: new rows clustered around one point, moved rows, deleted rows.
    const target = vector(random);
    for (let id = 1001; id <= 1030; id++) {
      const v = target.map((x) => x + (random() - 0.5) * 0.05);
      forked.set(id, v);
      await branch.query("INSERT INTO mem VALUES ($1, $2)", [id, v]);
    }
    for (let id = 1; id <= 20; id++) {
      const v = vector(random);
      forked.set(id, v);
      await branch.query("UPDATE mem SET emb = $1 WHERE id = $2", [v, id]);
    }
    for (let id = 21; id <= 60; id++) {
      forked.delete(id);
      await branch.query("DELETE FROM mem WHERE id = $1", [id]);
    }
    // Base, after the fork: its own rows and deletes, which the branch must never see.
    for (let id = 2001; id <= 2020; id++) {
      const v = target.map((x) => x + (random() - 0.5) * 0.05);
      base.set(id, v);
      await db.query("INSERT INTO mem VALUES ($1, $2)", [id, v]);
    }
    for (let id = 100; id <= 120; id++) {
      base.delete(id);
      await db.query("DELETE FROM mem WHERE id = $1", [id]);
    }

    expect(await usesIndex(db)).toBe(true);
    expect(await usesIndex(branch)).toBe(true);
    const queries = [target, ...Array.from({ length: 9 }, () => vector(random))];
    for (const q of queries) {
      expect(await search(branch, q, 10)).toEqual(exact(forked, q, 10));
      expect(await search(db, q, 10)).toEqual(exact(base, q, 10));
    }
    // The cluster near `target` exists on each side only as that side wrote it.
    const nearOnBranch = await search(branch, target, 30);
    expect(nearOnBranch.every((id) => id < 2000)).toBe(true);
    expect(nearOnBranch.filter((id) => id > 1000)).toHaveLength(30);
    expect((await search(db, target, 20)).every((id) => id < 1000 || id > 2000)).toBe(true);

    // Reopened alone, the branch searches the inherited graph plus its own nodes; nothing is rebuilt.
    await db.close();
    const alone = await open(`${url}?branch=explore`);
    await alone.exec("SET hnsw.ef_search = 1000");
    for (const q of queries) expect(await search(alone, q, 10)).toEqual(exact(forked, q, 10));
    await alone.close();

    // Merge: the base's index now answers with the branch's changes applied on top of its own.
    const reopened = await open(url);
    await reopened.exec("SET hnsw.ef_search = 1000");
    // Searching first fills the parent's decoded-node cache: the merge must not leave it serving stale nodes.
    for (const q of queries) expect(await search(reopened, q, 10)).toEqual(exact(base, q, 10));
    const child = await reopened.branch("explore2");
    await child.query("INSERT INTO mem VALUES (3001, $1)", [target]);
    await child.query("DELETE FROM mem WHERE id = 2001");
    await child.merge({ onConflict: "fail" });
    const merged = new Map(base);
    merged.set(3001, target);
    merged.delete(2001);
    for (const q of queries) expect(await search(reopened, q, 10)).toEqual(exact(merged, q, 10));
    expect((await search(reopened, target, 1))[0]).toBe(3001);
    await reopened.close();
  });

  it("merges a branch whose graph diverged from its parent's without conflicts on graph records", async () => {
    await using db = await open("memory://");
    const random = prng(7);
    const rows = new Map<number, number[]>();
    await db.exec(`CREATE TABLE mem (id INT PRIMARY KEY, emb vector(${DIM}))`);
    await db.exec(
      "CREATE INDEX mem_emb ON mem USING hnsw (emb vector_l2_ops) WITH (m = 4, ef_construction = 16)",
    );
    for (let id = 1; id <= 100; id++) {
      const v = vector(random);
      rows.set(id, v);
      await db.query("INSERT INTO mem VALUES ($1, $2)", [id, v]);
    }
    await db.exec("SET hnsw.ef_search = 1000");
    const branch = await db.branch("diverge");
    // Both sides relink the same neighbourhoods: with per-record merging these node records would all conflict.
    for (let id = 101; id <= 160; id++) {
      const v = vector(random);
      rows.set(id, v);
      await branch.query("INSERT INTO mem VALUES ($1, $2)", [id, v]);
    }
    await branch.query("DELETE FROM mem WHERE id <= 10");
    for (let id = 1; id <= 10; id++) rows.delete(id);
    for (let id = 201; id <= 260; id++) {
      const v = vector(random);
      rows.set(id, v);
      await db.query("INSERT INTO mem VALUES ($1, $2)", [id, v]);
    }
    const queries = Array.from({ length: 10 }, () => vector(random));
    for (const q of queries) await search(db, q, 10); // fills the parent's node cache before the merge
    const result = await branch.merge({ onConflict: "fail" });
    expect(result.conflicts).toEqual([]);
    for (const q of queries) expect(await search(db, q, 10)).toEqual(exact(rows, q, 10));
    expect(await db.query("SELECT count(*)::int AS n FROM mem")).toEqual([{ n: rows.size }]);
  });
});
