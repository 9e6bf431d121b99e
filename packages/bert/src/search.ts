/**
 * Similarity and semantic search over embeddings (sentence-transformers' `util.cos_sim` and
 * `util.semantic_search`):
 *
 *   cos(a, b) = a·b / (max(‖a‖, 1e-12) · max(‖b‖, 1e-12))
 *   search:   scores[q, i] = query_q · corpus_i   (unit rows for "cosine"; one GEMM per block of queries)
 *             hits[q] = the topK largest scores, best first (core's SIMD `topk`; ties: lower index first)
 */
import {
  Act,
  DisposedError,
  formatShape,
  InputError,
  matmul,
  type Runtime,
  releaseRuntime,
  ShapeError,
  Tensor,
} from "@wasmformer/core";
import { nnRuntime } from "@wasmformer/nn";

/** Rows scaled to unit length (`v / max(‖v‖₂, 1e-12)`), a new array. */
function unitRows(x: Float32Array, rows: number, d: number): Float32Array {
  const y = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[r * d + j]! * x[r * d + j]!;
    const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
    for (let j = 0; j < d; j++) y[r * d + j] = x[r * d + j]! * inv;
  }
  return y;
}

/** A `[rows, d]` f32 matrix from a tensor (rank 2, or rank 1 = one row) or one vector. */
function matrix(
  x: Tensor | Float32Array | readonly number[],
  what: string,
): { data: Float32Array; rows: number; d: number } {
  if (x instanceof Tensor) {
    if (x.dtype !== "f32" || x.ndim < 1 || x.ndim > 2)
      throw new ShapeError(
        `${what} must be an f32 [rows, dim] tensor or a vector, got ${x.dtype} ${formatShape(x.shape)}`,
      );
    const d = x.shape[x.ndim - 1]!;
    return { data: x.data as Float32Array, rows: x.ndim === 2 ? x.shape[0]! : 1, d };
  }
  if (!(x instanceof Float32Array) && !Array.isArray(x)) throw new InputError(`${what} must be a tensor or a vector`);
  return { data: x instanceof Float32Array ? x : Float32Array.from(x), rows: 1, d: x.length };
}

/**
 * Cosine similarity: of two vectors (a number), or of every row of `a [N, D]` with every row of
 * `b [M, D]` (`[N, M]`, one GEMM).
 */
export function cosineSimilarity(a: Float32Array | readonly number[], b: Float32Array | readonly number[]): number;
export function cosineSimilarity(a: Tensor, b: Tensor): Tensor<"f32">;
export function cosineSimilarity(
  a: Tensor | Float32Array | readonly number[],
  b: Tensor | Float32Array | readonly number[],
): number | Tensor<"f32"> {
  const A = matrix(a, "a");
  const B = matrix(b, "b");
  if (A.d !== B.d) throw new ShapeError(`cosineSimilarity: a has width ${A.d}, b has ${B.d}`);
  const ua = unitRows(A.data, A.rows, A.d);
  const ub = unitRows(B.data, B.rows, B.d);
  if (!(a instanceof Tensor) && !(b instanceof Tensor)) {
    let s = 0;
    for (let j = 0; j < A.d; j++) s += ua[j]! * ub[j]!;
    return s;
  }
  return matmul(new Tensor(ua, [A.rows, A.d]), new Tensor(ub, [B.rows, B.d]), { transB: true });
}

export interface SearchHit {
  /** row of the corpus */
  corpusId: number;
  score: number;
}

export interface EmbeddingIndexOptions {
  /** `"cosine"` (default: rows are stored at unit length) or `"dot"` (raw dot products) */
  score?: "cosine" | "dot";
  /** runtime for the corpus and the search (default: a new one, released by `dispose()`) */
  runtime?: Runtime;
}

/** Score matrices are computed for this many (query, corpus) pairs at a time at most. */
const BLOCK_SCORES = 1 << 22;

/**
 * An embedded corpus held in the kernel heap, searched by GEMM (scores) and `topk` (selection).
 * @example
 * ```ts
 * const index = new EmbeddingIndex(embedder.embed(corpus));
 * const [hits] = index.search(embedder.embed(["a query"]), 3); // [{ corpusId, score }, …], best first
 * ```
 */
export class EmbeddingIndex {
  readonly size: number;
  readonly dimension: number;
  readonly score: "cosine" | "dot";
  private readonly rt: Runtime;
  private readonly ownsRuntime: boolean;
  private readonly corpus: number;
  private disposed = false;

  /** @param corpus `[N, D]` embeddings (copied into the heap; unit rows for "cosine") */
  constructor(corpus: Tensor, opts: EmbeddingIndexOptions = {}) {
    if (!(corpus instanceof Tensor) || corpus.dtype !== "f32" || corpus.ndim !== 2)
      throw new ShapeError(
        `corpus must be an f32 [N, D] tensor, got ${corpus instanceof Tensor ? `${corpus.dtype} ${formatShape(corpus.shape)}` : typeof corpus}`,
      );
    const score = opts.score ?? "cosine";
    if (score !== "cosine" && score !== "dot")
      throw new InputError(`score must be "cosine" or "dot", got ${JSON.stringify(score)}`);
    const [N, D] = corpus.shape as [number, number];
    this.size = N;
    this.dimension = D;
    this.score = score;
    this.rt = nnRuntime(opts.runtime);
    this.ownsRuntime = !opts.runtime;
    const data = corpus.data as Float32Array;
    this.corpus = this.rt.heap.put(score === "cosine" ? unitRows(data, N, D) : data);
  }

  /**
   * The `topK` best corpus rows for each query (`[Q, D]`, or one vector), best first; fewer when
   * the corpus is smaller.
   * @throws ShapeError for queries of another width, InputError for a bad `topK`
   */
  search(queries: Tensor | Float32Array | readonly number[], topK = 10): SearchHit[][] {
    if (this.disposed) throw new DisposedError("EmbeddingIndex");
    if (!Number.isInteger(topK) || topK < 1) throw new InputError(`topK must be a positive integer, got ${topK}`);
    const q = matrix(queries, "queries");
    const { size: N, dimension: D, rt } = this;
    if (q.d !== D) throw new ShapeError(`queries have width ${q.d}, the corpus has ${D}`);
    const k = Math.min(topK, N);
    if (k === 0) return Array.from({ length: q.rows }, () => []);
    const data = this.score === "cosine" ? unitRows(q.data, q.rows, D) : q.data;
    const hits: SearchHit[][] = [];
    const block = Math.max(1, Math.floor(BLOCK_SCORES / N));
    const heap = rt.heap;
    for (let s = 0; s < q.rows; s += block) {
      const rows = Math.min(block, q.rows - s);
      const m = heap.mark();
      try {
        const qp = heap.put(data.subarray(s * D, (s + rows) * D));
        const scores = heap.allocF32(rows * N);
        const idx = heap.allocF32(k);
        const val = heap.allocF32(k);
        rt.k.gemm(rows, N, D, qp, D, 0, this.corpus, D, 1, scores, N, 0, 1, 0, Act.none);
        for (let r = 0; r < rows; r++) {
          rt.k.topk(scores + r * N * 4, N, k, idx, val);
          const ids = heap.i32(idx, k);
          const vs = heap.f32(val, k);
          const row: SearchHit[] = [];
          for (let j = 0; j < k && ids[j]! >= 0; j++) row.push({ corpusId: ids[j]!, score: vs[j]! });
          hits.push(row);
        }
      } finally {
        heap.release(m);
      }
    }
    return hits;
  }

  /** Release the heap (when the index created its runtime). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ownsRuntime) releaseRuntime(this.rt);
  }
}

/** `util.semantic_search`: the `topK` best corpus rows per query, through a temporary `EmbeddingIndex`. */
export function semanticSearch(
  queries: Tensor | Float32Array | readonly number[],
  corpus: Tensor,
  opts: { topK?: number; score?: "cosine" | "dot" } = {},
): SearchHit[][] {
  const index = new EmbeddingIndex(corpus, { score: opts.score });
  try {
    return index.search(queries, opts.topK ?? 10);
  } finally {
    index.dispose();
  }
}
