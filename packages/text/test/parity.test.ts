// The `tokenizer` and `pad_sequences` parity kinds, over ../shared/fixtures (when present) and over
// hand-written cases whose expected values follow FORMAT.md §6.1/§6.2 step by step (worked in comments).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { WasmformerError } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { kinds } from "../src/parity.js";
import { caseOf, compareJson } from "./parity-helpers.js";

const FIXTURES = resolve(__dirname, "../../../../shared/fixtures");
const DEFAULT_TOL = { atol: 1e-4, rtol: 1e-3 };
const F = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n';
const ln = Math.log;

async function check(json: Record<string, unknown>, dir?: string) {
  const run = kinds[json.kind as string];
  expect(run).toBeTypeOf("function");
  if (json.expect_error) {
    const err = await run(caseOf(json, dir)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WasmformerError);
    return err as WasmformerError;
  }
  const res = await run(caseOf(json, dir));
  expect("json" in res).toBe(true);
  const tol = (json.tolerance as { atol: number; rtol: number }) ?? DEFAULT_TOL;
  const expected = json.expected as Record<string, unknown>;
  const actual = (res as { json: Record<string, unknown> }).json;
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  expect(compareJson(actual, expected, tol, expected.dtype)).toEqual([]);
  return undefined;
}

const fixtureCases = existsSync(FIXTURES)
  ? readdirSync(FIXTURES).filter(
      (d) => /^(tokenizer|pad_sequences)-/.test(d) && existsSync(join(FIXTURES, d, "case.json")),
    )
  : [];

describe.runIf(fixtureCases.length > 0)("shared fixtures", () => {
  it.each(fixtureCases)("%s", async (name) => {
    const json = JSON.parse(readFileSync(join(FIXTURES, name, "case.json"), "utf8"));
    const err = await check(json, join(FIXTURES, name));
    if (name === "pad_sequences-err_padding_middle") expect(err?.message).toMatch(/padding/);
  });
});

const tokCase = (name: string, config: Record<string, unknown>, inputs: unknown, expected: unknown) => ({
  kind: "tokenizer",
  name: `tokenizer-${name}`,
  config: {
    num_words: null,
    filters: F,
    lower: true,
    split: " ",
    char_level: false,
    oov_token: null,
    document_count: 0,
    ...config,
  },
  inputs,
  expected,
});

const handTokenizer = [
  // fit: "b a" / "a b c" → counts b:2 a:2 c:1 (first-seen order), ranks b=1 a=2 c=3 (tie keeps b first).
  // num_words=3: index 3 is dropped when encoding (no oov) and the matrix width is 3.
  tokCase(
    "ties_numwords_no_oov",
    { num_words: 3 },
    { fit: [{ method: "fit_on_texts", texts: ["b a", "a b c"] }], texts: ["c a b d"], sequences: [[1, 2, 3, 0]] },
    {
      document_count: 2,
      word_counts: [
        ["b", 2],
        ["a", 2],
        ["c", 1],
      ],
      word_docs: { b: 2, a: 2, c: 1 },
      index_docs: { "1": 2, "2": 2, "3": 1 },
      word_index: { b: 1, a: 2, c: 3 },
      index_word: { "1": "b", "2": "a", "3": "c" },
      texts_to_sequences: [[2, 1]],
      texts_to_matrix: {
        binary: [[0, 1, 1]],
        count: [[0, 1, 1]],
        freq: [[0, 0.5, 0.5]],
        tfidf: [[0, ln(1 + 2 / 3), ln(1 + 2 / 3)]],
      },
      sequences_to_texts: ["b a"],
      // j=3 is skipped (>= width) but still counts in len(seq) = 4; j=0 counts (index_docs 0 → idf ln 3)
      sequences_to_matrix: {
        binary: [[1, 1, 1]],
        count: [[1, 1, 1]],
        freq: [[0.25, 0.25, 0.25]],
        tfidf: [[ln(3), ln(1 + 2 / 3), ln(1 + 2 / 3)]],
      },
    },
  ),
  // char_level: a non-BMP character is one token. "a😀a" / "😀b" → a:2 😀:2 b:1.
  tokCase(
    "char_level_non_bmp",
    { char_level: true },
    { fit: [{ method: "fit_on_texts", texts: ["a😀a", "😀b"] }], texts: ["B😀x"], sequences: [[2, 2, 1]] },
    {
      document_count: 2,
      word_counts: [
        ["a", 2],
        ["😀", 2],
        ["b", 1],
      ],
      word_docs: { a: 1, "😀": 2, b: 1 },
      index_docs: { "1": 1, "2": 2, "3": 1 },
      word_index: { a: 1, "😀": 2, b: 3 },
      index_word: { "1": "a", "2": "😀", "3": "b" },
      texts_to_sequences: [[3, 2]],
      texts_to_matrix: {
        binary: [[0, 0, 1, 1]],
        count: [[0, 0, 1, 1]],
        freq: [[0, 0, 0.5, 0.5]],
        tfidf: [[0, 0, ln(1 + 2 / 3), ln(2)]],
      },
      sequences_to_texts: ["😀 😀 a"],
      sequences_to_matrix: {
        binary: [[0, 1, 1, 0]],
        count: [[0, 1, 2, 0]],
        freq: [[0, 1 / 3, 2 / 3, 0]],
        tfidf: [[0, ln(2), (1 + ln(2)) * ln(1 + 2 / 3), 0]],
      },
    },
  ),
  // Token lists (no filtering, lower-cased) + the oov token occurring as a word: voc is
  // [<unk>, hello, world, <unk>] so <unk> gets index 4 (the later one) and index 1 is unused.
  // fit_on_sequences then adds 2 documents: index_docs[2] += 1, index_docs[5] = 1.
  tokCase(
    "token_lists_oov_word_fit_on_sequences",
    { oov_token: "<unk>" },
    {
      fit: [
        {
          method: "fit_on_texts",
          texts: [
            ["Hello", "World", "hello"],
            ["<UNK>", "world"],
          ],
        },
        { method: "fit_on_sequences", sequences: [[2, 2, 5], []] },
      ],
      texts: [["WORLD", "zzz"], "hello there"],
      sequences: [[1, 4, 0], [3]],
    },
    {
      document_count: 4,
      word_counts: [
        ["hello", 2],
        ["world", 2],
        ["<unk>", 1],
      ],
      word_docs: { hello: 1, world: 2, "<unk>": 1 },
      index_docs: { "2": 2, "3": 2, "4": 1, "5": 1 },
      word_index: { "<unk>": 4, hello: 2, world: 3 },
      index_word: { "2": "hello", "3": "world", "4": "<unk>" },
      texts_to_sequences: [
        [3, 4],
        [2, 4],
      ],
      // width = len(word_index) + 1 = 4: the oov index 4 is skipped in the matrix
      texts_to_matrix: {
        binary: [
          [0, 0, 0, 1],
          [0, 0, 1, 0],
        ],
        count: [
          [0, 0, 0, 1],
          [0, 0, 1, 0],
        ],
        freq: [
          [0, 0, 0, 0.5],
          [0, 0, 0.5, 0],
        ],
        tfidf: [
          [0, 0, 0, ln(1 + 4 / 3)],
          [0, 0, ln(1 + 4 / 3), 0],
        ],
      },
      sequences_to_texts: ["<unk> <unk> <unk>", "world"],
      sequences_to_matrix: {
        binary: [
          [1, 1, 0, 0],
          [0, 0, 0, 1],
        ],
        count: [
          [1, 1, 0, 0],
          [0, 0, 0, 1],
        ],
        freq: [
          [1 / 3, 1 / 3, 0, 0],
          [0, 0, 0, 1],
        ],
        tfidf: [
          [ln(5), ln(5), 0, 0],
          [0, 0, 0, ln(1 + 4 / 3)],
        ],
      },
    },
  ),
  // Nothing to learn: empty text and a text of filter characters only; num_words gives the width.
  tokCase(
    "empty_texts_num_words",
    { num_words: 5 },
    { fit: [{ method: "fit_on_texts", texts: ["", "!!! ..."] }], texts: ["a b", ""], sequences: [[], [4, 7]] },
    {
      document_count: 2,
      word_counts: [],
      word_docs: {},
      index_docs: {},
      word_index: {},
      index_word: {},
      texts_to_sequences: [[], []],
      texts_to_matrix: {
        binary: [
          [0, 0, 0, 0, 0],
          [0, 0, 0, 0, 0],
        ],
        count: [
          [0, 0, 0, 0, 0],
          [0, 0, 0, 0, 0],
        ],
        freq: [
          [0, 0, 0, 0, 0],
          [0, 0, 0, 0, 0],
        ],
        tfidf: [
          [0, 0, 0, 0, 0],
          [0, 0, 0, 0, 0],
        ],
      },
      sequences_to_texts: ["", ""],
      sequences_to_matrix: {
        binary: [
          [0, 0, 0, 0, 0],
          [0, 0, 0, 0, 1],
        ],
        count: [
          [0, 0, 0, 0, 0],
          [0, 0, 0, 0, 1],
        ],
        freq: [
          [0, 0, 0, 0, 0],
          [0, 0, 0, 0, 0.5],
        ],
        tfidf: [
          [0, 0, 0, 0, 0],
          [0, 0, 0, 0, ln(3)],
        ],
      },
    },
  ),
  // Custom split "," without filters and lower=False: only "," separates, spaces stay inside words.
  tokCase(
    "custom_split_no_lower",
    { filters: "", split: ",", lower: false },
    { fit: [{ method: "fit_on_texts", texts: ["A,b,,A", "b c"] }], texts: ["b c,a"] },
    {
      document_count: 2,
      word_counts: [
        ["A", 2],
        ["b", 1],
        ["b c", 1],
      ],
      word_docs: { A: 1, b: 1, "b c": 1 },
      index_docs: { "1": 1, "2": 1, "3": 1 },
      word_index: { A: 1, b: 2, "b c": 3 },
      index_word: { "1": "A", "2": "b", "3": "b c" },
      texts_to_sequences: [[3]],
      texts_to_matrix: {
        binary: [[0, 0, 0, 1]],
        count: [[0, 0, 0, 1]],
        freq: [[0, 0, 0, 1]],
        tfidf: [[0, 0, 0, ln(2)]],
      },
    },
  ),
  // Two fit calls: the index is rebuilt over the accumulated counts; index_docs persists
  // (assignment), so the stale entry of index 2 from the first call is overwritten.
  tokCase(
    "two_fits_index_docs_persist",
    {},
    {
      fit: [
        { method: "fit_on_texts", texts: ["x y"] },
        { method: "fit_on_texts", texts: ["y z", "z z"] },
      ],
    },
    {
      document_count: 3,
      word_counts: [
        ["x", 1],
        ["y", 2],
        ["z", 3],
      ],
      word_docs: { x: 1, y: 2, z: 2 },
      // after call 1: x=1 y=2, index_docs {1:1, 2:1}; after call 2: z=1 y=2 x=3 → {1:2, 2:2, 3:1}
      index_docs: { "1": 2, "2": 2, "3": 1 },
      word_index: { z: 1, y: 2, x: 3 },
      index_word: { "1": "z", "2": "y", "3": "x" },
    },
  ),
];

const padCase = (
  name: string,
  config: Record<string, unknown>,
  sequences: unknown,
  expected?: unknown,
  err?: string,
) => ({
  kind: "pad_sequences",
  name: `pad_sequences-${name}`,
  config: { maxlen: null, dtype: "int32", padding: "pre", truncating: "pre", value: 0, ...config },
  inputs: { sequences },
  ...(err ? { expect_error: err } : { expected, tolerance: { atol: 0, rtol: 0 } }),
});

const handPad = [
  padCase("maxlen_0", { maxlen: 0, truncating: "post" }, [[1, 2], []], {
    dtype: "int32",
    shape: [2, 0],
    padded: [[], []],
  }),
  padCase("maxlen_0_pre", { maxlen: 0 }, [[1, 2], [3]], { dtype: "int32", shape: [2, 0], padded: [[], []] }),
  padCase("trunc_pre_pad_post", { maxlen: 3, padding: "post", value: 9 }, [[1, 2, 3, 4, 5], [6]], {
    dtype: "int32",
    shape: [2, 3],
    padded: [
      [3, 4, 5],
      [6, 9, 9],
    ],
  }),
  padCase("trunc_post_pad_pre", { maxlen: 2, truncating: "post" }, [[1, 2, 3, 4, 5], [6]], {
    dtype: "int32",
    shape: [2, 2],
    padded: [
      [1, 2],
      [0, 6],
    ],
  }),
  // int32 casts truncate toward zero (value 1.7 → 1, 2.9 → 2, −2.9 → −2)
  padCase("int_truncation", { maxlen: 3, value: 1.7 }, [[2.9, -2.9]], {
    dtype: "int32",
    shape: [1, 3],
    padded: [[1, 2, -2]],
  }),
  padCase("no_sequences", {}, [], { dtype: "int32", shape: [0, 0], padded: [] }),
  padCase("all_empty", {}, [[], []], { dtype: "int32", shape: [2, 0], padded: [[], []] }),
  padCase("err_truncating", { maxlen: 2, truncating: "middle" }, [[1, 2, 3]], undefined, "input"),
  padCase("err_negative_maxlen", { maxlen: -1 }, [[1]], undefined, "input"),
];

describe("hand-written tokenizer cases", () => {
  it.each(handTokenizer.map((c) => [c.name, c] as const))("%s", async (_n, c) => {
    await check(c as unknown as Record<string, unknown>);
  });
});

describe("hand-written pad_sequences cases", () => {
  it.each(handPad.map((c) => [c.name, c] as const))("%s", async (_n, c) => {
    const err = await check(c as unknown as Record<string, unknown>);
    if (c.name.endsWith("err_truncating")) expect(err?.message).toMatch(/truncating/);
    if (c.name.endsWith("err_negative_maxlen")) expect(err?.message).toMatch(/maxlen/);
  });

  it("float32 values are the nearest float32 (0.1 → 0.10000000149011612)", async () => {
    const c = padCase("f32", { maxlen: 2, dtype: "float32" }, [[0.1]]);
    const res = (await kinds.pad_sequences(caseOf(c))) as { json: { padded: number[][] } };
    expect(res.json.padded).toEqual([[0, 0.10000000149011612]]);
  });
});
