/** Prompts with an image slot: splitting, filling, tokenizing, the answer cut at the next turn. */
import { ConfigError, InputError, tensorSource } from "@wasmformer/core";
import { describe, expect, test } from "vitest";
import { MINIGPT4_TEMPLATE, parseVLMConfig } from "../src/config.js";
import {
  answerText,
  fillImagePrompt,
  IMAGE_PLACEHOLDER,
  splitImagePrompt,
  tokenizeImagePrompt,
} from "../src/prompt.js";
import { VisionLanguageModel } from "../src/vlm-model.js";
import { makeVlm } from "./oracle.js";

describe("splitImagePrompt", () => {
  test("MiniGPT-4's template splits at <ImageHere>", () => {
    expect(MINIGPT4_TEMPLATE).toBe("###Human: <Img><ImageHere></Img> {question} ###Assistant: ");
    expect(splitImagePrompt(MINIGPT4_TEMPLATE)).toEqual({
      before: "###Human: <Img>",
      after: "</Img> {question} ###Assistant: ",
    });
    expect(splitImagePrompt("<ImageHere>")).toEqual({ before: "", after: "" });
    expect(splitImagePrompt("a [IMG] b", "[IMG]")).toEqual({ before: "a ", after: " b" });
  });
  test("no slot or several slots are InputErrors", () => {
    expect(() => splitImagePrompt("no image here")).toThrow(InputError);
    expect(() => splitImagePrompt("no image here")).toThrow(/no image slot <ImageHere>/);
    expect(() => splitImagePrompt(`${IMAGE_PLACEHOLDER} and ${IMAGE_PLACEHOLDER}`)).toThrow(/2 image slots/);
    expect(() => splitImagePrompt(42 as unknown as string)).toThrow(InputError);
  });
});

describe("fillImagePrompt", () => {
  test("the question goes into {question}, after the split", () => {
    expect(fillImagePrompt(MINIGPT4_TEMPLATE, "What is this?")).toEqual({
      before: "###Human: <Img>",
      after: "</Img> What is this? ###Assistant: ",
    });
    // a question that mentions the placeholder or replacement patterns is inserted literally
    expect(fillImagePrompt(MINIGPT4_TEMPLATE, "Is <ImageHere> $& $1 a cat?").after).toBe(
      "</Img> Is <ImageHere> $& $1 a cat? ###Assistant: ",
    );
    expect(fillImagePrompt("Q: {question} <ImageHere>", "why")).toEqual({ before: "Q: why ", after: "" });
    expect(() => fillImagePrompt("<ImageHere> only", "why")).toThrow(/no \{question\}/);
  });
  test("tokenizeImagePrompt tokenizes each side", () => {
    const tok = { encode: (s: string) => [...s].map((c) => c.charCodeAt(0)), decode: () => "" };
    const ids = tokenizeImagePrompt(tok, MINIGPT4_TEMPLATE, "hi");
    expect(String.fromCharCode(...ids.prefixIds)).toBe("###Human: <Img>");
    expect(String.fromCharCode(...ids.suffixIds)).toBe("</Img> hi ###Assistant: ");
  });
  test("answerText stops at the next turn", () => {
    expect(answerText(" a red ball ###Human: more")).toBe("a red ball");
    expect(answerText("no separator ")).toBe("no separator");
    expect(answerText("###")).toBe("");
  });
});

describe("config", () => {
  test("HF Blip2Config defaults: encoder_hidden_size from the vision tower, 32 query tokens", () => {
    const { config } = makeVlm({ Dv: 9, Hv: 3 });
    const q = { ...(config.qformer_config as Record<string, unknown>) };
    delete q.encoder_hidden_size;
    const { num_query_tokens: _n, ...rest } = config;
    const cfg = parseVLMConfig({ ...rest, qformer_config: q });
    expect(cfg.qformer_config.encoder_hidden_size).toBe(9);
    expect(cfg.num_query_tokens).toBe(32);
    expect(cfg.num_query_tokens_given).toBe(false);
    expect(() => parseVLMConfig({ ...config, num_query_tokens: 0 })).toThrow(/num_query_tokens/);
  });

  test("image_prompt.template from the case files is wrapped in MiniGPT-4's roles", () => {
    const { config } = makeVlm();
    expect(parseVLMConfig(config).template).toBe(MINIGPT4_TEMPLATE);
    const withTpl = { ...config, image_prompt: { template: "<Img><ImageHere></Img> {question}" } };
    expect(parseVLMConfig(withTpl).template).toBe(MINIGPT4_TEMPLATE);
    const custom = { ...config, image_prompt: { template: "###Q: <ImageHere> {question} ###A:" } };
    expect(parseVLMConfig(custom).template).toBe("###Q: <ImageHere> {question} ###A:");
    expect(() => parseVLMConfig({ ...config, image_prompt: { template: "no slot" } })).toThrow(
      /image_prompt\.template/,
    );
  });

  test("model_type: absent or vit-qformer-gpt2 load; llava and other families are ConfigErrors naming it", async () => {
    const { config, tensors } = makeVlm();
    const { model_type: _t, ...untyped } = config;
    expect(parseVLMConfig(untyped).num_query_tokens).toBe(config.num_query_tokens);
    expect(parseVLMConfig(config).num_query_tokens).toBe(config.num_query_tokens);
    for (const t of ["llava", "llava_next", "blip-2", "", 3, null]) {
      let err: unknown;
      try {
        parseVLMConfig({ ...config, model_type: t });
      } catch (e) {
        err = e;
      }
      expect(err, String(t)).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).field).toBe("model_type");
      expect((err as Error).message).toContain(`model_type: ${JSON.stringify(t)} is not supported`);
      expect((err as Error).message).toContain('"vit-qformer-gpt2"');
    }
    // a LLaVA config that carries every field of a Q-Former model is not loaded as one
    const e = await VisionLanguageModel.fromPretrained({
      config: { ...config, model_type: "llava" },
      weights: tensorSource(tensors),
    }).catch((x) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(/"llava" is not supported.*LLaVA checkpoints .* LlavaProjector/);
  });
});
