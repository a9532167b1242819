/**
 * The long version of the SQL differential test (test/sql-differential.test.ts: random workloads on Twill DB and
 * on PostgreSQL via PGlite, compared statement by statement). Runs the same test under vitest with more and
 * longer workloads, passed through the environment the test reads, and no timeout.
 *
 *   npx tsx scripts/sql-stress.ts [--runs N] [--commands N] [--seed N] [--repeat N]
 *
 *   --runs N      workloads per repetition                                    default 5000
 *   --commands N  longest workload, in statements or BEGIN…COMMIT blocks       default 60
 *   --seed N      base seed (default: random; printed so that a failure can be replayed)
 *   --repeat N    run N times with seeds seed, seed+1, …                      default 1
 *
 * A failure prints the seed, the fast-check path and the shrunk statement list; replay it with
 *   TWILL_DIFF_SEED=<seed> TWILL_DIFF_PATH=<path> npx vitest run test/sql-differential.test.ts
 * The regression tests in the same file run too (-t selects only the random test).
 * Exit status: 0 when every run passed.
 */

import { spawnSync } from "node:child_process";

interface Args {
  runs: number;
  commands: number;
  seed: number;
  repeat: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    runs: 5000,
    commands: 60,
    seed: Math.floor(Math.random() * 1_000_000) + 1,
    repeat: 1,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    const number = () => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer, got ${value}`);
      i++;
      return n;
    };
    switch (flag) {
      case "--runs":
        args.runs = number();
        break;
      case "--commands":
        args.commands = number();
        break;
      case "--seed":
        args.seed = number();
        break;
      case "--repeat":
        args.repeat = number();
        break;
      case "--help":
      case "-h":
        console.log("usage: npx tsx scripts/sql-stress.ts [--runs N] [--commands N] [--seed N] [--repeat N]");
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${flag}`);
    }
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const failures: number[] = [];
for (let r = 0; r < args.repeat; r++) {
  const seed = args.seed + r;
  const env = {
    TWILL_DIFF_RUNS: String(args.runs),
    TWILL_DIFF_COMMANDS: String(args.commands),
    TWILL_DIFF_SEED: String(seed),
  };
  const vitestArgs = [
    "vitest",
    "run",
    "test/sql-differential.test.ts",
    "-t",
    "random workloads",
    "--testTimeout=0",
    "--hookTimeout=0",
    "--maxWorkers=1",
  ];
  const shown = Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  console.log(`\n=== sql differential ${r + 1}/${args.repeat}: ${shown} npx ${vitestArgs.join(" ")}`);
  const started = Date.now();
  const result = spawnSync("npx", vitestArgs, { stdio: "inherit", env: { ...process.env, ...env } });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const ok = result.status === 0;
  console.log(`=== sql differential (seed ${seed}): ${ok ? "passed" : "FAILED"} in ${seconds} s`);
  if (!ok) failures.push(seed);
}
if (failures.length > 0) {
  console.log(`\nsql stress FAILED for seeds ${failures.join(", ")}`);
  process.exit(1);
}
console.log("\nsql stress passed");
