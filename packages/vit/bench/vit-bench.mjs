// ViT benchmark: @wasmformer/vit against onnxruntime-web (wasm backend) on the same model and
// weights, exported from PyTorch by bench/export_vit.py (Debian python3-torch). Not a test.
//
//   /usr/bin/python3 bench/export_vit.py tiny      (once per size: tiny, small, base; files in $VIT_BENCH_DIR or <tmp>/wasmformer-vit-bench)
//   node --experimental-wasm-relaxed-simd bench/vit-bench.mjs tiny [--runs 10] [--threads 2]
//
// Latency: both engines in one process, on `--threads` threads each (default 1: ours through
// init({ threads }), ORT through env.wasm.numThreads, whose Node build threads with worker_threads),
// runs interleaved (ours, ORT, ours, …), medians after warm-up; CPU/wall of each shows the threads
// were busy. Every run starts after a pause of SETTLE_MS (default 50): after a run on 2 threads,
// onnxruntime-web's worker keeps spinning for ~17 ms (the process used 16.6 ms of CPU in the 30 ms
// after an ORT run, 0.3 ms after ours; `IDLE_PROBE=1` prints it), and whatever ran next, ours,
// lost a core to it: ViT-Tiny 40.6 ms back to back, 32.1 ms after a pause; ORT unchanged (2026-12-06).
// The last line is a README table row. Load: checkpoint bytes already in memory → ready model (ours: safetensors
// → heap; ORT: InferenceSession.create on the .onnx bytes). Peak memory: each engine in its own
// child process (`--mem ours|ort|none`), maxRSS after load + 3 runs; "none" is node + imports.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const size = args.find((a) => !a.startsWith("--") && !/^\d+$/.test(a)) ?? "tiny";
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const RUNS = Number(opt("runs", 10));
const MEM = opt("mem", undefined);
const THREADS = Number(opt("threads", 1));
if (!Number.isInteger(THREADS) || THREADS < 1) throw new Error(`--threads must be a positive integer, got ${THREADS}`);
const dir = pathToFileURL(`${process.env.VIT_BENCH_DIR ?? join(tmpdir(), "wasmformer-vit-bench")}/`);
const file = (ext) => new URL(`vit-${size}.${ext}`, dir);

if (!existsSync(file("onnx")) && !MEM) {
  // export once (Debian python3-torch); without torch there is nothing to compare against
  const py = "/usr/bin/python3";
  try {
    execFileSync(py, ["-c", "import torch"], { stdio: "ignore" });
  } catch {
    console.log(
      `vit bench skipped: ${fileURLToPath(file("onnx"))} missing and ${py} has no torch (apt-get install python3-torch)`,
    );
    process.exit(0);
  }
  console.log(`exporting ViT-${size} with PyTorch (bench/export_vit.py) …`);
  execFileSync(py, [fileURLToPath(new URL("export_vit.py", import.meta.url)), size, fileURLToPath(dir)], {
    stdio: "inherit",
  });
}

const core = await import("@wasmformer/core");
const vit = await import("../dist/index.js");
const coreRequire = createRequire(new URL("../../core/package.json", import.meta.url));

async function loadOrt() {
  const ort = await import(pathToFileURL(coreRequire.resolve("onnxruntime-web")).href);
  ort.env.wasm.numThreads = THREADS;
  ort.env.wasm.simd = true;
  return ort;
}

const config = JSON.parse(readFileSync(file("config.json"), "utf8"));
// copy out of Node's Buffer (small files share a pooled ArrayBuffer at some byteOffset)
const f32 = (buf) => new Float32Array(new Uint8Array(buf).slice().buffer);
const input = f32(readFileSync(file("input.f32")));
const torchLogits = f32(readFileSync(file("logits.f32")));
const pixels = new core.Tensor(input, [1, 3, 224, 224]);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

async function ours() {
  const backend = await core.init({ threads: THREADS });
  const bytes = readFileSync(file("safetensors")); // a Buffer is a Uint8Array: no copy
  const t0 = performance.now();
  const model = await vit.ViTForImageClassification.fromPretrained({ config, weights: bytes });
  const loadMs = performance.now() - t0;
  return { backend, model, loadMs, run: () => model.forward(pixels).logits.data };
}

async function ort() {
  const o = await loadOrt();
  const bytes = readFileSync(file("onnx"));
  const t0 = performance.now();
  const session = await o.InferenceSession.create(bytes, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  const loadMs = performance.now() - t0;
  const feed = { pixel_values: new o.Tensor("float32", input, [1, 3, 224, 224]) };
  return { session, loadMs, run: async () => (await session.run(feed)).logits.data };
}

if (MEM) {
  // child: one engine only, report peak RSS
  let e;
  if (MEM === "ours") e = await ours();
  else if (MEM === "ours-file") {
    // from the file, tensor by tensor (core's openSafetensors): the file is never in memory whole
    await core.init();
    const t0 = performance.now();
    const weights = await core.openSafetensors(fileURLToPath(file("safetensors")));
    const model = await vit.ViTForImageClassification.fromPretrained({ config, weights });
    await weights.close();
    e = { model, loadMs: performance.now() - t0, run: () => model.forward(pixels).logits.data };
  } else if (MEM === "ort") e = await ort();
  if (e) for (let i = 0; i < 3; i++) await e.run();
  const extra = MEM.startsWith("ours")
    ? { heapMB: e.model.heapBytes / 2 ** 20, weightMB: e.model.weightBytes / 2 ** 20, loadMs: e.loadMs }
    : {};
  // VmHWM is this process image's own peak RSS (getrusage's maxRSS would include the forked parent's)
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))[1]);
  console.log(JSON.stringify({ engine: MEM, maxRssMB: hwm / 1024, ...extra }));
  process.exit(0);
}

const a = await ours();
const b = await ort();
const gotThreads = core.threadsInfo();
if (gotThreads.threads !== THREADS)
  throw new Error(`ours: asked for ${THREADS} threads, got ${gotThreads.threads} (${gotThreads.reason})`);
const la = a.run();
const lb = await b.run();
const os = await import("node:os");
const load0 = os.loadavg()[0];
console.log(
  `ViT-${size} 224x224, ours backend ${a.backend}, ${THREADS} thread(s) each, ${RUNS} interleaved runs (load average ${load0.toFixed(1)} on ${os.cpus().length} cores)`,
);
console.log(
  `max |logits diff|: ours vs torch ${maxDiff(la, torchLogits).toExponential(2)}, ORT vs torch ${maxDiff(lb, torchLogits).toExponential(2)}, ours vs ORT ${maxDiff(la, lb).toExponential(2)}`,
);
for (let i = 0; i < 2; i++) {
  a.run();
  await b.run();
}
const ta = [];
const tb = [];
const ca = [];
const cb = [];
const cpuMs = (c0) => {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};
const SETTLE_MS = Number(process.env.SETTLE_MS ?? 50);
const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));
if (process.env.IDLE_PROBE) {
  // CPU the process uses while idle for 30 ms right after each engine's run
  const idle = async () => {
    const c0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, 30));
    return cpuMs(c0);
  };
  const ia = [];
  const ib = [];
  for (let i = 0; i < 5; i++) {
    a.run();
    ia.push(await idle());
    await b.run();
    ib.push(await idle());
  }
  console.log(
    `CPU in the 30 ms after a run (median): ours ${median(ia).toFixed(1)} ms, ORT ${median(ib).toFixed(1)} ms`,
  );
}
for (let i = 0; i < RUNS; i++) {
  await settle();
  let c0 = process.cpuUsage();
  let t0 = performance.now();
  a.run();
  ta.push(performance.now() - t0);
  ca.push(cpuMs(c0));
  await settle();
  c0 = process.cpuUsage();
  t0 = performance.now();
  await b.run();
  tb.push(performance.now() - t0);
  cb.push(cpuMs(c0));
}
const ma = median(ta);
const mb = median(tb);
const gflop = (() => {
  const { hidden_size: D, num_hidden_layers: L, intermediate_size: I } = config;
  const T = 197;
  const perLayer = 2 * T * D * 3 * D + 2 * T * T * D * 2 + 2 * T * D * D + 2 * 2 * T * D * I;
  return (L * perLayer + 2 * 196 * 768 * D) / 1e9;
})();
console.log(
  `latency median: ours ${ma.toFixed(1)} ms (min ${Math.min(...ta).toFixed(1)}), ORT ${mb.toFixed(1)} ms (min ${Math.min(...tb).toFixed(1)}), ratio ${(ma / mb).toFixed(2)}`,
);
// adjacent runs see about the same machine load: the median of per-pair ratios is the steadier figure
console.log(
  `median of per-run ratios (ours_i / ORT_i, adjacent runs): ${median(ta.map((t, i) => t / tb[i])).toFixed(2)}`,
);
// CPU time of all the process's threads over wall time: about THREADS when every thread works
console.log(
  `CPU/wall (median): ours ${(median(ca) / ma).toFixed(2)}, ORT ${(median(cb) / mb).toFixed(2)} (threads: ours ${THREADS}, ORT ${THREADS})`,
);
console.log(`throughput: ours ${(gflop / (ma / 1000)).toFixed(1)} GFLOP/s (model ${gflop.toFixed(2)} GFLOP)`);
console.log(`load (bytes in memory → ready): ours ${a.loadMs.toFixed(0)} ms, ORT ${b.loadMs.toFixed(0)} ms`);
let torch;
try {
  torch = JSON.parse(readFileSync(file("torch.json"), "utf8"));
  console.log(`PyTorch ${torch.torch} 1 thread (export_vit.py): median ${torch.median_ms.toFixed(1)} ms`);
} catch {}
const pairRatio = median(ta.map((t, i) => t / tb[i]));
const tableRow = `| ViT-${size[0].toUpperCase()}${size.slice(1)}/16 | ${THREADS} | ${ma.toFixed(1)} ms | ${mb.toFixed(1)} ms | ${(ma / mb).toFixed(2)}× | ${pairRatio.toFixed(2)}× | ${load0.toFixed(1)} |`;
if (THREADS > 1) {
  // peak memory is the 1-thread table's business
  console.log(
    `\n| model | threads | ours | onnxruntime-web | ratio | per-run ratio | load |\n|---|---:|---:|---:|---:|---:|---:|\n${tableRow}`,
  );
  core.terminateThreads();
  process.exit(0);
}
const self = new URL(import.meta.url).pathname;
const mem = (engine) =>
  JSON.parse(
    execFileSync(process.execPath, ["--experimental-wasm-relaxed-simd", self, size, "--mem", engine], {
      encoding: "utf8",
    })
      .trim()
      .split("\n")
      .pop(),
  );
const m0 = mem("none");
const m1 = mem("ours");
const m2 = mem("ort");
const m3 = mem("ours-file");
console.log(
  `peak RSS (own process, load + 3 runs): ours ${m1.maxRssMB.toFixed(0)} MB (heap ${m1.heapMB.toFixed(1)} MB, weights ${m1.weightMB.toFixed(1)} MB), ` +
    `ORT ${m2.maxRssMB.toFixed(0)} MB, node + imports alone ${m0.maxRssMB.toFixed(0)} MB; ratio ${(m1.maxRssMB / m2.maxRssMB).toFixed(2)}`,
);
console.log(
  `ours loading from the file lazily (openSafetensors): peak RSS ${m3.maxRssMB.toFixed(0)} MB (ratio to ORT ${(m3.maxRssMB / m2.maxRssMB).toFixed(2)}), file → ready ${m3.loadMs.toFixed(0)} ms`,
);
console.log(
  `\n| model | threads | ours | onnxruntime-web | ratio | per-run ratio | load |\n|---|---:|---:|---:|---:|---:|---:|\n${tableRow}`,
);
