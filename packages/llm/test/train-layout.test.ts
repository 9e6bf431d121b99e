/**
 * Training keeps one copy of each matrix: the engine's buffer, rewritten in place between the
 * inference layout and the checkpoint layout (train.ts). Switching back and forth is exact, every
 * entry point switches as it must, and no second copy of the weights is made.
 */
import { createRefRuntime, createRuntime, init, type Runtime } from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import type { CausalLM } from "../src/gpt2-model.js";
import { GPT2LMHeadModel } from "../src/gpt2-model.js";
import { LlamaForCausalLM } from "../src/llama-model.js";
import { sgdStepByHand } from "./sgd-by-hand.js";
import { makeTiny, source } from "./tiny-gpt2.js";
import { makeTinyLlama } from "./tiny-llama.js";

beforeAll(async () => {
  await init();
});

const backends: [string, () => Runtime][] = [
  ["ref", () => createRefRuntime()],
  ["wasm", () => createRuntime()],
];

type Kind = "gpt2 packed" | "gpt2 blocks" | "gpt2 untied" | "llama packed" | "llama blocks";

async function load(kind: Kind, runtime: Runtime): Promise<{ m: CausalLM<never>; weightFloats: number }> {
  const layout = kind.endsWith("blocks") ? { colBlock: 24, headBlock: 16 } : {};
  if (kind.startsWith("gpt2")) {
    const tiny = makeTiny({ seed: 11, V: 45, E: 16, L: 2 });
    const config = { ...tiny.config, ...(kind === "gpt2 untied" ? { tie_word_embeddings: false } : {}) };
    const tensors = new Map(tiny.tensors);
    if (kind === "gpt2 untied") {
      const wte = tensors.get("transformer.wte.weight") ?? tensors.get("wte.weight")!;
      const head = wte.data.slice() as Float32Array;
      for (let i = 0; i < head.length; i++) head[i] = head[i] * 0.5 + ((i % 7) - 3) * 0.01;
      tensors.set(
        "lm_head.weight",
        new (wte.constructor as typeof import("@wasmformer/core").Tensor)(head, [...wte.shape]),
      );
    }
    const m = await GPT2LMHeadModel.fromWeights(config, source(tensors), { runtime, maxBatch: 2, ...layout });
    return { m: m as unknown as CausalLM<never>, weightFloats: count(tensors) };
  }
  const tiny = makeTinyLlama({ seed: 12 });
  const m = await LlamaForCausalLM.fromWeights(tiny.config, source(tiny.tensors), { runtime, maxBatch: 2, ...layout });
  return { m: m as unknown as CausalLM<never>, weightFloats: count(tiny.tensors) };
}

function count(tensors: Map<string, { shape: readonly number[] }>): number {
  let n = 0;
  for (const t of tensors.values()) n += t.shape.reduce((a, b) => a * b, 1);
  return n;
}

const ids = [
  [3, 1, 4, 1, 5, 9, 2],
  [6, 5, 3, 5, 8, 9, 7],
];
const batch = ids.map((r) => ({ inputIds: r, labels: r }));

const logitsOf = (m: CausalLM<never>) => {
  const out = m.prefill(ids, { logits: "all" }).logits!.data.slice();
  const next = m.decode([2, 8]).logits!.data.slice();
  return { out, next };
};

describe.each(backends)("one copy of the weights while training (%s)", (_b, runtime) => {
  test.each(["gpt2 packed", "gpt2 blocks", "gpt2 untied", "llama packed", "llama blocks"] as const)(
    "%s: layout switches are exact and complete",
    async (kind) => {
      const { m } = await load(kind, runtime());
      const before = logitsOf(m);

      // parameters() alone (checkpoint layout now) must not change inference
      const params = m.parameters();
      expect(params.length).toBeGreaterThan(0);
      const after = logitsOf(m);
      expect(after.out).toEqual(before.out);
      expect(after.next).toEqual(before.next);

      // a training step's loss is the same whether or not inference ran in between
      m.train({ maxBatch: 2, maxSeqLen: 7 });
      const l0 = m.evaluate(batch).loss;
      logitsOf(m);
      expect(m.evaluate(batch).loss).toBe(l0);
      const snapshot = m.stateDict();

      // stateDict() between prefill and decode leaves the decode step unchanged
      m.prefill(ids, { logits: "none" });
      m.stateDict();
      expect(m.decode([2, 8]).logits!.data.slice()).toEqual(before.next);

      // the checkpoint-layout values round-trip bitwise through inference calls
      for (const [name, t] of m.stateDict()) expect(t.data, name).toEqual(snapshot.get(name)!.data);

      // an update in training mode reaches inference
      sgdStepByHand(m, batch, 0.05);
      const lTrained = m.evaluate(batch).loss;
      expect(lTrained).toBeLessThan(l0);
      m.eval();
      expect(logitsOf(m).out).not.toEqual(before.out);
      m.train();
      expect(m.evaluate(batch).loss).toBe(lTrained);
    },
  );

  test("parameters() adds the gradients only: no master copy of the matrices", async () => {
    const { m, weightFloats } = await load("gpt2 packed", runtime());
    const heap = m.runtime.heap;
    const used0 = heap.used();
    m.parameters();
    const added = heap.used() - used0;
    // gradients (one float per weight) plus 16-byte alignment of each buffer
    expect(added).toBeGreaterThanOrEqual(4 * weightFloats);
    expect(added).toBeLessThan(4 * weightFloats + 16 * 64);
  });
});
