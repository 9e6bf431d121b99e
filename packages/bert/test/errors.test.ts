// Bad configs, checkpoints and inputs: typed errors naming the field, tensor, argument and index.
import {
  ConfigError,
  DisposedError,
  InputError,
  ShapeError,
  Tensor,
  tensorSource,
  WasmformerError,
  WeightsError,
} from "@wasmformer/core";
import { prng } from "@wasmformer/test-utils";
import { describe, expect, it } from "vitest";
import { BertModel } from "../src/bert-model.js";
import { parseBertConfig } from "../src/config.js";
import { type Cfg, configJson, randomWeights, withPrefix } from "./oracle.js";

const C: Cfg = { V: 13, D: 8, L: 2, H: 2, I: 6, P: 5, types: 2, eps: 1e-12, act: "gelu" };
const load = (cfg: Record<string, unknown>, w = randomWeights(C, 1)) =>
  BertModel.fromWeights(cfg, tensorSource(withPrefix(w, "bert.")));
const failure = async (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected an error");
    },
    (e: Error) => e,
  );

describe("config errors name the field", () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["heads not dividing hidden_size", { num_attention_heads: 3 }, /num_attention_heads: 3 heads do not divide/],
    ["relative positions", { position_embedding_type: "relative_key" }, /position_embedding_type: .*"relative_key"/],
    ["unknown hidden_act", { hidden_act: "gelu_fancy" }, /hidden_act: .*"gelu_fancy"/],
    ["a RoBERTa config", { model_type: "roberta" }, /model_type: .*"roberta"/],
    ["a decoder", { is_decoder: true }, /is_decoder: a decoder BERT/],
    ["missing hidden_size", { hidden_size: undefined }, /hidden_size: required field is missing/],
    ["negative eps", { layer_norm_eps: -1 }, /layer_norm_eps/],
  ];
  it.each(cases)("%s", async (_, edit, re) => {
    const cfg = { ...configJson(C), ...edit };
    for (const [k, v] of Object.entries(edit)) if (v === undefined) delete cfg[k];
    expect(() => parseBertConfig(cfg)).toThrow(ConfigError);
    const e = await failure(load(cfg));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(re);
  });
});

describe("weights errors list every tensor at fault", () => {
  it("missing, mis-shaped and unexpected tensors, by full name", async () => {
    const w = withPrefix(randomWeights(C, 2), "bert.");
    w.delete("bert.encoder.layer.1.attention.self.key.bias");
    w.delete("bert.embeddings.LayerNorm.weight");
    w.set("bert.encoder.layer.0.intermediate.dense.weight", new Tensor(new Float32Array(7 * 8), [7, 8]));
    w.set("bert.encoder.layer.9.output.dense.weight", new Tensor(new Float32Array(4), [2, 2]));
    const e = (await failure(BertModel.fromWeights(configJson(C), tensorSource(w)))) as WeightsError;
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toMatch(/2 missing, 1 wrong shape or dtype, 1 unexpected/);
    expect(e.message).toMatch(
      /"bert\.encoder\.layer\.0\.intermediate\.dense\.weight" has shape \[7, 8\], the config needs \[6, 8\]/,
    );
    expect(e.names.sort()).toEqual([
      "bert.embeddings.LayerNorm.weight",
      "bert.encoder.layer.0.intermediate.dense.weight",
      "bert.encoder.layer.1.attention.self.key.bias",
      "bert.encoder.layer.9.output.dense.weight",
    ]);
  });

  it("a vocabulary larger than the config says: the embedding shape is at fault", async () => {
    const e = await failure(load({ ...configJson(C), vocab_size: 14 }));
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toContain('"bert.embeddings.word_embeddings.weight" has shape [13, 8], the config needs [14, 8]');
  });

  it("a pooler with only a weight: the bias is missing", async () => {
    const w = randomWeights(C, 3);
    w.delete("pooler.dense.bias");
    const e = await failure(BertModel.fromWeights(configJson(C), tensorSource(w)));
    expect(e).toBeInstanceOf(WeightsError);
    expect(e.message).toContain('missing "pooler.dense.bias"');
  });
});

describe("input errors name the argument and index", async () => {
  const model = await load(configJson(C));
  const ids = [
    [1, 2, 3],
    [4, 5, 6],
  ];
  const cases: [string, () => unknown, typeof WasmformerError, RegExp][] = [
    [
      "id out of range",
      () =>
        model.forward([
          [1, 2, 3],
          [4, 13, 6],
        ]),
      InputError,
      /input_ids\[1, 1\] = 13 is outside \[0, 13\)/,
    ],
    ["negative id", () => model.forward([[-1]]), InputError, /input_ids\[0, 0\] = -1/],
    ["id not an integer", () => model.forward([[1, 2.5]]), InputError, /input_ids\[0, 1\] = 2.5 is not an integer/],
    [
      "float tensor with a fraction",
      () => model.forward(new Tensor(new Float32Array([0.5]), [1, 1])),
      InputError,
      /input_ids\[0, 0\]/,
    ],
    [
      "type id ≥ type_vocab_size",
      () =>
        model.forward(ids, {
          tokenTypeIds: [
            [0, 0, 0],
            [0, 2, 0],
          ],
        }),
      InputError,
      /token_type_ids\[1, 1\] = 2 is outside \[0, 2\)/,
    ],
    [
      "too long",
      () => model.forward([[1, 2, 3, 4, 5, 6]]),
      InputError,
      /sequence length 6 exceeds max_position_embeddings 5/,
    ],
    [
      "mask of another shape",
      () => model.forward(ids, { attentionMask: [[1, 1, 1]] }),
      ShapeError,
      /attention_mask has shape \[1, 3\], input_ids has \[2, 3\]/,
    ],
    [
      "mask value 2",
      () =>
        model.forward(ids, {
          attentionMask: [
            [1, 1, 2],
            [1, 1, 1],
          ],
        }),
      InputError,
      /attention_mask\[0, 2\] = 2/,
    ],
    ["ragged rows", () => model.forward([[1, 2], [3]]), ShapeError, /input_ids\[1\] has 1 entries, row 0 has 2/],
    [
      "rank 1 tensor",
      () => model.forward(new Tensor(Int32Array.from([1, 2]), [2])),
      ShapeError,
      /input_ids has shape \[2\]/,
    ],
    ["empty", () => model.forward([[]]), InputError, /input_ids has shape \[1, 0\]/],
  ];
  it.each(cases)("%s", (_, f, cls, re) => {
    expect(f).toThrow(cls);
    expect(f).toThrow(re);
  });

  it("use after dispose: DisposedError", async () => {
    const m = await load(configJson(C));
    m.dispose();
    m.dispose();
    expect(() => m.forward(ids)).toThrow(DisposedError);
  });
});

describe("hostile inputs (seeded, bounded): a finite result of the right shape or a typed error", async () => {
  const model = await load(configJson(C));
  it("500 random id / mask / type-id arrays", () => {
    const r = prng(2026);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r.next() * xs.length)]!;
    const values = [0, 1, 2, 12, 13, -1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, "3", null];
    const rows = (B: number, T: number, p: number) =>
      Array.from({ length: B }, () =>
        Array.from({ length: T + (r.next() < 0.05 ? 1 : 0) }, () =>
          r.next() < p ? pick(values) : Math.floor(r.next() * 2),
        ),
      ) as number[][];
    let ok = 0;
    for (let i = 0; i < 500; i++) {
      const B = Math.floor(r.next() * 3);
      const T = Math.floor(r.next() * 7);
      try {
        const out = model.forward(rows(B, T, 0.1), {
          attentionMask: r.next() < 0.5 ? rows(B, T, 0.05) : undefined,
          tokenTypeIds: r.next() < 0.5 ? rows(r.next() < 0.1 ? B + 1 : B, T, 0.05) : undefined,
        });
        expect(out.lastHiddenState.shape).toEqual([B, T, C.D]);
        expect(out.lastHiddenState.data.every(Number.isFinite)).toBe(true);
        ok++;
      } catch (e) {
        expect(e).toBeInstanceOf(WasmformerError);
      }
    }
    expect(ok).toBeGreaterThan(20);
  });
});
