/**
 * The backends every conformance suite runs against. s3:// needs the real server from scripts/s3-server.sh; when it
 * is not configured the s3 cases are skipped loudly, except under CI, where a missing server is a failure.
 */

import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import type { StorageOptions } from "../../src/storage/open.js";
import { openStorage } from "../../src/storage/open.js";
import type { Storage } from "../../src/storage/types.js";

export interface Backend {
  name: "memory" | "file" | "s3";
  available: boolean;
  /** A fresh, empty storage URL (a new memory name, temp directory or s3 prefix). */
  freshUrl(): Promise<string>;
  options(): StorageOptions;
  open(url?: string): Promise<Storage>;
  cleanup(): Promise<void>;
}

const s3Url = process.env.TWILL_TEST_S3_URL;
if (!s3Url) {
  const message =
    'TWILL_TEST_S3_URL is not set: s3:// tests are SKIPPED. Run `npm run s3:start` and `eval "$(bash scripts/s3-server.sh env)"`.';
  if (process.env.CI) throw new Error(`CI must run the s3:// tests: ${message}`);
  console.warn(`\n*** ${message} ***\n`);
}

function unique(): string {
  return `${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
}

function makeBackend(
  name: Backend["name"],
  available: boolean,
  freshUrl: (dirs: string[]) => Promise<string>,
  options: () => StorageOptions,
): Backend {
  const dirs: string[] = [];
  const backend: Backend = {
    name,
    available,
    freshUrl: () => freshUrl(dirs),
    options,
    async open(url?: string) {
      return openStorage(url ?? (await backend.freshUrl()), options());
    },
    async cleanup() {
      for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
    },
  };
  return backend;
}

export const backends: Backend[] = [
  makeBackend(
    "memory",
    true,
    async () => `memory://${unique()}`,
    () => ({}),
  ),
  makeBackend(
    "file",
    true,
    async (dirs) => {
      const dir = await mkdtemp(join(tmpdir(), "twill-test-"));
      dirs.push(dir);
      return `file://${dir}`;
    },
    () => ({}),
  ),
  makeBackend(
    "s3",
    Boolean(s3Url),
    async () => `${(s3Url ?? "s3://unset").replace(/\/$/, "")}/${unique()}`,
    () => ({
      endpoint: process.env.TWILL_S3_ENDPOINT,
      region: process.env.AWS_REGION ?? "us-east-1",
      forcePathStyle: true,
    }),
  ),
];

/**
 * For one describe block: a function that opens storages of `backend`; they are closed, and the backend's temp
 * state removed, after the block.
 */
export function storageScope(backend: Backend): (url?: string) => Promise<Storage> {
  const storages: Storage[] = [];
  afterAll(async () => {
    for (const s of storages) await s.close();
    await backend.cleanup();
  });
  return async (url?: string) => {
    const s = await backend.open(url);
    storages.push(s);
    return s;
  };
}
