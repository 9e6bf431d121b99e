// WordVectors: loading word2vec text/binary, GloVe and fastText .vec; cosine search (wasm vs reference
// backend); analogy; saving; typed errors with file positions.
import {
  createRefRuntime,
  createRuntime,
  DisposedError,
  InputError,
  init,
  ParseError,
  type Runtime,
  ShapeError,
} from "@wasmformer/core";
import { beforeAll, describe, expect, it } from "vitest";
import { formatF32, WordVectors } from "../src/word-vectors.js";
import { rng } from "./corpus.js";

beforeAll(async () => {
  await init();
});

const TOY = `6 4
man 1 0 0 0
woman 0 1 0 0
king 1 0 1 0
queen 0 1 1 0
apple 0 0 0 1
prince 1 0 0.9 0.1
`;

describe("WordVectors", () => {
  it("runs the search on wasm after init()", () => {
    const wv = WordVectors.load(TOY);
    expect(wv.backend).toMatch(/^wasm/);
    expect(wv.size).toBe(6);
    expect(wv.dim).toBe(4);
  });

  it("similarity, mostSimilar, analogy (king − man + woman = queen)", () => {
    const wv = WordVectors.load(TOY);
    expect(wv.similarity("king", "queen")).toBeCloseTo(0.5, 6);
    expect(wv.similarity("man", "apple")).toBeCloseTo(0, 6);
    expect(wv.similarity("king", "nope")).toBeNull();
    const ms = wv.mostSimilar("king", 3);
    expect(ms.map((n) => n.word)).toEqual(["prince", "man", "queen"]);
    expect(ms[0].similarity).toBeCloseTo((1 + 0.9) / (Math.SQRT2 * Math.hypot(1, 0.9, 0.1)), 5);
    const an = wv.analogy("man", "king", "woman", 2);
    expect(an[0].word).toBe("queen");
    // q = (−0.2929, 1, 0.7071, 0): cos(q, queen) = (0.7071 + 0.5) / |q|
    const q = [Math.SQRT1_2 - 1, 1, Math.SQRT1_2, 0];
    expect(an[0].similarity).toBeCloseTo((Math.SQRT1_2 + 0.5) / Math.hypot(...q), 5);
    expect(an.map((n) => n.word)).not.toContain("king");
    expect(wv.analogy("man", "king", "zzz")).toEqual([]);
    expect(wv.mostSimilar("zzz")).toEqual([]);
    expect(wv.mostSimilar([0, 1, 1, 0], 1)[0].word).toBe("queen");
    expect(() => wv.mostSimilar([1, 2, 3], 1)).toThrow(ShapeError);
    expect(wv.get("apple")).toEqual(Float32Array.of(0, 0, 0, 1));
    expect(wv.get("pear")).toBeUndefined();
  });

  it("wasm and reference search agree (100 queries, 2000 × 61)", () => {
    const r = rng(3);
    const n = 2000;
    const d = 61;
    const words = Array.from({ length: n }, (_, i) => `w${i}`);
    const data = Float32Array.from({ length: n * d }, () => r() - 0.5);
    const a = new WordVectors(words, data, d, createRuntime());
    const b = new WordVectors(words, data, d, createRefRuntime());
    expect(a.backend).not.toBe("ref");
    for (let q = 0; q < 100; q++) {
      const x = a.mostSimilar(`w${q * 7}`, 10);
      const y = b.mostSimilar(`w${q * 7}`, 10);
      expect(x.map((t) => t.word)).toEqual(y.map((t) => t.word));
      for (let i = 0; i < x.length; i++) expect(x[i].similarity).toBeCloseTo(y[i].similarity, 5);
    }
  });

  it("word2vec text and binary round trips are exact; formats are detected", () => {
    const r = rng(9);
    const words = ["a", "b", "ça", "日本", "x y"]; // a word with a space survives binary, and text on load
    const data = Float32Array.from({ length: 5 * 7 }, () => (r() - 0.5) * 10 ** Math.floor(r() * 6 - 3));
    const wv = new WordVectors(words, data, 7);
    const text = WordVectors.load(wv.toText());
    expect(text.words).toEqual(words);
    expect(text.vectors).toEqual(data);
    expect(() => wv.toBinary()).toThrow(/"x y"/); // word2vec binary ends a word at a space
    const wb = new WordVectors(words.slice(0, 4), data.slice(0, 4 * 7), 7);
    const bin = wb.toBinary();
    expect(WordVectors.load(bin).vectors).toEqual(data.slice(0, 4 * 7));
    expect(WordVectors.load(bin, { format: "word2vec-binary" }).words).toEqual(words.slice(0, 4));
    expect(WordVectors.load(new TextEncoder().encode(wv.toText())).vectors).toEqual(data);
    expect(formatF32(Math.fround(0.1))).toBe("0.1");
  });

  it("limit reads only the first vectors", () => {
    const wv = new WordVectors(["a", "b", "c"], Float32Array.of(1, 0, 0, 1, 1, 1), 2);
    expect(WordVectors.load(wv.toBinary(), { limit: 2 }).words).toEqual(["a", "b"]);
    expect(WordVectors.load(wv.toText(), { limit: 1 }).words).toEqual(["a"]);
    expect(WordVectors.load("a 1 2\nb 3 4\n", { limit: 1 }).size).toBe(1);
    expect(() => WordVectors.load(wv.toText(), { limit: -1 })).toThrow(/limit/);
  });

  it("loadAsync reads chunked streams (binary and text) like load()", async () => {
    const r = rng(21);
    const words = Array.from({ length: 300 }, (_, i) => `wörd${i}`);
    const data = Float32Array.from({ length: 300 * 9 }, () => r() - 0.5);
    const wv = new WordVectors(words, data, 9);
    const chunks = async function* (b: Uint8Array, size: number) {
      for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
    };
    const bin = wv.toBinary();
    const txt = new TextEncoder().encode(wv.toText());
    for (const size of [1, 7, 1000, 1 << 20]) {
      const a = await WordVectors.loadAsync(chunks(bin, size));
      expect(a.words).toEqual(words);
      expect(a.vectors).toEqual(data);
      const t = await WordVectors.loadAsync(chunks(txt, size));
      expect(t.vectors).toEqual(data);
    }
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(txt.subarray(0, 100));
        c.enqueue(txt.subarray(100));
        c.close();
      },
    });
    expect((await WordVectors.loadAsync(stream)).size).toBe(300);
    // limit stops reading early
    let pulled = 0;
    const counting = async function* () {
      for await (const c of chunks(bin, 64)) {
        pulled++;
        yield c;
      }
    };
    const first = await WordVectors.loadAsync(counting(), { limit: 10, format: "word2vec-binary" });
    expect(first.words).toEqual(words.slice(0, 10));
    expect(pulled).toBeLessThan(bin.length / 64 / 2);
    const glove = new TextEncoder().encode("the 0.1 -0.2\nof 1 2\n");
    expect((await WordVectors.loadAsync(chunks(glove, 3), { limit: 1 })).words).toEqual(["the"]);
  });

  it("loadAsync: truncated or lying files give positioned errors, not huge allocations", async () => {
    const one = async function* (b: Uint8Array) {
      yield b;
    };
    const bin = new WordVectors(["a", "b"], Float32Array.of(1, 2, 3, 4, 5, 6), 3).toBinary();
    await expect(WordVectors.loadAsync(one(bin.subarray(0, bin.length - 6)), { file: "v.bin" })).rejects.toThrow(
      /v\.bin: byte 21: file ends inside the vector of "b"/,
    );
    const liar = new TextEncoder().encode("1000000000 300\nxyz ");
    await expect(WordVectors.loadAsync(one(liar), { format: "word2vec-binary" })).rejects.toThrow(
      /file ends inside the vector of "xyz"/,
    );
    await expect(
      WordVectors.loadAsync(one(new TextEncoder().encode("2 3\na 1 2 3\nb 1 2\n")), { file: "v.txt" }),
    ).rejects.toThrow(/v\.txt:line 3/);
  });

  it("GloVe (no header) and fastText .vec", () => {
    const glove = "the 0.1 -0.2 0.3\nof 1e-3 2 3\n\n";
    const g = WordVectors.load(glove);
    expect(g.words).toEqual(["the", "of"]);
    expect(g.dim).toBe(3);
    expect(Array.from(g.get("of")!)).toEqual([Math.fround(1e-3), 2, 3]);
    const vec = "2 3\nthe 0.1 -0.2 0.3 \nof 1 2 3 \n"; // fastText writes a trailing space
    expect(WordVectors.load(vec, { format: "fasttext-vec" }).words).toEqual(["the", "of"]);
    expect(WordVectors.load(new TextEncoder().encode(glove), { format: "glove" }).size).toBe(2);
  });

  it("malformed files: ParseError with line/column or byte offset", () => {
    expect(() => WordVectors.load("2 3\na 1 2 3\nb 1 2\n", { file: "v.txt" })).toThrow(
      /v\.txt:line 3: .*wrong dimension/,
    );
    expect(() => WordVectors.load("2 3\na 1 2 3\nb 1 x 3\n", { file: "v.txt" })).toThrow(/v\.txt:line 3:column 5: "x"/);
    expect(() => WordVectors.load("3 3\na 1 2 3\nb 1 2 3\n", { file: "v.txt" })).toThrow(
      /announces 3 vectors but the file has 2/,
    );
    expect(() => WordVectors.load("a 1 2\nb 1 2 3 4 5\nc 1\n", { file: "g.txt" })).toThrow(/g\.txt:line 3/);
    expect(() => WordVectors.load("a 1 NaN\n")).toThrow(ParseError);
    expect(() => WordVectors.load("2 3\na 1 2 3\n\nb 1 2 3\n")).toThrow(/line 3: empty line/);
    const bin = new WordVectors(["a", "b"], Float32Array.of(1, 2, 3, 4, 5, 6), 3).toBinary();
    expect(() => WordVectors.load(bin.subarray(0, bin.length - 6), { file: "v.bin" })).toThrow(
      /v\.bin: byte 21: file ends inside the vector of "b"/,
    );
    expect(() => WordVectors.load(Uint8Array.of(0xff, 0xfe, 0x00), { file: "v.bin" })).toThrow(ParseError);
    const big = new TextEncoder().encode("1000000 300\nxyz ");
    expect(() => WordVectors.load(big, { format: "word2vec-binary" })).toThrow(/announces 1000000 × 300/);
    expect(() => new WordVectors(["a"], new Float32Array(3), 2)).toThrow(ShapeError);
  });
});

describe("duplicate words (issue 13)", () => {
  const text = "3 2\nthe 1 2\nof 3 4\nthe 5 6\n";
  const bin = new WordVectors(["the", "of", "the"], Float32Array.of(1, 2, 3, 4, 5, 6), 2).toBinary();

  it("are a ParseError naming the word and both places, in every reader", async () => {
    expect(() => WordVectors.load(text, { file: "v.txt" })).toThrow(ParseError);
    expect(() => WordVectors.load(text, { file: "v.txt" })).toThrow(
      'v.txt:line 4:column 1: duplicate word "the" (first on line 2)',
    );
    expect(() => WordVectors.load("the 1 2\nthe 3 4\n", { format: "glove" })).toThrow(/line 2:.*duplicate word "the"/);
    // header "3 2\n" (4 bytes), "the " + 8 + "\n" (13), "of " + 8 + "\n" (12): the third record starts at byte 29
    expect(() => WordVectors.load(bin, { file: "v.bin" })).toThrow(
      'v.bin: byte 29: duplicate word "the" (vector 2; first as vector 0 at byte 4)',
    );
    const chunks = (b: Uint8Array) =>
      (async function* () {
        for (let i = 0; i < b.length; i += 5) yield b.subarray(i, i + 5);
      })();
    await expect(WordVectors.loadAsync(chunks(bin), { file: "v.bin" })).rejects.toThrow(/byte 29: duplicate word/);
    await expect(WordVectors.loadAsync(chunks(new TextEncoder().encode(text)))).rejects.toThrow(/line 4/);
  });

  it('duplicates: "first" keeps the first vector, as gensim does', async () => {
    for (const wv of [
      WordVectors.load(text, { duplicates: "first" }),
      WordVectors.load(bin, { duplicates: "first" }),
      await WordVectors.loadAsync([bin], { duplicates: "first" }),
    ]) {
      expect(wv.words).toEqual(["the", "of"]);
      expect(Array.from(wv.get("the")!)).toEqual([1, 2]);
      expect(wv.mostSimilar("of", 5).map((n) => n.word)).toEqual(["the"]);
    }
    // limit counts the rows read, the skipped one included
    expect(WordVectors.load("3 2\na 1 2\na 3 4\nb 5 6\n", { duplicates: "first", limit: 2 }).words).toEqual(["a"]);
    expect(() => WordVectors.load(text, { duplicates: "last" as "first" })).toThrow(InputError);
  });
});

describe("dispose (issue 13)", () => {
  const runtimeOf = (wv: WordVectors) => (wv as unknown as { rt: Runtime }).rt;

  it("releases the runtime it made: the next createRuntime() reuses it; later calls throw DisposedError", () => {
    const wv = WordVectors.load(TOY);
    const rt = runtimeOf(wv);
    expect(rt.heap.used()).toBeGreaterThan(0);
    wv.dispose();
    wv.dispose(); // twice: nothing more
    expect(rt.heap.used()).toBe(0);
    for (const call of [
      () => wv.similarity("man", "king"),
      () => wv.mostSimilar("man"),
      () => wv.mostSimilar(new Float32Array(4)),
      () => wv.analogy("man", "king", "woman"),
      () => wv.get("man"),
      () => wv.has("man"),
      () => wv.indexOf("man"),
      () => wv.toText(),
      () => wv.toBinary(),
      () => wv.backend,
    ]) {
      expect(call).toThrow(DisposedError);
    }
    expect(wv.words.length).toBe(6); // the plain data stays readable
    const next = createRuntime();
    expect(next).toBe(rt);
  });

  it("lets a runtime passed in by the caller live on", () => {
    const rt = createRuntime();
    const wv = WordVectors.load(TOY, { runtime: rt });
    const used = rt.heap.used();
    wv.dispose();
    expect(rt.heap.used()).toBe(used);
    expect(createRuntime()).not.toBe(rt);
    expect(() => wv.mostSimilar("king")).toThrow(DisposedError);
  });
});
