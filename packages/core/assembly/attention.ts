// Scaled dot-product attention for one (batch, head) slice (Vaswani et al. 2017, eq. 1):
// S = scale·Q·Kᵀ (+ mask, key padding, causal limit), P = softmax_rows(S), O = P·V.
// Layout: src/kernels.ts. `probs` [L, S] receives P. Keys past the causal limit are neither scored
// nor accumulated.
// - Few queries (L < GEMM_MIN_L, token-by-token decoding): per query row, f32x4 dot products with
//   four keys per pass over q, then four-key axpy updates of the output row.
// - Many queries (prefill, encoders): both products go through the packed GEMM (`./gemm`), in
//   blocks of ROW_BLOCK queries so that a causal block only touches the keys its last row may see.
import { fma4, hsum4 } from "./inline/fma";
import { gemm } from "./gemm";
import { softmaxRowInPlace } from "./softmax";

// @ts-ignore: decorator
@inline const GEMM_MIN_L = 16;
// @ts-ignore: decorator
@inline const ROW_BLOCK = 64;

/** Keys j < keyEnd(i) may be attended by query i (causal: j ≤ i + causal). */
// @ts-ignore: decorator
@inline function keyEnd(i: i32, S: i32, causal: i32): i32 {
  if (causal < 0) return S;
  const lim = <i64>i + <i64>causal + 1;
  return lim < <i64>S ? <i32>lim : S;
}

/**
 * Turn row i of raw scores (valid for j < jEnd) into attention weights: −∞ past jEnd, + mask,
 * −∞ for padded keys, softmax.
 */
// @ts-ignore: decorator
@inline function finishRow(pr: usize, i: i32, S: i32, jEnd: i32, mask: usize, maskLd: i32, kpm: usize): void {
  for (let j = jEnd; j < S; j++) store<f32>(pr + (<usize>j << 2), -Infinity);
  if (mask) {
    const mr = mask + (<usize>i * <usize>maskLd << 2);
    let j = 0;
    for (; j + 4 <= jEnd; j += 4) {
      const off = <usize>j << 2;
      v128.store(pr + off, f32x4.add(v128.load(pr + off), v128.load(mr + off)));
    }
    for (; j < jEnd; j++) {
      const off = <usize>j << 2;
      store<f32>(pr + off, load<f32>(pr + off) + load<f32>(mr + off));
    }
  }
  if (kpm) {
    for (let j = 0; j < jEnd; j++) {
      if (load<u8>(kpm + <usize>j)) store<f32>(pr + (<usize>j << 2), -Infinity);
    }
  }
  softmaxRowInPlace(pr, S);
}

/** Kernels.attention (see src/kernels.ts for every operand). */
export function attention(
  q: usize, ldq: i32, k: usize, ldk: i32, v: usize, ldv: i32, o: usize, ldo: i32,
  probs: usize, L: i32, S: i32, dk: i32, dv: i32, scale: f32,
  mask: usize, maskLd: i32, kpm: usize, causal: i32,
): void {
  if (L <= 0) return;
  if (L < GEMM_MIN_L || S <= 0 || dk <= 0) {
    attentionRows(q, ldq, k, ldk, v, ldv, o, ldo, probs, L, S, dk, dv, scale, mask, maskLd, kpm, causal);
    return;
  }
  const rb = causal >= 0 ? ROW_BLOCK : L;
  for (let i0 = 0; i0 < L; i0 += rb) {
    const m = min(rb, L - i0);
    const nEnd = keyEnd(i0 + m - 1, S, causal); // keys the last row of the block may see
    const pb = probs + (<usize>i0 * <usize>S << 2);
    // S_block = scale · Q_block · K[0:nEnd]ᵀ   (m × nEnd, ld S)
    gemm(m, nEnd, dk, q + (<usize>i0 * <usize>ldq << 2), ldq, 0, k, ldk, 1, pb, S, 0, scale, 0, 0);
    for (let r = 0; r < m; r++) {
      const i = i0 + r;
      finishRow(pb + (<usize>r * <usize>S << 2), i, S, keyEnd(i, S, causal), mask, maskLd, kpm);
    }
    // O_block = P_block[:, 0:nEnd] · V[0:nEnd]   (weights past a row's own limit are 0)
    gemm(m, dv, nEnd, pb, S, 0, v, ldv, 0, o + (<usize>i0 * <usize>ldo << 2), ldo, 0, 1, 0, 0);
  }
}

/** Row-by-row attention with SIMD dot products and axpy updates (small L). */
function attentionRows(
  q: usize, ldq: i32, k: usize, ldk: i32, v: usize, ldv: i32, o: usize, ldo: i32,
  probs: usize, L: i32, S: i32, dk: i32, dv: i32, scale: f32,
  mask: usize, maskLd: i32, kpm: usize, causal: i32,
): void {
  if (L <= 0) return;
  const d4 = dk & ~3;
  const v4 = dv & ~3;
  const sk = <usize>ldk << 2;
  const sv = <usize>ldv << 2;
  for (let i = 0; i < L; i++) {
    const qi = q + (<usize>i * <usize>ldq << 2);
    const pr = probs + (<usize>i * <usize>S << 2);
    const oi = o + (<usize>i * <usize>ldo << 2);
    const jEnd = keyEnd(i, S, causal);
    // ---- scores, four keys at a time
    let j = 0;
    for (; j + 4 <= jEnd; j += 4) {
      const k0 = k + <usize>j * sk;
      const k1 = k0 + sk;
      const k2 = k1 + sk;
      const k3 = k2 + sk;
      let a0 = f32x4.splat(0);
      let a1 = f32x4.splat(0);
      let a2 = f32x4.splat(0);
      let a3 = f32x4.splat(0);
      let p = 0;
      for (; p < d4; p += 4) {
        const off = <usize>p << 2;
        const qv = v128.load(qi + off);
        a0 = fma4(qv, v128.load(k0 + off), a0);
        a1 = fma4(qv, v128.load(k1 + off), a1);
        a2 = fma4(qv, v128.load(k2 + off), a2);
        a3 = fma4(qv, v128.load(k3 + off), a3);
      }
      let s0 = hsum4(a0);
      let s1 = hsum4(a1);
      let s2 = hsum4(a2);
      let s3 = hsum4(a3);
      for (; p < dk; p++) {
        const off = <usize>p << 2;
        const qs = load<f32>(qi + off);
        s0 += qs * load<f32>(k0 + off);
        s1 += qs * load<f32>(k1 + off);
        s2 += qs * load<f32>(k2 + off);
        s3 += qs * load<f32>(k3 + off);
      }
      v128.store(pr + (<usize>j << 2), f32x4.mul(f32x4(s0, s1, s2, s3), f32x4.splat(scale)));
    }
    for (; j < jEnd; j++) {
      const kj = k + <usize>j * sk;
      let a = f32x4.splat(0);
      let p = 0;
      for (; p < d4; p += 4) a = fma4(v128.load(qi + (<usize>p << 2)), v128.load(kj + (<usize>p << 2)), a);
      let s = hsum4(a);
      for (; p < dk; p++) s += load<f32>(qi + (<usize>p << 2)) * load<f32>(kj + (<usize>p << 2));
      store<f32>(pr + (<usize>j << 2), s * scale);
    }
    finishRow(pr, i, S, jEnd, mask, maskLd, kpm);
    // ---- O[i, :] = Σ_j P[i, j]·V[j, :]
    let c = 0;
    for (; c < v4; c += 4) v128.store(oi + (<usize>c << 2), f32x4.splat(0));
    for (; c < dv; c++) store<f32>(oi + (<usize>c << 2), 0);
    j = 0;
    for (; j + 4 <= jEnd; j += 4) {
      const w = v128.load(pr + (<usize>j << 2));
      const w0 = f32x4.splat(f32x4.extract_lane(w, 0));
      const w1 = f32x4.splat(f32x4.extract_lane(w, 1));
      const w2 = f32x4.splat(f32x4.extract_lane(w, 2));
      const w3 = f32x4.splat(f32x4.extract_lane(w, 3));
      const v0 = v + <usize>j * sv;
      const v1 = v0 + sv;
      const v2 = v1 + sv;
      const v3 = v2 + sv;
      c = 0;
      for (; c < v4; c += 4) {
        const off = <usize>c << 2;
        let acc = v128.load(oi + off);
        acc = fma4(w0, v128.load(v0 + off), acc);
        acc = fma4(w1, v128.load(v1 + off), acc);
        acc = fma4(w2, v128.load(v2 + off), acc);
        acc = fma4(w3, v128.load(v3 + off), acc);
        v128.store(oi + off, acc);
      }
      const ws0 = f32x4.extract_lane(w0, 0);
      const ws1 = f32x4.extract_lane(w1, 0);
      const ws2 = f32x4.extract_lane(w2, 0);
      const ws3 = f32x4.extract_lane(w3, 0);
      for (; c < dv; c++) {
        const off = <usize>c << 2;
        store<f32>(
          oi + off,
          load<f32>(oi + off) + ws0 * load<f32>(v0 + off) + ws1 * load<f32>(v1 + off) +
            ws2 * load<f32>(v2 + off) + ws3 * load<f32>(v3 + off),
        );
      }
    }
    for (; j < jEnd; j++) {
      const ws = load<f32>(pr + (<usize>j << 2));
      if (ws == 0) continue;
      const wv = f32x4.splat(ws);
      const vj = v + <usize>j * sv;
      c = 0;
      for (; c < v4; c += 4) {
        const off = <usize>c << 2;
        v128.store(oi + off, fma4(wv, v128.load(vj + off), v128.load(oi + off)));
      }
      for (; c < dv; c++) {
        const off = <usize>c << 2;
        store<f32>(oi + off, load<f32>(oi + off) + ws * load<f32>(vj + off));
      }
    }
  }
}
