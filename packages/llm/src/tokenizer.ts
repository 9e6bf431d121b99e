/**
 * What generation needs from a tokenizer, and the adapter for @wasmformer/text's byte-level BPE
 * (`SubwordTokenizer.gpt2(vocab.json, merges.txt)` / `fromTokenizerJson`).
 */
import {
  type ApplyChatTemplateOptions,
  byteCharsToBytes,
  type ChatMessage,
  type SubwordTokenizer,
} from "@wasmformer/text";

export interface Tokenizer {
  /**
   * Text → token ids. By default no special tokens are added; `addSpecialTokens` adds those of the
   * tokenizer's post-processor (a Llama tokenizer's BOS, say), as Hugging Face's `tokenizer(text)` does.
   */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
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
   * Render a conversation with the chat template of `tokenizer_config.json` (see @wasmformer/text
   * `applyChatTemplate`). Present when the tokenizer was loaded with its config.
   */
  applyChatTemplate?(messages: readonly ChatMessage[], opts?: ApplyChatTemplateOptions & { tokenize?: false }): string;
  /** Whether `tokenizer_config.json` has a `chat_template` (else `applyChatTemplate` has nothing to render). */
  hasChatTemplate?: boolean;
  /** The id of `tokenizer_config.json`'s `eos_token`, when it names a token (chat replies end there too). */
  eosTokenId?: number;
}

const utf8 = new TextEncoder();

/**
 * Adapt a @wasmformer/text `SubwordTokenizer` to `Tokenizer`. Only byte-level BPE gets `tokenBytes`:
 * the text of a SentencePiece-style token depends on its neighbours (the `▁` metaspace, byte
 * fallback pieces, a stripped first space), so streaming decodes those sequences whole.
 */
export function fromSubwordTokenizer(tok: SubwordTokenizer): Tokenizer {
  const special = new Set(tok.addedTokens.map((t) => t.id));
  const cache = new Map<number, Uint8Array>();
  const base: Tokenizer = {
    encode: (text, opts) => (opts?.addSpecialTokens ? tok.encode(text).ids : tok.encodeIds(text)),
    decode: (ids) => tok.decode(ids),
    isSpecial: (id) => special.has(id),
    applyChatTemplate: (messages, opts) => tok.applyChatTemplate(messages, { ...opts, tokenize: false }),
    hasChatTemplate: tok.config?.chat_template !== undefined && tok.config?.chat_template !== null,
    eosTokenId: tok.specialTokenId("eos_token"),
  };
  if (!tok.byteLevel) return base;
  return {
    ...base,
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
