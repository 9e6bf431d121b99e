/**
 * The reference backward kernels (`BackwardKernels` in kernels.ts) as plain loops in f64, stored
 * as f32: the oracle of the SIMD kernels (assembly/backward-*.ts) and the fallback without wasm
 * SIMD. Every gradient output accumulates (`+=`) unless the contract says otherwise.
 */
import type { Heap } from "../heap.js";
import type { BackwardKernels } from "../kernels.js";
import { erfc } from "../math.js";

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const GELU_TANH_C = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * f′ for an `Act` code, from `s` (the forward input for relu, gelu, geluTanh, silu, abs, log; the
 * forward output for tanh, sigmoid, exp, sqrt).
 */
export function actDerivative(s: number, act: number): number {
  switch (act) {
    case 0:
      return 1;
    case 1:
      return s > 0 ? 1 : 0;
    case 2:
      // Φ(x) + x·φ(x)
      return 0.5 * erfc(-s * Math.SQRT1_2) + s * Math.exp(-0.5 * s * s) * INV_SQRT_2PI;
    case 3: {
      // d/dx of 0.5·x·(1 + tanh u), u = √(2/π)(x + 0.044715x³)
      const t = Math.tanh(GELU_TANH_C * (s + 0.044715 * s * s * s));
      return 0.5 * (1 + t) + 0.5 * s * (1 - t * t) * GELU_TANH_C * (1 + 3 * 0.044715 * s * s);
    }
    case 4: {
      const sg = sigmoid(s);
      return sg * (1 + s * (1 - sg));
    }
    case 5:
      return 1 - s * s;
    case 6:
      return s * (1 - s);
    case 7:
      return s;
    case 8:
      return -1;
    case 9:
      return 0.5 / s;
    case 10:
      return s > 0 ? 1 : s < 0 ? -1 : 0;
    case 11:
      return 1 / s;
    default:
      return 1;
  }
}

/** The backward kernels of the reference backend, over `heap`. */
export function refBackwardKernels(heap: Heap): BackwardKernels {
  const F = () => new Float32Array(heap.buffer());
  const I = () => new Int32Array(heap.buffer());

  const kernels: BackwardKernels = {
    unaryBackward(dx, dy, src, n, act) {
      const f = F();
      const X = dx >> 2,
        D = dy >> 2,
        S = src >> 2;
      for (let i = 0; i < n; i++) f[X + i] += f[D + i] * actDerivative(act === 0 || act === 8 ? 0 : f[S + i], act);
    },

    biasGrad(db, dy, rows, cols, ld) {
      const f = F();
      for (let j = 0; j < cols; j++) {
        let s = f[(db >> 2) + j];
        for (let r = 0; r < rows; r++) s += f[(dy >> 2) + r * ld + j];
        f[(db >> 2) + j] = s;
      }
    },

    embeddingBackward(dW, vocab, dim, ids, n, dy, paddingIdx) {
      const f = F();
      const ii = I();
      for (let t = 0; t < n; t++) {
        const id = ii[(ids >> 2) + t];
        if (id < 0 || id >= vocab) return t;
      }
      for (let t = 0; t < n; t++) {
        const id = ii[(ids >> 2) + t];
        if (id === paddingIdx) continue;
        for (let j = 0; j < dim; j++) f[(dW >> 2) + id * dim + j] += f[(dy >> 2) + t * dim + j];
      }
      return -1;
    },

    im2colPatchBackward(dx, dcols, C, H, W, k) {
      const f = F();
      const X = dx >> 2,
        D = dcols >> 2;
      const gh = Math.floor(H / k),
        gw = Math.floor(W / k),
        cols = C * k * k;
      for (let r = 0; r < gh; r++)
        for (let c = 0; c < gw; c++)
          for (let ch = 0; ch < C; ch++)
            for (let u = 0; u < k; u++)
              for (let v = 0; v < k; v++)
                f[X + ch * H * W + (r * k + u) * W + c * k + v] += f[D + (r * gw + c) * cols + (ch * k + u) * k + v];
    },

    normStats(x, rows, d, eps, mean, rstd) {
      const f = F();
      for (let r = 0; r < rows; r++) {
        const X = (x >> 2) + r * d;
        if (mean) {
          let mu = 0;
          for (let j = 0; j < d; j++) mu += f[X + j];
          mu /= d;
          let v = 0;
          for (let j = 0; j < d; j++) v += (f[X + j] - mu) ** 2;
          f[(mean >> 2) + r] = mu;
          f[(rstd >> 2) + r] = 1 / Math.sqrt(v / d + eps);
        } else {
          let s = 0;
          for (let j = 0; j < d; j++) s += f[X + j] * f[X + j];
          f[(rstd >> 2) + r] = 1 / Math.sqrt(s / d + eps);
        }
      }
    },

    layerNormBackward(dx, dgamma, dbeta, dy, x, gamma, mean, rstd, rows, d, eps) {
      const f = F();
      for (let r = 0; r < rows; r++) {
        const X = (x >> 2) + r * d,
          Dy = (dy >> 2) + r * d;
        let mu: number, rs: number;
        if (mean && rstd) {
          mu = f[(mean >> 2) + r];
          rs = f[(rstd >> 2) + r];
        } else {
          mu = 0;
          for (let j = 0; j < d; j++) mu += f[X + j];
          mu /= d;
          let v = 0;
          for (let j = 0; j < d; j++) v += (f[X + j] - mu) ** 2;
          rs = 1 / Math.sqrt(v / d + eps);
        }
        let a = 0,
          b = 0;
        for (let j = 0; j < d; j++) {
          const xh = (f[X + j] - mu) * rs;
          const g = f[Dy + j] * (gamma ? f[(gamma >> 2) + j] : 1);
          a += g;
          b += g * xh;
          if (dgamma) f[(dgamma >> 2) + j] += f[Dy + j] * xh;
          if (dbeta) f[(dbeta >> 2) + j] += f[Dy + j];
        }
        if (!dx) continue;
        for (let j = 0; j < d; j++) {
          const xh = (f[X + j] - mu) * rs;
          const g = f[Dy + j] * (gamma ? f[(gamma >> 2) + j] : 1);
          f[(dx >> 2) + r * d + j] += rs * (g - a / d - (xh * b) / d);
        }
      }
    },

    rmsNormBackward(dx, dgamma, dy, x, gamma, rstd, rows, d, eps) {
      const f = F();
      for (let r = 0; r < rows; r++) {
        const X = (x >> 2) + r * d,
          Dy = (dy >> 2) + r * d;
        let rs: number;
        if (rstd) rs = f[(rstd >> 2) + r];
        else {
          let s = 0;
          for (let j = 0; j < d; j++) s += f[X + j] * f[X + j];
          rs = 1 / Math.sqrt(s / d + eps);
        }
        let b = 0;
        for (let j = 0; j < d; j++) {
          b += f[Dy + j] * (gamma ? f[(gamma >> 2) + j] : 1) * f[X + j];
          if (dgamma) f[(dgamma >> 2) + j] += f[Dy + j] * f[X + j] * rs;
        }
        if (!dx) continue;
        for (let j = 0; j < d; j++) {
          const g = f[Dy + j] * (gamma ? f[(gamma >> 2) + j] : 1);
          f[(dx >> 2) + r * d + j] += rs * g - (f[X + j] * rs * rs * rs * b) / d;
        }
      }
    },

    softmaxBackward(dx, dy, y, rows, cols, ld) {
      const f = F();
      for (let r = 0; r < rows; r++) {
        const o = r * ld;
        let s = 0;
        for (let j = 0; j < cols; j++) s += f[(dy >> 2) + o + j] * f[(y >> 2) + o + j];
        for (let j = 0; j < cols; j++) f[(dx >> 2) + o + j] += f[(y >> 2) + o + j] * (f[(dy >> 2) + o + j] - s);
      }
    },

    attentionBackwardHeads(slices) {
      for (const a of slices) kernels.attentionBackward(...a);
    },

    attentionBackward(dQ, dK, dV, dO, ldo, q, ldq, k, ldk, v, ldv, probs, dProbs, scratch, L, S, dk, dv, scale) {
      const f = F();
      const P = probs >> 2,
        Sc = scratch >> 2;
      for (let i = 0; i < L; i++) {
        // dP[i, j] = dO[i]·V[j] + dProbs[i, j], then dS = P ⊙ (dP − Σ_j P⊙dP)
        const dp = new Float64Array(S);
        let s = 0;
        for (let j = 0; j < S; j++) {
          let t = dProbs ? f[(dProbs >> 2) + i * S + j] : 0;
          for (let c = 0; c < dv; c++) t += f[(dO >> 2) + i * ldo + c] * f[(v >> 2) + j * ldv + c];
          dp[j] = t;
          s += t * f[P + i * S + j];
        }
        for (let j = 0; j < S; j++) f[Sc + i * S + j] = f[P + i * S + j] * (dp[j] - s);
      }
      if (dV)
        for (let j = 0; j < S; j++)
          for (let c = 0; c < dv; c++) {
            let t = 0;
            for (let i = 0; i < L; i++) t += f[P + i * S + j] * f[(dO >> 2) + i * ldo + c];
            f[(dV >> 2) + j * ldv + c] += t;
          }
      if (dQ)
        for (let i = 0; i < L; i++)
          for (let c = 0; c < dk; c++) {
            let t = 0;
            for (let j = 0; j < S; j++) t += f[Sc + i * S + j] * f[(k >> 2) + j * ldk + c];
            f[(dQ >> 2) + i * ldq + c] += scale * t;
          }
      if (dK)
        for (let j = 0; j < S; j++)
          for (let c = 0; c < dk; c++) {
            let t = 0;
            for (let i = 0; i < L; i++) t += f[Sc + i * S + j] * f[(q >> 2) + i * ldq + c];
            f[(dK >> 2) + j * ldk + c] += scale * t;
          }
    },

    softmaxCrossEntropy(logits, dlogits, ld, rows, V, targets, ignoreIndex, eps, reduction, dloss, lossOut) {
      const ii = I();
      let N = 0;
      for (let r = 0; r < rows; r++) {
        const t = ii[(targets >> 2) + r];
        if (t === ignoreIndex) continue;
        if (t < 0 || t >= V) return r;
        N++;
      }
      const f = F();
      const c = reduction === 0 ? (N > 0 ? dloss / N : 0) : dloss;
      let total = 0;
      for (let r = 0; r < rows; r++) {
        const t = ii[(targets >> 2) + r];
        if (t === ignoreIndex) continue;
        const X = (logits >> 2) + r * ld;
        let max = -Infinity,
          sx = 0;
        for (let j = 0; j < V; j++) {
          max = Math.max(max, f[X + j]);
          sx += f[X + j];
        }
        let se = 0;
        for (let j = 0; j < V; j++) se += Math.exp(f[X + j] - max);
        const lse = max + Math.log(se);
        total += lse - (1 - eps) * f[X + t] - (eps > 0 ? (eps / V) * sx : 0);
        if (!dlogits) continue;
        for (let j = 0; j < V; j++) {
          const p = Math.exp(f[X + j] - lse);
          f[(dlogits >> 2) + r * ld + j] += c * (p - eps / V - (j === t ? 1 - eps : 0));
        }
      }
      f[lossOut >> 2] = reduction === 0 ? total / N : total;
      return -1;
    },

    lstmCellBackward(dgates, dc, dh, ldh, gates, cPrev, H, batch) {
      const f = F();
      for (let b = 0; b < batch; b++) {
        const G = (gates >> 2) + b * 4 * H,
          DG = (dgates >> 2) + b * 4 * H;
        for (let j = 0; j < H; j++) {
          const i = sigmoid(f[G + j]);
          const fg = sigmoid(f[G + H + j]);
          const g = Math.tanh(f[G + 2 * H + j]);
          const o = sigmoid(f[G + 3 * H + j]);
          const cp = f[(cPrev >> 2) + b * H + j];
          const tc = Math.tanh(fg * cp + i * g);
          const dhv = f[(dh >> 2) + b * ldh + j];
          const dct = f[(dc >> 2) + b * H + j] + dhv * o * (1 - tc * tc);
          f[DG + j] = dct * g * i * (1 - i);
          f[DG + H + j] = dct * cp * fg * (1 - fg);
          f[DG + 2 * H + j] = dct * i * (1 - g * g);
          f[DG + 3 * H + j] = dhv * tc * o * (1 - o);
          f[(dc >> 2) + b * H + j] = dct * fg;
        }
      }
    },

    gruCellBackward(dgx, dgh, dhPrev, dh, ldh, gx, gh, hPrev, ldp, H, batch) {
      const f = F();
      for (let b = 0; b < batch; b++) {
        const X = (gx >> 2) + b * 3 * H,
          Hg = (gh >> 2) + b * 3 * H;
        for (let j = 0; j < H; j++) {
          const r = sigmoid(f[X + j] + f[Hg + j]);
          const z = sigmoid(f[X + H + j] + f[Hg + H + j]);
          const ghn = f[Hg + 2 * H + j];
          const n = Math.tanh(f[X + 2 * H + j] + r * ghn);
          const dhv = f[(dh >> 2) + b * ldh + j];
          const hp = f[(hPrev >> 2) + b * ldp + j];
          const dn = dhv * (1 - z) * (1 - n * n);
          const dz = dhv * (hp - n) * z * (1 - z);
          const dr = dn * ghn * r * (1 - r);
          const o = b * 3 * H + j;
          f[(dgx >> 2) + o] = dr;
          f[(dgx >> 2) + o + H] = dz;
          f[(dgx >> 2) + o + 2 * H] = dn;
          f[(dgh >> 2) + o] = dr;
          f[(dgh >> 2) + o + H] = dz;
          f[(dgh >> 2) + o + 2 * H] = dn * r;
          f[(dhPrev >> 2) + b * H + j] += dhv * z;
        }
      }
    },
  };
  return kernels;
}
