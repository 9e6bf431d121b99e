/**
 * One VisionLanguageModel used from several places at once (each generation in a KV context of its
 * own: the same answers as one after another), `dispose()` of the model and of its parts, and
 * typed errors for bad token ids and generation options.
 */
import { createRuntime, DisposedError, InputError, init, type Runtime, Tensor } from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import { LinearProjector, LlavaProjector } from "../src/projector.js";
import { Blip2QFormerModel } from "../src/qformer.js";
import { VisionLanguageModel, type VLMGenerateOptions, type VLMGenerationResult } from "../src/vlm-model.js";
import { weightSource } from "../src/weights.js";
import { makeVlm, randomPixels, type TinyVlm } from "./oracle.js";

const V = 30;
let tiny: TinyVlm;
const load = (runtime?: () => Runtime) =>
  VisionLanguageModel.fromPretrained(
    { config: tiny.config, weights: weightSource(tiny.tensors) },
    { maxBatch: 2, ...(runtime ? { runtime } : {}) },
  );

beforeAll(async () => {
  await init();
  tiny = makeVlm({ V, Pos: 96, seed: 61, freq: 1, Lq: 2 });
});

const q1 = { prefixIds: [[1, 2]], suffixIds: [[3, 4, 5]] };
const q2 = {
  prefixIds: [[6], [7]],
  suffixIds: [
    [8, 9],
    [10, 11],
  ],
};

describe("concurrent use of one VisionLanguageModel", () => {
  for (const mode of ["greedy", "sampled"] as const) {
    const o = (seed: number): VLMGenerateOptions =>
      mode === "greedy"
        ? { maxNewTokens: 10, stopIds: [] }
        : { maxNewTokens: 10, stopIds: [], temperature: 1.2, topK: 8, seed };

    test(`Promise.all of two generateAll, and alternately stepped generators = one after another (${mode})`, async () => {
      const m = await load();
      const img1 = randomPixels(1, 12, 1);
      const img2 = randomPixels(2, 12, 2);
      const seq = [await m.generateAll(img1, q1, o(1)), await m.generateAll(img2, q2, o(2))];
      expect(await Promise.all([m.generateAll(img1, q1, o(1)), m.generateAll(img2, q2, o(2))])).toEqual(seq);

      const its = [m.generate(img1, q1, o(1)), m.generate(img2, q2, o(2))];
      const got: (VLMGenerationResult | undefined)[] = [undefined, undefined];
      while (!got[0] || !got[1]) {
        for (let i = 0; i < 2; i++) {
          if (got[i]) continue;
          const r = await its[i]!.next();
          if (r.done) got[i] = r.value;
        }
      }
      expect(got).toEqual(seq);
    });
  }

  test("forward() and the language model between two steps of a generation leave both intact", async () => {
    const m = await load();
    const img = randomPixels(1, 12, 3);
    const other = randomPixels(1, 12, 4);
    const want = await m.generateAll(img, q1, { maxNewTokens: 8, stopIds: [] });
    const wantLogits = (await m.forward(other, q1)).logits.data.slice();
    const wantLm = await m.languageModel.generateAll([1, 2, 3], { maxNewTokens: 5, stopIds: [] });

    const it = m.generate(img, q1, { maxNewTokens: 8, stopIds: [] });
    let step = 0;
    for (;;) {
      const r = await it.next();
      if (r.done) {
        expect(r.value).toEqual(want);
        break;
      }
      if (step === 1) expect((await m.forward(other, q1)).logits.data).toEqual(wantLogits);
      if (step === 3)
        expect(await m.languageModel.generateAll([1, 2, 3], { maxNewTokens: 5, stopIds: [] })).toEqual(wantLm);
      step++;
    }
    // forward() left its prompt in the language model's own cache: decode continues it
    expect(m.languageModel.cacheLength).toBe(wantLogits.length / V);
  });

  test("breaking out of a generation early ends the language model's generation too", async () => {
    const m = await load();
    const img = randomPixels(1, 12, 5);
    const want = await m.generateAll(img, q1, { maxNewTokens: 6, stopIds: [] });
    for await (const c of m.generate(img, q1, { maxNewTokens: 6, stopIds: [] })) if (c.step === 1) break;
    expect(await m.generateAll(img, q1, { maxNewTokens: 6, stopIds: [] })).toEqual(want);
  });
});

describe("typed errors", () => {
  test("token ids are integers in [0, vocab_size): no wrap-around, position named", async () => {
    const m = await load();
    const img = randomPixels(1, 12, 6);
    await expect(m.forward(img, { prefixIds: [[1, 2 ** 32 + 1]], suffixIds: [[1]] })).rejects.toThrow(
      /token id 4294967297 at prefix_ids\[0, 1\] is outside the vocabulary \[0, 30\)/,
    );
    await expect(m.forward(img, { prefixIds: [[1]], suffixIds: [[1.5]] })).rejects.toThrow(
      /token id 1\.5 at suffix_ids\[0, 0\] is not an integer/,
    );
    expect(() => m.embedTokens([[2 ** 31]])).toThrow(/token id 2147483648/);
  });

  test("generation options: stopIds one id or a list; bad ones are InputErrors", async () => {
    const m = await load();
    const img = randomPixels(1, 12, 7);
    const free = await m.generateAll(img, q1, { maxNewTokens: 6, stopIds: [] });
    const id = free.ids[0]![1]!;
    const one = await m.generateAll(img, q1, { maxNewTokens: 6, stopIds: id });
    expect(one.ids[0]).toEqual(free.ids[0]!.slice(0, free.ids[0]!.indexOf(id) + 1));
    for (const bad of [{ stopIds: "x" }, { stop: [null] }, { stop: "###" }, { cache: "no" }, { stopIds: [V] }]) {
      await expect(m.generateAll(img, q1, bad as never)).rejects.toThrow(InputError);
    }
  });
});

describe("dispose", () => {
  test("frees every part's memory; later calls and generations in flight end with DisposedError", async () => {
    const m = await load();
    const img = randomPixels(1, 12, 8);
    const it = m.generate(img, q1, { maxNewTokens: 6, stopIds: [] });
    expect((await it.next()).done).toBe(false);
    const adapter = m.adapter as unknown as { qformer: Blip2QFormerModel; projection: LinearProjector };
    const runtimes = new Set([
      m.languageModel.runtime,
      adapter.qformer.runtime,
      (m.vision as unknown as { runtime: Runtime }).runtime,
    ]);
    m.dispose();
    m.dispose();
    expect(m.disposed).toBe(true);
    await expect(it.next()).rejects.toThrow(DisposedError);
    await expect(m.ask(img, "x")).rejects.toThrow(/VisionLanguageModel has been disposed/);
    await expect(m.forward(img, q1)).rejects.toThrow(DisposedError);
    await expect(m.encodeImage(img)).rejects.toThrow(DisposedError);
    expect(() => m.encodePixels(img)).toThrow(DisposedError);
    expect(() => m.embedTokens([[1]])).toThrow(DisposedError);
    await expect(m.generate(img, q1).next()).rejects.toThrow(DisposedError);
    expect(() => m.languageModel.forward([[1]])).toThrow(DisposedError);
    expect(() => adapter.qformer.forward(new Tensor(new Float32Array(12), [1, 1, 12]))).toThrow(DisposedError);
    expect(() => adapter.projection.forward(new Tensor(new Float32Array(10), [1, 1, 10]))).toThrow(DisposedError);
    // the runtimes it created are handed to the next createRuntime() calls
    expect(runtimes.has(createRuntime())).toBe(true);
  });

  test("runtimes from a caller's factory are not released", async () => {
    const made: Runtime[] = [];
    const m = await load(() => {
      const rt = createRuntime();
      made.push(rt);
      return rt;
    });
    m.dispose();
    const next = createRuntime();
    expect(made.includes(next)).toBe(false);
  });

  test("the parts on their own: Q-Former and projectors", async () => {
    const src = weightSource(tiny.tensors);
    const qf = await Blip2QFormerModel.fromWeights(tiny.config.qformer_config as Record<string, unknown>, 3, src);
    const proj = await LinearProjector.fromWeights(src);
    const x = new Tensor(new Float32Array(2 * 12).fill(0.1), [1, 2, 12]);
    const h = qf.forward(x);
    proj.forward(h);
    const qrt = qf.runtime;
    qf.dispose();
    expect(createRuntime()).toBe(qrt); // its memory is reused at once
    proj.dispose();
    expect(qf.disposed && proj.disposed).toBe(true);
    expect(() => qf.forward(x)).toThrow(/Blip2QFormerModel has been disposed/);
    expect(() => proj.forward(h)).toThrow(/LinearProjector has been disposed/);
    const m = new Map(tiny.tensors);
    m.set("multi_modal_projector.linear_1.weight", new Tensor(new Float32Array(16 * 12), [16, 12]));
    m.set("multi_modal_projector.linear_1.bias", new Tensor(new Float32Array(16), [16]));
    m.set("multi_modal_projector.linear_2.weight", new Tensor(new Float32Array(16 * 16), [16, 16]));
    m.set("multi_modal_projector.linear_2.bias", new Tensor(new Float32Array(16), [16]));
    const llava = await LlavaProjector.fromWeights(weightSource(m));
    llava.dispose();
    expect(() => llava.project(x)).toThrow(/LlavaProjector has been disposed/);
  });
});
