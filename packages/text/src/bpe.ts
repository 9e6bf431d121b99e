/**
 * The BPE model (Sennrich et al. 2016; GPT-2's `encoder.py`; HF tokenizers `models/bpe`): a word
 * starts as characters and the adjacent pair with the lowest merge rank is merged, leftmost first,
 * until no pair of the merge table remains.
 *
 * Loading: `vocab.json` (token → id) and `merges.txt` (one `left right` pair per line, in rank
 * order, optionally after a `#version` line), or the `model` object of a HF `tokenizer.json`.
 * Malformed files throw `ParseError` naming the file and line.
 */
import { ParseError } from "@wasmformer/core";
import { lineCol, parseJson } from "./json.js";
import { PairTable } from "./pair-table.js";

/** A sub-word piece of a word: vocabulary id and its `[start, end)` in the word's UTF-16 units. */
export interface Piece {
  id: number;
  start: number;
  end: number;
}

export interface BpeOptions {
  /** Token for characters that are not in the vocabulary (none: such characters are dropped). */
  unkToken?: string | null;
  /** Prefix of every symbol but the first of a word (e.g. `##`). */
  continuingSubwordPrefix?: string | null;
  /** Suffix of the last symbol of a word (e.g. `</w>`). */
  endOfWordSuffix?: string | null;
  /** Merge consecutive unknown symbols into one. */
  fuseUnk?: boolean;
  /** Unknown characters become their UTF-8 bytes as `<0xXX>` tokens (Llama style). */
  byteFallback?: boolean;
  /** A word found whole in the vocabulary is not split. */
  ignoreMerges?: boolean;
}

/** Words longer than this (UTF-16 units) are not cached. */
export const LONG_WORD = 256;
const KEY = 2097152; // 2^21: pair key = left · KEY + right (vocabularies below 2M ids)

/** Position (line, column) of the first occurrence of `needle` in `text`, for error messages. */
export function locate(text: string, needle: string): { line?: number; column?: number } {
  const at = text.indexOf(needle);
  return at < 0 ? {} : lineCol(text, at);
}

/** Parse a `vocab.json` text: an object of token → non-negative integer id. */
export function parseVocabJson(text: string, file = "vocab.json"): Map<string, number> {
  const obj = parseJson(text, file);
  if (obj === null || typeof obj !== "object" || Array.isArray(obj))
    throw new ParseError("expected a JSON object of token → id", { file, line: 1 });
  return vocabFromObject(obj as Record<string, unknown>, file, text);
}

export function vocabFromObject(obj: Record<string, unknown>, file: string, text?: string): Map<string, number> {
  const vocab = new Map<string, number>();
  for (const [tok, id] of Object.entries(obj)) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= KEY) {
      const where = text ? locate(text, JSON.stringify(tok)) : {};
      throw new ParseError(
        `token ${JSON.stringify(tok)} has id ${JSON.stringify(id)} (expected an integer in [0, ${KEY}))`,
        {
          file,
          ...where,
        },
      );
    }
    vocab.set(tok, id);
  }
  return vocab;
}

/** Parse a `merges.txt` text into pairs (line numbers kept for errors). */
export function parseMergesTxt(text: string, file = "merges.txt"): { pairs: [string, string][]; lines: number[] } {
  const pairs: [string, string][] = [];
  const lines: number[] = [];
  const rows = text.split("\n");
  rows.forEach((raw, i) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (i === 0 && line.startsWith("#version")) return;
    if (line === "" && rows.slice(i + 1).every((r) => r === "" || r === "\r")) return; // trailing blank lines
    const parts = line.split(" ");
    if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
      throw new ParseError(
        `expected "left right" (two tokens separated by one space), got ${JSON.stringify(line.slice(0, 80))}`,
        {
          file,
          line: i + 1,
        },
      );
    }
    pairs.push([parts[0], parts[1]]);
    lines.push(i + 1);
  });
  return { pairs, lines };
}

export class BPE {
  readonly vocab: Map<string, number>;
  readonly vocabR: Map<number, string>;
  /** pair key → merge rank */
  private readonly ranks: PairTable;
  /** merge rank → id of the merged token */
  private readonly mergeResult: Int32Array;
  readonly unkId: number | undefined;
  readonly opts: Required<BpeOptions>;
  private cache = new Map<string, Piece[]>();
  private readonly cacheLimit = 100_000;

  /**
   * @param vocab token → id
   * @param merges pairs in rank order
   * @param where how to name a merge in errors (default: `merges.txt` line i+1)
   */
  constructor(
    vocab: Map<string, number>,
    merges: readonly (readonly [string, string])[],
    opts: BpeOptions = {},
    where: (i: number) => { file: string; line?: number } = (i) => ({ file: "merges.txt", line: i + 1 }),
  ) {
    this.vocab = vocab;
    this.vocabR = new Map();
    for (const [t, i] of vocab) this.vocabR.set(i, t);
    this.opts = {
      unkToken: opts.unkToken ?? null,
      continuingSubwordPrefix: opts.continuingSubwordPrefix ?? null,
      endOfWordSuffix: opts.endOfWordSuffix ?? null,
      fuseUnk: opts.fuseUnk ?? false,
      byteFallback: opts.byteFallback ?? false,
      ignoreMerges: opts.ignoreMerges ?? false,
    };
    this.mergeResult = new Int32Array(merges.length);
    this.ranks = new PairTable(merges.length);
    const prefix = this.opts.continuingSubwordPrefix ?? "";
    merges.forEach(([a, b], r) => {
      const ia = vocab.get(a);
      const ib = vocab.get(b);
      if (ia === undefined || ib === undefined) {
        throw new ParseError(
          `merge "${a} ${b}": token ${JSON.stringify(ia === undefined ? a : b)} is not in the vocabulary`,
          where(r),
        );
      }
      const merged = a + (prefix && b.startsWith(prefix) ? b.slice(prefix.length) : b);
      const im = vocab.get(merged);
      if (im === undefined)
        throw new ParseError(
          `merge "${a} ${b}": merged token ${JSON.stringify(merged)} is not in the vocabulary`,
          where(r),
        );
      this.ranks.setIfAbsent(ia, ib, r); // a repeated pair keeps its first (lowest) rank
      this.mergeResult[r] = im;
    });
    if (this.opts.unkToken !== null) {
      this.unkId = vocab.get(this.opts.unkToken);
      if (this.unkId === undefined)
        throw new ParseError(`unk_token ${JSON.stringify(this.opts.unkToken)} is not in the vocabulary`, where(-1));
    }
  }

  /** Split one word (a pre-token) into vocabulary pieces. Unknown characters never throw. */
  tokenize(word: string): Piece[] {
    if (word.length > LONG_WORD) return this.merge(word); // whole sentences (no pre-tokenizer): not worth caching
    const hit = this.cache.get(word);
    if (hit) return hit;
    const out = this.merge(word);
    if (this.cache.size >= this.cacheLimit) this.cache.clear();
    this.cache.set(word, out);
    return out;
  }

  private merge(word: string): Piece[] {
    const { continuingSubwordPrefix: pre, endOfWordSuffix: suf, ignoreMerges, byteFallback, fuseUnk } = this.opts;
    if (word.length === 0) return [];
    if (ignoreMerges) {
      const id = this.vocab.get(word);
      if (id !== undefined) return [{ id, start: 0, end: word.length }];
    }
    // initial symbols: code points (with prefix/suffix), unknowns → unk / bytes / dropped
    const ids: number[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    let lastUnk = false;
    for (let i = 0; i < word.length; ) {
      const cp = word.codePointAt(i)!;
      const n = cp > 0xffff ? 2 : 1;
      let s = word.slice(i, i + n);
      if (pre && i > 0) s = pre + s;
      if (suf && i + n === word.length) s = s + suf;
      const id = this.vocab.get(s);
      if (id !== undefined) {
        ids.push(id);
        starts.push(i);
        ends.push(i + n);
        lastUnk = false;
      } else if (
        byteFallback &&
        [...new TextEncoder().encode(word.slice(i, i + n))].every((b) => this.vocab.has(byteToken(b)))
      ) {
        for (const b of new TextEncoder().encode(word.slice(i, i + n))) {
          ids.push(this.vocab.get(byteToken(b))!);
          starts.push(i);
          ends.push(i + n);
        }
        lastUnk = false;
      } else if (this.unkId !== undefined) {
        if (fuseUnk && lastUnk) {
          ends[ends.length - 1] = i + n;
        } else {
          ids.push(this.unkId);
          starts.push(i);
          ends.push(i + n);
        }
        lastUnk = true;
      }
      i += n;
    }
    if (ids.length > 48) return this.mergeLong(ids, starts, ends);
    // merge the lowest-ranked adjacent pair (leftmost on ties) until none is mergeable
    let len = ids.length;
    for (;;) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let j = 0; j + 1 < len; j++) {
        const r = this.ranks.get(ids[j], ids[j + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = j;
        }
      }
      if (best < 0) break;
      ids[best] = this.mergeResult[bestRank];
      ends[best] = ends[best + 1];
      ids.splice(best + 1, 1);
      starts.splice(best + 1, 1);
      ends.splice(best + 1, 1);
      len--;
    }
    const out: Piece[] = new Array(len);
    for (let j = 0; j < len; j++) out[j] = { id: ids[j], start: starts[j], end: ends[j] };
    return out;
  }

  /** The same merging for long words in O(n log n): a heap of candidate pairs (HF tokenizers' approach). */
  private mergeLong(ids: number[], starts: number[], ends: number[]): Piece[] {
    const n = ids.length;
    const ranks = this.ranks;
    const result = this.mergeResult;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap();
    const consider = (i: number) => {
      const j = next[i];
      if (i < 0 || j < 0) return;
      const r = ranks.get(ids[i], ids[j]);
      if (r !== undefined) heap.push(r * POS + i);
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    for (let k = heap.pop(); k !== undefined; k = heap.pop()) {
      const r = Math.floor(k / POS);
      const i = k - r * POS;
      const j = next[i];
      // stale entry: the left symbol was merged away, or the pair changed since it was pushed
      if (!alive[i] || j < 0 || ranks.get(ids[i], ids[j]) !== r) continue;
      ids[i] = result[r];
      ends[i] = ends[j];
      alive[j] = 0;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      if (prev[i] >= 0) consider(prev[i]);
      consider(i);
    }
    const out: Piece[] = [];
    for (let i = 0; i >= 0 && i < n; i = next[i]) out.push({ id: ids[i], start: starts[i], end: ends[i] });
    return out;
  }
}

/**
 * Min-heap of merge candidates keyed by `rank · 2^26 + position` (lowest rank, then leftmost):
 * O(n log n) merging for long words, with the same result as the quadratic scan.
 */
class PairHeap {
  private keys: number[] = [];
  push(k: number): void {
    const h = this.keys;
    let i = h.length;
    h.push(k);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p] <= k) break;
      h[i] = h[p];
      i = p;
    }
    h[i] = k;
  }
  pop(): number | undefined {
    const h = this.keys;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const c = l + 1 < h.length && h[l + 1] < h[l] ? l + 1 : l;
        if (h[c] >= last) break;
        h[i] = h[c];
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

const POS = 67108864; // 2^26

/** Llama-style byte-fallback token name, e.g. `<0x0A>`. */
export function byteToken(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
}
