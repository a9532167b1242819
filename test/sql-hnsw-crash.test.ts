/**
 * Crash safety of HNSW indexes: a child process inserts rows into a file:// table with an HNSW index and is
 * killed with SIGKILL mid-stream, twice. After each kill the reopened index must hold every acknowledged row
 * (each row's own vector finds it first), and exactly the rows the table holds.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, expect, it } from "vitest";
import { open } from "../src/database.js";
import { vectorOf } from "./fixtures/hnsw-crash-vectors.js";

const CHILD = join(import.meta.dirname, "fixtures", "hnsw-crash-child.ts");

/** Runs the child from `first`, kills it after `commits` acknowledged inserts; returns the acknowledged ids. */
function runAndKill(url: string, first: number, commits: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", CHILD, url, String(first)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const acked: number[] = [];
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const watchdog = setTimeout(() => child.kill("SIGKILL"), 60_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!line.startsWith("C ")) return;
      acked.push(Number(line.slice(2)));
      if (acked.length === commits) child.kill("SIGKILL");
    });
    child.on("exit", (_code, signal) => {
      clearTimeout(watchdog);
      if (signal !== "SIGKILL") reject(new Error(`child exited on its own: ${stderr}`));
      else resolve(acked);
    });
  });
}

describe("HNSW crash safety (SIGKILL)", () => {
  it("keeps every acknowledged row in the index across kills", async () => {
    const dir = await mkdtemp(join(tmpdir(), "twill-hnsw-crash-"));
    const url = `file://${join(dir, "db")}`;
    try {
      let next = 0;
      const acked: number[] = [];
      for (let round = 0; round < 2; round++) {
        const got = await runAndKill(url, next, 120);
        expect(got.length).toBeGreaterThanOrEqual(120); // lines already in the pipe still arrive
        acked.push(...got);
        const db = await open(url);
        try {
          const rows = (await db.query<{ id: number }>("SELECT id FROM t ORDER BY id")).map((r) => r.id);
          for (const id of acked) expect(rows).toContain(id);
          await db.exec("SET hnsw.ef_search = 1000");
          const explain = (
            await db.query("EXPLAIN SELECT id FROM t ORDER BY emb <-> $1 LIMIT 1", [vectorOf(0)])
          )
            .map((r) => Object.values(r)[0])
            .join("\n");
          expect(explain).toContain("Index Scan using t_emb");
          for (const id of acked) {
            const [hit] = await db.query<{ id: number }>("SELECT id FROM t ORDER BY emb <-> $1 LIMIT 1", [
              vectorOf(id),
            ]);
            expect(hit?.id).toBe(id);
          }
          const all = await db.query<{ id: number }>("SELECT id FROM t ORDER BY emb <-> $1 LIMIT 100000", [
            vectorOf(7),
          ]);
          expect(all.map((r) => r.id).sort((a, b) => a - b)).toEqual(rows);
          next = rows[rows.length - 1]! + 1;
        } finally {
          await db.close();
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
