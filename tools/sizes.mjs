#!/usr/bin/env node
// Gzipped size of each published package's JS and wasm (what `npm pack` ships: dist/**/*.js without
// tests, and the .wasm files), written into the "## Size" section of each package README.
//   node tools/sizes.mjs            print the table and update the READMEs
//   node tools/sizes.mjs --check    print only; exit 1 if the wasm total is over the 150 KB budget
//   node tools/sizes.mjs --only text,llm   update only these READMEs
// Run after `pnpm build`.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const BUDGET = 150 * 1024; // all wasm together, gzipped
const check = process.argv.includes("--check");
// `--only core,text`: update only these packages' READMEs
const onlyArg = process.argv.indexOf("--only");
const only =
  onlyArg > 0 ? new Set(process.argv[onlyArg + 1].split(",").map((n) => n.replace(/^@wasmformer\//, ""))) : undefined;

function walk(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

const gz = (p) => gzipSync(readFileSync(p), { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

const rows = [];
for (const name of readdirSync(join(root, "packages")).sort()) {
  const dir = join(root, "packages", name);
  const pkgPath = join(dir, "package.json");
  if (!existsSync(pkgPath)) continue;
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8"));
  if (pkg.private) continue;
  const files = walk(dir).filter((p) => !p.includes("node_modules"));
  const js = files.filter((p) => p.startsWith(join(dir, "dist")) && p.endsWith(".js") && !/\.test\.js$/.test(p));
  const wasm = files.filter((p) => p.endsWith(".wasm") && relative(dir, p).startsWith("build"));
  if (js.length === 0) {
    console.error(`${pkg.name}: no dist/*.js (run pnpm build first)`);
    process.exitCode = 1;
    continue;
  }
  const sum = (l) => l.reduce((a, p) => a + statSync(p).size, 0);
  const sumGz = (l) => l.reduce((a, p) => a + gz(p), 0);
  rows.push({
    name: pkg.name,
    dir,
    js: { files: js.length, raw: sum(js), gz: sumGz(js) },
    wasm: wasm.map((p) => ({ file: relative(dir, p), raw: statSync(p).size, gz: gz(p) })),
  });
}

const wasmTotal = rows.reduce((a, r) => a + r.wasm.reduce((b, w) => b + w.gz, 0), 0);
console.log("package                JS (gzip)            wasm (gzip)");
for (const r of rows) {
  const w = r.wasm.length ? r.wasm.map((x) => `${x.file.split("/").pop()} ${kb(x.gz)}`).join(", ") : "none";
  console.log(`${r.name.padEnd(22)} ${kb(r.js.gz).padEnd(9)} (${r.js.files} files)  ${w}`);
}
console.log(`all wasm together, gzipped: ${kb(wasmTotal)} (budget ${kb(BUDGET)})`);
if (wasmTotal > BUDGET) {
  console.error("over the wasm size budget");
  process.exitCode = 1;
}

if (!check) {
  const START = "<!-- size:start -->";
  const END = "<!-- size:end -->";
  for (const r of rows) {
    if (only && !only.has(r.name.replace(/^@wasmformer\//, ""))) continue;
    const readme = join(r.dir, "README.md");
    if (!existsSync(readme)) {
      console.error(`${r.name}: no README.md, size section not written`);
      continue;
    }
    const lines = [
      START,
      "",
      "Gzipped (level 9) size of what the package ships, measured by `node tools/sizes.mjs` after `pnpm build`:",
      "",
      "| part | files | raw | gzip |",
      "| --- | --- | --- | --- |",
      `| JavaScript (\`dist/**/*.js\`) | ${r.js.files} | ${kb(r.js.raw)} | ${kb(r.js.gz)} |`,
      ...r.wasm.map((w) => `| wasm \`${w.file}\` | 1 | ${kb(w.raw)} | ${kb(w.gz)} |`),
      "",
      r.wasm.length
        ? "An app loads one of the wasm builds: relaxed SIMD where the engine supports it, else plain SIMD; the `-threads` one of the two when it runs kernel threads (shared memory)."
        : "No wasm of its own: the kernels come from `@wasmformer/core`.",
      `All wasm of all \`@wasmformer/*\` packages together: ${kb(wasmTotal)} gzipped (budget 150 KB; onnxruntime-web ships 12.8–25.9 MB of wasm).`,
      "",
      END,
    ].join("\n");
    let text = readFileSync(readme, "utf8");
    // only READMEs that carry the markers: @wasmformer/models ships checkpoints, which this table
    // does not count, and states its own budget
    if (!text.includes(START) || !text.includes(END)) {
      console.error(`${r.name}: README.md has no size markers, size section not written`);
      continue;
    }
    text = text.slice(0, text.indexOf(START)) + lines + text.slice(text.indexOf(END) + END.length);
    writeFileSync(readme, text);
  }
}
