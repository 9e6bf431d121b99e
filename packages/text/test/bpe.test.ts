// Byte-level BPE (GPT-2): real GPT-2 vocab/merges (derived from js-tiktoken's r50k_base ranks) loaded
// by our loader, compared with js-tiktoken (oracle) on a 10k-line corpus; tokenizer.json path; errors.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { ParseError } from "@wasmformer/core";
import { gpt2TokenizerJson } from "@wasmformer/test-utils/tokenizer";
import { getEncoding } from "js-tiktoken";
import { describe, expect, it } from "vitest";
import { SubwordTokenizer } from "../src/subword-tokenizer.js";
import { parseTiktokenRanks, ranksToVocabMerges } from "../src/tiktoken.js";
import { parityCorpus } from "./corpus.js";
import { gpt2Files } from "./gpt2-from-tiktoken.js";

const TINY = readFileSync(join(__dirname, "fixtures/tiny-bytelevel-tokenizer.json"), "utf8");

describe("GPT-2 byte-level BPE vs js-tiktoken r50k_base", () => {
  const files = gpt2Files();
  const tok = SubwordTokenizer.gpt2(files.vocabJson, files.mergesTxt);
  const tiktoken = getEncoding("r50k_base");
  const corpus = parityCorpus();

  it("derived files look like GPT-2's (50257 tokens, 50000 merges starting 'Ġ t')", () => {
    expect(Object.keys(files.vocab).length).toBe(50257);
    expect(files.merges.length).toBe(50000);
    expect(files.merges.slice(0, 3)).toEqual(["Ġ t", "Ġ a", "h e"]);
    expect(tok.vocabSize).toBe(50257);
  });

  it(`identical ids and decode(encode(s)) === s on ${corpus.length} lines`, () => {
    expect(corpus.length).toBeGreaterThanOrEqual(10_000);
    const mismatches: string[] = [];
    const roundTrip: string[] = [];
    for (const line of corpus) {
      const ours = tok.encodeIds(line);
      const ref = tiktoken.encode(line, "all");
      if (ours.length !== ref.length || ours.some((v, i) => v !== ref[i])) mismatches.push(line);
      if (tok.decode(ours) !== line) roundTrip.push(line);
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
    expect(roundTrip.slice(0, 5)).toEqual([]);
  });

  it("encode() gives the same ids with tokens and offsets that cover the text", () => {
    for (const line of corpus.filter((_, i) => i % 7 === 0)) {
      const e = tok.encode(line);
      expect(e.ids).toEqual(tok.encodeIds(line));
      expect(e.tokens).toEqual(e.ids.map((id) => tok.idToToken(id)));
      let prevEnd = 0;
      for (const [s, t] of e.offsets) {
        expect(s).toBeGreaterThanOrEqual(0);
        expect(t).toBeLessThanOrEqual(line.length);
        expect(s).toBeLessThanOrEqual(t);
        expect(t).toBeGreaterThanOrEqual(prevEnd); // monotone (tokens inside one character share it)
        prevEnd = t;
      }
      if (e.ids.length) expect(e.offsets[e.offsets.length - 1][1]).toBe(line.length);
    }
    const e = tok.encode("Hello world, it's 2024 🎉");
    expect(e.tokens).toEqual(["Hello", "Ġworld", ",", "Ġit", "'s", "Ġ2024", "ĠðŁ", "İ", "ī"]);
    expect(e.offsets).toEqual([
      [0, 5],
      [5, 11],
      [11, 12],
      [12, 15],
      [15, 17],
      [17, 22],
      [22, 25], // " " + the first two bytes of 🎉 (a surrogate pair: the whole character)
      [23, 25],
      [23, 25],
    ]);
  });

  it("the tokenizer.json path gives the same ids as tiktoken and as @huggingface/tokenizers", () => {
    const json = gpt2TokenizerJson(files.vocab, files.merges);
    const fromJson = SubwordTokenizer.fromTokenizerJson(JSON.stringify(json));
    const hf = new HfTokenizer(json, {});
    const sample = corpus.filter((_, i) => i % 10 === 0);
    let hfAgree = 0;
    for (const line of sample) {
      const ids = fromJson.encodeIds(line);
      expect(ids).toEqual(tiktoken.encode(line, "all"));
      if (JSON.stringify(hf.encode(line).ids) === JSON.stringify(ids)) hfAgree++;
    }
    // @huggingface/tokenizers translates the Oniguruma regex; it must agree on (nearly) every line
    expect(hfAgree / sample.length).toBeGreaterThan(0.99);
  });

  it("a 3000-letter word (heap merging, O(n log n)) equals tiktoken", () => {
    let x = 7;
    let s = "";
    for (let i = 0; i < 3000; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      s += String.fromCharCode(97 + ((x >> 16) % 26));
    }
    expect(tok.encodeIds(s)).toEqual(tiktoken.encode(s));
  });

  it("special token <|endoftext|> is one id; decode can skip it", () => {
    const ids = tok.encodeIds("a<|endoftext|>b");
    expect(ids).toEqual([64, 50256, 65]);
    expect(tok.decode(ids)).toBe("a<|endoftext|>b");
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe("ab");
  });

  it("batch encode pads, truncates and masks", () => {
    const b = tok.encodeBatch(["Hello world", "Hi"], { padding: "longest", padId: 50256 });
    expect(b.inputIds.shape).toEqual([2, 2]);
    expect(Array.from(b.inputIds.data)).toEqual([15496, 995, 17250, 50256]);
    expect(Array.from(b.attentionMask.data)).toEqual([1, 1, 1, 0]);
    const left = tok.encodeBatch(["Hello world", "Hi"], {
      padding: "max_length",
      maxLength: 3,
      padId: 0,
      paddingSide: "left",
    });
    expect(Array.from(left.inputIds.data)).toEqual([0, 15496, 995, 0, 0, 17250]);
    expect(Array.from(left.attentionMask.data)).toEqual([0, 1, 1, 0, 0, 1]);
    const cut = tok.encodeBatch(["Hello world, it's me"], { truncation: true, maxLength: 2 });
    expect(Array.from(cut.inputIds.data)).toEqual([15496, 995]);
    expect(() => tok.encodeBatch(["Hello world", "Hi"])).toThrow(/padding/);
    expect(() => tok.encodeBatch(["Hello world", "Hi"], { padding: true })).toThrow(/pad id/);
  });
});

describe("hand-made byte-level tokenizer.json", () => {
  const tok = SubwordTokenizer.fromTokenizerJson(TINY);
  it("merges, added tokens (lstrip), offsets", () => {
    expect(tok.encodeIds("hello world<|endoftext|>")).toEqual([259, 264, 265]);
    const e = tok.encode("hi <mask>!");
    expect(e.ids).toEqual([104, 105, 266, 33]);
    expect(e.offsets).toEqual([
      [0, 1],
      [1, 2],
      [2, 9],
      [9, 10],
    ]);
    expect(e.specialTokensMask).toEqual([0, 0, 1, 0]);
    const u = tok.encode("é");
    expect(u.ids).toEqual([195, 169]);
    expect(u.offsets).toEqual([
      [0, 1],
      [0, 1],
    ]);
    expect(tok.decode([259, 264, 265, 195, 169])).toBe("hello world<|endoftext|>é");
  });
  it("agrees with @huggingface/tokenizers", () => {
    const hf = new HfTokenizer(JSON.parse(TINY), {});
    for (const s of ["hello world", "hello  world\n", "hi <mask>!", "héllo wörld 😀", "<|endoftext|>hello"]) {
      expect(tok.encodeIds(s)).toEqual(hf.encode(s).ids);
    }
  });
});

describe("tiktoken rank files", () => {
  it("parse and convert to vocab + merges", () => {
    const b64 = (s: string) => Buffer.from(s, "latin1").toString("base64");
    const bytes = Array.from({ length: 256 }, (_, i) => `${b64(String.fromCharCode(i))} ${i}`);
    const text = [...bytes, `${b64("ab")} 256`, `${b64("abc")} 257`, `${b64("cab")} 258`].join("\n");
    const { vocab, merges } = ranksToVocabMerges(parseTiktokenRanks(text));
    expect(merges).toEqual([
      ["a", "b"],
      ["ab", "c"],
      ["c", "ab"],
    ]);
    expect(vocab.get("abc")).toBe(257);
    expect(() => parseTiktokenRanks("YQ== 0\nnot a line\n", "x.tiktoken")).toThrow(/x\.tiktoken:line 2/);
    expect(() => parseTiktokenRanks("YQ== 1\n")).toThrow(/rank 0 is missing/);
  });
});

describe("malformed files give ParseError with the position", () => {
  const files = gpt2Files();
  it("merges.txt: wrong arity, unknown token", () => {
    expect(() => SubwordTokenizer.gpt2(files.vocabJson, "#version: 0.2\nĠ t\nĠ a b\n")).toThrow(/merges\.txt:line 3/);
    expect(() => SubwordTokenizer.gpt2(files.vocabJson, "#version: 0.2\nĠ t\nh e\nzzzq x\n")).toThrow(
      /merges\.txt:line 4.*"zzzq"/,
    );
    try {
      SubwordTokenizer.gpt2(files.vocabJson, "Ġ t\n\nh e\n");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ParseError);
      expect((e as ParseError).line).toBe(2);
    }
  });
  it("vocab.json: not JSON, bad id", () => {
    expect(() => SubwordTokenizer.gpt2('{"a": 1,\n "b": }', "")).toThrow(/vocab\.json:line 2:column 7/);
    expect(() => SubwordTokenizer.gpt2('{"a": 1,\n "b": "x"}', "")).toThrow(/vocab\.json:line 2:column 2.*"b"/);
  });
  it("tokenizer.json: syntax error, bad merge, unsupported model", () => {
    expect(() => SubwordTokenizer.fromTokenizerJson(TINY.replace('"merges": [', '"merges": [,'))).toThrow(ParseError);
    expect(() => SubwordTokenizer.fromTokenizerJson(TINY.replace('"merges": [', '"merges": [,'))).toThrow(
      /tokenizer\.json:line \d+:column \d+/,
    );
    expect(() => SubwordTokenizer.fromTokenizerJson(TINY.replace('"Ġwor ld"', '"Ġwor qq"'))).toThrow(
      /merges\[8\].*line \d+.*"qq"/,
    );
    expect(() => SubwordTokenizer.fromTokenizerJson(TINY.replace('"type": "BPE"', '"type": "Unigram"'))).toThrow(
      /model\.type.*Unigram/,
    );
    expect(() =>
      SubwordTokenizer.fromTokenizerJson(TINY.replace('"type": "ByteLevel"', '"type": "UnicodeScripts"')),
    ).toThrow(/pre_tokenizer\.type/);
  });
  it("out-of-vocabulary input never throws", () => {
    const json = JSON.parse(TINY);
    delete json.model.vocab.Ā; // byte 0x00 is no longer in the vocabulary
    const t = SubwordTokenizer.fromTokenizerJson(json);
    expect(t.encodeIds("a\u0000b")).toEqual([97, 98]);
  });
});
