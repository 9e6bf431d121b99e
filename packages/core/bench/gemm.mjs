// GEMM benchmark: @wasmformer/core's gemm (plain-SIMD and relaxed-SIMD builds) against
// onnxruntime-web (wasm backend, a real one-node MatMul model) and @tensorflow/tfjs-backend-wasm
// (tf.matMul), all single-threaded, in one process, interleaved round by round; medians after
// warm-up. Not a test.
//
//   pnpm bench            (= node --experimental-wasm-relaxed-simd bench/gemm.mjs)
//   ROUNDS=9 SHAPES=512,197x768x3072 METRIC=cpu pnpm bench
//
// Shapes are M×K·K×N. "1×768·(3072×768)ᵀ" is the GEMV with a Linear weight stored [N, K]: ours runs
// it with transB = 1, TF.js with transposeB, ORT with its MatMul on the [K, N] copy.
// METRIC=wall (default) times batches with performance.now(); METRIC=cpu with process.cpuUsage(),
// which leaves out time the process spent descheduled on a shared machine (all engines here run on
// the calling thread, so CPU time is their compute time). Inputs are placed once: our operands live in wasm memory (as weights and
// activations do in a model), TF.js tensors live on its backend; ORT's `run` copies its inputs
// and output every call, which is how onnxruntime-web is used. "ORT init" makes B an initializer
// (a Linear weight in an exported model, which ORT may pre-pack); "ORT" feeds B as an input.
// "ours-*-packed" runs gemmPacked on a B packed once by packB before timing (for M = 1: gemvRows on a
// weight packed once by packRows) (a model packs its
// weights at load), the counterpart of TF.js's cached packed weights and ORT's initializer.
import { createRequire } from "node:module";
import os from "node:os";
import { dirname } from "node:path";
import { fmaPeak } from "./fma-peak.mjs";
import { matmulModel } from "./onnx-matmul.mjs";
import { median, rand } from "./util.mjs";

const require = createRequire(import.meta.url);
const ROUNDS = Number(process.env.ROUNDS ?? 7);
/** Target wall time of one timed batch of calls, ms. */
const BATCH_MS = Number(process.env.BATCH_MS ?? 40);

const ALL_SHAPES = [
  [64, 64, 64],
  [128, 128, 128],
  [256, 256, 256],
  [512, 512, 512],
  [1024, 1024, 1024],
  [197, 192, 576],
  [197, 192, 768],
  [128, 768, 768],
  [197, 768, 3072],
  [1, 768, 3072],
  [1, 768, 3072, 1],
];
const METRIC = process.env.METRIC === "cpu" ? "cpu" : "wall";
const label = ([M, K, N, tB]) => (tB ? `${M}×${K}·(${N}×${K})ᵀ` : `${M}×${K}·${K}×${N}`);
function pickShapes() {
  if (!process.env.SHAPES) return ALL_SHAPES;
  return process.env.SHAPES.split(",").map((s) => {
    const d = s.split("x").map(Number);
    return d.length === 1 ? [d[0], d[0], d[0]] : d;
  });
}

// ---- engines ---------------------------------------------------------------------------------

const core = await import("@wasmformer/core");
const ours = [];
await core.init({ backend: "wasm-simd" });
ours.push({ name: "ours-simd", rt: core.createRuntime() });
if (core.relaxedSimdSupported()) {
  await core.init({ backend: "wasm-relaxed" });
  ours.push({ name: "ours-relaxed", rt: core.createRuntime() });
} else {
  console.log("relaxed SIMD unavailable (run node with --experimental-wasm-relaxed-simd); skipping ours-relaxed");
}

const ort = await import("onnxruntime-web");
ort.env.wasm.numThreads = 1;
ort.env.wasm.simd = true;

const tf = await import("@tensorflow/tfjs-core");
const tfwasm = await import("@tensorflow/tfjs-backend-wasm");
tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false); // the single-threaded SIMD build
tfwasm.setThreadsCount(1);
tfwasm.setWasmPaths(`${dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm"))}/`);
if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm backend failed to initialise");
await tf.ready();

// ---- one shape -------------------------------------------------------------------------------

/** Seconds now, by the chosen metric. */
function now() {
  if (METRIC === "wall") return performance.now() / 1e3;
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function benchShape([M, K, N, tB = 0]) {
  const A = rand(M * K, 1 + M),
    B = rand(K * N, 7 + N);
  // Bt = Bᵀ, [N, K]: the Linear-weight layout
  const Bt = new Float32Array(K * N);
  for (let p = 0; p < K; p++) for (let j = 0; j < N; j++) Bt[j * K + p] = B[p * N + j];
  const flops = 2 * M * N * K;
  const impls = [];

  for (const { name, rt } of ours) {
    const h = rt.heap;
    const mark = h.mark();
    const a = h.put(A),
      b = h.put(tB ? Bt : B),
      c = h.allocF32(M * N);
    const k = rt.k;
    const ldb = tB ? K : N;
    impls.push({
      name,
      run: () => k.gemm(M, N, K, a, K, 0, b, ldb, tB, c, N, 0, 1, 0, 0),
      result: () => {
        k.gemm(M, N, K, a, K, 0, b, ldb, tB, c, N, 0, 1, 0, 0);
        return h.f32(c, M * N).slice();
      },
      free: () => h.release(mark),
    });
  }
  // the same kernels with B packed once up front (not timed), as TF.js caches its packed weights and
  // ORT pre-packs an initializer
  for (const { name, rt } of ours) {
    const h = rt.heap;
    const mark = h.mark();
    const a = h.put(A),
      b = h.put(tB ? Bt : B),
      c = h.allocF32(M * N);
    const k = rt.k;
    let run;
    if (M === 1) {
      // one row: the weight goes in the row-group layout of gemvRows (a [N, K] weight, so a [K, N]
      // B is transposed first), the layout models pick for single-row products
      const w = tB ? b : h.allocF32(K * N);
      if (!tB) k.transpose2d(b, N, w, K, K, N);
      const pw = h.allocF32(k.packedRowsSize(N, K));
      k.packRows(N, K, w, K, pw);
      run = () => k.gemvRows(N, K, a, pw, c, 0, 0, 0);
    } else {
      const pb = h.allocF32(k.packedSize(K, N));
      k.packB(K, N, b, tB ? K : N, tB, pb);
      run = () => k.gemmPacked(M, N, K, a, K, 0, pb, c, N, 0, 1, 0, 0);
    }
    impls.push({
      name: `${name}-packed`,
      run,
      result: () => {
        run();
        return h.f32(c, M * N).slice();
      },
      free: () => h.release(mark),
    });
  }

  const ta = tf.tensor2d(A, [M, K]),
    tb = tB ? tf.tensor2d(Bt, [N, K]) : tf.tensor2d(B, [K, N]);
  const tBool = tB === 1;
  impls.push({
    name: "tfjs",
    run: () => tf.matMul(ta, tb, false, tBool).dispose(), // the wasm backend computes synchronously in the op call
    result: () => {
      const t = tf.matMul(ta, tb, false, tBool);
      const d = t.dataSync().slice();
      t.dispose();
      return d;
    },
    free: () => {
      ta.dispose();
      tb.dispose();
    },
  });

  const opts = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  const sIn = await ort.InferenceSession.create(matmulModel(M, K, N), opts);
  const sInit = await ort.InferenceSession.create(matmulModel(M, K, N, B), opts);
  const feedA = new ort.Tensor("float32", A, [M, K]),
    feedB = new ort.Tensor("float32", B, [K, N]);
  impls.push({
    name: "ort",
    run: () => sIn.run({ A: feedA, B: feedB }),
    result: async () => (await sIn.run({ A: feedA, B: feedB })).C.data,
    free: () => sIn.release(),
  });
  impls.push({
    name: "ort-init",
    run: () => sInit.run({ A: feedA }),
    result: async () => (await sInit.run({ A: feedA })).C.data,
    free: () => sInit.release(),
  });

  // all engines agree (relative to the result's scale)
  const ref = await impls[0].result();
  let scale = 0;
  for (const v of ref) scale = Math.max(scale, Math.abs(v));
  for (const im of impls.slice(1)) {
    const r = await im.result();
    let err = 0;
    for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(r[i] - ref[i]));
    if (!(err <= 1e-4 * scale))
      throw new Error(`${label([M, K, N, tB])}: ${im.name} differs from ${impls[0].name} by ${err}`);
  }

  // warm-up, then calibrate the batch size per engine
  for (const im of impls) {
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 60 || n < 3) {
      await im.run();
      n++;
    }
    im.reps = Math.max(1, Math.round((BATCH_MS * n) / (performance.now() - t0)));
    im.times = [];
  }
  for (let round = 0; round < ROUNDS; round++) {
    // rotate the order each round so no engine always runs right after another
    for (let s = 0; s < impls.length; s++) {
      const im = impls[(s + round) % impls.length];
      const t0 = now();
      for (let i = 0; i < im.reps; i++) await im.run();
      im.times.push((now() - t0) / im.reps);
    }
  }
  const row = { shape: label([M, K, N, tB]), M };
  for (const im of impls) row[im.name] = flops / (median(im.times) * 1e9); // GFLOP/s
  for (const im of [...impls].reverse()) await im.free(); // heap marks are released last-in first-out
  return row;
}

// ---- report ----------------------------------------------------------------------------------

const fmt = (x) => (x === undefined ? "–" : x.toFixed(1));
const rows = [];
const load = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
console.log(`# GEMM, single thread, GFLOP/s (median of ${ROUNDS} interleaved rounds, ${METRIC} time)`);
console.log(`node ${process.version}, ${os.cpus()[0]?.model}, ${new Date().toISOString()}, load average ${load()}`);
for (const shape of pickShapes()) {
  const r = await benchShape(shape);
  rows.push(r);
  console.log(
    `${r.shape.padEnd(20)} simd ${fmt(r["ours-simd"])}  relaxed ${fmt(r["ours-relaxed"])}  ` +
      `packed simd ${fmt(r["ours-simd-packed"])}  packed relaxed ${fmt(r["ours-relaxed-packed"])}  tfjs ${fmt(r.tfjs)}  ` +
      `ort ${fmt(r.ort)}  ort-init ${fmt(r["ort-init"])}`,
  );
}
const ratio = (a, b) => (a === undefined ? "–" : `${(a / b).toFixed(2)}×`);
console.log();
console.log(
  "| shape (M×K·K×N) | ours simd | ours relaxed | ours simd, B pre-packed | ours relaxed, B pre-packed | TF.js wasm | ORT web | ORT web (B init) | packed simd/TF | packed relaxed/TF | packed simd/ORT | packed relaxed/ORT |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const ortBest = Math.max(r.ort, r["ort-init"]);
  const ps = r["ours-simd-packed"],
    pr = r["ours-relaxed-packed"];
  console.log(
    `| ${r.shape} | ${fmt(r["ours-simd"])} | ${fmt(r["ours-relaxed"])} | ${fmt(ps)} | ${fmt(pr)} | ${fmt(r.tfjs)} | ${fmt(r.ort)} | ${fmt(r["ort-init"])} | ` +
      `${ratio(ps, r.tfjs)} | ${ratio(pr, r.tfjs)} | ${ratio(ps, ortBest)} | ${ratio(pr, ortBest)} |`,
  );
}
console.log(`\nORT ratios use the faster of the two ORT variants. Load average at the end: ${load()}`);
// the register-only f32x4 ceiling, measured now: how close the relaxed pre-packed kernel comes to it
const peak = await fmaPeak();
const effs = rows.filter((r) => r.M >= 64).map((r) => (100 * r["ours-relaxed-packed"]) / peak);
const share = effs.length
  ? `; relaxed B pre-packed at M ≥ 64 reaches ${Math.min(...effs).toFixed(0)}–${Math.max(...effs).toFixed(0)}% of it`
  : "";
console.log(`relaxed_madd ceiling (bench/fma-peak.mjs, 12 chains in registers): ${peak.toFixed(1)} GFLOP/s${share}.`);
