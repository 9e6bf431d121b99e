// Runs parity cases inside a worker thread, so that a crash or a hang in one case cannot take the
// runner down: the main thread times each case out and replaces the worker.
import { parentPort, workerData } from "node:worker_threads";
import * as core from "@wasmformer/core";
import { caseFromFolder } from "@wasmformer/core/parity";
import { compareJson, compareTensor, DEFAULT_TOL } from "./compare.mjs";

const PACKAGES = ["core", "text", "nn", "vit", "llm", "vlm", "bert"];

async function loadKinds() {
  const kinds = {};
  for (const p of PACKAGES) {
    let mod;
    try {
      mod = await import(`@wasmformer/${p}/parity`);
    } catch (e) {
      // a package that does not exist (yet) registers nothing; any other failure is a real error
      if (e?.code === "ERR_MODULE_NOT_FOUND" && String(e.message).includes(`@wasmformer/${p}`)) continue;
      throw e;
    }
    Object.assign(kinds, mod.kinds ?? {});
  }
  // extra kinds from modules named on the command line (--kinds), e.g. the runner's own tests
  for (const url of workerData.extraKinds ?? []) Object.assign(kinds, (await import(url)).kinds ?? {});
  return kinds;
}

await core.init({ backend: workerData.backend ?? "auto" });
const kinds = await loadKinds();

function tolFor(json, name) {
  const t = json.tolerance ?? {};
  const per = t.per_tensor?.[name] ?? t.per_tensor?.[`expected.${name}`];
  return { atol: per?.atol ?? t.atol ?? DEFAULT_TOL.atol, rtol: per?.rtol ?? t.rtol ?? DEFAULT_TOL.rtol };
}

async function runCase(dir, json) {
  const kind = kinds[json.kind];
  if (!kind) return { status: "FAIL", reason: "unsupported kind" };
  const c = caseFromFolder(dir, { json });
  let result;
  try {
    result = await kind(c);
  } catch (e) {
    if (json.expect_error && e instanceof core.WasmformerError) {
      return { status: "PASS", rejected: `${e.name}: ${e.message}` };
    }
    const what =
      e instanceof core.WasmformerError
        ? `${e.name}: ${e.message}`
        : `unexpected ${e?.name ?? "exception"}: ${e?.message ?? e}`;
    return { status: "FAIL", reason: json.expect_error ? `expected a ${json.expect_error} error, got ${what}` : what };
  }
  if (json.expect_error)
    return { status: "FAIL", reason: `expected a ${json.expect_error} error, but the case produced outputs` };

  if ("json" in result) {
    const r = compareJson(result.json, json.expected ?? {}, tolFor(json, ""));
    return r.ok ? { status: "PASS", maxAbs: r.maxAbs, maxRel: r.maxRel } : { status: "FAIL", reason: r.reason };
  }
  const io = await c.io();
  let maxAbs = 0;
  let maxRel = 0;
  const names = io.names().filter((n) => n.startsWith("expected."));
  if (names.length === 0) return { status: "FAIL", reason: "case has no expected.* tensors" };
  for (const full of names) {
    const name = full.slice("expected.".length);
    const actual = result.tensors[name];
    if (!actual) return { status: "FAIL", reason: `output "${name}" was not produced` };
    const r = compareTensor(name, actual, io.get(full), io.info(full).dtype, tolFor(json, name));
    if (!r.ok) return { status: "FAIL", reason: r.reason };
    maxAbs = Math.max(maxAbs, r.maxAbs);
    maxRel = Math.max(maxRel, r.maxRel);
  }
  return { status: "PASS", maxAbs, maxRel };
}

parentPort.on("message", async ({ dir, json }) => {
  let out;
  try {
    out = await runCase(dir, json);
  } catch (e) {
    out = { status: "FAIL", reason: `runner error: ${e?.stack ?? e}` };
  }
  parentPort.postMessage(out);
});
parentPort.postMessage({ ready: true, kinds: Object.keys(kinds) });
