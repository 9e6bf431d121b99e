// GEMM with a pre-packed B ("weights packed once"): packedSize, packB, gemmPacked. Layout and
// semantics: `Kernels.packB` / `Kernels.gemmPacked` in src/kernels.ts.
//
// The packed layout is the micro-kernel's own B panel format, for the whole K at once: panel q
// (columns 8q..8q+7) is K·8 contiguous floats, `packed[q·K·8 + p·8 + jj] = op(B)[p, 8q + jj]`,
// zero past N. So
// - the blocked path (M ≥ 5) runs the same loops as `gemm` minus the B packing: the kc×8 slice of
//   panel q for the K block at pc starts at float q·K·8 + pc·8;
// - M = 1..4 (decoding a few sequences, a Linear on a few vectors) streams the panels once, front
//   to back, one sequential read of the whole weight, and keeps M×8 sums per panel in registers.
import { fma4 } from "./inline/fma";
import {
  KC, MC, MR, NC, NR, applyAct, blockSize, emptyProduct, epi1, epi4, kernel, packA, packBBlock, packedA, tileBuf,
} from "./gemm";

/** Floats a packed K×N operand occupies: ⌈N/8⌉·8·K (0 when K or N ≤ 0). */
export function packedSize(K: i32, N: i32): i32 {
  if (K <= 0 || N <= 0) return 0;
  return ((N + NR - 1) / NR) * NR * K;
}

/** Write op(B) (K×N) into the packed panel layout at dst (`packedSize(K, N)` floats). */
export function packB(K: i32, N: i32, b: usize, ldb: i32, transB: i32, dst: usize): void {
  if (K <= 0 || N <= 0) return;
  packBBlock(b, ldb, transB, 0, K, 0, N, dst);
}

// ---------------------------------------------------------------------------------------------
// M = 1..4: stream the panels once

// Each `panelR` computes the R×8 block Σ_p A[r, p]·panel[p, :] of one panel and leaves row r in
// tileBuf at floats r·8 .. r·8+7. A[r, p] is at x + r·rs + p·ps (bytes), which covers both transA.
// Enough independent accumulators (8, or 6 for R = 3) keep the FMA chains from stalling the stream.

function panel1(K: i32, x: usize, ps: usize, bp: usize): void {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let s4 = f32x4.splat(0), s5 = f32x4.splat(0), s6 = f32x4.splat(0), s7 = f32x4.splat(0);
  let p = 0;
  for (; p + 4 <= K; p += 4) {
    let xv = v128.load32_splat(x);
    s0 = fma4(xv, v128.load(bp), s0);
    s1 = fma4(xv, v128.load(bp, 16), s1);
    xv = v128.load32_splat(x + ps);
    s2 = fma4(xv, v128.load(bp, 32), s2);
    s3 = fma4(xv, v128.load(bp, 48), s3);
    xv = v128.load32_splat(x + 2 * ps);
    s4 = fma4(xv, v128.load(bp, 64), s4);
    s5 = fma4(xv, v128.load(bp, 80), s5);
    xv = v128.load32_splat(x + 3 * ps);
    s6 = fma4(xv, v128.load(bp, 96), s6);
    s7 = fma4(xv, v128.load(bp, 112), s7);
    x += 4 * ps;
    bp += 4 * NR << 2;
  }
  for (; p < K; p++) {
    const xv = v128.load32_splat(x);
    s0 = fma4(xv, v128.load(bp), s0);
    s1 = fma4(xv, v128.load(bp, 16), s1);
    x += ps;
    bp += NR << 2;
  }
  v128.store(tileBuf, f32x4.add(f32x4.add(s0, s2), f32x4.add(s4, s6)));
  v128.store(tileBuf, f32x4.add(f32x4.add(s1, s3), f32x4.add(s5, s7)), 16);
}

function panel2(K: i32, x: usize, rs: usize, ps: usize, bp: usize): void {
  // accumulators: row 0 (s0, s1), row 1 (s2, s3) for even p; s4..s7 the same for odd p
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
    xv = v128.load32_splat(x + rs + ps);
    s6 = fma4(xv, b0, s6);
    s7 = fma4(xv, b1, s7);
    x += 2 * ps;
    bp += 2 * NR << 2;
  }
  if (p < K) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let xv = v128.load32_splat(x);
    s0 = fma4(xv, b0, s0);
    s1 = fma4(xv, b1, s1);
    xv = v128.load32_splat(x + rs);
    s2 = fma4(xv, b0, s2);
    s3 = fma4(xv, b1, s3);
  }
  v128.store(tileBuf, f32x4.add(s0, s4));
  v128.store(tileBuf, f32x4.add(s1, s5), 16);
  v128.store(tileBuf, f32x4.add(s2, s6), 32);
  v128.store(tileBuf, f32x4.add(s3, s7), 48);
}

function panel3(K: i32, x: usize, rs: usize, ps: usize, bp: usize): void {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let s4 = f32x4.splat(0), s5 = f32x4.splat(0);
  const x1 = rs, x2 = rs * 2;
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
    x += ps;
    bp += NR << 2;
  }
  v128.store(tileBuf, s0);
  v128.store(tileBuf, s1, 16);
  v128.store(tileBuf, s2, 32);
  v128.store(tileBuf, s3, 48);
  v128.store(tileBuf, s4, 64);
  v128.store(tileBuf, s5, 80);
}

function panel4(K: i32, x: usize, rs: usize, ps: usize, bp: usize): void {
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
    xv = v128.load32_splat(x + x3);
    s6 = fma4(xv, b0, s6);
    s7 = fma4(xv, b1, s7);
    x += ps;
    bp += NR << 2;
  }
  v128.store(tileBuf, s0);
  v128.store(tileBuf, s1, 16);
  v128.store(tileBuf, s2, 32);
  v128.store(tileBuf, s3, 48);
  v128.store(tileBuf, s4, 64);
  v128.store(tileBuf, s5, 80);
  v128.store(tileBuf, s6, 96);
  v128.store(tileBuf, s7, 112);
}

/** C[0..M, 0..N] ← epilogue(op(A)·B) for M ≤ 4, B packed; relu fused, other activations by the caller. */
function streamPacked(
  M: i32, N: i32, K: i32, a: usize, rs: usize, ps: usize, pb: usize, c: usize, ldcB: usize,
  bias: usize, alpha: f32, beta: f32, relu: bool,
): void {
  const panelBytes = <usize>K * NR << 2;
  let bp = pb;
  for (let j0 = 0; j0 < N; j0 += NR) {
    if (M == 1) panel1(K, a, ps, bp);
    else if (M == 2) panel2(K, a, rs, ps, bp);
    else if (M == 3) panel3(K, a, rs, ps, bp);
    else panel4(K, a, rs, ps, bp);
    const w = min(NR, N - j0);
    const o = <usize>j0 << 2;
    const biasp = bias ? bias + o : 0;
    for (let r = 0; r < M; r++) {
      const cr = c + <usize>r * ldcB + o;
      const tr = tileBuf + (<usize>(r * NR) << 2);
      if (w == NR) {
        epi4(v128.load(tr), cr, biasp, alpha, beta, true, relu);
        epi4(v128.load(tr, 16), cr + 16, biasp ? biasp + 16 : 0, alpha, beta, true, relu);
      } else {
        for (let j = 0; j < w; j++) {
          const oj = <usize>j << 2;
          epi1(load<f32>(tr + oj), cr + oj, biasp ? biasp + oj : 0, alpha, beta, true, relu);
        }
      }
    }
    bp += panelBytes;
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
  if (M <= 0 || N <= 0) return;
  const ldcB = <usize>ldc << 2;
  if (K <= 0) {
    emptyProduct(M, N, c, ldcB, bias, alpha, beta, act);
    return;
  }
  if (M <= 4) {
    // A[r, p] at a + r·rs + p·ps
    const ldaB = <usize>lda << 2;
    const rs: usize = transA ? 4 : ldaB;
    const ps: usize = transA ? ldaB : 4;
    streamPacked(M, N, K, a, rs, ps, pb, c, ldcB, bias, alpha, beta, act == 1);
    if (act > 1) applyAct(c, ldcB, M, N, act);
    return;
  }
  // the loops of gemm, minus the B packing: the kc×8 slice of panel q at K offset pc starts at
  // float q·K·8 + pc·8, i.e. (column j = 8q)·K + pc·8
  const kcMax = blockSize(K, KC, 4);
  const mcMax = blockSize(M, MC, MR);
  for (let jc = 0; jc < N; jc += NC) {
    const nc = min(NC, N - jc);
    for (let pc = 0; pc < K; pc += kcMax) {
      const kc = min(kcMax, K - pc);
      const first = pc == 0;
      const last = pc + kc >= K;
      for (let ic = 0; ic < M; ic += mcMax) {
        const mc = min(mcMax, M - ic);
        packA(a, lda, transA, ic, mc, pc, kc);
        const cBlock = c + <usize>ic * ldcB + (<usize>jc << 2);
        for (let jr = 0; jr < nc; jr += NR) {
          const bp = pb + ((<usize>(jc + jr) * <usize>K + <usize>pc * NR) << 2);
          const biasp = bias ? bias + (<usize>(jc + jr) << 2) : 0;
          const w = min(NR, nc - jr);
          for (let ir = 0; ir < mc; ir += MR) {
            kernel(
              kc, packedA + (<usize>ir * <usize>kc << 2), bp, cBlock + <usize>ir * ldcB + (<usize>jr << 2), ldcB,
              min(MR, mc - ir), w, biasp, alpha, beta, first, last, act,
            );
          }
        }
      }
    }
  }
}
