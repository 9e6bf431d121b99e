import { init } from "@wasmformer/core";
import { beforeAll, describe, expect, it } from "vitest";
import { builtinCorpus } from "./corpus.js";
import { analogy, neighbours, pca2, project, trainWord2Vec } from "./embeddings.js";

describe("pca2", () => {
  it("finds the axes of an anisotropic cloud, in order, with their variance shares", () => {
    // points along (1, 1, 0)/√2 with spread 10, along (1, −1, 0)/√2 with spread 2, along z with 0.1
    const n = 400;
    const x = new Float32Array(n * 3);
    for (let i = 0; i < n; i++) {
      const a = 10 * Math.cos(i * 1.7);
      const b = 2 * Math.sin(i * 2.3);
      const c = 0.1 * Math.cos(i * 0.9);
      x.set([(a + b) / Math.SQRT2 + 5, (a - b) / Math.SQRT2 - 3, c], i * 3);
    }
    const { coords, explained } = pca2(x, n, 3);
    expect(explained[0]).toBeGreaterThan(0.9);
    expect(explained[0] + explained[1]).toBeGreaterThan(0.999);
    // PC1 reproduces a (up to sign), PC2 reproduces b
    let c1 = 0;
    let c2 = 0;
    for (let i = 0; i < n; i++) {
      c1 += coords[i * 2] * 10 * Math.cos(i * 1.7);
      c2 += coords[i * 2 + 1] * 2 * Math.sin(i * 2.3);
    }
    const norm = (f: (i: number) => number) =>
      Math.sqrt(Array.from({ length: n }, (_, i) => f(i) ** 2).reduce((s, v) => s + v, 0));
    expect(Math.abs(c1) / (norm((i) => coords[i * 2]) * norm((i) => 10 * Math.cos(i * 1.7)))).toBeGreaterThan(0.999);
    expect(Math.abs(c2) / (norm((i) => coords[i * 2 + 1]) * norm((i) => 2 * Math.sin(i * 2.3)))).toBeGreaterThan(0.99);
  });
});

describe("the built-in corpus trains vectors with the planted structure", () => {
  beforeAll(async () => {
    await init();
  });

  it("is deterministic for a seed", () => {
    expect(builtinCorpus(50, 3)).toEqual(builtinCorpus(50, 3));
    expect(builtinCorpus(50, 3)).not.toEqual(builtinCorpus(50, 4));
  });

  it("neighbours and analogies", { timeout: 120_000 }, async () => {
    const r = await trainWord2Vec(
      {
        corpus: "builtin",
        sentences: 8000,
        model: "skipgram",
        dim: 50,
        window: 4,
        negative: 5,
        epochs: 5,
        minCount: 1,
        seed: 1,
      },
      () => {},
    );
    expect(r.vocab).toBeGreaterThan(100);
    expect(r.epochLoss[r.epochLoss.length - 1]).toBeLessThan(r.epochLoss[0]);
    const capitals = ["rome", "madrid", "berlin", "moscow", "tokyo", "beijing", "cairo", "algiers", "abuja"];
    expect(neighbours("paris", 3).every((n) => capitals.includes(n.word))).toBe(true);
    expect(analogy("man", "king", "woman", 1)[0].word).toBe("queen");
    expect(analogy("france", "paris", "italy", 1)[0].word).toBe("rome");
    expect(() => neighbours("xyzzy", 3)).toThrow(/not in the vocabulary/);
    expect(project(["king", "queen", "nope", "man"]).words).toEqual(["king", "queen", "man"]);
    expect(() => project(["king", "nope"])).toThrow(/three words/);
  });
});
