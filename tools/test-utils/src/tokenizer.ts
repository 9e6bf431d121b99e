/** Tokenizer files for tests (no imports: usable from any package's tests). */

/**
 * A Hugging Face `tokenizer.json` for a GPT-2 style byte-level BPE built from vocab + merges (the
 * layout of gpt2/tokenizer.json); `<|endoftext|>` is the one added token, with id `eosId`.
 */
export function gpt2TokenizerJson(
  vocab: Record<string, number>,
  merges: string[],
  eosId = vocab["<|endoftext|>"] ?? 50256,
): Record<string, unknown> {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: eosId,
        content: "<|endoftext|>",
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}
