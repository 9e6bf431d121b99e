import { readFileSync } from "node:fs";
import { join } from "node:path";
import { InputError, ParseError } from "@wasmformer/core";
import { describe, expect, it } from "vitest";
import { parseOrderedJson, pyJsonDumps } from "../src/json.js";
import { DEFAULT_FILTERS, Tokenizer, textToWordSequence } from "../src/keras-tokenizer.js";
import { padSequences } from "../src/pad-sequences.js";

// test/fixtures/keras-tokenizer-to_json.txt: Keras's to_json() layout written by Python's json.dumps
// (see the generating snippet in the commit that added it): Tokenizer(oov_token="<OOV>") fitted on
// ["Héllo wörld", "héllo 1 2"].
const KERAS_JSON = readFileSync(join(__dirname, "fixtures/keras-tokenizer-to_json.txt"), "utf8");

describe("Tokenizer", () => {
  it("text_to_word_sequence: filters become split, only split separates", () => {
    expect(textToWordSequence("Hello, World!\tfoo\u00a0bar\rbaz")).toEqual(["hello", "world", "foo\u00a0bar\rbaz"]);
    expect(textToWordSequence("it's", DEFAULT_FILTERS)).toEqual(["it's"]);
    expect(() => textToWordSequence("a", "", true, "")).toThrow(InputError);
  });

  it("toJSON() is byte-identical to Keras's to_json() (Python json.dumps, ensure_ascii)", () => {
    const tok = new Tokenizer({ oovToken: "<OOV>" });
    tok.fitOnTexts(["Héllo wörld", "héllo 1 2"]);
    expect(tok.toJSON()).toBe(KERAS_JSON.trim());
  });

  it("fromJSON() restores the state, integer-like words keep their order", () => {
    const tok = Tokenizer.fromJSON(KERAS_JSON);
    expect([...tok.wordCounts.keys()]).toEqual(["héllo", "wörld", "1", "2"]);
    expect(tok.wordIndex.get("1")).toBe(4);
    expect(tok.indexWord.get(3)).toBe("wörld");
    expect(tok.indexDocs.get(2)).toBe(2);
    expect(tok.documentCount).toBe(2);
    expect(tok.oovToken).toBe("<OOV>");
    expect(tok.textsToSequences(["HÉLLO 2 unknown"])).toEqual([[2, 5, 1]]);
    expect(tok.toJSON()).toBe(KERAS_JSON.trim());
    // refitting continues from the loaded counts: "2" overtakes "wörld" and "1"
    tok.fitOnTexts(["2 2"]);
    expect([...tok.wordIndex.entries()]).toEqual([
      ["<OOV>", 1],
      ["2", 2],
      ["héllo", 3],
      ["wörld", 4],
      ["1", 5],
    ]);
  });

  it("round-trips through toJSON/fromJSON with non-BMP and escapes", () => {
    const tok = new Tokenizer({ charLevel: true, numWords: 4 });
    tok.fitOnTexts(['😀"\\\n', "ab😀"]);
    const back = Tokenizer.fromJSON(tok.toJSON());
    expect(back.toJSON()).toBe(tok.toJSON());
    expect(back.textsToSequences(["😀a"])).toEqual(tok.textsToSequences(["😀a"]));
    expect(tok.toJSON()).toContain("\\\\ud83d\\\\ude00"); // surrogate pair, escaped twice (JSON inside JSON)
  });

  it("fromJSON() accepts a parsed object too", () => {
    const tok = Tokenizer.fromJSON(JSON.parse(KERAS_JSON));
    expect(tok.wordIndex.get("héllo")).toBe(2);
  });

  it("malformed JSON gives a ParseError naming the position", () => {
    expect(() => Tokenizer.fromJSON('{"class_name": "Tokenizer",\n "config": {"num_words": nul}}', "tok.json")).toThrow(
      /tok\.json:line 2:column 26/,
    );
    const bad = KERAS_JSON.replace('"word_counts": "{', '"word_counts": "{,');
    const e = (() => {
      try {
        Tokenizer.fromJSON(bad);
      } catch (err) {
        return err as ParseError;
      }
    })();
    expect(e).toBeInstanceOf(ParseError);
    expect(e?.message).toMatch(/config\.word_counts.*line 1:column 2/);
    expect(() => Tokenizer.fromJSON('{"class_name": "Tokenizer", "config": {"lower": 3}}')).toThrow(/config\.lower/);
    expect(() => Tokenizer.fromJSON('{"class_name": "Tokenizer", "config": {"bogus": 3}}')).toThrow(/config\.bogus/);
    expect(() =>
      Tokenizer.fromJSON('{"class_name": "Tokenizer", "config": {"index_word": "{\\"x\\": \\"a\\"}"}}'),
    ).toThrow(/index_word.*"x"/);
    expect(() => Tokenizer.fromJSON("[1]")).toThrow(ParseError);
  });

  it("fits on a sync generator and on an async iterable (streamed corpus)", async () => {
    const lines = ["the cat", "the dog", "a cat"];
    const a = new Tokenizer();
    a.fitOnTexts(lines);
    const b = new Tokenizer();
    b.fitOnTexts(
      (function* () {
        yield* lines;
      })(),
    );
    const c = new Tokenizer();
    await c.fitOnTexts(
      (async function* () {
        for (const l of lines) {
          await new Promise((r) => setTimeout(r, 1));
          yield l;
        }
      })(),
    );
    expect(b.toJSON()).toBe(a.toJSON());
    expect(c.toJSON()).toBe(a.toJSON());
  });

  it("accepts typed arrays as sequences", () => {
    const tok = new Tokenizer();
    tok.fitOnTexts(["a b b"]);
    expect(tok.sequencesToTexts([Int32Array.of(1, 2)])).toEqual(["b a"]);
    expect(Array.from(tok.sequencesToMatrix([Int32Array.of(1, 1)], "count").data)).toEqual([0, 2, 0]);
  });

  it("matrices are 2-D f32 tensors", () => {
    const tok = new Tokenizer();
    tok.fitOnTexts(["a b b"]);
    const m = tok.textsToMatrix(["b b z"], "count");
    expect(m.dtype).toBe("f32");
    expect(m.shape).toEqual([1, 3]);
    expect(Array.from(m.data)).toEqual([0, 2, 0]);
  });

  it("out-of-vocabulary words never throw; bad arguments are typed errors", () => {
    const tok = new Tokenizer();
    expect(tok.textsToSequences(["never seen"])).toEqual([[]]);
    expect(tok.sequencesToTexts([[5, 6]])).toEqual([""]);
    expect(() => tok.sequencesToMatrix([[1]])).toThrow(/numWords/);
    tok.fitOnTexts(["x"]);
    expect(() => tok.sequencesToMatrix([[1]], "bogus" as "count")).toThrow(/mode/);
    expect(() => tok.sequencesToMatrix([[-1]])).toThrow(/sequences\[0\]\[0\]/);
    expect(() => tok.fitOnTexts([3 as unknown as string])).toThrow(/texts\[0\]/);
    expect(() => tok.fitOnTexts("abc" as unknown as string[])).toThrow(InputError);
    expect(() => new Tokenizer({ numWords: -2 })).toThrow(/numWords/);
    const empty = new Tokenizer({ numWords: 3 });
    expect(() => empty.sequencesToMatrix([[1]], "tfidf")).toThrow(/tfidf/);
  });
});

describe("json helpers", () => {
  it("pyJsonDumps matches Python's json.dumps formatting", () => {
    expect(
      pyJsonDumps(
        new Map<unknown, unknown>([
          [1, "a"],
          ["é", [true, null, 2]],
        ]),
      ),
    ).toBe('{"1": "a", "\\u00e9": [true, null, 2]}');
    expect(pyJsonDumps("\u007f\u0001\b")).toBe('"\\u007f\\u0001\\b"');
  });
  it("parseOrderedJson keeps key order and reports positions", () => {
    const m = parseOrderedJson('{"b": 1, "2": 2, "1": 3}') as Map<string, unknown>;
    expect([...m.keys()]).toEqual(["b", "2", "1"]);
    expect(() => parseOrderedJson('{"a": [1, 2,]}', "f.json")).toThrow(/f\.json:line 1:column 13/);
    expect(() => parseOrderedJson('"abc', "f.json")).toThrow(/unterminated/);
  });
});

describe("padSequences", () => {
  it("returns Int32Array or Float32Array tensors", () => {
    const t = padSequences([[1, 2, 3, 4], [1, 2, 3], [1]], { maxlen: 4 });
    expect(t.data).toBeInstanceOf(Int32Array);
    expect(t.toArray()).toEqual([
      [1, 2, 3, 4],
      [0, 1, 2, 3],
      [0, 0, 0, 1],
    ]);
    const f = padSequences([new Float32Array([0.5, 1.5])], { maxlen: 3, dtype: "float32", value: -1 });
    expect(f.data).toBeInstanceOf(Float32Array);
    expect(f.toArray()).toEqual([[-1, 0.5, 1.5]]);
  });
  it("rejects bad arguments by name", () => {
    expect(() => padSequences([[1]], { padding: "middle" as "pre" })).toThrow(/padding/);
    expect(() => padSequences([[1]], { dtype: "int8" as "int32" })).toThrow(/dtype/);
    expect(() => padSequences([[Number.POSITIVE_INFINITY]])).toThrow(/sequences\[0\]\[0\]/);
    expect(() => padSequences([3 as unknown as number[]])).toThrow(/sequences\[0\]/);
    expect(() => padSequences([[1]], { maxlen: 1.5 })).toThrow(/maxlen/);
  });
});

describe("outputs too large to exist (issue 13): InputError before allocating", () => {
  it("textsToMatrix with numWords 1e12 names numWords and the size; what fits still works", () => {
    const tok = new Tokenizer({ numWords: 1e12 });
    tok.fitOnTexts(["a b c", "b c"]);
    const run = () => tok.textsToMatrix(["a b", "c"]);
    expect(run).toThrow(InputError);
    expect(run).toThrow(/numWords = 1000000000000: a \[2, 1000000000000\] matrix needs [\d.e+]+ GiB/);
    const fits = new Tokenizer({ numWords: 100_000 });
    fits.fitOnTexts(["a b c", "b c"]);
    const m = fits.textsToMatrix(["a b", "c"], "count");
    expect(m.shape).toEqual([2, 100_000]);
    expect(Array.from(m.data.subarray(0, 4))).toEqual([0, 1, 0, 1]); // b = 1, c = 2, a = 3
  });

  it("padSequences of 1e5 rows with maxlen 1e5 names the sizes; what fits still works", () => {
    const rows = Array.from({ length: 100_000 }, (_, i) => [i + 1]);
    const run = () => padSequences(rows, { maxlen: 100_000 });
    expect(run).toThrow(InputError);
    expect(run).toThrow(
      /padSequences \(100000 sequences, maxlen 100000\): a \[100000, 100000\] matrix needs 37\.3 GiB/,
    );
    expect(() => padSequences(rows, { maxlen: 100_000, dtype: "float32" })).toThrow(InputError);
    const t = padSequences(rows, { maxlen: 100 });
    expect(t.shape).toEqual([100_000, 100]);
    expect(t.data[99]).toBe(1);
    expect(t.data[100 * 99_999 + 99]).toBe(100_000);
  });
});
