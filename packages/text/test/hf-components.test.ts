// Unit tests of the HF pipeline components added for Llama-family tokenizer.json files: the
// Oniguruma → JS regex conversion, Split behaviors, decoders, and typed errors naming JSON paths.
import { readFileSync } from "node:fs";
import { ParseError } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import {
  byteFallbackDecode,
  decodeChainFromJson,
  onigToJs,
  type SplitBehavior,
  SubwordTokenizer,
  splitPreTokenizer,
  stripDecode,
} from "../src/index.js";

const re = (p: string) => new RegExp(onigToJs(p), "gmu");
const all = (p: string, s: string) => s.match(re(p)) ?? [];

describe("onigToJs", () => {
  it("(?i:…) groups are case-insensitive, the rest is not", () => {
    expect(all("(?i:'s|'ll)|x", "'S 'Ll 's X x")).toEqual(["'S", "'Ll", "'s", "x"]);
    expect(all("a(?i)b", "aB AB ab")).toEqual(["aB", "ab"]);
  });
  it("possessive quantifiers and atomic groups do not backtrack", () => {
    expect(all("a*+a", "aaaa")).toEqual([]);
    expect(all("a*a", "aaaa")).toEqual(["aaaa"]);
    expect(all("(?>ab|a)c", "abc ac")).toEqual(["abc", "ac"]);
    expect(all("(?>a|ab)c", "abc ac")).toEqual(["ac"]);
    expect(all(" ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*", "a !!\n b")).toEqual([" !!\n"]);
    expect(all("\\p{N}{1,3}+", "12345")).toEqual(["123", "45"]);
  });
  it("\\s is Unicode White_Space (U+0085 yes, U+FEFF no); \\d, \\w are Unicode; . stops only at \\n", () => {
    expect(all("\\s", "a\u0085b\ufeffc\u3000")).toEqual(["\u0085", "\u3000"]);
    expect(all("[^\\s]+", "x\ufeffy z")).toEqual(["x\ufeffy", "z"]);
    expect(all("\\d+", "12 ٣٤ x")).toEqual(["12", "٣٤"]);
    expect(all("\\w+", "héllo_1 мир")).toEqual(["héllo_1", "мир"]);
    expect(all(".+", "a\rb\nc")).toEqual(["a\rb", "c"]);
  });
  it("keeps classes, escapes, lookarounds and \\x{…}", () => {
    expect(all("\\s+(?!\\S)", "a   b")).toEqual(["  "]);
    expect(all("[\\r\\n]+", "a\r\n\nb")).toEqual(["\r\n\n"]);
    expect(all("\\x{41}\\'", "A'")).toEqual(["A'"]);
    expect(all("(?<=a)b", "ab cb")).toEqual(["b"]);
  });
  it("\\A \\z \\Z are string anchors, ^ $ line anchors; \\b uses Unicode word characters", () => {
    expect(all("\\A\\w", "ab\ncd")).toEqual(["a"]);
    expect(all("\\w\\z", "ab\ncd")).toEqual(["d"]);
    expect(all("\\w\\Z", "ab\ncd\n")).toEqual(["d"]);
    expect(all("^\\w", "ab\ncd")).toEqual(["a", "c"]);
    expect(all("\\b\\w", "né über")).toEqual(["n", "ü"]);
    expect(all("\\B\\w", "né")).toEqual(["é"]);
  });
  it("throws on constructs it cannot map", () => {
    expect(() => onigToJs("\\Gx")).toThrow(/not supported/);
    expect(() => onigToJs("[a-z&&[^aeiou]]")).toThrow(/intersection|nested/);
    expect(() => onigToJs("(a")).toThrow(/parenthesis/);
    expect(() => onigToJs("a)")).toThrow(/parenthesis/);
  });
});

describe("splitPreTokenizer", () => {
  // HF's documented example: "the-final--countdown" split on "-"
  const cases: [SplitBehavior, string[]][] = [
    ["Removed", ["the", "final", "countdown"]],
    ["Isolated", ["the", "-", "final", "-", "-", "countdown"]],
    ["MergedWithPrevious", ["the-", "final-", "-", "countdown"]],
    ["MergedWithNext", ["the", "-final", "-", "-countdown"]],
    ["Contiguous", ["the", "-", "final", "--", "countdown"]],
  ];
  for (const [b, want] of cases) {
    it(b, () => {
      const t = "the-final--countdown";
      const spans = splitPreTokenizer(/-/gu, b)(t, [[0, t.length]]);
      expect(spans.map(([s, e]) => t.slice(s, e))).toEqual(want);
    });
  }
  it("invert: the matches are the words", () => {
    const t = "ab  cd e";
    const spans = splitPreTokenizer(/\S+/gu, "Removed", true)(t, [[0, t.length]]);
    expect(spans.map(([s, e]) => t.slice(s, e))).toEqual(["ab", "cd", "e"]);
  });
});

describe("decoders", () => {
  it("ByteFallback: valid runs become text, invalid ones one U+FFFD per byte", () => {
    expect(byteFallbackDecode(["<0xE4>", "<0xBD>", "<0xA0>", "x", "<0xFF>", "<0xC3>", "y"])).toEqual([
      "你",
      "x",
      "\uFFFD",
      "\uFFFD",
      "y",
    ]);
  });
  it("Strip removes at most start/stop content characters per token", () => {
    expect(stripDecode(" ", 1, 0)(["  a ", " b"])).toEqual([" a ", "b"]);
    expect(stripDecode("x", 2, 1)(["xxxaxx", "xx"])).toEqual(["xax", ""]);
  });
  it("the Llama 2 chain: Replace ▁, ByteFallback, Fuse, Strip", () => {
    const chain = decodeChainFromJson({
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    });
    expect(chain(["▁Hello", "▁w", "orld", "▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"])).toEqual(["Hello world 😀"]);
  });
});

describe("typed errors name the JSON path", () => {
  const tiny = readFileSync(new URL("./fixtures/tiny-bytelevel-tokenizer.json", import.meta.url), "utf8");
  const withPre = (pre: unknown) => {
    const j = JSON.parse(tiny);
    j.pre_tokenizer = pre;
    return JSON.stringify(j);
  };
  it("unknown component types", () => {
    const bad = withPre({ type: "Sequence", pretokenizers: [{ type: "Digits" }, { type: "Nope" }] });
    expect(() => SubwordTokenizer.fromTokenizerJson(bad)).toThrow(ParseError);
    expect(() => SubwordTokenizer.fromTokenizerJson(bad)).toThrow(/pre_tokenizer\.pretokenizers\[1\]\.type/);
    const j = JSON.parse(tiny);
    j.decoder = { type: "Sequence", decoders: [{ type: "Fuse" }, { type: "Mystery" }] };
    expect(() => SubwordTokenizer.fromTokenizerJson(JSON.stringify(j))).toThrow(/decoder\.decoders\[1\]\.type/);
    j.decoder = null;
    j.normalizer = { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Precompiled" }] };
    expect(() => SubwordTokenizer.fromTokenizerJson(JSON.stringify(j))).toThrow(/normalizer\.normalizers\[1\]\.type/);
  });
  it("bad patterns and behaviors", () => {
    expect(() =>
      SubwordTokenizer.fromTokenizerJson(withPre({ type: "Split", pattern: { Regex: "(a" }, behavior: "Isolated" })),
    ).toThrow(/pre_tokenizer\.pattern/);
    expect(() =>
      SubwordTokenizer.fromTokenizerJson(withPre({ type: "Split", pattern: { Regex: "a" }, behavior: "Sideways" })),
    ).toThrow(/pre_tokenizer\.behavior/);
    expect(() =>
      SubwordTokenizer.fromTokenizerJson(
        withPre({ type: "Sequence", pretokenizers: [{ type: "Digits" }, { type: "Metaspace" }] }),
      ),
    ).toThrow(/pre_tokenizer\.pretokenizers\[1\]/);
  });
});
