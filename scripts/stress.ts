/**
 * The long version of the crash and model tests: runs test/engine-crash.test.ts (crash-kill on main and on a
 * branch), test/engine-model.test.ts, test/branch-model.test.ts and test/crash-sim.test.ts under vitest with larger parameters (passed through the environment the tests read) and
 * no per-test timeout.
 *
 *   npx tsx scripts/stress.ts [--rounds N] [--workloads N] [--ways N] [--runs N] [--commands N] [--seed N]
 *                             [--only kill,sim,model,branch,unit] [--repeat N]
 *
 *   --rounds N     crash-kill rounds (SIGKILL a committing child, recover, continue)        default 200
 *   --workloads N  crash-sim workloads (each: every crash point of a small workload)         default 12
 *   --ways N       keep/drop/tear choice seeds per crash point                               default 6
 *   --runs N       fast-check command sequences per backend in the model test              default 3000
 *                  (the branch model test runs a third as many: each of its sequences forks and reopens)
 *   --commands N   longest command sequence                                                  default 120
 *   --seed N       base seed (default: random; printed so that a failure can be replayed)
 *   --only LIST    which parts to run (default all): kill, sim, model, branch, unit
 *   --repeat N     run everything N times with seeds seed, seed+1, …                         default 1
 *
 * Exit status: 0 when every run passed.
 */

import { spawnSync } from "node:child_process";

interface Args {
  rounds: number;
  workloads: number;
  ways: number;
  runs: number;
  commands: number;
  seed: number;
  only: Set<string>;
  repeat: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    rounds: 200,
    workloads: 12,
    ways: 6,
    runs: 3000,
    commands: 120,
    seed: Math.floor(Math.random() * 1_000_000) + 1,
    only: new Set(["kill", "sim", "model", "branch", "unit"]),
    repeat: 1,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    const number = () => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0)
        throw new Error(`${flag} needs a non-negative integer, got ${value}`);
      i++;
      return n;
    };
    switch (flag) {
      case "--rounds":
        args.rounds = number();
        break;
      case "--workloads":
        args.workloads = number();
        break;
      case "--ways":
        args.ways = number();
        break;
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
      case "--only":
        args.only = new Set((value ?? "").split(",").filter(Boolean));
        i++;
        break;
      case "--help":
      case "-h":
        console.log("usage: npx tsx scripts/stress.ts [--rounds N] [--workloads N] [--ways N] [--runs N]");
        console.log("       [--commands N] [--seed N] [--only kill,sim,model,branch,unit] [--repeat N]");
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${flag}`);
    }
  }
  for (const part of args.only) {
    if (!["kill", "sim", "model", "branch", "unit"].includes(part))
      throw new Error(`--only: unknown part ${part}`);
  }
  return args;
}

function run(
  label: string,
  files: string[],
  filter: string | undefined,
  env: Record<string, string>,
): boolean {
  const vitestArgs = ["vitest", "run", ...files, "--testTimeout=0", "--hookTimeout=0", "--maxWorkers=1"];
  if (filter) vitestArgs.push("-t", filter);
  const shown = Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  console.log(`\n=== ${label}: ${shown} npx ${vitestArgs.join(" ")}`);
  const started = Date.now();
  const result = spawnSync("npx", vitestArgs, { stdio: "inherit", env: { ...process.env, ...env } });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const ok = result.status === 0;
  console.log(`=== ${label}: ${ok ? "passed" : "FAILED"} in ${seconds} s`);
  return ok;
}

const args = parseArgs(process.argv.slice(2));
const failures: string[] = [];
for (let r = 0; r < args.repeat; r++) {
  const seed = args.seed + r;
  console.log(`\n##### stress run ${r + 1}/${args.repeat}, seed ${seed}`);
  if (args.only.has("unit")) {
    if (!run("crash-sim unit tests", ["test/crash-sim.test.ts"], undefined, {}))
      failures.push(`unit (seed ${seed})`);
  }
  if (args.only.has("kill")) {
    const env = { TWILL_CRASH_ROUNDS: String(args.rounds), TWILL_CRASH_SEED: String(seed) };
    if (!run("crash-kill", ["test/engine-crash.test.ts"], "crash-kill", env))
      failures.push(`kill (seed ${seed})`);
  }
  if (args.only.has("sim")) {
    const env = {
      TWILL_CRASH_SEED: String(seed),
      TWILL_SIM_WORKLOADS: String(args.workloads),
      TWILL_SIM_SEEDS: String(args.ways),
    };
    if (!run("crash-sim sweep", ["test/engine-crash.test.ts"], "crash-sim", env))
      failures.push(`sim (seed ${seed})`);
  }
  if (args.only.has("model")) {
    const env = {
      TWILL_MODEL_RUNS: String(args.runs),
      TWILL_MODEL_SEED: String(seed),
      TWILL_MODEL_COMMANDS: String(args.commands),
    };
    if (!run("engine model", ["test/engine-model.test.ts"], "agrees with the model", env))
      failures.push(`model (seed ${seed})`);
  }
  if (args.only.has("branch")) {
    const env = {
      TWILL_BRANCH_MODEL_RUNS: String(Math.max(1, Math.ceil(args.runs / 3))),
      TWILL_MODEL_SEED: String(seed),
    };
    if (!run("branch model", ["test/branch-model.test.ts"], undefined, env))
      failures.push(`branch (seed ${seed})`);
  }
}
if (failures.length > 0) {
  console.log(`\nstress FAILED: ${failures.join(", ")}`);
  process.exit(1);
}
console.log("\nstress passed");
