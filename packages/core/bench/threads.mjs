// Thread scaling of the kernels: GEMM 512³ (and other shapes) on 1 thread against 2 threads (or
// THREADS="2,3"), in one process, interleaved. Not a test.
//
//   node --experimental-wasm-relaxed-simd packages/core/bench/threads.mjs [--rounds 10]
import { header, interleaved, loadNote, row } from "./threads-util.mjs";

const core = await import("../dist/index.js");
const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf("--rounds") + 1] || 10);
const counts = (process.env.THREADS ?? "2").split(",").map(Number);

const rts = [];
for (const threads of [1, ...counts]) {
  await core.init({ threads });
  rts.push(core.createRuntime());
}
console.log(`backend ${core.backendName()}; threads ${rts.map((r) => r.threads).join(" vs ")}; ${loadNote()}`);

function gemmCase(rt, M, N, K, transB) {
  const a = rt.heap.allocF32(M * K);
  const b = rt.heap.allocF32(K * N);
  const c = rt.heap.allocF32(M * N);
  rt.heap.f32(a, M * K).forEach((_, i, x) => {
    x[i] = Math.sin(i);
  });
  rt.heap.f32(b, K * N).forEach((_, i, x) => {
    x[i] = Math.cos(i);
  });
  return () => rt.k.gemm(M, N, K, a, K, 0, b, transB ? K : N, transB, c, N, 0, 1, 0, 0);
}
function gemvCase(rt, N, K) {
  const w = rt.heap.allocF32(N * K);
  const pw = rt.heap.allocF32(rt.k.packedRowsSize(N, K));
  rt.k.packRows(N, K, w, K, pw);
  const x = rt.heap.allocF32(K);
  const y = rt.heap.allocF32(N);
  return () => rt.k.gemvRows(N, K, x, pw, y, 0, 0, 0);
}

const cases = [
  ["GEMM 512³", (rt) => gemmCase(rt, 512, 512, 512, 0)],
  ["GEMM 197×768×768 (ViT-Base Linear)", (rt) => gemmCase(rt, 197, 768, 768, 1)],
  ["GEMM 128×3072×768 (GPT-2 fc, prefill 128)", (rt) => gemmCase(rt, 128, 3072, 768, 1)],
  ["gemvRows 2304×768 (GPT-2 decode qkv)", (rt) => gemvCase(rt, 2304, 768)],
];
console.log(`\n${header("case", counts)}`);
for (const [name, make] of cases) {
  const engines = rts.map((rt) => {
    const m = rt.heap.mark();
    return { run: make(rt), release: () => rt.heap.release(m) };
  });
  const ms = await interleaved(engines, { rounds });
  for (const e of engines) e.release();
  console.log(row(name, ms));
}
console.log(`\n${loadNote()}`);
core.terminateThreads();
