/**
 * bench/engine/ab-verify: CPU of what a point read does to a 4 KiB data block that missed the block cache, after
 * the read — the load checks (checksum, restart offsets and entries), the restart search and the first lookup in
 * the interval, which checks it — for several source trees in one process, in alternating rounds (as ab-get.ts
 * does for whole gets), so that a shared machine's load falls on every build alike. No storage, cache or index
 * search: each miss copies a stored block into one buffer (as a pread into a recycled buffer would) and decodes it.
 * The blocks are bench/engine's rows (16-byte keys, 184-byte values) in one SST; the reads are seeded random keys.
 *
 * Run: npx tsx bench/engine/ab-verify.ts <root>[:restartInterval] [<root>…]
 *   e.g. npx tsx bench/engine/ab-verify.ts /tmp/base . .:8
 * Prints ns per miss (median, 25th percentile and minimum over the rounds). A build is a source tree (a `git
 * archive` of a commit unpacked next to a node_modules link); trees from before the one-pass check
 * (`verifyAndGet`) run `verifyInterval` then `getFromInterval`. Not a benchmark of record (no peer).
 */

import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const ROWS = 40_000;
const READS = 8192;
const PER_ROUND = 50_000;
const ROUNDS = Number(process.env.ROUNDS ?? 15);

interface EntryLike {
  key: Uint8Array;
  lsn: number;
  kind: number;
  value: Uint8Array;
}

const specs = process.argv.slice(2).map((arg) => {
  const at = arg.lastIndexOf(":");
  return at > 0
    ? { root: resolve(arg.slice(0, at)), restartInterval: Number(arg.slice(at + 1)) }
    : { root: resolve(arg), restartInterval: 16 };
});
if (specs.length === 0) throw new Error("usage: ab-verify.ts <root>[:restartInterval] …");

const load = (root: string, path: string) => import(pathToFileURL(join(root, path)).href);

interface Build {
  label: string;
  run(misses: number): number;
  ns: number[];
}

const builds: Build[] = [];
for (const { root, restartInterval } of specs) {
  const rows = await load(root, "bench/rows.ts");
  const { buildSst } = await load(root, "src/engine/lsm/sst.ts");
  const blk = await load(root, "src/engine/lsm/sst-block.ts");
  const fmt = await load(root, "src/engine/lsm/sst-format.ts");
  const { EntryKind } = await load(root, "src/engine/lsm/types.ts");
  const entries: EntryLike[] = Array.from({ length: ROWS }, (_, i) => ({
    key: rows.u8(rows.rowKey(i)),
    lsn: 3,
    kind: EntryKind.Put,
    value: rows.u8(rows.rowValue(i)),
  }));
  const sst: Uint8Array = buildSst(entries, { blockBytesTarget: 4096, restartInterval });
  const footer = fmt.decodeFooter(sst.subarray(sst.length - fmt.FOOTER_BYTES), sst.length, "ab");
  const indexEnd = footer.indexOffset + footer.indexLength - 4;
  const index = fmt.decodeIndex(sst.subarray(footer.indexOffset, indexEnd), footer.indexOffset, "ab");
  const lastKeys: Uint8Array[] = Array.from({ length: index.blockCount }, (_, i) => fmt.lastKeyOf(index, i));
  const scanner = new blk.BlockScanner(16);
  const buffer = new Uint8Array(4352);
  // One seeded sequence for all builds (an LCG: the builds' own PRNGs may differ).
  let x = 7;
  const reads = Array.from({ length: READS }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const row = Math.floor((x / 2 ** 32) * ROWS);
    let lo = 0;
    let hi = index.blockCount - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (Buffer.compare(lastKeys[mid]!, entries[row]!.key) < 0) lo = mid + 1;
      else hi = mid;
    }
    const offset: number = index.offsets[lo]!;
    return { key: entries[row]!.key, block: lo, raw: sst.subarray(offset, offset + index.lengths[lo]!) };
  });
  const oneOf = blk.verifyAndGet !== undefined;
  const lsnLimit = 2 ** 52;
  builds.push({
    label: `${root === process.cwd() ? "." : root}:${restartInterval}`,
    run(misses) {
      let sink = 0;
      for (let n = 0; n < misses; n++) {
        const { key, block: i, raw } = reads[n % READS]!;
        const offset: number = index.offsets[i]!;
        buffer.set(raw);
        const bounds = {
          prevLastKey: i > 0 ? lastKeys[i - 1] : undefined,
          prevLastLsn: i > 0 ? index.lastLsns[i - 1]! : 0,
          minKey: entries[0]!.key,
          lastKey: lastKeys[i]!,
          lastLsn: index.lastLsns[i]!,
        };
        const block = blk.decodeDataBlock(
          buffer,
          raw.length,
          offset,
          bounds,
          scanner,
          "ab",
          i,
          footer.formatVersion,
        );
        block.buffer = buffer;
        const r = blk.restartFor(block, key, lsnLimit);
        let found: EntryLike | undefined;
        if (oneOf) {
          found = blk.verifyAndGet(
            block,
            r,
            key,
            lsnLimit,
            bounds.lastKey,
            bounds.lastLsn,
            scanner,
            "ab",
            i,
            offset,
          );
        } else {
          blk.verifyInterval(block, r, bounds.lastKey, bounds.lastLsn, scanner, "ab", i, offset);
          found = blk.getFromInterval(block, r, key, lsnLimit);
        }
        if (found === undefined) throw new Error("a stored key was not found");
        sink += found.lsn;
      }
      return sink;
    },
    ns: [],
  });
}

for (let w = 0; w < 3; w++) for (const b of builds) b.run(PER_ROUND);
for (let round = 0; round < ROUNDS; round++) {
  // Alternate the order too, so that no build always runs after the same one's garbage.
  for (const b of round % 2 === 0 ? builds : [...builds].reverse()) {
    const cpu0 = process.cpuUsage();
    b.run(PER_ROUND);
    const cpu = process.cpuUsage(cpu0);
    b.ns.push(((cpu.user + cpu.system) * 1000) / PER_ROUND);
  }
}
const load1 = (await import("node:os")).loadavg()[0]!;
console.log(`${ROUNDS} rounds of ${PER_ROUND} misses per build, load ${load1.toFixed(2)}`);
console.log("build | CPU ns/miss median | p25 | min");
for (const b of builds) {
  const sorted = [...b.ns].sort((p, q) => p - q);
  const at = (f: number) => sorted[Math.floor(f * (sorted.length - 1))]!.toFixed(0);
  console.log(`${b.label} | ${at(0.5)} | ${at(0.25)} | ${at(0)}`);
}
