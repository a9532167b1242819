/**
 * CrashSimStorage: a Storage double that simulates a process crash (power loss), in the manner of SQLite's
 * test6.c. Test code only; it is not exported from the package index.
 *
 * The seam's contract is that an operation is durable once its promise resolves. So what a crash can do is limited
 * to operations that were started but had not resolved: each of them may have been applied, not applied, or, for
 * log appends, torn (a prefix of its frames survived, the last one possibly garbled).
 *
 * How it works:
 *   - The double sits on a real storage (by default a private memory:// store, the "inner" store) that holds the
 *     durable state. Every operation is numbered (1, 2, …) when it starts, then stays in flight for a seeded number
 *     of event-loop turns (so that background work overlaps), then is applied to the inner store and resolves.
 *     Reads see only resolved mutations.
 *   - `crashAt: N`: operation N is the moment of death. It counts as started (in flight) but it, every pending
 *     operation and every later one reject with IO "simulated crash"; nothing reaches the inner store any more.
 *     `crash()` does the same at any moment.
 *   - `recover({ seed })` builds the post-crash state in a fresh store, never touching the inner one (so one crash
 *     can be recovered many ways): the inner contents plus, for each in-flight mutation in the order they started,
 *     a seeded choice of
 *       write / writeIfAbsent / delete   keep | drop   (object writes are atomic: old bytes or new)
 *       log append                       keep | drop | tear: keep k of its n frames (0 <= k < n); a dropped or torn
 *                                        append ends the log: later in-flight appends to it are dropped too
 *       log truncate                     keep | drop | partial (frames below some LSN <= beforeLsn are gone)
 *   - Target memory (default): a fresh named memory:// store. Memory logs hold frames, not bytes, so a torn
 *     append's garbled last frame is modelled by its absence — exactly what a correct log recovery makes of it.
 *     Truncated frames are re-created as placeholder frames (payload "TRUNCATED") and truncated again, so the log
 *     keeps its LSNs; a reader that asks for them gets no frame, one that mis-computes its start position may
 *     decode a placeholder and fail loudly.
 *   - Target directory (`recover({ directory })`): the state is written as a file:// database, log segments as
 *     bytes, and a torn append's trailing frame is really there: either cut short or with a flipped byte, so the
 *     file log's torn-tail detection (CRC, length) is exercised too.
 *
 * Not modelled: a crash inside a single object write leaving a partial object (the seam promises atomic writes);
 * reordering within an unsynced append (a later frame surviving a garbled earlier one).
 */

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCodes, TwillError } from "../errors.js";
import { prng } from "../util/prng.js";
import { openFileStorage, segmentName } from "./file.js";
import { encodeFrames } from "./log-format.js";
import { openMemoryStorage } from "./memory.js";
import type { AppendResult, ByteRange, Log, LogFrame, LogOpenOptions, Storage } from "./types.js";
import { StorageLimits } from "./types.js";

export type CrashSimOp =
  | "read"
  | "size"
  | "write"
  | "writeIfAbsent"
  | "list"
  | "delete"
  | "openLog"
  | "append"
  | "logRead"
  | "truncate";

export interface CrashSimOptions {
  /**
   * The storage holding the durable state. Default: a fresh private memory:// store. memory:// applies a mutation
   * synchronously, so a crash can never catch one half-applied; over another backend a mutation that is being
   * applied when the crash comes counts as resolved (applied).
   */
  inner?: Storage;
  /** Log names that exist in `inner` already (memory:// cannot list logs); logs opened through the double are added. */
  logNames?: readonly string[];
  /** 1-based number of the operation during which the process dies. Default: never. */
  crashAt?: number;
  /** Seed of the in-flight delays. Default 1. */
  seed?: number;
  /** An operation stays in flight for 0..maxDelayTurns event-loop turns. Default 2. */
  maxDelayTurns?: number;
}

export type CrashChoice = "keep" | "drop" | "tear" | "partial";

/** What `recover` did with one in-flight mutation. */
export interface CrashOutcome {
  op: CrashSimOp;
  /** Object key or log name. */
  target: string;
  choice: CrashChoice;
  /** append: frames in the append; truncate: the requested beforeLsn. */
  requested?: number;
  /** append: frames kept; truncate (partial): the beforeLsn applied. */
  applied?: number;
  /** append (tear, directory target): the trailing torn frame was cut short or garbled. */
  garbled?: "cut" | "flipped";
}

export interface RecoverOptions {
  /** Seed of the keep/drop/tear choices. Default 1. */
  seed?: number;
  /** Probability weights of keep / drop / tear. Default 0.4 / 0.3 / 0.3. */
  weights?: { keep: number; drop: number; tear: number };
  /** Write the state as a file:// database into this directory (created; should be empty). Default: memory://. */
  directory?: string;
  /** Name of the memory:// store (memory target). Default: a fresh unique name; free it with dropMemoryStore. */
  memoryName?: string;
}

export interface RecoveredState {
  /** A freshly opened storage holding the post-crash state. */
  storage: Storage;
  /** Log names in it, to pass as `logNames` to a CrashSimStorage over this state. */
  logNames: string[];
  outcomes: CrashOutcome[];
}

interface InFlight {
  n: number;
  op: CrashSimOp;
  target: string;
  /** write / writeIfAbsent: bytes; append: frames; truncate: beforeLsn. */
  bytes?: Uint8Array;
  frames?: Uint8Array[];
  beforeLsn?: number;
}

const MUTATIONS: ReadonlySet<CrashSimOp> = new Set([
  "write",
  "writeIfAbsent",
  "delete",
  "append",
  "truncate",
]);
const PLACEHOLDER = new TextEncoder().encode("TRUNCATED");

let storeCounter = 0;

export function crashedError(what: string): TwillError {
  return new TwillError(ErrorCodes.Io, `simulated crash: ${what} did not complete`, {
    hint: "the process is dead; recover() the storage and reopen",
  });
}

export class CrashSimStorage implements Storage {
  readonly inner: Storage;
  private readonly random: () => number;
  private readonly maxDelayTurns: number;
  private readonly logNameSet: Set<string>;
  private readonly openLogs = new Set<Log>();
  private readonly pending: InFlight[] = [];
  private count = 0;
  private crashedAt: number | undefined;
  private closed = false;
  /** Operation numbers and names, in start order (for diagnosing a failing crash point). */
  readonly trace: { n: number; op: CrashSimOp; target: string }[] = [];

  constructor(private readonly options: CrashSimOptions = {}) {
    this.inner = options.inner ?? openMemoryStorage("");
    this.random = prng(options.seed ?? 1);
    this.maxDelayTurns = options.maxDelayTurns ?? 2;
    this.logNameSet = new Set(options.logNames ?? []);
  }

  get kind() {
    return this.inner.kind;
  }

  get url() {
    return `crashsim+${this.inner.url}`;
  }

  /** Operations started so far (including the one that crashed). */
  get operations(): number {
    return this.count;
  }

  get crashed(): boolean {
    return this.crashedAt !== undefined;
  }

  /** Number of the operation the crash happened in (0: crashed between operations), or undefined. */
  get crashedAtOperation(): number | undefined {
    return this.crashedAt;
  }

  /** Mutations in flight at the crash (or now), in start order; `frames` for appends. */
  get inFlight(): readonly { n: number; op: CrashSimOp; target: string; frames?: number }[] {
    return this.pending.map(({ n, op, target, frames }) => ({
      n,
      op,
      target,
      ...(frames ? { frames: frames.length } : {}),
    }));
  }

  /** The process dies now: every pending and later operation rejects. */
  crash(): void {
    this.crashedAt ??= 0;
  }

  /** Log names known to exist (given or opened). */
  get logNames(): string[] {
    return [...this.logNameSet].sort();
  }

  /**
   * Runs one operation: numbers it, crashes if it is the chosen one, keeps it in flight for a few turns, then
   * applies it to the inner store (synchronously at the start of `apply`, as memory:// does) and resolves.
   */
  private async run<T>(
    op: CrashSimOp,
    target: string,
    detail: Partial<InFlight>,
    apply: () => Promise<T>,
  ): Promise<T> {
    if (this.crashedAt !== undefined) throw crashedError(`${op} ${target}`);
    if (this.closed) throw new TwillError(ErrorCodes.Closed, `storage ${this.url} is closed`);
    const n = ++this.count;
    this.trace.push({ n, op, target });
    const record: InFlight = { n, op, target, ...detail };
    const mutation = MUTATIONS.has(op);
    if (mutation) this.pending.push(record);
    if (this.options.crashAt !== undefined && n >= this.options.crashAt) {
      this.crashedAt = n;
      throw crashedError(`${op} ${target}`);
    }
    const turns = Math.floor(this.random() * (this.maxDelayTurns + 1));
    await Promise.resolve();
    for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
    if (this.crashedAt !== undefined) throw crashedError(`${op} ${target}`);
    if (mutation) this.pending.splice(this.pending.indexOf(record), 1);
    const result = await apply();
    if (this.crashedAt !== undefined) throw crashedError(`${op} ${target}`);
    return result;
  }

  read(key: string, range?: ByteRange): Promise<Uint8Array> {
    return this.run("read", key, {}, () => this.inner.read(key, range));
  }

  size(key: string): Promise<number> {
    return this.run("size", key, {}, () => this.inner.size(key));
  }

  write(key: string, bytes: Uint8Array): Promise<void> {
    const copy = bytes.slice();
    return this.run("write", key, { bytes: copy }, () => this.inner.write(key, copy));
  }

  writeIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    const copy = bytes.slice();
    return this.run("writeIfAbsent", key, { bytes: copy }, () => this.inner.writeIfAbsent(key, copy));
  }

  async *list(prefix: string): AsyncIterable<string> {
    const keys = await this.run("list", prefix, {}, async () => {
      const all: string[] = [];
      for await (const key of this.inner.list(prefix)) all.push(key);
      return all;
    });
    yield* keys;
  }

  delete(key: string): Promise<void> {
    return this.run("delete", key, {}, () => this.inner.delete(key));
  }

  async openLog(name: string, options?: LogOpenOptions): Promise<Log> {
    const inner = await this.run("openLog", name, {}, () => this.inner.openLog(name, options));
    this.logNameSet.add(name);
    const log = new CrashSimLog(inner, this, () => this.openLogs.delete(log));
    this.openLogs.add(log);
    return log;
  }

  /** @internal used by CrashSimLog */
  runLog<T>(op: CrashSimOp, target: string, detail: Partial<InFlight>, apply: () => Promise<T>): Promise<T> {
    return this.run(op, target, detail, apply);
  }

  /** Closes the logs opened through the double (releasing their writer locks); the inner store stays readable. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const log of [...this.openLogs]) await log.close();
  }

  /** Builds the post-crash state (see the header). Crashes first if the process is still "alive". */
  async recover(options: RecoverOptions = {}): Promise<RecoveredState> {
    this.crash();
    const random = prng(options.seed ?? 1);
    const weights = options.weights ?? { keep: 0.4, drop: 0.3, tear: 0.3 };
    const choose = (tearable: boolean): CrashChoice => {
      const total = weights.keep + weights.drop + (tearable ? weights.tear : 0);
      const x = random() * total;
      if (x < weights.keep) return "keep";
      if (x < weights.keep + weights.drop) return "drop";
      return "tear";
    };

    // The durable state.
    const objects = new Map<string, Uint8Array>();
    for await (const key of this.inner.list("")) objects.set(key, await this.inner.read(key));
    const logs = new Map<string, { frames: LogFrame[]; next: number; ended: boolean; torn?: Uint8Array }>();
    for (const name of this.logNameSet) {
      const log = await this.inner.openLog(name, { readOnly: true });
      const frames: LogFrame[] = [];
      for await (const frame of log.read(1)) frames.push({ lsn: frame.lsn, data: frame.data.slice() });
      logs.set(name, { frames, next: log.nextLsn(), ended: false });
      await log.close();
    }

    // Plus the in-flight mutations, in the order they started.
    const outcomes: CrashOutcome[] = [];
    for (const m of this.pending) {
      switch (m.op) {
        case "write":
        case "writeIfAbsent":
        case "delete": {
          const choice = choose(false);
          outcomes.push({ op: m.op, target: m.target, choice });
          if (choice !== "keep") break;
          if (m.op === "delete") objects.delete(m.target);
          else if (m.op === "write" || !objects.has(m.target)) objects.set(m.target, m.bytes!);
          break;
        }
        case "append": {
          const log = logs.get(m.target)!;
          const frames = m.frames!;
          if (log.ended) {
            outcomes.push({
              op: m.op,
              target: m.target,
              choice: "drop",
              requested: frames.length,
              applied: 0,
            });
            break;
          }
          const choice = choose(true);
          const keep =
            choice === "keep" ? frames.length : choice === "drop" ? 0 : Math.floor(random() * frames.length);
          const outcome: CrashOutcome = {
            op: m.op,
            target: m.target,
            choice,
            requested: frames.length,
            applied: keep,
          };
          for (let i = 0; i < keep; i++) log.frames.push({ lsn: log.next++, data: frames[i]! });
          if (choice !== "keep") {
            log.ended = true;
            if (choice === "tear") {
              // The frame after the kept ones was being written: cut short or with a flipped byte (directory target).
              const torn = encodeFrames(log.next, [frames[keep]!]);
              if (random() < 0.5) {
                outcome.garbled = "cut";
                log.torn = torn.subarray(0, Math.floor(random() * torn.length));
              } else {
                outcome.garbled = "flipped";
                const at = Math.floor(random() * torn.length);
                torn[at]! ^= 1 << Math.floor(random() * 8);
                log.torn = torn;
              }
            }
          }
          outcomes.push(outcome);
          break;
        }
        case "truncate": {
          const log = logs.get(m.target)!;
          const before = m.beforeLsn!;
          const r = random();
          const choice: CrashChoice = r < 0.4 ? "keep" : r < 0.7 ? "drop" : "partial";
          let applied: number | undefined;
          if (choice !== "drop") {
            const first = log.frames[0]?.lsn ?? log.next;
            applied =
              choice === "keep" || before <= first
                ? before
                : first + Math.floor(random() * (before - first + 1));
            log.frames = log.frames.filter((f) => f.lsn >= applied!);
          }
          outcomes.push({
            op: m.op,
            target: m.target,
            choice,
            requested: before,
            ...(applied ? { applied } : {}),
          });
          break;
        }
        default:
          break;
      }
    }

    const logNames = [...logs.keys()].sort();
    if (options.directory !== undefined) {
      const dir = options.directory;
      const storage = await openFileStorage(dir, { unsafeNoSync: true });
      for (const [key, bytes] of objects) await storage.write(key, bytes);
      for (const [name, log] of logs) {
        const logDir = join(dir, "log", name);
        await mkdir(logDir, { recursive: true });
        const first = log.frames[0]?.lsn ?? log.next;
        const body = encodeFrames(
          first,
          log.frames.map((f) => f.data),
        );
        const torn = log.torn ?? new Uint8Array(0);
        const bytes = new Uint8Array(body.length + torn.length);
        bytes.set(body, 0);
        bytes.set(torn, body.length);
        await writeFile(join(logDir, segmentName(first)), bytes);
      }
      return { storage, logNames, outcomes };
    }

    const name =
      options.memoryName ?? `crash-sim-${process.pid}-${++storeCounter}-${Date.now().toString(36)}`;
    const storage = openMemoryStorage(name);
    for (const [key, bytes] of objects) await storage.write(key, bytes);
    for (const [name, log] of logs) {
      const handle = await storage.openLog(name);
      const first = log.frames[0]?.lsn ?? log.next;
      // Re-create the LSNs below the first retained frame, then truncate them away.
      for (let lsn = 1; lsn < first; ) {
        const n = Math.min(first - lsn, StorageLimits.appendFramesMax);
        await handle.append(Array.from({ length: n }, () => PLACEHOLDER));
        lsn += n;
      }
      if (first > 1) await handle.truncate(first);
      for (let i = 0; i < log.frames.length; i += StorageLimits.appendFramesMax) {
        await handle.append(log.frames.slice(i, i + StorageLimits.appendFramesMax).map((f) => f.data));
      }
      if (handle.nextLsn() !== log.next) {
        throw new TwillError(
          ErrorCodes.Internal,
          `crash-sim: rebuilt log ${name} ends at ${handle.nextLsn()}, not ${log.next}`,
        );
      }
      await handle.close();
    }
    return { storage, logNames, outcomes };
  }
}

class CrashSimLog implements Log {
  constructor(
    private readonly inner: Log,
    private readonly sim: CrashSimStorage,
    private readonly onClose: () => void,
  ) {}

  get name() {
    return this.inner.name;
  }

  get readOnly() {
    return this.inner.readOnly;
  }

  nextLsn(): number {
    return this.inner.nextLsn();
  }

  append(frames: readonly Uint8Array[]): Promise<AppendResult> {
    const copies = frames.map((f) => f.slice());
    return this.sim.runLog("append", this.name, { frames: copies }, () => this.inner.append(copies));
  }

  async *read(fromLsn?: number): AsyncIterable<LogFrame> {
    const frames = await this.sim.runLog("logRead", this.name, {}, async () => {
      const all: LogFrame[] = [];
      for await (const frame of this.inner.read(fromLsn)) all.push(frame);
      return all;
    });
    yield* frames;
  }

  truncate(beforeLsn: number): Promise<void> {
    return this.sim.runLog("truncate", this.name, { beforeLsn }, () => this.inner.truncate(beforeLsn));
  }

  async close(): Promise<void> {
    this.onClose();
    await this.inner.close();
  }
}
