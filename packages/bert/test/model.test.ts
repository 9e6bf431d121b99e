// BertModel against the float64 oracle on every backend: odd sizes, batch > 1 with padding and two
// segments, length 1, T = max_position_embeddings, every supported hidden_act; checkpoint layouts
// (bert. prefix or none, gamma/beta, position_ids buffer, cls.* heads, no pooler).
import { Tensor, tensorSource } from "@wasmformer/core";
import { closeTo, prng } from "@wasmformer/test-utils";
import { describe, expect, it } from "vitest";
import { BertModel } from "../src/bert-model.js";
import { backends, type Cfg, configJson, oracle, randomWeights, withPrefix } from "./oracle.js";

const A: Cfg = { V: 23, D: 10, L: 2, H: 2, I: 7, P: 9, types: 3, eps: 1e-12, act: "gelu" };
const B3: Cfg = { V: 17, D: 9, L: 3, H: 3, I: 13, P: 6, types: 2, eps: 1e-5, act: "gelu_new" };
const ONE: Cfg = { V: 5, D: 4, L: 1, H: 1, I: 3, P: 1, types: 1, eps: 1e-12, act: "relu" };
const SILU: Cfg = { V: 11, D: 6, L: 2, H: 6, I: 5, P: 4, types: 2, eps: 1e-6, act: "silu" };

/** `[B, T]` random ids/types; each row's mask has a random number ≥ 1 of leading tokens. */
function inputs(c: Cfg, B: number, T: number, seed: number, pad = true) {
  const r = prng(seed);
  const ids: number[] = [];
  const types: number[] = [];
  const mask: number[] = [];
  for (let b = 0; b < B; b++) {
    const len = pad ? 1 + Math.floor(r.next() * T) : T;
    for (let t = 0; t < T; t++) {
      ids.push(t < len ? Math.floor(r.next() * c.V) : 0);
      types.push(t >= len / 2 && t < len ? Math.floor(r.next() * c.types) : 0);
      mask.push(t < len ? 1 : 0);
    }
  }
  const t = (a: number[]) => new Tensor(Int32Array.from(a), [B, T], "i32");
  return { ids, types, mask, tensors: { ids: t(ids), types: t(types), mask: t(mask) } };
}

describe.each(backends())("BertModel vs float64 oracle on $name", ({ make }) => {
  const cases: [string, Cfg, number, number, boolean][] = [
    ["odd sizes, batch 3 with padding and segments", A, 3, 7, true],
    ["T = max_position_embeddings, unpadded, batch 2", A, 2, A.P, false],
    ["3 layers, gelu_new, eps 1e-5, T = P with padding", B3, 4, B3.P, true],
    ["length 1 (P = 1), relu, one head", ONE, 3, 1, false],
    ["silu, head size 1", SILU, 2, 4, true],
  ];
  it.each(cases)("%s", async (_, c, B, T, pad) => {
    const w = randomWeights(c, 7 + B);
    const model = await BertModel.fromWeights(configJson(c), tensorSource(withPrefix(w, "bert.")), {
      runtime: make(),
    });
    const x = inputs(c, B, T, 100 + T, pad);
    const out = model.forward(x.tensors.ids, {
      attentionMask: x.tensors.mask,
      tokenTypeIds: x.tensors.types,
      outputAttentions: true,
    });
    const want = oracle(c, w, x.ids, B, T, x.types, x.mask);
    expect(closeTo(out.lastHiddenState, want.hidden, [B, T, c.D])).toBeUndefined();
    expect(closeTo(out.poolerOutput!, want.pooler, [B, c.D])).toBeUndefined();
    expect(out.attentions).toHaveLength(c.L);
    out.attentions!.forEach((a, l) => {
      expect(closeTo(a, want.attentions[l]!, [B, c.H, T, T]), `layer ${l}`).toBeUndefined();
    });
    // masked keys get exactly 0
    for (let b = 0; b < B; b++)
      for (let j = 0; j < T; j++)
        if (x.mask[b * T + j] === 0) expect(out.attentions![0]!.data[b * c.H * T * T + j]).toBe(0);
  });

  it("arrays of rows = tensors; absent mask = all ones; absent type ids = all zeros", async () => {
    const w = randomWeights(A, 3);
    const model = await BertModel.fromWeights(configJson(A), tensorSource(w), { runtime: make() });
    const rows = [
      [1, 2, 3, 4],
      [5, 6, 7, 8],
    ];
    const a = model.forward(rows);
    const b = model.forward(new Tensor(Int32Array.from(rows.flat()), [2, 4], "i32"), {
      attentionMask: [
        [1, 1, 1, 1],
        [1, 1, 1, 1],
      ],
      tokenTypeIds: [
        [0, 0, 0, 0],
        [0, 0, 0, 0],
      ],
    });
    expect(a.lastHiddenState.data).toEqual(b.lastHiddenState.data);
    expect(a.attentions).toBeUndefined();
    const want = oracle(A, w, rows.flat(), 2, 4);
    expect(closeTo(a.lastHiddenState, want.hidden, [2, 4, A.D])).toBeUndefined();
  });

  it("a row with no token at all follows HF (uniform attention over every key)", async () => {
    const w = randomWeights(A, 4);
    const model = await BertModel.fromWeights(configJson(A), tensorSource(w), { runtime: make() });
    const ids = [3, 4, 5, 9, 1, 2];
    const mask = [1, 1, 0, 0, 0, 0];
    const out = model.forward(new Tensor(Int32Array.from(ids), [2, 3], "i32"), {
      attentionMask: new Tensor(Int32Array.from(mask), [2, 3], "i32"),
      outputAttentions: true,
    });
    const want = oracle(A, w, ids, 2, 3, undefined, mask);
    expect(closeTo(out.lastHiddenState, want.hidden, [2, 3, A.D])).toBeUndefined();
    expect(out.attentions![1]!.data[A.H * 9 + 4]).toBeCloseTo(1 / 3, 6);
  });
});

describe("checkpoint layouts", () => {
  const c = A;
  const w = randomWeights(c, 11);
  const x = inputs(c, 2, 5, 5);
  const run = async (src: Map<string, Tensor>) => {
    const model = await BertModel.fromWeights(configJson(c), tensorSource(src));
    const out = model.forward(x.tensors.ids, { attentionMask: x.tensors.mask, tokenTypeIds: x.tensors.types });
    model.dispose();
    return { out, model };
  };

  it("bert. prefix or none, gamma/beta, position_ids and cls.* heads ignored: the same outputs", async () => {
    const plain = (await run(w)).out;
    const legacy = new Map<string, Tensor>();
    for (const [n, t] of withPrefix(w, "bert.")) {
      legacy.set(n.replace(/LayerNorm\.weight$/, "LayerNorm.gamma").replace(/LayerNorm\.bias$/, "LayerNorm.beta"), t);
    }
    legacy.set(
      "bert.embeddings.position_ids",
      new Tensor(
        Int32Array.from({ length: c.P }, (_, i) => i),
        [1, c.P],
      ),
    );
    legacy.set("cls.predictions.bias", new Tensor(new Float32Array(c.V), [c.V]));
    legacy.set("cls.predictions.transform.dense.weight", new Tensor(new Float32Array(c.D * c.D), [c.D, c.D]));
    legacy.set("cls.seq_relationship.weight", new Tensor(new Float32Array(2 * c.D), [2, c.D]));
    const { out, model } = await run(legacy);
    expect(out.lastHiddenState.data).toEqual(plain.lastHiddenState.data);
    expect(out.poolerOutput!.data).toEqual(plain.poolerOutput!.data);
    expect(model.unusedWeights.sort()).toEqual([
      "bert.embeddings.position_ids",
      "cls.predictions.bias",
      "cls.predictions.transform.dense.weight",
      "cls.seq_relationship.weight",
    ]);
    const want = oracle(c, w, x.ids, 2, 5, x.types, x.mask);
    expect(closeTo(out.lastHiddenState, want.hidden, [2, 5, c.D])).toBeUndefined();
  });

  it("a checkpoint without pooler (BertForMaskedLM): no pooler_output", async () => {
    const { out, model } = await run(randomWeights(c, 11, { pooler: false }));
    expect(model.hasPooler).toBe(false);
    expect(out.poolerOutput).toBeUndefined();
    expect(out.lastHiddenState.data).toEqual((await run(w)).out.lastHiddenState.data);
  });
});
