/**
 * `tokenizer_config.json` and chat templates as transformers' `apply_chat_template` renders them:
 * the Jinja `chat_template` (a string, or a list of `{name, template}`) rendered by
 * `@huggingface/jinja` with `messages`, `tools`, `documents`, `add_generation_prompt`, the special
 * tokens (`bos_token`, `eos_token`, `unk_token`, `pad_token`, …, `additional_special_tokens`) and
 * any extra variables; `raise_exception(msg)` and `strftime_now(format)` come with the Jinja runtime.
 */
import { Template } from "@huggingface/jinja";
import { ConfigError, InputError, ParseError } from "@wasmformer/core";
import { parseJson } from "./json.js";

/** The fields of `tokenizer_config.json` this package reads (the rest is kept as is). */
export interface TokenizerConfig {
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  unk_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  chat_template?: string | { name: string; template: string }[] | null;
  [key: string]: unknown;
}

/** One chat message; `content` is usually a string (templates for images take a list of parts). */
export interface ChatMessage {
  role: string;
  content?: unknown;
  [key: string]: unknown;
}

export interface ApplyChatTemplateOptions {
  /** End with the header of an assistant turn (transformers `add_generation_prompt`); default false. */
  addGenerationPrompt?: boolean;
  /** Leave the final message open for the model to continue (`continue_final_message`); default false. */
  continueFinalMessage?: boolean;
  /** Tool (function) schemas, passed as `tools`. */
  tools?: unknown[] | null;
  /** Retrieval documents, passed as `documents`. */
  documents?: unknown[] | null;
  /** A template name of the list form, or a Jinja template string to use instead of the config's. */
  chatTemplate?: string;
  /** Extra template variables (e.g. `{ enable_thinking: false }` for Qwen3). */
  variables?: Record<string, unknown>;
  /** Return token ids (encoded without adding special tokens, as transformers does) instead of the text. */
  tokenize?: boolean;
}

/** Parse and check a `tokenizer_config.json` (text or object). */
export function tokenizerConfigFromJson(
  json: string | Record<string, unknown>,
  file = "tokenizer_config.json",
): TokenizerConfig {
  const o = (typeof json === "string" ? parseJson(json, file) : json) as Record<string, unknown>;
  if (o === null || typeof o !== "object" || Array.isArray(o))
    throw new ParseError("expected a JSON object", { file, line: 1 });
  for (const k of ["add_bos_token", "add_eos_token"])
    if (o[k] !== undefined && o[k] !== null && typeof o[k] !== "boolean")
      throw new ParseError(`${k}: expected true or false, got ${JSON.stringify(o[k])}`, { file });
  for (const k of ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"])
    if (o[k] !== undefined && o[k] !== null && specialText(o[k]) === undefined)
      throw new ParseError(`${k}: expected a string or {content: string}`, { file });
  const ct = o.chat_template;
  if (ct !== undefined && ct !== null && typeof ct !== "string") {
    if (!Array.isArray(ct))
      throw new ParseError("chat_template: expected a string or a list of {name, template}", { file });
    ct.forEach((t, i) => {
      const x = t as Record<string, unknown>;
      if (!x || typeof x.name !== "string" || typeof x.template !== "string")
        throw new ParseError(`chat_template[${i}]: expected {name: string, template: string}`, { file });
    });
  }
  return o as TokenizerConfig;
}

/** The text of a special token entry: a string or an AddedToken object `{content}`. */
export function specialText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string")
    return (v as { content: string }).content;
  return undefined;
}

const compiled = new Map<string, Template>();

/** Which template to render and the name of its field (for errors). */
function pickTemplate(cfg: TokenizerConfig | null, opts: ApplyChatTemplateOptions): { src: string; field: string } {
  const ct = cfg?.chat_template;
  const named = Array.isArray(ct) ? new Map(ct.map((t) => [t.name, t.template])) : null;
  if (opts.chatTemplate !== undefined) {
    if (typeof opts.chatTemplate !== "string") throw new InputError("chatTemplate must be a string");
    if (named?.has(opts.chatTemplate))
      return { src: named.get(opts.chatTemplate)!, field: `chat_template[name=${opts.chatTemplate}]` };
    return { src: opts.chatTemplate, field: "chatTemplate (option)" };
  }
  if (typeof ct === "string") return { src: ct, field: "chat_template" };
  if (named) {
    if (opts.tools && named.has("tool_use"))
      return { src: named.get("tool_use")!, field: "chat_template[name=tool_use]" };
    if (named.has("default")) return { src: named.get("default")!, field: "chat_template[name=default]" };
    throw new ConfigError(
      `no template named "default" (have ${[...named.keys()].join(", ")}); pass chatTemplate`,
      "chat_template",
    );
  }
  throw new ConfigError(
    "tokenizer_config.json has no chat_template (load the tokenizer with its config, or pass chatTemplate)",
    "chat_template",
  );
}

/** Render the chat template of `cfg` for `messages` (the text; see `SubwordTokenizer.applyChatTemplate`). */
export function renderChatTemplate(
  cfg: TokenizerConfig | null,
  messages: readonly ChatMessage[],
  opts: ApplyChatTemplateOptions = {},
): string {
  if (!Array.isArray(messages)) throw new InputError("messages must be a list of {role, content}");
  messages.forEach((m, i) => {
    if (!m || typeof m !== "object" || typeof m.role !== "string")
      throw new InputError(`messages[${i}]: expected {role: string, content}`);
  });
  if (opts.addGenerationPrompt && opts.continueFinalMessage)
    throw new InputError("addGenerationPrompt and continueFinalMessage cannot both be set");
  const { src, field } = pickTemplate(cfg, opts);
  let tpl = compiled.get(src);
  if (!tpl) {
    try {
      tpl = new Template(src);
    } catch (e) {
      throw new ConfigError(`cannot parse the template: ${(e as Error).message}`, field);
    }
    if (compiled.size >= 64) compiled.clear(); // templates passed per call must not pile up
    compiled.set(src, tpl);
  }
  const specials: Record<string, unknown> = {};
  for (const k of ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]) {
    const v = specialText(cfg?.[k]);
    if (v !== undefined) specials[k] = v;
  }
  if (Array.isArray(cfg?.additional_special_tokens))
    specials.additional_special_tokens = (cfg.additional_special_tokens as unknown[]).map(specialText);
  const context: Record<string, unknown> = {
    ...specials,
    ...(opts.variables ?? {}),
    messages,
    tools: opts.tools ?? null,
    documents: opts.documents ?? null,
    add_generation_prompt: opts.addGenerationPrompt ?? false,
  };
  let text: string;
  try {
    text = tpl.render(context);
  } catch (e) {
    throw new ConfigError(`cannot render the template: ${(e as Error).message}`, field);
  }
  if (opts.continueFinalMessage && messages.length > 0) {
    let last = messages[messages.length - 1].content;
    if (Array.isArray(last)) last = (last[last.length - 1] as { text?: unknown })?.text;
    if (typeof last !== "string") throw new InputError("continueFinalMessage: the final message has no text content");
    let at = text.lastIndexOf(last);
    let len = last.length;
    if (at < 0) {
      at = text.lastIndexOf(last.trim());
      len = last.trim().length;
    }
    if (at < 0) throw new InputError("continueFinalMessage: the final message's text is not in the rendered template");
    text = text.slice(0, at + len);
  }
  return text;
}
