/**
 * `Tokenizer`: the Keras text tokenizer (`keras.preprocessing.text.Tokenizer`), with the exact
 * semantics of keras-team/keras-preprocessing `keras_preprocessing/text.py` (kept in keras as
 * `keras/src/legacy/preprocessing/text.py`); see `../shared/fixtures/FORMAT.md` §6.1.
 *
 * Index 0 is reserved. Words are ranked by count (ties keep first-seen order); with `oovToken` the
 * out-of-vocabulary token takes index 1. `numWords` limits encoding (only indices `< numWords` are
 * kept) and the matrix width, not the vocabulary itself.
 *
 * @example
 * ```ts
 * const tok = new Tokenizer({ oovToken: "<OOV>" });
 * tok.fitOnTexts(["I love Algeria", "machine learning"]);
 * tok.textsToSequences(["Algeria love AI"]);   // [[4, 3, 1]]
 * tok.textsToMatrix(["love love"], "count");   // Tensor f32 [1, 7]
 * const json = tok.toJSON();                   // same string as Keras's tokenizer.to_json()
 * ```
 */
import { InputError, ParseError, Tensor } from "@wasmformer/core";
import { type OrderedJson, parseOrderedJson, pyJsonDumps } from "./json.js";
import { allocMatrix } from "./matrix.js";

/** A text: a string, or a list of tokens (already split). */
export type Text = string | readonly string[];

/** Matrix modes of `textsToMatrix` / `sequencesToMatrix`. */
export type MatrixMode = "binary" | "count" | "freq" | "tfidf";

export interface TokenizerOptions {
  /** Keep only indices `< numWords` when encoding (null or 0: no limit). */
  numWords?: number | null;
  /** Characters replaced by `split` before splitting (default: punctuation, TAB and LF; not `'`). */
  filters?: string;
  /** Lower-case texts (default true). */
  lower?: boolean;
  /** The separator (default `" "`); only this exact string separates words. */
  split?: string;
  /** Every character (code point) is a token (default false). */
  charLevel?: boolean;
  /** Token for out-of-vocabulary words (index 1), or null. */
  oovToken?: string | null;
  /** Initial document count (default 0). */
  documentCount?: number;
}

/** Keras's default `filters`: ``!"#$%&()*+,-./:;<=>?@[\]^_`{|}~`` then TAB and LF. */
export const DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n';

const MODES: readonly MatrixMode[] = ["binary", "count", "freq", "tfidf"];

/**
 * Keras `text_to_word_sequence`: lower-case, replace every filter character by `split`, split on
 * `split`, drop empty pieces.
 */
export function textToWordSequence(text: string, filters = DEFAULT_FILTERS, lower = true, split = " "): string[] {
  if (split === "") throw new InputError("split must not be the empty string");
  if (lower) text = text.toLowerCase();
  const f = new Set(Array.from(filters));
  let t = "";
  if (f.size > 0) {
    for (const ch of text) t += f.has(ch) ? split : ch;
  } else {
    t = text;
  }
  return t.split(split).filter((w) => w.length > 0);
}

function isAsyncIterable(x: unknown): x is AsyncIterable<unknown> {
  return x != null && typeof (x as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function";
}

export class Tokenizer {
  numWords: number | null;
  filters: string;
  lower: boolean;
  split: string;
  charLevel: boolean;
  oovToken: string | null;
  documentCount: number;

  /** Word → count, in order of first occurrence. */
  wordCounts = new Map<string, number>();
  /** Word → number of texts containing it. */
  wordDocs = new Map<string, number>();
  /** Word → index (1-based, most frequent first). */
  wordIndex = new Map<string, number>();
  /** Index → word. */
  indexWord = new Map<number, string>();
  /** Index → number of documents containing it. */
  indexDocs = new Map<number, number>();

  constructor(opts: TokenizerOptions = {}) {
    this.numWords = opts.numWords ?? null;
    this.filters = opts.filters ?? DEFAULT_FILTERS;
    this.lower = opts.lower ?? true;
    this.split = opts.split ?? " ";
    this.charLevel = opts.charLevel ?? false;
    this.oovToken = opts.oovToken ?? null;
    this.documentCount = opts.documentCount ?? 0;
    if (this.numWords !== null && (!Number.isInteger(this.numWords) || this.numWords < 0)) {
      throw new InputError(`numWords must be a non-negative integer or null, got ${opts.numWords}`);
    }
    if (typeof this.filters !== "string") throw new InputError("filters must be a string");
    if (typeof this.split !== "string" || this.split === "") throw new InputError("split must be a non-empty string");
    if (this.oovToken !== null && typeof this.oovToken !== "string")
      throw new InputError("oovToken must be a string or null");
    if (!Number.isInteger(this.documentCount) || this.documentCount < 0) {
      throw new InputError(`documentCount must be a non-negative integer, got ${opts.documentCount}`);
    }
  }

  /** The tokens of one text (Keras: list texts and `charLevel` bypass filters and split). */
  tokenize(text: Text, where = "text"): string[] {
    if (typeof text === "string") {
      if (this.charLevel) return Array.from(this.lower ? text.toLowerCase() : text);
      return textToWordSequence(text, this.filters, this.lower, this.split);
    }
    if (Array.isArray(text)) {
      return text.map((w, i) => {
        if (typeof w !== "string") throw new InputError(`${where}[${i}] is not a string (a token list holds strings)`);
        return this.lower ? w.toLowerCase() : w;
      });
    }
    throw new InputError(`${where} must be a string or a list of strings, got ${text === null ? "null" : typeof text}`);
  }

  private fitOne(text: Text, where: string): void {
    this.documentCount++;
    const seq = this.tokenize(text, where);
    for (const w of seq) this.wordCounts.set(w, (this.wordCounts.get(w) ?? 0) + 1);
    for (const w of new Set(seq)) this.wordDocs.set(w, (this.wordDocs.get(w) ?? 0) + 1);
  }

  /** Rebuild `wordIndex`, `indexWord` and (by assignment) `indexDocs` from the counts. */
  private reindex(): void {
    const voc = [...this.wordCounts.entries()];
    voc.sort((a, b) => b[1] - a[1]); // stable: ties keep first-seen order
    const words = voc.map((e) => e[0]);
    if (this.oovToken !== null) words.unshift(this.oovToken);
    // dict(zip(words, 1..)): a repeated word keeps its first position but gets the later index
    this.wordIndex = new Map();
    for (let i = 0; i < words.length; i++) this.wordIndex.set(words[i], i + 1);
    this.indexWord = new Map();
    for (const [w, i] of this.wordIndex) this.indexWord.set(i, w);
    for (const [w, c] of this.wordDocs) this.indexDocs.set(this.wordIndex.get(w)!, c);
  }

  /**
   * Update the vocabulary from texts (strings or token lists). Accepts any iterable, or an async
   * iterable (a stream of lines, say), in which case it returns a Promise.
   */
  fitOnTexts(texts: Iterable<Text>): void;
  fitOnTexts(texts: AsyncIterable<Text>): Promise<void>;
  fitOnTexts(texts: Iterable<Text> | AsyncIterable<Text>): void | Promise<void> {
    if (typeof texts === "string") throw new InputError("fitOnTexts expects a list (iterable) of texts, not a string");
    if (isAsyncIterable(texts)) return this.fitOnTextsAsync(texts);
    if (texts == null || typeof (texts as Iterable<Text>)[Symbol.iterator] !== "function") {
      throw new InputError("fitOnTexts expects an iterable of texts");
    }
    let i = 0;
    for (const t of texts as Iterable<Text>) this.fitOne(t, `texts[${i++}]`);
    this.reindex();
  }

  /** `fitOnTexts` over an async (or sync) iterable, e.g. a file read line by line. */
  async fitOnTextsAsync(texts: AsyncIterable<Text> | Iterable<Text>): Promise<void> {
    let i = 0;
    for await (const t of texts) this.fitOne(t, `texts[${i++}]`);
    this.reindex();
  }

  /** Update `indexDocs` and `documentCount` from sequences of indices (Keras `fit_on_sequences`). */
  fitOnSequences(sequences: Iterable<ArrayLike<number> & Iterable<number>>): void {
    const seqs = checkSequences(sequences);
    this.documentCount += seqs.length;
    for (const s of seqs) for (const i of new Set(s)) this.indexDocs.set(i, (this.indexDocs.get(i) ?? 0) + 1);
  }

  /** Encode texts as lists of word indices (unknown words: the OOV index, or dropped). */
  textsToSequences(texts: Iterable<Text>): number[][] {
    return [...this.textsToSequencesGenerator(texts)];
  }

  /** Lazy `textsToSequences`. */
  *textsToSequencesGenerator(texts: Iterable<Text>): Generator<number[]> {
    if (typeof texts === "string") throw new InputError("textsToSequences expects a list of texts, not a string");
    const nw = this.numWords;
    const oov = this.oovToken !== null ? this.wordIndex.get(this.oovToken) : undefined;
    let n = 0;
    for (const text of texts) {
      const vect: number[] = [];
      for (const w of this.tokenize(text, `texts[${n}]`)) {
        // a word out of the index or beyond numWords becomes the OOV index, when there is one
        const i = this.wordIndex.get(w);
        if (i !== undefined && !(nw && i >= nw)) vect.push(i);
        else if (oov !== undefined) vect.push(oov);
      }
      n++;
      yield vect;
    }
  }

  /** Decode sequences of indices to space-joined words. */
  sequencesToTexts(sequences: Iterable<ArrayLike<number> & Iterable<number>>): string[] {
    const nw = this.numWords;
    const oov = this.oovToken !== null ? this.wordIndex.get(this.oovToken) : undefined;
    const oovWord = oov !== undefined ? this.indexWord.get(oov) : undefined;
    const out: string[] = [];
    let n = 0;
    for (const seq of sequences) {
      if (!Array.isArray(seq) && !ArrayBuffer.isView(seq))
        throw new InputError(`sequences[${n}] is not a list of numbers`);
      const vect: string[] = [];
      for (const num of seq) {
        const w = this.indexWord.get(num);
        if (w !== undefined && !(nw && num >= nw)) vect.push(w);
        else if (oovWord !== undefined) vect.push(oovWord);
      }
      out.push(vect.join(" "));
      n++;
    }
    return out;
  }

  /** `sequencesToMatrix(textsToSequences(texts), mode)`: a 2-D f32 tensor `[texts, width]`. */
  textsToMatrix(texts: Iterable<Text>, mode: MatrixMode = "binary"): Tensor<"f32"> {
    return this.sequencesToMatrix(this.textsToSequences(texts), mode);
  }

  /**
   * Vectorise sequences: a 2-D f32 tensor `[sequences, width]`, width `numWords` (if set) or
   * `wordIndex.size + 1`. Indices `>= width` are skipped. Modes: `binary` (1), `count` (c),
   * `freq` (c / length), `tfidf` ((1 + ln c) · ln(1 + documentCount / (1 + indexDocs[j]))).
   */
  sequencesToMatrix(
    sequences: Iterable<ArrayLike<number> & Iterable<number>>,
    mode: MatrixMode = "binary",
  ): Tensor<"f32"> {
    if (!MODES.includes(mode))
      throw new InputError(`unknown matrix mode ${JSON.stringify(mode)} (binary, count, freq or tfidf)`);
    const seqs = checkSequences(sequences);
    let width: number;
    if (this.numWords) width = this.numWords;
    else if (this.wordIndex.size > 0) width = this.wordIndex.size + 1;
    else throw new InputError("sequencesToMatrix: specify a dimension (numWords) or fit on some text data first");
    if (mode === "tfidf" && !this.documentCount) {
      throw new InputError("sequencesToMatrix: fit the Tokenizer on some data before using tfidf mode");
    }
    const x = allocMatrix(
      "f32",
      seqs.length,
      width,
      this.numWords ? `numWords = ${this.numWords}` : `the vocabulary (${this.wordIndex.size} words)`,
    ) as Float32Array;
    seqs.forEach((seq, i) => {
      if (seq.length === 0) return;
      const counts = new Map<number, number>();
      for (const j of seq) if (j < width) counts.set(j, (counts.get(j) ?? 0) + 1);
      for (const [j, c] of counts) {
        let v: number;
        if (mode === "count") v = c;
        else if (mode === "freq") v = c / seq.length;
        else if (mode === "binary") v = 1;
        else v = (1 + Math.log(c)) * Math.log(1 + this.documentCount / (1 + (this.indexDocs.get(j) ?? 0)));
        x[i * width + j] = v;
      }
    });
    return new Tensor(x, [seqs.length, width], "f32");
  }

  /** The Keras `get_config()` dict: options plus the state maps as JSON-encoded strings. */
  getConfig(): Record<string, unknown> {
    return {
      num_words: this.numWords,
      filters: this.filters,
      lower: this.lower,
      split: this.split,
      char_level: this.charLevel,
      oov_token: this.oovToken,
      document_count: this.documentCount,
      word_counts: pyJsonDumps(this.wordCounts),
      word_docs: pyJsonDumps(this.wordDocs),
      index_docs: pyJsonDumps(this.indexDocs),
      index_word: pyJsonDumps(this.indexWord),
      word_index: pyJsonDumps(this.wordIndex),
    };
  }

  /** The string of Keras's `tokenizer.to_json()` (Python `json.dumps` formatting). */
  toJSON(): string {
    return pyJsonDumps(
      new Map<string, unknown>([
        ["class_name", "Tokenizer"],
        ["config", this.getConfig()],
      ]),
    );
  }

  /**
   * Load a tokenizer saved by Keras's `tokenizer.to_json()` (or by `toJSON()`), like
   * `tokenizer_from_json`. Accepts the JSON string or its parsed object. Malformed input throws a
   * `ParseError` naming the file position or the config field.
   */
  static fromJSON(json: string | Record<string, unknown>, file = "tokenizer.json"): Tokenizer {
    const root = typeof json === "string" ? parseOrderedJson(json, file) : toOrdered(json);
    if (!(root instanceof Map)) throw new ParseError("expected a JSON object {class_name, config}", { file });
    const cls = root.get("class_name");
    if (cls !== undefined && cls !== "Tokenizer")
      throw new ParseError(`class_name is ${JSON.stringify(cls)}, expected "Tokenizer"`, { file });
    const config = root.get("config");
    if (!(config instanceof Map)) throw new ParseError('missing or non-object "config"', { file });
    const bad = (field: string, msg: string): never => {
      throw new ParseError(`config.${field}: ${msg}`, { file });
    };
    const opts: TokenizerOptions = {};
    const state = new Map<string, Map<string, OrderedJson>>();
    for (const [k, v] of config) {
      switch (k) {
        case "num_words":
          if (v !== null && (typeof v !== "number" || !Number.isInteger(v) || v < 0))
            bad(k, "expected a non-negative integer or null");
          opts.numWords = v as number | null;
          break;
        case "filters":
        case "split":
          if (typeof v !== "string") bad(k, "expected a string");
          if (k === "filters") opts.filters = v as string;
          else opts.split = v as string;
          break;
        case "lower":
        case "char_level":
          if (typeof v !== "boolean") bad(k, "expected a boolean");
          if (k === "lower") opts.lower = v as boolean;
          else opts.charLevel = v as boolean;
          break;
        case "oov_token":
          if (v !== null && typeof v !== "string") bad(k, "expected a string or null");
          opts.oovToken = v as string | null;
          break;
        case "document_count":
          if (typeof v !== "number" || !Number.isInteger(v) || v < 0) bad(k, "expected a non-negative integer");
          opts.documentCount = v as number;
          break;
        case "word_counts":
        case "word_docs":
        case "index_docs":
        case "index_word":
        case "word_index": {
          if (typeof v !== "string") bad(k, "expected a JSON-encoded string (Keras get_config layout)");
          let inner: OrderedJson;
          try {
            inner = parseOrderedJson(v as string, `${file} config.${k}`);
          } catch (e) {
            throw e instanceof ParseError ? e : new ParseError(`config.${k}: ${(e as Error).message}`, { file });
          }
          if (!(inner instanceof Map)) bad(k, "expected a JSON object inside the string");
          state.set(k, inner as Map<string, OrderedJson>);
          break;
        }
        default:
          bad(k, "unrecognized keyword argument of Tokenizer");
      }
    }
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(opts);
    } catch (e) {
      throw new ParseError(`config: ${(e as Error).message}`, { file });
    }
    const count = (field: string, k: string, v: OrderedJson): number => {
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0)
        bad(field, `value of ${JSON.stringify(k)} is not a non-negative integer`);
      return v as number;
    };
    const index = (field: string, k: string): number => {
      if (!/^-?[0-9]+$/.test(k)) bad(field, `key ${JSON.stringify(k)} is not an integer`);
      return Number(k);
    };
    for (const [k, v] of state.get("word_counts") ?? []) tok.wordCounts.set(k, count("word_counts", k, v));
    for (const [k, v] of state.get("word_docs") ?? []) tok.wordDocs.set(k, count("word_docs", k, v));
    for (const [k, v] of state.get("word_index") ?? []) tok.wordIndex.set(k, count("word_index", k, v));
    for (const [k, v] of state.get("index_docs") ?? [])
      tok.indexDocs.set(index("index_docs", k), count("index_docs", k, v));
    for (const [k, v] of state.get("index_word") ?? []) {
      if (typeof v !== "string") bad("index_word", `value of ${JSON.stringify(k)} is not a string`);
      tok.indexWord.set(index("index_word", k), v as string);
    }
    return tok;
  }
}

function toOrdered(v: unknown): OrderedJson {
  if (v === null || typeof v !== "object") return v as OrderedJson;
  if (Array.isArray(v)) return v.map(toOrdered);
  if (v instanceof Map) return v as Map<string, OrderedJson>;
  return new Map(Object.entries(v as object).map(([k, x]) => [k, toOrdered(x)]));
}

/** Validate a list of index sequences (non-negative integers; finite numbers). */
function checkSequences(
  sequences: Iterable<ArrayLike<number> & Iterable<number>>,
): (ArrayLike<number> & Iterable<number>)[] {
  if (sequences == null || typeof (sequences as Iterable<unknown>)[Symbol.iterator] !== "function") {
    throw new InputError("expected a list of sequences");
  }
  const out = [...sequences];
  out.forEach((s, i) => {
    if (!Array.isArray(s) && !ArrayBuffer.isView(s)) throw new InputError(`sequences[${i}] is not a list of integers`);
    for (let t = 0; t < s.length; t++) {
      const v = s[t];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
        throw new InputError(`sequences[${i}][${t}] = ${String(v)} is not a non-negative integer index`);
      }
    }
  });
  return out;
}
