/**
 * The decoder's forward is written once (decoder-forward.ts, issue 14 §2): inference (`prefill`,
 * `decode`) and training (`lossAndGrad`, `evaluate`) run the same embedding, block, final-norm and
 * LM-head steps, training on its kept buffers and the checkpoint layout. A second copy of the
 * layer sequence in train.ts would not call these steps, and would be free to drift from them.
 */
import { createRefRuntime, init } from "@wasmformer/core";
import { afterEach, beforeAll, describe, expect, test, vi } from "vitest";
import { DecoderForward } from "../src/decoder-forward.js";
import type { CausalLM } from "../src/gpt2-model.js";
import { GPT2LMHeadModel } from "../src/gpt2-model.js";
import { LlamaForCausalLM } from "../src/llama-model.js";
import { sgdStepByHand } from "./sgd-by-hand.js";
import { makeTiny, source } from "./tiny-gpt2.js";
import { makeTinyLlama } from "./tiny-llama.js";

beforeAll(async () => {
  await init();
});
afterEach(() => {
  vi.restoreAllMocks();
});

type Kind = "gpt2 packed" | "gpt2 blocks" | "gpt2 linear" | "llama packed" | "llama blocks";
const KINDS: Kind[] = ["gpt2 packed", "gpt2 blocks", "gpt2 linear", "llama packed", "llama blocks"];

async function load(kind: Kind): Promise<CausalLM<never>> {
  const layout = kind.endsWith("blocks")
    ? { colBlock: 24, headBlock: 16 }
    : kind.endsWith("linear")
      ? { colBlock: 0 }
      : {};
  const runtime = createRefRuntime();
  if (kind.startsWith("gpt2")) {
    const tiny = makeTiny({ seed: 5, V: 45, E: 16, L: 2 });
    const m = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), { runtime, maxBatch: 2, ...layout });
    return m as unknown as CausalLM<never>;
  }
  const tiny = makeTinyLlama({ seed: 6 });
  const m = await LlamaForCausalLM.fromWeights(tiny.config, source(tiny.tensors), { runtime, maxBatch: 2, ...layout });
  return m as unknown as CausalLM<never>;
}

const ids = [
  [3, 1, 4, 1, 5, 9, 2],
  [6, 5, 3, 5, 8, 9, 7],
];

/** Mean cross-entropy of next-token prediction from `[B, T, V]` logits, in f64. */
function lossOf(logits: Float32Array, V: number): number {
  let sum = 0;
  let count = 0;
  for (const [b, row] of ids.entries()) {
    for (let t = 0; t + 1 < row.length; t++) {
      const z = logits.subarray((b * row.length + t) * V, (b * row.length + t + 1) * V);
      let max = -Infinity;
      for (const v of z) max = Math.max(max, v);
      let s = 0;
      for (const v of z) s += Math.exp(v - max);
      sum += Math.log(s) + max - z[row[t + 1]];
      count++;
    }
  }
  return sum / count;
}

describe.each(KINDS)("one forward for inference and training (%s)", (kind) => {
  test("prefill and lossAndGrad run the same block steps, once per layer", async () => {
    const m = await load(kind);
    const L = m.arch.layers;
    const block = vi.spyOn(DecoderForward.prototype, "block");
    const linear = vi.spyOn(DecoderForward.prototype, "linear");
    const head = vi.spyOn(DecoderForward.prototype, "lmHead");
    m.prefill(ids, { logits: "all" });
    expect(block).toHaveBeenCalledTimes(L);
    const inferenceLinears = linear.mock.calls.length;
    expect(inferenceLinears).toBeGreaterThanOrEqual(4 * L);

    m.train({ maxBatch: 2, maxSeqLen: 7 });
    block.mockClear();
    linear.mockClear();
    head.mockClear();
    m.lossAndGrad(ids, 1);
    // the training forward is the shared one: the same blocks and matrix products on the checkpoint
    // layout (the backward's products are its own, `linBack`), then the shared LM head
    expect(block).toHaveBeenCalledTimes(L);
    expect(block.mock.calls.map((c) => c[0])).toEqual(Array.from({ length: L }, (_, l) => l));
    expect(linear).toHaveBeenCalledTimes(inferenceLinears);
    expect(head).toHaveBeenCalled();
    block.mockClear();
    m.evaluate(ids);
    expect(block).toHaveBeenCalledTimes(L);
  });

  test("the training forward's loss is the loss of the inference logits", async () => {
    const m = await load(kind);
    const V = m.arch.vocab;
    const inference = lossOf(m.prefill(ids, { logits: "all" }).logits!.data, V);
    m.train({ maxBatch: 2, maxSeqLen: 7 });
    const training = m.evaluate(ids).loss;
    expect(Math.abs(training - inference)).toBeLessThan(1e-5 * Math.max(1, Math.abs(inference)));
    // and after an update in training mode, inference reads the updated weights through the same steps
    sgdStepByHand(m, ids, 0.1);
    const trained = m.evaluate(ids).loss;
    expect(trained).toBeLessThan(training);
    m.eval();
    const after = lossOf(m.prefill(ids, { logits: "all" }).logits!.data, V);
    expect(Math.abs(after - trained)).toBeLessThan(1e-5 * Math.max(1, Math.abs(trained)));
  });
});
