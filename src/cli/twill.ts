#!/usr/bin/env node
/**
 * The `twill` command line. Today it inspects a storage URL (objects and logs); engine, branch and server commands
 * are added by the issues that build them.
 */

import { Command } from "commander";
import { isTwillError } from "../errors.js";
import { openStorage } from "../storage/open.js";

const program = new Command();
program.name("twill").description("Twill DB: an embedded, storage-disaggregated database for AI agents");

program
  .command("objects")
  .description("list the objects stored at a storage URL, with their sizes")
  .argument("<url>", "memory://, file://path or s3://bucket/prefix")
  .argument("[prefix]", "only keys starting with this", "")
  .action(async (url: string, prefix: string) => {
    const storage = await openStorage(url);
    try {
      let count = 0;
      let bytes = 0;
      for await (const key of storage.list(prefix)) {
        const size = await storage.size(key);
        count++;
        bytes += size;
        console.log(`${String(size).padStart(12)}  ${key}`);
      }
      console.log(`${count} objects, ${bytes} bytes`);
    } finally {
      await storage.close();
    }
  });

program
  .command("log")
  .description("summarise a log: frames, LSN range and bytes (read-only, takes no lock)")
  .argument("<url>", "memory://, file://path or s3://bucket/prefix")
  .argument("<name>", "log name")
  .option("--from <lsn>", "first LSN to read", "1")
  .action(async (url: string, name: string, options: { from: string }) => {
    const storage = await openStorage(url);
    try {
      const log = await storage.openLog(name, { readOnly: true });
      let frames = 0;
      let bytes = 0;
      let first: number | undefined;
      let last: number | undefined;
      for await (const frame of log.read(Number(options.from))) {
        frames++;
        bytes += frame.data.length;
        first ??= frame.lsn;
        last = frame.lsn;
      }
      console.log(
        `log ${name}: ${frames} frames, lsn ${first ?? "-"}..${last ?? "-"}, ${bytes} payload bytes, next lsn ${log.nextLsn()}`,
      );
      await log.close();
    } finally {
      await storage.close();
    }
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  if (isTwillError(error)) {
    console.error(`twill: ${error.message}${error.hint ? `\nhint: ${error.hint}` : ""}`);
  } else {
    console.error(`twill: ${error instanceof Error ? error.message : String(error)}`);
  }
  process.exitCode = 1;
});
