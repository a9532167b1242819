import { defineConfig } from "tsup";

export default defineConfig({
  entry: {
    index: "src/index.ts",
    "storage/index": "src/storage/index.ts",
    "memory/index": "src/memory/index.ts",
    "langchain/index": "src/langchain/index.ts",
    "server/index": "src/server/index.ts",
    "cli/twill": "src/cli/twill.ts",
  },
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
  splitting: true,
  // Backends are imported lazily so a memory:// user never loads the AWS SDK; keep them external.
  external: ["@aws-sdk/client-s3", "better-sqlite3"],
});
