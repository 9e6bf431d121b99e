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
import {
  createRuntime,
  DisposedError,
  InputError,
  ParseError,
  type Runtime,
  releaseRuntime,
  ShapeError,
} from "@wasmformer/core";

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
  /**
   * A word listed twice: `"error"` (default) throws `ParseError` naming the word and both places;
   * `"first"` keeps its first vector and skips the later rows, as gensim's `load_word2vec_format`
   * does (it only logs a warning). `limit` counts the rows read, skipped ones included.
   */
  duplicates?: "error" | "first";
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
  /** The runtime was made here (not passed in): `dispose()` releases it. */
  private readonly ownsRuntime: boolean;
  private disposed = false;
  private readonly unitPtr: number; // [size, dim] unit rows in the runtime heap
  private readonly scratch: number; // query (dim) + scores (size) + topk idx/val (2·kMax)
  private readonly kMax = 1024;

  /**
   * @param words one per row (a repeated word keeps its first row for lookups)
   * @param vectors `[words.length, dim]`
   * @param runtime kernel runtime for the search (default: a new one, released by `dispose()`)
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
    this.ownsRuntime = runtime === undefined;
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

  /**
   * Free the search memory at once: the runtime this object made is released for the next
   * `createRuntime()` (one passed in by the caller is only let go). Later calls throw
   * `DisposedError`; `words`, `dim` and `vectors` stay readable. Calling it twice does nothing.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.index.clear();
    if (this.ownsRuntime) releaseRuntime(this.rt);
  }

  private live(): void {
    if (this.disposed) throw new DisposedError("WordVectors");
  }

  /** The backend the search runs on. */
  get backend(): Runtime["backend"] {
    this.live();
    return this.rt.backend;
  }

  has(word: string): boolean {
    this.live();
    return this.index.has(word);
  }

  /** Row index of a word, or undefined. */
  indexOf(word: string): number | undefined {
    this.live();
    return this.index.get(word);
  }

  /** A copy of the word's vector, or undefined for an unknown word. */
  get(word: string): Float32Array | undefined {
    this.live();
    const i = this.index.get(word);
    return i === undefined ? undefined : this.vectors.slice(i * this.dim, (i + 1) * this.dim);
  }

  /** Cosine similarity of two words; null when either is unknown. */
  similarity(a: string, b: string): number | null {
    this.live();
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
    this.live();
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
    this.live();
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
    const dup = duplicatesOption(opts);
    if (typeof data === "string") {
      if (format === "word2vec-binary")
        throw new InputError("word2vec binary data must be given as bytes, not a string");
      return WordVectors.parseText(data, format, file, limit, dup, opts.runtime);
    }
    if (format === "word2vec-binary" || (format === "auto" && looksBinary(data)))
      return WordVectors.parseBinary(data, file, limit, dup, opts.runtime);
    let text: string;
    try {
      text = utf8Fatal.decode(data);
    } catch {
      throw new ParseError("not valid UTF-8 text (and not word2vec binary)", { file });
    }
    return WordVectors.parseText(text, format, file, limit, dup, opts.runtime);
  }

  private static parseText(
    text: string,
    format: VectorFormat,
    file: string,
    limit: number,
    dup: "error" | "first",
    runtime?: Runtime,
  ): WordVectors {
    const rows = new TextRows(format, file, limit, dup);
    let start = 0;
    for (;;) {
      const nl = text.indexOf("\n", start);
      if (!rows.line(text.slice(start, nl < 0 ? text.length : nl))) break;
      if (nl < 0) break;
      start = nl + 1;
    }
    return rows.finish(runtime);
  }

  private static parseBinary(
    b: Uint8Array,
    file: string,
    limit: number,
    dup: "error" | "first",
    runtime?: Runtime,
  ): WordVectors {
    // the whole file is here: check the announced size first
    const nl = b.indexOf(10);
    const head = nl < 0 ? [] : utf8.decode(b.subarray(0, nl)).trim().split(/ +/);
    if (head.length === 2 && /^\d+$/.test(head[0]) && /^\d+$/.test(head[1])) {
      const count = Math.min(Number(head[0]), limit);
      const dim = Number(head[1]);
      if (count * dim * 4 > b.length) {
        const what = count === Number(head[0]) ? "the header announces" : "the first";
        throw new ParseError(
          `byte 0: ${what} ${count} × ${dim} floats (${count * dim * 4} bytes) but the file has ${b.length} bytes`,
          {
            file,
            line: 1,
          },
        );
      }
    }
    const rows = new BinaryRows(file, limit, dup);
    rows.push(b);
    return rows.finish(runtime);
  }

  /**
   * Load from a stream of bytes (a Node `fs.createReadStream`, a `fetch` body, any async iterable of
   * chunks), without holding the whole file as one string: GloVe text files larger than a JS string
   * can hold load this way. With `limit`, reading stops after the first `limit` vectors.
   */
  static async loadAsync(
    source: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>,
    opts: LoadOptions = {},
  ): Promise<WordVectors> {
    const format = opts.format ?? "auto";
    const file = opts.file ?? (format === "auto" ? "vectors" : format);
    const limit = opts.limit ?? Number.POSITIVE_INFINITY;
    if (!(limit >= 0) || (Number.isFinite(limit) && !Number.isInteger(limit))) {
      throw new InputError(`limit must be a non-negative integer, got ${opts.limit}`);
    }
    const dup = duplicatesOption(opts);
    let parser: BinaryRows | TextRows | undefined;
    let head: Uint8Array[] = [];
    let headBytes = 0;
    const dec = new TextDecoder("utf-8", { fatal: true });
    let tail = "";
    let textDone = false;
    const feedText = (bytes: Uint8Array, last: boolean) => {
      let t: string;
      try {
        t = tail + dec.decode(bytes, { stream: !last });
      } catch {
        throw new ParseError("not valid UTF-8 text (and not word2vec binary)", { file });
      }
      let start = 0;
      for (let nl = t.indexOf("\n"); nl >= 0 && !textDone; nl = t.indexOf("\n", start)) {
        textDone = !(parser as TextRows).line(t.slice(start, nl));
        start = nl + 1;
      }
      tail = t.slice(start);
      if (last && !textDone && tail !== "") (parser as TextRows).line(tail);
    };
    const choose = () => {
      const first = concatBytes(head);
      head = [];
      const binary = format === "word2vec-binary" || (format === "auto" && looksBinary(first));
      parser = binary ? new BinaryRows(file, limit, dup) : new TextRows(format, file, limit, dup);
      if (parser instanceof BinaryRows) parser.push(first);
      else feedText(first, false);
    };
    for await (const chunk of iterate(source)) {
      if (!parser) {
        head.push(chunk);
        headBytes += chunk.length;
        if (format === "auto" && headBytes < 4096) continue; // enough to tell binary from text
        choose();
        continue;
      }
      if (parser instanceof BinaryRows) {
        if (!parser.push(chunk)) break;
      } else {
        feedText(chunk, false);
        if (textDone) break;
      }
    }
    if (!parser) choose();
    if (parser instanceof TextRows && !textDone) feedText(new Uint8Array(0), true);
    return (parser as BinaryRows | TextRows).finish(opts.runtime);
  }

  // ---------------------------------------------------------------------------------------------
  // saving

  /** word2vec text format: header `count dim`, then `word v1 … vd` per line (shortest exact float32 decimals). */
  toText(): string {
    this.live();
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
    this.live();
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

function duplicatesOption(opts: LoadOptions): "error" | "first" {
  const d = opts.duplicates ?? "error";
  if (d !== "error" && d !== "first")
    throw new InputError(`duplicates must be "error" or "first", got ${JSON.stringify(opts.duplicates)}`);
  return d;
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
    if (c === 10) return false; // the first row ended as a line of numbers: text
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

function concatBytes(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

async function* iterate(source: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (typeof (source as ReadableStream<Uint8Array>).getReader === "function") {
    const reader = (source as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  }
  for await (const c of source as AsyncIterable<Uint8Array>) yield c instanceof Uint8Array ? c : new Uint8Array(c);
}

/** Incremental reader of the text formats (word2vec text / fastText .vec with a header, GloVe without). */
class TextRows {
  private readonly words: string[] = [];
  private readonly rows: Float32Array[] = [];
  private dim = -1;
  private count = -1;
  private lineNo = 0;
  private blankAt = 0;
  /** Rows read (skipped duplicates included). */
  private read = 0;
  /** Word → line of its first row. */
  private readonly seen = new Map<string, number>();
  constructor(
    private readonly format: VectorFormat,
    private readonly file: string,
    private readonly limit: number,
    private readonly dup: "error" | "first",
  ) {}

  /** Feed one line (without its "\n"); false once `limit` vectors are read. */
  line(raw: string): boolean {
    const { file } = this;
    const ln = ++this.lineNo;
    let line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (ln === 1) {
      const head = line.trim().split(/ +/);
      const isHeader = head.length === 2 && /^\d+$/.test(head[0]) && /^\d+$/.test(head[1]);
      const f = this.format;
      if (f === "word2vec-text" || f === "fasttext-vec" || (f === "auto" && isHeader)) {
        if (!isHeader) throw new ParseError('expected a header line "<count> <dim>"', { file, line: 1, column: 1 });
        this.count = Number(head[0]);
        this.dim = Number(head[1]);
        if (this.dim < 1)
          throw new ParseError(`dimension ${this.dim} in the header must be positive`, { file, line: 1 });
        return this.read < this.limit;
      }
    }
    line = line.replace(/ +$/, ""); // word2vec.c writes a space after the last number
    if (line.trim() === "") {
      if (!this.blankAt) this.blankAt = ln; // fine at the end of the file, an error before a row
      return true;
    }
    if (this.blankAt) throw new ParseError("empty line", { file, line: this.blankAt });
    const fields = line.split(" ");
    if (this.dim < 0) this.dim = fields.length - 1; // GloVe: the first row fixes the dimension
    const dim = this.dim;
    if (dim < 1) throw new ParseError("a row needs a word and at least one number", { file, line: ln });
    if (fields.length < dim + 1) {
      throw new ParseError(`expected a word and ${dim} numbers, found ${fields.length - 1} numbers (wrong dimension)`, {
        file,
        line: ln,
      });
    }
    // the last `dim` fields are the numbers; anything before them is the word (GloVe words may hold spaces)
    const nw = fields.length - dim;
    const word = fields.slice(0, nw).join(" ");
    if (word === "") throw new ParseError("empty word", { file, line: ln, column: 1 });
    const v = new Float32Array(dim);
    let col = word.length + 2;
    for (let j = 0; j < dim; j++) {
      const t = fields[nw + j];
      const x = t === "" ? Number.NaN : Number(t);
      if (!Number.isFinite(x))
        throw new ParseError(`${JSON.stringify(t)} is not a finite number`, { file, line: ln, column: col });
      v[j] = x;
      col += t.length + 1;
    }
    this.read++;
    const first = this.seen.get(word);
    if (first === undefined) {
      this.seen.set(word, ln);
      this.words.push(word);
      this.rows.push(v);
    } else if (this.dup === "error") {
      throw new ParseError(`duplicate word ${JSON.stringify(word)} (first on line ${first})`, {
        file,
        line: ln,
        column: 1,
      });
    }
    return this.read < this.limit;
  }

  finish(runtime?: Runtime): WordVectors {
    const { file, count, dim, words } = this;
    if (count >= 0 && this.read !== Math.min(count, this.limit)) {
      throw new ParseError(`the header announces ${count} vectors but the file has ${this.read}`, { file, line: 1 });
    }
    if (dim < 1) throw new ParseError("no vectors", { file, line: 1 });
    const data = new Float32Array(words.length * dim);
    for (let i = 0; i < this.rows.length; i++) data.set(this.rows[i], i * dim);
    return new WordVectors(words, data, dim, runtime);
  }
}

/** Incremental reader of word2vec binary: header line, then `word ` + dim little-endian f32 (+ "\n"). */
class BinaryRows {
  private buf: Uint8Array = new Uint8Array(0);
  private consumed = 0; // bytes of the file before buf[0]
  private count = -1;
  private total = -1;
  private dim = 0;
  private readonly words: string[] = [];
  private data = new Float32Array(0);
  /** Records read (skipped duplicates included). */
  private read = 0;
  /** Word → record number and byte offset of its first record. */
  private readonly seen = new Map<string, [number, number]>();
  constructor(
    private readonly file: string,
    private readonly limit: number,
    private readonly dup: "error" | "first",
  ) {}

  /** Feed bytes; false once `limit` vectors are read. */
  push(chunk: Uint8Array): boolean {
    const { file } = this;
    this.buf = this.buf.length === 0 ? chunk : concatBytes([this.buf, chunk]);
    let b = this.buf;
    let p = 0;
    if (this.count < 0) {
      const nl = b.indexOf(10);
      if (nl < 0) {
        if (b.length > 1000) throw new ParseError("byte 0: no header line", { file, line: 1 });
        return true;
      }
      const head = utf8.decode(b.subarray(0, nl)).trim().split(/ +/);
      if (head.length !== 2 || !/^\d+$/.test(head[0]) || !/^\d+$/.test(head[1]) || Number(head[1]) < 1) {
        throw new ParseError('byte 0: expected a header line "<count> <dim>"', { file, line: 1 });
      }
      this.total = Number(head[0]);
      this.dim = Number(head[1]);
      this.count = Math.min(this.total, this.limit);
      // grown as rows arrive: a header that lies about the size cannot allocate memory up front
      this.data = new Float32Array(Math.min(this.count, 1024) * this.dim);
      p = nl + 1;
    }
    const dim = this.dim;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    while (this.read < this.count) {
      let q = p;
      while (q < b.length && b[q] === 10) q++; // word2vec.c writes "\n" after each vector
      const start = q;
      while (q < b.length && b[q] !== 32) {
        if (q - start > 10_000) {
          throw new ParseError(
            `byte ${this.consumed + start}: word ${this.read} is longer than 10000 bytes (corrupt file?)`,
            { file },
          );
        }
        q++;
      }
      if (q + 1 + 4 * dim > b.length) break; // incomplete record: wait for more bytes
      const word = utf8.decode(b.subarray(start, q));
      if (word === "") throw new ParseError(`byte ${this.consumed + start}: empty word ${this.read}`, { file });
      q++;
      const first = this.seen.get(word);
      if (first !== undefined) {
        if (this.dup === "error") {
          throw new ParseError(
            `byte ${this.consumed + start}: duplicate word ${JSON.stringify(word)} (vector ${this.read}; first as vector ${first[0]} at byte ${first[1]})`,
            { file },
          );
        }
        this.read++;
        p = q + 4 * dim; // keep the first vector, as gensim does
        continue;
      }
      this.seen.set(word, [this.read, this.consumed + start]);
      const row = this.words.length * dim;
      if (row + dim > this.data.length) {
        const grown = new Float32Array(Math.min(this.count * dim, Math.max(row + dim, 2 * this.data.length)));
        grown.set(this.data);
        this.data = grown;
      }
      for (let j = 0; j < dim; j++) {
        const x = dv.getFloat32(q + 4 * j, true);
        if (!Number.isFinite(x)) {
          throw new ParseError(
            `byte ${this.consumed + q + 4 * j}: non-finite value in the vector of ${JSON.stringify(word)}`,
            { file },
          );
        }
        this.data[row + j] = x;
      }
      this.words.push(word);
      this.read++;
      p = q + 4 * dim;
    }
    this.consumed += p;
    b = b.subarray(p);
    this.buf = b.length ? b.slice() : new Uint8Array(0);
    return this.read < this.count;
  }

  finish(runtime?: Runtime): WordVectors {
    const { file } = this;
    if (this.count < 0) throw new ParseError("byte 0: no header line", { file, line: 1 });
    if (this.read < this.count) {
      // say where the file ended: inside a word, or inside the vector of a word
      const b = this.buf;
      let q = 0;
      while (q < b.length && b[q] === 10) q++;
      const sp = b.indexOf(32, q);
      const i = this.read;
      if (sp < 0)
        throw new ParseError(`byte ${this.consumed + q}: file ends inside word ${i} of ${this.count}`, { file });
      const word = utf8.decode(b.subarray(q, sp));
      throw new ParseError(
        `byte ${this.consumed + sp + 1}: file ends inside the vector of ${JSON.stringify(word)} (word ${i} of ${this.count}, ${this.dim} floats)`,
        { file },
      );
    }
    if (this.count === this.total) {
      let p = 0;
      const b = this.buf;
      while (p < b.length && (b[p] === 10 || b[p] === 13 || b[p] === 32)) p++;
      if (p < b.length)
        throw new ParseError(`byte ${this.consumed + p}: unexpected data after ${this.count} vectors`, { file });
    }
    return new WordVectors(this.words, this.data.subarray(0, this.words.length * this.dim), this.dim, runtime);
  }
}
