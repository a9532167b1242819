/**
 * Model-based property test of branches: fast-check generates interleavings of writes on the base and on branches,
 * forks (now, or at an earlier position of the parent), long-lived snapshots, flushes, compactions, merges with each
 * conflict policy, drops, and reopens in the middle (every branch also opened alone, its ancestors read-only), and
 * checks every read against an in-memory model.
 *
 * The model keeps, per branch, its committed states in order with their commit LSNs; a branch starts as a copy of
 * its parent's state at the fork position. Isolation both ways follows: a write changes only its own branch's model.
 * A merge applies the branch's own written keys (their newest value on the branch) onto the parent; a conflict is a
 * key whose parent value now differs from the parent's value at the fork and from the branch's value.
 *
 * Scale with TWILL_BRANCH_MODEL_RUNS (default 60 on memory://, 15 on file://) and TWILL_MODEL_SEED.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { MergeConflictError } from "../src/engine/branch.js";
import { Engine, type EngineOptions } from "../src/engine/engine.js";
import type { Transaction } from "../src/engine/txn/transaction.js";
import { ErrorCodes, isTwillError } from "../src/errors.js";
import { dropMemoryStore } from "../src/storage/memory.js";
import { openStorage } from "../src/storage/open.js";
import type { Storage } from "../src/storage/types.js";
import { smallEngine } from "./helpers/engine-options.js";

const env = (name: string): number | undefined => {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : Number(v);
};
const RUNS = env("TWILL_BRANCH_MODEL_RUNS");
const SEED = env("TWILL_MODEL_SEED");

const OPTIONS: EngineOptions = { ...smallEngine, l0CompactionTrigger: 2 };

const KEYS = ["a", "b", "c", "d", "e", "f"];
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

type Op =
  | { t: "write"; b: number; writes: [string, string | null][] }
  | { t: "fork"; b: number; past: number | null }
  | { t: "snap"; b: number }
  | { t: "checkSnaps" }
  | { t: "read"; b: number }
  | { t: "flush"; b: number }
  | { t: "compact"; b: number }
  | { t: "merge"; b: number; policy: "fail" | "ours" | "theirs" }
  | { t: "drop"; b: number }
  | { t: "reopen" };

const branchIx = fc.nat({ max: 9 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant("write" as const),
      b: branchIx,
      writes: fc.array(
        fc.tuple(fc.constantFrom(...KEYS), fc.option(fc.constantFrom("1", "2", "3", "4"), { nil: null })),
        { minLength: 1, maxLength: 3 },
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("fork" as const),
      b: branchIx,
      past: fc.option(fc.double({ min: 0, max: 0.999, noNaN: true }), { nil: null }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("snap" as const), b: branchIx }) },
  { weight: 1, arbitrary: fc.constant({ t: "checkSnaps" as const }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("read" as const), b: branchIx }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("flush" as const), b: branchIx }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("compact" as const), b: branchIx }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("merge" as const),
      b: branchIx,
      policy: fc.constantFrom("fail" as const, "ours" as const, "theirs" as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("drop" as const), b: branchIx }) },
  { weight: 1, arbitrary: fc.constant({ t: "reopen" as const }) },
);

type State = Map<string, string>;

interface MBranch {
  name: string;
  parent: number | undefined;
  forkLsn: number;
  engine: Engine | undefined;
  states: { lsn: number; state: State }[];
  /** Keys written on this branch since its fork (what a merge applies). */
  own: Set<string>;
  dropped: boolean;
}

const current = (b: MBranch) => b.states.at(-1)!.state;

function stateAt(b: MBranch, lsn: number): State {
  let found = b.states[0]!.state;
  for (const s of b.states) if (s.lsn <= lsn) found = s.state;
  return found;
}

async function scanAll(it: AsyncIterable<{ key: Uint8Array; value: Uint8Array }>): Promise<State> {
  const out: State = new Map();
  for await (const kv of it) out.set(dec(kv.key), dec(kv.value));
  return out;
}

const asObject = (s: State) => Object.fromEntries([...s].sort(([a], [b]) => (a < b ? -1 : 1)));

async function runSequence(
  ops: Op[],
  open: () => Promise<Storage>,
  coverage: Record<string, number>,
): Promise<void> {
  let storage = await open();
  const main = await Engine.open(storage, OPTIONS);
  const branches: MBranch[] = [
    {
      name: "main",
      parent: undefined,
      forkLsn: 0,
      engine: main,
      states: [{ lsn: main.lastCommittedLsn, state: new Map() }],
      own: new Set(),
      dropped: false,
    },
  ];
  let snaps: { b: number; idx: number; txn: Transaction }[] = [];
  let forks = 0;
  const live = () => branches.filter((b) => !b.dropped);
  const pick = (i: number) => live()[i % live().length]!;
  const indexOf = (b: MBranch) => branches.indexOf(b);

  const check = async (b: MBranch, engine: Engine = b.engine!) => {
    expect(asObject(await scanAll(engine.readRange({}))), `scan of ${b.name}`).toEqual(asObject(current(b)));
    for (const k of KEYS) {
      const v = await engine.read(enc(k));
      expect(v === undefined ? undefined : dec(v), `get ${k} on ${b.name}`).toBe(current(b).get(k));
    }
  };

  try {
    for (const op of ops) {
      switch (op.t) {
        case "write": {
          const b = pick(op.b);
          const txn = b.engine!.begin();
          const next = new Map(current(b));
          for (const [k, v] of op.writes) {
            if (v === null) {
              txn.delete(enc(k));
              next.delete(k);
            } else {
              txn.put(enc(k), enc(`${b.name}:${v}`));
              next.set(k, `${b.name}:${v}`);
            }
            b.own.add(k);
          }
          const lsn = await txn.commit();
          b.states.push({ lsn, state: next });
          break;
        }
        case "fork": {
          if (live().length >= 8) break;
          const parent = pick(op.b);
          const idx =
            op.past === null ? parent.states.length - 1 : Math.floor(op.past * parent.states.length);
          const at = op.past === null ? undefined : parent.states[idx]!.lsn;
          const name = `br${++forks}`;
          let engine: Engine;
          try {
            engine = await parent.engine!.branch(name, at === undefined ? {} : { at });
          } catch (error) {
            // Only a position compaction merged away may be refused.
            expect(isTwillError(error, ErrorCodes.InvalidArgument), String(error)).toBe(true);
            expect(at).toBeLessThan(parent.engine!.oldestForkableLsn);
            coverage.refusedForks!++;
            break;
          }
          coverage.forks!++;
          const forkLsn = engine.parentBranch!.forkLsn;
          branches.push({
            name,
            parent: indexOf(parent),
            forkLsn,
            engine,
            states: [{ lsn: engine.lastCommittedLsn, state: new Map(stateAt(parent, forkLsn)) }],
            own: new Set(),
            dropped: false,
          });
          break;
        }
        case "snap": {
          if (snaps.length >= 3) break;
          const b = pick(op.b);
          snaps.push({ b: indexOf(b), idx: b.states.length - 1, txn: b.engine!.begin() });
          break;
        }
        case "checkSnaps":
          for (const s of snaps) {
            const b = branches[s.b]!;
            expect(asObject(await scanAll(s.txn.scan({}))), `snapshot of ${b.name}`).toEqual(
              asObject(b.states[s.idx]!.state),
            );
          }
          break;
        case "read":
          await check(pick(op.b));
          coverage.reads!++;
          break;
        case "flush":
          await pick(op.b).engine!.flush();
          break;
        case "compact": {
          const b = pick(op.b);
          await b.engine!.flush();
          await b.engine!.compact();
          coverage.compactions!++;
          break;
        }
        case "merge": {
          const b = pick(op.b);
          if (b.parent === undefined) break;
          const parent = branches[b.parent]!;
          const atFork = stateAt(parent, b.forkLsn);
          const next = new Map(current(parent));
          const conflicts: string[] = [];
          const applied: string[] = [];
          for (const k of [...b.own].sort()) {
            const mine = current(b).get(k);
            const theirs = current(parent).get(k);
            if (theirs !== atFork.get(k)) {
              if (theirs === mine) continue;
              conflicts.push(k);
              if (op.policy !== "ours") continue;
            }
            if (mine === undefined) next.delete(k);
            else next.set(k, mine);
            applied.push(k);
          }
          try {
            const result = await b.engine!.merge({ onConflict: op.policy });
            expect(op.policy === "fail" && conflicts.length > 0, "merge should have failed").toBe(false);
            expect(result.conflicts.map((c) => dec(c.key))).toEqual(conflicts);
            expect(result.applied).toBe(applied.length);
            if (result.applied > 0) parent.states.push({ lsn: result.commitLsn, state: next });
            for (const k of applied) parent.own.add(k);
            coverage.merges!++;
          } catch (error) {
            if (!(error instanceof MergeConflictError)) throw error;
            expect(op.policy).toBe("fail");
            expect(error.conflicts.map((c) => dec(c.key))).toEqual(conflicts);
            coverage.failedMerges!++;
          }
          await check(parent);
          break;
        }
        case "drop": {
          const b = pick(op.b);
          if (b.parent === undefined || live().some((x) => x.parent === indexOf(b))) break;
          snaps = snaps.filter((s) => {
            if (s.b !== indexOf(b)) return true;
            s.txn.abort();
            return false;
          });
          await b.engine!.close();
          expect(await branches[0]!.engine!.dropBranch(b.name)).toEqual([b.name]);
          b.dropped = true;
          b.engine = undefined;
          coverage.drops!++;
          break;
        }
        case "reopen": {
          for (const s of snaps) s.txn.abort();
          snaps = [];
          await branches[0]!.engine!.close(); // closes every branch opened from it
          await storage.close();
          storage = await open();
          // Each branch alone: its ancestors read-only from their manifests and logs.
          for (const b of live()) {
            const alone = await Engine.open(storage, { ...OPTIONS, branch: b.name });
            await check(b, alone);
            await alone.close();
          }
          // Then the family again, each child reading through its live parent.
          const reopened = await Engine.open(storage, OPTIONS);
          branches[0]!.engine = reopened;
          for (const b of live().slice(1)) {
            b.engine = await Engine.open(
              storage,
              { ...OPTIONS, branch: b.name },
              { parent: branches[b.parent!]!.engine! },
            );
          }
          coverage.reopens!++;
          break;
        }
      }
    }
    for (const b of live()) await check(b);
    coverage.sequences!++;
  } finally {
    for (const s of snaps) s.txn.abort();
    await branches[0]!.engine?.close();
    await storage.close();
  }
}

describe("branch model", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  for (const backend of ["memory", "file"] as const) {
    it(`random interleavings on ${backend}:// match the model`, { timeout: 240_000 }, async () => {
      const coverage: Record<string, number> = {
        sequences: 0,
        forks: 0,
        refusedForks: 0,
        reads: 0,
        compactions: 0,
        merges: 0,
        failedMerges: 0,
        drops: 0,
        reopens: 0,
      };
      let n = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 40 }), async (ops) => {
          const id = `branch-model-${process.pid}-${n++}`;
          const dir = backend === "file" ? await mkdtemp(join(tmpdir(), "twill-bmodel-")) : undefined;
          const url = dir ? `file://${dir}` : `memory://${id}`;
          if (dir) dirs.push(dir);
          try {
            await runSequence(ops, () => openStorage(url), coverage);
          } finally {
            if (backend === "memory") dropMemoryStore(id);
            else if (dir) await rm(dir, { recursive: true, force: true });
          }
        }),
        { numRuns: RUNS ?? (backend === "memory" ? 60 : 15), ...(SEED === undefined ? {} : { seed: SEED }) },
      );
      console.log(`branch model on ${backend}://: ${JSON.stringify(coverage)}`);
      expect(coverage.forks).toBeGreaterThan(0);
      expect(coverage.merges! + coverage.failedMerges!).toBeGreaterThan(0);
      expect(coverage.reopens).toBeGreaterThan(0);
    });
  }
});
