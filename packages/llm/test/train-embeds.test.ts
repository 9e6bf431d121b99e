/**
 * Training forward/backward with an `inputsEmbeds` part (the MiniGPT-4 recipe's frozen LLM): rows
 * equal to the token embeddings reproduce the ids-only loss, and their gradient is exactly the part
 * of the embedding table's gradient those positions scatter; `requiresGrad: false` gives the same
 * input gradient and writes no parameter gradient. GPT-2 (positions added to the spliced rows) and
 * Llama, reference and wasm backends.
 */
import { createRefRuntime, createRuntime, InputError, init, type Runtime, ShapeError } from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import type { CausalLM } from "../src/gpt2-model.js";
import { GPT2LMHeadModel } from "../src/gpt2-model.js";
import { LlamaForCausalLM } from "../src/llama-model.js";
import { makeTiny, source } from "./tiny-gpt2.js";
import { makeTinyLlama } from "./tiny-llama.js";

beforeAll(async () => {
  await init();
});

const backends: [string, () => Runtime][] = [
  ["ref", () => createRefRuntime()],
  ["wasm", () => createRuntime()],
];

async function load(kind: "gpt2" | "llama", runtime: Runtime): Promise<{ m: CausalLM<never>; embed: string }> {
  if (kind === "gpt2") {
    const tiny = makeTiny({ seed: 5 });
    const m = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), { runtime });
    return { m: m as unknown as CausalLM<never>, embed: "transformer.wte.weight" };
  }
  const tiny = makeTinyLlama({ seed: 6 });
  const m = await LlamaForCausalLM.fromWeights(tiny.config, source(tiny.tensors), { runtime });
  return { m: m as unknown as CausalLM<never>, embed: "model.embed_tokens.weight" };
}

describe.each(backends)("inputsEmbeds in training (%s)", (_b, runtime) => {
  test.each(["gpt2", "llama"] as const)("%s: spliced token rows = ids; gradient identity; frozen", async (kind) => {
    const { m, embed } = await load(kind, runtime());
    m.train({ maxBatch: 2, maxSeqLen: 7 });
    const E = m.arch.dim;
    const heap = m.runtime.heap;
    const P = new Map(m.parameters().map((p) => [p.name, p]));
    const wte = P.get(embed)!;
    const table = heap.f32(wte.ptr, wte.size).slice();
    const ids = [
      [3, 1, 4, 1, 5, 9, 2],
      [6, 5, 3, 5, 8, 9, 7],
    ];
    const labels = ids.map((r) => r.map((x, t) => (t < 3 ? -100 : x)));
    const start = [2, 1];
    const M = 3;
    const rows = (b: number) => {
      const d = new Float32Array(M * E);
      for (let i = 0; i < M; i++)
        d.set(table.subarray(ids[b][start[b] + i] * E, (ids[b][start[b] + i] + 1) * E), i * E);
      return d;
    };
    const plain = ids.map((r, b) => ({ inputIds: r, labels: labels[b] }));
    const spliced = ids.map((r, b) => ({
      inputIds: r.map((x, t) => (t >= start[b] && t < start[b] + M ? 0 : x)),
      labels: labels[b],
      inputsEmbeds: { start: start[b], data: rows(b) },
    }));
    m.zeroGrad?.();
    for (const p of m.parameters()) heap.f32(p.grad, p.size).fill(0);
    const a = m.lossAndGrad(plain, 1);
    const gPlain = new Map(m.parameters().map((p) => [p.name, heap.f32(p.grad, p.size).slice()]));
    for (const p of m.parameters()) heap.f32(p.grad, p.size).fill(0);
    const s = m.lossAndGrad(spliced, 1);
    expect(s.loss).toBeCloseTo(a.loss, 5);
    expect(s.embedsGrads).toHaveLength(2);
    // table gradient (ids) = table gradient (spliced) + the spliced rows' gradients scattered back
    const gS = heap.f32(wte.grad, wte.size).slice();
    for (let b = 0; b < 2; b++) {
      const g = s.embedsGrads![b]!;
      for (let i = 0; i < M; i++) {
        const id = ids[b][start[b] + i];
        for (let j = 0; j < E; j++) gS[id * E + j] += g[i * E + j];
      }
    }
    const ref = gPlain.get(embed)!;
    for (let i = 0; i < ref.length; i++) expect(gS[i]).toBeCloseTo(ref[i], 5);
    for (const p of m.parameters()) {
      if (p.name === embed) continue;
      const x = heap.f32(p.grad, p.size);
      const y = gPlain.get(p.name)!;
      for (let i = 0; i < y.length; i++) expect(x[i]).toBeCloseTo(y[i], 5);
    }
    expect(s.embedsGrads![0]!.some((x) => x !== 0)).toBe(true);

    // frozen: the same input gradient, no parameter gradient written
    m.train({ requiresGrad: false });
    for (const p of m.parameters()) heap.f32(p.grad, p.size).fill(7);
    const f = m.lossAndGrad(spliced, 1);
    expect(f.loss).toBe(s.loss);
    for (let b = 0; b < 2; b++) expect(f.embedsGrads![b]).toEqual(s.embedsGrads![b]);
    for (const p of m.parameters()) expect(heap.f32(p.grad, p.size).every((x) => x === 7)).toBe(true);
    // scale: the input gradient scales with it; scale 0 (a forward only) gives none
    const h = m.lossAndGrad(spliced, 0.5);
    for (let i = 0; i < M * E; i++) expect(h.embedsGrads![1]![i]).toBeCloseTo(0.5 * s.embedsGrads![1]![i], 6);
    expect(m.lossAndGrad(spliced, 0).embedsGrads).toBeUndefined();
    m.dispose();
  });
});

test("a bad inputsEmbeds part is a typed error naming the example", async () => {
  const tiny = makeTiny({ seed: 5 });
  const m = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors));
  m.train({ maxBatch: 1, maxSeqLen: 6 });
  const E = m.arch.dim;
  const ex = (start: number, data: ArrayLike<number>) => [{ inputIds: [1, 2, 3, 4], inputsEmbeds: { start, data } }];
  expect(() => m.lossAndGrad(ex(0, new Float32Array(E + 1)), 1)).toThrow(ShapeError);
  expect(() => m.lossAndGrad(ex(3, new Float32Array(2 * E)), 1)).toThrow(/example 0: inputsEmbeds.start 3/);
  expect(() => m.lossAndGrad(ex(-1, new Float32Array(E)), 1)).toThrow(InputError);
  const nan = new Float32Array(E);
  nan[2] = Number.NaN;
  expect(() => m.lossAndGrad(ex(0, nan), 1)).toThrow(/inputsEmbeds.data\[2\] is NaN/);
  expect(() => m.train({ requiresGrad: "no" as never })).toThrow(/requiresGrad must be a boolean/);
  m.dispose();
});
