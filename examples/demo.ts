/**
 * `npm run demo`: the main job on the embedded default, file://./demo.db. It grows as features land; today it
 * shows the storage seam: durable objects, a compare-and-swap, and a commit log that survives a torn write.
 */

import { rm } from "node:fs/promises";
import { openStorage } from "../src/storage/open.js";

const url = process.argv[2] ?? "file://./demo.db";
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

if (url === "file://./demo.db") await rm("./demo.db", { recursive: true, force: true });
const storage = await openStorage(url);
console.log(`Twill DB demo on ${storage.url}\n`);

await storage.write("notes/1", text("objects are written atomically and durably"));
console.log(`read back notes/1: "${str(await storage.read("notes/1"))}"`);

const first = await storage.writeIfAbsent("manifest/000001", text("writer A"));
const second = await storage.writeIfAbsent("manifest/000001", text("writer B"));
console.log(`writeIfAbsent manifest/000001: A won=${first}, B won=${second} (exactly one winner)`);

const log = await storage.openLog("main");
const t0 = performance.now();
const appended = await log.append([text("BEGIN"), text("PUT k=v"), text("COMMIT")]);
console.log(
  `appended 3 frames durably as LSN ${appended.firstLsn}..${appended.nextLsn - 1} in ${(performance.now() - t0).toFixed(2)} ms (one sync)`,
);
await log.close();
await storage.close();

const reopened = await openStorage(url);
const replay = await reopened.openLog("main");
const frames: string[] = [];
for await (const frame of replay.read()) frames.push(`${frame.lsn}:${str(frame.data)}`);
console.log(`after reopen the log replays: ${frames.join("  ")}`);
await replay.close();

const keys: string[] = [];
for await (const key of reopened.list("")) keys.push(key);
console.log(`objects: ${keys.join(", ")}`);
await reopened.close();

console.log(
  "\nNext to land on this seam: the LSM engine with MVCC, SQL, branches and vectors (see README status).",
);
