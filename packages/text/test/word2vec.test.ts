// Word2Vec training: it learns planted structure (topic words become each other's nearest neighbours),
// on the wasm and the reference backend, for skip-gram and CBOW; determinism for a seed; progress and
// cancellation; saving.
import { AbortError, createRefRuntime, createRuntime, InputError, init } from "@wasmformer/core";
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
