// A/B of gemvRows (the one-row product on a weight packed by packRows) between wasm builds of
// @wasmformer/core, in one process, interleaved round by round (the order rotates), CPU-time medians.
// Each timed batch calls gemvRows on the same weight again and again, as an RNN's steps do. Build each
// variant, copy its build/core-relaxed.wasm (or core.wasm) aside, then
//
//   node --experimental-wasm-relaxed-simd bench/gemv-ab.mjs /tmp/a/core-relaxed.wasm /tmp/b/core-relaxed.wasm
//   SHAPES=1024x256,3072x768 ROUNDS=31 node --experimental-wasm-relaxed-simd bench/gemv-ab.mjs …
//
// Shapes are N×K (a Linear weight [out, in]). A file whose name contains "relaxed" is loaded as the
// relaxed-SIMD build. Not a test.
import { rand, runtimesOf, timeInterleaved } from "./util.mjs";

const core = await import("@wasmformer/core");
const files = process.argv.slice(2);
if (files.length === 0) throw new Error("usage: gemv-ab.mjs <core.wasm> [<core.wasm> …]");
const rts = await runtimesOf(core, files);
const shapes = (process.env.SHAPES ?? "1024x256,768x256,1024x128,2304x768,3072x768,768x3072")
  .split(",")
  .map((s) => s.split("x").map(Number));
const ROUNDS = Number(process.env.ROUNDS ?? 21);

console.log(
  `# gemvRows GFLOP/s (µs per call), CPU time, median of ${ROUNDS} interleaved rounds; columns: ${files.join("  ")}`,
);
for (const [N, K] of shapes) {
  const W = rand(N * K, 3);
  const X = rand(K, 4);
  const fns = rts.map(({ k, heap: h }) => {
    const w = h.put(W);
    const x = h.put(X);
    const pw = h.allocF32(k.packedRowsSize(N, K));
    const y = h.allocF32(N);
    k.packRows(N, K, w, K, pw);
    return () => k.gemvRows(N, K, x, pw, y, 0, 0, 0);
  });
  const cells = timeInterleaved(fns, ROUNDS).map(
    (t) => `${((2 * N * K) / t / 1e9).toFixed(1)} (${(t * 1e6).toFixed(2)} µs)`,
  );
  console.log(`${N}×${K}`.padEnd(12), cells.join("  "));
}
