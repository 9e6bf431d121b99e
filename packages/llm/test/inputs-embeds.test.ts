/**
 * `embedTokens` / `prefillEmbeds` / `generate({ inputsEmbeds })`: running GPT-2 on embeddings
 * instead of ids (what @wasmformer/vlm uses to splice image embeddings into a prompt). Feeding
 * `wte[ids]` as embeddings must reproduce the id path exactly, including the cached decode after it.
 */
import { createRefRuntime, createRuntime, InputError, init, ShapeError, Tensor } from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import { GPT2LMHeadModel } from "../src/gpt2-model.js";
import { makeTiny, source } from "./tiny-gpt2.js";

beforeAll(async () => {
  await init();
});

const backends = ["ref", "wasm"] as const;

describe.each(backends)("inputs_embeds (%s)", (backend) => {
  const rt = () => (backend === "ref" ? createRefRuntime() : createRuntime());

  test("embedTokens returns wte rows (tied and untied heads, odd head blocks)", async () => {
    for (const spec of [{ seed: 3 }, { seed: 4, lmHead: "untied" as const }]) {
      const tiny = makeTiny({ V: 37, E: 12, H: 3, ...spec });
      const m = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), {
        runtime: rt(),
        headBlock: 5,
        maxBatch: 2,
        prefillChunk: 2,
      });
      const ids = [
        [0, 36, 5, 17, 4],
        [9, 9, 1, 30, 2],
      ];
      const e = m.embedTokens(ids);
      expect(e.shape).toEqual([2, 5, 12]);
      const wte = tiny.tensors.get("transformer.wte.weight")!.data as Float32Array;
      for (let b = 0; b < 2; b++)
        for (let t = 0; t < 5; t++)
          expect(Array.from(e.data.subarray((b * 5 + t) * 12, (b * 5 + t + 1) * 12))).toEqual(
            Array.from(wte.subarray(ids[b][t] * 12, (ids[b][t] + 1) * 12)),
          );
      expect(m.embedTokens([[], []]).shape).toEqual([2, 0, 12]);
      expect(() => m.embedTokens([[37]])).toThrow(InputError);
    }
  });

  test("prefillEmbeds(wte[ids]) + decode reproduces prefill(ids) + decode", async () => {
    const tiny = makeTiny({ V: 41, E: 16, H: 4, L: 2, seed: 11 });
    const opts = { runtime: rt(), maxBatch: 2, prefillChunk: 3 };
    const a = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), opts);
    const ids = [
      [1, 2, 3, 4, 5, 6, 7],
      [40, 0, 12, 12, 8, 3, 9],
    ];
    const byIds = a.prefill(ids, { logits: "all" }).logits!.data.slice();
    const nextIds = a.decode([5, 6]).logits!.data.slice();
    const embeds = a.embedTokens(ids);
    const byEmb = a.prefillEmbeds(embeds, { logits: "all" }).logits!;
    expect(byEmb.shape).toEqual([2, 7, 41]);
    expect(a.cacheLength).toBe(7);
    expect(Array.from(byEmb.data)).toEqual(Array.from(byIds));
    expect(Array.from(a.decode([5, 6]).logits!.data)).toEqual(Array.from(nextIds));
    expect(a.cacheLength).toBe(8);
  });

  test("generate({ inputsEmbeds }) matches generate(ids) (greedy, stop ids, batch)", async () => {
    const tiny = makeTiny({ V: 40, E: 16, H: 2, L: 2, seed: 5 });
    const m = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), { runtime: rt(), maxBatch: 2 });
    const ids = [
      [3, 1, 4, 1, 5],
      [2, 7, 1, 8, 2],
    ];
    const want = await m.generateAll(ids, { maxNewTokens: 6, stopIds: [] });
    const got = await m.generateAll({ inputsEmbeds: m.embedTokens(ids) }, { maxNewTokens: 6, stopIds: [] });
    expect(got.ids).toEqual(want.ids);
    // the repetition penalty counts seenIds like prompt ids
    const wantP = await m.generateAll(ids, { maxNewTokens: 6, stopIds: [], repetitionPenalty: 1.7 });
    const gotP = await m.generateAll(
      { inputsEmbeds: m.embedTokens(ids), seenIds: ids },
      { maxNewTokens: 6, stopIds: [], repetitionPenalty: 1.7 },
    );
    expect(gotP.ids).toEqual(wantP.ids);
  });

  test("typed errors for bad embeddings", async () => {
    const tiny = makeTiny({ V: 20, E: 8, H: 2, L: 1, P: 6, seed: 2 });
    const m = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), { runtime: rt() });
    expect(() => m.prefillEmbeds(Tensor.zeros([1, 3, 7]))).toThrow(ShapeError);
    expect(() => m.prefillEmbeds(Tensor.zeros([1, 0, 8]))).toThrow(/at least one position/);
    expect(() => m.prefillEmbeds(Tensor.zeros([2, 3, 8]))).toThrow(/maxBatch/);
    expect(() => m.prefillEmbeds(Tensor.zeros([1, 7, 8]))).toThrow(/n_positions/);
    const bad = Tensor.zeros([1, 2, 8]);
    bad.data[11] = Number.NaN;
    expect(() => m.prefillEmbeds(bad)).toThrow(/inputs_embeds\[0, 1, 3\]/);
    await expect(m.generateAll({ inputsEmbeds: Tensor.zeros([1, 4, 8]) }, { maxNewTokens: 3 })).rejects.toThrow(
      /n_positions/,
    );
  });
});
