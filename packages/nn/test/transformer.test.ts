// Transformer encoder/decoder layers, stacks and nn.Transformer against the float64 oracle on every
// backend: relu/gelu, post-/pre-norm, odd sizes, length 1, batch > 1, every mask combination.
import { ConfigError, ShapeError, Tensor, WeightsError } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { loadModule, tensorSource } from "../src/state-dict.js";
import {
  Transformer,
  TransformerDecoder,
  TransformerDecoderLayer,
  TransformerEncoder,
  TransformerEncoderLayer,
} from "../src/transformer.js";
import { backends, closeTo, rng } from "./helpers.js";
import * as O from "./oracle.js";
import { boolMask, DictBuilder, floatMask } from "./weights.js";

const bks = await backends();

type M = "none" | "bool" | "f32";
const spec = (t: Tensor | undefined): O.MaskSpec["attn"] =>
  t ? { data: t.data, kind: t.dtype === "f32" ? "f32" : "bool", perSlice: t.ndim === 3 } : undefined;
const mk = (r: ReturnType<typeof rng>, m: M, shape: number[]) =>
  m === "bool" ? boolMask(r, shape) : m === "f32" ? floatMask(r, shape) : undefined;

const CFGS: O.LayerCfg[] = [
  { d: 12, H: 3, F: 20, act: "relu", normFirst: false, eps: 1e-5 },
  { d: 10, H: 2, F: 7, act: "gelu", normFirst: true, eps: 1e-5 },
  { d: 9, H: 1, F: 15, act: "gelu", normFirst: false, eps: 1e-6 },
  { d: 8, H: 4, F: 16, act: "relu", normFirst: true, eps: 1e-5 },
  { d: 6, H: 2, F: 5, act: "silu", normFirst: false, eps: 1e-12 },
  { d: 5, H: 5, F: 9, act: "gelu_tanh", normFirst: true, eps: 1e-5 },
];
const opts = (c: O.LayerCfg) => ({
  dModel: c.d,
  nhead: c.H,
  dimFeedforward: c.F,
  activation: c.act,
  normFirst: c.normFirst,
  layerNormEps: c.eps,
});

describe.each(bks)("transformer layers on $name", ({ make }) => {
  CFGS.forEach((c, ci) => {
    it(`encoder layer d${c.d} H${c.H} F${c.F} ${c.act} ${c.normFirst ? "pre" : "post"}-norm: masks × kpm, B=3/S=5 and B=1/S=1`, () => {
      const wb = new DictBuilder(10 + ci).layer("", c.d, c.F, false);
      const layer = loadModule(tensorSource(wb.map), (s) => new TransformerEncoderLayer(s, opts(c)), {
        runtime: make(),
      });
      const r = rng(ci);
      for (const [B, S] of [
        [3, 5],
        [1, 1],
      ])
        for (const m of ["none", "bool", "f32"] as M[])
          for (const kpm of [false, true]) {
            const x = r.tensor([B, S, c.d]);
            const am = mk(r, m, [S, S]);
            const kp = kpm ? boolMask(r, [B, S], 0.4) : undefined;
            const got = layer.forward(x, { srcMask: am, srcKeyPaddingMask: kp });
            const want = O.encoderLayer(wb.record(), "", Array.from(x.data), B, S, c, {
              attn: spec(am),
              kpm: kp?.data,
            });
            expect(closeTo(got, want, [B, S, c.d]), `${m} ${kpm}`).toBeUndefined();
          }
    });

    it(`decoder layer d${c.d} H${c.H} ${c.act} ${c.normFirst ? "pre" : "post"}-norm: all four masks in every combination`, () => {
      const wb = new DictBuilder(20 + ci).layer("", c.d, c.F, true);
      const layer = loadModule(tensorSource(wb.map), (s) => new TransformerDecoderLayer(s, opts(c)), {
        runtime: make(),
      });
      const r = rng(50 + ci);
      const combos: [number, number, number][] = [
        [2, 4, 6],
        [1, 1, 1],
        [3, 1, 4],
      ];
      for (const [B, T, S] of combos)
        for (const tm of ["none", "bool", "f32"] as M[])
          for (const mm of ["none", "bool", "f32"] as M[])
            for (const kp of [0, 1, 2, 3]) {
              const x = r.tensor([B, T, c.d]);
              const mem = r.tensor([B, S, c.d]);
              const tMask = mk(r, tm, [T, T]);
              const mMask = mk(r, mm, [T, S]);
              const tk = kp & 1 ? boolMask(r, [B, T], 0.4) : undefined;
              const mk2 = kp & 2 ? boolMask(r, [B, S], 0.4) : undefined;
              const got = layer.forward(x, mem, {
                tgtMask: tMask,
                memoryMask: mMask,
                tgtKeyPaddingMask: tk,
                memoryKeyPaddingMask: mk2,
              });
              const want = O.decoderLayer(
                wb.record(),
                "",
                Array.from(x.data),
                Array.from(mem.data),
                B,
                T,
                S,
                c,
                { attn: spec(tMask), kpm: tk?.data },
                { attn: spec(mMask), kpm: mk2?.data },
              );
              expect(closeTo(got, want, [B, T, c.d]), `${B}/${T}/${S} ${tm} ${mm} ${kp}`).toBeUndefined();
            }
    });
  });

  it("nn.Transformer (2+3 layers): memory and output with src/tgt/memory masks and paddings; causal flag = causal mask", () => {
    const c = CFGS[1];
    const wb = new DictBuilder(77);
    for (let i = 0; i < 2; i++) wb.layer(`encoder.layers.${i}.`, c.d, c.F, false);
    for (let i = 0; i < 3; i++) wb.layer(`decoder.layers.${i}.`, c.d, c.F, true);
    wb.norm("encoder.norm", c.d).norm("decoder.norm", c.d);
    const model = loadModule(
      tensorSource(wb.map),
      (s) => new Transformer(s, { ...opts(c), numEncoderLayers: 2, numDecoderLayers: 3 }),
      { runtime: make() },
    );
    const r = rng(5);
    const [B, S, T] = [2, 7, 5];
    const src = r.tensor([B, S, c.d]);
    const tgt = r.tensor([B, T, c.d]);
    const srcMask = boolMask(r, [S, S]);
    const causal = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) causal[i * T + j] = Number.NEGATIVE_INFINITY;
    const tgtMask = new Tensor(causal, [T, T], "f32");
    const memMask = floatMask(r, [T, S]);
    const skp = boolMask(r, [B, S], 0.3);
    const tkp = boolMask(r, [B, T], 0.3);
    const got = model.forward(src, tgt, {
      srcMask,
      tgtMask,
      memoryMask: memMask,
      srcKeyPaddingMask: skp,
      tgtKeyPaddingMask: tkp,
      memoryKeyPaddingMask: skp,
    });
    const want = O.transformer(
      wb.record(),
      "",
      Array.from(src.data),
      Array.from(tgt.data),
      B,
      S,
      T,
      2,
      3,
      c,
      { attn: spec(srcMask), kpm: skp.data },
      { attn: spec(tgtMask), kpm: tkp.data },
      { attn: spec(memMask), kpm: skp.data },
    );
    expect(closeTo(got.memory, want.memory, [B, S, c.d])).toBeUndefined();
    expect(closeTo(got.output, want.output, [B, T, c.d])).toBeUndefined();
    const flag = model.forward(src, tgt, {
      srcMask,
      tgtIsCausal: true,
      memoryMask: memMask,
      srcKeyPaddingMask: skp,
      tgtKeyPaddingMask: tkp,
      memoryKeyPaddingMask: skp,
    });
    expect(closeTo(flag.output, got.output.data, [B, T, c.d], 1e-6, 1e-5)).toBeUndefined();
  });

  it("encoder/decoder stacks without a final norm; long sequence S = 256", () => {
    const c = CFGS[0];
    const wb = new DictBuilder(88);
    for (let i = 0; i < 2; i++) wb.layer(`layers.${i}.`, c.d, c.F, false);
    const enc = loadModule(tensorSource(wb.map), (s) => new TransformerEncoder(s, { ...opts(c), numLayers: 2 }), {
      runtime: make(),
    });
    const r = rng(6);
    const x = r.tensor([1, 256, c.d]);
    const kp = boolMask(r, [1, 256], 0.2);
    const got = enc.forward(x, { srcKeyPaddingMask: kp });
    let want = Array.from(x.data);
    for (let i = 0; i < 2; i++) want = O.encoderLayer(wb.record(), `layers.${i}.`, want, 1, 256, c, { kpm: kp.data });
    expect(closeTo(got, want, [1, 256, c.d])).toBeUndefined();

    const wd = new DictBuilder(89);
    for (let i = 0; i < 3; i++) wd.layer(`layers.${i}.`, c.d, c.F, true);
    const dec = loadModule(tensorSource(wd.map), (s) => new TransformerDecoder(s, { ...opts(c), numLayers: 3 }), {
      runtime: make(),
    });
    const t = r.tensor([2, 3, c.d]);
    const mem = r.tensor([2, 4, c.d]);
    let wantD = Array.from(t.data);
    for (let i = 0; i < 3; i++)
      wantD = O.decoderLayer(
        wd.record(),
        `layers.${i}.`,
        wantD,
        Array.from(mem.data),
        2,
        3,
        4,
        c,
        { causal: true },
        {},
      );
    expect(closeTo(dec.forward(t, mem, { tgtIsCausal: true }), wantD, [2, 3, c.d])).toBeUndefined();
  });

  it("attention weights on request from layers, stacks and nn.Transformer (outputs unchanged)", () => {
    const r = rng(31);
    for (const c of [CFGS[0], CFGS[1]]) {
      const [B, S, T] = [2, 5, 3];
      const x = r.tensor([B, S, c.d]);
      const kp = boolMask(r, [B, S], 0.3);
      const am = floatMask(r, [S, S]);
      // encoder layer: weights of MHA over x (post-norm) or norm1(x) (pre-norm)
      const we = new DictBuilder(40).layer("", c.d, c.F, false);
      const enc = loadModule(tensorSource(we.map), (s) => new TransformerEncoderLayer(s, opts(c)), { runtime: make() });
      const w = we.record();
      const inp = c.normFirst
        ? O.layerNorm(x.data, B * S, c.d, w["norm1.weight"], w["norm1.bias"], c.eps)
        : Array.from(x.data);
      const got = enc.forward(x, { srcMask: am, srcKeyPaddingMask: kp, needWeights: true });
      const want = O.mha(w, "self_attn.", inp, inp, inp, B, S, S, c.d, c.H, { attn: spec(am), kpm: kp.data });
      expect(closeTo(got.weights, want.weights, [B, c.H, S, S])).toBeUndefined();
      expect(Array.from(got.output.data)).toEqual(
        Array.from(enc.forward(x, { srcMask: am, srcKeyPaddingMask: kp }).data),
      );
      // decoder layer: self weights over tgt, cross weights over the first sub-block's output and memory
      const wd = new DictBuilder(41).layer("", c.d, c.F, true);
      const dec = loadModule(tensorSource(wd.map), (s) => new TransformerDecoderLayer(s, opts(c)), { runtime: make() });
      const v = wd.record();
      const t = r.tensor([B, T, c.d]);
      const gd = dec.forward(t, x, { tgtIsCausal: true, memoryKeyPaddingMask: kp, needWeights: true });
      const rows = B * T;
      const ln = (k: string, a: ArrayLike<number>) =>
        O.layerNorm(a, rows, c.d, v[`${k}.weight`], v[`${k}.bias`], c.eps);
      const t0 = c.normFirst ? ln("norm1", t.data) : Array.from(t.data);
      const sa = O.mha(v, "self_attn.", t0, t0, t0, B, T, T, c.d, c.H, { causal: true });
      const y1 = Array.from(t.data, (a, i) => a + sa.out[i]);
      const q2 = c.normFirst ? ln("norm2", y1) : ln("norm1", y1);
      const ca = O.mha(v, "multihead_attn.", q2, x.data, x.data, B, T, S, c.d, c.H, { kpm: kp.data });
      expect(closeTo(gd.weights.selfAttn, sa.weights, [B, c.H, T, T])).toBeUndefined();
      expect(closeTo(gd.weights.crossAttn, ca.weights, [B, c.H, T, S])).toBeUndefined();
    }
    // nn.Transformer: the per-layer weights equal those of its stacks run on their own
    const c = CFGS[2];
    const wb = new DictBuilder(42);
    for (let i = 0; i < 2; i++)
      wb.layer(`encoder.layers.${i}.`, c.d, c.F, false).layer(`decoder.layers.${i}.`, c.d, c.F, true);
    wb.norm("encoder.norm", c.d).norm("decoder.norm", c.d);
    const model = loadModule(
      tensorSource(wb.map),
      (s) => new Transformer(s, { ...opts(c), numEncoderLayers: 2, numDecoderLayers: 2 }),
      { runtime: make() },
    );
    const src = r.tensor([1, 4, c.d]);
    const tgt = r.tensor([1, 3, c.d]);
    const all = model.forward(src, tgt, { tgtIsCausal: true, needWeights: true });
    const plain = model.forward(src, tgt, { tgtIsCausal: true });
    expect(plain.weights).toBeUndefined();
    expect(Array.from(all.output.data)).toEqual(Array.from(plain.output.data));
    const e = model.encoder.forward(src, { needWeights: true });
    const d = model.decoder.forward(tgt, e.output, { tgtIsCausal: true, needWeights: true });
    expect(all.weights!.encoder.length).toBe(2);
    for (let i = 0; i < 2; i++) {
      expect(Array.from(all.weights!.encoder[i].data)).toEqual(Array.from(e.weights[i].data));
      expect(Array.from(all.weights!.decoder[i].selfAttn.data)).toEqual(Array.from(d.weights[i].selfAttn.data));
      expect(Array.from(all.weights!.decoder[i].crossAttn.data)).toEqual(Array.from(d.weights[i].crossAttn.data));
    }
    // rows of attention weights sum to 1
    for (let i = 0; i < c.H * 3; i++) {
      let s = 0;
      for (let j = 0; j < 4; j++) s += all.weights!.decoder[1].crossAttn.data[i * 4 + j];
      expect(s).toBeCloseTo(1, 5);
    }
  });

  it("weights that do not fit: one WeightsError listing every missing, unexpected and mis-shaped tensor", () => {
    const c = CFGS[0];
    const wb = new DictBuilder(1).layer("", c.d, c.F, false);
    wb.map.delete("linear1.bias");
    wb.map.delete("self_attn.out_proj.weight");
    wb.add("extra.weight", [2]);
    wb.add("norm2.bias", [c.d + 1]);
    let err: unknown;
    try {
      loadModule(tensorSource(wb.map), (s) => new TransformerEncoderLayer(s, opts(c)), { runtime: make() });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeightsError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/2 missing, 1 wrong shape or dtype, 1 unexpected/);
    expect(msg).toMatch(/missing "self_attn\.out_proj\.weight" \[12, 12\]/);
    expect(msg).toMatch(/missing "linear1\.bias" \[20\]/);
    expect(msg).toMatch(/unexpected "extra\.weight"/);
    expect(msg).toMatch(/"norm2\.bias" has shape \[13\], the config needs \[12\]/);
    expect((err as WeightsError).names.sort()).toEqual([
      "extra.weight",
      "linear1.bias",
      "norm2.bias",
      "self_attn.out_proj.weight",
    ]);
  });

  it("an unknown activation: ConfigError naming the field", () => {
    const wb = new DictBuilder(4).layer("", 12, 20, false);
    const build = (activation: string) => () =>
      loadModule(
        tensorSource(wb.map),
        (s) => new TransformerEncoderLayer(s, { ...opts(CFGS[0]), activation } as never),
        {
          runtime: make(),
        },
      );
    expect(build("swishy")).toThrow(ConfigError);
    expect(build("swishy")).toThrow(/activation.*"swishy"/);
  });

  it("inputs of the wrong shape: ShapeError naming the tensor", () => {
    const c = CFGS[0];
    const wb = new DictBuilder(2).layer("", c.d, c.F, true);
    const layer = loadModule(tensorSource(wb.map), (s) => new TransformerDecoderLayer(s, opts(c)), { runtime: make() });
    const r = rng(3);
    expect(() => layer.forward(r.tensor([2, 3, c.d]), r.tensor([3, 4, c.d]))).toThrow(/memory has shape \[3, 4, 12\]/);
    expect(() => layer.forward(r.tensor([2, 3, c.d + 1]), r.tensor([2, 4, c.d]))).toThrow(ShapeError);
    expect(() =>
      layer.forward(r.tensor([2, 3, c.d]), r.tensor([2, 4, c.d]), { memoryMask: boolMask(r, [3, 3]) }),
    ).toThrow(/memory_mask has shape \[3, 3\], expected \[3, 4\]/);
    expect(() =>
      layer.forward(r.tensor([2, 3, c.d]), r.tensor([2, 4, c.d]), { tgtKeyPaddingMask: boolMask(r, [2, 4]) }),
    ).toThrow(/tgt_key_padding_mask/);
  });
});
