/**
 * Byte-level BPE training (GPT-2 style; the algorithm of HF tokenizers' `BpeTrainer`): text is
 * split with GPT-2's regex, each piece becomes its UTF-8 bytes as GPT-2 byte characters, and the
 * most frequent adjacent pair of symbols over all words (weighted by word count) is merged into a
 * new symbol, again and again, until the vocabulary has `vocabSize` entries or no pair occurs
 * `minFrequency` times.
 *
 * Deterministic: ties in frequency go to the pair with the smaller left id, then the smaller right
 * id (ids in creation order), so the result depends only on the multiset of words, not on the order
 * the text was fed in. Vocabulary: the special tokens (ids 0…), the 256 byte characters in byte
 * order, then one token per merge in merge order.
 *
 * ```
 * count(p) = Σ_words count(w) · #occurrences of p in w (non-overlapping, left to right)
 * repeat: p* = argmax count (ties: smallest ids); merge p* in every word holding it; update counts
 * ```
 *
 * @example
 * ```ts
 * const trainer = new BpeTrainer({ vocabSize: 4096, specialTokens: ["<|endoftext|>"] });
 * trainer.feed(lines);
 * const json = trainer.train();            // a HF tokenizer.json object (model BPE, ByteLevel)
 * const tok = SubwordTokenizer.fromTokenizerJson(json);
 * ```
 */
import { InputError } from "@wasmformer/core";
import { BYTE_TO_CHAR, GPT2_PATTERN } from "./byte-level.js";

export interface BpeTrainerOptions {
  /** Size of the final vocabulary: special tokens + 256 bytes + merges (at least 256 + specials). */
  vocabSize: number;
  /** A pair must occur at least this often (weighted by word count) to be merged. Default 2. */
  minFrequency?: number;
  /** Added tokens with ids 0, 1, …, never split (e.g. `<|endoftext|>`). Default none. */
  specialTokens?: readonly string[];
  /** Prefix a space to the text before splitting (ByteLevel `add_prefix_space`). Default false. */
  addPrefixSpace?: boolean;
}

/** The learned model: token → id and the merges in rank order. */
export interface BpeTrainResult {
  vocab: Map<string, number>;
  merges: [string, string][];
}

const KEY = 2097152; // 2^21: pair key = left · KEY + right

/** A binary max-heap of pairs by (count desc, left asc, right asc); stale entries are skipped on pop. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i];
    const cj = this.counts[j];
    return ci !== cj ? ci > cj : this.keys[i] < this.keys[j];
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j], this.counts[i]];
    [this.keys[i], this.keys[j]] = [this.keys[j], this.keys[i]];
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    for (let i = this.keys.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Remove the top; returns [count, key]. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lc = this.counts.pop()!;
    const lk = this.keys.pop()!;
    const n = this.keys.length;
    if (n > 0) {
      this.counts[0] = lc;
      this.keys[0] = lk;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && this.above(l, m)) m = l;
        if (r < n && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

/** Learns byte-level BPE merges from text; see the module comment. */
export class BpeTrainer {
  readonly vocabSize: number;
  readonly minFrequency: number;
  readonly specialTokens: readonly string[];
  readonly addPrefixSpace: boolean;
  private readonly words = new Map<string, number>();
  private readonly re = new RegExp(GPT2_PATTERN, "gu");
  private readonly specialRe: RegExp | null;

  constructor(opts: BpeTrainerOptions) {
    if (typeof opts !== "object" || opts === null)
      throw new InputError("BpeTrainer: options { vocabSize } are required");
    const specials = opts.specialTokens ?? [];
    if (!Array.isArray(specials)) throw new InputError("BpeTrainer: specialTokens must be an array of strings");
    specials.forEach((s, i) => {
      if (typeof s !== "string" || s.length === 0)
        throw new InputError(`BpeTrainer: specialTokens[${i}] must be a non-empty string, got ${JSON.stringify(s)}`);
      if (specials.indexOf(s) !== i)
        throw new InputError(`BpeTrainer: specialTokens[${i}] ${JSON.stringify(s)} is repeated`);
      if (BYTE_TO_CHAR.includes(s))
        throw new InputError(
          `BpeTrainer: specialTokens[${i}] ${JSON.stringify(s)} is a byte character of the alphabet`,
        );
    });
    const min = 256 + specials.length;
    if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < min || opts.vocabSize >= KEY) {
      throw new InputError(
        `BpeTrainer: vocabSize must be an integer in [${min}, ${KEY}) (256 bytes + ${specials.length} special tokens), got ${String(opts.vocabSize)}`,
      );
    }
    const mf = opts.minFrequency ?? 2;
    if (!Number.isFinite(mf) || mf < 0) throw new InputError(`BpeTrainer: minFrequency must be ≥ 0, got ${String(mf)}`);
    this.vocabSize = opts.vocabSize;
    this.minFrequency = mf;
    this.specialTokens = [...specials];
    this.addPrefixSpace = opts.addPrefixSpace ?? false;
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
    this.specialRe = specials.length
      ? new RegExp(
          [...specials]
            .sort((a, b) => b.length - a.length)
            .map(esc)
            .join("|"),
          "g",
        )
      : null;
  }

  /** Count the words of `texts` (special tokens in the text are cut out, as the tokenizer does). */
  feed(texts: Iterable<string> | string): this {
    const list = typeof texts === "string" ? [texts] : texts;
    if (typeof (list as { [Symbol.iterator]?: unknown })?.[Symbol.iterator] !== "function")
      throw new InputError(`BpeTrainer.feed: texts must be a string or an iterable of strings, got ${typeof texts}`);
    let i = 0;
    for (const text of list) {
      if (typeof text !== "string") throw new InputError(`BpeTrainer.feed: texts[${i}] is not a string`);
      const parts = this.specialRe ? text.split(this.specialRe) : [text];
      for (const part of parts) this.countWords(this.addPrefixSpace && !part.startsWith(" ") ? ` ${part}` : part);
      i++;
    }
    return this;
  }

  private countWords(text: string): void {
    const re = this.re;
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      this.words.set(m[0], (this.words.get(m[0]) ?? 0) + 1);
    }
  }

  /** Learn the merges from the words fed so far. */
  learn(): BpeTrainResult {
    const S = this.specialTokens.length;
    const vocab = new Map<string, number>();
    const tokens: string[] = [];
    for (const s of this.specialTokens) vocab.set(s, tokens.push(s) - 1);
    for (let b = 0; b < 256; b++) {
      vocab.set(BYTE_TO_CHAR[b], tokens.push(BYTE_TO_CHAR[b]) - 1);
    }
    const utf8 = new TextEncoder();
    // words as symbol ids (length-prefixed arrays), sorted so that the work order is input-independent
    const keys = [...this.words.keys()].sort();
    const syms: Int32Array[] = [];
    const lens = new Int32Array(keys.length);
    const wc = new Float64Array(keys.length);
    keys.forEach((w, i) => {
      const bytes = utf8.encode(w);
      const a = new Int32Array(bytes.length);
      for (let k = 0; k < bytes.length; k++) a[k] = S + bytes[k];
      syms.push(a);
      lens[i] = bytes.length;
      wc[i] = this.words.get(w)!;
    });
    const counts = new Map<number, number>();
    const where = new Map<number, Set<number>>();
    for (let w = 0; w < syms.length; w++) {
      const a = syms[w];
      for (let k = 0; k + 1 < lens[w]; k++) {
        const key = a[k] * KEY + a[k + 1];
        counts.set(key, (counts.get(key) ?? 0) + wc[w]);
        let set = where.get(key);
        if (!set) where.set(key, (set = new Set()));
        set.add(w);
      }
    }
    const heap = new PairHeap();
    for (const [key, c] of counts) heap.push(c, key);
    const merges: [string, string][] = [];
    const minF = Math.max(this.minFrequency, 1);
    const delta = new Map<number, number>();
    while (tokens.length < this.vocabSize && heap.size > 0) {
      const [c, key] = heap.pop();
      if (counts.get(key) !== c) continue; // stale
      if (c < minF) break;
      const left = Math.floor(key / KEY);
      const right = key - left * KEY;
      const merged = tokens[left] + tokens[right];
      if (vocab.has(merged)) {
        // a special token spelled in byte characters: never merged into (it stays an added token)
        counts.delete(key);
        continue;
      }
      const id = tokens.push(merged) - 1;
      vocab.set(merged, id);
      merges.push([tokens[left], tokens[right]]);
      delta.clear();
      const add = (k: number, v: number) => delta.set(k, (delta.get(k) ?? 0) + v);
      for (const w of where.get(key) ?? []) {
        const a = syms[w];
        const n = lens[w];
        const f = wc[w];
        let hit = false;
        for (let k = 0; k + 1 < n; k++) if (a[k] === left && a[k + 1] === right) hit = true;
        if (!hit) continue;
        for (let k = 0; k + 1 < n; k++) add(a[k] * KEY + a[k + 1], -f);
        let o = 0;
        for (let k = 0; k < n; ) {
          if (k + 1 < n && a[k] === left && a[k + 1] === right) {
            a[o++] = id;
            k += 2;
          } else {
            a[o++] = a[k++];
          }
        }
        lens[w] = o;
        for (let k = 0; k + 1 < o; k++) {
          const pk = a[k] * KEY + a[k + 1];
          add(pk, f);
          if (a[k] === id || a[k + 1] === id) {
            let set = where.get(pk);
            if (!set) where.set(pk, (set = new Set()));
            set.add(w);
          }
        }
      }
      for (const [k, d] of delta) {
        if (d === 0) continue;
        const v = (counts.get(k) ?? 0) + d;
        if (v > 0) {
          counts.set(k, v);
          heap.push(v, k);
        } else {
          counts.delete(k);
          where.delete(k);
        }
      }
      where.delete(key);
    }
    return { vocab, merges };
  }

  /**
   * Learn the merges and return a Hugging Face `tokenizer.json` object (model BPE, ByteLevel
   * pre-tokenizer, post-processor and decoder, the special tokens as added tokens), loadable by
   * `SubwordTokenizer.fromTokenizerJson` and by HF tokenizers; `JSON.stringify` it to write the file.
   */
  train(): Record<string, unknown> {
    const { vocab, merges } = this.learn();
    const byteLevel = { type: "ByteLevel", add_prefix_space: this.addPrefixSpace, trim_offsets: true, use_regex: true };
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: this.specialTokens.map((content, id) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: { ...byteLevel, trim_offsets: false },
      decoder: byteLevel,
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        vocab: Object.fromEntries(vocab),
        merges: merges.map(([l, r]) => `${l} ${r}`),
      },
    };
  }
}
