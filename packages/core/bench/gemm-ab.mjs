// A/B of gemmPacked (or gemm) between wasm builds of @wasmformer/core, in one process, interleaved
// round by round (the order rotates), CPU-time medians in GFLOP/s. For comparing kernel variants:
// build each variant, copy its build/core-relaxed.wasm (or core.wasm) aside, then
//
//   node --experimental-wasm-relaxed-simd bench/gemm-ab.mjs /tmp/a/core-relaxed.wasm /tmp/b/core-relaxed.wasm
//   SHAPES=128,197x768x3072 ROUNDS=11 PLAIN=1 node --experimental-wasm-relaxed-simd bench/gemm-ab.mjs …
//
// Shapes are M×K·K×N (B is K×N, packed once before timing); PLAIN=1 times gemm instead of gemmPacked.
// A file whose name contains "relaxed" is loaded as the relaxed-SIMD build. Not a test.
import { rand, runtimesOf, timeInterleaved } from "./util.mjs";

const core = await import("@wasmformer/core");
const files = process.argv.slice(2);
if (files.length === 0) throw new Error("usage: gemm-ab.mjs <core.wasm> [<core.wasm> …]");
const rts = await runtimesOf(core, files);
const shapes = (process.env.SHAPES ?? "64,128,256,512,1024,197x192x576,197x192x768,128x768x768,197x768x3072")
  .split(",")
  .map((s) => {
    const d = s.split("x").map(Number);
    return d.length === 1 ? [d[0], d[0], d[0]] : d;
  });
const ROUNDS = Number(process.env.ROUNDS ?? 7);

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
    return { fn, h, mark };
  });
  const times = timeInterleaved(
    runs.map((r) => r.fn),
    ROUNDS,
  );
  const gf = times.map((t) => ((2 * M * N * K) / t / 1e9).toFixed(1).padStart(7));
  console.log(`${M}×${K}·${K}×${N}`.padEnd(20) + gf.join(""));
  for (const run of [...runs].reverse()) run.h.release(run.mark);
}
