// Scaled dot-product attention for one (batch, head) slice (Vaswani et al. 2017, eq. 1):
// S = scale·Q·Kᵀ (+ mask, key padding, causal limit), P = softmax_rows(S), O = P·V.
// Layout: src/kernels.ts. Scores are f32x4 dot products, four keys per pass over q; O is formed
// as four-key axpy updates of the output row. Keys past the causal limit are neither scored nor
// accumulated. `probs` [L, S] receives P.
import { fma4, hsum4 } from "./inline/fma";
import { softmaxRowInPlace } from "./softmax";

/** Kernels.attention (see src/kernels.ts for every operand). */
export function attention(
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
    // keys j < jEnd may be attended (causal: j ≤ i + causal)
    let jEnd = S;
    if (causal >= 0) {
      const lim = <i64>i + <i64>causal + 1;
      if (lim < <i64>S) jEnd = <i32>lim;
    }
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
    for (j = jEnd; j < S; j++) store<f32>(pr + (<usize>j << 2), -Infinity);
    // ---- additive mask, key padding
    if (mask) {
      const mr = mask + (<usize>i * <usize>maskLd << 2);
      j = 0;
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
      for (j = 0; j < jEnd; j++) {
        if (load<u8>(kpm + <usize>j)) store<f32>(pr + (<usize>j << 2), -Infinity);
      }
    }
    softmaxRowInPlace(pr, S);
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
