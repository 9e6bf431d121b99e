// One row times a pre-packed weight, for recurrent steps and decoding at batch 1: packRows,
// gemvRows. Layout and semantics: `Kernels.packRows` / `Kernels.gemvRows` in src/kernels.ts.
//
// The weight [N, K] (a Linear weight, rows = outputs) is stored in groups of GR = 24 rows. In a group,
// for each 4-column chunk c of K, the six 4-row slices q in turn, each as four vectors (column i of
// its rows):
//   packed[(g·K4 + 4c)·GR + 16q + 4i + l] = W[g·GR + 4q + l, 4c + i],  K4 = ⌈K/4⌉·4,
// zero past K and in the rows past N of the last group. A lane of an accumulator is one output row,
// so the sums need no horizontal reduction, and gemvRows reads the weight as one sequential stream.
//
// Per chunk of x: one x load and four lane splats, then for each slice s += (w0·x0 + w1·x1) +
// (w2·x2 + w3·x3). An accumulator takes one add per chunk, so its dependent chain is an add, not
// four FMAs in a row. V8 (x64), 1024×256 weight, called again and again: 10.1–10.4 µs against
// 11.0–11.8 for the earlier layout (7 rows, a dot-product accumulator per row, 8 loads per 7 FMAs),
// and 9.8–9.9 µs with the alternating walk (`backwards`); equal on weights streamed from L3. Tried and slower: the four FMAs of a slice chained (12.3 µs,
// latency-bound), two x chunks per iteration (14 µs, spills), 4, 5, 7 or 8 slices (2–5%), the
// group's columns stored whole, 24 rows each (equal in L2, −6% from L3), and the loop inlined into
// gemvRows (18 µs: TurboFan then hoists the weight loads ahead of their uses and spills).
import { fma4 } from "./inline/fma";
import { applyAct, epi1, epi4 } from "./gemm";

// @ts-ignore: decorator
@inline const GR = 24;

/** Floats of `packRows(N, K)`: ⌈N/24⌉·24·⌈K/4⌉·4 (0 when N or K ≤ 0). */
export function packedRowsSize(N: i32, K: i32): i32 {
  if (N <= 0 || K <= 0) return 0;
  return ((N + GR - 1) / GR) * GR * (((K + 3) >> 2) << 2);
}

/** Pack W [N, K] (row stride ldb floats) into the row-group layout at dst (packedRowsSize floats). */
export function packRows(N: i32, K: i32, b: usize, ldb: i32, dst: usize): void {
  if (N <= 0 || K <= 0) return;
  const k4 = ((K + 3) >> 2) << 2;
  const groups = (N + GR - 1) / GR;
  for (let g = 0; g < groups; g++) {
    const gBase = dst + (<usize>g * <usize>k4 * GR << 2);
    for (let r = 0; r < GR; r++) {
      const row = g * GR + r;
      const src = b + (<usize>row * <usize>ldb << 2);
      for (let k = 0; k < k4; k++) {
        const v: f32 = row < N && k < K ? load<f32>(src + (<usize>k << 2)) : 0;
        store<f32>(gBase + ((<usize>(k & ~3) * GR + <usize>((r >> 2) * 16 + (k & 3) * 4 + (r & 3))) << 2), v);
      }
    }
  }
}

/** The sums of one group, and the last chunk of x when K is not a multiple of 4. */
const SUMS: usize = memory.data(GR * 4, 16);
const X_TAIL: usize = memory.data(16, 16);
/** A threaded build's worker instances move them to scratch of their own (`gemvRowsScratch`). */
let sumsT: usize = SUMS;
let xTailT: usize = X_TAIL;
// the single-thread builds keep constant addresses (folded into the loads)
// @ts-ignore: decorator
@inline function sumsAt(): usize {
  return ASC_FEATURE_THREADS ? sumsT : SUMS;
}
// @ts-ignore: decorator
@inline function xTailAt(): usize {
  return ASC_FEATURE_THREADS ? xTailT : X_TAIL;
}

/** Point this instance's scratch (sums, xTail: 128 bytes) at `base` (threaded builds). */
export function gemvRowsScratch(base: usize): void {
  sumsT = base;
  xTailT = base + 96;
}

/**
 * Add to (or, when !add, set) the group's 24 sums in `sums` the products of the packed chunks at bp
 * with x's chunks in [xp, end). Returns bp past the chunks read.
 */
// Not inlined: inside gemvRows TurboFan schedules the weight loads ahead of their uses and spills.
// @ts-ignore: decorator
@noinline function groupSums(bp: usize, xp: usize, end: usize, add: bool): usize {
  const sums = sumsAt();
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0);
  let s3 = f32x4.splat(0), s4 = f32x4.splat(0), s5 = f32x4.splat(0);
  if (add) {
    s0 = v128.load(sums);
    s1 = v128.load(sums, 16);
    s2 = v128.load(sums, 32);
    s3 = v128.load(sums, 48);
    s4 = v128.load(sums, 64);
    s5 = v128.load(sums, 80);
  }
  while (xp < end) {
    const xc = v128.load(xp);
    const x0 = i32x4.shuffle(xc, xc, 0, 0, 0, 0);
    const x1 = i32x4.shuffle(xc, xc, 1, 1, 1, 1);
    const x2 = i32x4.shuffle(xc, xc, 2, 2, 2, 2);
    const x3 = i32x4.shuffle(xc, xc, 3, 3, 3, 3);
    s0 = f32x4.add(s0, f32x4.add(fma4(v128.load(bp, 16), x1, f32x4.mul(v128.load(bp, 0), x0)), fma4(v128.load(bp, 48), x3, f32x4.mul(v128.load(bp, 32), x2))));
    s1 = f32x4.add(s1, f32x4.add(fma4(v128.load(bp, 80), x1, f32x4.mul(v128.load(bp, 64), x0)), fma4(v128.load(bp, 112), x3, f32x4.mul(v128.load(bp, 96), x2))));
    s2 = f32x4.add(s2, f32x4.add(fma4(v128.load(bp, 144), x1, f32x4.mul(v128.load(bp, 128), x0)), fma4(v128.load(bp, 176), x3, f32x4.mul(v128.load(bp, 160), x2))));
    s3 = f32x4.add(s3, f32x4.add(fma4(v128.load(bp, 208), x1, f32x4.mul(v128.load(bp, 192), x0)), fma4(v128.load(bp, 240), x3, f32x4.mul(v128.load(bp, 224), x2))));
    s4 = f32x4.add(s4, f32x4.add(fma4(v128.load(bp, 272), x1, f32x4.mul(v128.load(bp, 256), x0)), fma4(v128.load(bp, 304), x3, f32x4.mul(v128.load(bp, 288), x2))));
    s5 = f32x4.add(s5, f32x4.add(fma4(v128.load(bp, 336), x1, f32x4.mul(v128.load(bp, 320), x0)), fma4(v128.load(bp, 368), x3, f32x4.mul(v128.load(bp, 352), x2))));
    bp += GR * 16;
    xp += 16;
  }
  v128.store(sums, s0);
  v128.store(sums, s1, 16);
  v128.store(sums, s2, 32);
  v128.store(sums, s3, 48);
  v128.store(sums, s4, 64);
  v128.store(sums, s5, 80);
  return bp;
}

/**
 * Direction of gemvRows' next walk over the row groups, flipped on every call. Recurrent steps
 * multiply by the same weight again and again, and a 1024×256 weight (1 MB) fills a Zen 5 core's
 * L2: walked the same way every time, each step evicts the start of the weight before the next
 * step needs it, so all of it comes from L3. Walked back and forth, each step starts on the groups
 * the previous one read last, still in L2. The results do not depend on the order.
 */
let backwards = false;

/**
 * y[j] = act(Σ_k x[k]·W[j, k] + bias[j] + beta·y[j]) for j < N with W packed by `packRows(N, K)`.
 * x holds K floats (nothing past them is read); y must not overlap x or the packed weight.
 */
export function gemvRows(N: i32, K: i32, x: usize, pw: usize, y: usize, bias: usize, beta: f32, act: i32): void {
  const sums = sumsAt();
  const xTail = xTailAt();
  if (N <= 0) return;
  const relu = act == 1;
  const kFull = <usize>(K & ~3) << 2; // bytes of x in whole chunks
  const rem = K & 3;
  // the last chunk of x when K is not a multiple of 4: its missing lanes are 0, as are the packed
  // weights there, so nothing past K is read and no 0·NaN appears
  if (rem) {
    const xp = x + kFull;
    let xl = f32x4.splat(0);
    xl = f32x4.replace_lane(xl, 0, load<f32>(xp));
    if (rem > 1) xl = f32x4.replace_lane(xl, 1, load<f32>(xp, 4));
    if (rem > 2) xl = f32x4.replace_lane(xl, 2, load<f32>(xp, 8));
    v128.store(xTail, xl);
  }
  const groups = (N + GR - 1) / GR;
  const groupBytes = (<usize>(kFull >> 2) + (rem ? 4 : 0)) * (GR * 4);
  // alternate the direction of the walk over the groups from call to call (see `backwards`)
  const back = backwards;
  backwards = !back;
  for (let i = 0; i < groups; i++) {
    const g = back ? groups - 1 - i : i;
    const bp = groupSums(pw + <usize>g * groupBytes, x, x + kFull, false);
    if (rem) groupSums(bp, xTail, xTail + 16, true);
    const j = g * GR;
    const n = min(GR, N - j);
    const cp = y + (<usize>j << 2);
    const biasp = bias ? bias + (<usize>j << 2) : 0;
    if (n == GR) {
      epi4(v128.load(sums, 0), cp, biasp, 1, beta, true, relu);
      epi4(v128.load(sums, 16), cp + 16, biasp ? biasp + 16 : 0, 1, beta, true, relu);
      epi4(v128.load(sums, 32), cp + 32, biasp ? biasp + 32 : 0, 1, beta, true, relu);
      epi4(v128.load(sums, 48), cp + 48, biasp ? biasp + 48 : 0, 1, beta, true, relu);
      epi4(v128.load(sums, 64), cp + 64, biasp ? biasp + 64 : 0, 1, beta, true, relu);
      epi4(v128.load(sums, 80), cp + 80, biasp ? biasp + 80 : 0, 1, beta, true, relu);
    } else {
      for (let r = 0; r < n; r++) {
        const o = <usize>r << 2;
        epi1(load<f32>(sums + o), cp + o, biasp ? biasp + o : 0, 1, beta, true, relu);
      }
    }
  }
  if (act > 1) applyAct(y, 0, 1, N, act);
}
