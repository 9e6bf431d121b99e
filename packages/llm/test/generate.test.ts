/**
 * Sampling, stopping, streaming and cancellation of `generate`, on a tiny random GPT-2 with a
 * character tokenizer (one token per character; a few tokens are single UTF-8 bytes of "é" and "🙂"
 * so that a character spans tokens).
 */
import { AbortError, init } from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import { GPT2LMHeadModel } from "../src/gpt2-model.js";
import { applyRepetitionPenalty, candidates, Rng, sampleToken } from "../src/sampler.js";
import { TextStreamer, type Tokenizer } from "../src/tokenizer.js";
import { makeTiny, refGreedy, source } from "./tiny-gpt2.js";

// ids 0..25 = "a".."z", 26 = " ", 27/28 = the two bytes of "é", 29..32 = the four bytes of "🙂", 39 = eos
const enc = new TextEncoder();
const MULTI = [...enc.encode("é"), ...enc.encode("🙂")];
const charTok: Tokenizer = {
  encode: (s) => [...s].map((ch) => (ch === " " ? 26 : ch.charCodeAt(0) - 97)),
  decode: (ids) =>
    new TextDecoder().decode(Uint8Array.from(Array.from(ids).flatMap((id) => [...charTok.tokenBytes!(id)]))),
  tokenBytes: (id) =>
    id < 26
      ? Uint8Array.of(97 + id)
      : id === 26
        ? Uint8Array.of(32)
        : id < 33
          ? Uint8Array.of(MULTI[id - 27])
          : enc.encode(`<${id}>`),
  isSpecial: (id) => id === 39,
};

describe("sampler", () => {
  test("xoshiro128** is deterministic per seed and uniform enough", () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xs = Array.from({ length: 1000 }, () => a.random());
    expect(Array.from({ length: 1000 }, () => b.random())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c.random())).not.toEqual(xs);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });

  test("top-k keeps the k largest; top-p keeps the smallest prefix reaching p (after top-k)", () => {
    const logits = Float32Array.from([1, 3, 2, 0, 2.5, -1]);
    // probs descending: ids 1, 4, 2, 0, 3, 5
    expect(Array.from(candidates(logits, { temperature: 1, topK: 3 }).ids)).toEqual([1, 4, 2]);
    const p = candidates(logits, { temperature: 1 }).probs;
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    // nucleus: cumulative 0.459, 0.737, 0.906… → p = 0.7 keeps ids 1 and 4
    const c = candidates(logits, { temperature: 1, topP: 0.7 });
    const cum0 = p[0];
    expect(cum0).toBeLessThan(0.7);
    expect(cum0 + p[1]).toBeGreaterThanOrEqual(0.7);
    expect(Array.from(c.ids)).toEqual([1, 4]);
    expect(c.probs[0] + c.probs[1]).toBeCloseTo(1, 12);
    // top-p on the top-2 renormalised distribution: 0.62 of {1, 4} → only id 1
    expect(Array.from(candidates(logits, { temperature: 1, topK: 2, topP: 0.6 }).ids)).toEqual([1]);
    // temperature sharpens
    const cold = candidates(logits, { temperature: 0.1 }).probs;
    expect(cold[0]).toBeGreaterThan(0.99);
    // large vocab with a tiny nucleus: the pre-filter keeps the exact nucleus
    const big = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i) * 3);
    const full = candidates(big, { temperature: 1 });
    const nuc = candidates(big, { temperature: 1, topP: 0.5 });
    let cum = 0;
    let n = 0;
    while (cum < 0.5) cum += full.probs[n++];
    expect(Array.from(nuc.ids)).toEqual(Array.from(full.ids.subarray(0, n)));
  });

  test("top-k / top-p sets equal a brute-force sort (ties included); draws stay inside them", () => {
    const rng = new Rng(99);
    for (let c = 0; c < 40; c++) {
      const V = [5, 100, 3000][c % 3];
      const spread = [0.3, 3, 12][Math.floor(c / 3) % 3];
      // rounded logits: many exact ties
      const logits = Float32Array.from({ length: V }, () => Math.round((rng.random() - 0.5) * spread * 10) / 10);
      const o = {
        temperature: 0.5 + rng.random(),
        topK: c % 4 === 0 ? 1 + Math.floor(rng.random() * V) : 0,
        topP: c % 2 ? 0.05 + 0.9 * rng.random() : 1,
      };
      // brute force: weights, best first (lower id on ties), top-k, then the top-p prefix
      const max = Math.max(...logits);
      const w = Array.from(logits, (l) => Math.exp((l - max) / o.temperature));
      let order = [...w.keys()].sort((a, b) => w[b] - w[a] || a - b);
      if (o.topK > 0) order = order.slice(0, o.topK);
      const mass = order.reduce((acc, i) => acc + w[i], 0);
      let cum = 0;
      let n = 0;
      while (n < order.length) {
        cum += w[order[n]];
        n++;
        if (cum >= o.topP * mass) break;
      }
      const want = order.slice(0, n);
      const got = candidates(logits, o);
      expect(Array.from(got.ids), JSON.stringify(o)).toEqual(want);
      const allowed = new Set(want);
      for (let k = 0; k < 20; k++) expect(allowed.has(sampleToken(logits, o, rng))).toBe(true);
    }
  });

  test("repetition penalty as HF: positive logits divided, negative multiplied, once per token", () => {
    const l = Float32Array.from([2, -2, 1, 4]);
    applyRepetitionPenalty(l, [0, 1, 1, 0], 2);
    expect(Array.from(l)).toEqual([1, -4, 1, 4]);
  });

  test("sampling frequencies follow the filtered distribution", () => {
    const logits = Float32Array.from([0, Math.log(3), Math.log(6), -50]);
    const rng = new Rng(7);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 20000; i++) counts[sampleToken(logits, { temperature: 1 }, rng)]++;
    expect(counts[0] / 20000).toBeCloseTo(0.1, 1);
    expect(counts[1] / 20000).toBeCloseTo(0.3, 1);
    expect(counts[2] / 20000).toBeCloseTo(0.6, 1);
    const k2 = [0, 0, 0, 0];
    for (let i = 0; i < 5000; i++) k2[sampleToken(logits, { temperature: 1, topK: 2 }, rng)]++;
    expect(k2[0] + k2[3]).toBe(0);
  });
});

describe("TextStreamer", () => {
  test("holds back incomplete UTF-8 characters until the token that completes them", () => {
    const s = new TextStreamer(charTok);
    const out = [0, 27, 28, 26, 29, 30, 31, 32, 1].map((id) => s.push(id));
    expect(out).toEqual(["a", "", "é", " ", "", "", "", "🙂", "b"]);
    // a special token ends pending bytes, as a one-shot decode does
    const s3 = new TextStreamer(charTok);
    const ids = [0, 27, 39, 28, 1];
    expect(ids.map((id) => s3.push(id)).join("") + s3.flush()).toBe(charTok.decode(ids));
    const s2 = new TextStreamer({ encode: charTok.encode, decode: charTok.decode }); // without tokenBytes
    const out2 = [0, 27, 28, 29, 30, 31, 32].map((id) => s2.push(id));
    expect(out2.join("")).toBe("aé🙂");
    expect(out2[1]).toBe("");
  });
});

describe("generate", () => {
  let model: GPT2LMHeadModel;
  let tiny: ReturnType<typeof makeTiny>;
  beforeAll(async () => {
    await init();
    tiny = makeTiny({ seed: 11, P: 64 });
    model = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), { maxBatch: 2 });
    model.tokenizer = charTok;
  });

  test("a seed makes sampling deterministic; another seed changes it", async () => {
    const opts = { maxNewTokens: 30, temperature: 1.5, seed: 123, stopIds: [] };
    const a = await model.generateAll("hello", opts);
    const b = await model.generateAll("hello", opts);
    const c = await model.generateAll("hello", { ...opts, seed: 124 });
    expect(a.ids).toEqual(b.ids);
    expect(a.ids).not.toEqual(c.ids);
    // top-k 1 is greedy whatever the seed
    const g = await model.generateAll("hello", { maxNewTokens: 10, stopIds: [] });
    const k1 = await model.generateAll("hello", { maxNewTokens: 10, temperature: 2, topK: 1, seed: 5, stopIds: [] });
    expect(k1.ids).toEqual(g.ids);
  });

  test("streaming: the iterator and onToken see the same chunks; texts and logprobs add up", async () => {
    const seen: number[] = [];
    const chunks = [];
    const it = model.generate("ab", {
      maxNewTokens: 12,
      temperature: 1,
      seed: 3,
      stopIds: [],
      logprobs: true,
      onToken: (c) => seen.push(c.token),
    });
    let r = await it.next();
    while (!r.done) {
      chunks.push(r.value);
      r = await it.next();
    }
    const result = r.value;
    expect(chunks.map((c) => c.token)).toEqual(seen);
    expect(result.ids[0]).toEqual(seen);
    expect(chunks.map((c) => c.step)).toEqual(seen.map((_, i) => i));
    expect(chunks.map((c) => c.text).join("")).toBe(result.texts[0]);
    expect(result.texts[0]).toBe(
      new TextDecoder().decode(Uint8Array.from(seen.flatMap((id) => [...charTok.tokenBytes!(id)]))),
    );
    for (const c of chunks) {
      expect(c.logprob).toBeLessThanOrEqual(0);
      expect(c.logprob).toBeGreaterThan(-50);
    }
  });

  test("greedy logprobs are the largest log-probability of the step", async () => {
    const r = await model.generateAll([1, 2, 3], { maxNewTokens: 3, stopIds: [], logprobs: true });
    const { logits } = model.prefill([[1, 2, 3]]);
    const row = logits!.data;
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    expect(r.logprobs![0][0]).toBeCloseTo(max - lse, 4);
  });

  test("stop strings end a row once its text contains them; stop ids end it after the id", async () => {
    const greedy = await model.generateAll("ab", { maxNewTokens: 25, stopIds: [] });
    const text = greedy.texts[0];
    expect(text.length).toBeGreaterThan(4);
    const stop = text.slice(2, 4); // two characters generated at steps 2-3 (ASCII or not, as generated)
    const stopped = await model.generateAll("ab", { maxNewTokens: 25, stopIds: [], stop: [stop] });
    expect(stopped.finishReasons).toEqual(["stop_string"]);
    expect(stopped.texts[0].endsWith(stop) || stopped.texts[0].includes(stop)).toBe(true);
    expect(stopped.ids[0].length).toBeLessThan(greedy.ids[0].length);
    expect(greedy.ids[0].slice(0, stopped.ids[0].length)).toEqual(stopped.ids[0]);
    // a stop id: the row ends right after that token
    const id = greedy.ids[0][3];
    const first = greedy.ids[0].indexOf(id);
    const byId = await model.generateAll("ab", { maxNewTokens: 25, stopIds: [id] });
    expect(byId.finishReasons).toEqual(["stop_id"]);
    expect(byId.ids[0]).toEqual(greedy.ids[0].slice(0, first + 1));
  });

  test("batched generation: rows finish independently", async () => {
    const a = await model.generateAll("abc", { maxNewTokens: 10, stopIds: [] });
    const b = await model.generateAll("zz", { maxNewTokens: 10, stopIds: [] });
    const stopId = a.ids[0][2];
    const both = await model.generateAll(["abc", "zz"], { maxNewTokens: 10, stopIds: [stopId] });
    const cut = (ids: number[]) => (ids.includes(stopId) ? ids.slice(0, ids.indexOf(stopId) + 1) : ids);
    expect(both.ids[0]).toEqual(cut(a.ids[0]));
    expect(both.ids[1]).toEqual(cut(b.ids[0]));
  });

  test("an AbortSignal stops generation with an AbortError", async () => {
    const ac = new AbortController();
    const got: number[] = [];
    const p = (async () => {
      for await (const c of model.generate("ab", { maxNewTokens: 40, stopIds: [], signal: ac.signal })) {
        got.push(c.token);
        if (got.length === 3) ac.abort();
      }
    })();
    await expect(p).rejects.toThrow(AbortError);
    expect(got.length).toBe(3);
    // aborted from a timer while generating (the loop yields to the event loop between steps)
    const ac2 = new AbortController();
    let n = 0;
    setTimeout(() => ac2.abort(new Error("user cancelled")), 0);
    await expect(
      model.generateAll("ab", { maxNewTokens: 60, stopIds: [], signal: ac2.signal, onToken: () => n++ }),
    ).rejects.toThrow(/aborted: user cancelled/);
    expect(n).toBeLessThan(60);
    await expect(model.generateAll("ab", { signal: AbortSignal.abort() })).rejects.toThrow(AbortError);
  });

  test("attention weights per chunk, on request", async () => {
    const chunks = [];
    for await (const c of model.generate("abcd", { maxNewTokens: 3, stopIds: [], outputAttentions: true }))
      chunks.push(c);
    expect(chunks[0].attentions).toHaveLength(2);
    expect(chunks[0].attentions![0].shape).toEqual([4, 4]);
    expect(chunks[2].attentions![1].shape).toEqual([4, 6]);
    const row = chunks[2].attentions![1].data.subarray(0, 6);
    expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  test("greedy generation reproduces the f64 reference from a text prompt", async () => {
    const prompt = charTok.encode("hello world");
    const want = refGreedy(tiny, prompt, 12);
    expect(want.margin).toBeGreaterThan(1e-3);
    const r = await model.generateAll("hello world", { maxNewTokens: 12, stopIds: [] });
    expect(r.ids[0]).toEqual(want.ids);
  });
});
