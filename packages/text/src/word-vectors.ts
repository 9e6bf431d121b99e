/**
 * `WordVectors`: word embeddings loaded from word2vec text and binary files (Mikolov et al.,
 * word2vec.c `-binary 0/1`), GloVe text (no header line) and fastText `.vec` (word2vec text), with
 * cosine `similarity`, `mostSimilar` and `analogy` (3CosAdd: b − a + c, as gensim's
 * `most_similar(positive=[b, c], negative=[a])`).
 *
 * The search runs on the kernel runtime: unit-length rows live in wasm memory and one query is a
 * `gemv` (SIMD dot products) followed by `topk` (heap selection); call `await init()` from
 * `@wasmformer/core` first to get the wasm backend (otherwise the reference TS backend is used).
 *
 * @example
 * ```ts
 * await init();
 * const wv = WordVectors.load(readFileSync("vectors.bin"));       // word2vec binary, text, GloVe or .vec
 * wv.similarity("king", "queen");                                  // cosine, null for unknown words
 * wv.analogy("man", "king", "woman", 1);                           // [{ word: "queen", similarity: 0.71 }]
 * wv.mostSimilar("frog", 5);
 * ```
 */
import { createRuntime, InputError, ParseError, type Runtime, ShapeError } from "@wasmformer/core";

export interface Neighbour {
  word: string;
  /** Cosine similarity with the query. */
  similarity: number;
}

export type VectorFormat = "auto" | "word2vec-text" | "word2vec-binary" | "glove" | "fasttext-vec";

export interface LoadOptions {
  format?: VectorFormat;
  /** Name used in error messages. */
  file?: string;
  /** Kernel runtime for the search (default: a new one on the current backend). */
  runtime?: Runtime;
  /** Read only the first `limit` vectors (gensim's `limit`; word2vec files list frequent words first). */
  limit?: number;
}

const utf8 = new TextDecoder("utf-8");
const utf8Fatal = new TextDecoder("utf-8", { fatal: true });
const enc = new TextEncoder();

/** The shortest decimal that reads back as the same float32. */
export function formatF32(v: number): string {
  if (v === 0) return Object.is(v, -0) ? "-0" : "0";
  for (let p = 1; p < 10; p++) {
    const s = v.toPrecision(p);
    if (Math.fround(Number(s)) === v) return String(Number(s));
  }
  return String(v);
}

export class WordVectors {
  readonly words: readonly string[];
  readonly dim: number;
  /** Raw vectors `[size, dim]`, row-major, as loaded. */
  readonly vectors: Float32Array;
  private readonly index = new Map<string, number>();
  private readonly norms: Float32Array;
  private readonly rt: Runtime;
  private readonly unitPtr: number; // [size, dim] unit rows in the runtime heap
  private readonly scratch: number; // query (dim) + scores (size) + topk idx/val (2·kMax)
  private readonly kMax = 1024;

  /**
   * @param words one per row (a repeated word keeps its first row for lookups)
   * @param vectors `[words.length, dim]`
   */
  constructor(words: readonly string[], vectors: Float32Array, dim: number, runtime?: Runtime) {
    if (!Number.isInteger(dim) || dim < 1) throw new ShapeError(`dim must be a positive integer, got ${dim}`);
    if (vectors.length !== words.length * dim) {
      throw new ShapeError(
        `vectors has ${vectors.length} floats but ${words.length} words × ${dim} dims need ${words.length * dim}`,
      );
    }
    this.words = words;
    this.dim = dim;
    this.vectors = vectors;
    words.forEach((w, i) => {
      if (!this.index.has(w)) this.index.set(w, i);
    });
    const n = words.length;
    this.rt = runtime ?? createRuntime();
    const h = this.rt.heap;
    this.unitPtr = h.allocF32(n * dim);
    this.scratch = h.allocF32(dim + n + 2 * this.kMax);
    const unit = h.f32(this.unitPtr, n * dim);
    this.norms = new Float32Array(n);
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += vectors[r * dim + j] * vectors[r * dim + j];
      const norm = Math.sqrt(s);
      this.norms[r] = norm;
      const inv = norm > 0 ? 1 / norm : 0; // a zero vector stays zero: similarity 0 with everything
      for (let j = 0; j < dim; j++) unit[r * dim + j] = vectors[r * dim + j] * inv;
    }
  }

  get size(): number {
    return this.words.length;
  }

  /** The backend the search runs on. */
  get backend(): Runtime["backend"] {
    return this.rt.backend;
  }

  has(word: string): boolean {
    return this.index.has(word);
  }

  /** Row index of a word, or undefined. */
  indexOf(word: string): number | undefined {
    return this.index.get(word);
  }

  /** A copy of the word's vector, or undefined for an unknown word. */
  get(word: string): Float32Array | undefined {
    const i = this.index.get(word);
    return i === undefined ? undefined : this.vectors.slice(i * this.dim, (i + 1) * this.dim);
  }

  /** Cosine similarity of two words; null when either is unknown. */
  similarity(a: string, b: string): number | null {
    const i = this.index.get(a);
    const j = this.index.get(b);
    if (i === undefined || j === undefined) return null;
    const u = this.rt.heap.f32(this.unitPtr, this.size * this.dim);
    let s = 0;
    for (let t = 0; t < this.dim; t++) s += u[i * this.dim + t] * u[j * this.dim + t];
    return s;
  }

  private checkVector(v: ArrayLike<number>, what: string): void {
    if (v.length !== this.dim)
      throw new ShapeError(`${what} has ${v.length} dimensions, these vectors have ${this.dim}`);
    for (let i = 0; i < v.length; i++)
      if (!Number.isFinite(v[i])) throw new InputError(`${what}[${i}] is not a finite number`);
  }

  /**
   * The `k` nearest rows by cosine similarity to `query` (a unit or raw vector), skipping the rows
   * in `exclude`. Runs `gemv` + `topk` on the kernel runtime.
   */
  private search(query: ArrayLike<number>, k: number, exclude: Set<number>): Neighbour[] {
    if (!Number.isInteger(k) || k < 0) throw new InputError(`k must be a non-negative integer, got ${k}`);
    const n = this.size;
    const want = Math.min(k + exclude.size, n);
    if (want === 0) return [];
    if (want > this.kMax) throw new InputError(`k + excluded words must be at most ${this.kMax}, got ${want}`);
    const h = this.rt.heap;
    const q = this.scratch;
    const scores = q + 4 * this.dim;
    const idx = scores + 4 * n;
    const val = idx + 4 * this.kMax;
    let s = 0;
    for (let i = 0; i < this.dim; i++) s += query[i] * query[i];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    const qv = h.f32(q, this.dim);
    for (let i = 0; i < this.dim; i++) qv[i] = query[i] * inv;
    this.rt.k.gemv(this.unitPtr, n, this.dim, q, scores);
    this.rt.k.topk(scores, n, want, idx, val);
    const ii = h.i32(idx, want);
    const vv = h.f32(val, want);
    const out: Neighbour[] = [];
    for (let t = 0; t < want && out.length < k; t++) {
      if (ii[t] < 0 || exclude.has(ii[t])) continue;
      out.push({ word: this.words[ii[t]], similarity: vv[t] });
    }
    return out;
  }

  /**
   * The `k` most similar words to a word (itself excluded) or to a vector. An unknown word gives
   * `[]`; a vector of the wrong length throws `ShapeError`.
   */
  mostSimilar(wordOrVector: string | ArrayLike<number>, k = 10): Neighbour[] {
    if (typeof wordOrVector === "string") {
      const i = this.index.get(wordOrVector);
      if (i === undefined) return [];
      return this.search(this.rt.heap.f32(this.unitPtr + 4 * i * this.dim, this.dim).slice(), k, new Set([i]));
    }
    this.checkVector(wordOrVector, "query vector");
    return this.search(wordOrVector, k, new Set());
  }

  /**
   * Analogy by vector offset (3CosAdd): the words closest to `b − a + c` (unit vectors), excluding
   * a, b and c — `analogy("man", "king", "woman")` ≈ queen. Unknown words give `[]`.
   */
  analogy(a: string, b: string, c: string, k = 10): Neighbour[] {
    const ids = [a, b, c].map((w) => this.index.get(w));
    if (ids.some((i) => i === undefined)) return [];
    const [ia, ib, ic] = ids as number[];
    const u = this.rt.heap.f32(this.unitPtr, this.size * this.dim);
    const q = new Float32Array(this.dim);
    for (let j = 0; j < this.dim; j++) q[j] = u[ib * this.dim + j] - u[ia * this.dim + j] + u[ic * this.dim + j];
    return this.search(q, k, new Set([ia, ib, ic]));
  }

  // ---------------------------------------------------------------------------------------------
  // loading

  /** Load word2vec text/binary, GloVe or fastText `.vec` data (format detected unless given). */
  static load(data: string | Uint8Array, opts: LoadOptions = {}): WordVectors {
    const format = opts.format ?? "auto";
    const file = opts.file ?? (format === "auto" ? "vectors" : format);
    const limit = opts.limit ?? Number.POSITIVE_INFINITY;
    if (!(limit >= 0) || (Number.isFinite(limit) && !Number.isInteger(limit)))
      throw new InputError(`limit must be a non-negative integer, got ${opts.limit}`);
    if (typeof data === "string") {
      if (format === "word2vec-binary")
        throw new InputError("word2vec binary data must be given as bytes, not a string");
      return WordVectors.parseText(data, format, file, limit, opts.runtime);
    }
    if (format === "word2vec-binary" || (format === "auto" && looksBinary(data)))
      return WordVectors.parseBinary(data, file, limit, opts.runtime);
    let text: string;
    try {
      text = utf8Fatal.decode(data);
    } catch {
      throw new ParseError("not valid UTF-8 text (and not word2vec binary)", { file });
    }
    return WordVectors.parseText(text, format, file, limit, opts.runtime);
  }

  private static parseText(
    text: string,
    format: VectorFormat,
    file: string,
    limit: number,
    runtime?: Runtime,
  ): WordVectors {
    const lines = text.split("\n");
    let first = 0;
    let dim = -1;
    let count = -1;
    const head = lines[0]?.trim().split(/ +/) ?? [];
    const isHeader = head.length === 2 && /^\d+$/.test(head[0]) && /^\d+$/.test(head[1]);
    if (format === "word2vec-text" || format === "fasttext-vec" || (format === "auto" && isHeader)) {
      if (!isHeader) throw new ParseError('expected a header line "<count> <dim>"', { file, line: 1, column: 1 });
      count = Number(head[0]);
      dim = Number(head[1]);
      if (dim < 1) throw new ParseError(`dimension ${dim} in the header must be positive`, { file, line: 1 });
      first = 1;
    }
    const words: string[] = [];
    const rows: Float32Array[] = [];
    for (let ln = first; ln < lines.length && words.length < limit; ln++) {
      let line = lines[ln];
      if (line.endsWith("\r")) line = line.slice(0, -1);
      line = line.replace(/ +$/, ""); // word2vec.c writes a space after the last number
      if (line === "") {
        if (lines.slice(ln + 1).every((l) => l.trim() === "")) break;
        throw new ParseError("empty line", { file, line: ln + 1 });
      }
      const fields = line.split(" ");
      if (dim < 0) dim = fields.length - 1; // GloVe: the first row fixes the dimension
      if (dim < 1) throw new ParseError("a row needs a word and at least one number", { file, line: ln + 1 });
      if (fields.length < dim + 1) {
        throw new ParseError(
          `expected a word and ${dim} numbers, found ${fields.length - 1} numbers (wrong dimension)`,
          { file, line: ln + 1 },
        );
      }
      // the last `dim` fields are the numbers; anything before them is the word (GloVe words may hold spaces)
      const nw = fields.length - dim;
      const word = fields.slice(0, nw).join(" ");
      const v = new Float32Array(dim);
      let col = fields.slice(0, nw).join(" ").length + 2;
      for (let j = 0; j < dim; j++) {
        const s = fields[nw + j];
        const x = s === "" ? Number.NaN : Number(s);
        if (!Number.isFinite(x))
          throw new ParseError(`${JSON.stringify(s)} is not a finite number`, { file, line: ln + 1, column: col });
        v[j] = x;
        col += s.length + 1;
      }
      if (word === "") throw new ParseError("empty word", { file, line: ln + 1, column: 1 });
      words.push(word);
      rows.push(v);
    }
    if (count >= 0 && words.length !== Math.min(count, limit)) {
      throw new ParseError(`the header announces ${count} vectors but the file has ${words.length}`, { file, line: 1 });
    }
    if (dim < 1) throw new ParseError("no vectors", { file, line: 1 });
    const data = new Float32Array(words.length * dim);
    for (let i = 0; i < rows.length; i++) data.set(rows[i], i * dim);
    return new WordVectors(words, data, dim, runtime);
  }

  private static parseBinary(b: Uint8Array, file: string, limit: number, runtime?: Runtime): WordVectors {
    const nl = b.indexOf(10);
    if (nl < 0) throw new ParseError("byte 0: no header line", { file, line: 1 });
    const head = utf8.decode(b.subarray(0, nl)).trim().split(/ +/);
    if (head.length !== 2 || !/^\d+$/.test(head[0]) || !/^\d+$/.test(head[1]) || Number(head[1]) < 1) {
      throw new ParseError('byte 0: expected a header line "<count> <dim>"', { file, line: 1 });
    }
    let count = Number(head[0]);
    const dim = Number(head[1]);
    const words: string[] = [];
    const total = count;
    count = Math.min(count, limit); // a prefix of a big file is enough for the first `limit` words
    if (count * dim * 4 > b.length) {
      throw new ParseError(
        `byte 0: ${count === total ? "the header announces" : "the first"} ${count} × ${dim} floats (${count * dim * 4} bytes) but the file has ${b.length} bytes`,
        {
          file,
          line: 1,
        },
      );
    }
    const data = new Float32Array(count * dim);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    let p = nl + 1;
    for (let i = 0; i < count; i++) {
      while (p < b.length && b[p] === 10) p++; // word2vec.c writes "\n" after each vector
      const start = p;
      while (p < b.length && b[p] !== 32) {
        if (p - start > 10_000)
          throw new ParseError(`byte ${start}: word ${i} is longer than 10000 bytes (corrupt file?)`, { file });
        p++;
      }
      if (p >= b.length) throw new ParseError(`byte ${start}: file ends inside word ${i} of ${count}`, { file });
      const word = utf8.decode(b.subarray(start, p));
      if (word === "") throw new ParseError(`byte ${start}: empty word ${i}`, { file });
      p++; // the space
      if (p + 4 * dim > b.length) {
        throw new ParseError(
          `byte ${p}: file ends inside the vector of ${JSON.stringify(word)} (word ${i} of ${count}, ${dim} floats)`,
          { file },
        );
      }
      for (let j = 0; j < dim; j++) {
        const x = dv.getFloat32(p + 4 * j, true);
        if (!Number.isFinite(x))
          throw new ParseError(`byte ${p + 4 * j}: non-finite value in the vector of ${JSON.stringify(word)}`, {
            file,
          });
        data[i * dim + j] = x;
      }
      p += 4 * dim;
      words.push(word);
    }
    while (p < b.length && (b[p] === 10 || b[p] === 13 || b[p] === 32)) p++;
    if (p < b.length && count === total)
      throw new ParseError(`byte ${p}: unexpected data after ${count} vectors`, { file });
    return new WordVectors(words, data, dim, runtime);
  }

  // ---------------------------------------------------------------------------------------------
  // saving

  /** word2vec text format: header `count dim`, then `word v1 … vd` per line (shortest exact float32 decimals). */
  toText(): string {
    const bad = this.words.findIndex((w) => /[\n\r]/.test(w) || w !== w.trim());
    if (bad >= 0)
      throw new InputError(
        `word ${bad} (${JSON.stringify(this.words[bad])}) holds a line break or edge space: the text format cannot store it`,
      );
    const parts: string[] = [`${this.size} ${this.dim}\n`];
    for (let i = 0; i < this.size; i++) {
      let line = this.words[i];
      for (let j = 0; j < this.dim; j++) line += ` ${formatF32(this.vectors[i * this.dim + j])}`;
      parts.push(`${line}\n`);
    }
    return parts.join("");
  }

  /** word2vec binary format (word2vec.c `-binary 1`): header line, then `word ` + dim little-endian f32 + `\n`. */
  toBinary(): Uint8Array {
    const bad = this.words.findIndex((w) => /[ \n]/.test(w));
    if (bad >= 0)
      throw new InputError(
        `word ${bad} (${JSON.stringify(this.words[bad])}) holds a space or newline: word2vec binary cannot store it`,
      );
    const header = enc.encode(`${this.size} ${this.dim}\n`);
    const wb = this.words.map((w) => enc.encode(w));
    const total = header.length + wb.reduce((n, w) => n + w.length + 2 + 4 * this.dim, 0);
    const out = new Uint8Array(total);
    const dv = new DataView(out.buffer);
    out.set(header, 0);
    let p = header.length;
    wb.forEach((w, i) => {
      out.set(w, p);
      p += w.length;
      out[p++] = 32;
      for (let j = 0; j < this.dim; j++, p += 4) dv.setFloat32(p, this.vectors[i * this.dim + j], true);
      out[p++] = 10;
    });
    return out;
  }
}

/**
 * word2vec binary or text? After the header line, text data has only digits, signs, dots, `e`,
 * spaces and newlines in the number part of the first row; binary floats almost never do.
 */
function looksBinary(b: Uint8Array): boolean {
  const nl = b.indexOf(10);
  if (nl < 0 || nl > 100) return false;
  const head = utf8.decode(b.subarray(0, nl)).trim().split(/ +/);
  if (head.length !== 2 || !/^\d+$/.test(head[0]) || !/^\d+$/.test(head[1])) return false;
  const sp = b.indexOf(32, nl + 1);
  if (sp < 0) return false;
  const end = Math.min(b.length, sp + 1 + 4 * Math.min(Number(head[1]), 64));
  for (let i = sp + 1; i < end; i++) {
    const c = b[i];
    const texty =
      (c >= 48 && c <= 57) ||
      c === 45 ||
      c === 43 ||
      c === 46 ||
      c === 101 ||
      c === 69 ||
      c === 32 ||
      c === 10 ||
      c === 13;
    if (!texty) return true;
  }
  return false;
}
