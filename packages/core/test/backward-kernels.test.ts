/**
 * Parity of the SIMD backward kernels (plain and relaxed builds) with the float64 reference twins
 * (src/backend/ref-backward.ts) on seeded random inputs and odd shapes (1, 3, 5, 7, 17, 33, 65),
 * ggml `test-backend-ops` style. Gradient buffers start non-zero so that accumulation (+=) is
 * checked too. The reference itself is checked against finite differences in backward-fd.test.ts.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { prng as rng } from "../../../tools/test-utils/src/prng.js";
import { Act, type AttentionBackwardArgs } from "../src/kernels.js";
import { createRefRuntime, type Runtime } from "../src/runtime.js";
import { exec, expectClose, parity } from "./backward-harness.js";
import { wasmBuilds } from "./wasm-builds.js";

const SIZES = [1, 3, 5, 7, 17, 33, 65];
const ref = createRefRuntime();
const wasm: Runtime[] = [];

beforeAll(async () => {
  wasm.push(...(await wasmBuilds()));
  expect(wasm.map((r) => r.backend)).toEqual(["wasm-simd", "wasm-relaxed"]);
});

describe("unaryBackward", () => {
  const cases = [
    ["relu", Act.relu, "x"],
    ["gelu", Act.gelu, "x"],
    ["geluTanh", Act.geluTanh, "x"],
    ["silu", Act.silu, "x"],
    ["tanh", Act.tanh, "y"],
    ["sigmoid", Act.sigmoid, "y"],
    ["exp", Act.exp, "y"],
    ["none", Act.none, "x"],
    ["neg", Act.neg, "x"],
    ["sqrt", Act.sqrt, "y"],
    ["abs", Act.abs, "x"],
    ["log", Act.log, "x"],
  ] as const;
  it("matches ref for every activation code on odd lengths (src = input or output)", () => {
    const r = rng(11);
    for (const [name, act, from] of cases) {
      for (const n of [...SIZES, 130]) {
        const x = r.f32(n, -8, 8);
        if (name === "sqrt" || name === "log") for (let i = 0; i < n; i++) x[i] = Math.abs(x[i]!) + 0.1;
        if (name === "relu" || name === "abs") x[0] = 0; // the kink: derivative 0, as PyTorch
        const src = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          const v = x[i]!;
          src[i] =
            from === "x"
              ? v
              : name === "tanh"
                ? Math.tanh(v)
                : name === "sigmoid"
                  ? 1 / (1 + Math.exp(-v))
                  : name === "exp"
                    ? Math.exp(v / 4)
                    : Math.sqrt(v);
        }
        const dy = r.f32(n, -1, 1);
        const dx = r.f32(n, -1, 1);
        parity(
          ref,
          wasm,
          `unaryBackward ${name} n${n}`,
          { dx, dy, src },
          (k, p) => k.unaryBackward(p.dx!, p.dy!, p.src!, n, act),
          ["dx"],
          2e-6,
          2e-5,
        );
      }
    }
  });

  it("handles large |x| without NaN (GELU, SiLU tails)", () => {
    const x = Float32Array.from([-60, -20, -9, 9, 20, 60, -1e-30, 0]);
    const dy = new Float32Array(x.length).fill(1);
    for (const act of [Act.gelu, Act.geluTanh, Act.silu]) {
      const { out } = parity(
        ref,
        wasm,
        `unaryBackward tails act ${act}`,
        { dx: new Float32Array(x.length), dy, src: x },
        (k, p) => k.unaryBackward(p.dx!, p.dy!, p.src!, x.length, act),
        ["dx"],
        1e-6,
        1e-5,
      );
      expect(Array.from(out.dx!).every(Number.isFinite)).toBe(true);
    }
  });
});

describe("biasGrad", () => {
  it("sums rows into db (accumulating), with a leading dimension", () => {
    const r = rng(12);
    for (const rows of [1, 3, 33]) {
      for (const cols of [...SIZES, 70]) {
        const ld = cols + (rows % 2 ? 0 : 5);
        parity(
          ref,
          wasm,
          `biasGrad ${rows}x${cols}`,
          { db: r.f32(cols), dy: r.f32(rows * ld) },
          (k, p) => k.biasGrad(p.db!, p.dy!, rows, cols, ld),
          ["db"],
          1e-5,
          1e-5,
        );
      }
    }
  });
});

describe("embeddingBackward", () => {
  it("scatter-adds rows, repeated ids accumulate, padding id skipped", () => {
    const r = rng(13);
    for (const dim of SIZES) {
      const vocab = 7;
      const n = 17;
      const ids = Int32Array.from({ length: n }, () => r.int(0, vocab));
      ids[1] = ids[0]!; // a repeat
      for (const pad of [-1, ids[2]!]) {
        const { ret, out } = parity(
          ref,
          wasm,
          `embeddingBackward dim${dim} pad${pad}`,
          { dW: r.f32(vocab * dim), ids, dy: r.f32(n * dim) },
          (k, p) => k.embeddingBackward(p.dW!, vocab, dim, p.ids!, n, p.dy!, pad),
          ["dW"],
          1e-6,
          1e-6,
        );
        expect(ret).toBe(-1);
        expect(out.dW!.length).toBe(vocab * dim);
      }
    }
  });

  it("returns the first bad position and writes nothing", () => {
    const dW = new Float32Array(12).fill(0.5);
    const ids = Int32Array.from([0, 2, 3, -1]);
    for (const rt of [ref, ...wasm]) {
      const { ret, out } = exec(
        rt,
        { dW, ids, dy: new Float32Array(16).fill(1) },
        (k, p) => k.embeddingBackward(p.dW!, 3, 4, p.ids!, 4, p.dy!, -1),
        ["dW"],
      );
      expect(ret, rt.backend).toBe(2);
      expect(Array.from(out.dW!)).toEqual(Array.from(dW));
    }
  });
});

describe("im2colPatchBackward", () => {
  it("matches ref (col2im), pixels past the last patch untouched", () => {
    const r = rng(14);
    for (const [C, H, W, k] of [
      [1, 3, 3, 1],
      [3, 7, 9, 3],
      [2, 17, 16, 4],
      [3, 33, 33, 5],
      [1, 16, 16, 16],
      [2, 11, 7, 7],
    ] as const) {
      const gh = Math.floor(H / k);
      const gw = Math.floor(W / k);
      parity(
        ref,
        wasm,
        `im2colPatchBackward C${C} ${H}x${W} k${k}`,
        { dx: r.f32(C * H * W), dcols: r.f32(gh * gw * C * k * k) },
        (kk, p) => kk.im2colPatchBackward(p.dx!, p.dcols!, C, H, W, k),
        ["dx"],
        1e-6,
        1e-6,
      );
    }
  });
});

describe("normStats", () => {
  it("matches ref (layer-norm mean/rstd, RMS rstd), and saved stats give the recomputed gradient", () => {
    const r = rng(22);
    for (const rows of [1, 3, 17]) {
      for (const d of SIZES) {
        const x = r.f32(rows * d, -3, 3);
        for (let j = 0; j < d; j++) x[j] = x[j]! + 1000; // a row with a large common offset
        parity(
          ref,
          wasm,
          `normStats ${rows}x${d}`,
          { x, mean: new Float32Array(rows), rstd: new Float32Array(rows), rms: new Float32Array(rows) },
          (k, p) => {
            k.normStats(p.x!, rows, d, 1e-5, p.mean!, p.rstd!);
            k.normStats(p.x!, rows, d, 1e-6, 0, p.rms!);
          },
          ["mean", "rstd", "rms"],
          1e-6,
          1e-5,
        );
        const dy = r.f32(rows * d);
        for (const rt of [ref, ...wasm]) {
          const { out } = exec(
            rt,
            {
              x,
              dy,
              m: new Float32Array(rows),
              s: new Float32Array(rows),
              a: new Float32Array(rows * d),
              b: new Float32Array(rows * d),
            },
            (k, p) => {
              k.normStats(p.x!, rows, d, 1e-5, p.m!, p.s!);
              k.layerNormBackward(p.a!, 0, 0, p.dy!, p.x!, 0, p.m!, p.s!, rows, d, 1e-5);
              k.layerNormBackward(p.b!, 0, 0, p.dy!, p.x!, 0, 0, 0, rows, d, 1e-5);
            },
            ["a", "b"],
          );
          // wasm recomputes in f32 exactly as normStats does; the f64 reference differs by the f32
          // rounding of the saved mean (up to ulp(1000)/2 on the offset row, as PyTorch's f32 mean)
          if (rt === ref) expectClose(out.a!, out.b!, 1e-4, 1e-3, "ref saved vs recomputed");
          else expect(Array.from(out.a!), `${rt.backend} saved == recomputed`).toEqual(Array.from(out.b!));
        }
      }
    }
  });
});

describe("layerNormBackward / rmsNormBackward", () => {
  it("layer norm: matches ref with saved or recomputed stats, gamma or none, null grads", () => {
    const r = rng(15);
    for (const rows of [1, 3, 17]) {
      for (const d of SIZES) {
        const x = r.f32(rows * d, -3, 3);
        for (let j = 0; j < d; j++) x[j] = x[j]! + 100; // a row with a large offset
        const mean = new Float32Array(rows);
        const rstd = new Float32Array(rows);
        for (let i = 0; i < rows; i++) {
          let m = 0;
          for (let j = 0; j < d; j++) m += x[i * d + j]!;
          m /= d;
          let v = 0;
          for (let j = 0; j < d; j++) v += (x[i * d + j]! - m) ** 2;
          mean[i] = m;
          rstd[i] = 1 / Math.sqrt(v / d + 1e-5);
        }
        for (const saved of [true, false]) {
          for (const withGamma of [true, false]) {
            parity(
              ref,
              wasm,
              `layerNormBackward ${rows}x${d} saved ${saved} gamma ${withGamma}`,
              {
                dx: r.f32(rows * d),
                dg: r.f32(d),
                db: r.f32(d),
                dy: r.f32(rows * d),
                x,
                g: r.f32(d, 0.5, 1.5),
                mean,
                rstd,
              },
              (k, p) =>
                k.layerNormBackward(
                  p.dx!,
                  p.dg!,
                  p.db!,
                  p.dy!,
                  p.x!,
                  withGamma ? p.g! : 0,
                  saved ? p.mean! : 0,
                  saved ? p.rstd! : 0,
                  rows,
                  d,
                  1e-5,
                ),
              ["dx", "dg", "db"],
              2e-5,
              2e-4,
            );
          }
        }
        // only the parameter grads (dx = 0), and only dx
        parity(
          ref,
          wasm,
          `layerNormBackward ${rows}x${d} partial`,
          { dx: r.f32(rows * d), dg: r.f32(d), dy: r.f32(rows * d), x },
          (k, p) => {
            k.layerNormBackward(0, p.dg!, 0, p.dy!, p.x!, 0, 0, 0, rows, d, 1e-5);
            k.layerNormBackward(p.dx!, 0, 0, p.dy!, p.x!, 0, 0, 0, rows, d, 1e-5);
          },
          ["dx", "dg"],
          2e-5,
          2e-4,
        );
      }
    }
  });

  it("RMS norm: matches ref with saved or recomputed rstd", () => {
    const r = rng(16);
    for (const rows of [1, 3, 17]) {
      for (const d of SIZES) {
        const x = r.f32(rows * d, -3, 3);
        const rstd = new Float32Array(rows);
        for (let i = 0; i < rows; i++) {
          let s = 0;
          for (let j = 0; j < d; j++) s += x[i * d + j]! ** 2;
          rstd[i] = 1 / Math.sqrt(s / d + 1e-6);
        }
        for (const saved of [true, false]) {
          for (const withGamma of [true, false]) {
            parity(
              ref,
              wasm,
              `rmsNormBackward ${rows}x${d} saved ${saved} gamma ${withGamma}`,
              { dx: r.f32(rows * d), dg: r.f32(d), dy: r.f32(rows * d), x, g: r.f32(d, 0.5, 1.5), rstd },
              (k, p) =>
                k.rmsNormBackward(p.dx!, p.dg!, p.dy!, p.x!, withGamma ? p.g! : 0, saved ? p.rstd! : 0, rows, d, 1e-6),
              ["dx", "dg"],
              2e-5,
              2e-4,
            );
          }
        }
      }
    }
  });
});

describe("softmaxBackward", () => {
  it("matches ref on odd shapes with a leading dimension", () => {
    const r = rng(17);
    for (const rows of [1, 3, 17]) {
      for (const cols of SIZES) {
        const ld = cols + (rows === 3 ? 3 : 0);
        const y = new Float32Array(rows * ld);
        for (let i = 0; i < rows; i++) {
          const e = Array.from({ length: cols }, () => Math.exp(r.uniform(-4, 4)));
          const s = e.reduce((a, b) => a + b, 0);
          for (let j = 0; j < cols; j++) y[i * ld + j] = e[j]! / s;
        }
        parity(
          ref,
          wasm,
          `softmaxBackward ${rows}x${cols} ld${ld}`,
          { dx: r.f32(rows * ld), dy: r.f32(rows * ld), y },
          (k, p) => k.softmaxBackward(p.dx!, p.dy!, p.y!, rows, cols, ld),
          ["dx"],
          1e-6,
          1e-5,
        );
      }
    }
  });
});

describe("attentionBackward", () => {
  it("matches ref after the forward, with masks, padding, causal offsets, dProbs and strides", () => {
    const r = rng(18);
    const shapes = [
      [1, 1, 1, 1],
      [3, 5, 7, 3],
      [5, 3, 4, 5],
      [7, 7, 8, 8],
      [17, 17, 5, 7],
      [33, 33, 16, 16],
      [20, 65, 3, 9],
    ] as const;
    for (const [L, S, dk, dv] of shapes) {
      for (const variant of ["plain", "mask", "kpm", "causal", "dprobs"] as const) {
        const ldq = dk + 1;
        const ldk = dk + 2;
        const ldv = dv;
        const ldo = dv + 3;
        const q = r.f32(L * ldq);
        const kk = r.f32(S * ldk);
        const v = r.f32(S * ldv);
        const mask = r.f32(L * S, -1, 1);
        const kpm = Uint8Array.from({ length: S }, (_, j) => (j > 0 && j % 3 === 1 ? 1 : 0));
        const causal = variant === "causal" ? Math.max(0, S - L) : -1;
        parity(
          ref,
          wasm,
          `attentionBackward L${L} S${S} dk${dk} dv${dv} ${variant}`,
          {
            q,
            k: kk,
            v,
            o: new Float32Array(L * ldo),
            probs: new Float32Array(L * S),
            mask,
            kpm,
            dO: r.f32(L * ldo),
            dProbs: r.f32(L * S),
            dQ: r.f32(L * ldq),
            dK: r.f32(S * ldk),
            dV: r.f32(S * ldv),
            scratch: new Float32Array(L * S),
          },
          (k, p) => {
            k.attention(
              p.q!,
              ldq,
              p.k!,
              ldk,
              p.v!,
              ldv,
              p.o!,
              ldo,
              p.probs!,
              L,
              S,
              dk,
              dv,
              0.37,
              variant === "mask" ? p.mask! : 0,
              S,
              variant === "kpm" ? p.kpm! : 0,
              causal,
            );
            k.attentionBackward(
              p.dQ!,
              p.dK!,
              p.dV!,
              p.dO!,
              ldo,
              p.q!,
              ldq,
              p.k!,
              ldk,
              p.v!,
              ldv,
              p.probs!,
              variant === "dprobs" ? p.dProbs! : 0,
              p.scratch!,
              L,
              S,
              dk,
              dv,
              0.37,
            );
          },
          ["dQ", "dK", "dV", "scratch"],
          2e-5,
          2e-4,
        );
      }
    }
  });
});

describe("attentionBackwardHeads", () => {
  it("equals the attentionBackward calls one after another (GQA: two query heads share dK, dV and a scratch)", () => {
    const r = rng(19);
    const [B, H, KV, L, d] = [2, 4, 2, 9, 5];
    const qkvW = (H + 2 * KV) * d;
    const bufs = {
      qkv: r.f32(B * L * qkvW),
      probs: new Float32Array(B * H * L * L),
      o: new Float32Array(B * L * H * d),
      dO: r.f32(B * L * H * d),
      dqkv: r.f32(B * L * qkvW),
      scratch: new Float32Array(KV * L * L),
    };
    const run = (k: Runtime["k"], p: Record<string, number>, batched: boolean) => {
      const slices: AttentionBackwardArgs[] = [];
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++) {
          const g = Math.floor(h / 2);
          const row = 4 * b * L * qkvW;
          const [q, kk, v] = [h * d, (H + g) * d, (H + KV + g) * d].map((c) => row + 4 * c);
          const probs = p.probs! + 4 * (b * H + h) * L * L;
          const o = 4 * (b * L * H * d + h * d);
          k.attention(
            p.qkv! + q,
            qkvW,
            p.qkv! + kk,
            qkvW,
            p.qkv! + v,
            qkvW,
            p.o! + o,
            H * d,
            probs,
            L,
            L,
            d,
            d,
            0.4,
            0,
            0,
            0,
            0,
          );
          const s = p.scratch! + 4 * ((b * KV + g) % KV) * L * L;
          slices.push([
            p.dqkv! + q,
            p.dqkv! + kk,
            p.dqkv! + v,
            p.dO! + o,
            H * d,
            p.qkv! + q,
            qkvW,
            p.qkv! + kk,
            qkvW,
            p.qkv! + v,
            qkvW,
            probs,
            0,
            s,
            L,
            L,
            d,
            d,
            0.4,
          ]);
        }
      if (batched) k.attentionBackwardHeads(slices);
      else for (const a of slices) k.attentionBackward(...a);
    };
    for (const rt of [ref, ...wasm]) {
      const one = exec(rt, bufs, (k, p) => run(k, p, false), ["dqkv"]).out.dqkv!;
      const all = exec(rt, bufs, (k, p) => run(k, p, true), ["dqkv"]).out.dqkv!;
      expect(new Uint32Array(all.buffer), rt.backend).toEqual(new Uint32Array(one.buffer));
    }
    parity(ref, wasm, "attentionBackwardHeads", bufs, (k, p) => run(k, p, true), ["dqkv"], 2e-5, 2e-4);
  });
});

describe("softmaxCrossEntropy", () => {
  it("matches ref: ignore_index, label smoothing, mean and sum, loss-only", () => {
    const r = rng(19);
    for (const rows of [1, 3, 17]) {
      for (const V of [...SIZES, 130]) {
        const ld = V + (rows === 3 ? 2 : 0);
        const logits = r.f32(rows * ld, -6, 6);
        const targets = Int32Array.from({ length: rows }, (_, i) => (i % 4 === 2 ? -100 : r.int(0, V)));
        for (const eps of [0, 0.1]) {
          for (const reduction of [0, 1]) {
            const { ret } = parity(
              ref,
              wasm,
              `softmaxCrossEntropy ${rows}x${V} eps ${eps} red ${reduction}`,
              { logits, targets, dl: r.f32(rows * ld), loss: new Float32Array(1) },
              (k, p) =>
                k.softmaxCrossEntropy(p.logits!, p.dl!, ld, rows, V, p.targets!, -100, eps, reduction, 0.7, p.loss!),
              ["dl", "loss"],
              1e-6,
              2e-5,
            );
            expect(ret).toBe(-1);
          }
        }
        parity(
          ref,
          wasm,
          `softmaxCrossEntropy ${rows}x${V} loss only`,
          { logits, targets, loss: new Float32Array(1) },
          (k, p) => k.softmaxCrossEntropy(p.logits!, 0, ld, rows, V, p.targets!, -100, 0.2, 0, 1, p.loss!),
          ["loss"],
          1e-6,
          2e-5,
        );
      }
    }
  });

  it("a bad target returns its row and writes nothing; all ignored gives NaN and no gradient", () => {
    for (const rt of [ref, ...wasm]) {
      const logits = Float32Array.from([1, 2, 3, 4, 5, 6]);
      const bad = exec(
        rt,
        { logits, t: Int32Array.from([1, 3]), dl: new Float32Array(6).fill(0.25), loss: new Float32Array(1) },
        (k, p) => k.softmaxCrossEntropy(p.logits!, p.dl!, 3, 2, 3, p.t!, -100, 0, 0, 1, p.loss!),
        ["dl", "loss"],
      );
      expect(bad.ret, rt.backend).toBe(1);
      expect(Array.from(bad.out.dl!)).toEqual(new Array(6).fill(0.25));
      const ign = exec(
        rt,
        { logits, t: Int32Array.from([-100, -100]), dl: new Float32Array(6), loss: new Float32Array(1) },
        (k, p) => k.softmaxCrossEntropy(p.logits!, p.dl!, 3, 2, 3, p.t!, -100, 0.1, 0, 1, p.loss!),
        ["dl", "loss"],
      );
      expect(ign.ret).toBe(-1);
      expect(ign.out.loss![0]).toBeNaN();
      expect(Array.from(ign.out.dl!)).toEqual(new Array(6).fill(0));
    }
  });
});

describe("lstmCellBackward / gruCellBackward", () => {
  it("LSTM: matches ref (dgates, dc in place) with a row stride on dh", () => {
    const r = rng(20);
    for (const batch of [1, 3, 5]) {
      for (const H of SIZES) {
        const ldh = H + 2;
        parity(
          ref,
          wasm,
          `lstmCellBackward b${batch} H${H}`,
          {
            dgates: r.f32(batch * 4 * H),
            dc: r.f32(batch * H),
            dh: r.f32(batch * ldh),
            gates: r.f32(batch * 4 * H, -4, 4),
            cPrev: r.f32(batch * H, -2, 2),
          },
          (k, p) => k.lstmCellBackward(p.dgates!, p.dc!, p.dh!, ldh, p.gates!, p.cPrev!, H, batch),
          ["dgates", "dc"],
          1e-6,
          2e-5,
        );
      }
    }
  });

  it("GRU: matches ref (dgx, dgh written, dhPrev accumulated) with row strides", () => {
    const r = rng(21);
    for (const batch of [1, 3, 5]) {
      for (const H of SIZES) {
        const ldh = H + 1;
        const ldp = H + 3;
        parity(
          ref,
          wasm,
          `gruCellBackward b${batch} H${H}`,
          {
            dgx: r.f32(batch * 3 * H),
            dgh: r.f32(batch * 3 * H),
            dhPrev: r.f32(batch * H),
            dh: r.f32(batch * ldh),
            gx: r.f32(batch * 3 * H, -3, 3),
            gh: r.f32(batch * 3 * H, -3, 3),
            hPrev: r.f32(batch * ldp, -1, 1),
          },
          (k, p) => k.gruCellBackward(p.dgx!, p.dgh!, p.dhPrev!, p.dh!, ldh, p.gx!, p.gh!, p.hPrev!, ldp, H, batch),
          ["dgx", "dgh", "dhPrev"],
          1e-6,
          2e-5,
        );
      }
    }
  });
});
