// The text-package tokenizer as generation sees it: special tokens on prompts as HF's
// tokenizer(prompt), the chat template from tokenizer_config.json, and streaming of a
// SentencePiece-style tokenizer (metaspace, byte fallback, stripped first space).
import { SubwordTokenizer } from "@wasmformer/text";
import { describe, expect, test } from "vitest";
import { fromSubwordTokenizer, TextStreamer } from "../src/index.js";

const special = (id: number, content: string) => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
});

/** A Llama-2-style tokenizer.json: BPE over ▁-prefixed text with byte fallback. */
const spJson = {
  version: "1.0",
  added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
  normalizer: {
    type: "Sequence",
    normalizers: [
      { type: "Prepend", prepend: "▁" },
      { type: "Replace", pattern: { String: " " }, content: "▁" },
    ],
  },
  pre_tokenizer: null,
  post_processor: {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [
      { SpecialToken: { id: "<s>", type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: "<s>", type_id: 1 } },
      { Sequence: { id: "B", type_id: 1 } },
    ],
    special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
  },
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
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: true,
    byte_fallback: true,
    ignore_merges: false,
    vocab: { "<unk>": 0, "<s>": 1, "</s>": 2, "<0xC3>": 3, "<0xA9>": 4, "▁": 5, h: 6, i: 7, "▁h": 8, "▁hi": 9 },
    merges: ["▁ h", "▁h i"],
  },
};
const config = {
  add_bos_token: true,
  bos_token: "<s>",
  eos_token: "</s>",
  chat_template:
    "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}",
};

describe("fromSubwordTokenizer", () => {
  const tok = fromSubwordTokenizer(
    SubwordTokenizer.fromTokenizerJson(JSON.stringify(spJson), "tokenizer.json", config),
  );

  test("prompts get the post-processor's special tokens only when asked (generate asks, as HF's tokenizer(prompt))", () => {
    expect(tok.encode("hi hi")).toEqual([9, 9]);
    expect(tok.encode("hi hi", { addSpecialTokens: true })).toEqual([1, 9, 9]);
  });

  test("a SentencePiece-style stream keeps its spaces and multi-byte characters (no per-token bytes)", () => {
    expect(tok.tokenBytes).toBeUndefined();
    const ids = [9, 9, 3, 4, 9]; // "hi", " hi", é as two byte pieces, " hi"
    const s = new TextStreamer(tok);
    let text = "";
    for (const id of ids) text += s.push(id);
    text += s.flush();
    expect(text).toBe(tok.decode(ids));
    expect(text).toBe("hi hié hi");
  });

  test("the chat template of tokenizer_config.json is reachable", () => {
    const out = tok.applyChatTemplate?.([{ role: "user", content: "hi" }], { addGenerationPrompt: true });
    expect(out).toBe("[user] hi\n[assistant] ");
  });
});
