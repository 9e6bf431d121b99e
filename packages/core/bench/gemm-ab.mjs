// A/B of gemmPacked (or gemm) between wasm builds of @wasmformer/core, in one process, interleaved
// round by round (the order rotates), CPU-time medians in GFLOP/s. For comparing kernel variants:
// build each variant, copy its build/core-relaxed.wasm (or core.wasm) aside, then
//
//   node --experimental-wasm-relaxed-simd bench/gemm-ab.mjs /tmp/a/core-relaxed.wasm /tmp/b/core-relaxed.wasm
//   SHAPES=128,197x768x3072 ROUNDS=11 PLAIN=1 node --experimental-wasm-relaxed-simd bench/gemm-ab.mjs …
//
// Shapes are M×K·K×N (B is K×N, packed once before timing); PLAIN=1 times gemm instead of gemmPacked.
// A file whose name contains "relaxed" is loaded as the relaxed-SIMD build. Not a test.
import { readFileSync } from "node:fs";

const core = await import("@wasmformer/core");
const files = process.argv.slice(2);
if (files.length === 0) throw new Error("usage: gemm-ab.mjs <core.wasm> [<core.wasm> …]");
const rts = [];
for (const f of files) {
  // init() takes the relaxed build as `wasmRelaxed` and the plain one as `wasm`
  const relaxed = f.includes("relaxed");
  const bytes = readFileSync(f);
  await core.init(relaxed ? { backend: "wasm-relaxed", wasmRelaxed: bytes } : { backend: "wasm-simd", wasm: bytes });
  rts.push(core.createRuntime());
}
const shapes = (process.env.SHAPES ?? "64,128,256,512,1024,197x192x576,197x192x768,128x768x768,197x768x3072")
  .split(",")
  .map((s) => {
    const d = s.split("x").map(Number);
    return d.length === 1 ? [d[0], d[0], d[0]] : d;
  });
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];

function rand(n, seed) {
  // xorshift32, deterministic inputs in [-1, 1)
  let x = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

console.log(`# GFLOP/s, CPU time, median of ${ROUNDS} interleaved rounds; columns: ${files.join("  ")}`);
for (const [M, K, N] of shapes) {
  const A = rand(M * K, 1);
  const B = rand(K * N, 2);
  const runs = rts.map((rt) => {
    const { k, heap: h } = rt;
    const mark = h.mark();
    const a = h.put(A),
      b = h.put(B),
      pb = h.allocF32(k.packedSize(K, N)),
      c = h.allocF32(M * N);
    k.packB(K, N, b, N, 0, pb);
    const fn = process.env.PLAIN
      ? () => k.gemm(M, N, K, a, K, 0, b, N, 0, c, N, 0, 1, 0, 0)
      : () => k.gemmPacked(M, N, K, a, K, 0, pb, c, N, 0, 1, 0, 0);
    // warm-up, then about 40 ms per timed batch
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 100) {
      fn();
      n++;
    }
    return { fn, reps: Math.max(1, Math.round((40 * n) / (performance.now() - t0))), times: [], h, mark };
  });
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < runs.length; i++) {
      const run = runs[(i + r) % runs.length];
      const s = cpuSeconds();
      for (let q = 0; q < run.reps; q++) run.fn();
      run.times.push((cpuSeconds() - s) / run.reps);
    }
  }
  const gf = runs.map((run) => ((2 * M * N * K) / median(run.times) / 1e9).toFixed(1).padStart(7));
  console.log(`${M}×${K}·${K}×${N}`.padEnd(20) + gf.join(""));
  for (const run of [...runs].reverse()) run.h.release(run.mark);
}
