#!/usr/bin/env node
// Runs every test of the workspace (vitest projects), then prints one closing line
// "N passed, N failed" that CI reads (vitest's own summary is not recognised there).
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";

const out = ".vitest.json";
rmSync(out, { force: true });
const args = [
  "exec",
  "vitest",
  "run",
  "--reporter=default",
  "--reporter=json",
  `--outputFile.json=${out}`,
  ...process.argv.slice(2),
];
const run = spawnSync("pnpm", args, { stdio: "inherit" });

let passed = 0;
let failed = 0;
try {
  const r = JSON.parse(readFileSync(out, "utf8"));
  passed = r.numPassedTests;
  failed = r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0);
  if (r.numFailedTestSuites && !r.numFailedTests) failed += r.numFailedTestSuites;
} catch {
  failed += 1; // vitest did not write a report: count the run itself as a failure
}
if (run.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
