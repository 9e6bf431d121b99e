// Word2Vec training: it learns planted structure (topic words become each other's nearest neighbours),
// on the wasm and the reference backend, for skip-gram and CBOW; determinism for a seed; progress and
// cancellation; saving.
import {
  AbortError,
  createRefRuntime,
  createRuntime,
  DisposedError,
  InputError,
  init,
  type Runtime,
} from "@wasmformer/core";
import { beforeAll, describe, expect, it } from "vitest";
import { WordVectors } from "../src/word-vectors.js";
import { Word2Vec, type Word2VecProgress } from "../src/word2vec.js";
import { rng } from "./corpus.js";

beforeAll(async () => {
  await init();
});

const TOPICS = 20;
const PER = 6;
const topicWord = (t: number, i: number) => `t${t}w${i}`;

/** Sentences of 10 words: 70% from one topic, 30% from a shared pool of 40 filler words. */
function plantedCorpus(n: number, seed: number): string[][] {
  const r = rng(seed);
  const out: string[][] = [];
  for (let s = 0; s < n; s++) {
    const t = Math.floor(r() * TOPICS);
    const sent: string[] = [];
    for (let i = 0; i < 10; i++)
      sent.push(r() < 0.7 ? topicWord(t, Math.floor(r() * PER)) : `f${Math.floor(r() * 40)}`);
    out.push(sent);
  }
  return out;
}

function neighbourQuality(wv: WordVectors) {
  let top1 = 0;
  let p5 = 0;
  let n = 0;
  for (let t = 0; t < TOPICS; t++) {
    for (let i = 0; i < PER; i++) {
      const nb = wv.mostSimilar(topicWord(t, i), PER - 1).map((x) => x.word);
      if (nb[0]?.startsWith(`t${t}w`)) top1++;
      p5 += nb.filter((w) => w.startsWith(`t${t}w`)).length / (PER - 1);
      n++;
    }
  }
  return { top1: top1 / n, p5: p5 / n };
}

const corpus = plantedCorpus(3000, 5);

describe("Word2Vec learns planted structure", () => {
  for (const backend of ["wasm", "ref"] as const) {
    for (const model of ["skipgram", "cbow"] as const) {
      it(`${model} on ${backend}: planted neighbours rank first`, async () => {
        const runtime = backend === "wasm" ? createRuntime() : createRefRuntime();
        if (backend === "wasm") expect(runtime.backend).toMatch(/^wasm/);
        const { vectors, epochLoss } = await Word2Vec.train(corpus, {
          model,
          dim: 32,
          window: 3,
          negative: 5,
          minCount: 1,
          sample: 0,
          epochs: model === "cbow" ? 8 : 5,
          seed: 1,
          runtime,
        });
        expect(vectors.size).toBe(TOPICS * PER + 40);
        const q = neighbourQuality(vectors);
        expect(q.top1).toBe(1); // every topic word's nearest neighbour is from its topic
        expect(q.p5).toBeGreaterThan(0.95);
        expect(epochLoss[epochLoss.length - 1]).toBeLessThan(epochLoss[0]); // the loss goes down
      });
    }
  }
});

describe("Word2Vec training loop", () => {
  const small = plantedCorpus(300, 8);
  const base = { dim: 16, window: 2, negative: 3, minCount: 1, epochs: 2 };

  it("is deterministic for a seed", async () => {
    const a = await Word2Vec.train(small, { ...base, seed: 7 });
    const b = await Word2Vec.train(small, { ...base, seed: 7 });
    const c = await Word2Vec.train(small, { ...base, seed: 8 });
    expect(b.vectors.vectors).toEqual(a.vectors.vectors);
    expect(b.vectors.words).toEqual(a.vectors.words);
    expect(c.vectors.vectors).not.toEqual(a.vectors.vectors);
  });

  it("reports progress (words/s, loss, learning rate) and can be cancelled", async () => {
    const seen: Word2VecProgress[] = [];
    await Word2Vec.train(small, { ...base, progressIntervalMs: 0, onProgress: (p) => seen.push(p) });
    expect(seen.length).toBeGreaterThan(10);
    const last = seen[seen.length - 1];
    expect(last.progress).toBeCloseTo(1, 5);
    expect(last.wordsProcessed).toBe(last.totalWords);
    expect(last.wordsPerSec).toBeGreaterThan(0);
    expect(seen[0].alpha).toBeGreaterThan(last.alpha); // decays linearly
    expect(seen.every((p) => Number.isFinite(p.loss) && p.loss >= 0)).toBe(true);

    const ac = new AbortController();
    const big = plantedCorpus(20000, 9);
    let reports = 0;
    const run = Word2Vec.train(big, {
      ...base,
      epochs: 50,
      progressIntervalMs: 0,
      signal: ac.signal,
      onProgress: () => {
        if (++reports === 5) ac.abort();
      },
    });
    await expect(run).rejects.toBeInstanceOf(AbortError);
  });

  it("streams an async corpus (a function giving one pass per epoch), splits strings", async () => {
    const lines = small.map((s) => s.join(" "));
    const fromStrings = await Word2Vec.train(lines, { ...base, seed: 3 });
    const fromTokens = await Word2Vec.train(small, { ...base, seed: 3 });
    expect(fromStrings.vectors.vectors).toEqual(fromTokens.vectors.vectors);
    const streamed = await Word2Vec.train(
      async function* () {
        for (const l of lines) yield l;
      },
      { ...base, seed: 3 },
    );
    expect(streamed.vectors.vectors).toEqual(fromTokens.vectors.vectors);
  });

  it("saves as word2vec text and binary", async () => {
    const { vectors } = await Word2Vec.train(small, { ...base, seed: 2 });
    const back = WordVectors.load(vectors.toBinary());
    expect(back.vectors).toEqual(vectors.vectors);
    expect(WordVectors.load(vectors.toText()).vectors).toEqual(vectors.vectors);
    expect(back.mostSimilar("t0w0", 3)).toEqual(vectors.mostSimilar("t0w0", 3));
  });

  it("rejects bad options with typed errors", async () => {
    await expect(Word2Vec.train(small, { ...base, minCount: 1e6 })).rejects.toBeInstanceOf(InputError);
    await expect(Word2Vec.train(small, { ...base, model: "glove" as "cbow" })).rejects.toThrow(/model/);
    await expect(Word2Vec.train(small, { ...base, dim: 0 })).rejects.toThrow(/dim/);
    await expect(Word2Vec.train([3 as unknown as string], { ...base })).rejects.toThrow(/sentence 0/);
  });
});

describe("Word2Vec under hostile use (issue 13)", () => {
  const r = rng(11);
  /** One sentence of 50k words: the whole corpus is a single long text. */
  const longText = Array.from({ length: 50_000 }, () => `w${Math.floor(r() * 300)}`).join(" ");
  const opts = { dim: 16, window: 3, negative: 3, minCount: 1 };

  it("one long text: timers tick during training", async () => {
    let ticks = 0;
    const iv = setInterval(() => ticks++, 1);
    try {
      const { vectors } = await Word2Vec.train([longText], { ...opts, epochs: 2 });
      expect(vectors.size).toBe(300);
    } finally {
      clearInterval(iv);
    }
    expect(ticks).toBeGreaterThan(2); // (was 0: the whole run blocked the event loop)
  });

  it("one long text: the signal aborts training, and its buffers are freed", async () => {
    const rt = createRuntime();
    const used = rt.heap.used();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    const run = Word2Vec.train([longText], { ...opts, epochs: 10_000, signal: ac.signal, runtime: rt });
    await expect(run).rejects.toBeInstanceOf(AbortError);
    expect(rt.heap.used()).toBe(used);
  });

  it("a tiny corpus with many epochs stays responsive; epochs 2e8 is a typed error at once", async () => {
    const ac = new AbortController();
    let ticks = 0;
    const iv = setInterval(() => {
      if (++ticks === 5) ac.abort();
    }, 1);
    try {
      const run = Word2Vec.train([["a", "b", "a"]], { ...opts, epochs: 1_000_000, signal: ac.signal });
      await expect(run).rejects.toBeInstanceOf(AbortError);
    } finally {
      clearInterval(iv);
    }
    const huge = Word2Vec.train([["a", "b", "a"]], { ...opts, epochs: 2e8 });
    await expect(huge).rejects.toBeInstanceOf(InputError);
    await expect(Word2Vec.train([["a", "b", "a"]], { ...opts, epochs: 2e8 })).rejects.toThrow(
      "epochs must be at most 1000000, got 200000000",
    );
  });

  it("sizes are checked before anything is allocated", async () => {
    const tiny = [["a", "b", "a"]];
    await expect(Word2Vec.train(tiny, { ...opts, dim: 1e9 })).rejects.toThrow(
      /dim 1000000000 .*4 GiB of wasm32 memory/,
    );
    await expect(Word2Vec.train(tiny, { ...opts, window: 2e8 })).rejects.toThrow(/window 200000000,.*GiB/);
    await expect(Word2Vec.train(tiny, { ...opts, negative: 2e8 })).rejects.toBeInstanceOf(InputError);
    await expect(Word2Vec.train(tiny, { ...opts, maxVocab: 0 })).rejects.toThrow(/maxVocab/);
    await expect(Word2Vec.train([["a", 3 as unknown as string]], opts)).rejects.toThrow(/sentence 0, token 1/);
    await expect(Word2Vec.train(["a b"], { ...opts, tokenize: () => "a" as unknown as string[] })).rejects.toThrow(
      InputError,
    );
  });

  it("the vectors own the runtime made for training; dispose() releases it", async () => {
    const small = plantedCorpus(50, 3);
    const { vectors } = await Word2Vec.train(small, { ...opts, epochs: 1 });
    const rt = (vectors as unknown as { rt: Runtime }).rt;
    vectors.dispose();
    expect(() => vectors.mostSimilar("t0w0")).toThrow(DisposedError);
    expect(createRuntime()).toBe(rt);
    const mine = createRuntime();
    const kept = await Word2Vec.train(small, { ...opts, epochs: 1, runtime: mine });
    kept.vectors.dispose();
    expect(createRuntime()).not.toBe(mine); // a runtime passed in is not released
  });
});
