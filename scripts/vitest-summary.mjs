// Prints vitest's JSON results as the one closing line CI reads: "N passed, N failed, N skipped".
// A missing or unreadable results file counts as one failure, so a crashed run can never look green.
import { readFileSync } from "node:fs";

const file = process.argv[2];
let passed = 0;
let failed = 1;
let skipped = 0;
try {
  const results = JSON.parse(readFileSync(file, "utf8"));
  passed = results.numPassedTests ?? 0;
  failed = results.numFailedTests ?? 0;
  skipped = (results.numPendingTests ?? 0) + (results.numTodoTests ?? 0);
  // A test file that fails to load has no failed tests but is a failed suite.
  const brokenFiles = (results.testResults ?? []).filter(
    (f) => f.status === "failed" && (f.assertionResults ?? []).every((a) => a.status !== "failed"),
  ).length;
  failed += brokenFiles;
  if (passed + failed === 0) failed = 1;
} catch (error) {
  console.error(`cannot read vitest results from ${file}: ${error.message}`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
