/**
 * `openStorage(url, options)`: the one function that picks a backend by URL scheme. Backends are imported lazily so
 * that a memory:// user never loads node:fs code paths it does not need, nor the AWS SDK.
 */

import { z } from "zod";
import { ErrorCodes, TwillError } from "../errors.js";
import type { Storage } from "./types.js";

export const storageOptionsSchema = z
  .object({
    // s3://
    endpoint: z.string().url().optional(),
    region: z.string().min(1).optional(),
    forcePathStyle: z.boolean().optional(),
    accessKeyId: z.string().min(1).optional(),
    secretAccessKey: z.string().min(1).optional(),
    sessionToken: z.string().min(1).optional(),
    requestTimeoutMs: z.number().int().positive().max(600_000).optional(),
    maxAttempts: z.number().int().min(1).max(20).optional(),
    createBucket: z.boolean().optional(),
    // file://
    segmentBytesMax: z
      .number()
      .int()
      .min(4096)
      .max(1024 ** 3)
      .optional(),
    unsafeNoSync: z.boolean().optional(),
  })
  .strict();

export type StorageOptions = z.infer<typeof storageOptionsSchema>;

const S3_URL_PARAMS = [
  "endpoint",
  "region",
  "forcePathStyle",
  "accessKeyId",
  "secretAccessKey",
  "sessionToken",
  "requestTimeoutMs",
  "maxAttempts",
  "createBucket",
] as const;

const SCHEMES = "memory://, file://path or s3://bucket/prefix";

function invalidUrl(url: string, why: string): TwillError {
  return new TwillError(ErrorCodes.InvalidUrl, `invalid storage URL ${JSON.stringify(redact(url))}: ${why}`, {
    hint: `use ${SCHEMES}`,
  });
}

/** Removes credentials from a URL before it goes into a message. */
export function redact(url: string): string {
  return url
    .replace(/(secretAccessKey|sessionToken|accessKeyId)=[^&]*/gi, "$1=***")
    .replace(/\/\/[^/@]*@/, "//***@");
}

export function parseStorageOptions(options: unknown): StorageOptions {
  const parsed = storageOptionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((i) => `${i.path.join(".") || "options"}: ${i.message}`)
      .join("; ");
    throw new TwillError(ErrorCodes.InvalidArgument, `invalid storage options: ${issues}`, {
      hint: `accepted options: ${Object.keys(storageOptionsSchema.shape).join(", ")}`,
    });
  }
  return parsed.data;
}

function splitQuery(rest: string): { path: string; query: URLSearchParams } {
  const q = rest.indexOf("?");
  return q === -1
    ? { path: rest, query: new URLSearchParams() }
    : { path: rest.slice(0, q), query: new URLSearchParams(rest.slice(q + 1)) };
}

function rejectUnknownParams(url: string, query: URLSearchParams, known: readonly string[]): void {
  for (const key of query.keys()) {
    if (!(known as readonly string[]).includes(key)) {
      throw invalidUrl(
        url,
        `unknown parameter ${JSON.stringify(key)} (accepted: ${known.join(", ") || "none"})`,
      );
    }
  }
}

export async function openStorage(url: string, options?: StorageOptions): Promise<Storage> {
  if (typeof url !== "string" || url.length === 0)
    throw invalidUrl(String(url), "expected a non-empty string");
  const opts = parseStorageOptions(options);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (!scheme) throw invalidUrl(url, "no scheme");
  const rest = url.slice(scheme.length + 3);
  switch (scheme) {
    case "memory": {
      const { path, query } = splitQuery(rest);
      rejectUnknownParams(url, query, []);
      if (path.includes("/")) throw invalidUrl(url, "a memory:// name cannot contain '/'");
      const { openMemoryStorage } = await import("./memory.js");
      return openMemoryStorage(decodeURIComponent(path));
    }
    case "file": {
      const { path, query } = splitQuery(rest);
      rejectUnknownParams(url, query, []);
      if (path === "") throw invalidUrl(url, "no path (file://./my.db or file:///absolute/my.db)");
      const { openFileStorage } = await import("./file.js");
      return openFileStorage(decodeURIComponent(path), opts);
    }
    case "s3": {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch (error) {
        throw invalidUrl(url, `cannot parse: ${String(error)}`);
      }
      if (!parsed.hostname) throw invalidUrl(url, "no bucket (s3://bucket/prefix)");
      rejectUnknownParams(url, parsed.searchParams, S3_URL_PARAMS);
      const { openS3Storage } = await import("./s3.js");
      return openS3Storage(parsed, opts);
    }
    default:
      throw invalidUrl(url, `unknown scheme ${JSON.stringify(`${scheme}://`)}`);
  }
}
