/**
 * `SubwordTokenizer`: the HF tokenizers pipeline — added tokens, normalizer, pre-tokenizer, model
 * (BPE or WordPiece), post-processor (special tokens), decoder — in TypeScript.
 *
 * Builders:
 * - `SubwordTokenizer.fromTokenizerJson(json)`: a HF `tokenizer.json` (BPE or WordPiece model);
 * - `SubwordTokenizer.gpt2(vocabJson, mergesTxt)`: byte-level BPE from GPT-2's `vocab.json` + `merges.txt`;
 * - `SubwordTokenizer.bert(vocabTxt, { lowercase })`: WordPiece from BERT's `vocab.txt`.
 *
 * Offsets are UTF-16 `[start, end)` into the string passed to `encode` (`text.slice(start, end)`);
 * a byte-level token that covers part of a character spans the whole character. Special tokens
 * added by the post-processor have offsets `[0, 0]`.
 *
 * @example
 * ```ts
 * const tok = SubwordTokenizer.gpt2(vocabJsonText, mergesText);
 * const enc = tok.encode("Hello world");   // { ids: [15496, 995], tokens: ["Hello", "Ġworld"], offsets: [[0, 5], [5, 11]], ... }
 * tok.decode(enc.ids);                     // "Hello world"
 * const batch = tok.encodeBatch(["a", "b c"], { padding: "longest", padId: 50256 });   // batch.inputIds: Tensor i32 [2, 2]
 * ```
 */
import { ConfigError, InputError, ParseError, Tensor } from "@wasmformer/core";
import { addedTokensRegex, bosEosTemplate, matchAdded } from "./added-tokens.js";
import { BPE, LONG_WORD, type Piece, parseMergesTxt, parseVocabJson, vocabFromObject } from "./bpe.js";
import { byteCharsToBytes, byteOffsets, toByteChars } from "./byte-level.js";
import {
  type ApplyChatTemplateOptions,
  type ChatMessage,
  renderChatTemplate,
  specialText,
  type TokenizerConfig,
  tokenizerConfigFromJson,
} from "./chat-template.js";
import {
  type DecodeChain,
  decodeChainFromJson,
  hfNormalizerFromJson,
  hfPreTokenizerFromJson,
  type MetaspaceSpec,
  metaspaceRewrite,
} from "./hf-components.js";
import { lineCol, parseJson } from "./json.js";
import { type Aligned, alignSpan, bertNormalizer, identity, type Normalizer, prefixSpace } from "./normalizers.js";
import { bertPreTokenizer, gpt2Split, type PreTokenizer } from "./pre-tokenizers.js";
import { parseVocabTxt, WordPiece } from "./wordpiece.js";

/** A token of the vocabulary matched before normalization (HF `AddedToken`). */
export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  singleWord?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  /** Matched in the normalized text (HF `normalized`; only when the tokenizer has a normalizer). */
  normalized?: boolean;
}

/** One encoded sequence (HF `Encoding`). */
export interface Encoding {
  ids: number[];
  tokens: string[];
  /** UTF-16 `[start, end)` into the input text (of the sequence the token belongs to). */
  offsets: [number, number][];
  typeIds: number[];
  attentionMask: number[];
  /** 1 for special tokens (added by the post-processor or matched as special added tokens). */
  specialTokensMask: number[];
  /** Which input sequence (0, 1) each token came from; null for post-processor specials. */
  sequenceIds: (number | null)[];
}

type TemplateItem = { seq: 0 | 1; typeId: number } | { ids: number[]; tokens: string[]; typeId: number };
interface Template {
  single: TemplateItem[];
  pair: TemplateItem[];
}

export type Decoder =
  | { type: "ByteLevel" }
  | { type: "WordPiece"; prefix: string; cleanup: boolean }
  | { type: "None" }
  /** HF decoders run as `decode_chain` (token list → token list), then joined. */
  | { type: "Chain"; chain: DecodeChain };

export interface EncodeOptions {
  /** Add the post-processor's special tokens ([CLS] … [SEP]); default true. */
  addSpecialTokens?: boolean;
}

export interface BatchOptions extends EncodeOptions {
  /** `"longest"` (or true): pad to the longest row; `"max_length"`: pad to `maxLength`; false: rows must be equal. */
  padding?: boolean | "longest" | "max_length";
  /** Cut rows to `maxLength` tokens (special tokens included); pairs: longest first. */
  truncation?: boolean;
  maxLength?: number;
  /** Round the padded length up to a multiple of this. */
  padToMultipleOf?: number;
  paddingSide?: "right" | "left";
  truncationSide?: "right" | "left";
  /** Pad id (default: tokenizer.json `padding.pad_id`, else `[PAD]`/`<pad>` of the vocabulary). */
  padId?: number;
}

/** A batch: `[batch, length]` int32 tensors plus the per-row encodings. */
export interface BatchEncoding {
  inputIds: Tensor<"i32">;
  attentionMask: Tensor<"i32">;
  tokenTypeIds: Tensor<"i32">;
  encodings: Encoding[];
}

type Model = BPE | WordPiece;

export interface SubwordTokenizerParts {
  model: Model;
  normalizer?: Normalizer | null;
  preTokenizer: PreTokenizer;
  byteLevel?: boolean;
  addPrefixSpace?: boolean;
  decoder?: Decoder;
  template?: Template | null;
  addedTokens?: AddedToken[];
  padId?: number | null;
  /** Defaults of `encodeBatch` (from the `padding` / `truncation` sections of a tokenizer.json). */
  batchDefaults?: BatchOptions;
  /** A `Metaspace` pre-tokenizer's text rewrite, per added-token segment. */
  metaspace?: MetaspaceSpec | null;
  /** The parsed `tokenizer_config.json` (special tokens, `chat_template`). */
  config?: TokenizerConfig | null;
}

const WORD_CHAR = "[\\p{L}\\p{N}_]";
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATE_G = new RegExp(LONE_SURROGATE.source, "g");
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true }); // keep a leading U+FEFF: decode must invert encode

export class SubwordTokenizer {
  readonly model: Model;
  readonly normalizer: Normalizer | null;
  readonly preTokenizer: PreTokenizer;
  readonly byteLevel: boolean;
  readonly addPrefixSpace: boolean;
  readonly decoder: Decoder;
  readonly template: Template | null;
  readonly addedTokens: AddedToken[];
  readonly padId: number | null;
  readonly batchDefaults: BatchOptions;
  readonly metaspace: MetaspaceSpec | null;
  /** `tokenizer_config.json` when loaded with it (special tokens, `chat_template`); else null. */
  readonly config: TokenizerConfig | null;
  /** Added tokens matched in the normalized text (`normalized: true` with a normalizer). */
  private readonly normAddedRe: RegExp | null;
  private readonly normAddedOrder: AddedToken[];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedRe: RegExp | null;
  private readonly addedOrder: AddedToken[];
  private readonly pieceCache = new Map<string, { ids: Int32Array; starts: Int32Array; ends: Int32Array }>();

  constructor(p: SubwordTokenizerParts) {
    this.model = p.model;
    this.normalizer = p.normalizer ?? null;
    this.preTokenizer = p.preTokenizer;
    this.byteLevel = p.byteLevel ?? false;
    this.addPrefixSpace = p.addPrefixSpace ?? false;
    this.decoder = p.decoder ?? { type: "None" };
    this.template = p.template ?? null;
    this.addedTokens = p.addedTokens ?? [];
    for (const t of this.addedTokens) this.addedById.set(t.id, t);
    // leftmost-longest matching of added tokens: alternatives sorted by length, one group each
    const sorted = [...this.addedTokens]
      .filter((t) => t.content.length > 0 && !(t.normalized && this.normalizer))
      .sort((a, b) => b.content.length - a.content.length);
    this.addedRe =
      sorted.length === 0
        ? null
        : new RegExp(
            sorted
              .map((t) => {
                let s = escapeRe(t.content);
                if (t.singleWord) s = `(?<!${WORD_CHAR})${s}(?!${WORD_CHAR})`;
                return `(${t.lstrip ? "\\s*" : ""}${s}${t.rstrip ? "\\s*" : ""})`;
              })
              .join("|"),
            "gu",
          );
    this.addedOrder = sorted;
    const pad = p.padId ?? this.model.vocab.get("[PAD]") ?? this.model.vocab.get("<pad>");
    this.padId = pad ?? null;
    this.batchDefaults = p.batchDefaults ?? {};
    this.metaspace = p.metaspace ?? null;
    this.config = p.config ?? null;
    const norm = this.normalizer;
    const normAdded = norm ? this.addedTokens.filter((t) => t.normalized && t.content.length > 0) : [];
    const nr = addedTokensRegex(normAdded, (t) => norm!(identity(t.content)).text, WORD_CHAR);
    this.normAddedRe = nr.re;
    this.normAddedOrder = nr.order;
  }

  // ---------------------------------------------------------------------------------------------
  // builders

  /** Byte-level BPE (GPT-2) from `vocab.json` and `merges.txt` texts. `<|endoftext|>` (if in the vocabulary) is a special token. */
  static gpt2(
    vocabJson: string,
    mergesTxt: string,
    opts: { specialTokens?: string[]; addPrefixSpace?: boolean } = {},
  ): SubwordTokenizer {
    const vocab = parseVocabJson(vocabJson, "vocab.json");
    const { pairs, lines } = parseMergesTxt(mergesTxt, "merges.txt");
    const model = new BPE(vocab, pairs, {}, (i) => ({ file: "merges.txt", line: i >= 0 ? lines[i] : undefined }));
    const specials = opts.specialTokens ?? (vocab.has("<|endoftext|>") ? ["<|endoftext|>"] : []);
    const addedTokens = specials.map((content) => {
      const id = vocab.get(content);
      if (id === undefined)
        throw new ConfigError(`special token ${JSON.stringify(content)} is not in vocab.json`, "specialTokens");
      return { id, content, special: true };
    });
    return new SubwordTokenizer({
      model,
      preTokenizer: gpt2Split,
      byteLevel: true,
      addPrefixSpace: opts.addPrefixSpace ?? false,
      decoder: { type: "ByteLevel" },
      addedTokens,
    });
  }

  /**
   * WordPiece (BERT) from a `vocab.txt` text: BERT normalizer (lower-casing and accent stripping
   * when `lowercase`, the default, as in bert-base-uncased), BERT pre-tokenizer, `[CLS] … [SEP]`.
   */
  static bert(
    vocabTxt: string,
    opts: { lowercase?: boolean; stripAccents?: boolean | null; maxInputCharsPerWord?: number } = {},
  ): SubwordTokenizer {
    const vocab = parseVocabTxt(vocabTxt, "vocab.txt");
    const model = new WordPiece(vocab, { maxInputCharsPerWord: opts.maxInputCharsPerWord }, "vocab.txt");
    const special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].filter((t) => vocab.has(t));
    for (const t of ["[CLS]", "[SEP]"])
      if (!vocab.has(t)) throw new ParseError(`special token ${t} is not in the vocabulary`, { file: "vocab.txt" });
    const cls = vocab.get("[CLS]")!;
    const sep = vocab.get("[SEP]")!;
    return new SubwordTokenizer({
      model,
      normalizer: bertNormalizer({ lowercase: opts.lowercase ?? true, stripAccents: opts.stripAccents ?? null }),
      preTokenizer: bertPreTokenizer,
      decoder: { type: "WordPiece", prefix: "##", cleanup: true },
      template: bertTemplate(cls, sep),
      addedTokens: special.map((content) => ({ id: vocab.get(content)!, content, special: true })),
    });
  }

  /**
   * A HF `tokenizer.json` (text or parsed object) with a BPE or WordPiece model; with its
   * `tokenizer_config.json` (text or object), also `add_bos_token` / `add_eos_token` (which then
   * replace the post-processor, as transformers does) and `applyChatTemplate`.
   */
  static fromTokenizerJson(
    json: string | Record<string, unknown>,
    file = "tokenizer.json",
    tokenizerConfig?: string | Record<string, unknown> | null,
  ): SubwordTokenizer {
    const text = typeof json === "string" ? json : undefined;
    const root = (typeof json === "string" ? parseJson(json, file) : json) as Record<string, unknown>;
    if (root === null || typeof root !== "object" || Array.isArray(root))
      throw new ParseError("expected a JSON object", { file, line: 1 });
    const at = (needle: string) => {
      const i = text ? text.indexOf(needle) : -1;
      return i < 0 ? { file } : { file, ...lineCol(text!, i) };
    };
    const bad = (field: string, msg: string, needle = `"${field.split(".").pop()}"`): never => {
      throw new ParseError(`${field}: ${msg}`, at(needle));
    };
    const m = root.model as Record<string, unknown> | undefined;
    if (!m || typeof m !== "object") bad("model", "missing or not an object", '"model"');
    const mt = m!.type ?? (m!.merges !== undefined ? "BPE" : undefined);
    if (m!.vocab === null || typeof m!.vocab !== "object" || Array.isArray(m!.vocab))
      bad("model.vocab", "expected an object of token → id");
    const vocab = vocabFromObject(m!.vocab as Record<string, unknown>, file, text);
    let model: Model;
    if (mt === "BPE") {
      if (!Array.isArray(m!.merges)) bad("model.merges", "expected a list", '"merges"');
      const pairs = (m!.merges as unknown[]).map((x, i): [string, string] => {
        if (typeof x === "string") {
          const parts = x.split(" ");
          if (parts.length === 2 && parts[0] && parts[1]) return [parts[0], parts[1]];
        } else if (Array.isArray(x) && x.length === 2 && typeof x[0] === "string" && typeof x[1] === "string") {
          return [x[0], x[1]];
        }
        return bad(
          `model.merges[${i}]`,
          `expected "left right" or [left, right], got ${JSON.stringify(x)}`,
          JSON.stringify(x),
        );
      });
      const str = (k: string) => {
        const v = m![k];
        if (v !== null && v !== undefined && typeof v !== "string") bad(`model.${k}`, "expected a string or null");
        return v as string | null | undefined;
      };
      if (m!.dropout !== null && m!.dropout !== undefined && m!.dropout !== 0)
        bad("model.dropout", "BPE dropout is not supported (inference only)");
      model = new BPE(
        vocab,
        pairs,
        {
          unkToken: str("unk_token"),
          continuingSubwordPrefix: str("continuing_subword_prefix"),
          endOfWordSuffix: str("end_of_word_suffix"),
          fuseUnk: m!.fuse_unk === true,
          byteFallback: m!.byte_fallback === true,
          ignoreMerges: m!.ignore_merges === true,
        },
        (i) => (i >= 0 ? { file: `${file} model.merges[${i}]`, ...posOf(text, pairs[i]) } : at('"unk_token"')),
      );
    } else if (mt === "WordPiece") {
      const mx = m!.max_input_chars_per_word;
      if (mx !== undefined && (typeof mx !== "number" || !Number.isInteger(mx) || mx < 1))
        bad("model.max_input_chars_per_word", "expected a positive integer");
      model = new WordPiece(
        vocab,
        {
          unkToken: (m!.unk_token as string) ?? "[UNK]",
          continuingSubwordPrefix: (m!.continuing_subword_prefix as string) ?? "##",
          maxInputCharsPerWord: mx as number | undefined,
        },
        file,
      );
    } else {
      return bad("model.type", `unsupported model type ${JSON.stringify(mt)} (BPE or WordPiece)`, '"type"');
    }
    // added tokens
    const added: AddedToken[] = [];
    const addedById = new Map<number, string>();
    const addedByContent = new Map<string, number>();
    if (root.added_tokens !== undefined && root.added_tokens !== null) {
      if (!Array.isArray(root.added_tokens)) bad("added_tokens", "expected a list");
      (root.added_tokens as unknown[]).forEach((t, i) => {
        const o = t as Record<string, unknown>;
        if (!o || typeof o.content !== "string" || typeof o.id !== "number" || !Number.isInteger(o.id) || o.id < 0) {
          bad(
            `added_tokens[${i}]`,
            "expected {id: integer, content: string, ...}",
            JSON.stringify(o?.content ?? "added_tokens"),
          );
        }
        // Two entries for one id (or one token under two ids, or an id the vocabulary gives to another
        // token) make encode and decode disagree. Hugging Face tokenizers ignores the listed ids on
        // load (each token takes its vocabulary id, or the next free one, and a warning is logged),
        // which silently moves a token away from the id the model was trained with. The file
        // contradicts itself, so it is refused here, naming both tokens.
        const id = o.id as number;
        const content = o.content as string;
        const other = addedById.get(id);
        if (other !== undefined && other !== content)
          bad(
            `added_tokens[${i}]`,
            `tokens ${JSON.stringify(other)} and ${JSON.stringify(content)} share id ${id}`,
            JSON.stringify(content),
          );
        const otherId = addedByContent.get(content) ?? vocab.get(content);
        if (otherId !== undefined && otherId !== id) {
          const where = addedByContent.has(content) ? "added_tokens" : "model.vocab";
          bad(
            `added_tokens[${i}]`,
            `token ${JSON.stringify(content)} has id ${id} here and ${otherId} in ${where}`,
            JSON.stringify(content),
          );
        }
        // (a byte-level vocabulary spells the same token in byte characters: "  " is "ĠĠ")
        const inVocab = model.vocabR.get(id);
        if (inVocab !== undefined && inVocab !== content && inVocab !== toByteChars(content)) {
          bad(
            `added_tokens[${i}]`,
            `tokens ${JSON.stringify(inVocab)} (model.vocab) and ${JSON.stringify(content)} share id ${id}`,
            JSON.stringify(content),
          );
        }
        addedById.set(id, content);
        addedByContent.set(content, id);
        added.push({
          id: o.id as number,
          content: o.content as string,
          special: o.special === true,
          singleWord: o.single_word === true,
          lstrip: o.lstrip === true,
          rstrip: o.rstrip === true,
          normalized: o.normalized === true,
        });
      });
    }
    const wrap = <T>(f: () => T): T => {
      try {
        return f();
      } catch (e) {
        if (e instanceof ConfigError)
          throw new ParseError(e.message.replace(/^config: /, ""), at(`"${e.field?.split(".")[0] ?? ""}"`));
        throw e;
      }
    };
    const normalizer = wrap(() => hfNormalizerFromJson(root.normalizer));
    const pre = wrap(() => hfPreTokenizerFromJson(root.pre_tokenizer));
    let template = wrap(() => templateFromJson(root.post_processor, model));
    const decoder = wrap(() => hfDecoderFromJson(root.decoder));
    const config =
      tokenizerConfig === undefined || tokenizerConfig === null ? null : tokenizerConfigFromJson(tokenizerConfig);
    /** Id of a special token named in tokenizer_config.json (`pad_token`, …), or null. */
    const configTokenId = (k: string): number | null => {
      const token = specialText(config?.[k]);
      if (token === undefined) return null;
      return vocab.get(token) ?? added.find((t) => t.content === token)?.id ?? null;
    };
    if (config && (typeof config.add_bos_token === "boolean" || typeof config.add_eos_token === "boolean")) {
      const special = (k: "bos_token" | "eos_token", on: boolean | undefined) => {
        if (!on) return null;
        const token = specialText(config[k]);
        const id = token === undefined ? undefined : (vocab.get(token) ?? added.find((t) => t.content === token)?.id);
        if (token === undefined || id === undefined)
          throw new ConfigError(
            `add_${k} is true but ${k} ${JSON.stringify(token ?? null)} is not a token of ${file}`,
            `tokenizer_config.json ${k}`,
          );
        return { token, id };
      };
      template = bosEosTemplate(special("bos_token", config.add_bos_token), special("eos_token", config.add_eos_token));
    }
    const padding = root.padding as Record<string, unknown> | null | undefined;
    return new SubwordTokenizer({
      model,
      normalizer,
      preTokenizer: pre.pre,
      byteLevel: pre.byteLevel,
      addPrefixSpace: pre.addPrefixSpace,
      decoder,
      template,
      addedTokens: added,
      padId: typeof padding?.pad_id === "number" ? padding.pad_id : configTokenId("pad_token"),
      batchDefaults: batchDefaultsFromJson(padding, root.truncation as Record<string, unknown> | null | undefined),
      metaspace: pre.metaspace,
      config,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // vocabulary

  get vocabSize(): number {
    let n = this.model.vocab.size;
    for (const t of this.addedTokens) if (!this.model.vocabR.has(t.id)) n++;
    return n;
  }
  tokenToId(token: string): number | undefined {
    return this.model.vocab.get(token) ?? this.addedOrder.find((t) => t.content === token)?.id;
  }
  /**
   * Id of a special token named in `tokenizer_config.json` (`"bos_token"`, `"eos_token"`,
   * `"pad_token"`, `"unk_token"`, …); undefined when the config has none or it is not a token.
   */
  specialTokenId(key: string): number | undefined {
    const token = specialText(this.config?.[key]);
    return token === undefined ? undefined : this.tokenToId(token);
  }
  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.vocabR.get(id);
  }

  // ---------------------------------------------------------------------------------------------
  // encoding

  /** Split raw text around added tokens: `[start, end, addedToken | null]`. */
  private splitAdded(text: string): [number, number, AddedToken | null][] {
    if (!this.addedRe) return [[0, text.length, null]];
    const out: [number, number, AddedToken | null][] = [];
    const re = this.addedRe;
    re.lastIndex = 0;
    let prev = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      let g = 1;
      while (m[g] === undefined) g++;
      if (m.index > prev) out.push([prev, m.index, null]);
      out.push([m.index, m.index + m[0].length, this.addedOrder[g - 1]]);
      prev = m.index + m[0].length;
    }
    if (prev < text.length) out.push([prev, text.length, null]);
    return out;
  }

  private normalize(s: string, atStart = true): Aligned {
    // a lone surrogate reaches HF (Rust strings are UTF-8) as U+FFFD: same length, offsets unchanged
    let a = identity(LONE_SURROGATE.test(s) ? s.replace(LONE_SURROGATE_G, "\uFFFD") : s);
    if (this.normalizer) a = this.normalizer(a);
    if (this.addPrefixSpace) a = prefixSpace(a);
    if (this.metaspace) a = metaspaceRewrite(a, this.metaspace, atStart);
    return a;
  }

  /** Pre-tokens of a normalized segment, `[start, end, null]`, and the normalized added tokens in it. */
  private words(a: Aligned): [number, number, (AddedToken | null)?][] {
    if (!this.normAddedRe) return this.preTokenizer(a.text, [[0, a.text.length]]); // (no added tokens: no copy)
    const out: [number, number, (AddedToken | null)?][] = [];
    for (const [s, e, tok] of matchAdded(this.normAddedRe, this.normAddedOrder, a.text)) {
      if (tok) out.push([s, e, tok]);
      else for (const [ws, we] of this.preTokenizer(a.text, [[s, e]])) out.push([ws, we, null]);
    }
    return out;
  }

  /** Tokens of one input sequence (no post-processing). */
  private encodeSequence(text: string, seq: number): Encoding {
    if (typeof text !== "string")
      throw new InputError(`expected a string to encode, got ${text === null ? "null" : typeof text}`);
    const e = emptyEncoding();
    const push = (id: number, token: string, s: number, t: number, special: boolean) => {
      e.ids.push(id);
      e.tokens.push(token);
      e.offsets.push([s, t]);
      e.typeIds.push(0);
      e.attentionMask.push(1);
      e.specialTokensMask.push(special ? 1 : 0);
      e.sequenceIds.push(seq);
    };
    for (const [s0, e0, added] of this.splitAdded(text)) {
      if (added) {
        push(added.id, added.content, s0, e0, added.special);
        continue;
      }
      const a = this.normalize(text.slice(s0, e0), s0 === 0);
      const identityMap = a.starts === null;
      for (const [ws, we, tok] of this.words(a)) {
        if (tok) {
          const [os, oe] = alignSpan(a, ws, we);
          push(tok.id, tok.content, s0 + os, s0 + oe, tok.special);
          continue;
        }
        const w = this.wordPieces(a.text.slice(ws, we));
        for (let t = 0; t < w.ids.length; t++) {
          const id = w.ids[t];
          if (identityMap) push(id, this.model.vocabR.get(id)!, s0 + ws + w.starts[t], s0 + ws + w.ends[t], false);
          else {
            const [os, oe] = alignSpan(a, ws + w.starts[t], ws + w.ends[t]);
            push(id, this.model.vocabR.get(id)!, s0 + os, s0 + oe, false);
          }
        }
      }
    }
    return e;
  }

  /**
   * The pieces of one pre-token: ids and `[start, end)` in the word's UTF-16 units (byte-level
   * tokens are widened to whole characters). Cached per word.
   */
  private wordPieces(word: string): { ids: Int32Array; starts: Int32Array; ends: Int32Array } {
    const cacheable = word.length <= LONG_WORD;
    let w = cacheable ? this.pieceCache.get(word) : undefined;
    if (w) return w;
    const b = this.byteLevel ? byteOffsets(word) : null;
    const pieces: Piece[] = this.model.tokenize(b ? toByteChars(word) : word);
    const n = pieces.length;
    w = { ids: new Int32Array(n), starts: new Int32Array(n), ends: new Int32Array(n) };
    for (let k = 0; k < n; k++) {
      const p = pieces[k];
      w.ids[k] = p.id;
      w.starts[k] = b ? b.starts[p.start] : p.start;
      w.ends[k] = b ? b.ends[p.end - 1] : p.end;
    }
    if (!cacheable) return w;
    if (this.pieceCache.size > 200_000) this.pieceCache.clear();
    this.pieceCache.set(word, w);
    return w;
  }

  /** Number of special tokens the post-processor adds (for truncation). */
  numSpecialTokensToAdd(pair: boolean): number {
    if (!this.template) return 0;
    let n = 0;
    for (const it of pair ? this.template.pair : this.template.single) if ("ids" in it) n += it.ids.length;
    return n;
  }

  private postProcess(a: Encoding, b: Encoding | null, addSpecial: boolean): Encoding {
    if (!addSpecial || !this.template) {
      if (!b) return a;
      const out = concat([a, b]);
      for (let i = a.ids.length; i < out.ids.length; i++) out.typeIds[i] = 1;
      return out;
    }
    const parts: Encoding[] = [];
    for (const it of b ? this.template.pair : this.template.single) {
      if ("ids" in it) {
        parts.push({
          ids: [...it.ids],
          tokens: [...it.tokens],
          offsets: it.ids.map(() => [0, 0] as [number, number]),
          typeIds: it.ids.map(() => it.typeId),
          attentionMask: it.ids.map(() => 1),
          specialTokensMask: it.ids.map(() => 1),
          sequenceIds: it.ids.map(() => null),
        });
      } else {
        const src = it.seq === 0 ? a : b!;
        parts.push({ ...src, typeIds: src.ids.map(() => it.typeId) });
      }
    }
    return concat(parts);
  }

  /**
   * Encode a text (or a pair for BERT-style models): ids, tokens, offsets, type ids, masks.
   * Unknown words become the model's unknown token (or byte pieces); encoding never throws for them.
   */
  encode(text: string, pair?: string | null, opts: EncodeOptions = {}): Encoding {
    const a = this.encodeSequence(text, 0);
    const b = pair === undefined || pair === null ? null : this.encodeSequence(pair, 1);
    return this.postProcess(a, b, opts.addSpecialTokens ?? true);
  }

  /**
   * Only the ids of `text` without special tokens — the fast path (a per-word id cache, no
   * offsets or token strings).
   */
  encodeIds(text: string): number[] {
    if (typeof text !== "string")
      throw new InputError(`expected a string to encode, got ${text === null ? "null" : typeof text}`);
    const out: number[] = [];
    for (const [s0, e0, added] of this.splitAdded(text)) {
      if (added) {
        out.push(added.id);
        continue;
      }
      const a = this.normalize(text.slice(s0, e0), s0 === 0);
      for (const [ws, we, tok] of this.words(a)) {
        if (tok) {
          out.push(tok.id);
          continue;
        }
        const word = a.text.slice(ws, we);
        const ids = this.wordPieces(word).ids;
        for (let i = 0; i < ids.length; i++) out.push(ids[i]);
      }
    }
    return out;
  }

  /** Encode texts (or `[a, b]` pairs) into padded `[batch, length]` int32 tensors with attention masks. */
  encodeBatch(inputs: readonly (string | readonly [string, string])[], options: BatchOptions = {}): BatchEncoding {
    const opts: BatchOptions = { ...this.batchDefaults, ...options };
    const addSpecial = opts.addSpecialTokens ?? true;
    const padding = opts.padding === true ? "longest" : (opts.padding ?? false);
    const { maxLength, truncation = false, paddingSide = "right", truncationSide = "right" } = opts;
    if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 0))
      throw new InputError(`maxLength must be a non-negative integer, got ${maxLength}`);
    if ((truncation || padding === "max_length") && maxLength === undefined)
      throw new InputError('maxLength is required with truncation or padding "max_length"');
    if (!Array.isArray(inputs)) throw new InputError("encodeBatch expects a list of texts");
    const encodings = inputs.map((inp, r) => {
      const isPair = Array.isArray(inp);
      if (!isPair && typeof inp !== "string")
        throw new InputError(`inputs[${r}] must be a string or a [string, string] pair`);
      let a = this.encodeSequence(isPair ? (inp as readonly string[])[0] : (inp as string), 0);
      let b = isPair ? this.encodeSequence((inp as readonly string[])[1], 1) : null;
      if (truncation) {
        const budget = maxLength! - (addSpecial ? this.numSpecialTokensToAdd(b !== null) : 0);
        if (budget < 0)
          throw new InputError(
            `maxLength ${maxLength} is smaller than the ${this.numSpecialTokensToAdd(b !== null)} special tokens`,
          );
        let la = a.ids.length;
        let lb = b ? b.ids.length : 0;
        while (la + lb > budget) {
          if (lb > la) lb--;
          else la--;
        }
        a = slice(a, la, truncationSide);
        if (b) b = slice(b, lb, truncationSide);
      }
      return this.postProcess(a, b, addSpecial);
    });
    let L = 0;
    for (const e of encodings) L = Math.max(L, e.ids.length);
    if (padding === "max_length") L = Math.max(L, maxLength!);
    if (padding && opts.padToMultipleOf) L = Math.ceil(L / opts.padToMultipleOf) * opts.padToMultipleOf;
    if (!padding) {
      const bad = encodings.findIndex((e) => e.ids.length !== L);
      if (bad >= 0)
        throw new InputError(
          `rows have different lengths (row ${bad}: ${encodings[bad].ids.length}, longest ${L}); pass padding`,
        );
    }
    const padId = opts.padId ?? this.padId;
    const B = encodings.length;
    const ids = new Int32Array(B * L);
    const mask = new Int32Array(B * L);
    const types = new Int32Array(B * L);
    encodings.forEach((e, r) => {
      const n = e.ids.length;
      if (n < L) {
        if (padId === null || padId === undefined)
          throw new InputError("padding needs a pad id: pass padId (the vocabulary has no [PAD]/<pad>)");
        ids.fill(padId, r * L, (r + 1) * L);
      }
      const at = paddingSide === "left" ? L - n : 0;
      for (let t = 0; t < n; t++) {
        ids[r * L + at + t] = e.ids[t];
        mask[r * L + at + t] = 1;
        types[r * L + at + t] = e.typeIds[t];
      }
    });
    return {
      inputIds: new Tensor(ids, [B, L], "i32"),
      attentionMask: new Tensor(mask, [B, L], "i32"),
      tokenTypeIds: new Tensor(types, [B, L], "i32"),
      encodings,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // decoding

  /**
   * Ids back to text; `skipSpecialTokens` drops special tokens. An id that is not a token of this
   * tokenizer (negative, fractional, NaN, beyond the vocabulary) throws `InputError` naming it and
   * its position (Hugging Face skips such ids silently).
   */
  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids === null || typeof ids !== "object" || typeof ids.length !== "number")
      throw new InputError(`decode expects a list of token ids, got ${ids === null ? "null" : typeof ids}`);
    const tokens: { text: string; added: boolean }[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const added = this.addedById.get(id);
      if (added) {
        if (!(opts.skipSpecialTokens && added.special)) tokens.push({ text: added.content, added: true });
        continue;
      }
      const t = this.model.vocabR.get(id);
      if (t === undefined) {
        const shown = typeof id === "string" ? JSON.stringify(id) : String(id);
        throw new InputError(`decode: ids[${i}] = ${shown} is not a token id of this tokenizer`);
      }
      tokens.push({ text: t, added: false });
    }
    const d = this.decoder;
    if (d.type === "Chain") return d.chain(tokens.map((t) => t.text)).join("");
    if (d.type === "ByteLevel") {
      let out = "";
      let bytes: number[] = [];
      const flush = () => {
        if (bytes.length) out += utf8.decode(new Uint8Array(bytes));
        bytes = [];
      };
      for (const t of tokens) {
        if (t.added || !byteCharsToBytes(t.text, bytes)) {
          flush();
          out += t.text;
        }
      }
      flush();
      return out;
    }
    if (d.type === "WordPiece") {
      let out = "";
      tokens.forEach((t, i) => {
        if (i === 0) out += t.text;
        else if (t.text.startsWith(d.prefix)) out += t.text.slice(d.prefix.length);
        else out += ` ${t.text}`;
      });
      return d.cleanup ? cleanupTokenization(out) : out;
    }
    return tokens.map((t) => t.text).join("");
  }

  /** Decode each row. */
  decodeBatch(rows: readonly ArrayLike<number>[], opts: { skipSpecialTokens?: boolean } = {}): string[] {
    return rows.map((r) => this.decode(r, opts));
  }

  // ---------------------------------------------------------------------------------------------
  // chat

  /**
   * Render a conversation with the `chat_template` of `tokenizer_config.json` (as transformers'
   * `apply_chat_template`): the prompt text, or with `tokenize: true` its ids (encoded without
   * adding special tokens: the template writes them). A template that fails to parse or render
   * (including its own `raise_exception(msg)`) throws `ConfigError` naming the template field and
   * the cause.
   */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ApplyChatTemplateOptions & { tokenize: true }): number[];
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ApplyChatTemplateOptions & { tokenize?: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ApplyChatTemplateOptions): string | number[];
  applyChatTemplate(messages: readonly ChatMessage[], opts: ApplyChatTemplateOptions = {}): string | number[] {
    const text = renderChatTemplate(this.config, messages, opts);
    return opts.tokenize ? this.encode(text, null, { addSpecialTokens: false }).ids : text;
  }
}

/**
 * `encodeBatch` defaults from tokenizer.json: `padding` {strategy "BatchLongest" | {Fixed: n}, direction,
 * pad_to_multiple_of} and `truncation` {max_length, direction}. (A fixed padding length and a truncation length
 * share `maxLength`; the truncation one wins.)
 */
function batchDefaultsFromJson(
  padding: Record<string, unknown> | null | undefined,
  truncation: Record<string, unknown> | null | undefined,
): BatchOptions {
  const o: BatchOptions = {};
  if (padding && typeof padding === "object") {
    const st = padding.strategy as unknown;
    if (st && typeof st === "object" && typeof (st as { Fixed?: unknown }).Fixed === "number") {
      o.padding = "max_length";
      o.maxLength = (st as { Fixed: number }).Fixed;
    } else {
      o.padding = "longest";
    }
    if (padding.direction === "Left") o.paddingSide = "left";
    if (typeof padding.pad_to_multiple_of === "number") o.padToMultipleOf = padding.pad_to_multiple_of;
    if (typeof padding.pad_id === "number") o.padId = padding.pad_id;
  }
  if (truncation && typeof truncation === "object" && typeof truncation.max_length === "number") {
    o.truncation = true;
    o.maxLength = truncation.max_length;
    if (truncation.direction === "Left") o.truncationSide = "left";
  }
  return o;
}

function posOf(text: string | undefined, pair: [string, string]): { line?: number; column?: number } {
  if (!text) return {};
  for (const needle of [JSON.stringify(`${pair[0]} ${pair[1]}`), JSON.stringify(pair[0])]) {
    const i = text.indexOf(needle, text.indexOf('"merges"'));
    if (i >= 0) return lineCol(text, i);
  }
  return {};
}

const emptyEncoding = (): Encoding => ({
  ids: [],
  tokens: [],
  offsets: [],
  typeIds: [],
  attentionMask: [],
  specialTokensMask: [],
  sequenceIds: [],
});

function concat(parts: Encoding[]): Encoding {
  const e = emptyEncoding();
  for (const p of parts) {
    e.ids.push(...p.ids);
    e.tokens.push(...p.tokens);
    e.offsets.push(...p.offsets);
    e.typeIds.push(...p.typeIds);
    e.attentionMask.push(...p.attentionMask);
    e.specialTokensMask.push(...p.specialTokensMask);
    e.sequenceIds.push(...p.sequenceIds);
  }
  return e;
}

function slice(e: Encoding, n: number, side: "left" | "right"): Encoding {
  if (n >= e.ids.length) return e;
  const s = side === "right" ? 0 : e.ids.length - n;
  const t = s + n;
  return {
    ids: e.ids.slice(s, t),
    tokens: e.tokens.slice(s, t),
    offsets: e.offsets.slice(s, t),
    typeIds: e.typeIds.slice(s, t),
    attentionMask: e.attentionMask.slice(s, t),
    specialTokensMask: e.specialTokensMask.slice(s, t),
    sequenceIds: e.sequenceIds.slice(s, t),
  };
}

/** HF `clean_up_tokenization`: glue punctuation and English contractions back. */
export function cleanupTokenization(s: string): string {
  return s
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

function bertTemplate(cls: number, sep: number, clsTok = "[CLS]", sepTok = "[SEP]"): Template {
  const C = { ids: [cls], tokens: [clsTok], typeId: 0 };
  const S0 = { ids: [sep], tokens: [sepTok], typeId: 0 };
  const S1 = { ids: [sep], tokens: [sepTok], typeId: 1 };
  return {
    single: [C, { seq: 0, typeId: 0 }, S0],
    pair: [C, { seq: 0, typeId: 0 }, S0, { seq: 1, typeId: 1 }, S1],
  };
}

function templateFromJson(j: unknown, model: Model, path = "post_processor"): Template | null {
  if (j === null || j === undefined) return null;
  const o = j as Record<string, unknown>;
  const tokId = (v: unknown, f: string): [string, number] => {
    if (!Array.isArray(v) || typeof v[0] !== "string" || typeof v[1] !== "number")
      throw new ConfigError("expected [token, id]", `${path}.${f}`);
    return [v[0], v[1]];
  };
  switch (o.type) {
    case "ByteLevel":
      return null;
    case "BertProcessing": {
      const [st, si] = tokId(o.sep, "sep");
      const [ct, ci] = tokId(o.cls, "cls");
      return bertTemplate(ci, si, ct, st);
    }
    case "RobertaProcessing": {
      const [st, si] = tokId(o.sep, "sep");
      const [ct, ci] = tokId(o.cls, "cls");
      const C = { ids: [ci], tokens: [ct], typeId: 0 };
      const S = { ids: [si], tokens: [st], typeId: 0 };
      return {
        single: [C, { seq: 0, typeId: 0 }, S],
        pair: [C, { seq: 0, typeId: 0 }, S, S, { seq: 1, typeId: 0 }, S],
      };
    }
    case "TemplateProcessing": {
      const specials = (o.special_tokens ?? {}) as Record<string, { ids?: number[]; tokens?: string[] }>;
      const items = (list: unknown, f: string): TemplateItem[] => {
        if (!Array.isArray(list)) throw new ConfigError("expected a list", `${path}.${f}`);
        return list.map((x, i) => {
          const it = x as Record<string, Record<string, unknown>>;
          if (it.Sequence) return { seq: it.Sequence.id === "B" ? 1 : 0, typeId: Number(it.Sequence.type_id ?? 0) };
          if (it.SpecialToken) {
            const name = String(it.SpecialToken.id);
            const sp = specials[name];
            const ids = sp?.ids ?? (model.vocab.has(name) ? [model.vocab.get(name)!] : undefined);
            if (!ids)
              throw new ConfigError(`special token ${JSON.stringify(name)} is not defined`, `${path}.${f}[${i}]`);
            return { ids, tokens: sp?.tokens ?? [name], typeId: Number(it.SpecialToken.type_id ?? 0) };
          }
          throw new ConfigError("expected {Sequence} or {SpecialToken}", `${path}.${f}[${i}]`);
        });
      };
      return { single: items(o.single, "single"), pair: items(o.pair ?? o.single, "pair") };
    }
    case "Sequence": {
      const list = (o.processors ?? []) as unknown[];
      let t: Template | null = null;
      list.forEach((p, i) => {
        const r = templateFromJson(p, model, `${path}.processors[${i}]`);
        if (r) t = r;
      });
      return t;
    }
    default:
      throw new ConfigError(`unsupported post_processor type ${JSON.stringify(o.type)}`, `${path}.type`);
  }
}

function decoderFromJson(j: unknown, path = "decoder"): Decoder {
  if (j === null || j === undefined) return { type: "None" };
  const o = j as Record<string, unknown>;
  switch (o.type) {
    case "ByteLevel":
      return { type: "ByteLevel" };
    case "WordPiece":
      return { type: "WordPiece", prefix: (o.prefix as string) ?? "##", cleanup: (o.cleanup as boolean) ?? true };
    case "Sequence": {
      const list = ((o.decoders ?? []) as unknown[]).map((d, i) => decoderFromJson(d, `${path}.decoders[${i}]`));
      return list.find((d) => d.type !== "None") ?? { type: "None" };
    }
    default:
      throw new ConfigError(`unsupported decoder type ${JSON.stringify(o.type)}`, `${path}.type`);
  }
}

/**
 * A decoder from tokenizer.json: a lone `ByteLevel` or `WordPiece` (or none) as before, anything
 * else (Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace, …) as HF's `decode_chain`.
 */
function hfDecoderFromJson(j: unknown, path = "decoder"): Decoder {
  const t = (j as Record<string, unknown> | null | undefined)?.type;
  if (j === null || j === undefined || t === "ByteLevel" || t === "WordPiece") return decoderFromJson(j, path);
  return { type: "Chain", chain: decodeChainFromJson(j, path) };
}
