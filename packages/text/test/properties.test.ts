// Property tests (fast-check): GPT-2 BPE equals js-tiktoken and round-trips on arbitrary strings; the Keras
// tokenizer decodes what it encodes; padSequences keeps the right elements; Keras JSON round-trips.
import { fc, test } from "@fast-check/vitest";
import { getEncoding } from "js-tiktoken";
import { describe, expect } from "vitest";
import { Tokenizer, textToWordSequence } from "../src/keras-tokenizer.js";
import { padSequences } from "../src/pad-sequences.js";
import { SubwordTokenizer } from "../src/subword-tokenizer.js";
import { gpt2Files } from "./gpt2-from-tiktoken.js";

const files = gpt2Files();
const gpt2 = SubwordTokenizer.gpt2(files.vocabJson, files.mergesTxt);
const tiktoken = getEncoding("r50k_base");

// strings over any code point, graphemes, and whitespace/punctuation-heavy ASCII
const anyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 30 }),
  fc.string({ unit: fc.constantFrom(" ", "\t", "\n", "a", "'", "s", "1", "é", "😀", "-", "\u00a0"), maxLength: 40 }),
);

// long pre-tokens (> 48 symbols) take the heap-based merge path
const longWord = fc.string({
  unit: fc.constantFrom("a", "b", "e", "t", "h", "r", "é", "ñ", "1", " "),
  minLength: 49,
  maxLength: 400,
});

describe("GPT-2 byte-level BPE", () => {
  test.prop([longWord], { numRuns: 60 })("long words: heap merging equals js-tiktoken", (s) => {
    expect(gpt2.encodeIds(s)).toEqual(tiktoken.encode(s, "all"));
  });

  test.prop([anyText], { numRuns: 400 })("ids equal js-tiktoken r50k_base; decode(encode(s)) === s", (s) => {
    const ids = gpt2.encodeIds(s);
    expect(ids).toEqual(tiktoken.encode(s, "all"));
    expect(gpt2.decode(ids)).toBe(s);
    expect(gpt2.encode(s).ids).toEqual(ids);
  });
});

const word = fc.string({ unit: fc.constantFrom("a", "b", "c", "é", "Z", "'"), minLength: 1, maxLength: 6 });

describe("Keras Tokenizer", () => {
  test.prop([
    fc.array(
      fc.array(word, { maxLength: 8 }).map((ws) => ws.join(" ")),
      { minLength: 1, maxLength: 10 },
    ),
  ])("sequencesToTexts(textsToSequences(t)) re-joins the words of every fitted text", (texts) => {
    const tok = new Tokenizer();
    tok.fitOnTexts(texts);
    const back = tok.sequencesToTexts(tok.textsToSequences(texts));
    expect(back).toEqual(texts.map((t) => textToWordSequence(t).join(" ")));
    // indices are 1..n, most frequent first
    const counts = [...tok.wordIndex.keys()].map((w) => tok.wordCounts.get(w)!);
    expect([...counts].sort((a, b) => b - a)).toEqual(counts);
    expect(Tokenizer.fromJSON(tok.toJSON()).toJSON()).toBe(tok.toJSON());
  });
});

describe("padSequences", () => {
  test.prop([
    fc.array(fc.array(fc.integer({ min: -1000, max: 1000 }), { maxLength: 8 }), { maxLength: 6 }),
    fc.option(fc.integer({ min: 0, max: 10 }), { nil: null }),
    fc.constantFrom("pre", "post"),
    fc.constantFrom("pre", "post"),
  ])("each row holds the kept elements in order, padded with the value", (seqs, maxlen, padding, truncating) => {
    const t = padSequences(seqs, { maxlen, padding, truncating, value: -7 });
    const L = maxlen ?? Math.max(0, ...seqs.map((s) => s.length));
    expect(t.shape).toEqual([seqs.length, L]);
    seqs.forEach((s, i) => {
      const row = Array.from(t.data.subarray(i * L, (i + 1) * L));
      const n = Math.min(s.length, L);
      const kept = truncating === "pre" ? s.slice(s.length - n) : s.slice(0, n);
      const pad = new Array(L - n).fill(-7);
      expect(row).toEqual(padding === "pre" ? [...pad, ...kept] : [...kept, ...pad]);
    });
  });
});
