/**
 * FaultyStorage: a Storage wrapper that fails on purpose, deterministically from a seed, so tests can show that
 * callers survive errors, slowness and the worst case of a remote store: a write that was applied but whose
 * answer was lost ("after" faults). Used on top of real backends, never instead of them.
 */

import { ErrorCodes, TwillError } from "../errors.js";
import { prng } from "../util/prng.js";
import type { AppendResult, ByteRange, Log, LogFrame, LogOpenOptions, Storage } from "./types.js";

export type FaultOp =
  | "read"
  | "size"
  | "write"
  | "writeIfAbsent"
  | "list"
  | "delete"
  | "append"
  | "logRead"
  | "truncate";
export type FaultWhen = "before" | "after";

export interface FaultOptions {
  /** PRNG seed: the same seed and the same call sequence give the same faults. */
  seed?: number;
  /** Probability (0..1) that an affected operation fails before it is applied. */
  failBeforeRate?: number;
  /** Probability (0..1) that an affected mutation is applied and then reports failure. */
  failAfterRate?: number;
  /** Added latency per operation, uniformly in [min, max] milliseconds. */
  latencyMs?: { min: number; max: number };
  /** Operations the rates apply to (default: all). */
  ops?: readonly FaultOp[];
}

const MUTATIONS: ReadonlySet<FaultOp> = new Set(["write", "writeIfAbsent", "delete", "append", "truncate"]);

export class FaultyStorage implements Storage {
  private readonly random: () => number;
  private readonly scheduled: { op: FaultOp; when: FaultWhen }[] = [];
  /** Faults injected so far, by operation and timing. */
  readonly injected: { op: FaultOp; when: FaultWhen }[] = [];
  enabled = true;

  constructor(
    readonly inner: Storage,
    private readonly options: FaultOptions = {},
  ) {
    this.random = prng(options.seed ?? 1);
  }

  get kind() {
    return this.inner.kind;
  }
  get url() {
    return this.inner.url;
  }

  /** Makes the next call of `op` fail, before or after it is applied, whatever the rates. */
  failNext(op: FaultOp, when: FaultWhen = "before"): void {
    this.scheduled.push({ op, when });
  }

  private decide(op: FaultOp): FaultWhen | undefined {
    if (!this.enabled) return undefined;
    const i = this.scheduled.findIndex((s) => s.op === op);
    if (i !== -1) return this.scheduled.splice(i, 1)[0]!.when;
    if (this.options.ops && !this.options.ops.includes(op)) return undefined;
    if (this.random() < (this.options.failBeforeRate ?? 0)) return "before";
    if (MUTATIONS.has(op) && this.random() < (this.options.failAfterRate ?? 0)) return "after";
    return undefined;
  }

  private async delay(): Promise<void> {
    const latency = this.options.latencyMs;
    if (!latency || !this.enabled) return;
    const ms = latency.min + this.random() * (latency.max - latency.min);
    await new Promise((r) => setTimeout(r, ms));
  }

  /** Runs `work` under the fault schedule for `op`. */
  async run<T>(op: FaultOp, what: string, work: () => Promise<T>): Promise<T> {
    await this.delay();
    const when = this.decide(op);
    if (when === "before") throw this.fault(op, when, what);
    const result = await work();
    if (when === "after") throw this.fault(op, when, what);
    return result;
  }

  private fault(op: FaultOp, when: FaultWhen, what: string): TwillError {
    this.injected.push({ op, when });
    const applied = when === "after" ? " (the operation was applied)" : "";
    return new TwillError(ErrorCodes.Io, `injected fault: ${op} ${what} failed${applied}`);
  }

  read(key: string, range?: ByteRange): Promise<Uint8Array> {
    return this.run("read", key, () => this.inner.read(key, range));
  }
  size(key: string): Promise<number> {
    return this.run("size", key, () => this.inner.size(key));
  }
  write(key: string, bytes: Uint8Array): Promise<void> {
    return this.run("write", key, () => this.inner.write(key, bytes));
  }
  writeIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    return this.run("writeIfAbsent", key, () => this.inner.writeIfAbsent(key, bytes));
  }
  async *list(prefix: string): AsyncIterable<string> {
    const keys = await this.run("list", prefix, async () => {
      const all: string[] = [];
      for await (const key of this.inner.list(prefix)) all.push(key);
      return all;
    });
    yield* keys;
  }
  delete(key: string): Promise<void> {
    return this.run("delete", key, () => this.inner.delete(key));
  }
  async openLog(name: string, options?: LogOpenOptions): Promise<Log> {
    return new FaultyLog(await this.inner.openLog(name, options), this);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

class FaultyLog implements Log {
  constructor(
    private readonly inner: Log,
    private readonly faults: FaultyStorage,
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
    return this.faults.run("append", `log ${this.name}`, () => this.inner.append(frames));
  }
  async *read(fromLsn?: number): AsyncIterable<LogFrame> {
    const frames = await this.faults.run("logRead", `log ${this.name}`, async () => {
      const all: LogFrame[] = [];
      for await (const frame of this.inner.read(fromLsn)) all.push(frame);
      return all;
    });
    yield* frames;
  }
  truncate(beforeLsn: number): Promise<void> {
    return this.faults.run("truncate", `log ${this.name}`, () => this.inner.truncate(beforeLsn));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
