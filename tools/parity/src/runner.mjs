// The parity runner: every case folder of <folder> (FORMAT.md layout), one line per case, then
// "N passed, N failed, N skipped". Exit code 1 when any case fails or is skipped.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

const WORKER = new URL("./case-worker.mjs", import.meta.url);

function parseArgs(argv) {
  const o = { folder: undefined, filter: undefined, backend: "auto", timeout: 300, kinds: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--filter") o.filter = argv[++i];
    else if (a === "--backend") o.backend = argv[++i];
    else if (a === "--timeout") o.timeout = Number(argv[++i]);
    else if (a === "--kinds") o.kinds.push(pathToFileURL(resolve(argv[++i])).href);
    else if (a === "-h" || a === "--help") o.help = true;
    else if (!o.folder) o.folder = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  return o;
}

function listCases(root) {
  if (existsSync(join(root, "case.json"))) return [root];
  return readdirSync(root)
    .filter((d) => statSync(join(root, d)).isDirectory() && existsSync(join(root, d, "case.json")))
    .sort()
    .map((d) => join(root, d));
}

class CaseHost {
  constructor(backend, extraKinds) {
    this.backend = backend;
    this.extraKinds = extraKinds;
    this.worker = undefined;
  }
  async start() {
    this.worker = new Worker(WORKER, {
      workerData: { backend: this.backend, extraKinds: this.extraKinds },
      execArgv: [], // V8 flags (relaxed SIMD) are process-wide and reach the worker anyway
      resourceLimits: { maxOldGenerationSizeMb: 8192 },
    });
    await new Promise((res, rej) => {
      const onMsg = (m) => {
        if (m.ready) {
          this.worker.off("error", rej);
          res();
        }
      };
      this.worker.once("message", onMsg);
      this.worker.once("error", rej);
    });
  }
  async run(dir, json, timeoutMs) {
    if (!this.worker) await this.start();
    const w = this.worker;
    return new Promise((res) => {
      let done = false;
      const finish = (r, restart) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        w.off("message", onMsg);
        w.off("error", onErr);
        w.off("exit", onExit);
        if (restart) {
          w.terminate();
          this.worker = undefined;
        }
        res(r);
      };
      const onMsg = (m) => finish(m, false);
      const onErr = (e) => finish({ status: "FAIL", reason: `crashed: ${e?.message ?? e}` }, true);
      const onExit = (code) => finish({ status: "FAIL", reason: `worker exited with code ${code}` }, true);
      const timer = setTimeout(
        () => finish({ status: "FAIL", reason: `timed out after ${timeoutMs / 1000} s` }, true),
        timeoutMs,
      );
      w.on("message", onMsg);
      w.once("error", onErr);
      w.once("exit", onExit);
      w.postMessage({ dir, json });
    });
  }
  stop() {
    this.worker?.terminate();
  }
}

const num = (x) => (Number.isFinite(x) ? x.toExponential(2) : String(x));

export async function main(argv, log = console.log) {
  let o;
  try {
    o = parseArgs(argv);
  } catch (e) {
    log(e.message);
    return 2;
  }
  if (o.help || !o.folder) {
    log(
      "usage: pnpm parity <folder> [--filter <substring>] [--backend auto|ref|wasm-simd|wasm-relaxed] [--timeout <seconds>] [--kinds <module.mjs>]",
    );
    return o.help ? 0 : 2;
  }
  const root = resolve(process.env.INIT_CWD ?? process.cwd(), o.folder);
  if (!existsSync(root)) {
    log(`no such folder: ${root}`);
    return 2;
  }
  const host = new CaseHost(o.backend, o.kinds);
  let passed = 0;
  let failed = 0;
  const skipped = 0;
  try {
    for (const dir of listCases(root)) {
      let json;
      const folderName = dir.split(/[\\/]/).pop();
      try {
        json = JSON.parse(readFileSync(join(dir, "case.json"), "utf8"));
      } catch (e) {
        log(`FAIL ${folderName} unreadable case.json: ${e.message}`);
        failed++;
        continue;
      }
      const name = typeof json.name === "string" ? json.name : folderName;
      if (o.filter && !name.includes(o.filter)) continue;
      if (json.format_version !== 1) {
        log(`FAIL ${name} unsupported format_version ${JSON.stringify(json.format_version)}`);
        failed++;
        continue;
      }
      const r = await host.run(dir, json, o.timeout * 1000);
      if (r.status === "PASS") {
        passed++;
        log(
          r.rejected !== undefined
            ? `PASS ${name} rejected: ${r.rejected}`
            : `PASS ${name} max_abs=${num(r.maxAbs)} max_rel=${num(r.maxRel)}`,
        );
      } else {
        failed++;
        log(`FAIL ${name} ${r.reason}`);
      }
    }
  } finally {
    host.stop();
  }
  log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  return failed + skipped > 0 ? 1 : 0;
}
