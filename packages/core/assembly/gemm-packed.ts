// GEMM with a pre-packed B ("weights packed once"): packedSize, packB, gemmPacked. Layout and
// semantics: `Kernels.packB` / `Kernels.gemmPacked` in src/kernels.ts.
//
// The packed layout is the micro-kernel's own B block format, for the whole matrix at once: K is
// cut into blocks of KC = 512 rows (the last one kb = K − pc rows), and block pc holds, for each
// 8-column panel q, its kb×8 slice contiguously:
//   packed[pc·N8 + q·kb·8 + (p − pc)·8 + jj] = op(B)[p, 8q + jj],  N8 = ⌈N/8⌉·8, zero past N.
// So
// - the blocked path (M ≥ 5) runs the same loops as `gemm` minus the B packing: the panels of one
//   K block are adjacent, as `gemm`'s per-call packed block is (panels a whole K apart measured
//   slower at K = 1024, L2 set conflicts);
// - M = 1..4 (decoding a few sequences, a Linear on a few vectors) streams the whole buffer once,
//   front to back, keeping M×8 sums per panel in registers and adding each K block's sums into C.
import { fma4 } from "./inline/fma";
import {
  KC, MCP, MR, NC, NR, applyAct, blockPass, blockSize, emptyProduct, epi1, epi4, packBBlock, tileBufAt,
} from "./gemm";

/** Floats a packed K×N operand occupies: ⌈N/8⌉·8·K (0 when K or N ≤ 0). */
export function packedSize(K: i32, N: i32): i32 {
  if (K <= 0 || N <= 0) return 0;
  return ((N + NR - 1) / NR) * NR * K;
}

/** Write op(B) (K×N) into the packed layout at dst (`packedSize(K, N)` floats). */
export function packB(K: i32, N: i32, b: usize, ldb: i32, transB: i32, dst: usize): void {
  if (K <= 0 || N <= 0) return;
  const n8 = <usize>((N + NR - 1) / NR * NR);
  for (let pc = 0; pc < K; pc += KC) {
    packBBlock(b, ldb, transB, pc, min(KC, K - pc), 0, N, dst + (<usize>pc * n8 << 2));
  }
}

// ---------------------------------------------------------------------------------------------
// M = 1..4: stream the panels once

// Each `panelR` computes the R×8 block Σ_p A[r, p]·panel[p, :] of one kb×8 panel slice and leaves
// row r in tileBuf at floats r·8 .. r·8 + 7. A[r, p] is at x + r·rs + p·ps (bytes), which covers
// both transA. The weights are read as one sequential stream. Accumulators, loaded weights and
// broadcasts fit the 15 SIMD registers V8 allocates even when TurboFan hoists every load of the
// loop body to its top (with 18 live vectors it spilled, −40%), and 6–8 independent accumulators
// (k steps unrolled for R = 1, 2) hide the FMA latency.
//
// Measured alternatives: groups of 3 panels (R = 1) or 2 (R = 2) read side by side, fewer
// broadcasts per weight, were ~5% faster on an L3-resident weight (a 9.4 MB GEMV in a loop) but
// much slower where it matters, weights streamed from DRAM: GPT-2-small decode (each weight read
// once per token, 500 MB in all) took 26.4 / 41.3 ms per step at batch 1 / 2 with them against
// 16.0 / 20.4 ms with one stream (CPU time, A/B in one process).

/** One row: three k steps per iteration into separate sums (6 chains). */
function panel1(K: i32, x: usize, ps: usize, bp: usize): void {
  const tileBuf = tileBufAt();
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let s4 = f32x4.splat(0), s5 = f32x4.splat(0);
  let p = 0;
  for (; p + 3 <= K; p += 3) {
    let xv = v128.load32_splat(x);
    s0 = fma4(xv, v128.load(bp), s0);
    s1 = fma4(xv, v128.load(bp, 16), s1);
    xv = v128.load32_splat(x + ps);
    s2 = fma4(xv, v128.load(bp, 32), s2);
    s3 = fma4(xv, v128.load(bp, 48), s3);
    xv = v128.load32_splat(x + 2 * ps);
    s4 = fma4(xv, v128.load(bp, 64), s4);
    s5 = fma4(xv, v128.load(bp, 80), s5);
    x += 3 * ps;
    bp += 3 * NR << 2;
  }
  for (; p < K; p++) {
    const xv = v128.load32_splat(x);
    s0 = fma4(xv, v128.load(bp), s0);
    s1 = fma4(xv, v128.load(bp, 16), s1);
    x += ps;
    bp += NR << 2;
  }
  v128.store(tileBuf, f32x4.add(f32x4.add(s0, s2), s4));
  v128.store(tileBuf, f32x4.add(f32x4.add(s1, s3), s5), 16);
}

/** Two rows: two k steps per iteration into separate sums (8 chains). */
function panel2(K: i32, x: usize, rs: usize, ps: usize, bp: usize): void {
  const tileBuf = tileBufAt();
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let s4 = f32x4.splat(0), s5 = f32x4.splat(0), s6 = f32x4.splat(0), s7 = f32x4.splat(0);
  let p = 0;
  for (; p + 2 <= K; p += 2) {
    let b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let xv = v128.load32_splat(x);
    s0 = fma4(xv, b0, s0);
    s1 = fma4(xv, b1, s1);
    xv = v128.load32_splat(x + rs);
    s2 = fma4(xv, b0, s2);
    s3 = fma4(xv, b1, s3);
    b0 = v128.load(bp, 32);
    b1 = v128.load(bp, 48);
    xv = v128.load32_splat(x + ps);
    s4 = fma4(xv, b0, s4);
    s5 = fma4(xv, b1, s5);
    xv = v128.load32_splat(x + ps + rs);
    s6 = fma4(xv, b0, s6);
    s7 = fma4(xv, b1, s7);
    x += ps << 1;
    bp += 2 * NR << 2;
  }
  s0 = f32x4.add(s0, s4);
  s1 = f32x4.add(s1, s5);
  s2 = f32x4.add(s2, s6);
  s3 = f32x4.add(s3, s7);
  for (; p < K; p++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let xv = v128.load32_splat(x);
    s0 = fma4(xv, b0, s0);
    s1 = fma4(xv, b1, s1);
    xv = v128.load32_splat(x + rs);
    s2 = fma4(xv, b0, s2);
    s3 = fma4(xv, b1, s3);
    x += ps;
    bp += NR << 2;
  }
  v128.store(tileBuf, s0);
  v128.store(tileBuf, s1, 16);
  v128.store(tileBuf, s2, 32);
  v128.store(tileBuf, s3, 48);
}

/** R = 3 or 4 rows (a constant once inlined): one k step per iteration, 2R chains. */
// @ts-ignore: decorator
@inline function panelR(R: i32, K: i32, x: usize, rs: usize, ps: usize, bp: usize): void {
  const tileBuf = tileBufAt();
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let s4 = f32x4.splat(0), s5 = f32x4.splat(0), s6 = f32x4.splat(0), s7 = f32x4.splat(0);
  const x1 = rs, x2 = rs * 2, x3 = rs * 3;
  for (let p = 0; p < K; p++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let xv = v128.load32_splat(x);
    s0 = fma4(xv, b0, s0);
    s1 = fma4(xv, b1, s1);
    xv = v128.load32_splat(x + x1);
    s2 = fma4(xv, b0, s2);
    s3 = fma4(xv, b1, s3);
    xv = v128.load32_splat(x + x2);
    s4 = fma4(xv, b0, s4);
    s5 = fma4(xv, b1, s5);
    if (R > 3) {
      xv = v128.load32_splat(x + x3);
      s6 = fma4(xv, b0, s6);
      s7 = fma4(xv, b1, s7);
    }
    x += ps;
    bp += NR << 2;
  }
  v128.store(tileBuf, s0);
  v128.store(tileBuf, s1, 16);
  v128.store(tileBuf, s2, 32);
  v128.store(tileBuf, s3, 48);
  v128.store(tileBuf, s4, 64);
  v128.store(tileBuf, s5, 80);
  if (R > 3) {
    v128.store(tileBuf, s6, 96);
    v128.store(tileBuf, s7, 112);
  }
}

function panel3(K: i32, x: usize, rs: usize, ps: usize, bp: usize): void {
  panelR(3, K, x, rs, ps, bp);
}

function panel4(K: i32, x: usize, rs: usize, ps: usize, bp: usize): void {
  panelR(4, K, x, rs, ps, bp);
}

/**
 * C[0..M, 0..N] ← epilogue(op(A)·B) for M ≤ 4, B packed: the buffer is read once, front to back,
 * K block by K block, panel by panel. The first K block writes `alpha·acc + bias + beta·C`, later
 * ones add `alpha·acc`; relu is fused on the last, other activations are applied by the caller.
 */
function streamPacked(
  M: i32, N: i32, K: i32, a: usize, rs: usize, ps: usize, pb: usize, c: usize, ldcB: usize,
  bias: usize, alpha: f32, beta: f32, relu: bool, n0: i32, n1: i32,
): void {
  const tileBuf = tileBufAt();
  const n8 = <usize>((N + NR - 1) / NR * NR);
  for (let pc = 0; pc < K; pc += KC) {
    const kb = min(KC, K - pc);
    const first = pc == 0;
    const reluHere = relu && pc + kb >= K;
    const x = a + <usize>pc * ps;
    const panelBytes = <usize>kb * NR << 2;
    let bp = pb + ((<usize>pc * n8 + <usize>n0 * <usize>kb) << 2);
    for (let j0 = n0; j0 < n1; j0 += NR) {
      if (M == 1) panel1(kb, x, ps, bp);
      else if (M == 2) panel2(kb, x, rs, ps, bp);
      else if (M == 3) panel3(kb, x, rs, ps, bp);
      else panel4(kb, x, rs, ps, bp);
      const w = min(NR, n1 - j0);
      const o = <usize>j0 << 2;
      const biasp = bias ? bias + o : 0;
      for (let r = 0; r < M; r++) {
        const cr = c + <usize>r * ldcB + o;
        const tr = tileBuf + (<usize>(r * NR) << 2);
        if (w == NR) {
          epi4(v128.load(tr), cr, biasp, alpha, beta, first, reluHere);
          epi4(v128.load(tr, 16), cr + 16, biasp ? biasp + 16 : 0, alpha, beta, first, reluHere);
        } else {
          for (let j = 0; j < w; j++) {
            const oj = <usize>j << 2;
            epi1(load<f32>(tr + oj), cr + oj, biasp ? biasp + oj : 0, alpha, beta, first, reluHere);
          }
        }
      }
      bp += panelBytes;
    }
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * `C = act(alpha·op(A)·B + bias + beta·C)` with B already packed by `packB(K, N, …)`; see
 * `Kernels.gemmPacked` in src/kernels.ts. C must not alias A or the packed B.
 */
export function gemmPacked(
  M: i32, N: i32, K: i32,
  a: usize, lda: i32, transA: i32,
  pb: usize,
  c: usize, ldc: i32,
  bias: usize, alpha: f32, beta: f32, act: i32,
): void {
  gemmPackedRange(M, N, K, a, lda, transA, pb, c, ldc, bias, alpha, beta, act, 0, N);
}

/**
 * `gemmPacked` restricted to C's columns n0..n1 (n0 a multiple of 8, n1 a multiple of 8 or N): the
 * same arithmetic for each of those elements as the whole product, so a threaded caller can split
 * the columns of a packed weight between threads (the M ≤ 4 decoding path cannot be split by rows).
 */
export function gemmPackedRange(
  M: i32, N: i32, K: i32,
  a: usize, lda: i32, transA: i32,
  pb: usize,
  c: usize, ldc: i32,
  bias: usize, alpha: f32, beta: f32, act: i32,
  n0: i32, n1: i32,
): void {
  n0 = max(n0, 0);
  n1 = min(n1, N);
  if (M <= 0 || n1 <= n0) return;
  const ldcB = <usize>ldc << 2;
  const w = n1 - n0;
  const c0 = c + (<usize>n0 << 2);
  if (K <= 0) {
    emptyProduct(M, w, c0, ldcB, bias ? bias + (<usize>n0 << 2) : 0, alpha, beta, act);
    return;
  }
  if (M <= 4) {
    const ldaB = <usize>lda << 2;
    const rs: usize = transA ? 4 : ldaB;
    const ps: usize = transA ? ldaB : 4;
    streamPacked(M, N, K, a, rs, ps, pb, c, ldcB, bias, alpha, beta, act == 1, n0, n1);
    if (act > 1) applyAct(c0, ldcB, M, w, act);
    return;
  }
  const n8 = <usize>((N + NR - 1) / NR * NR);
  const kcMax = KC;
  const mcMax = blockSize(M, MCP, MR);
  for (let jc = n0; jc < n1; jc += NC) {
    const nc = min(NC, n1 - jc);
    for (let pc = 0; pc < K; pc += kcMax) {
      const kc = min(kcMax, K - pc);
      const bBlock = pb + ((<usize>pc * n8 + <usize>jc * <usize>kc) << 2);
      blockPass(M, mcMax, a, lda, transA, pc, kc, bBlock, c, ldcB, jc, nc, bias, alpha, beta, pc == 0, pc + kc >= K, act);
    }
  }
}
