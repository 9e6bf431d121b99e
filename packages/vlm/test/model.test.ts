/**
 * The whole model against the independent f64 implementation of FORMAT.md §6.13 (test/oracle.ts),
 * on tiny random checkpoints with odd sizes: batch 1 and 2, cross_attention_frequency 1/2/3,
 * empty prefix or suffix, text-branch weights present, on the reference and the wasm backends.
 */
import { createRefRuntime, createRuntime, init, type Runtime, Tensor } from "@wasmformer/core";
import { argmax } from "@wasmformer/llm";
import { beforeAll, describe, expect, test } from "vitest";
import { VisionLanguageModel } from "../src/vlm-model.js";
import { weightSource } from "../src/weights.js";
import { cat, excess, makeVlm, randomPixels, refVlm, type VlmSpec } from "./oracle.js";

beforeAll(async () => {
  await init();
});

interface Case {
  name: string;
  spec: VlmSpec;
  B: number;
  prefix: number[][];
  suffix: number[][];
  n: number;
}

const cases: Case[] = [
  {
    name: "freq 1, batch 1, P 2 S 3",
    spec: { freq: 1, Lq: 2, seed: 1 },
    B: 1,
    prefix: [[4, 7]],
    suffix: [[1, 2, 3]],
    n: 5,
  },
  {
    name: "freq 2, batch 2, odd widths",
    spec: { freq: 2, Lq: 3, Dq: 10, Hq: 5, Dv: 9, Hv: 3, Iv: 13, Et: 15, Ht: 3, Q: 5, V: 31, seed: 2 },
    B: 2,
    prefix: [
      [3, 0, 9],
      [30, 2, 2],
    ],
    suffix: [
      [5, 6],
      [11, 12],
    ],
    n: 4,
  },
  {
    name: "freq 3, 4 layers, P = 0, text branch ignored",
    spec: { freq: 3, Lq: 4, Q: 4, seed: 3, textBranch: true, image: 15, patch: 5 },
    B: 2,
    prefix: [[], []],
    suffix: [
      [8, 1, 2, 3],
      [9, 9, 9, 9],
    ],
    n: 3,
  },
  {
    name: "freq 2, S = 0, one query",
    spec: { freq: 2, Lq: 2, Q: 1, seed: 4 },
    B: 1,
    prefix: [[10, 11, 12, 13]],
    suffix: [[]],
    n: 6,
  },
];

const backends: [string, () => Runtime][] = [
  ["ref", () => createRefRuntime()],
  ["wasm", () => createRuntime()],
];

describe.each(backends)("VisionLanguageModel vs the f64 oracle (%s)", (_name, runtime) => {
  test.each(cases)("$name", async (c) => {
    const tiny = makeVlm(c.spec);
    const model = await VisionLanguageModel.fromPretrained(
      { config: tiny.config, weights: weightSource(tiny.tensors) },
      { maxBatch: c.B, runtime },
    );
    const size = (c.spec.image ?? 12) as number;
    const pixels = randomPixels(c.B, size, 100 + (c.spec.seed ?? 0));
    const ref = refVlm(tiny, pixels, c.prefix, c.suffix, c.n);
    expect(ref.margin).toBeGreaterThan(1e-3); // greedy choices are not near-ties: the ids must match exactly

    const out = await model.forward(pixels, { prefixIds: c.prefix, suffixIds: c.suffix });
    const Q = tiny.config.num_query_tokens as number;
    const T = c.prefix[0]!.length + Q + c.suffix[0]!.length;
    const tc = tiny.config.text_config as Record<string, number>;
    expect(out.visionLastHiddenState.shape[0]).toBe(c.B);
    expect(out.qformerLastHiddenState!.shape).toEqual([
      c.B,
      Q,
      (tiny.config.qformer_config as Record<string, number>).hidden_size,
    ]);
    expect(out.imageEmbeds.shape).toEqual([c.B, Q, tc.n_embd]);
    expect(out.inputsEmbeds.shape).toEqual([c.B, T, tc.n_embd]);
    expect(out.logits.shape).toEqual([c.B, T, tc.vocab_size]);
    expect(excess(out.visionLastHiddenState.data, cat(ref.vision))).toBeLessThanOrEqual(0);
    expect(excess(out.qformerLastHiddenState!.data, cat(ref.qformer))).toBeLessThanOrEqual(0);
    expect(excess(out.imageEmbeds.data, cat(ref.projected))).toBeLessThanOrEqual(0);
    expect(excess(out.inputsEmbeds.data, cat(ref.inputsEmbeds))).toBeLessThanOrEqual(0);
    expect(excess(out.logits.data, cat(ref.logits))).toBeLessThanOrEqual(0);

    // greedy through the KV cache (the cache holds the prompt after forward)
    const lm = model.languageModel;
    const V = tc.vocab_size!;
    let last: Float32Array = new Float32Array(c.B * V);
    for (let b = 0; b < c.B; b++) last.set(out.logits.data.subarray((b * T + T - 1) * V, (b * T + T) * V), b * V);
    const gen: number[][] = Array.from({ length: c.B }, () => []);
    for (let s = 0; s < c.n; s++) {
      const next: number[] = [];
      for (let b = 0; b < c.B; b++) {
        const row = last.subarray(b * V, (b + 1) * V);
        expect(excess(row, ref.stepLogits[b]![s]!)).toBeLessThanOrEqual(0);
        next.push(argmax(row));
        gen[b]!.push(next[b]!);
      }
      if (s + 1 < c.n) last = lm.decode(next).logits!.data as Float32Array;
    }
    expect(gen).toEqual(ref.generated);

    // the generation API (greedy, no early stop) gives the same tokens
    const r = await model.generateAll(
      pixels,
      { prefixIds: c.prefix, suffixIds: c.suffix },
      { maxNewTokens: c.n, stopIds: [] },
    );
    expect(r.ids).toEqual(ref.generated);
  });

  test("an image batch of 1 shared by several prompt rows; pixel values of another size (interpolated positions)", async () => {
    const tiny = makeVlm({ seed: 9, freq: 1, Lq: 2 });
    const model = await VisionLanguageModel.fromPretrained(
      { config: tiny.config, weights: weightSource(tiny.tensors) },
      { maxBatch: 2, runtime },
    );
    const px = randomPixels(1, 12, 5);
    const f = model.encodePixels(px);
    const embeds = model.inputsEmbeds(
      f,
      [[1], [2]],
      [
        [3, 4],
        [5, 6],
      ],
    );
    expect(embeds.shape).toEqual([2, 1 + 3 + 2, 14]);
    const E = 14;
    // rows 1…3 of both prompts are the same image embeddings
    expect(Array.from(embeds.data.subarray(E, 4 * E))).toEqual(Array.from(embeds.data.subarray(7 * E, 10 * E)));
    expect(Array.from(embeds.data.subarray(E, 4 * E))).toEqual(Array.from(f.imageEmbeds.data));
    // 16x16 pixels → a 4x4 grid: 17 image tokens for the Q-Former (positions interpolated by the ViT)
    const g = model.encodePixels(randomPixels(1, 16, 6));
    expect(g.visionLastHiddenState.shape).toEqual([1, 17, 12]);
    expect(g.imageEmbeds.shape).toEqual([1, 3, 14]);
  });
});

test("ref and wasm agree on a larger model (Q-Former 64 wide, 8 heads, 16 queries)", async () => {
  const spec: VlmSpec = {
    Dv: 48,
    Hv: 4,
    Iv: 96,
    image: 32,
    patch: 8,
    Dq: 64,
    Hq: 8,
    Iq: 128,
    Lq: 4,
    freq: 2,
    Q: 16,
    Et: 64,
    Ht: 4,
    V: 100,
    seed: 21,
  };
  const tiny = makeVlm(spec);
  const px = randomPixels(2, 32, 3);
  const outs = [];
  for (const rt of [() => createRefRuntime(), () => createRuntime()]) {
    const m = await VisionLanguageModel.fromPretrained(
      { config: tiny.config, weights: weightSource(tiny.tensors) },
      { maxBatch: 2, runtime: rt },
    );
    outs.push(
      await m.forward(px, {
        prefixIds: [
          [1, 2],
          [3, 4],
        ],
        suffixIds: [[5], [6]],
      }),
    );
  }
  const [a, b] = outs as [(typeof outs)[0], (typeof outs)[0]];
  expect(excess(b.qformerLastHiddenState!.data, a.qformerLastHiddenState!.data)).toBeLessThanOrEqual(0);
  expect(excess(b.logits.data, a.logits.data)).toBeLessThanOrEqual(0);
  expect(b.logits).toBeInstanceOf(Tensor);
});
