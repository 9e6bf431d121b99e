/**
 * Hostile arguments: token ids (one check everywhere: an integer in [0, vocab_size), reported with
 * its position), generation options, and `eos_token_id` given as a list (as Hugging Face allows).
 */
import { ConfigError, InputError, init, Tensor } from "@wasmformer/core";
import { beforeAll, describe, expect, test } from "vitest";
import { AutoModelForCausalLM } from "../src/auto.js";
import { eosTokenIds, parseGPT2Config } from "../src/config.js";
import { checkTokenId, GPT2LMHeadModel } from "../src/gpt2-model.js";
import { makeTiny, source } from "./tiny-gpt2.js";

const tiny = makeTiny({ seed: 31, V: 40, P: 32 });
let model: GPT2LMHeadModel;

beforeAll(async () => {
  await init();
  model = await GPT2LMHeadModel.fromWeights(tiny.config, source(tiny.tensors), { maxBatch: 2 });
});

describe("token ids", () => {
  test("checkTokenId: integers in [0, vocab_size) only, named with their position", () => {
    expect(checkTokenId(0, 40, "x")).toBe(0);
    expect(checkTokenId(39, 40, "x")).toBe(39);
    for (const bad of [40, -1, 2 ** 31, 2 ** 32 + 5, 1.7, Number.NaN, Infinity, "1", null, undefined, 1n]) {
      expect(() => checkTokenId(bad, 40, "input_ids[0, 3]")).toThrow(InputError);
    }
    expect(() => checkTokenId(2 ** 31, 40, "input_ids[0, 3]")).toThrow(
      "token id 2147483648 at input_ids[0, 3] is outside the vocabulary [0, 40) (vocab_size 40)",
    );
    expect(() => checkTokenId("1", 40, "input_ids[1, 0]")).toThrow(
      'token id "1" at input_ids[1, 0] is not an integer (vocab_size 40)',
    );
  });

  test("decode() rejects what prefill() rejects: NaN, 1.7, '1', out of range", () => {
    model.prefill([[1, 2]]);
    const before = model.cacheLength;
    expect(() => model.decode([Number.NaN])).toThrow(/token id NaN at input_ids\[0, 2\] is not an integer/);
    expect(() => model.decode([1.7])).toThrow(/token id 1\.7 at input_ids\[0, 2\]/);
    expect(() => model.decode(["1"] as never)).toThrow(/token id "1" at input_ids\[0, 2\]/);
    expect(() => model.decode([40])).toThrow(/token id 40 at input_ids\[0, 2\] is outside the vocabulary/);
    expect(() => model.decode(5 as never)).toThrow(InputError);
    expect(model.cacheLength).toBe(before); // nothing was appended
    expect(() => model.prefill([[1, Number.NaN]])).toThrow(/token id NaN at input_ids\[0, 1\]/);
    expect(() => model.extend([[3, 1.5]])).toThrow(/token id 1\.5 at input_ids\[0, 3\]/);
  });

  test("ids ≥ 2³² do not wrap around; 2³¹ is reported as itself", async () => {
    const big = 2 ** 32 + 5;
    expect(() => model.forward([[1, big]])).toThrow(/token id 4294967301 at input_ids\[0, 1\].*vocab_size 40/);
    expect(() => model.embedTokens([[big]])).toThrow(/token id 4294967301 at input_ids\[0, 0\]/);
    expect(() => model.prefill([[2 ** 31]])).toThrow(/token id 2147483648 at input_ids\[0, 0\]/);
    await expect(model.generateAll([1, big])).rejects.toThrow(/token id 4294967301 at input_ids\[0, 1\]/);
    // tensors: the same check
    expect(() => model.forward(new Tensor(Int32Array.of(1, 40), [1, 2], "i32"))).toThrow(
      /token id 40 at input_ids\[0, 1\]/,
    );
    // masks take 0/1 only, and are not wrapped either
    expect(() => model.prefill([[1, 2]], { attentionMask: [[2 ** 32 + 1, 1]] })).toThrow(InputError);
  });

  test("inputsEmbeds prompts: seenIds are token ids too", async () => {
    const emb = model.embedTokens([[1, 2, 3]]);
    await expect(model.generateAll({ inputsEmbeds: emb, seenIds: [[1, 2.5]] })).rejects.toThrow(/seenIds\[0, 1\]/);
    await expect(model.generateAll({ inputsEmbeds: emb, seenIds: [[99]] })).rejects.toThrow(/token id 99/);
  });
});

describe("generation options", () => {
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ["stop: [null]", { stop: [null] }, /stop\[0\] must be a string, got null/],
    ["stop: 'x'", { stop: "x" }, /stop must be an array of strings/],
    ["stopIds: 'x'", { stopIds: "x" }, /stopIds must be a token id or an array of token ids/],
    ["stopIds: [1.5]", { stopIds: [1.5] }, /token id 1\.5 at stopIds\[0\]/],
    ["stopIds: [40]", { stopIds: [40] }, /token id 40 at stopIds\[0\] is outside the vocabulary/],
    ["maxNewTokens: '3'", { maxNewTokens: "3" }, /maxNewTokens must be an integer ≥ 0, got "3"/],
    ["seed: '1'", { seed: "1" }, /seed must be a finite number, got "1"/],
    ["signal: {}", { signal: {} }, /signal must be an AbortSignal/],
    ["onToken: 1", { onToken: 1 }, /onToken must be a function/],
    ["logprobs: 'yes'", { logprobs: "yes" }, /logprobs must be a boolean/],
    ["outputAttentions: 1", { outputAttentions: 1 }, /outputAttentions must be a boolean/],
    ["attentionMask: 1", { attentionMask: 1 }, /attentionMask must be an array of rows/],
    ["temperature: '1'", { temperature: "1" }, /temperature/],
  ];
  for (const [what, o, msg] of bad) {
    test(`${what} is an InputError`, async () => {
      const err = await model.generateAll([1, 2], o as never).catch((e) => e);
      expect(err).toBeInstanceOf(InputError);
      expect(err.message).toMatch(msg);
    });
  }

  test("forward options: logits mode and outputAttentions are checked", () => {
    expect(() => model.prefill([[1]], { logits: "some" as never })).toThrow(/logits must be "all", "last" or "none"/);
    expect(() => model.prefill([[1]], { outputAttentions: "yes" as never })).toThrow(InputError);
  });

  test("stopIds may be one id", async () => {
    const free = await model.generateAll([1, 2], { maxNewTokens: 8, stopIds: [] });
    const id = free.ids[0][2];
    const one = await model.generateAll([1, 2], { maxNewTokens: 8, stopIds: id });
    expect(one.ids[0]).toEqual(free.ids[0].slice(0, free.ids[0].indexOf(id) + 1));
    expect(one.finishReasons).toEqual(["stop_id"]);
  });
});

describe("eos_token_id as a list", () => {
  test("config parsing accepts a number or a list of numbers; ids outside the vocabulary are ConfigErrors", () => {
    expect(parseGPT2Config({ vocab_size: 10, bos_token_id: 0, eos_token_id: [3, 5] }).eos_token_id).toEqual([3, 5]);
    expect(eosTokenIds(parseGPT2Config({ vocab_size: 10, bos_token_id: 0, eos_token_id: 4 }))).toEqual([4]);
    expect(eosTokenIds(parseGPT2Config({ vocab_size: 10, bos_token_id: 0, eos_token_id: null }))).toEqual([]);
    expect(() => parseGPT2Config({ vocab_size: 10, bos_token_id: 0, eos_token_id: [3, 10] })).toThrow(
      /eos_token_id.*10 is outside the vocabulary/,
    );
    expect(() => parseGPT2Config({ vocab_size: 10, bos_token_id: 0, eos_token_id: ["x"] })).toThrow(ConfigError);
    expect(() => parseGPT2Config({ vocab_size: 10, bos_token_id: 0, eos_token_id: [] })).toThrow(ConfigError);
    expect(() => parseGPT2Config({ vocab_size: 10, bos_token_id: 0, eos_token_id: 1.5 })).toThrow(ConfigError);
  });

  test("generation stops at any of the config's eos ids by default", async () => {
    const free = await model.generateAll([5, 6], { maxNewTokens: 10, stopIds: [] });
    const [a, b] = [free.ids[0][3], free.ids[0][6]];
    const listed = await GPT2LMHeadModel.fromWeights(
      { ...tiny.config, eos_token_id: [39, b, a] },
      source(tiny.tensors),
    );
    const r = await listed.generateAll([5, 6], { maxNewTokens: 10 });
    const at = free.ids[0].findIndex((t) => [39, a, b].includes(t));
    expect(at).toBeLessThanOrEqual(3);
    expect(r.ids[0]).toEqual(free.ids[0].slice(0, at + 1));
    expect(r.finishReasons).toEqual(["stop_id"]);
    listed.dispose();
  });
});

describe("fromWeights sources", () => {
  test("a Map or object of tensors is accepted; anything else is an InputError, not a TypeError", async () => {
    const fromMap = await GPT2LMHeadModel.fromWeights(tiny.config, tiny.tensors);
    const fromObject = await GPT2LMHeadModel.fromWeights(tiny.config, Object.fromEntries(tiny.tensors) as never);
    expect(Array.from(fromMap.forward([[1, 2, 3]]).data)).toEqual(Array.from(model.forward([[1, 2, 3]]).data));
    expect(Array.from(fromObject.forward([[1, 2, 3]]).data)).toEqual(Array.from(model.forward([[1, 2, 3]]).data));
    for (const bad of [42, [], "x", null, { a: 1 }]) {
      await expect(GPT2LMHeadModel.fromWeights(tiny.config, bad as never)).rejects.toThrow(InputError);
      await expect(
        AutoModelForCausalLM.fromWeights({ ...tiny.config, model_type: "gpt2" }, bad as never),
      ).rejects.toThrow(/weights must be a safetensors file/);
    }
    const llama = {
      model_type: "llama",
      vocab_size: 11,
      hidden_size: 8,
      intermediate_size: 8,
      num_hidden_layers: 1,
      num_attention_heads: 2,
    };
    await expect(AutoModelForCausalLM.fromWeights(llama, "x" as never)).rejects.toThrow(InputError);
  });
});
