// MultiheadAttention and scaled dot-product attention against the float64 oracle, on every
// backend: odd sizes, length 1, batch > 1, long sequences, every mask combination.
import { ShapeError, Tensor } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { MultiheadAttention, scaledDotProductAttention } from "../src/attention.js";
import { loadModule, tensorSource } from "../src/state-dict.js";
import { backends, closeTo, rng } from "./helpers.js";
import * as O from "./oracle.js";
import { boolMask, DictBuilder, floatMask } from "./weights.js";

const bks = await backends();

type AttnKind = "none" | "bool" | "f32" | "bool3d" | "f32_3d";
const ATTN: AttnKind[] = ["none", "bool", "f32", "bool3d", "f32_3d"];

interface Case {
  B: number;
  L: number;
  S: number;
  E: number;
  H: number;
  self: boolean;
  kdim?: number;
  vdim?: number;
  bias?: boolean;
}

const SHAPES: Case[] = [
  { B: 2, L: 4, S: 7, E: 12, H: 3, self: false },
  { B: 1, L: 1, S: 1, E: 7, H: 1, self: true },
  { B: 3, L: 9, S: 9, E: 10, H: 2, self: true },
  { B: 2, L: 5, S: 3, E: 8, H: 2, self: false, kdim: 5, vdim: 3 },
  { B: 2, L: 6, S: 6, E: 9, H: 3, self: true, bias: false },
  { B: 1, L: 1, S: 13, E: 6, H: 3, self: false },
];

function run(c: Case, attn: AttnKind, kpm: boolean, causal: boolean, make: (typeof bks)[number]["make"], seed: number) {
  const r = rng(seed);
  const wb = new DictBuilder(seed + 1).mha("", c.E, { kdim: c.kdim, vdim: c.vdim, bias: c.bias });
  const rt = make();
  const mha = loadModule(
    tensorSource(wb.map),
    (s) => new MultiheadAttention(s, { embedDim: c.E, numHeads: c.H, kdim: c.kdim, vdim: c.vdim, bias: c.bias }),
    { runtime: rt },
  );
  const q = r.tensor([c.B, c.L, c.E]);
  const k = c.self ? q : r.tensor([c.B, c.S, c.kdim ?? c.E]);
  const v = c.self ? q : r.tensor([c.B, c.S, c.vdim ?? c.E]);
  const slices = c.B * c.H;
  const am =
    attn === "bool"
      ? boolMask(r, [c.L, c.S])
      : attn === "f32"
        ? floatMask(r, [c.L, c.S])
        : attn === "bool3d"
          ? boolMask(r, [slices, c.L, c.S])
          : attn === "f32_3d"
            ? floatMask(r, [slices, c.L, c.S])
            : undefined;
  const kp = kpm ? boolMask(r, [c.B, c.S], 0.4) : undefined;
  const got = mha.forward(q, k, v, { attnMask: am, keyPaddingMask: kp, isCausal: causal, needWeights: true });
  const want = O.mha(
    wb.record(),
    "",
    q.data,
    k.data,
    v.data,
    c.B,
    c.L,
    c.S,
    c.E,
    c.H,
    {
      attn: am ? { data: am.data, kind: am.dtype === "f32" ? "f32" : "bool", perSlice: am.ndim === 3 } : undefined,
      kpm: kp?.data,
      causal,
    },
    { kdim: c.kdim, vdim: c.vdim, bias: c.bias },
  );
  expect(closeTo(got.output, want.out, [c.B, c.L, c.E])).toBeUndefined();
  expect(closeTo(got.weights!, want.weights, [c.B, c.H, c.L, c.S])).toBeUndefined();
  return { mha, q, k, v, am, kp };
}

describe.each(bks)("MultiheadAttention on $name", ({ make }) => {
  SHAPES.forEach((c, si) => {
    it(`B${c.B} L${c.L} S${c.S} E${c.E} H${c.H}${c.self ? " self" : ""}${c.kdim ? " kdim/vdim" : ""}${c.bias === false ? " no bias" : ""}: every mask combination`, () => {
      let seed = 100 * si;
      for (const attn of ATTN)
        for (const kpm of [false, true])
          for (const causal of c.L === c.S ? [false, true] : [false]) run(c, attn, kpm, causal, make, seed++);
    });
  });

  it("long sequence (L = S = 300)", () => {
    run({ B: 1, L: 300, S: 300, E: 16, H: 2, self: true }, "f32", true, true, make, 7);
  });

  it("weights only when asked; averaged over heads on request; unbatched input", () => {
    const { mha, q, k, v, am, kp } = run(SHAPES[0], "bool", true, false, make, 3);
    const plain = mha.forward(q, k, v, { attnMask: am, keyPaddingMask: kp });
    expect(plain.weights).toBeUndefined();
    const full = mha.forward(q, k, v, { attnMask: am, keyPaddingMask: kp, needWeights: true });
    expect(Array.from(plain.output.data)).toEqual(Array.from(full.output.data));
    const avg = mha.forward(q, k, v, { attnMask: am, keyPaddingMask: kp, needWeights: true, averageAttnWeights: true });
    const { B, L, S, H } = { ...SHAPES[0] };
    const mean = new Float64Array(B * L * S);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < L * S; i++) mean[b * L * S + i] += full.weights!.data[(b * H + h) * L * S + i] / H;
    expect(closeTo(avg.weights!, mean, [B, L, S], 1e-6, 1e-5)).toBeUndefined();
    // unbatched [L, E]
    const q1 = new Tensor(q.data.slice(0, L * 12), [L, 12], "f32");
    const k1 = new Tensor(k.data.slice(0, S * 12), [S, 12], "f32");
    const v1 = new Tensor(v.data.slice(0, S * 12), [S, 12], "f32");
    const u = mha.forward(q1, k1, v1, { attnMask: am, needWeights: true });
    const b0 = mha.forward(q1.reshape([1, L, 12]), k1.reshape([1, S, 12]), v1.reshape([1, S, 12]), {
      attnMask: am,
      needWeights: true,
    });
    expect(u.output.shape).toEqual([L, 12]);
    expect(u.weights!.shape).toEqual([H, L, S]);
    expect(Array.from(u.output.data)).toEqual(Array.from(b0.output.data));
  });

  it("bad masks and inputs give ShapeErrors that name them", () => {
    const c = SHAPES[0];
    const { mha, q, k, v } = run(c, "none", false, false, make, 9);
    const bad = (o: object, re: RegExp) => {
      let err: unknown;
      try {
        mha.forward(q, k, v, o);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ShapeError);
      expect((err as Error).message).toMatch(re);
    };
    bad({ attnMask: boolMask(rng(1), [c.L, c.S + 1]) }, /attn_mask has shape \[4, 8\], expected \[4, 7\]/);
    bad({ attnMask: new Tensor(new Int32Array(c.L * c.S), [c.L, c.S], "i32") }, /attn_mask has dtype i32/);
    bad({ keyPaddingMask: boolMask(rng(1), [c.B, c.S - 1]) }, /key_padding_mask has shape \[2, 6\]/);
    bad({ keyPaddingMask: floatMask(rng(1), [c.B, c.S]) }, /key_padding_mask has dtype f32/);
    expect(() => mha.forward(q, k, rng(2).tensor([c.B, c.S + 1, c.E]))).toThrow(ShapeError);
    expect(() => mha.forward(rng(2).tensor([c.B, c.L, c.E + 1]), k, v)).toThrow(/query has shape/);
  });
});

describe.each(bks)("scaledDotProductAttention on $name", ({ make }) => {
  it("bool keep-mask (true = attend), float mask, causal, 3-d and 4-d", () => {
    const r = rng(42);
    for (const [lead, L, S, dk, dv] of [
      [[2], 5, 5, 8, 8],
      [[2, 3], 4, 7, 6, 5],
      [[1], 1, 1, 3, 2],
    ] as [number[], number, number, number, number][]) {
      const q = r.tensor([...lead, L, dk], 2);
      const k = r.tensor([...lead, S, dk], 2);
      const v = r.tensor([...lead, S, dv]);
      const N = lead.reduce((a, b) => a * b, 1);
      for (const mode of ["none", "keep", "float", "causal"] as const) {
        const block = boolMask(r, [...lead, L, S]);
        const keep = new Tensor(
          block.data.map((x) => 1 - x),
          block.shape,
          "bool",
        );
        const fm = floatMask(r, [L, S]);
        const got = scaledDotProductAttention(q, k, v, {
          attnMask: mode === "keep" ? keep : mode === "float" ? fm : undefined,
          isCausal: mode === "causal",
          runtime: make(),
        });
        // oracle: per slice, as an MHA with identity projections is not available; write it out
        const out = new Float64Array(N * L * dv);
        const w = new Float64Array(N * L * S);
        for (let n = 0; n < N; n++)
          for (let i = 0; i < L; i++) {
            const sc: number[] = [];
            for (let j = 0; j < S; j++) {
              let s = 0;
              for (let p = 0; p < dk; p++) s += q.data[(n * L + i) * dk + p] * k.data[(n * S + j) * dk + p];
              s /= Math.sqrt(dk);
              if (mode === "keep" && !keep.data[(n * L + i) * S + j]) s = Number.NEGATIVE_INFINITY;
              if (mode === "float") s += fm.data[i * S + j];
              if (mode === "causal" && j > i) s = Number.NEGATIVE_INFINITY;
              sc.push(s);
            }
            const mx = Math.max(...sc);
            const e = sc.map((s) => (s === Number.NEGATIVE_INFINITY ? 0 : Math.exp(s - mx)));
            const sum = e.reduce((a, b) => a + b, 0);
            for (let j = 0; j < S; j++) {
              w[(n * L + i) * S + j] = e[j] / sum;
              for (let c = 0; c < dv; c++) out[(n * L + i) * dv + c] += (e[j] / sum) * v.data[(n * S + j) * dv + c];
            }
          }
        expect(closeTo(got.output, out, [...lead, L, dv]), mode).toBeUndefined();
        expect(closeTo(got.weights, w, [...lead, L, S]), mode).toBeUndefined();
      }
    }
  });

  it("mismatched shapes are ShapeErrors", () => {
    const r = rng(1);
    const rt = make();
    expect(() =>
      scaledDotProductAttention(r.tensor([2, 3, 4]), r.tensor([2, 3, 5]), r.tensor([2, 3, 4]), { runtime: rt }),
    ).toThrow(ShapeError);
    expect(() =>
      scaledDotProductAttention(r.tensor([2, 3, 4]), r.tensor([2, 3, 4]), r.tensor([2, 4, 4]), { runtime: rt }),
    ).toThrow(ShapeError);
    expect(() =>
      scaledDotProductAttention(r.tensor([2, 3, 4]), r.tensor([2, 3, 4]), r.tensor([2, 3, 4]), {
        attnMask: boolMask(r, [3, 2]),
        runtime: rt,
      }),
    ).toThrow(/sdpa mask/);
  });
});

// embed_dim 1 once lost its W_q: the packed in_proj blocks were cut as 1-D when one row wide, so
// the query projection of cross-attention (and of the KV-cache path) read a weight with no inputs.
describe.each(bks)("MultiheadAttention of every small width on $name", ({ make }) => {
  for (let E = 1; E <= 9; E++) {
    const heads = [1, 2, 3, 4, 5, 6, 7, 8, 9].filter((h) => E % h === 0);
    it(`embed_dim ${E}, heads ${heads.join("/")}: self and cross attention, batch 3, masks`, () => {
      let seed = 1000 + 50 * E;
      for (const H of heads) {
        run({ B: 3, L: 4, S: 4, E, H, self: true }, "bool", true, true, make, seed++);
        run({ B: 3, L: 4, S: 4, E, H, self: true }, "f32_3d", false, false, make, seed++);
        run({ B: 3, L: 3, S: 5, E, H, self: false }, "f32", true, false, make, seed++);
        run({ B: 2, L: 2, S: 6, E, H, self: false }, "bool3d", false, false, make, seed++);
        run({ B: 2, L: 3, S: 4, E, H, self: false, kdim: 2, vdim: 3 }, "none", true, false, make, seed++);
      }
    });
  }

  it("the attention kernel itself at head widths 1, 2, 3, 5, 7 (sdpa, batch 3, masks) = float64", () => {
    const r = rng(77);
    for (const dk of [1, 2, 3, 5, 7])
      for (const dv of [1, 2, 3, 5, 7]) {
        const [N, L, S] = [3, 4, 6];
        const q = r.tensor([N, L, dk], 2);
        const k = r.tensor([N, S, dk], 2);
        const v = r.tensor([N, S, dv]);
        const fm = floatMask(r, [L, S]);
        for (const causal of [false, true]) {
          const got = scaledDotProductAttention(q, k, v, { attnMask: fm, isCausal: causal, runtime: make() });
          const out = new Float64Array(N * L * dv);
          for (let n = 0; n < N; n++)
            for (let i = 0; i < L; i++) {
              const sc = Array.from({ length: S }, (_, j) => {
                if (causal && j > i) return Number.NEGATIVE_INFINITY;
                let s = 0;
                for (let p = 0; p < dk; p++) s += q.data[(n * L + i) * dk + p] * k.data[(n * S + j) * dk + p];
                return s / Math.sqrt(dk) + fm.data[i * S + j];
              });
              const mx = Math.max(...sc);
              const e = sc.map((s) => (s === Number.NEGATIVE_INFINITY ? 0 : Math.exp(s - mx)));
              const z = e.reduce((a, b) => a + b, 0);
              for (let j = 0; j < S; j++)
                for (let c = 0; c < dv; c++) out[(n * L + i) * dv + c] += (e[j] / z) * v.data[(n * S + j) * dv + c];
            }
          expect(closeTo(got.output, out, [N, L, dv]), `dk ${dk} dv ${dv} causal ${causal}`).toBeUndefined();
        }
      }
  });

  it("embed_dim 1, cross-attention with key = value (one K/V GEMM): hand-computed", () => {
    // q·W_q + b_q etc. with scalar weights; one head of width 1, scale 1
    const map = new Map<string, Tensor>([
      ["in_proj_weight", new Tensor(new Float32Array([2, -1, 0.5]), [3, 1], "f32")],
      ["in_proj_bias", new Tensor(new Float32Array([0.1, 0.2, -0.3]), [3], "f32")],
      ["out_proj.weight", new Tensor(new Float32Array([3]), [1, 1], "f32")],
      ["out_proj.bias", new Tensor(new Float32Array([-0.5]), [1], "f32")],
    ]);
    const mha = loadModule(tensorSource(map), (s) => new MultiheadAttention(s, { embedDim: 1, numHeads: 1 }), {
      runtime: make(),
    });
    const qs = [0.7, -1.2];
    const mem = [
      [0.4, 1.5, -2],
      [1, -0.25, 0.3],
    ];
    const q = new Tensor(new Float32Array(qs), [2, 1, 1], "f32");
    const kv = new Tensor(new Float32Array(mem.flat()), [2, 3, 1], "f32");
    const got = mha.forward(q, kv, kv, { needWeights: true });
    for (let b = 0; b < 2; b++) {
      const qq = 2 * qs[b] + 0.1;
      const ks = mem[b].map((x) => -x + 0.2);
      const vs = mem[b].map((x) => 0.5 * x - 0.3);
      const e = ks.map((k) => Math.exp(qq * k));
      const z = e.reduce((a, c) => a + c, 0);
      const o = e.reduce((a, c, j) => a + (c / z) * vs[j], 0);
      expect(got.output.data[b]).toBeCloseTo(3 * o - 0.5, 5);
      for (let j = 0; j < 3; j++) expect(got.weights!.data[b * 3 + j]).toBeCloseTo(e[j] / z, 5);
    }
  });
});
