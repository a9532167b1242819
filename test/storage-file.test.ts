/** file:// specifics: torn tails, corruption in the middle, and races between processes. */

import { execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorCodes, TwillError } from "../src/errors.js";
import { encodeFrames, FRAME_HEADER_BYTES } from "../src/storage/log-format.js";
import { openStorage } from "../src/storage/open.js";
import { frameEnd } from "./helpers/log-bytes.js";

const run = promisify(execFile);
const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "twill-file-"));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const text = (s: string) => new TextEncoder().encode(s);

async function onlySegment(dir: string, log: string): Promise<string> {
  const names = (await readdir(join(dir, "log", log))).filter((n) => n.endsWith(".seg"));
  expect(names).toHaveLength(1);
  return join(dir, "log", log, names[0]!);
}

function childRun(args: string[]): Promise<{ stdout: string }> {
  return run(process.execPath, ["--import", "tsx", "test/fixtures/race-writer.ts", ...args], {
    timeout: 30_000,
  });
}

describe("file:// log recovery", () => {
  it("drops a torn last frame at every byte offset and keeps every earlier frame", async () => {
    const dir = await tempDir();
    const url = `file://${dir}`;
    const s = await openStorage(url);
    const log = await s.openLog("wal");
    await log.append([text("one"), text("two")]);
    await log.append([text("three-is-the-last-frame")]);
    await log.close();
    await s.close();
    const segment = await onlySegment(dir, "wal");
    const full = await readFile(segment);
    const end = frameEnd(full);
    const lastFrameBytes = FRAME_HEADER_BYTES + "three-is-the-last-frame".length;
    const lastStart = end - lastFrameBytes;
    for (let cut = lastStart; cut < end; cut++) {
      await writeFile(segment, full.subarray(0, cut));
      const reopened = await openStorage(url);
      const wal = await reopened.openLog("wal");
      expect(wal.nextLsn()).toBe(3);
      const frames = await collect(wal.read());
      expect(frames.map((f) => new TextDecoder().decode(f.data))).toEqual(["one", "two"]);
      // The torn bytes were cut off, so a new append lands right after frame 2.
      expect((await wal.append([text("again")])).firstLsn).toBe(3);
      expect((await collect(wal.read(3))).map((f) => new TextDecoder().decode(f.data))).toEqual(["again"]);
      await wal.close();
      await reopened.close();
    }
  });

  it("drops a garbled last frame (bad checksum) as torn", async () => {
    const dir = await tempDir();
    const s = await openStorage(`file://${dir}`);
    const log = await s.openLog("wal");
    await log.append([text("keep")]);
    await log.append([text("garbled")]);
    await log.close();
    const segment = await onlySegment(dir, "wal");
    const bytes = await readFile(segment);
    const end = frameEnd(bytes);
    bytes[end - 2] = bytes[end - 2]! ^ 0xff;
    await writeFile(segment, bytes);
    const again = await s.openLog("wal");
    expect(again.nextLsn()).toBe(2);
    expect((await collect(again.read())).map((f) => f.lsn)).toEqual([1]);
    await again.close();
    await s.close();
  });

  it("preallocates segments with zeros and zeroes a torn tail, so no stale frame can resurface", async () => {
    const dir = await tempDir();
    const s = await openStorage(`file://${dir}`);
    const log = await s.openLog("wal");
    await log.append([text("a")]);
    await log.append([text("b-which-will-be-torn")]);
    await log.close();
    const segment = await onlySegment(dir, "wal");
    const bytes = await readFile(segment);
    const end = frameEnd(bytes);
    expect(bytes.length).toBeGreaterThan(end); // room was preallocated
    expect(bytes.subarray(end).every((b) => b === 0)).toBe(true);
    // Tear the second frame: its payload's last byte flips, so the frame fails its CRC.
    bytes[end - 1] = bytes[end - 1]! ^ 0xff;
    await writeFile(segment, bytes);
    const again = await s.openLog("wal");
    expect(again.nextLsn()).toBe(2);
    const after = await readFile(segment);
    const firstEnd = frameEnd(after);
    expect(after.subarray(firstEnd).every((b) => b === 0)).toBe(true); // the torn frame was zeroed, not left behind
    await again.append([text("c")]);
    expect((await collect(again.read())).map((f) => new TextDecoder().decode(f.data))).toEqual(["a", "c"]);
    await again.close();
    await s.close();
  });

  it("writes a large append frame by frame with the bytes of one encoded buffer, and zeros only past it", async () => {
    const dir = await tempDir();
    const s = await openStorage(`file://${dir}`);
    const log = await s.openLog("wal");
    await log.append([text("small")]);
    // 3 MiB in 3 frames: above the size written frame by frame, and above one preallocation step's room.
    const frames = [0, 1, 2].map((k) => new Uint8Array(1024 * 1024).map((_, i) => (i * 31 + k) & 0xff));
    expect((await log.append(frames)).firstLsn).toBe(2);
    await log.append([text("after")]);
    await log.close();
    const bytes = await readFile(await onlySegment(dir, "wal"));
    const expected = Buffer.concat([
      encodeFrames(1, [text("small")]),
      encodeFrames(2, frames),
      encodeFrames(5, [text("after")]),
    ]);
    expect(Buffer.compare(bytes.subarray(0, expected.length), expected)).toBe(0);
    expect(bytes.subarray(expected.length).every((b) => b === 0)).toBe(true);
    const again = await s.openLog("wal");
    const back = await collect(again.read());
    expect(back.map((f) => f.lsn)).toEqual([1, 2, 3, 4, 5]);
    expect(Buffer.compare(Buffer.from(back[3]!.data), Buffer.from(frames[2]!))).toBe(0);
    await again.close();
    await s.close();
  });

  it("takes over a lock file a writer killed mid-lock left without a holder record", async () => {
    // What a writer killed between creating its lock file and writing into it left behind (seen in the SIGKILL
    // crash test): an empty file, or a torn one. It must not lock the database for good.
    for (const leftover of ["", '{"pid":12', "not json"]) {
      const dir = await tempDir();
      const s = await openStorage(`file://${dir}`);
      const first = await s.openLog("wal");
      await first.append([text("before")]);
      await first.close();
      await writeFile(join(dir, "log", "wal", "LOCK"), leftover);
      const log = await s.openLog("wal");
      await log.append([text("after")]);
      const holder = JSON.parse(await readFile(join(dir, "log", "wal", "LOCK"), "utf8")) as { pid: number };
      expect(holder.pid).toBe(process.pid);
      // A live holder's lock is still respected.
      await expect(s.openLog("wal")).rejects.toMatchObject({ code: ErrorCodes.Locked });
      expect((await collect(log.read())).map((f) => new TextDecoder().decode(f.data))).toEqual([
        "before",
        "after",
      ]);
      await log.close();
      expect((await readdir(join(dir, "log", "wal"))).filter((n) => n.includes("LOCK"))).toEqual([]);
      await s.close();
    }
  });

  it("reports corruption in the middle of the log with its position", async () => {
    const dir = await tempDir();
    const s = await openStorage(`file://${dir}`);
    const log = await s.openLog("wal");
    await log.append([text("first"), text("second"), text("third")]);
    await log.close();
    const segment = await onlySegment(dir, "wal");
    const bytes = await readFile(segment);
    bytes[FRAME_HEADER_BYTES + 1] = bytes[FRAME_HEADER_BYTES + 1]! ^ 0x01; // inside the payload of frame 1
    await writeFile(segment, bytes);
    const error = await s.openLog("wal").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TwillError);
    expect((error as TwillError).code).toBe(ErrorCodes.Corruption);
    expect((error as TwillError).message).toMatch(/segment 0000000000000001\.seg byte 0 \(lsn 1\)/);
    await s.close();
  });

  it("rotates segments and reads across them; truncation removes whole old segments", async () => {
    const dir = await tempDir();
    const s = await openStorage(`file://${dir}`, { segmentBytesMax: 4096 });
    const log = await s.openLog("wal");
    const payload = new Uint8Array(1000).fill(7);
    for (let i = 0; i < 20; i++) await log.append([payload]);
    const segmentsBefore = (await readdir(join(dir, "log", "wal"))).filter((n) => n.endsWith(".seg"));
    expect(segmentsBefore.length).toBe(4);
    expect((await collect(log.read())).map((f) => f.lsn)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    await log.truncate(15);
    const segmentsAfter = (await readdir(join(dir, "log", "wal"))).filter((n) => n.endsWith(".seg"));
    expect(segmentsAfter.length).toBeLessThan(segmentsBefore.length);
    const remaining = (await collect(log.read())).map((f) => f.lsn);
    expect(remaining[0]).toBeLessThanOrEqual(15);
    expect(remaining.at(-1)).toBe(20);
    await log.close();
    await s.close();
  });

  it("reports a missing middle segment as corruption", async () => {
    const dir = await tempDir();
    const s = await openStorage(`file://${dir}`, { segmentBytesMax: 4096 });
    const log = await s.openLog("wal");
    for (let i = 0; i < 12; i++) await log.append([new Uint8Array(1500)]);
    await log.close();
    const names = (await readdir(join(dir, "log", "wal"))).filter((n) => n.endsWith(".seg")).sort();
    await rm(join(dir, "log", "wal", names[1]!));
    const reader = await s.openLog("wal", { readOnly: true });
    await expect(collect(reader.read())).rejects.toMatchObject({ code: ErrorCodes.Corruption });
    await reader.close();
    await s.close();
  });
});

describe("file:// across processes", () => {
  it("lets exactly one of 6 processes win writeIfAbsent on one key", async () => {
    const dir = await tempDir();
    const startAt = Date.now() + 2500;
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        childRun([`file://${dir}`, "cas", "manifest/000001", `p${i}`, String(startAt)]),
      ),
    );
    const outcomes = results.map((r) => JSON.parse(r.stdout) as { id: string; won: boolean });
    const winners = outcomes.filter((o) => o.won);
    expect(winners).toHaveLength(1);
    const s = await openStorage(`file://${dir}`);
    expect(new TextDecoder().decode(await s.read("manifest/000001"))).toBe(winners[0]!.id);
    await s.close();
  });

  it("lets one process at a time append to a log", async () => {
    const dir = await tempDir();
    const startAt = Date.now() + 2500;
    const racers = Array.from({ length: 4 }, (_, i) =>
      spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          "test/fixtures/race-writer.ts",
          `file://${dir}`,
          "lock",
          "wal",
          `p${i}`,
          // The last racer starts 3 s late, as one may on a loaded machine: it must still find the lock held.
          String(i === 3 ? startAt + 3000 : startAt),
        ],
        {
          stdio: ["pipe", "pipe", "inherit"],
        },
      ),
    );
    // Listened for at once: a racer that loses exits long before the winner lets go.
    const exits = racers.map((child) => new Promise((resolve) => child.on("exit", resolve)));
    // Each racer prints its outcome as one line; a winner then holds the lock until its stdin closes, so no racer
    // can take the lock after another let go however late it starts.
    const outcomes = await Promise.all(
      racers.map(
        (child) =>
          new Promise<{ locked: boolean; code?: string }>((resolve, reject) => {
            let out = "";
            child.stdout.on("data", (chunk: Buffer) => {
              out += chunk.toString();
              if (out.includes("\n")) resolve(JSON.parse(out.slice(0, out.indexOf("\n"))));
            });
            child.on("exit", (code) =>
              reject(new Error(`racer exited (${code}) without an outcome: ${out}`)),
            );
          }),
      ),
    );
    for (const child of racers) child.stdin.end();
    await Promise.all(exits);
    expect(outcomes.filter((o) => o.locked)).toHaveLength(1);
    for (const o of outcomes.filter((x) => !x.locked)) expect(o.code).toBe(ErrorCodes.Locked);
  });

  it("takes over the lock of a writer that died without releasing it", async () => {
    const dir = await tempDir();
    const { stdout } = await childRun([`file://${dir}`, "hold-and-die", "wal", "dead", "0"]);
    expect(stdout).toContain("held");
    const lock = JSON.parse(await readFile(join(dir, "log", "wal", "LOCK"), "utf8")) as { pid: number };
    expect(lock.pid).not.toBe(process.pid);
    const s = await openStorage(`file://${dir}`);
    const log = await s.openLog("wal");
    await log.append([text("mine now")]);
    await log.close();
    await s.close();
  });

  it("keeps what an interrupted object write left invisible", async () => {
    const dir = await tempDir();
    const s = await openStorage(`file://${dir}`);
    await s.write("obj", text("complete"));
    // A crash between the temp write and the rename leaves only a temp file behind.
    await writeFile(join(dir, "tmp", "deadbeef"), "partial");
    expect(await collect(s.list(""))).toEqual(["obj"]);
    await truncate(join(dir, "tmp", "deadbeef"), 0);
    expect(new TextDecoder().decode(await s.read("obj"))).toBe("complete");
    await s.close();
  });
});
