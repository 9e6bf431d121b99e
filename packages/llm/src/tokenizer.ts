/**
 * What generation needs from a tokenizer, and the adapter for @wasmformer/text's byte-level BPE
 * (`SubwordTokenizer.gpt2(vocab.json, merges.txt)` / `fromTokenizerJson`).
 */
import { byteCharsToBytes, type ChatMessage, type SubwordTokenizer } from "@wasmformer/text";

export type { ChatMessage };

export interface Tokenizer {
  /** Text → token ids (no special tokens added). */
  encode(text: string): number[];
  /** Token ids → text. */
  decode(ids: ArrayLike<number>): string;
  /**
   * The raw bytes one token stands for (byte-level BPE). Lets streaming split text at token
   * boundaries without breaking multi-byte UTF-8 characters. Optional.
   */
  tokenBytes?(id: number): Uint8Array;
  /** Whether `id` is a special/added token (its text is not streamed). Optional. */
  isSpecial?(id: number): boolean;
  /**
   * The ids of a conversation rendered with the chat template of `tokenizer_config.json`
   * (transformers' `apply_chat_template(…, tokenize=True)`: the template writes the special tokens).
   * Optional; a template that fails to render is a `ConfigError` naming its field.
   */
  applyChatTemplate?(messages: readonly ChatMessage[], opts?: { addGenerationPrompt?: boolean }): number[];
  /** Whether `applyChatTemplate` has a template to render (`tokenizer_config.json` has `chat_template`). */
  hasChatTemplate?: boolean;
  /** The id of `tokenizer_config.json`'s `eos_token`, when it names a token (chat replies end there too). */
  eosTokenId?: number;
}

const utf8 = new TextEncoder();

/**
 * Adapt a @wasmformer/text `SubwordTokenizer` to `Tokenizer`; with its `tokenizer_config.json`,
 * also `applyChatTemplate` (ids, as transformers' `tokenize=True`) and the `eos_token` id.
 */
export function fromSubwordTokenizer(tok: SubwordTokenizer): Tokenizer {
  const special = new Set(tok.addedTokens.map((t) => t.id));
  const cache = new Map<number, Uint8Array>();
  const ct = tok.config?.chat_template;
  return {
    hasChatTemplate: ct !== undefined && ct !== null,
    eosTokenId: tok.specialTokenId("eos_token"),
    applyChatTemplate: (messages, opts = {}) =>
      tok.applyChatTemplate(messages, { addGenerationPrompt: opts.addGenerationPrompt, tokenize: true }),
    encode: (text) => tok.encodeIds(text),
    decode: (ids) => tok.decode(ids),
    isSpecial: (id) => special.has(id),
    tokenBytes(id) {
      let b = cache.get(id);
      if (b === undefined) {
        const s = tok.idToToken(id);
        const out: number[] = [];
        if (s === undefined) b = new Uint8Array(0);
        else if (tok.byteLevel && !special.has(id) && byteCharsToBytes(s, out)) b = Uint8Array.from(out);
        else b = utf8.encode(tok.decode([id]));
        cache.set(id, b);
      }
      return b;
    },
  };
}

/**
 * Incremental detokenizer for one sequence: `push(id)` returns the text that is now complete.
 * Byte-level tokens go through a streaming UTF-8 decoder, which holds back an incomplete
 * multi-byte character until the token that completes it; without `tokenBytes`, the whole
 * sequence is decoded again and a trailing U+FFFD (a possibly incomplete character) is held back.
 */
export class TextStreamer {
  private readonly dec = new TextDecoder("utf-8");
  private readonly ids: number[] = [];
  private emitted = "";
  constructor(private readonly tok: Tokenizer) {}

  push(id: number): string {
    if (this.tok.tokenBytes) {
      // a special token is not bytes: pending bytes end there (as in a one-shot decode)
      if (this.tok.isSpecial?.(id)) return this.dec.decode() + this.tok.decode([id]);
      return this.dec.decode(this.tok.tokenBytes(id), { stream: true });
    }
    this.ids.push(id);
    let full = this.tok.decode(this.ids);
    let end = full.length;
    while (end > 0 && full.charCodeAt(end - 1) === 0xfffd) end--;
    full = full.slice(0, end);
    if (!full.startsWith(this.emitted)) return ""; // a merge rewrote earlier text: wait for stable text
    const out = full.slice(this.emitted.length);
    this.emitted = full;
    return out;
  }

  /** Whatever is still held back (an incomplete character becomes U+FFFD). */
  flush(): string {
    if (this.tok.tokenBytes) return this.dec.decode();
    const full = this.tok.decode(this.ids);
    const out = full.startsWith(this.emitted) ? full.slice(this.emitted.length) : "";
    this.emitted = full;
    return out;
  }
}
