/**
 * s3:// — the storage seam on any S3-compatible object store (AWS S3, Ceph RGW, MinIO, R2), through
 * `@aws-sdk/client-s3` with our own retry loop.
 *
 * URL: `s3://<bucket>[/<prefix>][?endpoint=…&region=…&forcePathStyle=true&accessKeyId=…&secretAccessKey=…]`.
 * Options passed to `openS3Storage` win over the query; credentials come from the options, then the URL, then the
 * SDK's default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, instance roles). The storage's `url`
 * never carries credentials.
 *
 * Layout in the bucket:
 *   <prefix>/obj/<key>                          one object per key, the bytes as given
 *   <prefix>/log/<name>/<firstLsn, 16 digits>   one object per append: encodeBatch(firstLsn, frames)
 * (no leading "<prefix>/" when the prefix is empty). 16 zero-padded decimal digits hold every LSN below 2^53 and
 * sort in LSN order, so a listing is the log in order.
 *
 * Invariants:
 *   - Every conditional PUT (`writeIfAbsent`, log `append`) carries `If-None-Match: *` and a random
 *     `x-amz-meta-twill-write-id`. A 412 after an attempt whose outcome is unknown (timeout, reset, 5xx, 409) is
 *     resolved by reading that id back: our own earlier attempt landed iff the ids match. So a retry never reports
 *     a lost race for its own write, and of N racing writers exactly one wins.
 *   - A log handle's next LSN is the end of the last batch object. An append that loses the race for its key
 *     means another writer appended there: the handle is fenced and never appends again. An append whose outcome
 *     stays unknown after every retry poisons the handle too (reopen the log to learn the truth).
 *   - `truncate` never deletes the last batch object, so the end of the log survives.
 *   - Nothing the SDK throws leaves this module: every failure is a TwillError, without credentials.
 *
 *   - The first batch a writable handle appends is its fence: a writer that was displaced would append exactly
 *     there next (the new writer opened at the end the old one left). When truncation passes the fence, the batch
 *     is replaced by a tombstone (FENCE_TOMBSTONE) instead of deleted, so the old writer's conditional PUT still
 *     collides and it learns it was fenced. `read` skips tombstones; they only ever sit in the truncated prefix.
 */

import { randomUUID } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { type ErrorCode, ErrorCodes, notFound, TwillError } from "../errors.js";
import {
  rangeNotSatisfiable,
  validateFrames,
  validateKey,
  validateLogName,
  validatePrefix,
  validateRange,
} from "./keys.js";
import { decodeBatch, encodeBatch } from "./log-format.js";
import type { AppendResult, ByteRange, Log, LogFrame, LogOpenOptions, Storage } from "./types.js";

export interface S3StorageOptions {
  /** S3 endpoint, e.g. `http://127.0.0.1:7480`. Default: the URL's `endpoint`, then $TWILL_S3_ENDPOINT,
   * $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, then AWS itself. */
  endpoint?: string;
  /** Default: the URL's `region`, then $AWS_REGION, $AWS_DEFAULT_REGION, then `us-east-1`. */
  region?: string;
  /** Path-style addressing (`endpoint/bucket/key`). Default: true when an endpoint is given, else false. */
  forcePathStyle?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Deadline of one HTTP attempt, in ms. Default 10,000. */
  requestTimeoutMs?: number;
  /** Attempts per operation, first one included. Default 6. */
  maxAttempts?: number;
  /** Create the bucket when it does not exist. Default false. */
  createBucket?: boolean;
  /** @internal Fault injection for tests; see S3TestHooks. */
  testHooks?: S3TestHooks;
}

/**
 * @internal Fault injection, so that tests drive the retry paths against a real server. `operation` is the SDK
 * command name without "Command" (PutObject, HeadObject, …); `objectKey` the full S3 key.
 */
export interface S3TestHooks {
  /** True: fail this attempt before sending, as if the connection had been refused. */
  failBeforeSend?(operation: string, objectKey: string): boolean;
  /** True: the request was sent and answered, but the answer is thrown away as if the connection had reset. */
  loseResponse?(operation: string, objectKey: string): boolean;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_ATTEMPTS = 6;
const MAX_ATTEMPTS_LIMIT = 20;
const BACKOFF_BASE_MS = 50;
const BACKOFF_CAP_MS = 2_000;
/** Log batch objects fetched ahead of the reader. */
const READ_AHEAD_BATCHES = 4;
/** Keys per DeleteObjects request (the S3 maximum). */
const DELETE_BATCH_KEYS = 1_000;
const LSN_DIGITS = 16;
const WRITE_ID_META = "twill-write-id";
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** Longest prefix we accept, so that `<prefix>/obj/<512-char key>` stays below S3's 1024-byte key limit. */
const PREFIX_LENGTH_MAX = 256;
const SECRET_PARAMS = ["accessKeyId", "secretAccessKey", "sessionToken"];

// ---------------------------------------------------------------------------------------------------------------
// Options

interface Resolved {
  bucket: string;
  prefix: string;
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
  requestTimeoutMs: number;
  maxAttempts: number;
  createBucket: boolean;
  publicUrl: string;
  hooks: S3TestHooks | undefined;
}

function badUrl(message: string): TwillError {
  return new TwillError(ErrorCodes.InvalidUrl, message, {
    hint: "expected s3://<bucket>[/<prefix>][?endpoint=http://host:port&region=…&forcePathStyle=true]",
  });
}

function badOption(message: string): TwillError {
  return new TwillError(ErrorCodes.InvalidArgument, message);
}

function parseBool(name: string, value: string): boolean {
  if (value === "true" || value === "1" || value === "") return true;
  if (value === "false" || value === "0") return false;
  throw badUrl(`s3 URL parameter ${name} must be true or false, got ${JSON.stringify(value)}`);
}

function parsePositiveInt(name: string, value: string | number, max: number, fromUrl: boolean): number {
  const n = typeof value === "number" ? value : /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    const message = `s3 ${name} must be an integer in 1..${max}, got ${JSON.stringify(value)}`;
    throw fromUrl ? badUrl(message) : badOption(message);
  }
  return n;
}

function checkEndpoint(endpoint: string, fromUrl: boolean): string {
  let parsed: URL;
  try {
    parsed = new URL(endpoint);
  } catch {
    parsed = new URL("invalid:");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    const message = `s3 endpoint must be an http:// or https:// URL, got ${JSON.stringify(endpoint.slice(0, 100))}`;
    throw fromUrl ? badUrl(message) : badOption(message);
  }
  if (parsed.username !== "" || parsed.password !== "") {
    const message = "s3 endpoint must not carry credentials; pass accessKeyId and secretAccessKey instead";
    throw fromUrl ? badUrl(message) : badOption(message);
  }
  return endpoint.replace(/\/+$/, "");
}

function decodeUserInfo(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw badUrl("the credentials in the s3 URL are not valid percent-encoding");
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

function resolveOptions(url: URL, options: S3StorageOptions): Resolved {
  if (url.protocol !== "s3:") throw badUrl(`not an s3:// URL: ${url.protocol}//…`);
  const bucket = url.hostname;
  if (!BUCKET_NAME.test(bucket) || bucket.includes("..")) {
    throw badUrl(`s3 bucket name ${JSON.stringify(bucket)} must be 3..63 characters of [a-z0-9.-]`);
  }
  if (url.port !== "") throw badUrl("an s3:// URL names a bucket, not a host: put the server in ?endpoint=");
  if (url.hash !== "") throw badUrl("an s3:// URL takes no #fragment");
  let prefix: string;
  try {
    prefix = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, "");
  } catch {
    throw badUrl("the s3 URL's prefix is not valid percent-encoding");
  }
  if (prefix !== "") {
    try {
      validateKey(prefix);
    } catch (e) {
      throw badUrl(`s3 prefix ${JSON.stringify(prefix)} is invalid: ${(e as Error).message}`);
    }
    if (prefix.length > PREFIX_LENGTH_MAX) {
      throw badUrl(`s3 prefix must be at most ${PREFIX_LENGTH_MAX} characters, got ${prefix.length}`);
    }
  }

  const q = url.searchParams;
  const param = (name: string) => nonEmpty(q.get(name) ?? undefined);
  const env = process.env;

  const endpointFromOptions = nonEmpty(options.endpoint);
  const endpointFromUrl = param("endpoint");
  const endpointRaw =
    endpointFromOptions ??
    endpointFromUrl ??
    nonEmpty(env.TWILL_S3_ENDPOINT) ??
    nonEmpty(env.AWS_ENDPOINT_URL_S3) ??
    nonEmpty(env.AWS_ENDPOINT_URL);
  const endpoint =
    endpointRaw === undefined
      ? undefined
      : checkEndpoint(endpointRaw, endpointFromOptions === undefined && endpointFromUrl !== undefined);

  const region =
    nonEmpty(options.region) ??
    param("region") ??
    nonEmpty(env.AWS_REGION) ??
    nonEmpty(env.AWS_DEFAULT_REGION) ??
    "us-east-1";

  const pathStyleParam = q.get("forcePathStyle");
  const forcePathStyle =
    options.forcePathStyle ??
    (pathStyleParam === null ? undefined : parseBool("forcePathStyle", pathStyleParam)) ??
    endpoint !== undefined;

  // Credentials: options, then the URL (query, then user:password@), then the SDK default chain.
  let accessKeyId = nonEmpty(options.accessKeyId);
  let secretAccessKey = nonEmpty(options.secretAccessKey);
  let sessionToken = nonEmpty(options.sessionToken);
  if (accessKeyId === undefined && secretAccessKey === undefined) {
    accessKeyId = param("accessKeyId") ?? nonEmpty(decodeUserInfo(url.username));
    secretAccessKey = param("secretAccessKey") ?? nonEmpty(decodeUserInfo(url.password));
    sessionToken = sessionToken ?? param("sessionToken");
  }
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw badOption(
      "s3 credentials need both accessKeyId and secretAccessKey, or neither (to use the AWS chain)",
    );
  }
  const credentials =
    accessKeyId !== undefined && secretAccessKey !== undefined
      ? { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) }
      : undefined;

  const timeoutParam = param("requestTimeoutMs");
  const requestTimeoutMs =
    options.requestTimeoutMs !== undefined
      ? parsePositiveInt("requestTimeoutMs", options.requestTimeoutMs, 3_600_000, false)
      : timeoutParam !== undefined
        ? parsePositiveInt("requestTimeoutMs", timeoutParam, 3_600_000, true)
        : DEFAULT_REQUEST_TIMEOUT_MS;
  const attemptsParam = param("maxAttempts");
  const maxAttempts =
    options.maxAttempts !== undefined
      ? parsePositiveInt("maxAttempts", options.maxAttempts, MAX_ATTEMPTS_LIMIT, false)
      : attemptsParam !== undefined
        ? parsePositiveInt("maxAttempts", attemptsParam, MAX_ATTEMPTS_LIMIT, true)
        : DEFAULT_MAX_ATTEMPTS;
  const createParam = q.get("createBucket");
  const createBucket =
    options.createBucket ?? (createParam === null ? false : parseBool("createBucket", createParam));

  // The public URL: no user info, no secret parameters.
  const clean = new URL(url.href);
  clean.username = "";
  clean.password = "";
  for (const name of SECRET_PARAMS) clean.searchParams.delete(name);
  const query = clean.searchParams.toString();
  const publicUrl = `s3://${bucket}/${prefix}${query === "" ? "" : `?${query}`}`;

  return {
    bucket,
    prefix,
    endpoint,
    region,
    forcePathStyle,
    credentials,
    requestTimeoutMs,
    maxAttempts,
    createBucket,
    publicUrl,
    hooks: options.testHooks,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** What we read off an SDK or network error; never the error itself (it may carry request details). */
interface Failure {
  status: number | undefined;
  name: string;
  message: string;
  requestId: string | undefined;
  timedOut: boolean;
}

function failureOf(error: unknown, timedOut: boolean): Failure {
  const e = (typeof error === "object" && error !== null ? error : {}) as {
    name?: unknown;
    code?: unknown;
    message?: unknown;
    $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
  };
  const status = typeof e.$metadata?.httpStatusCode === "number" ? e.$metadata.httpStatusCode : undefined;
  const name =
    typeof e.code === "string" && status === undefined
      ? e.code
      : typeof e.name === "string"
        ? e.name
        : "Error";
  const message = typeof e.message === "string" ? e.message.slice(0, 300) : String(error).slice(0, 300);
  const requestId = typeof e.$metadata?.requestId === "string" ? e.$metadata.requestId : undefined;
  return { status, name, message, requestId, timedOut };
}

/** Transient: worth another attempt. `conditional` marks If-None-Match PUTs, where a 409 means "outcome unknown". */
function isTransient(f: Failure, conditional: boolean): boolean {
  if (f.timedOut) return true;
  if (f.status === undefined) {
    // No HTTP answer: a network error, unless the SDK failed before sending (no credentials, bad config).
    return !/Credentials|CredentialsProvider|InvalidEndpoint|TypeError|ERR_INVALID/i.test(f.name);
  }
  if (f.status >= 500 || f.status === 429 || f.status === 408) return true;
  if (f.name === "SlowDown" || f.name === "RequestTimeout" || f.name === "ConditionalRequestConflict")
    return true;
  if (f.status === 409 && (conditional || f.name === "OperationAborted")) return true;
  return false;
}

function isNotFound(f: Failure): boolean {
  if (f.name === "NoSuchBucket") return false;
  return f.status === 404 || f.name === "NoSuchKey" || f.name === "NotFound";
}

function detailOf(f: Failure): string {
  return [
    f.status === undefined ? "no HTTP response" : `HTTP ${f.status}`,
    f.name,
    f.message,
    f.requestId === undefined ? "" : `request id ${f.requestId}`,
  ]
    .filter((s) => s !== "")
    .join("; ");
}

/** A network failure simulated by a test hook; transient like the real one. */
class SimulatedNetworkError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${message} (simulated by a test hook)`);
    this.name = "SimulatedNetworkError";
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function backoffMs(attempt: number): number {
  // Exponential with "equal jitter": half fixed, half random, so retries of many callers spread out.
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function lsnName(lsn: number): string {
  return String(lsn).padStart(LSN_DIGITS, "0");
}

function isSafeLsn(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function closedError(what: string): TwillError {
  return new TwillError(ErrorCodes.Closed, `${what} is closed`, { hint: "open it again" });
}

// The total size from a Content-Range header: "bytes a-b/size", or on a 416 "bytes */size".
function sizeFromContentRange(value: string | undefined): number | undefined {
  const m = value === undefined ? null : /\/([0-9]+)\s*$/.exec(value);
  return m === null ? undefined : Number(m[1]);
}

// ---------------------------------------------------------------------------------------------------------------
// Storage

type Attempt<T> = (signal: AbortSignal) => Promise<T>;

interface RunOptions {
  /** A conditional PUT: 409 is "outcome unknown" and is retried. */
  conditional?: boolean;
}

class S3Storage implements Storage {
  readonly kind = "s3" as const;
  readonly url: string;
  readonly #client: S3Client;
  readonly #cfg: Resolved;
  readonly #objBase: string;
  readonly #logBase: string;
  readonly #logs = new Set<S3Log>();
  readonly #httpAgent: HttpAgent;
  readonly #httpsAgent: HttpsAgent;
  #closed = false;

  constructor(cfg: Resolved) {
    this.#cfg = cfg;
    this.url = cfg.publicUrl;
    this.#objBase = cfg.prefix === "" ? "obj/" : `${cfg.prefix}/obj/`;
    this.#logBase = cfg.prefix === "" ? "log/" : `${cfg.prefix}/log/`;
    this.#httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
    this.#httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64 });
    const config: S3ClientConfig = {
      region: cfg.region,
      forcePathStyle: cfg.forcePathStyle,
      // Our own retry loop (below) knows which failures leave a conditional write's outcome unknown.
      maxAttempts: 1,
      // With the default (WHEN_SUPPORTED) a streamed PUT fails on RGW with 411 MissingContentLength.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: {
        connectionTimeout: cfg.requestTimeoutMs,
        requestTimeout: cfg.requestTimeoutMs,
        httpAgent: this.#httpAgent,
        httpsAgent: this.#httpsAgent,
      },
    };
    if (cfg.endpoint !== undefined) config.endpoint = cfg.endpoint;
    if (cfg.credentials !== undefined) config.credentials = cfg.credentials;
    this.#client = new S3Client(config);
  }

  // --- the retry loop ------------------------------------------------------------------------------------------

  /**
   * Runs `attempt` until it succeeds, fails for good, or runs out of attempts. Each attempt gets its own
   * AbortSignal that fires after requestTimeoutMs. Throws only TwillErrors.
   */
  async run<T>(operation: string, target: string, attempt: Attempt<T>, options: RunOptions = {}): Promise<T> {
    this.#checkOpen();
    const { maxAttempts, requestTimeoutMs } = this.#cfg;
    let last: Failure | undefined;
    for (let n = 1; n <= maxAttempts; n++) {
      if (n > 1) await sleep(backoffMs(n - 1));
      this.#checkOpen();
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), requestTimeoutMs);
      // The deadline holds even where the SDK stops listening to the signal (e.g. while a body streams in).
      const deadline = new Promise<never>((_, reject) => {
        controller.signal.addEventListener("abort", () => reject(new Error("attempt deadline")), {
          once: true,
        });
      });
      const work = attempt(controller.signal);
      deadline.catch(() => undefined);
      work.catch(() => undefined);
      try {
        return await Promise.race([work, deadline]);
      } catch (error) {
        if (error instanceof TwillError) throw error;
        const failure = failureOf(error, controller.signal.aborted);
        failure.message = this.#scrub(failure.message);
        if (isNotFound(failure)) throw notFound(target);
        if (!isTransient(failure, options.conditional === true))
          throw this.#fatal(operation, target, failure);
        last = failure;
      } finally {
        clearTimeout(timer);
      }
    }
    const f = last!;
    const code: ErrorCode = f.timedOut ? ErrorCodes.Timeout : ErrorCodes.Io;
    return Promise.reject(
      new TwillError(
        code,
        `s3 ${operation} of ${target} failed after ${maxAttempts} attempts${f.timedOut ? ` (each limited to ${requestTimeoutMs} ms)` : ""}: ${f.status === undefined ? f.name : `HTTP ${f.status} ${f.name}`}`,
        { detail: detailOf(f), hint: `check that ${this.#where()} is reachable and healthy` },
      ),
    );
  }

  #fatal(operation: string, target: string, f: Failure): TwillError {
    if (f.name === "NoSuchBucket") {
      return notFound(`bucket ${JSON.stringify(this.#cfg.bucket)} at ${this.#where()}`);
    }
    if (
      f.status === 403 ||
      f.name === "AccessDenied" ||
      f.name === "InvalidAccessKeyId" ||
      f.name === "SignatureDoesNotMatch"
    ) {
      return new TwillError(ErrorCodes.Io, `s3 ${operation} of ${target} was refused: ${f.name}`, {
        detail: detailOf(f),
        hint: "check the access key, secret key and region, and the bucket policy",
      });
    }
    return new TwillError(
      ErrorCodes.Io,
      `s3 ${operation} of ${target} failed: ${f.status === undefined ? f.name : `HTTP ${f.status} ${f.name}`}`,
      { detail: detailOf(f) },
    );
  }

  /** Belt and braces: no server or SDK message we pass on may repeat a secret. */
  #scrub(message: string): string {
    let out = message;
    const c = this.#cfg.credentials;
    for (const secret of [c?.secretAccessKey, c?.sessionToken]) {
      if (secret !== undefined && secret.length >= 4) out = out.split(secret).join("***");
    }
    return out;
  }

  #where(): string {
    return this.#cfg.endpoint ?? `AWS S3 (${this.#cfg.region})`;
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError(`s3 storage ${this.url}`);
  }

  /** client.send, plus the test hook that throws away a successful response. */
  async send<T>(operation: string, objectKey: string, signal: AbortSignal, command: unknown): Promise<T> {
    const hooks = this.#cfg.hooks;
    if (hooks?.failBeforeSend?.(operation, objectKey) === true) {
      throw new SimulatedNetworkError("ECONNREFUSED", "connection refused");
    }
    // One generic entry point for all commands; the SDK's overloads are per command.
    const out: unknown = await this.#client.send(command as PutObjectCommand, { abortSignal: signal });
    if (hooks?.loseResponse?.(operation, objectKey) === true) {
      throw new SimulatedNetworkError("ECONNRESET", "response lost");
    }
    return out as T;
  }

  // --- lifecycle -----------------------------------------------------------------------------------------------

  async init(): Promise<void> {
    const bucket = this.#cfg.bucket;
    const target = `bucket ${JSON.stringify(bucket)}`;
    try {
      await this.run("HEAD", target, (signal) =>
        this.send("HeadBucket", "", signal, new HeadBucketCommand({ Bucket: bucket })),
      );
    } catch (error) {
      if (!(error instanceof TwillError && error.code === ErrorCodes.NotFound)) throw error;
      if (!this.#cfg.createBucket) {
        throw new TwillError(
          ErrorCodes.NotFound,
          `s3 bucket ${JSON.stringify(bucket)} does not exist at ${this.#where()}`,
          {
            hint: "create it, or open with createBucket: true (URL: ?createBucket=true)",
          },
        );
      }
      await this.run("CreateBucket", target, async (signal) => {
        try {
          await this.send("CreateBucket", "", signal, new CreateBucketCommand({ Bucket: bucket }));
        } catch (e) {
          const f = failureOf(e, false);
          // Created meanwhile (by us in an earlier attempt, or by someone else): fine.
          if (f.name === "BucketAlreadyOwnedByYou" || f.name === "BucketAlreadyExists") return;
          throw e;
        }
      });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const logs = [...this.#logs];
    await Promise.allSettled(logs.map((log) => log.close()));
    this.#closed = true;
    this.#client.destroy();
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
  }

  forgetLog(log: S3Log): void {
    this.#logs.delete(log);
  }

  // --- objects -------------------------------------------------------------------------------------------------

  objectKey(key: string): string {
    return this.#objBase + key;
  }

  #target(key: string): string {
    return `object ${JSON.stringify(key)} in ${this.url}`;
  }

  async read(key: string, range?: ByteRange): Promise<Uint8Array> {
    validateKey(key);
    if (range !== undefined) validateRange(range.offset, range.length);
    this.#checkOpen();
    return this.getRange(this.objectKey(key), this.#target(key), key, range);
  }

  /** GET of a whole object or a range of it, with the ByteRange semantics of types.ts. */
  async getRange(s3Key: string, target: string, key: string, range?: ByteRange): Promise<Uint8Array> {
    const offset = range?.offset ?? 0;
    const length = range?.length;
    if (length === 0) {
      // HTTP cannot ask for zero bytes; the size decides between empty and out of range.
      const size = await this.headSize(s3Key, target);
      if (offset > size) throw rangeNotSatisfiable(key, offset, size);
      return new Uint8Array(0);
    }
    const header =
      offset === 0 && length === undefined
        ? undefined
        : `bytes=${offset}-${length === undefined ? "" : offset + length - 1}`;
    const got = await this.run("GET", target, async (signal) => {
      try {
        const out = await this.send<{
          Body?: { transformToByteArray(): Promise<Uint8Array> };
          ContentLength?: number;
          ContentRange?: string;
        }>(
          "GetObject",
          s3Key,
          signal,
          new GetObjectCommand({ Bucket: this.#cfg.bucket, Key: s3Key, Range: header }),
        );
        const bytes = out.Body === undefined ? new Uint8Array(0) : await out.Body.transformToByteArray();
        if (out.ContentLength !== undefined && bytes.length !== out.ContentLength) {
          // A body cut short by the network: transient.
          throw Object.assign(new Error(`body has ${bytes.length} of ${out.ContentLength} bytes`), {
            code: "ETRUNCATED",
          });
        }
        const start =
          out.ContentRange === undefined ? undefined : /^bytes ([0-9]+)-/.exec(out.ContentRange)?.[1];
        if (start !== undefined && Number(start) !== offset) {
          throw new TwillError(
            ErrorCodes.Io,
            `s3 GET of ${target} asked for ${header} and got ${JSON.stringify(out.ContentRange)}`,
          );
        }
        return { bytes, ranged: out.ContentRange !== undefined, size: undefined as number | undefined };
      } catch (e) {
        const f = failureOf(e, false);
        if (f.status === 416 || f.name === "InvalidRange") {
          const r = (e as { $response?: { headers?: Record<string, string> } }).$response;
          return {
            bytes: undefined,
            ranged: true,
            size: sizeFromContentRange(r?.headers?.["content-range"]),
          };
        }
        throw e;
      }
    });
    if (got.bytes === undefined) {
      // 416: the offset is at or past the end (or the object is empty).
      const size = got.size ?? (await this.headSize(s3Key, target));
      if (offset === size) return new Uint8Array(0);
      if (offset < size) {
        throw new TwillError(
          ErrorCodes.Io,
          `s3 GET of ${target} answered 416 for range ${header} of ${size} bytes`,
        );
      }
      throw rangeNotSatisfiable(key, offset, size);
    }
    if (header !== undefined && !got.ranged) {
      // The server ignored the Range header and sent the whole object.
      const all = got.bytes;
      if (offset > all.length) throw rangeNotSatisfiable(key, offset, all.length);
      return all.subarray(offset, length === undefined ? all.length : Math.min(all.length, offset + length));
    }
    return got.bytes;
  }

  async headSize(s3Key: string, target: string): Promise<number> {
    return this.run("HEAD", target, async (signal) => {
      const out = await this.send<{ ContentLength?: number }>(
        "HeadObject",
        s3Key,
        signal,
        new HeadObjectCommand({ Bucket: this.#cfg.bucket, Key: s3Key }),
      );
      if (out.ContentLength === undefined)
        throw new TwillError(ErrorCodes.Io, `s3 HEAD of ${target} gave no size`);
      return out.ContentLength;
    });
  }

  async size(key: string): Promise<number> {
    validateKey(key);
    this.#checkOpen();
    return this.headSize(this.objectKey(key), this.#target(key));
  }

  async write(key: string, bytes: Uint8Array): Promise<void> {
    validateKey(key);
    checkBytes(bytes);
    this.#checkOpen();
    const s3Key = this.objectKey(key);
    await this.run("PUT", this.#target(key), (signal) =>
      this.send("PutObject", s3Key, signal, this.#put(s3Key, bytes)),
    );
  }

  /** Unconditional PUT of a raw key (the log's fence tombstones). */
  async putRaw(s3Key: string, target: string, bytes: Uint8Array): Promise<void> {
    this.#checkOpen();
    await this.run("PUT", target, (signal) => this.send("PutObject", s3Key, signal, this.#put(s3Key, bytes)));
  }

  #put(s3Key: string, bytes: Uint8Array, writeId?: string): PutObjectCommand {
    return new PutObjectCommand({
      Bucket: this.#cfg.bucket,
      Key: s3Key,
      Body: bytes,
      ContentLength: bytes.length,
      ContentType: "application/octet-stream",
      ...(writeId === undefined ? {} : { IfNoneMatch: "*", Metadata: { [WRITE_ID_META]: writeId } }),
    });
  }

  async writeIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    validateKey(key);
    checkBytes(bytes);
    this.#checkOpen();
    return this.putIfAbsent(this.objectKey(key), this.#target(key), bytes);
  }

  /**
   * PUT with If-None-Match: * and a fresh write id. True when this call's bytes are the object's. A 412 is a lost
   * race — unless an earlier attempt of this call may have landed, in which case the stored write id decides.
   */
  async putIfAbsent(
    s3Key: string,
    target: string,
    bytes: Uint8Array,
    writeId: string = randomUUID(),
  ): Promise<boolean> {
    let mayHaveLanded = false;
    return this.run(
      "conditional PUT",
      target,
      async (signal) => {
        const earlierMayHaveLanded = mayHaveLanded;
        // If this attempt fails without an answer, its PUT may have landed.
        mayHaveLanded = true;
        try {
          await this.send("PutObject", s3Key, signal, this.#put(s3Key, bytes, writeId));
          return true;
        } catch (e) {
          const f = failureOf(e, false);
          if (f.status !== 412 && f.name !== "PreconditionFailed") throw e;
          if (!earlierMayHaveLanded) return false;
          const stored = await this.#storedWriteId(s3Key, signal);
          // Gone again (deleted meanwhile): neither ours nor theirs any more; try the PUT again.
          if (stored === null)
            throw Object.assign(new Error("object vanished after a 412"), { code: "EVANISHED" });
          return stored === writeId;
        }
      },
      { conditional: true },
    );
  }

  /** The write id stored with an object; null when the object is missing, "" when it has none. */
  async #storedWriteId(s3Key: string, signal: AbortSignal): Promise<string | null> {
    try {
      const out = await this.send<{ Metadata?: Record<string, string> }>(
        "HeadObject",
        s3Key,
        signal,
        new HeadObjectCommand({ Bucket: this.#cfg.bucket, Key: s3Key }),
      );
      return out.Metadata?.[WRITE_ID_META] ?? "";
    } catch (e) {
      if (isNotFound(failureOf(e, false))) return null;
      throw e;
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    validatePrefix(prefix);
    this.#checkOpen();
    const base = this.#objBase;
    for await (const s3Key of this.listRaw(base + prefix, `objects with prefix ${JSON.stringify(prefix)}`)) {
      if (s3Key.startsWith(base)) yield s3Key.slice(base.length);
    }
  }

  /** Every S3 key under `s3Prefix`, ascending, across all pages. */
  async *listRaw(s3Prefix: string, target: string): AsyncIterable<string> {
    let token: string | undefined;
    let previous: string | undefined;
    do {
      const page = await this.run("LIST", target, (signal) =>
        this.send<{ Contents?: { Key?: string }[]; IsTruncated?: boolean; NextContinuationToken?: string }>(
          "ListObjectsV2",
          s3Prefix,
          signal,
          new ListObjectsV2Command({
            Bucket: this.#cfg.bucket,
            Prefix: s3Prefix,
            ContinuationToken: token,
            MaxKeys: 1000,
          }),
        ),
      );
      for (const item of page.Contents ?? []) {
        const k = item.Key;
        if (k === undefined) continue;
        if (previous !== undefined && !(previous < k)) {
          throw new TwillError(
            ErrorCodes.Io,
            `s3 LIST of ${target} returned keys out of order (${JSON.stringify(previous)} then ${JSON.stringify(k)})`,
          );
        }
        previous = k;
        yield k;
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      if (page.IsTruncated === true && token === undefined) {
        throw new TwillError(
          ErrorCodes.Io,
          `s3 LIST of ${target} was truncated without a continuation token`,
        );
      }
    } while (token !== undefined);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    this.#checkOpen();
    const s3Key = this.objectKey(key);
    try {
      await this.run("DELETE", this.#target(key), (signal) =>
        this.send(
          "DeleteObject",
          s3Key,
          signal,
          new DeleteObjectCommand({ Bucket: this.#cfg.bucket, Key: s3Key }),
        ),
      );
    } catch (error) {
      // S3 answers 204 for a missing key; some servers answer 404. Either way the key is gone.
      if (error instanceof TwillError && error.code === ErrorCodes.NotFound) return;
      throw error;
    }
  }

  /** Deletes S3 keys in batches of 1000 (multi-object delete), idempotently. */
  async deleteMany(s3Keys: readonly string[], target: string): Promise<void> {
    for (let i = 0; i < s3Keys.length; i += DELETE_BATCH_KEYS) {
      const chunk = s3Keys.slice(i, i + DELETE_BATCH_KEYS);
      const out = await this.run("DELETE", target, (signal) =>
        this.send<{ Errors?: { Key?: string; Code?: string; Message?: string }[] }>(
          "DeleteObjects",
          chunk[0]!,
          signal,
          new DeleteObjectsCommand({
            Bucket: this.#cfg.bucket,
            Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true },
          }),
        ),
      );
      const errors = (out.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
      if (errors.length > 0) {
        const first = errors[0]!;
        throw new TwillError(
          ErrorCodes.Io,
          `s3 DELETE of ${target} failed for ${errors.length} of ${chunk.length} objects, first ${JSON.stringify(first.Key)}: ${first.Code}`,
          { detail: first.Message },
        );
      }
    }
  }

  // --- logs ----------------------------------------------------------------------------------------------------

  logPrefix(name: string): string {
    return `${this.#logBase}${name}/`;
  }

  async openLog(name: string, options: LogOpenOptions = {}): Promise<Log> {
    validateLogName(name);
    this.#checkOpen();
    const log = new S3Log(this, name, options.readOnly === true);
    await log.init();
    this.#checkOpen();
    this.#logs.add(log);
    return log;
  }
}

function checkBytes(bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array)) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `object bytes must be a Uint8Array, got ${typeof bytes}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Log

interface BatchRef {
  firstLsn: number;
  s3Key: string;
}

/** Replaces a truncated fence batch: 4 bytes "TWLT", which no batch (magic "TWLB", 20-byte header) can be. */
const FENCE_TOMBSTONE = new Uint8Array([0x54, 0x57, 0x4c, 0x54]);
const FENCE_FRAMES: LogFrame[] = [];

function isFenceTombstone(bytes: Uint8Array): boolean {
  return bytes.length === 4 && bytes.every((b, i) => b === FENCE_TOMBSTONE[i]);
}

class S3Log implements Log {
  readonly name: string;
  readonly readOnly: boolean;
  readonly #storage: S3Storage;
  readonly #prefix: string;
  #next = 1;
  /** First LSN of the last batch object this handle knows: truncate never deletes it. */
  #lastBatch: number | undefined;
  /** First LSN of the first batch this handle appended: truncation leaves a tombstone there. */
  #fenceBatch: number | undefined;
  /** Set once another writer took our position, or an append's outcome stayed unknown. */
  #broken: TwillError | undefined;
  #closed = false;
  /** Appends and truncates run one at a time, in call order. */
  #chain: Promise<unknown> = Promise.resolve();

  constructor(storage: S3Storage, name: string, readOnly: boolean) {
    this.#storage = storage;
    this.name = name;
    this.readOnly = readOnly;
    this.#prefix = storage.logPrefix(name);
  }

  #what(): string {
    return `log ${JSON.stringify(this.name)} in ${this.#storage.url}`;
  }

  /** Lists the log's batch objects, ascending by first LSN. */
  async #batches(): Promise<BatchRef[]> {
    const refs: BatchRef[] = [];
    for await (const s3Key of this.#storage.listRaw(this.#prefix, this.#what())) {
      const tail = s3Key.slice(this.#prefix.length);
      const lsn = /^[0-9]{16}$/.test(tail) ? Number(tail) : Number.NaN;
      if (!Number.isSafeInteger(lsn) || lsn < 1) {
        throw new TwillError(
          ErrorCodes.Corruption,
          `${this.#what()} holds an object that is not a log batch: ${JSON.stringify(s3Key)}`,
          { hint: "remove objects under the log's prefix that Twill DB did not write" },
        );
      }
      refs.push({ firstLsn: lsn, s3Key });
    }
    return refs;
  }

  async #fetch(ref: BatchRef): Promise<LogFrame[]> {
    const where = `${this.#what()} at LSN ${ref.firstLsn}`;
    const bytes = await this.#storage.getRange(ref.s3Key, `batch ${where}`, ref.s3Key);
    if (isFenceTombstone(bytes)) return FENCE_FRAMES;
    const batch = decodeBatch(bytes, where);
    if (batch.firstLsn !== ref.firstLsn) {
      throw new TwillError(
        ErrorCodes.Corruption,
        `log batch ${where} is corrupt: its header says first LSN ${batch.firstLsn}`,
      );
    }
    return batch.frames;
  }

  async init(): Promise<void> {
    const refs = await this.#batches();
    const last = refs.at(-1);
    if (last === undefined) return;
    const frames = await this.#fetch(last);
    this.#next = last.firstLsn + frames.length;
    this.#lastBatch = last.firstLsn;
  }

  nextLsn(): number {
    return this.#next;
  }

  #checkWritable(operation: string): void {
    if (this.#closed) throw closedError(this.#what());
    if (this.readOnly) {
      throw new TwillError(ErrorCodes.InvalidArgument, `${operation} on read-only ${this.#what()}`, {
        hint: "open the log without readOnly to write to it",
      });
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async append(frames: readonly Uint8Array[]): Promise<AppendResult> {
    this.#checkWritable("append");
    validateFrames(frames);
    if (this.#broken !== undefined) throw this.#broken;
    return this.#serial(async () => {
      if (this.#closed) throw closedError(this.#what());
      if (this.#broken !== undefined) throw this.#broken;
      const firstLsn = this.#next;
      const nextLsn = firstLsn + frames.length;
      if (!Number.isSafeInteger(nextLsn)) {
        throw new TwillError(ErrorCodes.InvalidArgument, `${this.#what()} would pass the largest LSN`);
      }
      const s3Key = this.#prefix + lsnName(firstLsn);
      const body = encodeBatch(firstLsn, frames);
      let won: boolean;
      try {
        won = await this.#storage.putIfAbsent(s3Key, `batch ${this.#what()} at LSN ${firstLsn}`, body);
      } catch (error) {
        // We cannot tell whether the batch landed: this handle's idea of the end may be wrong from here on.
        this.#broken = new TwillError(
          ErrorCodes.Io,
          `${this.#what()} is in an unknown state after a failed append at LSN ${firstLsn}`,
          { hint: "close the log and open it again", cause: error },
        );
        throw error;
      }
      if (!won) {
        this.#broken = new TwillError(
          ErrorCodes.Fenced,
          `another writer appended to log ${JSON.stringify(this.name)} at LSN ${firstLsn}; this writer is fenced`,
          { hint: "stop writing through this handle; reopen the database to continue as a new writer" },
        );
        throw this.#broken;
      }
      this.#next = nextLsn;
      this.#lastBatch = firstLsn;
      this.#fenceBatch ??= firstLsn;
      return { firstLsn, nextLsn };
    });
  }

  async *read(fromLsn = 1): AsyncIterable<LogFrame> {
    if (!isSafeLsn(fromLsn)) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `read fromLsn must be a non-negative integer, got ${fromLsn}`,
      );
    }
    if (this.#closed) throw closedError(this.#what());
    let refs = await this.#batches();
    // A batch deleted by a concurrent truncate between LIST and GET: list again (nothing was yielded yet).
    for (let relist = 0; ; relist++) {
      // The batch holding fromLsn is the last one that starts at or before it.
      let start = 0;
      for (let i = 0; i < refs.length; i++) if (refs[i]!.firstLsn <= fromLsn) start = i;
      const todo = refs.slice(start);
      const pending: Promise<LogFrame[]>[] = [];
      const fetchNext = () => {
        const ref = todo[pending.length];
        if (ref === undefined) return;
        const p = this.#fetch(ref);
        p.catch(() => undefined); // observed below; do not let an abandoned read-ahead go unhandled
        pending.push(p);
      };
      for (let i = 0; i < READ_AHEAD_BATCHES; i++) fetchNext();
      let expected: number | undefined;
      let yielded = false;
      let vanished = false;
      for (let i = 0; i < todo.length; i++) {
        const ref = todo[i]!;
        let frames: LogFrame[];
        try {
          frames = await pending[i]!;
        } catch (error) {
          if (error instanceof TwillError && error.code === ErrorCodes.NotFound && !yielded && relist < 3) {
            vanished = true;
            break;
          }
          if (error instanceof TwillError && error.code === ErrorCodes.NotFound) {
            throw new TwillError(
              ErrorCodes.NotFound,
              `${this.#what()}: the batch at LSN ${ref.firstLsn} was deleted while it was being read`,
              { hint: "a concurrent truncate removed it; read from a later LSN" },
            );
          }
          throw error;
        }
        fetchNext();
        if (frames === FENCE_FRAMES) {
          expected = undefined; // the truncated prefix: no continuity to check across a tombstone
          continue;
        }
        if (expected !== undefined && ref.firstLsn !== expected) {
          throw new TwillError(
            ErrorCodes.Corruption,
            ref.firstLsn > expected
              ? `${this.#what()} is missing LSNs ${expected}..${ref.firstLsn - 1}`
              : `${this.#what()} has overlapping batches: LSN ${ref.firstLsn} follows a batch ending at ${expected - 1}`,
            { hint: "a batch object was deleted or written by something else" },
          );
        }
        expected = ref.firstLsn + frames.length;
        for (const frame of frames) {
          if (frame.lsn < fromLsn) continue;
          yielded = true;
          yield frame;
        }
      }
      if (!vanished) return;
      refs = await this.#batches();
    }
  }

  async truncate(beforeLsn: number): Promise<void> {
    this.#checkWritable("truncate");
    if (!isSafeLsn(beforeLsn)) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `truncate beforeLsn must be a non-negative integer, got ${beforeLsn}`,
      );
    }
    if (this.#broken !== undefined) throw this.#broken;
    return this.#serial(async () => {
      if (this.#closed) throw closedError(this.#what());
      // A fenced handle must not delete what the new writer relies on.
      if (this.#broken !== undefined) throw this.#broken;
      const refs = await this.#batches();
      const doomed: string[] = [];
      let fence: string | undefined;
      // A batch's last LSN is one before the next batch's first; the last batch is never deleted.
      for (let i = 0; i + 1 < refs.length; i++) {
        const ref = refs[i]!;
        const lastLsn = refs[i + 1]!.firstLsn - 1;
        if (lastLsn >= beforeLsn) break;
        if (this.#lastBatch !== undefined && ref.firstLsn >= this.#lastBatch) break;
        if (ref.firstLsn === this.#fenceBatch) fence = ref.s3Key;
        else doomed.push(ref.s3Key);
      }
      if (fence !== undefined) await this.#storage.putRaw(fence, `fence of ${this.#what()}`, FENCE_TOMBSTONE);
      if (doomed.length > 0) await this.#storage.deleteMany(doomed, `batches of ${this.#what()}`);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Let appends already queued finish (or fail) before the handle is gone.
    await this.#chain;
    this.#storage.forgetLog(this);
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** Opens an s3:// storage: checks the bucket (creating it with `createBucket`) and returns the Storage. */
export async function openS3Storage(url: URL, options: S3StorageOptions = {}): Promise<Storage> {
  const cfg = resolveOptions(url, options);
  const storage = new S3Storage(cfg);
  try {
    await storage.init();
  } catch (error) {
    await storage.close();
    throw error;
  }
  return storage;
}
