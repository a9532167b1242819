/**
 * s3:// specifics, against a real S3 server (Ceph RGW from scripts/s3-server.sh; no SDK mock, no fake server):
 * conditional-write retries, racing writers, log fencing, listing past one page, URL handling, error mapping.
 * The behaviour every backend shares is in the storage conformance suite.
 *
 *   bash scripts/s3-server.sh start && eval "$(bash scripts/s3-server.sh env)" && npx vitest run test/storage-s3-backend.test.ts
 */

import { randomUUID } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import {
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCodes, isTwillError } from "../src/errors.js";
import { openS3Storage, type S3StorageOptions } from "../src/storage/s3.js";
import type { Log, LogFrame, Storage } from "../src/storage/types.js";

const S3_URL = process.env.TWILL_TEST_S3_URL || undefined;
const IN_CI = !["", "0", "false"].includes(process.env.CI ?? "");
const ENDPOINT = process.env.TWILL_S3_ENDPOINT;
const ACCESS_KEY = process.env.AWS_ACCESS_KEY_ID ?? "";
const SECRET_KEY = process.env.AWS_SECRET_ACCESS_KEY ?? "";
const REGION = process.env.AWS_REGION ?? "us-east-1";
const HOW = 'bash scripts/s3-server.sh start && eval "$(bash scripts/s3-server.sh env)"';

if (S3_URL === undefined) {
  console.warn(
    `\n*** test/storage-s3-backend.test.ts SKIPPED: TWILL_TEST_S3_URL is not set. Run: ${HOW} ***\n` +
      (IN_CI ? "*** CI is set: this file FAILS instead of skipping. ***\n" : ""),
  );
}

describe.runIf(S3_URL === undefined && IN_CI)("s3 backend (CI)", () => {
  it("needs TWILL_TEST_S3_URL in CI", () => {
    throw new Error(`TWILL_TEST_S3_URL is not set, and CI must run the s3:// tests. Run: ${HOW}`);
  });
});

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function codeOf(p: Promise<unknown> | (() => Promise<unknown>)): Promise<string> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    if (isTwillError(e)) return e.code;
    throw new Error(`expected a TwillError, got ${String(e)}`);
  }
  throw new Error("expected a rejection");
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

describe.skipIf(S3_URL === undefined)("s3 backend", () => {
  const base = new URL(S3_URL ?? "s3://unset/");
  const bucket = base.hostname;
  // Every run under its own prefix, so runs neither see nor break each other.
  const runPrefix = `${base.pathname.replace(/^\/+|\/+$/g, "")}${base.pathname.length > 1 ? "/" : ""}test-${Date.now()}-${randomUUID().slice(0, 8)}`;
  const opts: S3StorageOptions = { endpoint: ENDPOINT, region: REGION, requestTimeoutMs: 5_000 };
  const raw = new S3Client({
    endpoint: ENDPOINT,
    region: REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  const opened: Storage[] = [];

  /** A storage under a fresh sub-prefix of this run. */
  async function open(name: string, extra: S3StorageOptions = {}, query = ""): Promise<Storage> {
    const s = await openS3Storage(new URL(`s3://${bucket}/${runPrefix}/${name}${query}`), {
      ...opts,
      ...extra,
    });
    opened.push(s);
    return s;
  }

  async function rawKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await raw.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const c of page.Contents ?? []) if (c.Key !== undefined) keys.push(c.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys;
  }

  beforeAll(async () => {
    // Fail early and clearly when the server is down.
    const s = await openS3Storage(new URL(`s3://${bucket}/${runPrefix}`), opts).catch((e: unknown) => {
      throw new Error(`cannot reach the S3 server at ${ENDPOINT}: ${String(e)}. Run: ${HOW}`);
    });
    await s.close();
  });

  afterAll(async () => {
    for (const s of opened) await s.close();
    const keys = await rawKeys(`${runPrefix}/`);
    for (let i = 0; i < keys.length; i += 1000) {
      await raw.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
        }),
      );
    }
    raw.destroy();
  });

  describe("URL and options", () => {
    it("maps keys to <prefix>/obj/<key>, and the empty prefix has no leading slash", async () => {
      const s = await open("layout");
      await s.write("a/b=c+d~e.f_g-h", bytes("x"));
      expect(await rawKeys(`${runPrefix}/layout/`)).toEqual([`${runPrefix}/layout/obj/a/b=c+d~e.f_g-h`]);
      expect(await collect(s.list(""))).toEqual(["a/b=c+d~e.f_g-h"]);
      expect(text(await s.read("a/b=c+d~e.f_g-h"))).toBe("x");

      const root = await openS3Storage(new URL(`s3://${bucket}`), opts);
      opened.push(root);
      expect(root.url).toBe(`s3://${bucket}/`);
      const key = `${runPrefix}/rootkey`;
      await root.write(key, bytes("r"));
      expect(
        (await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: `obj/${key}` }))).ContentLength,
      ).toBe(1);
      await root.delete(key);
    });

    it("takes endpoint, region, path style and credentials from the query, and keeps secrets out of url", async () => {
      const query =
        `?endpoint=${encodeURIComponent(ENDPOINT ?? "")}&region=${REGION}&forcePathStyle=true` +
        `&accessKeyId=${ACCESS_KEY}&secretAccessKey=${SECRET_KEY}&sessionToken=tok123`;
      const s = await openS3Storage(new URL(`s3://${bucket}/${runPrefix}/query${query}`), {});
      opened.push(s);
      await s.write("k", bytes("v"));
      expect(text(await s.read("k"))).toBe("v");
      expect(s.kind).toBe("s3");
      expect(s.url).not.toContain(SECRET_KEY);
      expect(s.url).not.toContain("tok123");
      expect(s.url).not.toMatch(/accessKeyId|secretAccessKey|sessionToken/);
      expect(s.url).toContain(`s3://${bucket}/${runPrefix}/query?`);
      expect(s.url).toContain("region=us-east-1");

      // user:password@ in the URL is credentials too, and is stripped as well.
      const u = new URL(`s3://${bucket}/${runPrefix}/query?endpoint=${encodeURIComponent(ENDPOINT ?? "")}`);
      u.username = ACCESS_KEY;
      u.password = SECRET_KEY;
      const s2 = await openS3Storage(u, {});
      opened.push(s2);
      expect(text(await s2.read("k"))).toBe("v");
      expect(s2.url).not.toContain(SECRET_KEY);
      expect(s2.url).not.toContain("@");
    });

    it("lets options win over the query", async () => {
      // The query names a dead endpoint and a wrong secret; the options name the right ones.
      const query = "?endpoint=http%3A%2F%2F127.0.0.1%3A9&accessKeyId=nobody&secretAccessKey=wrongwrongwrong";
      const s = await openS3Storage(new URL(`s3://${bucket}/${runPrefix}/win${query}`), {
        ...opts,
        accessKeyId: ACCESS_KEY,
        secretAccessKey: SECRET_KEY,
      });
      opened.push(s);
      await s.write("k", bytes("v"));
      expect(text(await s.read("k"))).toBe("v");
    });

    it("uses query credentials over the environment, and a wrong secret is an IO error without the secret", async () => {
      const query = `?accessKeyId=${ACCESS_KEY}&secretAccessKey=not-the-secret-xyz`;
      const e = await errorOf(openS3Storage(new URL(`s3://${bucket}/${runPrefix}/bad${query}`), opts));
      expect(isTwillError(e, ErrorCodes.Io)).toBe(true);
      expect(`${e.message} ${(e as { detail?: string }).detail ?? ""}`).not.toContain("not-the-secret-xyz");
      expect(e.cause).toBeUndefined();
    });

    it("rejects malformed URLs and options before any request", async () => {
      const bad = async (u: string, o: S3StorageOptions = opts) => codeOf(openS3Storage(new URL(u), o));
      expect(await bad("s3://A_B/x")).toBe(ErrorCodes.InvalidUrl);
      expect(await bad("s3://ab/x")).toBe(ErrorCodes.InvalidUrl);
      expect(await bad(`s3://${bucket}:9000/x`)).toBe(ErrorCodes.InvalidUrl);
      expect(await bad(`s3://${bucket}/a//b`)).toBe(ErrorCodes.InvalidUrl);
      expect(await bad(`s3://${bucket}/a%20b`)).toBe(ErrorCodes.InvalidUrl);
      expect(await bad(`s3://${bucket}/${"p".repeat(300)}`)).toBe(ErrorCodes.InvalidUrl);
      expect(await bad(`s3://${bucket}/x?forcePathStyle=maybe`)).toBe(ErrorCodes.InvalidUrl);
      expect(await bad(`s3://${bucket}/x?maxAttempts=0`)).toBe(ErrorCodes.InvalidUrl);
      expect(await bad(`s3://${bucket}/x?requestTimeoutMs=soon`, { endpoint: ENDPOINT })).toBe(
        ErrorCodes.InvalidUrl,
      );
      expect(await bad(`s3://${bucket}/x?endpoint=ftp%3A%2F%2Fhost`, {})).toBe(ErrorCodes.InvalidUrl);
      expect(await bad(`file://${bucket}/x`)).toBe(ErrorCodes.InvalidUrl);
      expect(await bad(`s3://${bucket}/x`, { ...opts, accessKeyId: "only-the-key" })).toBe(
        ErrorCodes.InvalidArgument,
      );
      expect(await bad(`s3://${bucket}/x`, { ...opts, maxAttempts: 0 })).toBe(ErrorCodes.InvalidArgument);
    });

    it("refuses a missing bucket with NOT_FOUND, and creates it with createBucket", async () => {
      const name = `twill-tmp-${randomUUID().slice(0, 8)}`;
      expect(await codeOf(openS3Storage(new URL(`s3://${name}/p`), opts))).toBe(ErrorCodes.NotFound);
      const s = await openS3Storage(new URL(`s3://${name}/p?createBucket=true`), opts);
      try {
        await s.write("k", bytes("v"));
        expect(text(await s.read("k"))).toBe("v");
        await s.delete("k");
      } finally {
        await s.close();
        await raw.send(new DeleteBucketCommand({ Bucket: name }));
      }
    });
  });

  describe("objects", () => {
    it("maps a missing object to NOT_FOUND for read, ranged read and size; delete is idempotent", async () => {
      const s = await open("missing");
      expect(await codeOf(s.read("nope"))).toBe(ErrorCodes.NotFound);
      expect(await codeOf(s.read("nope", { offset: 3, length: 2 }))).toBe(ErrorCodes.NotFound);
      expect(await codeOf(s.read("nope", { offset: 0, length: 0 }))).toBe(ErrorCodes.NotFound);
      expect(await codeOf(s.size("nope"))).toBe(ErrorCodes.NotFound);
      await s.delete("nope");
      await s.write("yes", bytes("1"));
      await s.delete("yes");
      await s.delete("yes");
      expect(await codeOf(s.read("yes"))).toBe(ErrorCodes.NotFound);
    });

    it("serves ranges the way types.ts says, including RGW's 416 cases and empty objects", async () => {
      const s = await open("ranges");
      await s.write("ten", bytes("0123456789"));
      await s.write("empty", new Uint8Array(0));
      expect(text(await s.read("ten", { offset: 2, length: 3 }))).toBe("234");
      expect(text(await s.read("ten", { offset: 7 }))).toBe("789");
      expect(text(await s.read("ten", { offset: 7, length: 100 }))).toBe("789");
      expect(text(await s.read("ten", { offset: 9, length: 1 }))).toBe("9");
      expect((await s.read("ten", { offset: 10 })).length).toBe(0);
      expect((await s.read("ten", { offset: 10, length: 5 })).length).toBe(0);
      expect((await s.read("ten", { offset: 4, length: 0 })).length).toBe(0);
      expect(await codeOf(s.read("ten", { offset: 11 }))).toBe(ErrorCodes.InvalidArgument);
      expect(await codeOf(s.read("ten", { offset: 11, length: 0 }))).toBe(ErrorCodes.InvalidArgument);
      expect(await s.size("ten")).toBe(10);
      expect((await s.read("empty")).length).toBe(0);
      expect((await s.read("empty", { offset: 0, length: 4 })).length).toBe(0);
      expect((await s.read("empty", { offset: 0 })).length).toBe(0);
      expect(await codeOf(s.read("empty", { offset: 1 }))).toBe(ErrorCodes.InvalidArgument);
      expect(await s.size("empty")).toBe(0);
      expect(await codeOf(s.read("ten", { offset: -1 }))).toBe(ErrorCodes.InvalidArgument);
      expect(await codeOf(s.read("ten", { offset: 1.5 }))).toBe(ErrorCodes.InvalidArgument);
    });

    it("validates keys before any request", async () => {
      let sent = 0;
      const s = await open("validate", {
        testHooks: {
          failBeforeSend: () => {
            sent++;
            return false;
          },
        },
      });
      sent = 0;
      for (const key of ["", "/a", "a/", "a//b", "a/../b", "a b", "é", "x".repeat(513)]) {
        expect(await codeOf(s.read(key))).toBe(ErrorCodes.InvalidArgument);
        expect(await codeOf(s.write(key, bytes("v")))).toBe(ErrorCodes.InvalidArgument);
        expect(await codeOf(s.writeIfAbsent(key, bytes("v")))).toBe(ErrorCodes.InvalidArgument);
        expect(await codeOf(s.delete(key))).toBe(ErrorCodes.InvalidArgument);
        expect(await codeOf(s.size(key))).toBe(ErrorCodes.InvalidArgument);
      }
      expect(await codeOf(collect(s.list("a//")))).toBe(ErrorCodes.InvalidArgument);
      expect(await codeOf(s.openLog("a/b"))).toBe(ErrorCodes.InvalidArgument);
      expect(sent).toBe(0);
    });

    it("lists more than 1000 keys across pages, ascending, with the prefix stripped", async () => {
      const s = await open("many");
      const keys = Array.from({ length: 1234 }, (_, i) => `k/${String(i).padStart(5, "0")}`);
      keys.push("k", "k0", "j/1", "l/1");
      const queue = [...keys];
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          for (let k = queue.pop(); k !== undefined; k = queue.pop()) await s.write(k, bytes(k));
        }),
      );
      const all = await collect(s.list(""));
      expect(all).toEqual([...keys].sort());
      const under = await collect(s.list("k/"));
      expect(under.length).toBe(1234);
      expect(under[0]).toBe("k/00000");
      expect(under.at(-1)).toBe("k/01233");
      expect(await collect(s.list("k"))).toEqual(keys.filter((k) => k.startsWith("k")).sort());
      expect(await collect(s.list("k/0123"))).toEqual(["k/01230", "k/01231", "k/01232", "k/01233"]);
      expect(await collect(s.list("zzz"))).toEqual([]);
    });
  });

  describe("writeIfAbsent", () => {
    it("reports true when the first attempt landed but its response was lost", async () => {
      let lost = 0;
      const s = await open("lost", {
        testHooks: {
          loseResponse: (op) => op === "PutObject" && lost++ === 0,
        },
      });
      expect(await s.writeIfAbsent("cas", bytes("mine"))).toBe(true);
      expect(lost).toBe(1); // the first PUT landed and its answer was discarded; the retry got 412 and compared ids
      expect(text(await s.read("cas"))).toBe("mine");
      // The object carries the write id the retry compared.
      const head = await raw.send(
        new HeadObjectCommand({ Bucket: bucket, Key: `${runPrefix}/lost/obj/cas` }),
      );
      expect(head.Metadata?.["twill-write-id"]).toMatch(/^[0-9a-f-]{36}$/);
      // A later, separate call sees someone else's object: a plain lost race.
      expect(await s.writeIfAbsent("cas", bytes("again"))).toBe(false);
    });

    it("reports false when an uncertain first attempt did not land and another writer holds the key", async () => {
      let failed = 0;
      const other = await open("uncertain");
      await other.write("cas", bytes("theirs"));
      const s = await open("uncertain", {
        testHooks: { failBeforeSend: (op) => op === "PutObject" && failed++ === 0 },
      });
      expect(await s.writeIfAbsent("cas", bytes("mine"))).toBe(false);
      expect(failed).toBe(2);
      expect(text(await s.read("cas"))).toBe("theirs");
    });

    it("lets exactly one of 50 concurrent writers win, across 5 clients, and keeps the winner's bytes", async () => {
      const clients = await Promise.all(Array.from({ length: 5 }, () => open("race")));
      for (let round = 0; round < 3; round++) {
        const key = `race-${round}`;
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => clients[i % 5]!.writeIfAbsent(key, bytes(`writer-${i}`))),
        );
        const winners = results.flatMap((won, i) => (won ? [i] : []));
        expect(winners.length).toBe(1);
        expect(text(await clients[0]!.read(key))).toBe(`writer-${winners[0]}`);
      }
    });

    it("gives up after maxAttempts with an IO error naming the operation and key", async () => {
      let attempts = 0;
      const s = await open("giveup", {
        maxAttempts: 3,
        testHooks: {
          failBeforeSend: (op) => {
            if (op !== "PutObject") return false;
            attempts++;
            return true;
          },
        },
      });
      const e = await errorOf(s.writeIfAbsent("some/key", bytes("v")));
      expect(isTwillError(e, ErrorCodes.Io)).toBe(true);
      expect(e.message).toContain("conditional PUT");
      expect(e.message).toContain('"some/key"');
      expect(e.message).toContain("3 attempts");
      expect(attempts).toBe(3);
      const e2 = await errorOf(s.write("other", bytes("v")));
      expect(e2.message).toMatch(/PUT of object "other"/);
    });
  });

  describe("network failures", () => {
    let blackhole: Server;
    let blackholePort = 0;
    const sockets = new Set<Socket>();
    beforeAll(async () => {
      // Accepts connections and never answers.
      blackhole = createServer((socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => blackhole.listen(0, "127.0.0.1", resolve));
      blackholePort = (blackhole.address() as { port: number }).port;
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => blackhole.close(() => resolve()));
    });

    it("times out each attempt and then throws TIMEOUT", async () => {
      const t0 = Date.now();
      const e = await errorOf(
        openS3Storage(new URL(`s3://${bucket}/x`), {
          endpoint: `http://127.0.0.1:${blackholePort}`,
          accessKeyId: "a",
          secretAccessKey: "b",
          requestTimeoutMs: 200,
          maxAttempts: 3,
        }),
      );
      expect(isTwillError(e, ErrorCodes.Timeout)).toBe(true);
      expect(e.message).toContain("3 attempts");
      expect(Date.now() - t0).toBeGreaterThanOrEqual(600);
      expect(Date.now() - t0).toBeLessThan(10_000);
    });

    it("retries a refused connection and then throws IO", async () => {
      const e = await errorOf(
        openS3Storage(new URL(`s3://${bucket}/x`), {
          endpoint: "http://127.0.0.1:9",
          accessKeyId: "a",
          secretAccessKey: "b",
          maxAttempts: 2,
        }),
      );
      expect(isTwillError(e, ErrorCodes.Io)).toBe(true);
      expect(e.message).toContain("2 attempts");
      expect(e.message).toContain("ECONNREFUSED");
    });
  });

  describe("log", () => {
    const frames = (...xs: string[]) => xs.map(bytes);
    const show = (fs: LogFrame[]) => fs.map((f) => `${f.lsn}:${text(f.data)}`);

    it("stores one batch object per append under log/<name>/<16-digit first LSN>", async () => {
      const s = await open("logkeys");
      const log = await s.openLog("wal");
      expect(log.nextLsn()).toBe(1);
      expect(await log.append(frames("a", "b", "c"))).toEqual({ firstLsn: 1, nextLsn: 4 });
      expect(await log.append(frames("d"))).toEqual({ firstLsn: 4, nextLsn: 5 });
      expect(await rawKeys(`${runPrefix}/logkeys/log/`)).toEqual([
        `${runPrefix}/logkeys/log/wal/0000000000000001`,
        `${runPrefix}/logkeys/log/wal/0000000000000004`,
      ]);
      await log.close();
      const again = await s.openLog("wal");
      expect(again.nextLsn()).toBe(5);
      expect(show(await collect(again.read()))).toEqual(["1:a", "2:b", "3:c", "4:d"]);
      expect(show(await collect(again.read(3)))).toEqual(["3:c", "4:d"]);
      expect(show(await collect(again.read(5)))).toEqual([]);
      await again.close();
      await again.close();
    });

    it("fences the second writer on the same log", async () => {
      const a = await open("fence");
      const b = await open("fence");
      const first = await a.openLog("wal");
      const second = await b.openLog("wal");
      await first.append(frames("from-first"));
      const e = await errorOf(second.append(frames("from-second")));
      expect(isTwillError(e, ErrorCodes.Fenced)).toBe(true);
      expect(e.message).toContain('another writer appended to log "wal" at LSN 1; this writer is fenced');
      // Fenced for good, even where the next position would be free.
      expect(await codeOf(second.append(frames("again")))).toBe(ErrorCodes.Fenced);
      // …and may not truncate what the live writer relies on.
      expect(await codeOf(second.truncate(100))).toBe(ErrorCodes.Fenced);
      await first.append(frames("still-first"));
      expect(show(await collect(second.read()))).toEqual(["1:from-first", "2:still-first"]);
      // The same holds for two handles on one storage.
      const third = await a.openLog("wal");
      await third.append(frames("third"));
      expect(await codeOf(first.append(frames("stale")))).toBe(ErrorCodes.Fenced);
    });

    it("still fences a displaced writer after the new writer truncated past its position", async () => {
      const a = await open("fence-truncated");
      const b = await open("fence-truncated");
      const old = await a.openLog("wal");
      await old.append(frames("old-1"));
      // A new writer opens at the end the old one left (LSN 2), appends its first batch there, then more, and
      // truncates everything below its newest batch.
      const fresh = await b.openLog("wal");
      await fresh.append(frames("fence"));
      await fresh.append(frames("x"));
      await fresh.append(frames("y"));
      await fresh.truncate(1_000);
      // The old writer would append at LSN 2 next: the tombstone there still makes it collide.
      expect(await codeOf(old.append(frames("lost-ack")))).toBe(ErrorCodes.Fenced);
      expect(show(await collect(fresh.read()))).toEqual(["4:y"]);
      const reader = await b.openLog("wal", { readOnly: true });
      expect(show(await collect(reader.read()))).toEqual(["4:y"]);
    });

    it("serialises concurrent appends on one handle into consecutive LSNs", async () => {
      const s = await open("concurrent");
      const log = await s.openLog("wal");
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => log.append(frames(`${i}a`, `${i}b`))),
      );
      results.forEach((r, i) => {
        expect(r).toEqual({ firstLsn: 1 + 2 * i, nextLsn: 3 + 2 * i });
      });
      const read = await collect(log.read());
      expect(read.map((f) => f.lsn)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      expect(text(read[39]!.data)).toBe("19b");
    });

    it("keeps its LSNs when an append's response was lost (no false fencing)", async () => {
      let puts = 0;
      const s = await open("lostappend", {
        testHooks: { loseResponse: (op) => op === "PutObject" && ++puts === 2 },
      });
      const log = await s.openLog("wal");
      await log.append(frames("a"));
      expect(await log.append(frames("b", "c"))).toEqual({ firstLsn: 2, nextLsn: 4 });
      expect(await log.append(frames("d"))).toEqual({ firstLsn: 4, nextLsn: 5 });
      expect(show(await collect(log.read()))).toEqual(["1:a", "2:b", "3:c", "4:d"]);
    });

    it("truncates whole batches below beforeLsn but never the last one", async () => {
      const s = await open("truncate");
      const log = await s.openLog("wal");
      await log.append(frames("1", "2")); // 1..2
      await log.append(frames("3", "4")); // 3..4
      await log.append(frames("5")); // 5
      await log.truncate(4); // drops 1..2 only: batch 3..4 still holds LSN 4
      expect(show(await collect(log.read()))).toEqual(["3:3", "4:4", "5:5"]);
      expect(show(await collect(log.read(4)))).toEqual(["4:4", "5:5"]);
      await log.truncate(1_000);
      expect(show(await collect(log.read()))).toEqual(["5:5"]);
      // Batch 1 was this handle's first append, its fence: a tombstone stays in its place.
      expect(await rawKeys(`${runPrefix}/truncate/log/wal/`)).toEqual([
        `${runPrefix}/truncate/log/wal/0000000000000001`,
        `${runPrefix}/truncate/log/wal/0000000000000005`,
      ]);
      await log.close();
      const reopened = await s.openLog("wal");
      expect(reopened.nextLsn()).toBe(6);
      expect(await reopened.append(frames("6"))).toEqual({ firstLsn: 6, nextLsn: 7 });
    });

    it("refuses append and truncate on a read-only handle, and anything on a closed one", async () => {
      const s = await open("readonly");
      const w = await s.openLog("wal");
      await w.append(frames("x"));
      const r = await s.openLog("wal", { readOnly: true });
      expect(r.readOnly).toBe(true);
      expect(r.nextLsn()).toBe(2);
      expect(await codeOf(r.append(frames("y")))).toBe(ErrorCodes.InvalidArgument);
      expect(await codeOf(r.truncate(2))).toBe(ErrorCodes.InvalidArgument);
      expect(show(await collect(r.read()))).toEqual(["1:x"]);
      await w.close();
      expect(await codeOf(w.append(frames("z")))).toBe(ErrorCodes.Closed);
      expect(await codeOf(w.append([]))).toBe(ErrorCodes.Closed);
      const w2 = await s.openLog("wal");
      expect(await codeOf(w2.append([]))).toBe(ErrorCodes.InvalidArgument);
    });

    it("reports a missing batch in the middle as CORRUPTION naming the LSN range", async () => {
      const s = await open("gap");
      const log = await s.openLog("wal");
      await log.append(frames("a"));
      await log.append(frames("b", "c"));
      await log.append(frames("d"));
      await raw.send(
        new DeleteObjectCommand({ Bucket: bucket, Key: `${runPrefix}/gap/log/wal/0000000000000002` }),
      );
      const e = await errorOf(collect(log.read()));
      expect(isTwillError(e, ErrorCodes.Corruption)).toBe(true);
      expect(e.message).toContain("missing LSNs 2..3");
      // Reading from past the gap works.
      expect(show(await collect(log.read(4)))).toEqual(["4:d"]);
    });

    it("refuses to open a log whose last batch is corrupt", async () => {
      const s = await open("corrupt");
      const log = await s.openLog("wal");
      await log.append(frames("a"));
      await log.close();
      const key = `${runPrefix}/corrupt/log/wal/0000000000000001`;
      const got = await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const body = await got.Body!.transformToByteArray();
      body[body.length - 1] = body[body.length - 1]! ^ 0xff;
      await raw.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
      expect(await codeOf(s.openLog("wal"))).toBe(ErrorCodes.Corruption);
      await raw.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `${runPrefix}/corrupt/log/other/junk`,
          Body: bytes("?"),
        }),
      );
      expect(await codeOf(s.openLog("other"))).toBe(ErrorCodes.Corruption);
    });
  });

  it("closes idempotently, closes its logs, and refuses work afterwards", async () => {
    const s = await openS3Storage(new URL(`s3://${bucket}/${runPrefix}/close`), opts);
    const log: Log = await s.openLog("wal");
    await s.close();
    await s.close();
    expect(await codeOf(s.read("k"))).toBe(ErrorCodes.Closed);
    expect(await codeOf(s.write("k", bytes("v")))).toBe(ErrorCodes.Closed);
    expect(await codeOf(log.append(frames1()))).toBe(ErrorCodes.Closed);
    expect(await codeOf(s.openLog("wal"))).toBe(ErrorCodes.Closed);
  });
});

function frames1(): Uint8Array[] {
  return [new Uint8Array([1])];
}
