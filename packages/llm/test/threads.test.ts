/**
 * GPT-2 on the kernel threads: prefill (all logits, attention weights) and decode steps give the
 * same bits on 1, 2 and 3 threads, with shapes large enough that GEMMs, the packed GEMM, the
 * decode GEMV and attention are split; an abort in the middle of a threaded generation leaves the
 * model usable (the next generation equals the one-thread result); dispose works with threads.
 * A training step (gradients, then AdamW) gives the same bits on 1, 2 and 3 threads, GPT-2 and a
 * GQA Llama, with batches large enough that the attention backward's slice groups, the norm and
 * optimizer kernels and the zeroing are split.
 */
import { AbortError, init, terminateThreads, threadsInfo } from "@wasmformer/core";
import { AdamW } from "@wasmformer/nn";
import { afterAll, describe, expect, test } from "vitest";
import { type CausalLM, GPT2LMHeadModel } from "../src/gpt2-model.js";
import { LlamaForCausalLM } from "../src/llama-model.js";
import { makeTiny, source } from "./tiny-gpt2.js";
import { makeTinyLlama } from "./tiny-llama.js";

const tiny = makeTiny({ V: 300, E: 128, H: 4, L: 2, P: 160, seed: 5 });
const prompt = Array.from({ length: 100 }, (_, i) => (i * 37 + 11) % 300);

afterAll(async () => {
  terminateThreads();
  await init({ threads: 1 });
});

async function run(threads: number) {
  await init({ threads });
  const model = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors));
  expect(model.runtime.threads).toBe(threads);
  const before = threadsInfo().splitCalls;
  const p = model.prefill([prompt], { logits: "all", outputAttentions: true });
  const out: Float32Array[] = [p.logits!.data as Float32Array, ...p.attentions!.map((a) => a.data as Float32Array)];
  for (let s = 0; s < 4; s++) out.push(model.decode([(s * 53) % 300]).logits.data as Float32Array);
  const greedy = await model.generateAll(prompt.slice(0, 20), { maxNewTokens: 12, stopIds: [] });
  if (threads > 1) expect(threadsInfo().splitCalls).toBeGreaterThan(before);
  return { model, bits: out.map((a) => new Uint32Array(a.slice().buffer)), greedy: greedy.ids };
}

describe("GPT-2 on kernel threads", () => {
  test("prefill, attention weights and decode steps: same bits on 1, 2 and 3 threads", async () => {
    const one = await run(1);
    for (const t of [2, 3]) {
      const r = await run(t);
      expect(r.bits.length).toBe(one.bits.length);
      r.bits.forEach((b, i) => {
        expect(Buffer.from(b.buffer).equals(Buffer.from(one.bits[i].buffer)), `output ${i} at ${t} threads`).toBe(true);
      });
      expect(r.greedy).toEqual(one.greedy);
      expect(one.greedy[0]).toHaveLength(12);
      r.model.dispose();
    }
    one.model.dispose();
  });

  test("an abort during a threaded generation leaves the model and the pool usable", async () => {
    await init({ threads: 1 });
    const m1 = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors));
    const want = (await m1.generateAll(prompt.slice(0, 30), { maxNewTokens: 10, stopIds: [] })).ids;
    await init({ threads: 2 });
    const m2 = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors));
    const ac = new AbortController();
    let n = 0;
    await expect(
      m2.generateAll(prompt.slice(0, 30), {
        maxNewTokens: 40,
        stopIds: [],
        signal: ac.signal,
        onToken: () => {
          if (++n === 3) ac.abort();
        },
      }),
    ).rejects.toThrow(AbortError);
    expect(m2.runtime.threads).toBe(2);
    const again = await m2.generateAll(prompt.slice(0, 30), { maxNewTokens: 10, stopIds: [] });
    expect(again.ids).toEqual(want);
    expect(want[0]).toHaveLength(10);
    m2.dispose();
    m1.dispose();
  });
});

describe("training on kernel threads", () => {
  const gpt2 = makeTiny({ V: 300, E: 128, H: 4, L: 2, P: 160, seed: 7 });
  const llama = makeTinyLlama({ V: 300, D: 128, H: 8, KV: 2, headDim: 16, I: 256, L: 2, P: 80, seed: 8 });
  const batch = Array.from({ length: 4 }, (_, b) => Array.from({ length: 64 }, (_, t) => (b * 97 + t * 31 + 5) % 300));

  /** Gradients after one lossAndGrad, then the parameters after an AdamW step, as bits. */
  async function step(threads: number, make: () => Promise<CausalLM>) {
    await init({ threads });
    const m = await make();
    expect(m.runtime.threads).toBe(threads);
    m.train({ maxBatch: 4, maxSeqLen: 64 });
    const opt = new AdamW(m.runtime, m.parameters(), { lr: 1e-2 });
    const before = threadsInfo().splitCalls;
    opt.zeroGrad();
    const loss = m.lossAndGrad(batch, 1).loss;
    const read = (ptr: number, n: number) => Buffer.from(m.runtime.heap.f32(ptr, n).slice().buffer);
    const grads = m.parameters().map((p) => read(p.grad, p.size));
    opt.step();
    const params = m.parameters().map((p) => read(p.ptr, p.size));
    if (threads > 1) expect(threadsInfo().splitCalls).toBeGreaterThan(before);
    m.dispose();
    return { loss, grads, params };
  }

  test.each([
    ["GPT-2", () => GPT2LMHeadModel.fromWeights(gpt2.config, source(gpt2.tensors))],
    ["Llama, 4 query heads a key head", () => LlamaForCausalLM.fromWeights(llama.config, source(llama.tensors))],
  ] as const)("%s: gradients and the AdamW step give the same bits on 1, 2 and 3 threads", async (_name, make) => {
    const one = await step(1, make);
    expect(Number.isFinite(one.loss)).toBe(true);
    for (const t of [2, 3]) {
      const r = await step(t, make);
      expect(r.loss).toBe(one.loss);
      for (const [i, g] of r.grads.entries())
        expect(g.equals(one.grads[i]), `gradient ${i} at ${t} threads`).toBe(true);
      for (const [i, p] of r.params.entries())
        expect(p.equals(one.params[i]), `parameter ${i} at ${t} threads`).toBe(true);
    }
  });
});
