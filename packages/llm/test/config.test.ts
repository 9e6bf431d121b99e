import { ConfigError } from "@wasmformer/core";
import { describe, expect, test } from "vitest";
import { gpt2Defaults, innerDim, parseGPT2Config } from "../src/config.js";

describe("parseGPT2Config", () => {
  test("HF defaults for missing fields; n_ctx stands for n_positions", () => {
    const c = parseGPT2Config({ n_ctx: 256, n_inner: null });
    expect(c).toEqual({ ...gpt2Defaults, n_positions: 256 });
    expect(innerDim(c)).toBe(3072);
    expect(innerDim(parseGPT2Config({ n_inner: 100 }))).toBe(100);
  });

  test("ill-typed or inconsistent fields are ConfigErrors naming the field", () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ n_embd: "768" }, /n_embd/],
      [{ n_layer: 0 }, /n_layer/],
      [{ n_head: 5 }, /n_embd.*not divisible by n_head/],
      [{ activation_function: "mish" }, /activation_function/],
      [{ layer_norm_epsilon: -1 }, /layer_norm_epsilon/],
      [{ tie_word_embeddings: 1 }, /tie_word_embeddings/],
      [{ vocab_size: 10, bos_token_id: 3, eos_token_id: 10 }, /eos_token_id.*outside the vocabulary/],
      [{ model_type: "llama" }, /model_type/],
    ];
    for (const [cfg, re] of bad) {
      expect(() => parseGPT2Config(cfg)).toThrow(ConfigError);
      expect(() => parseGPT2Config(cfg)).toThrow(re);
    }
    expect(() => parseGPT2Config([1])).toThrow(ConfigError);
  });
});
