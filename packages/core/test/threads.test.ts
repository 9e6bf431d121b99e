/**
 * The threaded build and its worker pool: every split kernel gives bit-identical results at 1
 * (the single-thread build), 2 and 3 threads, in both SIMD flavours; the calls are really spread
 * over the workers; `init({ threads })` validates and reports; a missing threaded module falls
 * back to one thread with a warning; a trapping tile is a WasmError that leaves the runtime usable;
 * `terminateThreads()` leaves runtimes working on one thread.
 */
import { afterAll, describe, expect, it, vi } from "vitest";
import { mulberry32 } from "../../../tools/test-utils/src/prng.js";
import { InputError, WasmError } from "../src/errors.js";
import { Act } from "../src/kernels.js";
import { GgmlType, type QuantType, quantizeBlocks, repackQ } from "../src/quant.js";
import { createRuntime, init, type Runtime, releaseRuntime, terminateThreads, threadsInfo } from "../src/runtime.js";

afterAll(async () => {
  terminateThreads();
  await init({ threads: 1 });
});

type Case = (rt: Runtime) => Float32Array;

function fill(rt: Runtime, n: number, seed: number): number {
  const r = mulberry32(seed);
  const p = rt.heap.allocF32(n);
  const v = rt.heap.f32(p, n);
  for (let i = 0; i < n; i++) v[i] = r() * 2 - 1;
  return p;
}

/** A GEMM with ld padding on every operand, optional bias, beta and activation. */
function gemmCase(
  M: number,
  N: number,
  K: number,
  tA: number,
  tB: number,
  bias: boolean,
  beta: number,
  act: number,
): Case {
  return (rt) => {
    const lda = (tA ? M : K) + 3;
    const ldb = (tB ? K : N) + 1;
    const ldc = N + 5;
    const a = fill(rt, (tA ? K : M) * lda, 1);
    const b = fill(rt, (tB ? N : K) * ldb, 2);
    const c = fill(rt, M * ldc, 3);
    const bp = bias ? fill(rt, N, 4) : 0;
    rt.k.gemm(M, N, K, a, lda, tA, b, ldb, tB, c, ldc, bp, 0.75, beta, act);
    return rt.heap.f32(c, M * ldc).slice();
  };
}

function packedCase(M: number, N: number, K: number, tA: number, act: number): Case {
  return (rt) => {
    const lda = (tA ? M : K) + 2;
    const a = fill(rt, (tA ? K : M) * lda, 5);
    const w = fill(rt, N * K, 6);
    const pb = rt.heap.allocF32(rt.k.packedSize(K, N));
    rt.k.packB(K, N, w, K, 1, pb);
    const c = fill(rt, M * N, 7);
    const bias = fill(rt, N, 8);
    rt.k.gemmPacked(M, N, K, a, lda, tA, pb, c, N, bias, 1, 1, act);
    return rt.heap.f32(c, M * N).slice();
  };
}

function gemvRowsCase(N: number, K: number, act: number): Case {
  return (rt) => {
    const w = fill(rt, N * K, 9);
    const pw = rt.heap.allocF32(rt.k.packedRowsSize(N, K));
    rt.k.packRows(N, K, w, K, pw);
    const x = fill(rt, K, 10);
    const y = fill(rt, N, 11);
    const out = new Float32Array(2 * N);
    // twice: the second call walks the row groups the other way
    rt.k.gemvRows(N, K, x, pw, y, fill(rt, N, 12), 1, act);
    out.set(rt.heap.f32(y, N), 0);
    rt.k.gemvRows(N, K, x, pw, y, 0, 0, act);
    out.set(rt.heap.f32(y, N), N);
    return out;
  };
}

/** Quantized weight (Q8_0 / Q4_0) products: gemvQ (M rows of quantized x) and gemmQ. */
function quantCase(type: QuantType, M: number, N: number, K: number, act: number, gemv = M <= 4): Case {
  return (rt) => {
    const wq = repackQ(type, N, K, quantizeBlocks(type, rt.heap.f32(fill(rt, N * K, 30), N * K).slice()));
    const w = rt.heap.alloc(wq.length);
    rt.heap.u8(w, wq.length).set(wq);
    const x = fill(rt, M * K, 31);
    const y = fill(rt, M * N, 32);
    const bias = fill(rt, N, 33);
    if (gemv) {
      const xq = rt.heap.alloc(M * rt.k.xqRowBytes(K));
      rt.k.quantizeRowsQ8(x, K, M, K, xq);
      rt.k.gemvQ(type, M, N, K, xq, w, y, N, bias, 1, act);
    } else {
      rt.k.gemmQ(type, M, N, K, x, K, w, y, N, bias, 1, act);
    }
    return rt.heap.f32(y, M * N).slice();
  };
}

function bmmCase(batch: number, M: number, N: number, K: number, sharedB: boolean, tB: number): Case {
  return (rt) => {
    const a = fill(rt, batch * M * K, 13);
    const b = fill(rt, (sharedB ? 1 : batch) * K * N, 14);
    const c = fill(rt, batch * M * N, 15);
    rt.k.bmm(batch, M, N, K, a, M * K, K, 0, b, sharedB ? 0 : K * N, tB ? K : N, tB, c, M * N, N, 0.5, 1);
    return rt.heap.f32(c, batch * M * N).slice();
  };
}

const GEMM_CASES: [string, Case][] = [
  ["gemm 512×512×512", gemmCase(512, 512, 512, 0, 0, false, 0, Act.none)],
  ["gemm 197×768×768 Linear, bias, gelu", gemmCase(197, 768, 768, 0, 1, true, 0, Act.gelu)],
  ["gemm 131×250×130 transA, beta, relu", gemmCase(131, 250, 130, 1, 0, true, 1, Act.relu)],
  ["gemm M=1 Linear (row dots)", gemmCase(1, 3001, 700, 0, 1, true, 0, Act.silu)],
  ["gemm M=1 transB=0 (row × matrix)", gemmCase(1, 2050, 300, 0, 0, false, 1, Act.none)],
  ["gemm M=2 K=1100 (two K blocks)", gemmCase(2, 777, 1100, 0, 1, true, 0, Act.tanh)],
  ["gemm 5003×768×21 transA, beta (short K: row tiles)", gemmCase(5003, 768, 21, 1, 0, false, 1, Act.none)],
  ["gemm 17×100×40 (too small to split)", gemmCase(17, 100, 40, 0, 0, false, 0, Act.none)],
  ["gemmPacked M=1", packedCase(1, 2304, 768, 0, Act.none)],
  ["gemmPacked M=3 gelu", packedCase(3, 1000, 600, 0, Act.gelu)],
  ["gemmPacked M=4 transA relu", packedCase(4, 517, 1030, 1, Act.relu)],
  ["gemmPacked M=197", packedCase(197, 768, 768, 0, Act.geluTanh)],
  ["gemmPacked M=21 N=30", packedCase(21, 30, 900, 0, Act.none)],
  ["gemmPacked 197×192×768, a small weight: row tiles", packedCase(197, 192, 768, 0, Act.none)],
  ["gemmPacked 151×100×300 transA gelu: row tiles, a 1-row last panel", packedCase(151, 100, 300, 1, Act.gelu)],
  ["gemvRows 2304×768", gemvRowsCase(2304, 768, Act.none)],
  ["gemvRows 1001×659 tanh", gemvRowsCase(1001, 659, Act.tanh)],
  ["gemvQ Q8_0 M=1 2304×768", quantCase(GgmlType.Q8_0, 1, 2304, 768, Act.none)],
  ["gemvQ Q4_0 M=3 1001×320 gelu", quantCase(GgmlType.Q4_0, 3, 1001, 320, Act.gelu)],
  ["gemvQ Q4_0 M=64 1001×768 (integer prefill)", quantCase(GgmlType.Q4_0, 64, 1001, 768, Act.none, true)],
  ["gemvQ Q8_0 M=17 3071×96", quantCase(GgmlType.Q8_0, 17, 3071, 96, Act.relu, true)],
  ["gemmQ Q8_0 M=37 777×544", quantCase(GgmlType.Q8_0, 37, 777, 544, Act.relu)],
  ["gemmQ Q4_0 M=130 1030×96", quantCase(GgmlType.Q4_0, 130, 1030, 96, Act.none)],
  ["bmm 12 heads", bmmCase(12, 64, 64, 64, false, 1)],
  ["bmm shared B (one tall GEMM)", bmmCase(7, 33, 200, 90, true, 0)],
  ["bmm M=1 per batch", bmmCase(9, 1, 300, 500, false, 0)],
];

/** Runs `body` on fresh seeded buffers and returns the listed outputs, concatenated. */
function outCase(sizes: number[], body: (rt: Runtime, p: number[]) => [number, number][]): Case {
  return (rt) => {
    const ptrs = sizes.map((n, i) => fill(rt, n, 100 + i));
    const outs = body(rt, ptrs);
    const total = outs.reduce((s, [, n]) => s + n, 0);
    const out = new Float32Array(total);
    let o = 0;
    for (const [p, n] of outs) {
      out.set(rt.heap.f32(p, n), o);
      o += n;
    }
    return out;
  };
}

function attentionCase(L: number, S: number, d: number, causal: number, masked: boolean): Case {
  return (rt) => {
    const ld = 3 * d + 4;
    const q = fill(rt, L * ld, 20);
    const kv = fill(rt, S * ld, 21);
    const o = fill(rt, L * ld, 22);
    const probs = rt.heap.allocF32(L * S);
    const mask = masked ? fill(rt, L * S, 23) : 0;
    const kpm = masked ? rt.heap.alloc(S) : 0;
    if (kpm) rt.heap.u8(kpm, S).set(Array.from({ length: S }, (_, j) => (j % 7 === 3 ? 1 : 0)));
    rt.k.attention(q, ld, kv, ld, kv + 4 * d, ld, o, ld, probs, L, S, d, d, 0.125, mask, S, kpm, causal);
    const out = new Float32Array(L * ld + L * S);
    out.set(rt.heap.f32(o, L * ld), 0);
    out.set(rt.heap.f32(probs, L * S), L * ld);
    return out;
  };
}

/**
 * Every (batch, head) slice of a layer through `attentionHeads` (GQA: 2 query heads a key head, one each for odd H;
 * rows of qkv side by side as the decoders keep them), each slice with its own probs.
 */
function headsCase(B: number, H: number, L: number, S: number, d: number, causal: number, padded: boolean): Case {
  return (rt) => {
    const KV = H % 2 === 0 ? H / 2 : H;
    const qkvW = (H + 2 * KV) * d;
    const q = fill(rt, B * L * qkvW, 24);
    const kv = fill(rt, B * S * 2 * KV * d, 25);
    const o = fill(rt, B * L * H * d, 26);
    const probs = rt.heap.allocF32(B * H * L * S);
    const kpm = padded ? rt.heap.alloc(B * S) : 0;
    if (kpm) rt.heap.u8(kpm, B * S).set(Array.from({ length: B * S }, (_, j) => (j % S < (j / S) % 3 ? 1 : 0)));
    const slices: Parameters<Runtime["k"]["attentionHeads"]>[0][number][] = [];
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++) {
        const g = KV === H ? h : Math.floor(h / 2);
        const k0 = kv + 4 * (b * S * 2 * KV * d + g * d);
        slices.push([
          q + 4 * (b * L * qkvW + h * d),
          qkvW,
          k0,
          2 * KV * d,
          k0 + 4 * KV * d,
          2 * KV * d,
          o + 4 * (b * L * H * d + h * d),
          H * d,
          probs + 4 * (b * H + h) * L * S,
          L,
          S,
          d,
          d,
          0.125,
          0,
          0,
          kpm ? kpm + b * S : 0,
          causal,
        ]);
      }
    rt.k.attentionHeads(slices);
    const out = new Float32Array(B * L * H * d + B * H * L * S);
    out.set(rt.heap.f32(o, B * L * H * d), 0);
    out.set(rt.heap.f32(probs, B * H * L * S), B * L * H * d);
    return out;
  };
}

/**
 * A layer's attention backward through `attentionBackwardHeads` after its forward (`attentionHeads`):
 * B × H slices, `H / KV` query heads a key head (they share dK, dV and so a scratch), the slices
 * spread over `groups` scratches as the training engines do.
 */
function backwardHeadsCase(B: number, H: number, KV: number, T: number, d: number, groups: number): Case {
  return (rt) => {
    const qkvW = (H + 2 * KV) * d;
    const qkv = fill(rt, B * T * qkvW, 27);
    const dqkv = fill(rt, B * T * qkvW, 28);
    const dO = fill(rt, B * T * H * d, 29);
    const o = rt.heap.allocF32(B * T * H * d);
    const probs = rt.heap.allocF32(B * H * T * T);
    const scratch = rt.heap.allocF32(groups * T * T);
    const fwd: Parameters<Runtime["k"]["attentionHeads"]>[0][number][] = [];
    const bwd: Parameters<Runtime["k"]["attentionBackwardHeads"]>[0][number][] = [];
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KV));
        const [q, k, v] = [h * d, (H + g) * d, (H + KV + g) * d].map((c) => 4 * (b * T * qkvW + c));
        const oo = 4 * (b * T * H * d + h * d);
        const p = probs + 4 * (b * H + h) * T * T;
        fwd.push([qkv + q, qkvW, qkv + k, qkvW, qkv + v, qkvW, o + oo, H * d, p, T, T, d, d, 0.125, 0, 0, 0, 0]);
        const s = scratch + 4 * ((b * KV + g) % groups) * T * T;
        bwd.push([
          dqkv + q,
          dqkv + k,
          dqkv + v,
          dO + oo,
          H * d,
          qkv + q,
          qkvW,
          qkv + k,
          qkvW,
          qkv + v,
          qkvW,
          p,
          0,
          s,
          T,
          T,
          d,
          d,
          0.125,
        ]);
      }
    rt.k.attentionHeads(fwd);
    rt.k.attentionBackwardHeads(bwd);
    return rt.heap.f32(dqkv, B * T * qkvW).slice();
  };
}

/** One optimizer step over n floats (second moments made non-negative, as a real optimizer keeps them). */
function optimCase(kind: "adamw" | "amsgrad" | "sgd", n: number): Case {
  return (rt) => {
    const [theta, grad, m, v, vmax] = [0, 1, 2, 3, 4].map((i) => fill(rt, n, 40 + i));
    for (const p of [v, vmax]) {
      const a = rt.heap.f32(p, n);
      for (let i = 0; i < n; i++) a[i] = Math.abs(a[i]!);
    }
    if (kind === "sgd") rt.k.sgdStep(theta, grad, m, n, 0.01, 1e-4, 0.9, 0.9, 0, 1, 1);
    else {
      const ams = kind === "amsgrad" ? vmax : 0;
      rt.k.adamStep(theta, grad, m, v, ams, n, 0.9, 0.1, 0.999, 0.001, 1e-8, 0.01, 0.0447, 0.01, 0.9999, 1, 1);
    }
    const out = new Float32Array(4 * n);
    for (const [i, p] of [theta, m, v, vmax].entries()) out.set(rt.heap.f32(p, n), i * n);
    return out;
  };
}

/**
 * The steps of a recurrent layer (`rnnSteps`): W_hh's gate blocks packed one after the other, the
 * output strided as a bidirectional layer's (this direction at offset H of rows of 2H).
 */
function rnnStepsCase(mode: number, act: number, H: number, B: number, T: number, reverse: number): Case {
  return (rt) => {
    const G = mode === 1 ? 4 : mode === 2 ? 3 : 1;
    const block = rt.k.packedRowsSize(H, H);
    const w = fill(rt, G * H * H, 40);
    const pw = rt.heap.allocF32(G * block);
    for (let q = 0; q < G; q++) rt.k.packRows(H, H, w + q * H * H * 4, H, pw + q * block * 4);
    const xproj = fill(rt, T * B * G * H, 41);
    const c = fill(rt, B * H, 42);
    const out = rt.heap.allocF32(B * T * 2 * H);
    const gh = rt.heap.allocF32(B * G * H);
    rt.k.rnnSteps(
      mode,
      act,
      reverse,
      T,
      B,
      H,
      pw,
      fill(rt, G * H, 43),
      xproj,
      gh,
      c,
      fill(rt, B * H, 44),
      out + 4 * H,
      2 * H,
      T * 2 * H,
      0,
      0,
      1,
    );
    const res = new Float32Array(B * T * 2 * H + B * H);
    res.set(rt.heap.f32(out, B * T * 2 * H));
    res.set(rt.heap.f32(c, B * H), B * T * 2 * H);
    return res;
  };
}

const R = 197;
const D = 768;
const ROW_CASES: [string, Case][] = [
  ["rnnSteps LSTM H 256, 1 row, 20 steps", rnnStepsCase(1, 0, 256, 1, 20, 0)],
  ["rnnSteps GRU H 203, 2 rows, 9 steps, reverse", rnnStepsCase(2, 0, 203, 2, 9, 1)],
  ["rnnSteps RNN tanh H 420, 1 row, 6 steps", rnnStepsCase(0, Act.tanh, 420, 1, 6, 0)],
  ["attention 197×197×64", attentionCase(197, 197, 64, -1, false)],
  ["attention causal 150 of 180, mask, padding", attentionCase(150, 180, 64, 30, true)],
  ["attention causal 130 (last block of 2 rows merged)", attentionCase(130, 130, 32, 0, false)],
  ["attentionHeads: decode step, 3 × 12 heads over 301 keys, padding", headsCase(3, 12, 1, 301, 64, 300, true)],
  ["attentionHeads: 2 × 4 heads, causal prefill of 70 rows", headsCase(2, 4, 70, 70, 32, 0, false)],
  ["attentionHeads: 1 × 2 heads, 200 rows, not causal", headsCase(1, 2, 200, 200, 64, -1, true)],
  ["attentionHeads: ViT-Tiny's 3 heads of 197 rows (12 tiles at 2 threads)", headsCase(1, 3, 197, 197, 64, -1, false)],
  [
    "attentionBackwardHeads: 4 × 12 heads, causal 128 (GPT-2 layer), 4 scratch groups",
    backwardHeadsCase(4, 12, 12, 128, 64, 4),
  ],
  ["attentionBackwardHeads: GQA 2 × 8 heads over 2, 70 rows, 3 scratch groups", backwardHeadsCase(2, 8, 2, 70, 32, 3)],
  ["adamStep (AdamW, odd n)", optimCase("adamw", 100003)],
  ["adamStep (amsgrad)", optimCase("amsgrad", 65541)],
  ["sgdStep (nesterov momentum)", optimCase("sgd", 99999)],
  [
    "fill: zero, then a value from an odd offset",
    outCase([100003], (rt, [y]) => {
      rt.k.fill(y, 100003, 0);
      rt.k.fill(y + 4 * 7, 99990, -2.5);
      return [[y, 100003]];
    }),
  ],
  [
    "layerNorm",
    outCase([R * D, R * D, D, D], (rt, [x, y, g, b]) => {
      rt.k.layerNorm(x, y, R, D, g, b, 1e-5);
      return [[y, R * D]];
    }),
  ],
  [
    "rmsNorm in place",
    outCase([R * D, D], (rt, [x, g]) => {
      rt.k.rmsNorm(x, x, R, D, g, 1e-6);
      return [[x, R * D]];
    }),
  ],
  [
    "softmax + mask rows",
    outCase([R * 300, R * 300, R * 300], (rt, [x, y, m]) => {
      rt.k.softmax(x, y, R, 290, 300, m, 300);
      return [[y, R * 300]];
    }),
  ],
  [
    "logSoftmax",
    outCase([R * 300, R * 300], (rt, [x, y]) => {
      rt.k.logSoftmax(x, y, R, 300, 300);
      return [[y, R * 300]];
    }),
  ],
  [
    "unary gelu (odd n)",
    outCase([100003, 100003], (rt, [x, y]) => {
      rt.k.unary(x, y, 100003, Act.gelu);
      return [[y, 100003]];
    }),
  ],
  [
    "unary tanh in place",
    outCase([77777], (rt, [x]) => {
      rt.k.unary(x, x, 77777, Act.tanh);
      return [[x, 77777]];
    }),
  ],
  [
    "scale",
    outCase([99999, 99999], (rt, [x, y]) => {
      rt.k.scale(x, y, 99999, 1.5, -0.25);
      return [[y, 99999]];
    }),
  ],
  [
    "binary same shape (max)",
    outCase([R * 515, R * 515, R * 515], (rt, [a, b, y]) => {
      rt.k.binary(a, b, y, R, 515, 515, 1, 4);
      return [[y, R * 515]];
    }),
  ],
  [
    "binary scalar (div)",
    outCase([R * 515, 1, R * 515], (rt, [a, b, y]) => {
      rt.k.binary(a, b, y, R, 515, 0, 0, 3);
      return [[y, R * 515]];
    }),
  ],
  [
    "binary row broadcast (add)",
    outCase([R * 515, 515, R * 515], (rt, [a, b, y]) => {
      rt.k.binary(a, b, y, R, 515, 0, 1, 0);
      return [[y, R * 515]];
    }),
  ],
  [
    "binary column broadcast (mul)",
    outCase([R * 515, R, R * 515], (rt, [a, b, y]) => {
      rt.k.binary(a, b, y, R, 515, 1, 0, 2);
      return [[y, R * 515]];
    }),
  ],
  [
    "rope",
    (rt) => {
      const rows = 160;
      const x = fill(rt, rows * (12 * 64 + 8), 30);
      const pos = rt.heap.alloc(rows * 4);
      rt.heap.i32(pos, rows).set(Array.from({ length: rows }, (_, i) => 3 * i + 1));
      const inv = rt.heap.allocF32(32);
      rt.heap.f32(inv, 32).set(Array.from({ length: 32 }, (_, j) => 10000 ** (-j / 32)));
      rt.k.rope(x, 12 * 64 + 8, rows, 12, 64, pos, inv);
      return rt.heap.f32(x, rows * (12 * 64 + 8)).slice();
    },
  ],
  [
    "unaryBackward gelu",
    outCase([99995, 99995, 99995], (rt, [dx, dy, x]) => {
      rt.k.unaryBackward(dx, dy, x, 99995, Act.gelu);
      return [[dx, 99995]];
    }),
  ],
  [
    "biasGrad",
    outCase([1001, R * 1003], (rt, [db, dy]) => {
      rt.k.biasGrad(db, dy, R, 1001, 1003);
      return [[db, 1001]];
    }),
  ],
  [
    "softmaxBackward",
    outCase([R * 300, R * 300, R * 300], (rt, [dx, dy, y]) => {
      rt.k.softmaxBackward(dx, dy, y, R, 290, 300);
      return [[dx, R * 300]];
    }),
  ],
  [
    "normStats",
    outCase([R * D, R, R], (rt, [x, m, r]) => {
      rt.k.normStats(x, R, D, 1e-5, m, r);
      return [
        [m, R],
        [r, R],
      ];
    }),
  ],
  [
    "layerNormBackward dx only / with dgamma",
    outCase([R * D, R * D, R * D, D, D, D], (rt, [dx, dy, x, g, dg, dbeta]) => {
      rt.k.layerNormBackward(dx, 0, 0, dy, x, g, 0, 0, R, D, 1e-5);
      rt.k.layerNormBackward(dx, dg, dbeta, dy, x, g, 0, 0, R, D, 1e-5);
      return [
        [dx, R * D],
        [dg, D],
        [dbeta, D],
      ];
    }),
  ],
  [
    "layerNormBackward with saved statistics: dx by rows, dgamma/dbeta a tile beside them",
    outCase([R * D, R * D, R * D, D, D, D, R, R], (rt, [dx, dy, x, g, dg, dbeta, mean, rstd]) => {
      rt.k.normStats(x, R, D, 1e-5, mean, rstd);
      rt.k.layerNormBackward(dx, dg, dbeta, dy, x, g, mean, rstd, R, D, 1e-5);
      rt.k.layerNormBackward(dx, 0, dbeta, dy, x, 0, mean, rstd, R, D, 1e-5);
      return [
        [dx, R * D],
        [dg, D],
        [dbeta, D],
      ];
    }),
  ],
  [
    "rmsNormBackward with saved rstd and dgamma",
    outCase([R * D, R * D, R * D, D, D, R], (rt, [dx, dy, x, g, dg, rstd]) => {
      rt.k.normStats(x, R, D, 1e-6, 0, rstd);
      rt.k.rmsNormBackward(dx, dg, dy, x, g, rstd, R, D, 1e-6);
      return [
        [dx, R * D],
        [dg, D],
      ];
    }),
  ],
  [
    "rmsNormBackward dx only",
    outCase([R * D, R * D, R * D, D], (rt, [dx, dy, x, g]) => {
      rt.k.rmsNormBackward(dx, 0, dy, x, g, 0, R, D, 1e-6);
      return [[dx, R * D]];
    }),
  ],
];

const CASES = [...GEMM_CASES, ...ROW_CASES];
const BACKENDS = ["wasm-simd", "wasm-relaxed"] as const;

describe.each(BACKENDS)("threaded kernels (%s)", (backend) => {
  const results = new Map<number, Float32Array[]>();
  for (const threads of [1, 2, 3]) {
    it(`runs every case at ${threads} thread(s)`, async () => {
      await init({ backend, threads });
      const info = threadsInfo();
      expect(info.threads).toBe(threads);
      expect(info.requested).toBe(threads);
      const rt = createRuntime();
      expect(rt.threads).toBe(threads);
      const before = info.workerTiles;
      results.set(
        threads,
        CASES.map(([, run]) => {
          const mark = rt.heap.mark();
          const out = run(rt);
          rt.heap.release(mark);
          return out;
        }),
      );
      const after = threadsInfo();
      if (threads > 1) {
        // every splittable case went to the pool, and the workers took part
        expect(after.splitCalls).toBeGreaterThanOrEqual(CASES.length - 1);
        expect(after.workerTiles).toBeGreaterThan(before);
      } else {
        expect(after.splitCalls).toBe(0);
      }
      releaseRuntime(rt);
    });
  }
  it.each(CASES.map(([name], i) => [name, i] as const))("%s: same bits at 1, 2 and 3 threads", (_name, i) => {
    const one = results.get(1)?.[i] as Float32Array;
    expect(one).toBeDefined();
    const bits1 = new Uint32Array(one.buffer);
    for (const t of [2, 3]) {
      const other = results.get(t)?.[i] as Float32Array;
      const bits = new Uint32Array(other.buffer);
      let firstDiff = -1;
      for (let j = 0; j < bits.length && firstDiff < 0; j++) if (bits[j] !== bits1[j]) firstDiff = j;
      expect(firstDiff, `${t} threads, first differing index`).toBe(-1);
    }
  });
});

describe("threads: what is split", () => {
  it("a recurrent step's GEMV (LSTM 1024×256) runs on the caller; GPT-2's 768×768 and 2304×768 split", async () => {
    await init({ backend: "wasm-relaxed", threads: 2 });
    const rt = createRuntime();
    const splits = (N: number, K: number) => {
      const mark = rt.heap.mark();
      const before = threadsInfo().splitCalls;
      gemvRowsCase(N, K, Act.none)(rt);
      rt.heap.release(mark);
      return threadsInfo().splitCalls - before;
    };
    expect(splits(1024, 256)).toBe(0);
    expect(splits(768, 256)).toBe(0);
    expect(splits(768, 768)).toBe(2); // the case calls gemvRows twice
    expect(splits(2304, 768)).toBe(2);
    releaseRuntime(rt);
  });
});

describe("threads: rnnSteps tiles", () => {
  it("a tile whose partner never starts takes the partner's chunks itself (same bits); a set failure word stops it", async () => {
    // the single-thread build runs the tile protocol with plain loads and stores: one thread, two tiles
    await init({ backend: "wasm-relaxed", threads: 1 });
    const rt = createRuntime();
    const H = 100;
    const solo = rnnStepsCase(1, 0, H, 2, 5, 0)(rt);
    const sync = rt.heap.alloc(64 * 3);
    const words = () => rt.heap.i32(sync, 48);
    const twoTiles =
      (tile: number, failed: number): Case =>
      (r) => {
        const w = words();
        w.fill(0);
        w[1] = failed;
        w[16] = w[32] = -1;
        const k = r.k;
        const call = k.rnnSteps;
        // run the case with the kernel called as tile `tile` of 2 instead of the whole call
        k.rnnSteps = (...a: Parameters<typeof call>) => call(...(a.slice(0, 15) as number[]), sync, tile, 2);
        try {
          return rnnStepsCase(1, 0, H, 2, 5, 0)(r);
        } finally {
          k.rnnSteps = call;
        }
      };
    const alone = twoTiles(1, 0)(rt);
    expect(Buffer.from(alone.buffer).equals(Buffer.from(solo.buffer))).toBe(true);
    expect(words()[0]).toBe(2 * 5); // every chunk of the 5 steps done, by the one tile
    const stopped = twoTiles(0, 1)(rt);
    expect(words()[0]).toBe(1); // its own chunk of step 0, then it saw the failure word
    expect(Buffer.from(stopped.buffer).equals(Buffer.from(solo.buffer))).toBe(false);
    releaseRuntime(rt);
  });

  it("a recurrent layer splits when a step has enough work (LSTM H 256), not below (H 128)", async () => {
    await init({ backend: "wasm-relaxed", threads: 2 });
    const rt = createRuntime();
    const splits = (H: number) => {
      const mark = rt.heap.mark();
      const before = threadsInfo().splitCalls;
      rnnStepsCase(1, 0, H, 1, 4, 0)(rt);
      rt.heap.release(mark);
      return threadsInfo().splitCalls - before;
    };
    expect(splits(256)).toBe(1);
    expect(splits(128)).toBe(0);
    releaseRuntime(rt);
  });
});

describe("threads: init options, fallback, errors, terminate", () => {
  it("rejects a bad thread count with an InputError naming the option", async () => {
    for (const bad of [0, -1, 1.5, Number.NaN, 1000, "2" as unknown as number]) {
      await expect(init({ threads: bad })).rejects.toThrow(InputError);
      await expect(init({ threads: bad })).rejects.toThrow(/threads/);
    }
  });

  it("defaults to the usable cores (capped) and reports it; WASMFORMER_THREADS overrides the default", async () => {
    const saved = process.env.WASMFORMER_THREADS;
    process.env.WASMFORMER_THREADS = "3";
    await init({});
    expect(threadsInfo().threads).toBe(3);
    process.env.WASMFORMER_THREADS = "1";
    await init({});
    expect(threadsInfo()).toMatchObject({ threads: 1, reason: "WASMFORMER_THREADS=1" });
    delete process.env.WASMFORMER_THREADS;
    await init({});
    if (saved !== undefined) process.env.WASMFORMER_THREADS = saved;
    const info = threadsInfo();
    expect(info.requested).toBe("auto");
    const { availableParallelism } = await import("node:os");
    expect(info.threads).toBe(Math.min(availableParallelism(), 8));
    expect(createRuntime().threads).toBe(info.threads);
  });

  it("falls back to 1 thread with a warning when the threaded module cannot be loaded", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      await init({ backend: "wasm-simd", threads: 2, wasmThreads: new Uint8Array([0, 97, 115, 109, 9, 9]) });
      const info = threadsInfo();
      expect(info.threads).toBe(1);
      expect(info.reason).toMatch(/threaded kernel module/);
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/using 1 thread/));
      const rt = createRuntime();
      expect(rt.threads).toBe(1);
      expect(Array.from(gemmCase(40, 40, 40, 0, 0, false, 0, 0)(rt).slice(0, 3)).every(Number.isFinite)).toBe(true);
    } finally {
      warn.mockRestore();
    }
  });

  it("a tile that traps is a WasmError; the runtime and the pool keep working", async () => {
    await init({ backend: "wasm-simd", threads: 2 });
    const rt = createRuntime();
    const a = fill(rt, 256 * 256, 1);
    const b = fill(rt, 256 * 256, 2);
    // C far past the end of memory: every tile traps (out of bounds)
    expect(() => rt.k.gemm(256, 256, 256, a, 256, 0, b, 256, 0, 0x7ff00000, 256, 0, 1, 0, 0)).toThrow(WasmError);
    expect(() => rt.k.gemm(256, 256, 256, a, 256, 0, b, 256, 0, 0x7ff00000, 256, 0, 1, 0, 0)).toThrow(/tile/);
    const want = gemmCase(300, 300, 300, 0, 1, true, 0, Act.relu)(rt);
    await init({ backend: "wasm-simd", threads: 1 });
    const one = gemmCase(300, 300, 300, 0, 1, true, 0, Act.relu)(createRuntime());
    expect(Buffer.from(want.buffer).equals(Buffer.from(one.buffer))).toBe(true);
  });

  it("terminateThreads: runtimes go on with one thread and the same results; init starts a new pool", async () => {
    await init({ backend: "wasm-relaxed", threads: 3 });
    const rt = createRuntime();
    const before = gemmCase(200, 300, 400, 0, 1, true, 0, Act.gelu)(rt);
    terminateThreads();
    expect(rt.threads).toBe(1);
    expect(threadsInfo().threads).toBe(1);
    expect(threadsInfo().reason).toMatch(/terminateThreads/);
    const calls = threadsInfo().splitCalls;
    const after = gemmCase(200, 300, 400, 0, 1, true, 0, Act.gelu)(rt);
    expect(threadsInfo().splitCalls).toBe(calls);
    expect(Buffer.from(after.buffer).equals(Buffer.from(before.buffer))).toBe(true);
    expect(createRuntime().threads).toBe(1);
    await init({ backend: "wasm-relaxed", threads: 2 });
    expect(createRuntime().threads).toBe(2);
  });

  it("a released threaded runtime is reused by the next createRuntime with the same threads", async () => {
    await init({ backend: "wasm-simd", threads: 2 });
    const rt = createRuntime();
    releaseRuntime(rt);
    expect(createRuntime()).toBe(rt);
    await init({ backend: "wasm-simd", threads: 3 });
    const rt3 = createRuntime();
    expect(rt3).not.toBe(rt);
    expect(rt3.threads).toBe(3);
  });
});
