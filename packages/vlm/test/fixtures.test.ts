/**
 * The shared `vlm` conformance cases (FORMAT.md §6.13) through this package's parity kind, on the
 * wasm and the reference backends; plus error variants made from them (one thing changed each).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  ConfigError,
  InputError,
  init,
  parseSafetensors,
  Tensor,
  WasmformerError,
  WeightsError,
  writeSafetensors,
} from "@wasmformer/core";
import { FIXTURES, fixtureCase, haveFixtures, worst } from "@wasmformer/test-utils";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { kinds } from "../src/parity.js";
import { VisionLanguageModel } from "../src/vlm-model.js";

/** A case config as loosely typed JSON (the tests break it on purpose). */
type Cfg = Record<string, Record<string, unknown>>;

const names = haveFixtures ? readdirSync(FIXTURES).filter((n) => n.startsWith("vlm-")) : [];

describe.runIf(haveFixtures).each(["auto", "ref"] as const)("shared vlm cases (%s backend)", (backend) => {
  beforeAll(async () => {
    await init({ backend });
  });
  afterAll(async () => {
    await init();
  });
  test("there are vlm cases", () => {
    expect(names.length).toBeGreaterThan(0);
  });
  test.each(names)("%s", async (name) => {
    const c = fixtureCase(name);
    if (c.expectError) {
      await expect(kinds.vlm!(c)).rejects.toBeInstanceOf(WasmformerError);
      return;
    }
    const r = await kinds.vlm!(c);
    if (!("tensors" in r)) throw new Error("expected tensors");
    const io = await c.io();
    const tol = c.json.tolerance as {
      atol: number;
      rtol: number;
      per_tensor?: Record<string, { atol: number; rtol: number }>;
    };
    const expected = io.names().filter((n) => n.startsWith("expected."));
    expect(expected.length).toBe(7);
    for (const full of expected) {
      const n = full.slice("expected.".length);
      const want = io.get(full);
      const got = r.tensors[n];
      expect(got, n).toBeInstanceOf(Tensor);
      if (want.dtype === "i32") {
        expect(got!.shape, n).toEqual(want.shape);
        expect(Array.from(got!.data), n).toEqual(Array.from(want.data));
      } else {
        const t = tol.per_tensor?.[n] ?? tol;
        expect(worst(got!, want, t.atol, t.rtol), n).toBeLessThanOrEqual(0);
      }
    }
  });
});

describe.runIf(haveFixtures)("error variants of vlm-small", () => {
  const base = "vlm-small";
  const model = () => parseSafetensors(new Uint8Array(readFileSync(join(FIXTURES, base, "model.safetensors"))));
  const rewrite = (edit: (m: Map<string, Tensor>) => void) => {
    const f = model();
    const m = new Map(f.names().map((n) => [n, f.get(n)] as [string, Tensor]));
    edit(m);
    return writeSafetensors(m, { format: "pt" });
  };
  const run = (files: Record<string, Uint8Array>, json?: (j: Record<string, unknown>) => Record<string, unknown>) =>
    kinds.vlm!(fixtureCase(base, { files, json }));

  test("a missing Q-Former weight is a WeightsError naming it", async () => {
    const bytes = rewrite((m) => m.delete("qformer.encoder.layer.1.crossattention.output.dense.bias"));
    const e = await run({ model: bytes }).catch((x) => x);
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toContain('missing "qformer.encoder.layer.1.crossattention.output.dense.bias"');
    expect(e.names).toEqual(["qformer.encoder.layer.1.crossattention.output.dense.bias"]);
  });

  test("a wrong-shaped query_tokens, a missing vision weight and a missing GPT-2 weight", async () => {
    let e = await run({ model: rewrite((m) => m.set("query_tokens", Tensor.zeros([1, 5, 32]))) }).catch((x) => x);
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toMatch(/"query_tokens" has shape \[1, 5, 32\], the config needs \[1, 4, 32\]/);
    e = await run({ model: rewrite((m) => m.delete("vision_model.layernorm.bias")) }).catch((x) => x);
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.names).toContain("vision_model.layernorm.bias");
    e = await run({ model: rewrite((m) => m.delete("language_model.transformer.ln_f.weight")) }).catch((x) => x);
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.names).toContain("language_model.transformer.ln_f.weight");
  });

  test("unexpected tensors are listed; the text-branch feed-forward is ignored", async () => {
    let e = await run({
      model: rewrite((m) => m.set("qformer.encoder.layer.0.crosattention.typo", Tensor.zeros([3]))),
    }).catch((x) => x);
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.names).toEqual(["qformer.encoder.layer.0.crosattention.typo"]);
    e = await run({ model: rewrite((m) => m.set("extra_head.weight", Tensor.zeros([3]))) }).catch((x) => x);
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.names).toEqual(["extra_head.weight"]);
    const withText = rewrite((m) => {
      for (const i of [0, 1]) {
        m.set(`qformer.encoder.layer.${i}.intermediate.dense.weight`, Tensor.zeros([64, 32]));
        m.set(`qformer.encoder.layer.${i}.intermediate.dense.bias`, Tensor.zeros([64]));
        m.set(`qformer.encoder.layer.${i}.output.dense.weight`, Tensor.zeros([32, 64]));
        m.set(`qformer.encoder.layer.${i}.output.LayerNorm.weight`, Tensor.zeros([32]));
      }
    });
    const r = await run({ model: withText });
    expect("tensors" in r).toBe(true);
  });

  test("bad configs are ConfigErrors naming the nested field", async () => {
    const withCfg = (edit: (cfg: Cfg) => void) => (j: Record<string, unknown>) => {
      edit(j.config as Cfg);
      return j;
    };
    const cases: [string, (cfg: Cfg) => void][] = [
      ["qformer_config.hidden_size", (c) => (c.qformer_config.num_attention_heads = 5)],
      ["qformer_config.encoder_hidden_size", (c) => (c.qformer_config.encoder_hidden_size = 24)],
      ["qformer_config.cross_attention_frequency", (c) => (c.qformer_config.cross_attention_frequency = 0)],
      ["qformer_config.use_qformer_text_input", (c) => (c.qformer_config.use_qformer_text_input = true)],
      ["qformer_config.position_embedding_type", (c) => (c.qformer_config.position_embedding_type = "relative_key")],
      ["num_query_tokens", (c) => delete c.num_query_tokens],
      ["vision_config.num_attention_heads", (c) => (c.vision_config.num_attention_heads = 5)],
      ["text_config.n_embd", (c) => (c.text_config.n_embd = "wide")],
      ["qformer_config", (c) => (c.qformer_config = [] as unknown as Record<string, unknown>)],
    ];
    for (const [field, edit] of cases) {
      const e = await run({}, withCfg(edit)).catch((x) => x);
      expect(e, field).toBeInstanceOf(ConfigError);
      expect(e.field, field).toBe(field);
    }
  });

  test("a changed cross_attention_frequency contradicts the weights", async () => {
    const e = await run({}, (j) => {
      (j.config as Cfg).qformer_config.cross_attention_frequency = 2;
      return j;
    }).catch((x) => x);
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.names).toContain("qformer.encoder.layer.1.crossattention.attention.query.weight");
  });

  test("inputs: prefix rows that do not match the images, a prompt too long for n_positions", async () => {
    const io = parseSafetensors(new Uint8Array(readFileSync(join(FIXTURES, base, "io.safetensors"))));
    const m = new Map(io.names().map((n) => [n, io.get(n)] as [string, Tensor]));
    m.set("input.prefix_ids", new Tensor(new Int32Array(4), [2, 2], "i32"));
    let e = await run({ io: writeSafetensors(m, { format: "pt" }) }).catch((x) => x);
    expect(e).toBeInstanceOf(InputError);
    m.set("input.prefix_ids", new Tensor(new Int32Array(60), [1, 60], "i32"));
    e = await run({ io: writeSafetensors(m, { format: "pt" }) }).catch((x) => x);
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(/n_positions 64/);
    m.set("input.prefix_ids", new Tensor(Int32Array.of(3, 64), [1, 2], "i32"));
    e = await run({ io: writeSafetensors(m, { format: "pt" }) }).catch((x) => x);
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(/token id 64/);
    m.delete("input.suffix_ids");
    e = await run({ io: writeSafetensors(m, { format: "pt" }) }).catch((x) => x);
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(/input\.suffix_ids/);
  });
});

describe.runIf(haveFixtures)("loading a case folder", () => {
  test("fromFolder (lazy safetensors) equals fromPretrained (bytes)", async () => {
    await init();
    const dir = join(FIXTURES, "vlm-batch2_freq2");
    const lazy = await VisionLanguageModel.fromFolder(dir, { maxBatch: 2 });
    const eager = await VisionLanguageModel.fromPretrained(
      {
        config: JSON.parse(readFileSync(join(dir, "config.json"), "utf8")),
        weights: new Uint8Array(readFileSync(join(dir, "model.safetensors"))),
      },
      { maxBatch: 2 },
    );
    const io = parseSafetensors(new Uint8Array(readFileSync(join(dir, "io.safetensors"))));
    const px = io.get("input.pixel_values");
    const q = { prefixIds: io.get("input.prefix_ids"), suffixIds: io.get("input.suffix_ids") };
    const a = await lazy.forward(px, q);
    const b = await eager.forward(px, q);
    expect(Array.from(a.logits.data)).toEqual(Array.from(b.logits.data));
    expect(worst(a.logits, io.get("expected.logits"), 1e-4, 1e-3)).toBeLessThanOrEqual(0);
    expect(lazy.tokenizer).toBeUndefined();
    await expect(VisionLanguageModel.fromFolder(join(FIXTURES, "no-such-case"))).rejects.toBeInstanceOf(ConfigError);
  });
});
