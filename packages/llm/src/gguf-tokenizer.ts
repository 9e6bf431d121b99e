/**
 * The tokenizer of a GGUF file's metadata (`tokenizer.ggml.*`), built as the Hugging Face
 * `tokenizer.json` (+ `tokenizer_config.json`) it came from and handed to @wasmformer/text's
 * `SubwordTokenizer.fromTokenizerJson`: the same tokenizer objects as a folder's, no second engine.
 *
 * - `tokenizer.ggml.model = "gpt2"`: byte-level BPE from `tokens` and `merges`, the pre-tokenizer
 *   named by `tokenizer.ggml.pre` (GPT-2's regex by default; Llama 3, Qwen2, SmolLM variants).
 * - `"llama"`: SentencePiece BPE with byte fallback (`<0xXX>` tokens). GGUF keeps the piece scores,
 *   not merges; the merges are rebuilt as transformers' `SentencePieceExtractor` does: every split
 *   of a piece into two pieces of the vocabulary, ordered by the piece's score (highest first), then
 *   by the ids of the parts. A space prefix (`add_space_prefix`, default true) and `▁` for spaces.
 *
 * Token types (`token_type`): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte;
 * unknown and control tokens are special added tokens, user-defined ones plain added tokens.
 * `add_bos_token` / `add_eos_token` (defaults as llama.cpp: BOS for "llama", none for "gpt2"),
 * the special ids and `tokenizer.chat_template` go into the `tokenizer_config.json` part.
 */
import { ConfigError, GgufError } from "@wasmformer/core";
import { SubwordTokenizer } from "@wasmformer/text";
import type { GgufMeta } from "./gguf-model.js";
import { fromSubwordTokenizer, type Tokenizer } from "./tokenizer.js";

const TT_UNKNOWN = 2;
const TT_CONTROL = 3;
const TT_USER = 4;
const TT_BYTE = 6;

const GPT2_BYTE_LEVEL = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
const split = (regex: string) => ({
  type: "Sequence",
  pretokenizers: [
    { type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false },
    { ...GPT2_BYTE_LEVEL, use_regex: false },
  ],
});
/** `tokenizer.ggml.pre` → the pre-tokenizer of the original tokenizer.json. */
const PRE_TOKENIZERS: Record<string, unknown> = {
  default: GPT2_BYTE_LEVEL,
  "gpt-2": GPT2_BYTE_LEVEL,
  "llama-bpe": split(
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  ),
  qwen2: split(
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  ),
  smollm: {
    type: "Sequence",
    pretokenizers: [{ type: "Digits", individual_digits: true }, GPT2_BYTE_LEVEL],
  },
};

/**
 * The Hugging Face `tokenizer.json` and `tokenizer_config.json` objects a GGUF file's metadata
 * describes, or undefined without a vocabulary (`tokenizer.ggml.model` absent, "none" or "no_vocab").
 */
export function ggufTokenizerJson(
  meta: GgufMeta,
): { json: Record<string, unknown>; config: Record<string, unknown> } | undefined {
  if (!meta.has("tokenizer.ggml.model")) return undefined;
  const model = meta.str("tokenizer.ggml.model");
  if (model === "none" || model === "no_vocab") return undefined; // llama.cpp: a file without a vocabulary
  if (model !== "gpt2" && model !== "llama")
    throw new ConfigError(
      `unsupported tokenizer model ${JSON.stringify(model)} (supported: "gpt2" byte-level BPE, "llama" SentencePiece)`,
      "tokenizer.ggml.model",
    );
  const tokens = meta.strings("tokenizer.ggml.tokens");
  const n = tokens.length;
  const types = meta.numbers("tokenizer.ggml.token_type", n);
  const typeOf = (id: number) => (types ? types[id] : 1);
  const idKey = (k: string) => {
    const id = meta.intOrNull(`tokenizer.ggml.${k}`);
    if (id !== null && id >= n)
      throw new GgufError(`metadata "tokenizer.ggml.${k}": id ${id} is outside the ${n} tokens`, {
        key: `tokenizer.ggml.${k}`,
      });
    return id;
  };
  const bos = idKey("bos_token_id");
  const eos = idKey("eos_token_id");
  let unk = idKey("unknown_token_id");
  const pad = idKey("padding_token_id");

  const vocab: Record<string, number> = {};
  for (let i = 0; i < n; i++) if (!Object.hasOwn(vocab, tokens[i])) vocab[tokens[i]] = i;
  const special = new Set([bos, eos, unk, pad].filter((x): x is number => x !== null));
  const added: Record<string, unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const t = typeOf(i);
    const isSpecial = t === TT_CONTROL || t === TT_UNKNOWN || (special.has(i) && t !== TT_BYTE);
    if (!isSpecial && t !== TT_USER) continue;
    added.push({
      id: i,
      content: tokens[i],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: !isSpecial,
      special: isSpecial,
    });
  }

  let json: Record<string, unknown>;
  if (model === "gpt2") {
    const merges = meta.strings("tokenizer.ggml.merges");
    const pre = meta.str("tokenizer.ggml.pre", "default");
    const preTokenizer = PRE_TOKENIZERS[pre];
    if (!preTokenizer)
      throw new ConfigError(
        `unsupported pre-tokenizer ${JSON.stringify(pre)} (supported: ${Object.keys(PRE_TOKENIZERS).join(", ")})`,
        "tokenizer.ggml.pre",
      );
    json = {
      version: "1.0",
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: preTokenizer,
      post_processor: null,
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: "BPE", dropout: null, unk_token: null, fuse_unk: false, byte_fallback: false, vocab, merges },
    };
  } else {
    const scores = meta.numbers("tokenizer.ggml.scores", n);
    if (!scores)
      throw new GgufError(`missing metadata "tokenizer.ggml.scores" (required by the "llama" tokenizer)`, {
        key: "tokenizer.ggml.scores",
      });
    if (unk === null) {
      const u = types ? Array.from({ length: n }, (_, i) => i).find((i) => typeOf(i) === TT_UNKNOWN) : undefined;
      unk = u ?? (Object.hasOwn(vocab, "<unk>") ? vocab["<unk>"] : null);
    }
    const prefix = meta.bool("tokenizer.ggml.add_space_prefix", true);
    json = {
      version: "1.0",
      added_tokens: added,
      normalizer: {
        type: "Sequence",
        normalizers: [
          ...(prefix ? [{ type: "Prepend", prepend: "▁" }] : []),
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
          ...(prefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
        ],
      },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: unk === null ? null : tokens[unk],
        fuse_unk: true,
        byte_fallback: true,
        vocab,
        merges: sentencePieceMerges(tokens, scores, typeOf),
      },
    };
  }
  const config: Record<string, unknown> = {
    add_bos_token: meta.bool("tokenizer.ggml.add_bos_token", model === "llama"),
    add_eos_token: meta.bool("tokenizer.ggml.add_eos_token", false),
  };
  if (bos !== null) config.bos_token = tokens[bos];
  if (eos !== null) config.eos_token = tokens[eos];
  if (unk !== null) config.unk_token = tokens[unk];
  if (pad !== null) config.pad_token = tokens[pad];
  if (meta.has("tokenizer.chat_template")) config.chat_template = meta.str("tokenizer.chat_template");
  return { json, config };
}

/**
 * Merges of a SentencePiece BPE vocabulary (transformers `SentencePieceExtractor.extract` with
 * scores): for each normal piece, every split into a left and right piece that are both normal
 * pieces; ordered by the piece's score (descending), ties by the piece's id, then by the parts' ids.
 */
export function sentencePieceMerges(
  tokens: readonly string[],
  scores: ArrayLike<number>,
  typeOf: (id: number) => number,
): [string, string][] {
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (typeOf(i) === 1 && !ids.has(t)) ids.set(t, i);
  });
  const merges: { l: number; r: number; piece: number }[] = [];
  for (const [piece, id] of ids) {
    const cps = Array.from(piece);
    let at = cps[0]?.length ?? 0;
    for (let k = 1; k < cps.length; k++) {
      const l = ids.get(piece.slice(0, at));
      const r = ids.get(piece.slice(at));
      if (l !== undefined && r !== undefined) merges.push({ l, r, piece: id });
      at += cps[k].length;
    }
  }
  merges.sort((a, b) => scores[b.piece] - scores[a.piece] || a.piece - b.piece || a.l - b.l || a.r - b.r);
  return merges.map((m) => [tokens[m.l], tokens[m.r]]);
}

/** The `Tokenizer` of a GGUF file's metadata, or undefined when it has none. */
export function ggufTokenizer(meta: GgufMeta): Tokenizer | undefined {
  const t = ggufTokenizerJson(meta);
  if (!t) return undefined;
  return fromSubwordTokenizer(SubwordTokenizer.fromTokenizerJson(t.json, "GGUF tokenizer.ggml.*", t.config));
}
