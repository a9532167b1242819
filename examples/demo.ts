/**
 * `npm run demo`: the main job on the embedded default, file://./demo.db. It grows as features land; today it
 * runs the transactional engine over the storage seam (durable commits, group commit, snapshot isolation,
 * first-committer-wins, flush to SSTs, recovery by reopening) and then SQL through open().
 */

import { rm } from "node:fs/promises";
import { open } from "../src/database.js";
import { Engine } from "../src/engine/engine.js";
import { decodeKey, encodeKey } from "../src/engine/lsm/keycodec.js";
import { CountingStorage } from "../src/storage/counting.js";
import { openStorage } from "../src/storage/open.js";

const url = process.argv[2] ?? "file://./demo.db";
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : "(absent)");
const note = (id: number) => encodeKey(["notes", id]);

if (url === "file://./demo.db") {
  await rm("./demo.db", { recursive: true, force: true });
  await rm("./demo-sql.db", { recursive: true, force: true });
}
const storage = new CountingStorage(await openStorage(url));
let db = await Engine.open(storage);
console.log(`Twill DB demo on ${storage.url}\n`);

// 1. A durable commit: acknowledged only after its log append is synced.
let t0 = performance.now();
const txn = db.begin();
txn.put(note(1), text("agents remember things"));
txn.put(note(2), text("and forget some"));
const lsn = await txn.commit();
console.log(`1. committed 2 notes at LSN ${lsn} in ${(performance.now() - t0).toFixed(2)} ms (durable)`);

// 2. Group commit: 64 concurrent transactions share a handful of syncs.
storage.reset();
t0 = performance.now();
await Promise.all(
  Array.from({ length: 64 }, async (_, i) => {
    const t = db.begin();
    t.put(note(100 + i), text(`memory #${i}`));
    return t.commit();
  }),
);
const { appends } = storage.reset();
console.log(
  `2. 64 concurrent commits in ${(performance.now() - t0).toFixed(1)} ms using ${appends} log syncs (group commit)`,
);

// 3. Snapshot isolation: a reader keeps its view while a writer changes the data.
const reader = db.begin();
const writer = db.begin();
writer.put(note(1), text("agents remember things, revised"));
await writer.commit();
console.log(
  `3. old snapshot sees "${str(await reader.get(note(1)))}"; latest is "${str(await db.read(note(1)))}"`,
);
reader.abort();

// 4. First committer wins.
const a = db.begin();
const b = db.begin();
a.put(note(2), text("A's edit"));
b.put(note(2), text("B's edit"));
await a.commit();
try {
  await b.commit();
} catch (error) {
  const e = error as { sqlstate: string; message: string };
  console.log(`4. concurrent edit of the same key: B fails with SQLSTATE ${e.sqlstate} (${e.message})`);
}

// 5. Flush to an SST, then crash-style reopen: recovery replays the log after the flushed LSN.
await db.flush();
const late = db.begin();
late.put(note(3), text("written after the flush, only in the log"));
await late.commit();
await db.close();
db = await Engine.open(storage);
const rows: string[] = [];
for await (const kv of db.readRange({ prefix: encodeKey(["notes"]), limit: 4 })) {
  rows.push(`${String(decodeKey(kv.key)[1])}="${str(kv.value)}"`);
}
const stats = db.stats();
console.log(`5. after reopen: ${rows.join(", ")} …`);
console.log(
  `   ${stats.l0Ssts + stats.l1Ssts} SST(s), flushed up to LSN ${stats.flushedLsn}, last LSN ${stats.lastLsn}`,
);
await db.close();
await storage.close();

// 6. SQL on the same kind of engine, through open(url).
const sqlUrl = url === "file://./demo.db" ? "file://./demo-sql.db" : "memory://demo-sql";
const sql = await open(sqlUrl);
await sql.exec(`CREATE TABLE IF NOT EXISTS memories (
  id serial PRIMARY KEY, agent text NOT NULL, body text NOT NULL, meta jsonb, at timestamptz DEFAULT now())`);
await sql.exec("CREATE INDEX IF NOT EXISTS memories_agent ON memories (agent)");
const insert = sql.prepare("INSERT INTO memories (agent, body, meta) VALUES ($1, $2, $3) RETURNING id");
await sql.transaction(async (tx) => {
  for (const [agent, body, topic] of [
    ["planner", "user prefers short answers", "style"],
    ["planner", "deadline is Friday", "schedule"],
    ["coder", "tests run with npm test", "repo"],
  ]) {
    await tx.query("INSERT INTO memories (agent, body, meta) VALUES ($1, $2, $3)", [agent, body, { topic }]);
  }
});
await insert.get(["coder", "CI prints N passed, N failed", JSON.stringify({ topic: "ci" })]);
const perAgent = await sql.query("SELECT agent, count(*) AS n FROM memories GROUP BY agent ORDER BY agent");
const plan = await sql.query("EXPLAIN SELECT body FROM memories WHERE agent = 'coder'");
const coder = await sql.query(
  "SELECT body, meta->>'topic' AS topic FROM memories WHERE agent = $1 ORDER BY id",
  ["coder"],
);
console.log(
  `6. SQL: ${perAgent.map((r) => `${String(r.agent)}=${String(r.n)}`).join(", ")} memories; coder's: ${coder.map((r) => `${String(r.body)} [${String(r.topic)}]`).join("; ")}`,
);
console.log(`   plan: ${plan.map((r) => String(r["QUERY PLAN"]).trim()).join(" / ")}`);
try {
  await sql.query("SELECT * FROM memories WHERE nope = 1");
} catch (error) {
  const e = error as { sqlstate: string; message: string };
  console.log(`   bad input is an error with a SQLSTATE: ${e.sqlstate} ${e.message}`);
}

// 7. Vector search and a branch: recall by meaning, then try a change on a fork without touching the base.
await sql.exec("CREATE TABLE IF NOT EXISTS facts (id int PRIMARY KEY, body text NOT NULL, emb vector(3))");
await sql.exec("CREATE INDEX IF NOT EXISTS facts_emb ON facts USING hnsw (emb vector_cosine_ops)");
for (const [id, body, emb] of [
  [1, "the user likes tea", [0.9, 0.1, 0]],
  [2, "the build uses tsup", [0, 0.2, 0.9]],
  [3, "the user dislikes coffee", [0.8, 0.3, 0.1]],
] as const) {
  await sql.query("INSERT INTO facts VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING", [id, body, [...emb]]);
}
const drinks = [1, 0.2, 0];
const recall = (db: typeof sql) =>
  db.query("SELECT body FROM facts ORDER BY emb <=> $1 LIMIT 2", [drinks]).then((r) => r.map((x) => x.body));
console.log(`7. nearest to "drinks": ${(await recall(sql)).join("; ")}`);
if ((await sql.branches()).some((b) => b.name === "speculate")) await sql.dropBranch("speculate");
const fork = await sql.branch("speculate"); // O(1): one manifest object, no rows copied
await fork.query("INSERT INTO facts VALUES (4, 'the user now drinks only water', $1)", [[1, 0.2, 0.05]]);
console.log(`   on branch "speculate": ${(await recall(fork)).join("; ")}`);
console.log(`   base is untouched:      ${(await recall(sql)).join("; ")}`);
await fork.discard();
await sql.close();
