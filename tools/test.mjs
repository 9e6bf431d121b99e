#!/usr/bin/env node
// Runs every test of the workspace and prints one closing line "N passed, N failed" that CI reads
// (neither vitest's summary nor several node --test summaries would be read as one).
//   1. all vitest projects (unit, parity, property and fuzz tests);
//   2. browser end-to-end tests in headless Chromium (node --test): the demo app, ViT in the browser;
//   3. the packaging test: pack every package, install the tarballs outside the workspace, run them.
// Arguments are passed to vitest; `--unit` runs step 1 only.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";

const argv = process.argv.slice(2);
const unitOnly = argv.includes("--unit");
const vitestArgs = argv.filter((a) => a !== "--unit");
let passed = 0;
let failed = 0;

// 1. vitest
const out = ".vitest.json";
rmSync(out, { force: true });
const v = spawnSync(
  "pnpm",
  ["exec", "vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${out}`, ...vitestArgs],
  { stdio: "inherit" },
);
try {
  const r = JSON.parse(readFileSync(out, "utf8"));
  passed += r.numPassedTests;
  let f = r.numFailedTests;
  // a test file that failed to load counts as a failure even though no test in it ran
  for (const file of r.testResults ?? []) if (file.status === "failed" && file.assertionResults?.length === 0) f++;
  if (v.status !== 0 && f === 0) f = 1;
  failed += f;
} catch {
  failed += 1; // vitest wrote no report: count the run itself as a failure
}

// 2 + 3. node --test suites, counted from their TAP summaries
const suites = [
  { name: "demo e2e (Chromium)", cwd: "apps/demo", files: ["e2e/"] },
  { name: "vit in the browser (Chromium)", cwd: "packages/vit", files: ["e2e/"] },
  { name: "packaging (tarballs outside the workspace)", cwd: ".", files: ["tools/pack-test/run.test.mjs"] },
];
if (!unitOnly) {
  for (const s of suites) {
    if (!s.files.every((f) => existsSync(`${s.cwd}/${f}`))) continue;
    const tap = `${process.cwd()}/.node-test-${s.cwd.replace(/\W/g, "_")}.tap`;
    rmSync(tap, { force: true });
    console.log(`\n== ${s.name}`);
    const r = spawnSync(
      "node",
      [
        "--test",
        "--test-concurrency=1",
        "--test-reporter=spec",
        "--test-reporter-destination=stdout",
        "--test-reporter=tap",
        `--test-reporter-destination=${tap}`,
        ...s.files,
      ],
      { stdio: "inherit", cwd: s.cwd },
    );
    let text = "";
    try {
      text = readFileSync(tap, "utf8");
    } catch {}
    const p = Number(/^# pass (\d+)/m.exec(text)?.[1] ?? 0);
    let f = Number(/^# fail (\d+)/m.exec(text)?.[1] ?? 0) + Number(/^# cancelled (\d+)/m.exec(text)?.[1] ?? 0);
    if (r.status !== 0 && f === 0) f = 1;
    passed += p;
    failed += f;
    rmSync(tap, { force: true });
  }
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
