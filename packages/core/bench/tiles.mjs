// How the threaded kernels cut the calls of the benchmark models at 2, 4 and 8 threads: tiles per
// call, tiles per thread and the work of one tile, from the split code itself (`threadedKernels` on
// a pool that only records). No timing, no workers: the same output on any machine. Not a test.
//
//   node packages/core/bench/tiles.mjs            (MR=6, the relaxed build; MR=5 for plain SIMD)
import { threadedKernels } from "../dist/threaded-kernels.js";

const MR = Number(process.env.MR ?? 6);
const COUNTS = [2, 4, 8];

/** The tiles `call(k)` is cut into on `threads` threads (1 = run on the caller, not split). */
function tilesOf(threads, call) {
  let n = 1;
  const pool = { threads, has: () => true, run: (_id, _fn, _name, tiles) => (n = tiles.length) };
  const noop = () => {};
  const ex = new Proxy({ gemmRowBlock: () => MR, quantRowBytes: () => 1 }, { get: (t, p) => t[p] ?? noop });
  call(threadedKernels(ex, pool, 1, { memory: new WebAssembly.Memory({ initial: 1 }), at: 0 }));
  return n;
}

const head = (L, S, d) => [0, 3 * d, 0, 3 * d, 0, 3 * d, 0, d, 0, L, S, d, d, 0.125, 0, 0, 0, -1];
// [name, multiply-adds (or elements for row kernels), call]
const CASES = [
  [
    "ViT-Tiny QKV 197×576×192 (packed)",
    197 * 576 * 192,
    (k) => k.gemmPacked(197, 576, 192, 0, 192, 0, 0, 0, 576, 0, 1, 0, 0),
  ],
  [
    "ViT-Tiny MLP 197×768×192 (packed)",
    197 * 768 * 192,
    (k) => k.gemmPacked(197, 768, 192, 0, 192, 0, 0, 0, 768, 0, 1, 0, 2),
  ],
  [
    "ViT-Tiny out 197×192×192 (packed)",
    197 * 192 * 192,
    (k) => k.gemmPacked(197, 192, 192, 0, 192, 0, 0, 0, 192, 0, 1, 1, 0),
  ],
  [
    "ViT-Tiny attention, 3 heads of 197×197×64",
    3 * 197 * 197 * 128,
    (k) => k.attentionHeads([head(197, 197, 64), head(197, 197, 64), head(197, 197, 64)]),
  ],
  ["ViT-Tiny layerNorm 197×192 (elements)", 197 * 192, (k) => k.layerNorm(0, 0, 197, 192, 0, 0, 1e-12)],
  [
    "ViT-Base MLP 197×3072×768 (packed)",
    197 * 3072 * 768,
    (k) => k.gemmPacked(197, 3072, 768, 0, 768, 0, 0, 0, 3072, 0, 1, 0, 2),
  ],
  [
    "ViT-Base attention, 12 heads of 197×197×64",
    12 * 197 * 197 * 128,
    (k) => k.attentionHeads(Array.from({ length: 12 }, () => head(197, 197, 64))),
  ],
  [
    "GPT-2 prefill MLP 128×3072×768 (packed)",
    128 * 3072 * 768,
    (k) => k.gemmPacked(128, 3072, 768, 0, 768, 0, 0, 0, 3072, 0, 1, 0, 2),
  ],
  ["GPT-2 decode QKV GEMV 2304×768", 2304 * 768, (k) => k.gemvRows(2304, 768, 0, 0, 0, 0, 0, 0)],
  [
    "LSTM steps, hidden 256, 100 steps (rnnSteps)",
    100 * 1024 * 256,
    (k) => k.rnnSteps(1, 0, 0, 100, 1, 256, 0, 0, 0, 0, 0, 0, 0, 256, 25600, 0, 0, 1),
  ],
  [
    "GRU steps, hidden 256, 100 steps (rnnSteps)",
    100 * 768 * 256,
    (k) => k.rnnSteps(2, 0, 0, 100, 1, 256, 0, 0, 0, 0, 0, 0, 0, 256, 25600, 0, 0, 1),
  ],
  [
    "LSTM input projection 100×1024×128 (packed)",
    100 * 1024 * 128,
    (k) => k.gemmPacked(100, 1024, 128, 0, 128, 0, 0, 0, 1024, 0, 1, 0, 0),
  ],
];

console.log(`tiles a call is cut into (tiles per thread), MR = ${MR}; "1" = not split, run on the caller`);
console.log(
  `\n| call | work (k) | ${COUNTS.map((t) => `${t} thr tiles`).join(" | ")} | ${COUNTS.map((t) => `${t} thr work/tile (k)`).join(" | ")} |`,
);
console.log(`|---|---:|${COUNTS.map(() => "---:").join("|")}|${COUNTS.map(() => "---:").join("|")}|`);
for (const [name, work, call] of CASES) {
  const n = COUNTS.map((t) => tilesOf(t, call));
  console.log(
    `| ${name} | ${(work / 1000).toFixed(0)} | ${n.map((x, i) => `${x} (${(x / COUNTS[i]).toFixed(1)})`).join(" | ")} | ${n.map((x) => (work / x / 1000).toFixed(0)).join(" | ")} |`,
  );
}
