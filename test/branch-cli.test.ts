/** `twill branch create|list|drop|merge --db <url>` end to end on file://, run as a child process. */

import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { open } from "../src/database.js";

const run = promisify(execFile);
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function twill(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "src/cli/twill.ts", ...args]);
    return { code: 0, out: stdout, err: stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout, err: e.stderr };
  }
}

describe("twill branch", () => {
  it("creates, lists, merges and drops", { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), "twill-branch-cli-"));
    dirs.push(dir);
    const url = `file://${dir}/db`;
    const db = await open(url);
    await db.exec(`CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b')`);
    await db.close();

    expect(await twill("branch", "create", "exp", "--db", url)).toMatchObject({ code: 0 });
    const dup = await twill("branch", "create", "exp", "--db", url);
    expect(dup.code).toBe(1);
    expect(dup.err).toMatch(/already exists/);
    expect((await twill("branch", "list", "--db", url)).out).toMatch(
      /^exp\tparent=main\tfork_lsn=\d+\tcreated=/m,
    );

    const b = await open(`${url}?branch=exp`);
    await b.exec(`UPDATE t SET v = 'branch' WHERE id = 1; INSERT INTO t VALUES (3, 'c')`);
    await b.close();
    const m = await open(url);
    await m.exec(`UPDATE t SET v = 'main' WHERE id = 1`);
    await m.close();

    const fail = await twill("branch", "merge", "exp", "--db", url);
    expect(fail.code).toBe(1);
    expect(fail.err).toMatch(/conflicts on 1 key\(s\): t \[1\]/);
    expect((await twill("branch", "merge", "exp", "--db", url, "--on-conflict", "theirs")).out).toMatch(
      /1 key\(s\) written/,
    );
    const after = await open(url);
    expect(await after.query("SELECT id, v FROM t ORDER BY id")).toEqual([
      { id: 1, v: "main" },
      { id: 2, v: "b" },
      { id: 3, v: "c" },
    ]);
    await after.close();
    expect((await twill("branch", "create", "x", "--at", "1x", "--db", url)).code).toBe(1);
    expect((await twill("branch", "drop", "exp", "--db", url)).out).toMatch(/dropped exp/);
    expect((await twill("branch", "list", "--db", url)).out).toMatch(/0 branch\(es\)/);
  });
});
