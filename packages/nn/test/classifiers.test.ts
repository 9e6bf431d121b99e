// MLPClassifier and LSTMClassifier as `fit` models: created with PyTorch's default initialisation,
// trained on small generated tasks until they solve them, the same losses on every backend (the
// backends' kernels differ only in float32 rounding), modes left as they were, typed errors.
import { ConfigError, InputError, ShapeError } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { AdamW, evaluate, fit, LSTMClassifier, MLPClassifier, type SequenceExample } from "../src/index.js";
import { backends, rng } from "./helpers.js";

const bks = await backends();

/** Sequences of 6 tokens in [1, 9); the label says whether token 3 comes before token 5. */
function orderTask(n: number, seed: number): SequenceExample[] {
  const r = rng(seed);
  const out: SequenceExample[] = [];
  while (out.length < n) {
    const ids = Array.from({ length: 6 }, () => r.int(1, 9));
    const a = ids.indexOf(3);
    const b = ids.indexOf(5);
    if (a < 0 || b < 0) continue;
    out.push({ ids, label: a < b ? 1 : 0 });
  }
  return out;
}

// learning runs on the fastest backend (the last one: wasm when present); the reference backend's
// training is checked against it below
describe.each(bks.slice(-1))("classifiers trained by fit on $name", ({ make }) => {
  it("a bidirectional 2-layer LSTM classifier learns an order task (held-out accuracy ≥ 90 %)", async () => {
    const model = LSTMClassifier.create(
      { vocabSize: 9, embeddingDim: 8, hiddenSize: 12, numLayers: 2, bidirectional: true, numClasses: 2 },
      { seed: 3, runtime: make() },
    );
    expect(model.parameters().map((p) => p.name)).toContain("lstm.weight_hh_l1_reverse");
    const opt = new AdamW(model.runtime, model.parameters(), { lr: 0.02 });
    const train = orderTask(300, 1);
    const test = orderTask(100, 2);
    const before = evaluate(model, test).loss;
    const h = await fit(model, train, { optimizer: opt, epochs: 12, batchSize: 25, validation: test, seed: 4 });
    expect(h.history.at(-1)!.valLoss!).toBeLessThan(before / 2);
    expect(h.history.at(-1)!.valAccuracy!).toBeGreaterThanOrEqual(0.9);
    expect(model.training).toBe(false);
    model.dispose();
  });

  it("an MLP learns XOR-like quadrants; evaluate and predict leave the gradients alone", async () => {
    const r = rng(5);
    const data = Array.from({ length: 200 }, () => {
      const x = [r.uniform(-1, 1), r.uniform(-1, 1), r.uniform(-1, 1)];
      return { x, label: x[0]! > 0 !== x[1]! > 0 ? 1 : 0 };
    });
    const model = MLPClassifier.create(
      { inputSize: 3, hiddenSize: 16, numClasses: 2, activation: "tanh" },
      { seed: 1, runtime: make() },
    );
    const opt = new AdamW(model.runtime, model.parameters(), { lr: 0.05, weightDecay: 0 });
    await fit(model, data.slice(0, 160), { optimizer: opt, epochs: 40, batchSize: 32 });
    const heap = model.runtime.heap;
    const grads = model.parameters().map((p) => heap.f32(p.grad, p.size).slice());
    const res = evaluate(model, data.slice(160));
    expect(res.correct! / res.count).toBeGreaterThanOrEqual(0.9);
    model.predict([{ x: [0.5, -0.5, 0] }]);
    for (const [i, p] of model.parameters().entries()) expect(heap.f32(p.grad, p.size)).toEqual(grads[i]);
    model.dispose();
  });
});

describe("classifiers: the same training on every backend, and bad input", () => {
  it("the losses of 3 epochs agree across backends", async () => {
    const runs: number[][] = [];
    for (const b of bks) {
      const model = LSTMClassifier.create(
        { vocabSize: 9, embeddingDim: 5, hiddenSize: 7, numClasses: 2 },
        { seed: 9, runtime: b.make() },
      );
      const opt = new AdamW(model.runtime, model.parameters(), { lr: 0.01 });
      const h = await fit(model, orderTask(60, 3), { optimizer: opt, epochs: 3, batchSize: 20 });
      runs.push(h.history.map((e) => e.loss));
      model.dispose();
    }
    for (const r of runs.slice(1)) for (const [i, v] of r.entries()) expect(v).toBeCloseTo(runs[0]![i]!, 4);
  });

  it("an optimizer step after lossAndGrad in eval mode shows in predict/evaluate (no stale packed LSTM weights)", () => {
    const m = LSTMClassifier.create({ vocabSize: 9, embeddingDim: 4, hiddenSize: 5, numClasses: 2 }, { seed: 1 });
    const batch = [
      { ids: [1, 2, 3], label: 1 },
      { ids: [4, 5, 6], label: 0 },
    ];
    const opt = new AdamW(m.runtime, m.parameters(), { lr: 0.1 });
    m.zeroGrad();
    m.lossAndGrad(batch, 1);
    opt.step();
    const got = Array.from(m.predict(batch).data);
    const loss = m.evaluate(batch).loss;
    m.eval(); // re-packs the trained weights explicitly
    expect(got).toEqual(Array.from(m.predict(batch).data));
    expect(loss).toBe(m.evaluate(batch).loss);
    m.dispose();
  });

  it("training steps do not grow the heap (every activation is per-call scratch)", () => {
    for (const b of bks) {
      const m = LSTMClassifier.create(
        { vocabSize: 9, embeddingDim: 5, hiddenSize: 7, numLayers: 2, bidirectional: true, numClasses: 2 },
        { runtime: b.make() },
      );
      const batch = [
        { ids: [1, 2, 3], label: 1 },
        { ids: [3, 2, 1], label: 0 },
      ];
      m.lossAndGrad(batch, 1);
      const used = m.runtime.heap.used();
      for (let i = 0; i < 3; i++) m.lossAndGrad(batch, 1);
      expect(m.runtime.heap.used(), b.name).toBe(used);
      m.dispose();
    }
  });

  it("labels out of range, ragged sequences and wrong feature counts are typed errors naming the example", () => {
    const lstm = LSTMClassifier.create({ vocabSize: 9, embeddingDim: 4, hiddenSize: 5, numClasses: 3 });
    expect(() => lstm.lossAndGrad([{ ids: [1, 2], label: 3 }], 1)).toThrow(InputError);
    expect(() => lstm.lossAndGrad([{ ids: [1, 2], label: 3 }], 1)).toThrow(/label 3 at position 0/);
    expect(() =>
      lstm.lossAndGrad(
        [
          { ids: [1, 2], label: 0 },
          { ids: [1], label: 0 },
        ],
        1,
      ),
    ).toThrow(ShapeError);
    expect(() => lstm.lossAndGrad([{ ids: [1, 12], label: 0 }], 1)).toThrow(/id 12 at flat position 1/);
    expect(() => lstm.lossAndGrad([{ ids: [1, 2], label: 0.5 }], 1)).toThrow(/example 0: label 0.5/);
    // rejected batches wrote no gradient, and the model stays usable
    for (const p of lstm.parameters()) expect(lstm.runtime.heap.f32(p.grad, p.size).every((v) => v === 0)).toBe(true);
    expect(lstm.lossAndGrad([{ ids: [1, 2], label: 1 }], 1).count).toBe(1);
    lstm.dispose();
    expect(() => MLPClassifier.create({ inputSize: 3, hiddenSize: -4, numClasses: 2 })).toThrow(ConfigError);
    expect(() => MLPClassifier.create({ inputSize: 3, hiddenSize: -4, numClasses: 2 })).toThrow(/hiddenSize/);
    expect(() =>
      LSTMClassifier.create({ vocabSize: 9, embeddingDim: 4, hiddenSize: 5, numClasses: 2, numLayers: 1.5 }),
    ).toThrow(/numLayers/);
    const mlp = MLPClassifier.create({ inputSize: 3, hiddenSize: 4, numClasses: 2 });
    expect(() => mlp.lossAndGrad([{ x: [1, 2], label: 0 }], 1)).toThrow(/example 0: x has 2 features, expected 3/);
    mlp.dispose();
  });
});
