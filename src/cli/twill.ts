#!/usr/bin/env node
/**
 * The `twill` command line: inspect a storage URL (objects and logs) and manage branches
 * (`twill branch create|list|drop|merge --db <url>`). Server commands are added by the issue that builds them.
 */

import { Command, Option } from "commander";
import { open } from "../database.js";
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

const branch = program
  .command("branch")
  .description("copy-on-write branches of a database (docs/BRANCHES.md)");
const dbOption = () =>
  new Option(
    "--db <url>",
    "the database: memory://, file://path or s3://bucket/prefix",
  ).makeOptionMandatory();

/** Parses a non-negative integer option strictly: "12abc" is an error, not 12. */
function lsnArg(text: string): number {
  if (!/^\d+$/.test(text))
    throw new Error(`--at must be a non-negative integer LSN, got ${JSON.stringify(text)}`);
  return Number(text);
}

branch
  .command("create")
  .description("fork a branch (writes one small object, whatever the size of the database)")
  .argument("<name>", "name of the new branch")
  .addOption(dbOption())
  .option("--from <branch>", "parent branch", "main")
  .option("--at <lsn>", "fork at this earlier LSN of the parent (while retained)", lsnArg)
  .action(async (name: string, options: { db: string; from: string; at?: number }) => {
    await using db = await open(options.db, { branch: options.from });
    const child = await db.branch(name, options.at === undefined ? {} : { at: options.at });
    const info = (await db.branches()).find((b) => b.name === name);
    await child.close();
    console.log(`created branch ${name} from ${options.from} at lsn ${info?.forkLsn ?? "?"}`);
  });

branch
  .command("list")
  .description("list branches: name, parent, fork LSN, creation time")
  .addOption(dbOption())
  .action(async (options: { db: string }) => {
    await using db = await open(options.db);
    const list = await db.branches();
    for (const b of list)
      console.log(`${b.name}\tparent=${b.parent}\tfork_lsn=${b.forkLsn}\tcreated=${b.createdAt}`);
    console.log(`${list.length} branch(es)`);
  });

branch
  .command("drop")
  .description("drop a branch; one with child branches only with --cascade")
  .argument("<name>", "branch to drop")
  .addOption(dbOption())
  .option("--cascade", "also drop its child branches", false)
  .action(async (name: string, options: { db: string; cascade: boolean }) => {
    await using db = await open(options.db);
    const dropped = await db.dropBranch(name, { cascade: options.cascade });
    console.log(`dropped ${dropped.join(", ")}`);
  });

branch
  .command("merge")
  .description("apply a branch's changes since its fork onto its parent in one transaction")
  .argument("<name>", "branch to merge")
  .addOption(dbOption())
  .addOption(
    new Option(
      "--on-conflict <policy>",
      "fail: abort listing conflicts; ours: branch wins; theirs: parent wins",
    )
      .choices(["fail", "ours", "theirs"])
      .default("fail"),
  )
  .action(async (name: string, options: { db: string; onConflict: "fail" | "ours" | "theirs" }) => {
    await using db = await open(options.db, { branch: name });
    const result = await db.merge({ onConflict: options.onConflict });
    console.log(
      `merged ${name}: ${result.applied} key(s) written at lsn ${result.commitLsn}, ${result.conflicts.length} conflict(s) resolved as ${result.onConflict}`,
    );
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  if (isTwillError(error)) {
    console.error(`twill: ${error.message}${error.hint ? `\nhint: ${error.hint}` : ""}`);
  } else {
    console.error(`twill: ${error instanceof Error ? error.message : String(error)}`);
  }
  process.exitCode = 1;
});
