import { readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openStorage } from "../src/storage/open.js";

const openFds = (): number => readdirSync("/proc/self/fd").length;

describe("file:// object reads through cached descriptors", () => {
  it.skipIf(process.platform !== "linux")(
    "reads 300 objects interleaved with a hot one correctly, holding at most 256 descriptors, and closes them all",
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "twill-file-reads-"));
      try {
        const storage = await openStorage(`file://${dir}`);
        const n = 300;
        const body = (i: number) => new Uint8Array(64).map((_, j) => (i * 7 + j) & 0xff);
        for (let i = 0; i < n; i++) await storage.write(`sst/${i}.sst`, body(i));
        await storage.write("sst/hot.sst", body(1000));
        const before = openFds();
        for (let round = 0; round < 2; round++) {
          for (let i = 0; i < n; i++) {
            // Ranged async reads and synchronous reads into a caller's buffer, with the hot object between.
            expect(await storage.read(`sst/${i}.sst`, { offset: 8, length: 16 })).toEqual(
              body(i).subarray(8, 24),
            );
            const into = new Uint8Array(64);
            expect(storage.readIntoSync!("sst/hot.sst", 0, into)).toBe(64);
            expect(into).toEqual(body(1000));
            // Past the end the read stops short, and only the bytes read are written.
            const tail = new Uint8Array(32).fill(0xee);
            expect(storage.readIntoSync!(`sst/${i}.sst`, 48, tail)).toBe(16);
            expect(tail.subarray(0, 16)).toEqual(body(i).subarray(48));
            expect(tail[16]).toBe(0xee);
          }
          expect(openFds() - before).toBeLessThanOrEqual(256);
        }
        // A write or delete of a read object drops its descriptor: the new bytes are read, not the old file's.
        await storage.write("sst/hot.sst", body(2000));
        expect(await storage.read("sst/hot.sst")).toEqual(body(2000));
        await storage.close();
        expect(openFds()).toBeLessThanOrEqual(before);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});
