// cosineSimilarity, EmbeddingIndex and semanticSearch against float64 brute force, on the reference
// backend and on wasm.
import { DisposedError, InputError, init, ShapeError, Tensor } from "@wasmformer/core";
import { rng } from "@wasmformer/test-utils";
import { beforeAll, describe, expect, it } from "vitest";
import { cosineSimilarity, EmbeddingIndex, semanticSearch } from "../src/search.js";

const cos = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / (Math.max(Math.sqrt(aa), 1e-12) * Math.max(Math.sqrt(bb), 1e-12));
};
const row = (t: Tensor, i: number) => t.data.subarray(i * t.shape[1]!, (i + 1) * t.shape[1]!) as Float32Array;

describe.each(["ref", "auto"] as const)("similarity and search on the %s backend", (backend) => {
  beforeAll(async () => {
    await init({ backend });
  });
  const r = rng(42);
  const corpus = r.tensor([53, 7]);
  const queries = r.tensor([5, 7]);

  it("cosineSimilarity of vectors and of matrices ([N, M] by GEMM)", () => {
    expect(cosineSimilarity([1, 0], [0, 2])).toBe(0);
    expect(cosineSimilarity(new Float32Array([3, 4]), [6, 8])).toBeCloseTo(1, 6);
    expect(cosineSimilarity([0, 0], [1, 1])).toBe(0);
    const m = cosineSimilarity(queries, corpus);
    expect(m.shape).toEqual([5, 53]);
    for (let i = 0; i < 5; i++)
      for (let j = 0; j < 53; j++) expect(m.data[i * 53 + j]).toBeCloseTo(cos(row(queries, i), row(corpus, j)), 5);
  });

  it.each(["cosine", "dot"] as const)("top-k by %s equals a float64 sort", (score) => {
    const index = new EmbeddingIndex(corpus, { score });
    const hits = index.search(queries, 6);
    expect(hits).toHaveLength(5);
    hits.forEach((h, q) => {
      const all = Array.from({ length: 53 }, (_, j) => {
        const s =
          score === "cosine"
            ? cos(row(queries, q), row(corpus, j))
            : row(queries, q).reduce((a, v, t) => a + v * row(corpus, j)[t]!, 0);
        return { corpusId: j, score: s };
      }).sort((a, b) => b.score - a.score);
      expect(h.map((x) => x.corpusId)).toEqual(all.slice(0, 6).map((x) => x.corpusId));
      for (const [i, x] of h.entries()) expect(x.score).toBeCloseTo(all[i]!.score, 5);
    });
    // one query as a vector; topK beyond the corpus: every row, best first
    const one = index.search(row(queries, 0), 100)[0]!;
    expect(one).toHaveLength(53);
    expect(one.slice(0, 6).map((x) => x.corpusId)).toEqual(hits[0]!.map((x) => x.corpusId));
    for (const [i, x] of hits[0]!.entries()) expect(one[i]!.score).toBeCloseTo(x.score, 6);
    index.dispose();
    expect(() => index.search(queries)).toThrow(DisposedError);
  });

  it("semanticSearch: an exact copy of a corpus row is its best hit, score 1", () => {
    const hits = semanticSearch(new Tensor(row(corpus, 17).slice(), [1, 7]), corpus, { topK: 2 });
    expect(hits[0]![0]!.corpusId).toBe(17);
    expect(hits[0]![0]!.score).toBeCloseTo(1, 5);
  });

  it("errors: widths, topK, corpus shape", () => {
    const index = new EmbeddingIndex(corpus);
    expect(() => index.search(r.tensor([2, 6]))).toThrow(ShapeError);
    expect(() => index.search(queries, 0)).toThrow(/topK must be a positive integer/);
    expect(() => index.search(queries, 1.5)).toThrow(InputError);
    expect(() => new EmbeddingIndex(r.tensor([7]))).toThrow(/corpus must be an f32 \[N, D\] tensor/);
    expect(() => new EmbeddingIndex(corpus, { score: "l2" as "dot" })).toThrow(InputError);
    expect(() => cosineSimilarity(queries, r.tensor([3, 8]))).toThrow(/a has width 7, b has 8/);
    expect(new EmbeddingIndex(Tensor.zeros([0, 7])).search(queries, 3)).toEqual([[], [], [], [], []]);
    index.dispose();
  });
});
