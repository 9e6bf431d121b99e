/**
 * Prompts with an image slot (MiniGPT-4, `minigpt4/conversation/conversation.py`): the template
 * `"###Human: <Img><ImageHere></Img> {question} ###Assistant: "` is filled with the question, split
 * at `<ImageHere>`, and each side is tokenized (the first with the tokenizer's special tokens); the
 * image embeddings take the slot's place. The
 * answer ends where the model starts the next turn (`###`).
 */
import { InputError } from "@wasmformer/core";
import type { Tokenizer } from "@wasmformer/llm";

/** The image slot of a template. */
export const IMAGE_PLACEHOLDER = "<ImageHere>";
/** Where the question goes in a template. */
export const QUESTION_PLACEHOLDER = "{question}";
/** MiniGPT-4's separator between turns: generation stops there. */
export const TURN_SEPARATOR = "###";

/** The two text parts of a prompt around its image slot. */
export interface ImagePromptParts {
  before: string;
  after: string;
}

/** Split a prompt at its one `<ImageHere>` (an `InputError` if there is none, or more than one). */
export function splitImagePrompt(prompt: string, placeholder = IMAGE_PLACEHOLDER): ImagePromptParts {
  if (typeof prompt !== "string") throw new InputError("the prompt must be a string");
  const parts = prompt.split(placeholder);
  if (parts.length !== 2) {
    throw new InputError(
      parts.length === 1
        ? `the prompt has no image slot ${placeholder}: ${JSON.stringify(prompt.slice(0, 80))}`
        : `the prompt has ${parts.length - 1} image slots ${placeholder}; exactly one is supported`,
    );
  }
  return { before: parts[0]!, after: parts[1]! };
}

/** Put `question` into `template` (its `{question}`, once) and split the result at the image slot. */
export function fillImagePrompt(template: string, question: string): ImagePromptParts {
  if (typeof question !== "string") throw new InputError("the question must be a string");
  const { before, after } = splitImagePrompt(template);
  // the question is inserted after splitting, so that a question mentioning "<ImageHere>" adds no slot
  const inBefore = before.indexOf(QUESTION_PLACEHOLDER);
  const inAfter = after.indexOf(QUESTION_PLACEHOLDER);
  if (inBefore < 0 && inAfter < 0)
    throw new InputError(`the template has no ${QUESTION_PLACEHOLDER}: ${JSON.stringify(template)}`);
  return inBefore >= 0
    ? { before: before.replace(QUESTION_PLACEHOLDER, () => question), after }
    : { before, after: after.replace(QUESTION_PLACEHOLDER, () => question) };
}

/** Token ids around the image slot. */
export interface ImagePromptIds {
  prefixIds: number[];
  suffixIds: number[];
}

/**
 * Fill, split and tokenize: `prefixIds` (before the slot) and `suffixIds` (after it). As MiniGPT-4's
 * `get_context_emb` does, the part before the slot is tokenized with the tokenizer's special tokens
 * (`encode(text, { addSpecialTokens: true })`: a Llama tokenizer's BOS, nothing for GPT-2) and the
 * part after without. `bos` replaces that choice: a number is put first (the text then without
 * special tokens), null adds none.
 */
export function tokenizeImagePrompt(
  tokenizer: Tokenizer,
  template: string,
  question: string,
  bos?: number | null,
): ImagePromptIds {
  const { before, after } = fillImagePrompt(template, question);
  const prefixIds =
    bos === undefined
      ? tokenizer.encode(before, { addSpecialTokens: true })
      : bos === null
        ? tokenizer.encode(before)
        : [bos, ...tokenizer.encode(before)];
  return { prefixIds, suffixIds: tokenizer.encode(after) };
}

/** The answer part of generated text: up to the next turn separator, trimmed. */
export function answerText(text: string, separator = TURN_SEPARATOR): string {
  const i = text.indexOf(separator);
  return (i >= 0 ? text.slice(0, i) : text).trim();
}
