/**
 * Loading VLM checkpoints that do not fit their config: configs asking for far more layers than
 * the file holds (vision tower, Q-Former, language model) fail at once with a WeightsError, and
 * unused tensors of every part are a WeightsError unless `strict: false`; the extras FORMAT.md
 * §6.11–6.13 lists stay accepted.
 */
import { createRefRuntime, init, Tensor, WeightsError } from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import { Blip2QFormerModel } from "../src/qformer.js";
import { VisionLanguageModel } from "../src/vlm-model.js";
import { weightSource } from "../src/weights.js";
import { makeVlm } from "./oracle.js";

beforeAll(async () => {
  await init({ backend: "ref" });
});

type Cfg = Record<string, Record<string, unknown>>;

async function errOf(p: Promise<unknown>): Promise<WeightsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(WeightsError);
    return e as WeightsError;
  }
  throw new Error("expected a WeightsError");
}

const load = (config: unknown, tensors: Map<string, Tensor>, strict?: boolean) =>
  VisionLanguageModel.fromPretrained(
    { config, weights: weightSource(tensors) },
    { runtime: () => createRefRuntime(), ...(strict === undefined ? {} : { strict }) },
  );

describe("VLM loading", () => {
  test("a huge layer count in any part is a WeightsError in milliseconds", async () => {
    const tiny = makeVlm({ Lv: 2, Lq: 2, Lt: 2, seed: 1 });
    const base = tiny.config as Cfg;
    const variants: [string, Cfg, string][] = [
      [
        "vision",
        { ...base, vision_config: { ...base.vision_config, num_hidden_layers: 1e6 } },
        "vision_model.encoder.layer.2.layernorm_before.weight",
      ],
      [
        "qformer",
        { ...base, qformer_config: { ...base.qformer_config, num_hidden_layers: 1e6 } },
        "qformer.encoder.layer.2.attention.attention.query.weight",
      ],
      [
        "text",
        { ...base, text_config: { ...base.text_config, n_layer: 1e7 } },
        "language_model.transformer.h.2.ln_1.weight",
      ],
    ];
    for (const [what, config, first] of variants) {
      const t0 = performance.now();
      const e = await errOf(load(config, tiny.tensors));
      expect(performance.now() - t0, what).toBeLessThan(1000);
      expect(e.names, what).toEqual([first]);
    }
  });

  test("fewer layers than the checkpoint (any part): unused tensors are a WeightsError; strict: false loads", async () => {
    const tiny = makeVlm({ Lv: 2, Lq: 2, Lt: 2, freq: 1, seed: 2 });
    const base = tiny.config as Cfg;
    const variants: [Cfg, string][] = [
      [{ ...base, vision_config: { ...base.vision_config, num_hidden_layers: 1 } }, "vision_model.encoder.layer.1."],
      [{ ...base, qformer_config: { ...base.qformer_config, num_hidden_layers: 1 } }, "qformer.encoder.layer.1."],
      [{ ...base, text_config: { ...base.text_config, n_layer: 1 } }, "language_model.transformer.h.1."],
    ];
    for (const [config, part] of variants) {
      const e = await errOf(load(config, tiny.tensors));
      expect(e.names.length, part).toBeGreaterThan(0);
      expect(
        e.names.every((n) => n.startsWith(part)),
        `${part}: ${e.names.join(", ")}`,
      ).toBe(true);
      const m = await load(config, tiny.tensors, false);
      expect(m.languageModel.config.n_embd).toBe(14);
    }
    // a stray tensor outside the four parts, or inside the projection
    for (const stray of ["extra.weight", "language_projection.extra"]) {
      const t = new Map(tiny.tensors).set(stray, new Tensor(new Float32Array(2), [2], "f32"));
      expect((await errOf(load(tiny.config, t))).names).toEqual([stray]);
      await load(tiny.config, t, false);
    }
  });

  test("FORMAT.md's extras stay accepted in strict mode", async () => {
    const tiny = makeVlm({ Lt: 2, textBranch: true, seed: 3 });
    const t = new Map(tiny.tensors);
    const scalar = new Tensor(new Float32Array([-1e4]), [], "f32");
    t.set("language_model.transformer.h.0.attn.masked_bias", scalar);
    t.set("language_model.transformer.h.1.attn.masked_bias", scalar);
    t.set("language_model.lm_head.weight", t.get("language_model.transformer.wte.weight")!);
    t.set("vision_model.embeddings.mask_token", new Tensor(new Float32Array(12), [1, 1, 12], "f32"));
    await load(tiny.config, t);
  });

  test("Blip2QFormerModel on its own: the same layer-count check and strict option", async () => {
    const tiny = makeVlm({ Lq: 2, seed: 4 });
    const q = (tiny.config as Cfg).qformer_config;
    const src = weightSource(tiny.tensors);
    const e = await errOf(Blip2QFormerModel.fromWeights({ ...q, num_hidden_layers: 1e6 }, 3, src));
    expect(e.names).toEqual(["qformer.encoder.layer.2.attention.attention.query.weight"]);
    await errOf(Blip2QFormerModel.fromWeights({ ...q, num_hidden_layers: 1 }, 3, src));
    const m = await Blip2QFormerModel.fromWeights({ ...q, num_hidden_layers: 1 }, 3, src, {
      strict: false,
      runtime: createRefRuntime(),
    });
    expect(m.config.num_hidden_layers).toBe(1);
  });
});
