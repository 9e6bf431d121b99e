// Time from import to ready kernels, each run in a fresh Node process (cold module cache, cold
// wasm compile): @wasmformer/core (`import` + `await init()` + `createRuntime()`) against
// onnxruntime-web (`import` + `InferenceSession.create` on a one-node MatMul model, wasm backend,
// one thread) and @tensorflow/tfjs-backend-wasm (`import` + `setBackend("wasm")`). Not a test.
//
//   node --experimental-wasm-relaxed-simd bench/init-time.mjs      (RUNS=9 for more runs)
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

const mode = process.argv[2];

if (mode) {
  // child: measure one cold start and print milliseconds
  const t0 = performance.now();
  if (mode === "ours") {
    const core = await import("@wasmformer/core");
    const backend = await core.init();
    const rt = core.createRuntime();
    if (rt.backend !== backend) throw new Error("runtime backend mismatch");
    console.log(JSON.stringify({ ms: performance.now() - t0, backend }));
  } else if (mode === "ort") {
    const ort = await import("onnxruntime-web");
    const { matmulModel } = await import("./onnx-matmul.mjs");
    ort.env.wasm.numThreads = 1;
    const session = await ort.InferenceSession.create(matmulModel(4, 4, 4), { executionProviders: ["wasm"] });
    if (!session.inputNames.includes("A")) throw new Error("unexpected model inputs");
    console.log(JSON.stringify({ ms: performance.now() - t0, backend: "ort-wasm" }));
  } else if (mode === "tfjs") {
    const require = createRequire(import.meta.url);
    const tf = await import("@tensorflow/tfjs-core");
    const tfwasm = await import("@tensorflow/tfjs-backend-wasm");
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
    tfwasm.setThreadsCount(1);
    tfwasm.setWasmPaths(
      `${dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm"))}/`,
    );
    if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm backend failed");
    console.log(JSON.stringify({ ms: performance.now() - t0, backend: "tfjs-wasm" }));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} else {
  const RUNS = Number(process.env.RUNS ?? 7);
  const self = fileURLToPath(import.meta.url);
  const flags = process.execArgv.filter((f) => f.startsWith("--experimental-wasm"));
  const times = { ours: [], ort: [], tfjs: [] };
  let backend = "";
  for (let r = 0; r < RUNS; r++) {
    for (const m of Object.keys(times)) {
      const out = JSON.parse(execFileSync(process.execPath, [...flags, self, m], { encoding: "utf8" }).trim());
      times[m].push(out.ms);
      if (m === "ours") backend = out.backend;
    }
  }
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const load = os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
  console.log(`# import → ready, fresh process each, median of ${RUNS} (node ${process.version}, load ${load})`);
  console.log("| engine | median ms | min ms |");
  console.log("|---|---:|---:|");
  console.log(
    `| @wasmformer/core (${backend}) | ${median(times.ours).toFixed(1)} | ${Math.min(...times.ours).toFixed(1)} |`,
  );
  console.log(
    `| onnxruntime-web session (MatMul) | ${median(times.ort).toFixed(1)} | ${Math.min(...times.ort).toFixed(1)} |`,
  );
  console.log(
    `| tfjs-backend-wasm setBackend | ${median(times.tfjs).toFixed(1)} | ${Math.min(...times.tfjs).toFixed(1)} |`,
  );
}
