/**
 * The reference backward kernels against central finite differences of float64 forwards written
 * here (tinygrad `gradcheck` style): for a forward f and upstream gradient w, the kernel's
 * gradient must equal ∂(Σ f·w)/∂input. Inputs are f32 values (what the kernels see), the forwards
 * and the differences run in f64 with h = 1e-6; the kernels store f32, hence the tolerances.
 */
import { describe, expect, it } from "vitest";
import { prng as rng } from "../../../tools/test-utils/src/prng.js";
import { applyAct } from "../src/backend/ref.js";
import { Act } from "../src/kernels.js";
import { createRefRuntime } from "../src/runtime.js";
import { dotLoss, exec, expectClose, fdGrad } from "./backward-harness.js";

const ref = createRefRuntime();
const ATOL = 2e-5;
const RTOL = 1e-4;

const sig = (x: number) => 1 / (1 + Math.exp(-x));

describe("finite differences: activations", () => {
  it("unaryBackward for relu, gelu, geluTanh, silu (from x) and tanh, sigmoid, exp, sqrt (from y)", () => {
    const r = rng(31);
    const n = 33;
    const x = r.f32(n, -4, 4);
    for (let i = 0; i < n; i++) if (Math.abs(x[i]!) < 1e-3) x[i] = 0.5; // away from relu's kink
    const w = r.f32(n);
    for (const [act, fromY] of [
      [Act.relu, false],
      [Act.gelu, false],
      [Act.geluTanh, false],
      [Act.silu, false],
      [Act.tanh, true],
      [Act.sigmoid, true],
      [Act.exp, true],
      [Act.sqrt, true],
      [Act.log, false],
      [Act.abs, false],
      [Act.neg, false],
    ] as const) {
      const xin = act === Act.sqrt || act === Act.log ? x.map((v) => Math.abs(v) + 0.2) : x;
      const src = fromY ? xin.map((v) => applyAct(v, act)) : xin;
      const want = fdGrad(
        (xx) =>
          dotLoss(
            xx.map((v) => applyAct(v, act)),
            w,
          ),
        xin,
      );
      const { out } = exec(
        ref,
        { dx: new Float32Array(n), dy: w, src: Float32Array.from(src) },
        (k, p) => k.unaryBackward(p.dx!, p.dy!, p.src!, n, act),
        ["dx"],
      );
      expectClose(out.dx!, want, ATOL, RTOL, `act ${act}`);
    }
  });

  it("biasGrad is the gradient of a bias added to every row", () => {
    const r = rng(32);
    const [rows, cols] = [5, 7];
    const x = r.f32(rows * cols);
    const w = r.f32(rows * cols);
    const b0 = r.f32(cols);
    const want = fdGrad(
      (b) =>
        dotLoss(
          Float64Array.from(x, (v, i) => v + b[i % cols]!),
          w,
        ),
      b0,
    );
    const { out } = exec(
      ref,
      { db: new Float32Array(cols), dy: w },
      (k, p) => k.biasGrad(p.db!, p.dy!, rows, cols, cols),
      ["db"],
    );
    expectClose(out.db!, want, ATOL, RTOL, "biasGrad");
  });
});

// ---------------------------------------------------------------------------------------------
// norms

function layerNorm64(
  x: ArrayLike<number>,
  g: ArrayLike<number>,
  b: ArrayLike<number>,
  rows: number,
  d: number,
  eps: number,
) {
  const y = new Float64Array(rows * d);
  for (let i = 0; i < rows; i++) {
    let m = 0;
    for (let j = 0; j < d; j++) m += x[i * d + j]!;
    m /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (x[i * d + j]! - m) ** 2;
    const rs = 1 / Math.sqrt(v / d + eps);
    for (let j = 0; j < d; j++) y[i * d + j] = (x[i * d + j]! - m) * rs * g[j]! + b[j]!;
  }
  return y;
}

function rmsNorm64(x: ArrayLike<number>, g: ArrayLike<number>, rows: number, d: number, eps: number) {
  const y = new Float64Array(rows * d);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[i * d + j]! ** 2;
    const rs = 1 / Math.sqrt(s / d + eps);
    for (let j = 0; j < d; j++) y[i * d + j] = x[i * d + j]! * rs * g[j]!;
  }
  return y;
}

describe("finite differences: norms", () => {
  it("layerNormBackward: dx, dgamma, dbeta (saved and recomputed stats)", () => {
    const r = rng(33);
    for (const [rows, d, saved] of [
      [1, 1, false],
      [3, 5, false],
      [2, 17, false],
      [3, 5, true],
      [2, 17, true],
    ] as const) {
      const eps = 1e-5;
      const x = r.f32(rows * d, -2, 2);
      const g = r.f32(d, 0.5, 1.5);
      const b = r.f32(d);
      const w = r.f32(rows * d);
      const mean = new Float32Array(rows);
      const rstd = new Float32Array(rows);
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < d; j++) mean[i] += x[i * d + j]! / d;
        let v = 0;
        for (let j = 0; j < d; j++) v += (x[i * d + j]! - mean[i]!) ** 2;
        rstd[i] = 1 / Math.sqrt(v / d + eps);
      }
      const { out } = exec(
        ref,
        { dx: new Float32Array(rows * d), dg: new Float32Array(d), db: new Float32Array(d), dy: w, x, g, mean, rstd },
        (k, p) =>
          k.layerNormBackward(
            p.dx!,
            p.dg!,
            p.db!,
            p.dy!,
            p.x!,
            p.g!,
            saved ? p.mean! : 0,
            saved ? p.rstd! : 0,
            rows,
            d,
            eps,
          ),
        ["dx", "dg", "db"],
      );
      expectClose(
        out.dx!,
        fdGrad((xx) => dotLoss(layerNorm64(xx, g, b, rows, d, eps), w), x),
        ATOL,
        RTOL,
        "dx",
      );
      expectClose(
        out.dg!,
        fdGrad((gg) => dotLoss(layerNorm64(x, gg, b, rows, d, eps), w), g),
        ATOL,
        RTOL,
        "dg",
      );
      expectClose(
        out.db!,
        fdGrad((bb) => dotLoss(layerNorm64(x, g, bb, rows, d, eps), w), b),
        ATOL,
        RTOL,
        "db",
      );
    }
  });

  it.each([true, false])("rmsNormBackward: dx, dgamma (saved rstd: %s)", (saved) => {
    const r = rng(34);
    const [rows, d, eps] = [3, 7, 1e-6];
    const x = r.f32(rows * d, -2, 2);
    const g = r.f32(d, 0.5, 1.5);
    const w = r.f32(rows * d);
    const rstd = new Float32Array(rows);
    for (let i = 0; i < rows; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += x[i * d + j]! ** 2;
      rstd[i] = 1 / Math.sqrt(s / d + eps);
    }
    const { out } = exec(
      ref,
      { dx: new Float32Array(rows * d), dg: new Float32Array(d), dy: w, x, g, rstd },
      (k, p) => k.rmsNormBackward(p.dx!, p.dg!, p.dy!, p.x!, p.g!, saved ? p.rstd! : 0, rows, d, eps),
      ["dx", "dg"],
    );
    expectClose(
      out.dx!,
      fdGrad((xx) => dotLoss(rmsNorm64(xx, g, rows, d, eps), w), x),
      ATOL,
      RTOL,
      "dx",
    );
    expectClose(
      out.dg!,
      fdGrad((gg) => dotLoss(rmsNorm64(x, gg, rows, d, eps), w), g),
      ATOL,
      RTOL,
      "dg",
    );
  });
});

// ---------------------------------------------------------------------------------------------
// softmax, attention, cross-entropy

function softmax64(x: ArrayLike<number>, rows: number, cols: number) {
  const y = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    let m = -Infinity;
    for (let j = 0; j < cols; j++) m = Math.max(m, x[i * cols + j]!);
    if (m === -Infinity) continue;
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(x[i * cols + j]! - m);
    for (let j = 0; j < cols; j++) y[i * cols + j] = Math.exp(x[i * cols + j]! - m) / s;
  }
  return y;
}

interface AttnOpts {
  L: number;
  S: number;
  dk: number;
  dv: number;
  scale: number;
  mask?: Float32Array;
  kpm?: Uint8Array;
  causal: number;
}

/** float64 attention: P = softmax(scale·QKᵀ + mask, padded/causal keys −∞), O = P·V; all contiguous. */
function attention64(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, o: AttnOpts) {
  const { L, S, dk, dv, scale } = o;
  const s = new Float64Array(L * S);
  for (let i = 0; i < L; i++)
    for (let j = 0; j < S; j++) {
      let t = 0;
      for (let c = 0; c < dk; c++) t += q[i * dk + c]! * k[j * dk + c]!;
      t = t * scale + (o.mask ? o.mask[i * S + j]! : 0);
      if (o.kpm?.[j] || (o.causal >= 0 && j > i + o.causal)) t = -Infinity;
      s[i * S + j] = t;
    }
  const p = softmax64(s, L, S);
  const out = new Float64Array(L * dv);
  for (let i = 0; i < L; i++)
    for (let c = 0; c < dv; c++) {
      let t = 0;
      for (let j = 0; j < S; j++) t += p[i * S + j]! * v[j * dv + c]!;
      out[i * dv + c] = t;
    }
  return { p, out };
}

/** float64 F.cross_entropy(x, t, ignore_index, label_smoothing, reduction mean | sum). */
function crossEntropy64(
  x: ArrayLike<number>,
  t: Int32Array,
  rows: number,
  V: number,
  ignore: number,
  eps: number,
  sum: boolean,
) {
  let total = 0;
  let n = 0;
  for (let i = 0; i < rows; i++) {
    if (t[i] === ignore) continue;
    n++;
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, x[i * V + j]!);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(x[i * V + j]! - m);
    const lse = m + Math.log(s);
    let smooth = 0;
    for (let j = 0; j < V; j++) smooth += lse - x[i * V + j]!;
    total += (1 - eps) * (lse - x[i * V + t[i]!]!) + (eps / V) * smooth;
  }
  return sum ? total : total / n;
}

describe("finite differences: softmax, attention, cross-entropy", () => {
  it("softmaxBackward", () => {
    const r = rng(35);
    const [rows, cols] = [3, 7];
    const x = r.f32(rows * cols, -3, 3);
    const w = r.f32(rows * cols);
    const y = Float32Array.from(softmax64(x, rows, cols));
    const { out } = exec(
      ref,
      { dx: new Float32Array(rows * cols), dy: w, y },
      (k, p) => k.softmaxBackward(p.dx!, p.dy!, p.y!, rows, cols, cols),
      ["dx"],
    );
    expectClose(
      out.dx!,
      fdGrad((xx) => dotLoss(softmax64(xx, rows, cols), w), x),
      ATOL,
      RTOL,
      "dx",
    );
  });

  it("attentionBackward: dQ, dK, dV with an additive mask, key padding, causal offset and dProbs", () => {
    const r = rng(36);
    for (const variant of ["plain", "mask", "kpm", "causal", "causal+kpm"] as const) {
      for (const [L, S, dk, dv] of [
        [3, 5, 4, 3],
        [5, 5, 3, 2],
        [1, 7, 5, 5],
      ] as const) {
        const o: AttnOpts = {
          L,
          S,
          dk,
          dv,
          scale: 1 / Math.sqrt(dk),
          mask: variant === "mask" ? r.f32(L * S, -1, 1) : undefined,
          kpm: variant.includes("kpm") ? Uint8Array.from({ length: S }, (_, j) => (j === 1 ? 1 : 0)) : undefined,
          causal: variant.startsWith("causal") ? S - L : -1,
        };
        const q = r.f32(L * dk);
        const kk = r.f32(S * dk);
        const v = r.f32(S * dv);
        const wO = r.f32(L * dv);
        const wP = r.f32(L * S);
        const loss = (qq: ArrayLike<number>, k2: ArrayLike<number>, vv: ArrayLike<number>) => {
          const f = attention64(qq, k2, vv, o);
          return dotLoss(f.out, wO) + dotLoss(f.p, wP);
        };
        const { out } = exec(
          ref,
          {
            q,
            k: kk,
            v,
            o: new Float32Array(L * dv),
            probs: new Float32Array(L * S),
            mask: o.mask ?? new Float32Array(1),
            kpm: o.kpm ?? new Uint8Array(1),
            dO: wO,
            dProbs: wP,
            dQ: new Float32Array(L * dk),
            dK: new Float32Array(S * dk),
            dV: new Float32Array(S * dv),
            scratch: new Float32Array(L * S),
          },
          (k, p) => {
            k.attention(
              p.q!,
              dk,
              p.k!,
              dk,
              p.v!,
              dv,
              p.o!,
              dv,
              p.probs!,
              L,
              S,
              dk,
              dv,
              o.scale,
              o.mask ? p.mask! : 0,
              S,
              o.kpm ? p.kpm! : 0,
              o.causal,
            );
            k.attentionBackward(
              p.dQ!,
              p.dK!,
              p.dV!,
              p.dO!,
              dv,
              p.q!,
              dk,
              p.k!,
              dk,
              p.v!,
              dv,
              p.probs!,
              p.dProbs!,
              p.scratch!,
              L,
              S,
              dk,
              dv,
              o.scale,
            );
          },
          ["dQ", "dK", "dV"],
        );
        const label = `attention ${variant} L${L} S${S}`;
        expectClose(
          out.dQ!,
          fdGrad((x) => loss(x, kk, v), q),
          ATOL,
          RTOL,
          `${label} dQ`,
        );
        expectClose(
          out.dK!,
          fdGrad((x) => loss(q, x, v), kk),
          ATOL,
          RTOL,
          `${label} dK`,
        );
        expectClose(
          out.dV!,
          fdGrad((x) => loss(q, kk, x), v),
          ATOL,
          RTOL,
          `${label} dV`,
        );
        if (o.kpm) for (let c = 0; c < dv; c++) expect(out.dV![1 * dv + c], "a padded key gets no dV").toBe(0);
      }
    }
  });

  it("softmaxCrossEntropy: loss and dlogits for ignore_index × label_smoothing × mean/sum", () => {
    const r = rng(37);
    const [rows, V] = [5, 7];
    const x = r.f32(rows * V, -3, 3);
    const t = Int32Array.from([3, -100, 0, 6, -100]);
    for (const eps of [0, 0.25]) {
      for (const sum of [false, true]) {
        const { ret, out } = exec(
          ref,
          { x, t, dl: new Float32Array(rows * V), loss: new Float32Array(1) },
          (k, p) => k.softmaxCrossEntropy(p.x!, p.dl!, V, rows, V, p.t!, -100, eps, sum ? 1 : 0, 1.5, p.loss!),
          ["dl", "loss"],
        );
        expect(ret).toBe(-1);
        const label = `CE eps ${eps} ${sum ? "sum" : "mean"}`;
        expectClose(out.loss!, [crossEntropy64(x, t, rows, V, -100, eps, sum)], 1e-6, 1e-6, `${label} loss`);
        const want = fdGrad((xx) => 1.5 * crossEntropy64(xx, t, rows, V, -100, eps, sum), x);
        expectClose(out.dl!, want, ATOL, RTOL, `${label} dlogits`);
        for (let j = 0; j < V; j++) expect(out.dl![V + j], "an ignored row gets no gradient").toBe(0);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// patch im2col, embedding (tied), recurrent cells

describe("finite differences: im2colPatch", () => {
  it("im2colPatchBackward is the gradient of im2colPatch (pixels past the last patch: 0)", () => {
    const r = rng(41);
    const [C, H, W, k] = [2, 5, 7, 2];
    const gh = Math.floor(H / k);
    const gw = Math.floor(W / k);
    const ck = C * k * k;
    const x = r.f32(C * H * W);
    const w = r.f32(gh * gw * ck);
    const cols = (xx: ArrayLike<number>) => {
      const o = new Float64Array(gh * gw * ck);
      for (let i = 0; i < gh; i++)
        for (let j = 0; j < gw; j++)
          for (let c = 0; c < C; c++)
            for (let u = 0; u < k; u++)
              for (let v = 0; v < k; v++)
                o[(i * gw + j) * ck + (c * k + u) * k + v] = xx[c * H * W + (i * k + u) * W + j * k + v]!;
      return o;
    };
    const { out } = exec(
      ref,
      { dx: new Float32Array(C * H * W), dcols: w },
      (kk, p) => kk.im2colPatchBackward(p.dx!, p.dcols!, C, H, W, k),
      ["dx"],
    );
    expectClose(
      out.dx!,
      fdGrad((xx) => dotLoss(cols(xx), w), x),
      ATOL,
      RTOL,
      "dx",
    );
  });
});

describe("finite differences: embedding, recurrent cells", () => {
  it("embeddingBackward + the logits GEMM into one buffer = the gradient of a tied weight", () => {
    const r = rng(38);
    const [V, D, n] = [5, 3, 7];
    const W = r.f32(V * D);
    const ids = Int32Array.from([1, 4, 1, 0, 1, 2, 4]);
    const h = r.f32(n * D); // hidden states fed to the tied output layer: logits = h·Wᵀ
    const w1 = r.f32(n * D);
    const w2 = r.f32(n * V);
    const loss = (ww: ArrayLike<number>) => {
      let s = 0;
      for (let t = 0; t < n; t++) for (let j = 0; j < D; j++) s += ww[ids[t]! * D + j]! * w1[t * D + j]!;
      for (let t = 0; t < n; t++)
        for (let v = 0; v < V; v++) {
          let z = 0;
          for (let j = 0; j < D; j++) z += h[t * D + j]! * ww[v * D + j]!;
          s += z * w2[t * V + v]!;
        }
      return s;
    };
    const { out } = exec(
      ref,
      { dW: new Float32Array(V * D), ids, dy: w1, h, dl: w2 },
      (k, p) => {
        expect(k.embeddingBackward(p.dW!, V, D, p.ids!, n, p.dy!, -1)).toBe(-1);
        // logits backward: dW [V, D] += dlogitsᵀ [V, n] · h [n, D], accumulated (beta = 1)
        k.gemm(V, D, n, p.dl!, V, 1, p.h!, D, 0, p.dW!, D, 0, 1, 1, 0);
      },
      ["dW"],
    );
    expectClose(out.dW!, fdGrad(loss, W), ATOL, RTOL, "tied dW");
  });

  it("lstmCellBackward: dgates and dc_{t−1} from dh_t and dc_t", () => {
    const r = rng(39);
    const [B, H] = [2, 5];
    const gates = r.f32(B * 4 * H, -2, 2);
    const cPrev = r.f32(B * H, -1, 1);
    const wh = r.f32(B * H);
    const wc = r.f32(B * H);
    const step = (g: ArrayLike<number>, cp: ArrayLike<number>) => {
      let s = 0;
      for (let b = 0; b < B; b++)
        for (let j = 0; j < H; j++) {
          const o = b * 4 * H;
          const c = sig(g[o + H + j]!) * cp[b * H + j]! + sig(g[o + j]!) * Math.tanh(g[o + 2 * H + j]!);
          const h = sig(g[o + 3 * H + j]!) * Math.tanh(c);
          s += h * wh[b * H + j]! + c * wc[b * H + j]!;
        }
      return s;
    };
    const { out } = exec(
      ref,
      { dg: new Float32Array(B * 4 * H), dc: wc, dh: wh, gates, cPrev },
      (k, p) => k.lstmCellBackward(p.dg!, p.dc!, p.dh!, H, p.gates!, p.cPrev!, H, B),
      ["dg", "dc"],
    );
    expectClose(
      out.dg!,
      fdGrad((g) => step(g, cPrev), gates),
      ATOL,
      RTOL,
      "dgates",
    );
    expectClose(
      out.dc!,
      fdGrad((c) => step(gates, c), cPrev),
      ATOL,
      RTOL,
      "dcPrev",
    );
  });

  it("gruCellBackward: dgx, dgh and the direct dh_{t−1}", () => {
    const r = rng(40);
    const [B, H] = [3, 4];
    const gx = r.f32(B * 3 * H, -2, 2);
    const gh = r.f32(B * 3 * H, -2, 2);
    const hp = r.f32(B * H, -1, 1);
    const w = r.f32(B * H);
    const step = (x: ArrayLike<number>, g: ArrayLike<number>, h0: ArrayLike<number>) => {
      let s = 0;
      for (let b = 0; b < B; b++)
        for (let j = 0; j < H; j++) {
          const o = b * 3 * H;
          const rr = sig(x[o + j]! + g[o + j]!);
          const z = sig(x[o + H + j]! + g[o + H + j]!);
          const nn = Math.tanh(x[o + 2 * H + j]! + rr * g[o + 2 * H + j]!);
          s += ((1 - z) * nn + z * h0[b * H + j]!) * w[b * H + j]!;
        }
      return s;
    };
    const { out } = exec(
      ref,
      {
        dgx: new Float32Array(B * 3 * H),
        dgh: new Float32Array(B * 3 * H),
        dhp: new Float32Array(B * H),
        dh: w,
        gx,
        gh,
        hp,
      },
      (k, p) => k.gruCellBackward(p.dgx!, p.dgh!, p.dhp!, p.dh!, H, p.gx!, p.gh!, p.hp!, H, H, B),
      ["dgx", "dgh", "dhp"],
    );
    expectClose(
      out.dgx!,
      fdGrad((x) => step(x, gh, hp), gx),
      ATOL,
      RTOL,
      "dgx",
    );
    expectClose(
      out.dgh!,
      fdGrad((g) => step(gx, g, hp), gh),
      ATOL,
      RTOL,
      "dgh",
    );
    expectClose(
      out.dhp!,
      fdGrad((h) => step(gx, gh, h), hp),
      ATOL,
      RTOL,
      "dhPrev",
    );
  });
});
