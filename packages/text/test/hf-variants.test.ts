// The pipeline components of other Llama-family tokenizer.json files, checked against HF tokenizers
// (the Rust library through @anush008/tokenizers) on variants of the real files: the Metaspace
// pre-tokenizer and decoder with each prepend_scheme (Llama 2 / TinyLlama converted with
// legacy=false, Mistral), SmolLM2's Digits + ByteLevel(use_regex) sequence, Llama 3.2's Sequence
// post-processor (ByteLevel + TemplateProcessing), Split delimiter
// behaviors, and added tokens with normalized / lstrip / rstrip / single_word.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { SubwordTokenizer } from "../src/index.js";
import { generatedLines } from "./corpus.js";

const require = createRequire(import.meta.url);
const { Tokenizer: HfTokenizer } = require("@anush008/tokenizers") as typeof import("@anush008/tokenizers");
const NM = resolve(__dirname, "../node_modules");
const load = (pkg: string) =>
  JSON.parse(readFileSync(join(NM, "@lenml", pkg, "models", "tokenizer.json"), "utf8")) as Record<string, unknown>;

const HAND = [
  "Hello world",
  " Hello  world ",
  "  two leading",
  "trailing  ",
  "a\tb\nc",
  "hello world foo foobar food foo_bar",
  "say hello<mask> and <mask>  there, world!",
  "<s>Hello</s> world <s> world</s>",
  "123 4567 89.01 ٣٤٥ Ⅻ 12abc34",
  "I'm don't WE'LL",
  "你好，世界 😀 café",
  "▁ ▁▁ x▁y",
  "",
  " ",
];
const LINES = [...HAND, ...generatedLines(700, 77)];

function compare(json: Record<string, unknown>, lines = LINES) {
  const text = JSON.stringify(json);
  const hf = HfTokenizer.fromString(text);
  const ours = SubwordTokenizer.fromTokenizerJson(text);
  return (async () => {
    for (const addSpecialTokens of [false, true]) {
      const want = (await hf.encodeBatch(lines, { addSpecialTokens })).map((e) => e.getIds());
      const bad: string[] = [];
      lines.forEach((line, i) => {
        const got = ours.encode(line, null, { addSpecialTokens }).ids;
        if (got.join(",") !== want[i].join(",") && bad.length < 4)
          bad.push(`${JSON.stringify(line)}: got ${got} want ${want[i]}`);
      });
      expect(bad).toEqual([]);
      const decoded = await hf.decodeBatch(want, false);
      lines.forEach((_, i) => {
        expect(ours.decode(want[i])).toBe(decoded[i]);
      });
    }
  })();
}

describe("tokenizer.json variants equal HF tokenizers", () => {
  const llama2 = load("tokenizer-llama2");
  const metaspace = (scheme: string, split: boolean) => ({
    ...llama2,
    normalizer: null,
    pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: scheme, split },
    decoder: { type: "Metaspace", replacement: "▁", prepend_scheme: scheme, split },
  });

  it("Metaspace prepend_scheme first, split false (Llama 2 legacy=false)", async () => {
    await compare(metaspace("first", false));
  });
  it("Metaspace prepend_scheme always, split true", async () => {
    await compare(metaspace("always", true));
  });
  it("Metaspace prepend_scheme never", async () => {
    await compare(metaspace("never", true));
  });

  it("added tokens: normalized, lstrip, rstrip, single_word", async () => {
    const added = [
      ...(llama2.added_tokens as unknown[]),
      // ids as HF assigns them: the vocabulary's id for a known content, else the next free id
      {
        id: 9471,
        content: "world",
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: false,
      },
      {
        id: 32000,
        content: "<mask>",
        single_word: false,
        lstrip: true,
        rstrip: false,
        normalized: false,
        special: true,
      },
      { id: 8014, content: "foo", single_word: true, lstrip: false, rstrip: false, normalized: false, special: false },
      {
        id: 15325,
        content: "there",
        single_word: false,
        lstrip: false,
        rstrip: true,
        normalized: false,
        special: false,
      },
    ];
    await compare({ ...llama2, added_tokens: added });
  });

  it("SmolLM2-style pre-tokenizer: Digits(individual) + ByteLevel(use_regex); Llama-3.2-style Sequence post-processor", async () => {
    const qwen = load("tokenizer-qwen3");
    const bos = "<|endoftext|>";
    await compare({
      ...qwen,
      normalizer: null,
      post_processor: {
        type: "Sequence",
        processors: [
          { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
          {
            type: "TemplateProcessing",
            single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
            pair: [
              { SpecialToken: { id: bos, type_id: 0 } },
              { Sequence: { id: "A", type_id: 0 } },
              { SpecialToken: { id: bos, type_id: 1 } },
              { Sequence: { id: "B", type_id: 1 } },
            ],
            special_tokens: { [bos]: { id: bos, ids: [151643], tokens: [bos] } },
          },
        ],
      },
      pre_tokenizer: {
        type: "Sequence",
        pretokenizers: [
          { type: "Digits", individual_digits: true },
          { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
        ],
      },
    });
  });

  it("Split with every delimiter behavior (Removed and Isolated also inverted), Punctuation, Digits contiguous", async () => {
    for (const behavior of ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]) {
      for (const invert of behavior === "Removed" || behavior === "Isolated" ? [false, true] : [false]) {
        await compare(
          {
            ...llama2,
            normalizer: null,
            pre_tokenizer: {
              type: "Sequence",
              pretokenizers: [
                { type: "Split", pattern: { Regex: "\\s+|\\p{N}++" }, behavior, invert },
                { type: "Punctuation", behavior: behavior === "Removed" ? "Isolated" : behavior },
                { type: "Digits", individual_digits: false },
              ],
            },
          },
          LINES.slice(0, 150),
        );
      }
    }
  });
});
