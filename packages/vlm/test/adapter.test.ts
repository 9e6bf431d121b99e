/**
 * The adapter on its own (vision features + any embedding function → the projected prefix and
 * `inputs_embeds`), and the LLaVA projector (linear – GELU – linear) as an alternative adapter, in
 * a model composed from parts; checked against plain f64 code.
 */
import {
  createRefRuntime,
  createRuntime,
  erf,
  InputError,
  init,
  type Runtime,
  ShapeError,
  Tensor,
  WeightsError,
} from "@wasmformer/core";
import { GPT2LMHeadModel } from "@wasmformer/llm";
import { normalGen } from "@wasmformer/test-utils/prng";
import { ViTModel } from "@wasmformer/vit";
import { beforeAll, describe, expect, test, vi } from "vitest";
import { imagePrompt, QFormerAdapter, spliceImageEmbeds } from "../src/adapter.js";
import { LinearProjector, LlavaProjector } from "../src/projector.js";
import { Blip2QFormerModel } from "../src/qformer.js";
import { VisionLanguageModel } from "../src/vlm-model.js";
import { prefixView, weightSource } from "../src/weights.js";
import { excess, makeVlm, randomPixels, refGpt2, refQFormer, refVit } from "./oracle.js";

beforeAll(async () => {
  await init();
});

const backends: [string, () => Runtime][] = [
  ["ref", () => createRefRuntime()],
  ["wasm", () => createRuntime()],
];

function randTensor(shape: number[], seed: number, std = 1): Tensor<"f32"> {
  const n = normalGen(seed);
  const d = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < d.length; i++) d[i] = std * n();
  return new Tensor(d, shape);
}

/** A custom "language model" embedding: id → a fixed pseudo-random vector of width E. */
function tableEmbed(E: number) {
  const vec = (id: number) => Array.from({ length: E }, (_, e) => Math.sin(id * 1.7 + e * 0.3));
  const fn = vi.fn((ids: Int32Array[]) => {
    const n = ids[0]!.length;
    const out = new Float32Array(ids.length * n * E);
    ids.forEach((r, b) => {
      r.forEach((id, t) => {
        out.set(vec(id), (b * n + t) * E);
      });
    });
    return new Tensor(out, [ids.length, n, E]);
  });
  return { fn, vec };
}

describe.each(backends)("adapters (%s)", (_n, runtime) => {
  test("Q-Former adapter alone: vision features + a custom embedding function → inputs_embeds", async () => {
    const tiny = makeVlm({ Dv: 11, Dq: 12, Hq: 3, Q: 4, Et: 9, freq: 2, Lq: 3, seed: 41 });
    const src = weightSource(tiny.tensors);
    const qformer = await Blip2QFormerModel.fromWeights(tiny.config.qformer_config as Record<string, unknown>, 4, src, {
      runtime: runtime(),
    });
    const projection = await LinearProjector.fromWeights(src, { runtime: runtime() });
    const adapter = new QFormerAdapter(qformer, projection);
    expect([adapter.inputDim, adapter.outputDim, adapter.numQueryTokens]).toEqual([11, 9, 4]);

    const B = 2;
    const Timg = 7; // features from any encoder: an arbitrary token count
    const feats = randTensor([B, Timg, 11], 5);
    const { fn, vec } = tableEmbed(9);
    const prefixIds = [
      [5, 6],
      [7, 8],
    ];
    const suffixIds = [[1], [2]];
    const r = imagePrompt(adapter, feats, { prefixIds, suffixIds, embed: fn });
    expect(r.inputsEmbeds.shape).toEqual([B, 2 + 4 + 1, 9]);
    expect(fn).toHaveBeenCalledTimes(2);
    const w = (n: string) => tiny.tensors.get(n)!.data as Float32Array;
    for (let b = 0; b < B; b++) {
      const f64 = Float64Array.from(feats.data.subarray(b * Timg * 11, (b + 1) * Timg * 11));
      const q = refQFormer(tiny, f64, Timg);
      const proj = new Float64Array(4 * 9);
      for (let i = 0; i < 4; i++)
        for (let o = 0; o < 9; o++) {
          let s = w("language_projection.bias")[o]!;
          for (let c = 0; c < 12; c++) s += q[i * 12 + c]! * w("language_projection.weight")[o * 12 + c]!;
          proj[i * 9 + o] = s;
        }
      const row = r.inputsEmbeds.data.subarray(b * 7 * 9, (b + 1) * 7 * 9);
      expect(excess(row.subarray(0, 9), vec(prefixIds[b]![0]!))).toBeLessThanOrEqual(0);
      expect(excess(row.subarray(9, 18), vec(prefixIds[b]![1]!))).toBeLessThanOrEqual(0);
      expect(excess(row.subarray(18, 54), proj)).toBeLessThanOrEqual(0);
      expect(excess(row.subarray(54, 63), vec(suffixIds[b]![0]!))).toBeLessThanOrEqual(0);
      expect(excess(r.qformerLastHiddenState!.data.subarray(b * 48, (b + 1) * 48), q)).toBeLessThanOrEqual(0);
      expect(Array.from(r.imageEmbeds.data.subarray(b * 36, (b + 1) * 36))).toEqual(Array.from(row.subarray(18, 54)));
    }
    // an empty part does not call the embedding function
    fn.mockClear();
    const onlyImage = imagePrompt(adapter, feats, { prefixIds: [[], []], suffixIds: [[], []], embed: fn });
    expect(fn).not.toHaveBeenCalled();
    expect(Array.from(onlyImage.inputsEmbeds.data)).toEqual(Array.from(onlyImage.imageEmbeds.data));
    // an embedding function of the wrong width, wrong features
    expect(() =>
      spliceImageEmbeds({
        imageEmbeds: r.imageEmbeds,
        prefixIds: [[1], [2]],
        suffixIds: [[], []],
        embed: tableEmbed(8).fn,
      }),
    ).toThrow(/returned \[2, 1, 8\].*expected \[2, 1, 9\]/);
    expect(() => adapter.project(randTensor([1, 3, 10], 1))).toThrow(ShapeError);
    expect(() => adapter.project(new Tensor(new Int32Array(11), [1, 1, 11], "i32"))).toThrow(InputError);
  });

  test("LLaVA projector: linear – GELU – linear on the patch tokens, composed with ViT and GPT-2", async () => {
    const tiny = makeVlm({ Dv: 12, Et: 10, V: 23, seed: 51 });
    const m = new Map(tiny.tensors);
    m.set("multi_modal_projector.linear_1.weight", randTensor([10, 12], 1, 0.3));
    m.set("multi_modal_projector.linear_1.bias", randTensor([10], 2, 0.1));
    m.set("multi_modal_projector.linear_2.weight", randTensor([10, 10], 3, 0.3));
    m.set("multi_modal_projector.linear_2.bias", randTensor([10], 4, 0.1));
    const src = weightSource(m);
    const llava = await LlavaProjector.fromWeights(src, { runtime: runtime() });
    expect([llava.inputDim, llava.outputDim, llava.visionFeatureSelectStrategy]).toEqual([12, 10, "default"]);
    const vision = await ViTModel.fromPretrained(
      { config: tiny.config.vision_config, weights: prefixView(src, "vision_model.") as never },
      { runtime: runtime() },
    );
    const lm = await GPT2LMHeadModel.fromWeights(
      tiny.config.text_config as Record<string, unknown>,
      prefixView(src, "language_model."),
      {
        runtime: runtime(),
      },
    );
    const vlm = new VisionLanguageModel({ vision, adapter: llava, languageModel: lm });
    const px = randomPixels(1, 12, 8);
    const out = await vlm.forward(px, { prefixIds: [[3, 4]], suffixIds: [[5]] });
    // f64: drop CLS, linear_1, exact GELU, linear_2; splice; GPT-2
    const img = refVit(tiny, px.data as Float32Array); // (10, 12): CLS + 9 patches
    const w = (n: string) => m.get(n)!.data as Float32Array;
    const lin = (x: Float64Array, n: number, i: number, o: number, W: Float32Array, b: Float32Array) => {
      const y = new Float64Array(n * o);
      for (let r = 0; r < n; r++)
        for (let c = 0; c < o; c++) {
          let s = b[c]!;
          for (let k = 0; k < i; k++) s += x[r * i + k]! * W[c * i + k]!;
          y[r * o + c] = s;
        }
      return y;
    };
    const h1 = lin(
      img.subarray(12),
      9,
      12,
      10,
      w("multi_modal_projector.linear_1.weight"),
      w("multi_modal_projector.linear_1.bias"),
    ).map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
    const proj = lin(
      h1,
      9,
      10,
      10,
      w("multi_modal_projector.linear_2.weight"),
      w("multi_modal_projector.linear_2.bias"),
    );
    expect(out.imageEmbeds.shape).toEqual([1, 9, 10]);
    expect(out.qformerLastHiddenState).toBeUndefined();
    expect(excess(out.imageEmbeds.data, proj)).toBeLessThanOrEqual(0);
    const wte = w("language_model.transformer.wte.weight");
    const emb = new Float64Array(12 * 10);
    emb.set(wte.subarray(30, 40), 0);
    emb.set(wte.subarray(40, 50), 10);
    emb.set(proj, 20);
    emb.set(wte.subarray(50, 60), 110);
    expect(excess(out.inputsEmbeds.data, emb)).toBeLessThanOrEqual(0);
    expect(excess(out.logits.data, refGpt2(tiny, emb, 12))).toBeLessThanOrEqual(0);

    // "full" keeps CLS: 10 image embeddings
    const full = await LlavaProjector.fromWeights(src, { runtime: runtime(), visionFeatureSelectStrategy: "full" });
    expect(full.project(out.visionLastHiddenState).imageEmbeds.shape).toEqual([1, 10, 10]);
  });

  test("projector typed errors", async () => {
    const m = new Map<string, Tensor>([
      ["multi_modal_projector.linear_1.weight", randTensor([10, 12], 1)],
      ["multi_modal_projector.linear_1.bias", randTensor([10], 2)],
      ["multi_modal_projector.linear_2.weight", randTensor([10, 9], 3)],
    ]);
    const e = await LlavaProjector.fromWeights(weightSource(m), { runtime: runtime() }).catch((x) => x);
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.names).toEqual(["multi_modal_projector.linear_2.bias", "multi_modal_projector.linear_2.weight"]);
    expect(e.message).toMatch(
      /"multi_modal_projector.linear_2.weight" has shape \[10, 9\], the config needs \[10, 10\]/,
    );
    await expect(
      LlavaProjector.fromWeights(weightSource(m), { projectorHiddenAct: "swiglu", runtime: runtime() }),
    ).rejects.toThrow(/projector_hidden_act/);
    await expect(LinearProjector.fromWeights(weightSource(new Map()), { runtime: runtime() })).rejects.toThrow(
      /missing "language_projection.weight"/,
    );
  });
});

describe("Q-Former typed errors", () => {
  test("all missing, wrong-shaped and unexpected tensors are listed together", async () => {
    const tiny = makeVlm({ freq: 2, Lq: 3, seed: 61 });
    const m = new Map(tiny.tensors);
    m.delete("qformer.layernorm.bias");
    m.delete("qformer.encoder.layer.2.crossattention.attention.key.weight");
    m.set("qformer.encoder.layer.1.output_query.dense.weight", Tensor.zeros([10, 13]));
    m.set("qformer.encoder.layer.1.crossattention.attention.query.weight", Tensor.zeros([10, 10])); // layer 1 has none (f = 2)
    m.set("qformer.encoder.layer.0.intermediate.dense.weight", Tensor.zeros([14, 10])); // text branch: ignored
    const e = await Blip2QFormerModel.fromWeights(
      tiny.config.qformer_config as Record<string, unknown>,
      3,
      weightSource(m),
    ).catch((x) => x);
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.names).toEqual([
      "qformer.layernorm.bias",
      "qformer.encoder.layer.2.crossattention.attention.key.weight",
      "qformer.encoder.layer.1.output_query.dense.weight",
      "qformer.encoder.layer.1.crossattention.attention.query.weight",
    ]);
    expect(e.message).toMatch(/has shape \[10, 13\], the config needs \[10, 14\]/);
  });

  test("bad arguments", async () => {
    const tiny = makeVlm({ seed: 62 });
    const cfg = tiny.config.qformer_config as Record<string, unknown>;
    await expect(Blip2QFormerModel.fromWeights(cfg, 0, weightSource(tiny.tensors))).rejects.toThrow(InputError);
    await expect(
      Blip2QFormerModel.fromWeights({ ...cfg, hidden_act: "mish" }, 3, weightSource(tiny.tensors)),
    ).rejects.toThrow(/hidden_act/);
    const q = await Blip2QFormerModel.fromWeights(cfg, 3, weightSource(tiny.tensors));
    expect(() => q.forward(Tensor.zeros([1, 0, 12]))).toThrow(/no tokens/);
    expect(() => q.forward(Tensor.zeros([2, 4]))).toThrow(ShapeError);
    expect(q.forward(Tensor.zeros([2, 4, 12])).shape).toEqual([2, 3, 10]);
  });
});
