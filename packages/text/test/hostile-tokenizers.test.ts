// Hostile tokenizer inputs (issue 13): decode of ids that are not tokens, tokenizer.json files whose
// added tokens share an id, and Split regexes that would backtrack exponentially. The standard
// GPT-2, Llama-3 and Qwen2 split patterns keep working (checked against @huggingface/tokenizers).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { ConfigError, InputError, ParseError } from "@wasmformer/core";
import { gpt2TokenizerJson } from "@wasmformer/test-utils/tokenizer";
import { describe, expect, it } from "vitest";
import { gpt2Split } from "../src/pre-tokenizers.js";
import { compileSplitRegex } from "../src/split-regex.js";
import { SubwordTokenizer } from "../src/subword-tokenizer.js";
import { parityCorpus } from "./corpus.js";
import { gpt2Files } from "./gpt2-from-tiktoken.js";

const TINY = readFileSync(join(__dirname, "fixtures/tiny-bytelevel-tokenizer.json"), "utf8");

const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const LLAMA3 =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2 =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** A tokenizer.json pre-tokenizer: Split by `regex` (isolated), then byte-level without its own regex. */
const splitThenByteLevel = (regex: string) => ({
  type: "Sequence",
  pretokenizers: [
    { type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false },
    { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
  ],
});

describe("decode rejects ids that are not tokens", () => {
  const tok = SubwordTokenizer.fromTokenizerJson(TINY);
  it("names the id and its position", () => {
    expect(tok.decode([104, 105])).toBe("hi");
    for (const [bad, shown] of [
      [-1, "-1"],
      [1e9, "1000000000"],
      [1.5, "1.5"],
      [Number.NaN, "NaN"],
      [Number.POSITIVE_INFINITY, "Infinity"],
      ["104", '"104"'],
    ] as const) {
      const run = () => tok.decode([104, bad as number]);
      expect(run).toThrow(InputError);
      expect(run).toThrow(`ids[1] = ${shown} is not a token id`);
    }
    expect(() => tok.decode(null as unknown as number[])).toThrow(InputError);
    expect(() => tok.decodeBatch([[104], [104, 105, -3]])).toThrow("ids[2] = -3");
  });
});

describe("tokenizer.json added tokens", () => {
  const base = JSON.parse(TINY);
  const withAdded = (added: { id: number; content: string }[]) =>
    JSON.stringify({ ...base, added_tokens: added.map((t) => ({ ...base.added_tokens[0], ...t })) });

  it("two tokens sharing one id are refused, naming both", () => {
    const json = withAdded([
      { id: 265, content: "<|endoftext|>" },
      { id: 265, content: "<pad>" },
    ]);
    const load = () => SubwordTokenizer.fromTokenizerJson(json);
    expect(load).toThrow(ParseError);
    expect(load).toThrow('added_tokens[1]: tokens "<|endoftext|>" and "<pad>" share id 265');
  });

  it("one token listed under two ids is refused; an exact repeat is harmless", () => {
    const two = withAdded([
      { id: 265, content: "<|endoftext|>" },
      { id: 266, content: "<|endoftext|>" },
    ]);
    expect(() => SubwordTokenizer.fromTokenizerJson(two)).toThrow(
      'added_tokens[1]: token "<|endoftext|>" has id 266 here and 265 in added_tokens',
    );
    const repeat = withAdded([
      { id: 265, content: "<|endoftext|>" },
      { id: 265, content: "<|endoftext|>" },
    ]);
    const tok = SubwordTokenizer.fromTokenizerJson(repeat);
    expect(tok.decode(tok.encodeIds("hi<|endoftext|>"))).toBe("hi<|endoftext|>");
  });

  it("an added token must agree with the vocabulary (byte-level spelling accepted)", () => {
    const load = (added: { id: number; content: string }[]) => () =>
      SubwordTokenizer.fromTokenizerJson(withAdded(added));
    expect(load([{ id: 104, content: "<x>" }])).toThrow(
      'added_tokens[0]: tokens "h" (model.vocab) and "<x>" share id 104',
    );
    expect(load([{ id: 300, content: "h" }])).toThrow('token "h" has id 300 here and 104 in model.vocab');
    // " " is "Ġ" (id 32) in byte characters: the same token
    const tok = SubwordTokenizer.fromTokenizerJson(withAdded([{ id: 32, content: " " }]));
    expect(tok.decode([104, 32, 105])).toBe("h i");
  });
});

describe("Split regexes that backtrack exponentially are refused at load", () => {
  it("(a+)+$ in a tokenizer.json fails fast with a typed error", () => {
    const json = JSON.stringify({ ...JSON.parse(TINY), pre_tokenizer: splitThenByteLevel("(a+)+$") });
    const t0 = performance.now();
    const load = () => SubwordTokenizer.fromTokenizerJson(json);
    expect(load).toThrow(ParseError);
    expect(load).toThrow(/pre_tokenizer\.pretokenizers\[0\]\.pattern\.Regex: .*nested quantifiers/);
    // (the regex itself takes seconds on "aaaaaaaaaaaaaaaaaaaaaaaaaa!"; refusing it takes no time)
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("refuses the shapes of exponential backtracking", () => {
    for (const p of [
      "(a+)+$",
      "(a|a)*$",
      "(a|aa)+b",
      "(a?){30}a{30}",
      "(.*a){20}",
      "(\\w+\\s?)*$",
      "((a)+)*",
      "(?:(?:ab)*c)+",
      "(?<x>a+)+",
      "(a*)\\1",
      "(?<w>a)\\k<w>",
    ]) {
      expect(() => compileSplitRegex(p, "pattern"), p).toThrow(ConfigError);
    }
  });

  it("accepts what cannot blow up", () => {
    for (const p of [
      "(?:ab)+",
      "(?:(?!ab|cd).)*",
      "(a|b)?c+",
      "\\p{L}+\\p{N}*",
      "[(a+)+]+",
      "a{2}(?:b|c)",
      "\\(a+\\)+",
    ])
      expect(() => compileSplitRegex(p, "pattern"), p).not.toThrow();
    expect(() => compileSplitRegex("(a", "pattern")).toThrow(ConfigError); // syntax errors stay typed
  });

  it("the GPT-2 pattern as a Split gives the built-in GPT-2 split", () => {
    const re = compileSplitRegex(GPT2, "pattern");
    for (const line of parityCorpus(200, 200)) {
      const pieces = [...line.matchAll(re)].map((m) => [m.index, m.index + m[0].length]);
      expect(pieces).toEqual(gpt2Split(line, [[0, line.length]]));
    }
  });

  it("Llama-3 and Qwen2 patterns: (?i:…) contractions match any case, as in Oniguruma", () => {
    const l3 = compileSplitRegex(LLAMA3, "pattern");
    expect("I'M HERE'S 12345 Don'T ſ'ſ".match(l3)).toEqual([
      "I",
      "'M",
      " HERE",
      "'S",
      " ",
      "123",
      "45",
      " Don",
      "'T",
      " ſ",
      "'ſ",
    ]);
    const q2 = compileSplitRegex(QWEN2, "pattern");
    expect("we'RE 2024".match(q2)).toEqual(["we", "'RE", " ", "2", "0", "2", "4"]);
  });

  it("a Llama-3 Split tokenizer.json encodes like @huggingface/tokenizers", () => {
    const files = gpt2Files();
    const json = { ...gpt2TokenizerJson(files.vocab, files.merges), pre_tokenizer: splitThenByteLevel(LLAMA3) };
    const ours = SubwordTokenizer.fromTokenizerJson(JSON.stringify(json));
    const hf = new HfTokenizer(json, {});
    const lines = [...parityCorpus(150, 150), "I'M HERE'S IT'LL WE'D", "12345678 x\r\n\n  y"];
    let agree = 0;
    for (const line of lines) if (JSON.stringify(ours.encodeIds(line)) === JSON.stringify(hf.encode(line).ids)) agree++;
    expect(agree / lines.length).toBeGreaterThan(0.99);
    expect(ours.encodeIds("I'M HERE'S")).toEqual(hf.encode("I'M HERE'S").ids);
  });
});
