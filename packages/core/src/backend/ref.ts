/**
 * The reference backend: every kernel of `Kernels` as plain loops over an emulated heap.
 * Readable first (llama2.c style); it is the oracle the wasm kernels are tested against and the
 * fallback where wasm SIMD is unavailable. Math is done in f64 and stored as f32.
 */

import type { Heap } from "../heap.js";
import { ABI_VERSION, type Kernels } from "../kernels.js";
import { erfc } from "../math.js";
import { packedIndex, packedRowsIndex, ROWS_GROUP } from "../packed.js";
import { refBackwardKernels } from "./ref-backward.js";
import { refOptimKernels } from "./ref-optim.js";

const SQRT1_2 = Math.SQRT1_2;
const GELU_TANH_C = Math.sqrt(2 / Math.PI);

/** Apply an `Act` code to one value. */
export function applyAct(x: number, act: number): number {
  switch (act) {
    case 0:
      return x;
    case 1:
      // biome-ignore lint/complexity/useMathMinMax: relu(NaN) is NaN and relu(−0) is −0, as in torch.relu and the wasm kernel
      return x < 0 ? 0 : x;
    // 1 + erf(x/√2) = erfc(−x/√2) and 0.5·(1 + tanh(y)) = 1/(1 + e^{−2y}): the same values,
    // without the cancellation that zeroes the negative tail (x < −6) in f64
    case 2:
      return 0.5 * x * erfc(-x * SQRT1_2);
    case 3:
      return x / (1 + Math.exp(-2 * GELU_TANH_C * (x + 0.044715 * x * x * x)));
    case 4:
      return x / (1 + Math.exp(-x));
    case 5:
      return Math.tanh(x);
    case 6:
      return 1 / (1 + Math.exp(-x));
    case 7:
      return Math.exp(x);
    case 8:
      return -x;
    case 9:
      return Math.sqrt(x);
    case 10:
      return Math.abs(x);
    case 11:
      return Math.log(x);
    default:
      throw new RangeError(`unknown activation code ${act}`);
  }
}

function applyBin(a: number, b: number, op: number): number {
  switch (op) {
    case 0:
      return a + b;
    case 1:
      return a - b;
    case 2:
      return a * b;
    case 3:
      return a / b;
    case 4:
      return a > b || Number.isNaN(a) ? a : b;
    case 5:
      return a < b || Number.isNaN(a) ? a : b;
    default:
      throw new RangeError(`unknown binary op code ${op}`);
  }
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

// ---- word2vec helpers (see the "word2vec" section of kernels.ts) ---------------------------
function w2vIdsOk(ii: Int32Array, at: number, n: number, vocab: number): boolean {
  for (let i = 0; i < n; i++) if (ii[at + i] < 0 || ii[at + i] >= vocab) return false;
  return true;
}

/** Negative-sampling step of the hidden vector hv: updates e and the syn1 rows; returns the loss. */
function w2vStepVec(
  f: Float32Array,
  hv: Float64Array,
  e: Float64Array,
  syn1: number,
  dim: number,
  ii: Int32Array,
  t0: number,
  n: number,
  alpha: number,
): number {
  let loss = 0;
  for (let t = 0; t < n; t++) {
    const r = syn1 + ii[t0 + t] * dim;
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += hv[j] * f[r + j];
    // σ and softplus from one exponential, as the wasm kernel does
    const u = Math.exp(-Math.abs(dot));
    const sig = dot >= 0 ? 1 / (1 + u) : u / (1 + u);
    loss += Math.max(t === 0 ? -dot : dot, 0) + Math.log1p(u);
    const g = alpha * ((t === 0 ? 1 : 0) - sig);
    for (let j = 0; j < dim; j++) {
      e[j] += g * f[r + j];
      f[r + j] += g * hv[j];
    }
  }
  return loss;
}

/** GEMM epilogue of one output element: `f[at] = act(product + bias + beta·f[at])` (no bias: undefined; C is read only when beta ≠ 0). */
function store(
  f: Float32Array,
  at: number,
  product: number,
  bias: number | undefined,
  beta: number,
  act: number,
): void {
  let v = product;
  if (bias !== undefined) v += bias;
  if (beta) v += beta * f[at]!;
  f[at] = applyAct(v, act);
}

/**
 * The reference product of `gemm`, `gemmPacked` and `gemvRows`: for i < M, j < N,
 * `f[C + i·ldc + j] = act(alpha·Σ_p op(A)[i, p]·bAt(p, j) + bias[j] + beta·C)` (bias: float index or
 * −1), op(B) read through `bAt` (a float index into f), whatever its layout.
 */
function matmul(
  f: Float32Array,
  M: number,
  N: number,
  K: number,
  A: number,
  lda: number,
  transA: number,
  bAt: (p: number, j: number) => number,
  C: number,
  ldc: number,
  Bi: number,
  alpha: number,
  beta: number,
  act: number,
): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let p = 0; p < K; p++) s += (transA ? f[A + p * lda + i]! : f[A + i * lda + p]!) * f[bAt(p, j)]!;
      store(f, C + i * ldc + j, alpha * s, Bi >= 0 ? f[Bi + j] : undefined, beta, act);
    }
  }
}

/**
 * Reader of a repacked Q8_0 / Q4_0 weight (`quantBytes` layout) at byte `w`: block b of row j as
 * its f32 scale and its 32 integer values (Q4_0: nibble − 8). The returned `q` is reused.
 */
function quantReader(buf: ArrayBuffer, type: number, K: number, w: number) {
  const dv = new DataView(buf);
  const u8 = new Uint8Array(buf);
  const qb = type === 8 ? 32 : 16;
  const gbb = 16 + 4 * qb;
  const groupBytes = (K >> 5) * gbb;
  const q = new Int32Array(32);
  return (j: number, b: number) => {
    const o = w + (j >> 2) * groupBytes + b * gbb;
    const d = dv.getFloat32(o + 4 * (j & 3), true);
    const at = o + 16 + (j & 3) * qb;
    for (let i = 0; i < 32; i++) {
      q[i] = type === 8 ? dv.getInt8(at + i) : (i < 16 ? u8[at + i] & 15 : u8[at + i - 16] >> 4) - 8;
    }
    return { d, q };
  };
}

export function refKernels(heap: Heap): Kernels {
  // views are re-taken on every call: the heap may have grown since the last one
  const F = () => new Float32Array(heap.buffer());
  const I = () => new Int32Array(heap.buffer());
  const U = () => new Uint8Array(heap.buffer());

  const k: Kernels = {
    abiVersion: () => ABI_VERSION,

    gemm(M, N, K, a, lda, transA, b, ldb, transB, c, ldc, bias, alpha, beta, act) {
      const B = b >> 2;
      const bAt = transB ? (p: number, j: number) => B + j * ldb + p : (p: number, j: number) => B + p * ldb + j;
      matmul(F(), M, N, K, a >> 2, lda, transA, bAt, c >> 2, ldc, bias ? bias >> 2 : -1, alpha, beta, act);
    },

    packedSize(K, N) {
      return K > 0 && N > 0 ? Math.ceil(N / 8) * 8 * K : 0;
    },

    packB(K, N, b, ldb, transB, dst) {
      // op(B)[p, j] → packedIndex(K, N, p, j); zero in the columns of the last panel past N
      const f = F();
      const B = b >> 2,
        D = dst >> 2;
      const N8 = Math.ceil(N / 8) * 8;
      for (let p = 0; p < K; p++) {
        for (let j = 0; j < N8; j++) {
          f[D + packedIndex(K, N, p, j)] = j >= N ? 0 : transB ? f[B + j * ldb + p] : f[B + p * ldb + j];
        }
      }
    },

    gemmPacked(M, N, K, a, lda, transA, packedB, c, ldc, bias, alpha, beta, act) {
      const P = packedB >> 2;
      const bAt = (p: number, j: number) => P + packedIndex(K, N, p, j);
      matmul(F(), M, N, K, a >> 2, lda, transA, bAt, c >> 2, ldc, bias ? bias >> 2 : -1, alpha, beta, act);
    },

    packedRowsSize(N, K) {
      return N > 0 && K > 0 ? Math.ceil(N / ROWS_GROUP) * ROWS_GROUP * Math.ceil(K / 4) * 4 : 0;
    },

    packRows(N, K, b, ldb, dst) {
      // W[j, p] → packedRowsIndex(K, j, p); zero past K and in the rows of the last group past N
      const f = F();
      const B = b >> 2,
        D = dst >> 2;
      const NG = Math.ceil(N / ROWS_GROUP) * ROWS_GROUP;
      const K4 = Math.ceil(K / 4) * 4;
      for (let j = 0; j < NG; j++) {
        for (let p = 0; p < K4; p++) f[D + packedRowsIndex(K, j, p)] = j < N && p < K ? f[B + j * ldb + p] : 0;
      }
    },

    gemvRows(N, K, x, packed, y, bias, beta, act) {
      // one row: y = x·Wᵀ, W[j, p] read from the packed layout as op(B)[p, j]
      const P = packed >> 2;
      const bAt = (p: number, j: number) => P + packedRowsIndex(K, j, p);
      matmul(F(), 1, N, K, x >> 2, K, 0, bAt, y >> 2, N, bias ? bias >> 2 : -1, 1, beta, act);
    },

    quantBytes(type, N, K) {
      if (N <= 0 || K <= 0 || K % 32 !== 0 || (type !== 8 && type !== 2)) return 0;
      return Math.ceil(N / 4) * (K >> 5) * (type === 8 ? 144 : 80);
    },

    xqRowBytes(K) {
      return K <= 0 ? 0 : (3 * K + (K >> 2) + 15) & ~15;
    },

    quantizeRowsQ8(x, ldx, M, K, xq) {
      // per block of 32: d = amax/127 (f32), id = d ? 1/d : 0, q = roundf(x·id)
      const fl = F();
      const buf = heap.buffer();
      const rowB = k.xqRowBytes(K);
      const nb = K >> 5;
      const fr = Math.fround;
      for (let r = 0; r < M; r++) {
        const X = (x >> 2) + r * ldx;
        const base = xq + r * rowB;
        const q16 = new Int16Array(buf, base, K);
        const q8 = new Int8Array(buf, base + 2 * K, K);
        const ds = new Float32Array(buf, base + 3 * K, nb);
        const sums = new Int32Array(buf, base + 3 * K + 4 * nb, nb);
        for (let b = 0; b < nb; b++) {
          let amax = 0;
          for (let j = 0; j < 32; j++) {
            const v = Math.abs(fl[X + b * 32 + j]);
            amax = Number.isNaN(v) || Number.isNaN(amax) ? Number.NaN : Math.max(amax, v);
          }
          const d = fr(amax / 127);
          const id = d !== 0 ? fr(1 / d) : 0;
          let sum = 0;
          for (let j = 0; j < 32; j++) {
            const v = fr(fl[X + b * 32 + j] * id);
            const q = Number.isNaN(v)
              ? 0
              : Math.max(-32768, Math.min(32767, v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5)));
            q16[b * 32 + j] = q;
            q8[b * 32 + j] = Math.max(-128, Math.min(127, q));
            sum += q;
          }
          ds[b] = d;
          sums[b] = sum;
        }
      }
    },

    gemvQ(type, M, N, K, xq, w, y, ldy, bias, beta, act) {
      // ggml's vec_dot: exact integer block sums, acc = f32(acc + f32(f32(sumi)·f32(dw·dx)))
      if (M <= 0 || N <= 0 || k.quantBytes(type, N, K) === 0) return;
      const fr = Math.fround;
      const fl = F();
      const buf = heap.buffer();
      const nb = K >> 5;
      const rowB = k.xqRowBytes(K);
      const qv = quantReader(heap.buffer(), type, K, w);
      for (let m = 0; m < M; m++) {
        const base = xq + m * rowB;
        const q16 = new Int16Array(buf, base, K);
        const ds = new Float32Array(buf, base + 3 * K, nb);
        for (let j = 0; j < N; j++) {
          let acc = 0;
          for (let b = 0; b < nb; b++) {
            const { d, q } = qv(j, b);
            let sumi = 0;
            for (let i = 0; i < 32; i++) sumi += q[i] * q16[b * 32 + i];
            acc = fr(acc + fr(sumi * fr(d * ds[b])));
          }
          const at = (y >> 2) + m * ldy + j;
          let v = bias ? fr(acc + fl[(bias >> 2) + j]) : acc;
          if (beta) v = fr(v + fr(beta * fl[at]));
          fl[at] = applyAct(v, act);
        }
      }
    },

    gemmQ(type, M, N, K, a, lda, w, c, ldc, bias, beta, act) {
      // the product with the dequantized weight (f64 sums, as gemmPacked's reference)
      if (M <= 0 || N <= 0 || k.quantBytes(type, N, K) === 0) return;
      const qv = quantReader(heap.buffer(), type, K, w);
      const fl = F();
      const W = new Float32Array(K);
      for (let j = 0; j < N; j++) {
        for (let b = 0; b < K >> 5; b++) {
          const { d, q } = qv(j, b);
          for (let i = 0; i < 32; i++) W[b * 32 + i] = q[i] * d;
        }
        for (let i = 0; i < M; i++) {
          let s = 0;
          for (let p = 0; p < K; p++) s += fl[(a >> 2) + i * lda + p] * W[p];
          store(fl, (c >> 2) + i * ldc + j, s, bias ? fl[(bias >> 2) + j] : undefined, beta, act);
        }
      }
    },

    dequantRowsQ(type, K, w, ids, n, dst) {
      if (k.quantBytes(type, 4, K) === 0) return;
      const qv = quantReader(heap.buffer(), type, K, w);
      const id = I();
      const fl = F();
      for (let r = 0; r < n; r++) {
        const o = (dst >> 2) + r * K;
        for (let b = 0; b < K >> 5; b++) {
          const { d, q } = qv(id[(ids >> 2) + r], b);
          for (let i = 0; i < 32; i++) fl[o + b * 32 + i] = q[i] * d;
        }
      }
    },

    bmm(batch, M, N, K, a, sA, lda, tA, b, sB, ldb, tB, c, sC, ldc, alpha, beta) {
      for (let t = 0; t < batch; t++) {
        k.gemm(M, N, K, a + 4 * t * sA, lda, tA, b + 4 * t * sB, ldb, tB, c + 4 * t * sC, ldc, 0, alpha, beta, 0);
      }
    },

    softmax(x, y, rows, cols, ld, mask, maskLd) {
      const f = F();
      const X = x >> 2,
        Y = y >> 2,
        Mk = mask >> 2;
      const row = new Float64Array(cols);
      for (let r = 0; r < rows; r++) {
        let max = -Infinity;
        for (let j = 0; j < cols; j++) {
          let v = f[X + r * ld + j];
          if (mask) v += f[Mk + r * maskLd + j];
          row[j] = v;
          if (v > max) max = v;
        }
        if (max === -Infinity) {
          for (let j = 0; j < cols; j++) f[Y + r * ld + j] = 0;
          continue;
        }
        let sum = 0;
        for (let j = 0; j < cols; j++) {
          const e = Math.exp(row[j] - max);
          row[j] = e;
          sum += e;
        }
        for (let j = 0; j < cols; j++) f[Y + r * ld + j] = row[j] / sum;
      }
    },

    logSoftmax(x, y, rows, cols, ld) {
      const f = F();
      const X = x >> 2,
        Y = y >> 2;
      for (let r = 0; r < rows; r++) {
        let max = -Infinity;
        for (let j = 0; j < cols; j++) max = Math.max(max, f[X + r * ld + j]);
        let sum = 0;
        for (let j = 0; j < cols; j++) sum += Math.exp(f[X + r * ld + j] - max);
        const lse = max + Math.log(sum);
        for (let j = 0; j < cols; j++) f[Y + r * ld + j] = f[X + r * ld + j] - lse;
      }
    },

    layerNorm(x, y, rows, d, gamma, beta, eps) {
      const f = F();
      const X = x >> 2,
        Y = y >> 2,
        G = gamma >> 2,
        Bt = beta >> 2;
      for (let r = 0; r < rows; r++) {
        let mean = 0;
        for (let j = 0; j < d; j++) mean += f[X + r * d + j];
        mean /= d;
        let v = 0;
        for (let j = 0; j < d; j++) {
          const t = f[X + r * d + j] - mean;
          v += t * t;
        }
        const inv = 1 / Math.sqrt(v / d + eps);
        for (let j = 0; j < d; j++) {
          let o = (f[X + r * d + j] - mean) * inv;
          if (gamma) o *= f[G + j];
          if (beta) o += f[Bt + j];
          f[Y + r * d + j] = o;
        }
      }
    },

    unary(x, y, n, act) {
      const f = F();
      const X = x >> 2,
        Y = y >> 2;
      for (let i = 0; i < n; i++) f[Y + i] = applyAct(f[X + i], act);
    },

    binary(a, b, y, rows, cols, bRow, bCol, op) {
      const f = F();
      const A = a >> 2,
        B = b >> 2,
        Y = y >> 2;
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < cols; j++) {
          f[Y + r * cols + j] = applyBin(f[A + r * cols + j], f[B + r * bRow + j * bCol], op);
        }
      }
    },

    scale(x, y, n, alpha, beta) {
      const f = F();
      const X = x >> 2,
        Y = y >> 2;
      for (let i = 0; i < n; i++) f[Y + i] = alpha * f[X + i] + beta;
    },

    reduce(x, y, outer, n, inner, op) {
      const f = F();
      const X = x >> 2,
        Y = y >> 2;
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          let acc = op === 2 ? -Infinity : op === 3 ? Infinity : 0;
          for (let t = 0; t < n; t++) {
            const v = f[X + (o * n + t) * inner + i];
            if (op === 2) acc = v > acc || Number.isNaN(v) ? v : acc;
            else if (op === 3) acc = v < acc || Number.isNaN(v) ? v : acc;
            else acc += v;
          }
          f[Y + o * inner + i] = op === 1 ? acc / n : acc;
        }
      }
    },

    gather(table, vocab, dim, ids, n, out) {
      const f = F();
      const ii = I();
      const T = table >> 2,
        Id = ids >> 2,
        O = out >> 2;
      for (let t = 0; t < n; t++) {
        const id = ii[Id + t];
        if (id < 0 || id >= vocab) return t;
        for (let j = 0; j < dim; j++) f[O + t * dim + j] = f[T + id * dim + j];
      }
      return -1;
    },

    fill(y, n, value) {
      if (n > 0) F().fill(value, y >> 2, (y >> 2) + n);
    },

    copy2d(x, ldx, y, ldy, rows, cols) {
      const f = F();
      const X = x >> 2,
        Y = y >> 2;
      for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) f[Y + r * ldy + j] = f[X + r * ldx + j];
    },

    transpose2d(x, ldx, y, ldy, rows, cols) {
      const f = F();
      const X = x >> 2,
        Y = y >> 2;
      for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) f[Y + j * ldy + r] = f[X + r * ldx + j];
    },

    im2colPatch(x, C, H, W, kk, out) {
      const f = F();
      const X = x >> 2,
        O = out >> 2;
      const gh = Math.floor(H / kk),
        gw = Math.floor(W / kk),
        cols = C * kk * kk;
      for (let r = 0; r < gh; r++)
        for (let c = 0; c < gw; c++)
          for (let ch = 0; ch < C; ch++)
            for (let u = 0; u < kk; u++)
              for (let v = 0; v < kk; v++)
                f[O + (r * gw + c) * cols + (ch * kk + u) * kk + v] = f[X + ch * H * W + (r * kk + u) * W + c * kk + v];
    },

    attentionHeads(slices) {
      for (const a of slices) k.attention(...a);
    },
    attention(q, ldq, kp, ldk, v, ldv, o, ldo, probs, L, S, dk, dv, scale, mask, maskLd, kpm, causal) {
      const f = F();
      const u = U();
      const Q = q >> 2,
        K = kp >> 2,
        V = v >> 2,
        O = o >> 2,
        P = probs >> 2,
        Mk = mask >> 2;
      for (let i = 0; i < L; i++) {
        let max = -Infinity;
        for (let j = 0; j < S; j++) {
          let s = 0;
          for (let p = 0; p < dk; p++) s += f[Q + i * ldq + p] * f[K + j * ldk + p];
          s *= scale;
          if (mask) s += f[Mk + i * maskLd + j];
          if (kpm && u[kpm + j]) s = -Infinity;
          if (causal >= 0 && j > i + causal) s = -Infinity;
          f[P + i * S + j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = 0; j < S; j++) {
          const e = max === -Infinity ? 0 : Math.exp(f[P + i * S + j] - max);
          f[P + i * S + j] = e;
          sum += e;
        }
        for (let j = 0; j < S; j++) f[P + i * S + j] = sum > 0 ? f[P + i * S + j] / sum : 0;
        for (let p = 0; p < dv; p++) {
          let acc = 0;
          for (let j = 0; j < S; j++) acc += f[P + i * S + j] * f[V + j * ldv + p];
          f[O + i * ldo + p] = acc;
        }
      }
    },

    lstmCell(gates, c, h, ldh, H, batch) {
      const f = F();
      const G = gates >> 2,
        Cc = c >> 2,
        Hh = h >> 2;
      for (let b = 0; b < batch; b++) {
        const g0 = G + b * 4 * H;
        for (let j = 0; j < H; j++) {
          const ig = sigmoid(f[g0 + j]);
          const fg = sigmoid(f[g0 + H + j]);
          const gg = Math.tanh(f[g0 + 2 * H + j]);
          const og = sigmoid(f[g0 + 3 * H + j]);
          const cn = fg * f[Cc + b * H + j] + ig * gg;
          f[Cc + b * H + j] = cn;
          f[Hh + b * ldh + j] = og * Math.tanh(cn);
        }
      }
    },

    gruCell(gx, gh, hPrev, ldp, hOut, ldo, H, batch) {
      const f = F();
      const X = gx >> 2,
        Hg = gh >> 2,
        P = hPrev >> 2,
        O = hOut >> 2;
      for (let b = 0; b < batch; b++) {
        for (let j = 0; j < H; j++) {
          const xr = X + b * 3 * H,
            hr = Hg + b * 3 * H;
          const r = sigmoid(f[xr + j] + f[hr + j]);
          const z = sigmoid(f[xr + H + j] + f[hr + H + j]);
          const nn = Math.tanh(f[xr + 2 * H + j] + r * f[hr + 2 * H + j]);
          f[O + b * ldo + j] = (1 - z) * nn + z * f[P + b * ldp + j];
        }
      }
    },

    rnnSteps(mode, act, reverse, T, B, H, pw, bias, xproj, gh, c, h0, out, so, ldo) {
      // the reference runs every chunk itself: `sync`, `tile` and `tiles` only split the wasm call
      const GH = (mode === 1 ? 4 : mode === 2 ? 3 : 1) * H;
      const block = k.packedRowsSize(H, H) * 4; // one gate block of the packed W_hh
      for (let s = 0; s < T; s++) {
        const t = reverse ? T - 1 - s : s;
        const g = xproj + t * B * GH * 4;
        const ho = out + t * so * 4;
        const hp = s === 0 ? h0 : out + (reverse ? t + 1 : t - 1) * so * 4;
        const ldp = s === 0 ? H : ldo;
        for (let q = 0; q < GH / H; q++) {
          const bq = bias ? bias + q * H * 4 : 0;
          for (let b = 0; b < B; b++) {
            const x = hp + b * ldp * 4;
            const y = (b * GH + q * H) * 4;
            if (mode === 2) k.gemvRows(H, H, x, pw + q * block, gh + y, bq, 0, 0);
            else k.gemvRows(H, H, x, pw + q * block, g + y, bq, 1, mode === 0 ? act : 0);
          }
        }
        if (mode === 1) k.lstmCell(g, c, ho, ldo, H, B);
        else if (mode === 2) k.gruCell(g, gh, hp, ldp, ho, ldo, H, B);
        else k.copy2d(g, GH, ho, ldo, B, H);
      }
    },

    topk(x, n, kk, outIdx, outVal) {
      const f = F();
      const ii = I();
      const X = x >> 2;
      const idx: number[] = [];
      for (let i = 0; i < n; i++) if (!Number.isNaN(f[X + i])) idx.push(i);
      idx.sort((p, q) => f[X + q] - f[X + p] || p - q);
      const m = Math.min(kk, idx.length);
      for (let t = 0; t < kk; t++) {
        ii[(outIdx >> 2) + t] = t < m ? idx[t] : -1;
        f[(outVal >> 2) + t] = t < m ? f[X + idx[t]] : -Infinity;
      }
    },

    gemv(m, rows, d, v, y) {
      const f = F();
      const Mm = m >> 2,
        V = v >> 2,
        Y = y >> 2;
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += f[Mm + r * d + j] * f[V + j];
        f[Y + r] = s;
      }
    },

    // ---- word2vec -------------------------------------------------------------------------
    w2vSgns(syn0, syn1, vocab, dim, inWords, targets, nEx, nTargets, alpha, _work) {
      const ii = I();
      if (!w2vIdsOk(ii, inWords >> 2, nEx, vocab) || !w2vIdsOk(ii, targets >> 2, nEx * nTargets, vocab))
        return Number.NaN;
      const f = F();
      const hv = new Float64Array(dim);
      const e = new Float64Array(dim);
      let loss = 0;
      for (let x = 0; x < nEx; x++) {
        const h = (syn0 >> 2) + ii[(inWords >> 2) + x] * dim;
        // step against a copy of the syn0 row (one buffer for all examples)
        for (let j = 0; j < dim; j++) hv[j] = f[h + j];
        e.fill(0);
        loss += w2vStepVec(f, hv, e, syn1 >> 2, dim, ii, (targets >> 2) + x * nTargets, nTargets, alpha);
        for (let j = 0; j < dim; j++) f[h + j] += e[j];
      }
      return loss;
    },

    w2vCbow(syn0, syn1, vocab, dim, ctx, ctxOff, targets, nEx, nTargets, alpha, mean, _work) {
      if (nEx <= 0) return 0;
      const ii = I();
      const O = ctxOff >> 2;
      if (ii[O] !== 0) return Number.NaN;
      for (let x = 0; x < nEx; x++) if (ii[O + x + 1] < ii[O + x]) return Number.NaN;
      if (!w2vIdsOk(ii, ctx >> 2, ii[O + nEx], vocab) || !w2vIdsOk(ii, targets >> 2, nEx * nTargets, vocab))
        return Number.NaN;
      const f = F();
      const hv = new Float64Array(dim);
      const e = new Float64Array(dim);
      let loss = 0;
      for (let x = 0; x < nEx; x++) {
        const c0 = ii[O + x],
          c1 = ii[O + x + 1];
        if (c1 === c0) continue;
        hv.fill(0);
        e.fill(0);
        for (let c = c0; c < c1; c++) {
          const r = (syn0 >> 2) + ii[(ctx >> 2) + c] * dim;
          for (let j = 0; j < dim; j++) hv[j] += f[r + j];
        }
        if (mean) for (let j = 0; j < dim; j++) hv[j] /= c1 - c0;
        // h lives outside the heap here: step against a copy
        loss += w2vStepVec(f, hv, e, syn1 >> 2, dim, ii, (targets >> 2) + x * nTargets, nTargets, alpha);
        for (let c = c0; c < c1; c++) {
          const r = (syn0 >> 2) + ii[(ctx >> 2) + c] * dim;
          for (let j = 0; j < dim; j++) f[r + j] += e[j];
        }
      }
      return loss;
    },

    // ---- Llama-family blocks ----------------------------------------------------------------
    rmsNorm(x, y, rows, d, gamma, eps) {
      const f = F();
      const X = x >> 2,
        Y = y >> 2,
        G = gamma >> 2;
      for (let r = 0; r < rows; r++) {
        let ss = 0;
        for (let j = 0; j < d; j++) ss += f[X + r * d + j] * f[X + r * d + j];
        const inv = 1 / Math.sqrt(ss / d + eps);
        for (let j = 0; j < d; j++) {
          let o = f[X + r * d + j] * inv;
          if (gamma) o *= f[G + j];
          f[Y + r * d + j] = o;
        }
      }
    },

    rope(x, ldx, rows, heads, d, pos, invFreq) {
      const f = F();
      const ii = I();
      const half = d >> 1;
      for (let r = 0; r < rows; r++) {
        const p = ii[(pos >> 2) + r];
        for (let j = 0; j < half; j++) {
          const a = p * f[(invFreq >> 2) + j];
          const c = Math.cos(a);
          const s = Math.sin(a);
          for (let h = 0; h < heads; h++) {
            const lo = (x >> 2) + r * ldx + h * d + j;
            const u = f[lo];
            const w = f[lo + half];
            f[lo] = u * c - w * s;
            f[lo + half] = w * c + u * s;
          }
        }
      }
    },

    // ---- backward kernels (ref-backward.ts) -------------------------------------------------
    ...refBackwardKernels(heap),

    // ---- optimizer kernels (ref-optim.ts) ----------------------------------------------------
    ...refOptimKernels(heap),
  };
  return k;
}
