// WordPiece (BERT): a small hand-made vocab.txt (test/fixtures/bert-vocab.txt), the BERT normalizer and
// pre-tokenizer, [CLS]/[SEP] templates, decoding; checked by hand and against @huggingface/tokenizers.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { ParseError } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { SubwordTokenizer } from "../src/subword-tokenizer.js";
import { rng } from "./corpus.js";

const VOCAB_TXT = readFileSync(join(__dirname, "fixtures/bert-vocab.txt"), "utf8");
const VOCAB = Object.fromEntries(
  VOCAB_TXT.trimEnd()
    .split("\n")
    .map((t, i) => [t, i]),
);

/** The tokenizer.json of a bert-base-uncased style tokenizer over the small vocabulary. */
function bertJson(): Record<string, unknown> {
  const special = (id: string) => ({ id, ids: [VOCAB[id]], tokens: [id] });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map((content) => ({
      id: VOCAB[content],
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "[SEP]", type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "[SEP]", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
        { SpecialToken: { id: "[SEP]", type_id: 1 } },
      ],
      special_tokens: { "[CLS]": special("[CLS]"), "[SEP]": special("[SEP]") },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab: VOCAB,
    },
  };
}

const fromTxt = SubwordTokenizer.bert(VOCAB_TXT);
const fromJson = SubwordTokenizer.fromTokenizerJson(JSON.stringify(bertJson()));

describe.each([
  ["vocab.txt", fromTxt],
  ["tokenizer.json", fromJson],
])("WordPiece from %s", (_src, tok) => {
  it("lower-cases, splits punctuation, ## continuations, [CLS]/[SEP]", () => {
    const e = tok.encode("The Quick Brown Fox jumps over the lazy dog!");
    expect(e.tokens).toEqual([
      "[CLS]",
      "the",
      "quick",
      "brown",
      "fox",
      "jump",
      "##s",
      "over",
      "the",
      "lazy",
      "dog",
      "!",
      "[SEP]",
    ]);
    expect(e.offsets.slice(5, 8)).toEqual([
      [20, 24],
      [24, 25],
      [26, 30],
    ]);
    expect(e.specialTokensMask).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(tok.encode("unaffable", null, { addSpecialTokens: false }).tokens).toEqual(["un", "##aff", "##able"]);
  });

  it("strips accents (NFD, drop Mn) with offsets into the original text", () => {
    const e = tok.encode("Café naïve", null, { addSpecialTokens: false });
    expect(e.tokens).toEqual(["cafe", "naive"]);
    expect(e.offsets).toEqual([
      [0, 4],
      [5, 10],
    ]);
    const d = tok.encode("Cafe\u0301", null, { addSpecialTokens: false }); // decomposed input
    expect(d.tokens).toEqual(["cafe"]);
    expect(d.offsets).toEqual([[0, 5]]);
  });

  it("isolates CJK ideographs, cleans control characters and odd whitespace", () => {
    const e = tok.encode("中文abc", null, { addSpecialTokens: false });
    expect(e.tokens).toEqual(["中", "文", "a", "##b", "##c"]);
    expect(e.offsets).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 4],
      [4, 5],
    ]);
    expect(tok.encode("hello\u0000\tworld\u200b\u00a0dog\u3000fox", null, { addSpecialTokens: false }).tokens).toEqual([
      "hello",
      "world",
      "dog",
      "fox",
    ]);
    expect(tok.encode("ΕΛ Σ", null, { addSpecialTokens: false }).tokens).toEqual(["ε", "##λ", "σ"]);
  });

  it("unknown words and words over 100 characters become [UNK], never throw", () => {
    expect(tok.encode("xyz fox", null, { addSpecialTokens: false }).tokens).toEqual(["[UNK]", "fox"]);
    const a100 = tok.encode("a".repeat(100), null, { addSpecialTokens: false }).tokens;
    expect(a100.length).toBe(100);
    expect(a100[0]).toBe("a");
    expect(a100[99]).toBe("##a");
    expect(tok.encode("a".repeat(101), null, { addSpecialTokens: false }).tokens).toEqual(["[UNK]"]);
    expect(tok.encode("😀", null, { addSpecialTokens: false }).tokens).toEqual(["[UNK]"]);
  });

  it("pairs get type ids; special tokens in the text are matched", () => {
    const e = tok.encode("hello", "world");
    expect(e.tokens).toEqual(["[CLS]", "hello", "[SEP]", "world", "[SEP]"]);
    expect(e.typeIds).toEqual([0, 0, 0, 1, 1]);
    expect(tok.encode("hello [MASK] world", null, { addSpecialTokens: false }).tokens).toEqual([
      "hello",
      "[MASK]",
      "world",
    ]);
  });

  it("decodes with ## joining and clean-up", () => {
    const e = tok.encode("The fox jumps, don't i? (1 $)");
    expect(tok.decode(e.ids, { skipSpecialTokens: true })).toBe("the fox jumps, don't i? ( 1 $ )");
    expect(tok.decode(e.ids)).toMatch(/^\[CLS\] the fox .* \[SEP\]$/);
  });

  it("batch encode: padding with [PAD], truncation (pairs: longest first), masks", () => {
    const b = tok.encodeBatch(["hello world", "the fox"], { padding: "max_length", maxLength: 6 });
    expect(b.inputIds.shape).toEqual([2, 6]);
    expect(b.inputIds.toArray()).toEqual([
      [2, 23, 24, 3, 0, 0],
      [2, 5, 8, 3, 0, 0],
    ]);
    expect(b.attentionMask.toArray()).toEqual([
      [1, 1, 1, 1, 0, 0],
      [1, 1, 1, 1, 0, 0],
    ]);
    const p = tok.encodeBatch([["the quick brown fox", "lazy dog"]], { truncation: true, maxLength: 7 });
    expect(p.encodings[0].tokens).toEqual(["[CLS]", "the", "quick", "[SEP]", "lazy", "dog", "[SEP]"]);
    expect(p.tokenTypeIds.toArray()).toEqual([[0, 0, 0, 0, 1, 1, 1]]);
    expect(() => tok.encodeBatch(["a"], { truncation: true, maxLength: 1 })).toThrow(/special tokens/);
  });
});

describe("tokenizer.json padding / truncation sections", () => {
  it("become encodeBatch defaults", () => {
    const j = bertJson();
    j.padding = {
      strategy: "BatchLongest",
      direction: "Left",
      pad_to_multiple_of: 4,
      pad_id: 0,
      pad_type_id: 0,
      pad_token: "[PAD]",
    };
    j.truncation = { direction: "Right", max_length: 5, strategy: "LongestFirst", stride: 0 };
    const tok = SubwordTokenizer.fromTokenizerJson(j);
    const b = tok.encodeBatch(["the quick brown fox", "dog"]);
    expect(b.inputIds.toArray()).toEqual([
      [0, 0, 0, 2, 5, 6, 7, 3],
      [0, 0, 0, 0, 0, 2, 14, 3],
    ]);
    expect(
      tok.encodeBatch(["the quick brown fox"], { truncation: false, padding: false }).encodings[0].ids.length,
    ).toBe(6);
  });
});

describe("WordPiece vs @huggingface/tokenizers", () => {
  it("same ids on generated sentences", () => {
    const hf = new HfTokenizer(bertJson(), {});
    const r = rng(7);
    const words = [
      ...Object.keys(VOCAB),
      "Fox",
      "DOG",
      "Über",
      "naïve",
      "jumped",
      "unaffable",
      "x",
      "中文",
      "ÉΛ",
      "qq",
      "\t",
      "!!",
      "--",
    ];
    const sentences = ["The quick brown fox.", "don't", "hello,world", "(1) $23"];
    for (let i = 0; i < 300; i++) {
      const n = 1 + Math.floor(r() * 10);
      sentences.push(Array.from({ length: n }, () => words[Math.floor(r() * words.length)]).join(r() < 0.5 ? " " : ""));
    }
    for (const s of sentences) {
      const ref = hf.encode(s).ids;
      expect(fromTxt.encode(s).ids, s).toEqual(ref);
      expect(fromJson.encode(s).ids, s).toEqual(ref);
    }
  });
});

describe("malformed vocab / tokenizer.json", () => {
  it("blank line, missing [UNK], bad max_input_chars_per_word", () => {
    expect(() => SubwordTokenizer.bert("[UNK]\n[CLS]\n\n[SEP]\n")).toThrow(/vocab\.txt:line 3/);
    expect(() => SubwordTokenizer.bert("[CLS]\n[SEP]\n")).toThrow(ParseError);
    expect(() => SubwordTokenizer.bert("[CLS]\n[SEP]\n")).toThrow(/\[UNK\]/);
    const j = bertJson();
    (j.model as Record<string, unknown>).max_input_chars_per_word = "many";
    expect(() => SubwordTokenizer.fromTokenizerJson(JSON.stringify(j, null, 1))).toThrow(
      /line \d+.*max_input_chars_per_word/,
    );
  });
});
