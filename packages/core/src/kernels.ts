/**
 * The kernel ABI: every compute kernel, as one interface implemented twice — by the AssemblyScript
 * SIMD module (`backend/wasm.ts`, the exports themselves) and by readable TypeScript
 * (`backend/ref.ts`, the oracle in tests and the fallback where wasm SIMD is missing).
 *
 * Conventions (ggml-style layout contracts):
 * - Pointers are byte offsets into the runtime's `Heap`; `0` means "absent" for optional operands.
 * - Matrices are row-major f32 with a leading dimension `ld` (floats between rows), so a kernel can
 *   work on a column block of a wider matrix (a head's slice of a projection, say).
 * - Kernels never allocate. Scratch is passed in by the caller, planned once per model.
 * - Kernels write to their output pointer; the output may alias the input where noted ("in place").
 * - Integer flags are i32: 0/1 for booleans.
 */

/** Fused activation codes for `gemm` and `unary`. */
export const Act = {
  none: 0,
  relu: 1,
  /** exact GELU: 0.5·x·(1 + erf(x/√2)) */
  gelu: 2,
  /** tanh-approximation GELU (`gelu_new`) */
  geluTanh: 3,
  silu: 4,
  tanh: 5,
  sigmoid: 6,
  exp: 7,
  neg: 8,
  sqrt: 9,
  abs: 10,
  log: 11,
} as const;
export type ActCode = (typeof Act)[keyof typeof Act];

/** Elementwise binary op codes for `binary`. */
export const BinOp = { add: 0, sub: 1, mul: 2, div: 3, max: 4, min: 5 } as const;
export type BinOpCode = (typeof BinOp)[keyof typeof BinOp];

/** Reduction op codes for `reduce`. */
export const RedOp = { sum: 0, mean: 1, max: 2, min: 3 } as const;
export type RedOpCode = (typeof RedOp)[keyof typeof RedOp];

/** The arguments of one `Kernels.attention` call. */
export type AttentionArgs = Parameters<Kernels["attention"]>;

/** The arguments of one `Kernels.attentionBackward` call. */
export type AttentionBackwardArgs = Parameters<Kernels["attentionBackward"]>;

export interface Kernels extends BackwardKernels, OptimKernels {
  /** ABI version; the JS side refuses a module whose version differs. */
  abiVersion(): number;

  /**
   * General matrix multiply: `C = act(alpha · op(A)·op(B) + bias + beta · C)`.
   * - op(A) is M×K: `transA = 0` reads `A[i,p] = a[i·lda + p]`, `transA = 1` reads `a[p·lda + i]`.
   * - op(B) is K×N: `transB = 0` reads `B[p,j] = b[p·ldb + j]`, `transB = 1` reads `b[j·ldb + p]`
   *   (a `torch.nn.Linear` weight `[out, in]` is B with `transB = 1`).
   * - `bias` (N floats, added to every row) may be 0; `beta` is 0 (overwrite C) or 1 (accumulate).
   * - `act` is an `Act` code applied last.
   * C must not alias A or B.
   */
  gemm(
    M: number,
    N: number,
    K: number,
    a: number,
    lda: number,
    transA: number,
    b: number,
    ldb: number,
    transB: number,
    c: number,
    ldc: number,
    bias: number,
    alpha: number,
    beta: number,
    act: number,
  ): void;

  /**
   * Floats that `packB` writes for a K×N operand: `⌈N/8⌉·8·K` (0 when K or N ≤ 0).
   */
  packedSize(K: number, N: number): number;

  /**
   * Pack op(B) (K×N, read as in `gemm`: `transB = 0` → `B[p,j] = b[p·ldb + j]`, `transB = 1` →
   * `b[j·ldb + p]`, e.g. a Linear weight `[out, in]`) once, for any number of `gemmPacked` calls.
   * Layout (the same in every backend and build, so a packed weight can be saved or shared): K is
   * cut into blocks of 512 rows (the last has kb = K − pc ≤ 512 rows); block pc (its first row)
   * holds, for each 8-column panel q = ⌊j/8⌋, its kb×8 slice contiguously:
   *   `dst[pc·N8 + q·kb·8 + (p − pc)·8 + (j mod 8)] = op(B)[p, j]`,  N8 = ⌈N/8⌉·8,
   * and columns j ≥ N of the last panel are 0 (`packedIndex` in packed.ts). `dst` holds
   * `packedSize(K, N)` floats (16-byte aligned for speed) and must not overlap b.
   */
  packB(K: number, N: number, b: number, ldb: number, transB: number, dst: number): void;

  /**
   * `gemm` with B pre-packed by `packB(K, N, …)`: `C = act(alpha · op(A)·B + bias + beta · C)`,
   * op(A), bias, alpha, beta and act exactly as in `gemm`. No B packing per call; M = 1..4 stream
   * the packed weight once for all rows (decoding). C must not alias A or the packed B.
   */
  gemmPacked(
    M: number,
    N: number,
    K: number,
    a: number,
    lda: number,
    transA: number,
    packedB: number,
    c: number,
    ldc: number,
    bias: number,
    alpha: number,
    beta: number,
    act: number,
  ): void;

  /**
   * Floats that `packRows` writes for an `[N, K]` weight: `⌈N/24⌉·24·⌈K/4⌉·4` (0 when N or K ≤ 0).
   */
  packedRowsSize(N: number, K: number): number;

  /**
   * Pack a row-major weight `W [N, K]` (row stride `ldb` floats; a Linear weight `[out, in]`) for
   * `gemvRows`: groups of 24 rows; in group g, for each 4-column chunk c, the six 4-row slices q in
   * turn, each as 4 vectors (column i of rows 4q..4q+3):
   *   `dst[(g·K4 + 4c)·24 + 16q + 4i + l] = W[24g + 4q + l, 4c + i]`,  K4 = ⌈K/4⌉·4,
   * 0 past K and for the rows past N of the last group (`packedRowsIndex` in src/packed.ts). `dst`
   * (`packedRowsSize(N, K)` floats, 16-byte aligned for speed) must not overlap b.
   */
  packRows(N: number, K: number, b: number, ldb: number, dst: number): void;

  /**
   * One row times a weight packed by `packRows(N, K)`: `y[j] = act(Σ_k x[k]·W[j, k] + bias[j] +
   * beta·y[j])` for j < N (bias: N floats or 0; beta 0 does not read y). The M = 1 product of
   * recurrent steps and decoding: one sequential read of the weight, faster than `gemm`'s M = 1
   * path. Successive calls walk the row groups in alternate directions (a weight re-read step after
   * step then starts on the part still in cache); results do not depend on it. y must not overlap x
   * or the packed weight.
   */
  gemvRows(N: number, K: number, x: number, packed: number, y: number, bias: number, beta: number, act: number): void;

  /**
   * Batched matmul: for t in 0..batch-1, `gemm` on `a + t·strideA`, `b + t·strideB`, `c + t·strideC`
   * (strides in floats; a stride of 0 broadcasts that operand). No bias, no activation.
   */
  bmm(
    batch: number,
    M: number,
    N: number,
    K: number,
    a: number,
    strideA: number,
    lda: number,
    transA: number,
    b: number,
    strideB: number,
    ldb: number,
    transB: number,
    c: number,
    strideC: number,
    ldc: number,
    alpha: number,
    beta: number,
  ): void;

  /**
   * Row softmax, numerically stable: `y[r,:] = softmax(x[r,:] + mask[r,:])` for `rows` rows of
   * `cols` floats with leading dimension `ld` (both x and y). `mask` (additive f32, may hold −∞) is
   * optional (0); its row stride is `maskLd` (0 = the same mask row for every row). A row whose
   * entries are all −∞ comes out all zeros. In place allowed (y = x).
   */
  softmax(x: number, y: number, rows: number, cols: number, ld: number, mask: number, maskLd: number): void;

  /**
   * Log-softmax over rows (same layout as `softmax`, no mask). In place allowed.
   */
  logSoftmax(x: number, y: number, rows: number, cols: number, ld: number): void;

  /**
   * Layer norm over the last axis, two-pass (mean, then centred variance):
   * `y = (x − mean) / sqrt(var + eps) · gamma + beta`, biased variance. `gamma`/`beta` may be 0.
   * In place allowed.
   */
  layerNorm(x: number, y: number, rows: number, d: number, gamma: number, beta: number, eps: number): void;

  /** Elementwise `y[i] = f(x[i])` for an `Act` code, n floats. In place allowed. */
  unary(x: number, y: number, n: number, act: number): void;

  /**
   * Elementwise binary op with row broadcasting: `y[r·cols + j] = op(a[r·cols + j], b[r·bRow + j·bCol])`
   * for r < rows, j < cols. `bRow`/`bCol` are strides in floats: (cols, 1) = same shape,
   * (0, 1) = b is one row repeated, (1, 0) = b is one column repeated, (0, 0) = b is a scalar.
   * In place allowed (y = a).
   */
  binary(a: number, b: number, y: number, rows: number, cols: number, bRow: number, bCol: number, op: number): void;

  /** `y[i] = alpha · x[i] + beta`, n floats. In place allowed. */
  scale(x: number, y: number, n: number, alpha: number, beta: number): void;

  /**
   * Reduction over the middle axis of a `[outer, n, inner]` view: `y[o, i] = red_{k<n} x[o, k, i]`.
   * `op` is a `RedOp` code. y must not alias x.
   */
  reduce(x: number, y: number, outer: number, n: number, inner: number, op: number): void;

  /**
   * Embedding gather: `out[t, :] = table[ids[t], :]` for t < n, rows of `dim` floats, `ids` i32.
   * Returns −1 on success, or the position t of the first id outside `[0, vocab)` (nothing is read
   * out of bounds; rows before t are written).
   */
  gather(table: number, vocab: number, dim: number, ids: number, n: number, out: number): number;

  /** `y[i] = value` for i < n (zeroing gradient and scratch buffers; a threaded runtime splits it). */
  fill(y: number, n: number, value: number): void;

  /**
   * Copy a strided 2-D block: `y[r·ldy + j] = x[r·ldx + j]` for r < rows, j < cols.
   */
  copy2d(x: number, ldx: number, y: number, ldy: number, rows: number, cols: number): void;

  /**
   * 2-D transpose: `y[j·ldy + r] = x[r·ldx + j]` for r < rows, j < cols.
   */
  transpose2d(x: number, ldx: number, y: number, ldy: number, rows: number, cols: number): void;

  /**
   * im2col for a patch convolution (stride = kernel = k, no padding) of one CHW image:
   * `out[(r·gw + c), (ch·k + u)·k + v] = x[ch, r·k + u, c·k + v]` with gh = ⌊H/k⌋, gw = ⌊W/k⌋.
   * `out` is `[gh·gw, C·k·k]`. Rows/columns beyond a whole patch are ignored.
   */
  im2colPatch(x: number, C: number, H: number, W: number, k: number, out: number): void;

  /**
   * Scaled dot-product attention for one (batch, head) slice:
   * `S = scale · Q·Kᵀ (+ mask)`, `P = softmax_rows(S)`, `O = P·V`.
   * - Q `[L, dk]` (ld `ldq`), K `[S, dk]` (ld `ldk`), V `[S, dv]` (ld `ldv`), O `[L, dv]` (ld `ldo`).
   * - `probs` `[L, S]` (contiguous) receives the attention weights; it is required (it is the scratch).
   * - `mask`: additive f32 `[L, S]` with row stride `maskLd` (0 = one row for all queries), or 0.
   * - `kpm`: u8 `[S]`, nonzero = padded key (blocked), or 0.
   * - `causal`: −1 = off; otherwise query i may attend to key j only if j ≤ i + causal (the offset
   *   of the first query in the key sequence, for KV-cached decoding).
   */
  attention(
    q: number,
    ldq: number,
    k: number,
    ldk: number,
    v: number,
    ldv: number,
    o: number,
    ldo: number,
    probs: number,
    L: number,
    S: number,
    dk: number,
    dv: number,
    scale: number,
    mask: number,
    maskLd: number,
    kpm: number,
    causal: number,
  ): void;

  /**
   * `attention` for several slices at once, e.g. every (batch, head) of a layer: `slices[i]` is the
   * argument list of one `attention` call, each with its own `probs` and output. The result is that
   * of the calls one after another (slices must not write where another reads); a threaded runtime
   * spreads the slices, and the query rows of long ones, over its threads.
   */
  attentionHeads(slices: readonly AttentionArgs[]): void;

  /**
   * LSTM cell update for `batch` rows. `gates` `[batch, 4H]` holds the summed pre-activations
   * `W_ih x + b_ih + W_hh h + b_hh` in PyTorch order (i, f, g, o). Updates `c` `[batch, H]` in place
   * and writes `h' = o ⊙ tanh(c')` to `h` (row stride `ldh`, so it may point into an output sequence).
   */
  lstmCell(gates: number, c: number, h: number, ldh: number, H: number, batch: number): void;

  /**
   * GRU cell update. `gx` `[batch, 3H]` = `W_ih x + b_ih`, `gh` `[batch, 3H]` = `W_hh h + b_hh`
   * (order r, z, n); `hPrev` `[batch, H]` (row stride `ldp`). Writes
   * `h' = (1 − z) ⊙ n + z ⊙ hPrev` to `hOut` (row stride `ldo`). hOut may alias hPrev.
   */
  gruCell(
    gx: number,
    gh: number,
    hPrev: number,
    ldp: number,
    hOut: number,
    ldo: number,
    H: number,
    batch: number,
  ): void;

  /**
   * The T steps of one RNN/LSTM/GRU layer direction, for `B` rows: per step the recurrent product
   * with `W_hh` `[G·H, H]` and the cell. `pw`: W_hh's G gate blocks `[H, H]` each packed by
   * `packRows(H, H)`, one after the other (`packRnnWeight`); `bias`: b_hh `[G·H]` or 0.
   * `mode` 0 = RNN (`act` 0 none, 1 relu, 3 tanh, as `Act`), 1 = LSTM, 2 = GRU (G = 1, 4, 3).
   * `xproj` `[T, B, G·H]` (time-major) holds `W_ih x + b_ih`; `gh` `[B, G·H]` is scratch for the
   * product (LSTM, GRU); both are left unspecified. `c` `[B, H]`: the LSTM cell state (in place).
   * `h0` `[B, H]`: the initial state. Step t's hidden state for row b goes to
   * `out + 4·(t·so + b·ldo)`; with `reverse` the steps run t = T − 1 … 0 (the previous state is
   * then step t + 1's). Each step is, element for element, `gemvRows` per gate block and row, then
   * `lstmCell` (on the sum of the two parts)/`gruCell`/copy. `tile`/`tiles`: call with 0 and 1; a threaded build runs `tiles`
   * calls of it at once (see rnn.ts) with `sync`: `64·(1 + tiles)` bytes, 64-byte aligned (i32
   * words 0 and 1 set to 0, word 16·(1 + i) to −1 for each tile i).
   */
  rnnSteps(
    mode: number,
    act: number,
    reverse: number,
    T: number,
    B: number,
    H: number,
    pw: number,
    bias: number,
    xproj: number,
    gh: number,
    c: number,
    h0: number,
    out: number,
    so: number,
    ldo: number,
    sync: number,
    tile: number,
    tiles: number,
  ): void;

  /**
   * Top-k by value: writes the indices (i32) and values of the `k` largest of `n` floats, sorted
   * descending (ties: lower index first). NaN entries are never selected; when fewer than `k`
   * entries are valid, the remaining slots get index −1 and value −∞.
   */
  topk(x: number, n: number, k: number, outIdx: number, outVal: number): void;

  /** Cosine/dot helper: `y[r] = dot(m[r, :], v)` for r < rows (row length d). */
  gemv(m: number, rows: number, d: number, v: number, y: number): void;

  // ---- word2vec (negative sampling; used by @wasmformer/text Word2Vec) ----------------------
  // `syn0` (input vectors) and `syn1` (output vectors) are `[vocab, dim]` f32, row-major. Ids are
  // i32. Examples of a batch are processed in order, exactly as one call per example would be.
  // Every id is checked against `[0, vocab)` first: on a bad id nothing is written and NaN is
  // returned. The step for a hidden vector h and targets t_0 (label 1), t_1..t_{n−1} (label 0) is
  //   f = h·syn1[t];  g = alpha·(label − σ(f));  e += g·syn1[t];  syn1[t] += g·h   (σ exact),
  // and the returned loss is Σ_examples (softplus(−f_0) + Σ_{t≥1} softplus(f_t)), i.e. the
  // negative log-likelihood before the update. (wasm computes in f32, the reference in f64: the
  // last bits may differ.)

  /**
   * Skip-gram (word2vec.c `-cbow 0`): for example x, h = syn0[inWords[x]], targets
   * `targets[x·nTargets .. +nTargets)` (the predicted word first, then the negatives); after the
   * step, `syn0[inWords[x]] += e`. `work`: `dim` floats of scratch. Returns the summed loss.
   */
  w2vSgns(
    syn0: number,
    syn1: number,
    vocab: number,
    dim: number,
    inWords: number,
    targets: number,
    nEx: number,
    nTargets: number,
    alpha: number,
    work: number,
  ): number;

  /**
   * CBOW (word2vec.c `-cbow 1`): for example x, the context words are `ctx[ctxOff[x] .. ctxOff[x+1])`
   * (`ctxOff` has nEx+1 non-decreasing i32 offsets starting at 0; an empty context skips the
   * example); h = their mean (`mean` = 1) or sum (0); targets as in `w2vSgns`; after the step every
   * context row gets `syn0[c] += e`. `work`: `2·dim` floats. Returns the summed loss.
   */
  w2vCbow(
    syn0: number,
    syn1: number,
    vocab: number,
    dim: number,
    ctx: number,
    ctxOff: number,
    targets: number,
    nEx: number,
    nTargets: number,
    alpha: number,
    mean: number,
    work: number,
  ): number;

  // ---- block-quantized weights (ggml Q8_0 / Q4_0 blocks, repacked four rows at a time; quant.ts)

  /**
   * Bytes of a `[N, K]` weight of ggml type `type` in the kernels' repacked layout (`repackQ`):
   * ceil(N/4) row groups, each K/32 block groups `{ f32 d[4]; qs of rows 0..3 }` in order (Q8_0 =
   * type 8: i8 qs[32] a row, 144 bytes; Q4_0 = type 2: u8 qs[16] a row, value (nibble − 8)·d, low
   * nibbles = values 0..15, 80 bytes; rows past N are zero). The qs are ggml's bytes and d its f16
   * scale widened exactly. 0 for other types, N ≤ 0, or K not a positive multiple of 32.
   */
  quantBytes(type: number, N: number, K: number): number;

  /**
   * Bytes of one row of `quantizeRowsQ8` output for K (a multiple of 32) values, a multiple of 16:
   * i16 q[K] at 0, i8 q[K] at 2K, f32 d[K/32] at 3K, i32 Σq[K/32] after them.
   */
  xqRowBytes(K: number): number;

  /**
   * Quantize M rows of x (K floats, row stride ldx floats; K a multiple of 32) per block of 32 for
   * `gemvQ`: d = amax/127 (kept in f32), id = d ? 1/d : 0 (f32), q = roundf(x·id) (halves away
   * from zero), as ggml's `quantize_row_q8_0_ref` except that ggml rounds d to f16.
   */
  quantizeRowsQ8(x: number, ldx: number, M: number, K: number, xq: number): void;

  /**
   * Product on quantized weights and quantized activations (decode, any M): `y[m·ldy + j] =
   * act(Σ_b f32(Σ_i qw·qx)·(dw·dx) + bias[j] + beta·y[m·ldy + j])` for m < M, j < N, with W
   * `[N, K]` of type Q8_0 or Q4_0 in the repacked layout (`quantBytes`; row j = output j) and x
   * quantized by `quantizeRowsQ8` (rows `xqRowBytes(K)` apart). The numeric
   * contract is ggml's `vec_dot_q8_0_q8_0`: the integer block sums are exact, and the f32 sum runs
   * over the blocks in order, `acc = f32(acc + f32(f32(sumi) · f32(dw·dx)))` (no fused
   * multiply-add), then the epilogue `f32(f32(acc + bias) + beta·y)` (beta 0 or 1). Every build and thread count gives these bits (activations other than relu are
   * the `unary` ones). K must be a multiple of 32.
   */
  gemvQ(
    type: number,
    M: number,
    N: number,
    K: number,
    xq: number,
    w: number,
    y: number,
    ldy: number,
    bias: number,
    beta: number,
    act: number,
  ): void;

  /**
   * Prefill product on quantized weights: `C = act(A·Wᵀ + bias + beta·C)`, A M×K (row stride lda),
   * W as in `gemvQ`. Each K-block × 8-column panel of W is dequantized (ggml's `dequantize_row_*`,
   * bit for bit) into the GEMM's panel buffer and multiplied there: the same arithmetic as
   * `gemmPacked` with M ≥ 5 on the dequantized weight packed by `packB(K, N, W, K, 1, …)`, with no
   * f32 copy of W. K must be a multiple of 32; C must not alias A.
   */
  gemmQ(
    type: number,
    M: number,
    N: number,
    K: number,
    a: number,
    lda: number,
    w: number,
    c: number,
    ldc: number,
    bias: number,
    beta: number,
    act: number,
  ): void;

  /**
   * Embedding gather from a quantized table: `dst[r, :] = dequantize(W[ids[r], :])` (K floats a
   * row, contiguous) for r < n; ids (i32) must be valid rows (the caller checks them).
   */
  dequantRowsQ(type: number, K: number, w: number, ids: number, n: number, dst: number): void;

  // ---- Llama-family blocks (RMS norm, rotary position embedding) --------------------------

  /**
   * RMS norm over the last axis (HF `LlamaRMSNorm`): `y = x / sqrt(mean(x²) + eps) · gamma` for
   * `rows` rows of `d` contiguous floats; no mean subtraction, no bias. `gamma` may be 0. In place
   * allowed.
   */
  rmsNorm(x: number, y: number, rows: number, d: number, gamma: number, eps: number): void;

  /**
   * Rotary position embedding in place, "rotate half" pairing (HF Llama `apply_rotary_pos_emb`):
   * row r (`rows` rows, stride `ldx` floats) holds `heads` head vectors of `d` floats side by side
   * from its start and sits at position `pos[r]` (i32); with θ_j = `invFreq[j]` (d/2 floats),
   * features j and j + d/2 of every head are rotated by the angle pos[r]·θ_j:
   *   `x'[j] = x[j]·cos − x[j + d/2]·sin`,  `x'[j + d/2] = x[j + d/2]·cos + x[j]·sin`.
   * d must be even.
   */
  rope(x: number, ldx: number, rows: number, heads: number, d: number, pos: number, invFreq: number): void;
}

/** The kernel ABI version this JS expects (bump on any signature change). */
export const ABI_VERSION = 7;

/**
 * Every forward function of `Kernels` (the backward ones are `BACKWARD_KERNEL_NAMES`): the loader
 * checks that a wasm module exports all of them.
 */
export const KERNEL_NAMES: readonly (keyof Kernels)[] = [
  "abiVersion",
  "gemm",
  "bmm",
  "softmax",
  "logSoftmax",
  "layerNorm",
  "unary",
  "binary",
  "scale",
  "reduce",
  "gather",
  "fill",
  "copy2d",
  "transpose2d",
  "im2colPatch",
  "attention",
  "lstmCell",
  "gruCell",
  "rnnSteps",
  "topk",
  "gemv",
  "w2vSgns",
  "w2vCbow",
  "packedSize",
  "packB",
  "gemmPacked",
  "packedRowsSize",
  "packRows",
  "gemvRows",
  "quantBytes",
  "xqRowBytes",
  "quantizeRowsQ8",
  "gemvQ",
  "gemmQ",
  "dequantRowsQ",
  "rmsNorm",
  "rope",
];

// ---- backward kernels (training) ----------------------------------------------------------------

/**
 * Backward kernels (llm.c `*_backward` style): gradient outputs first, then the upstream gradient,
 * then the tensors saved by the forward, then dims. Every gradient output is accumulated (`+=`,
 * zero it first), so a tensor used twice (a tied embedding, a residual stream) gets the sum of both
 * uses; the exceptions (per-step scratch, in/out state) say so. A gradient pointer of 0 skips that
 * gradient where noted. Matrix products (Linear: dx += dy·W, dW += dyᵀ·x) are `gemm` with
 * `transA`/`transB` and `beta = 1`; bias gradients are `biasGrad`.
 */
export interface BackwardKernels {
  /**
   * `dx[i] += dy[i]·f′(·)` for an `Act` code over n floats. `src` is the forward input x for relu,
   * gelu, geluTanh, silu, abs, log and the forward output y for tanh, sigmoid, exp, sqrt (unused for
   * none, neg). relu′(0) = 0 and abs′(0) = 0, as PyTorch. dx may alias dy (not src).
   * The backward of an RNN step (`h = tanh/relu(pre)`) is this with the step's output h as src.
   */
  unaryBackward(dx: number, dy: number, src: number, n: number, act: number): void;

  /** Bias gradient: `db[j] += Σ_r dy[r·ld + j]` for r < rows, j < cols. */
  biasGrad(db: number, dy: number, rows: number, cols: number, ld: number): void;

  /**
   * Embedding backward (scatter-add): `dW[ids[t], :] += dy[t, :]` for t < n (rows of `dim`
   * floats, ids i32); repeated ids accumulate; ids equal to `paddingIdx` are skipped (−1: none).
   * Returns −1, or the position of the first id outside `[0, vocab)` (then nothing is written).
   */
  embeddingBackward(
    dW: number,
    vocab: number,
    dim: number,
    ids: number,
    n: number,
    dy: number,
    paddingIdx: number,
  ): number;

  /**
   * col2im of `im2colPatch` (stride = kernel = k): `dx[ch, r·k + u, c·k + v] += dcols[(r·gw + c),
   * (ch·k + u)·k + v]`; dx is one CHW image, dcols `[gh·gw, C·k·k]`; pixels past the last whole
   * patch get nothing.
   */
  im2colPatchBackward(dx: number, dcols: number, C: number, H: number, W: number, k: number): void;

  /**
   * Row statistics a training forward saves for the norm backward, rows of d contiguous floats:
   * with `mean` (`[rows]`) the layer-norm mean and `rstd = 1/√(var + eps)` (biased variance,
   * two-pass as `layerNorm`); with `mean` = 0 the RMS-norm `rstd = 1/√(mean(x²) + eps)`.
   */
  normStats(x: number, rows: number, d: number, eps: number, mean: number, rstd: number): void;

  /**
   * Layer norm backward over rows of d contiguous floats. With x̂ = (x − mean)·rstd, g = dy ⊙ gamma:
   * `dx += rstd·(g − mean(g) − x̂·mean(g ⊙ x̂))`, `dgamma += Σ_rows dy ⊙ x̂`, `dbeta += Σ_rows dy`.
   * `mean`/`rstd` (`[rows]`, rstd = 1/√(var + eps)) are the forward's, or 0 to recompute them from
   * x with `eps` (as `layerNorm`). gamma 0 means ones; dx, dgamma, dbeta may each be 0 (skipped).
   * dx must not alias x.
   */
  layerNormBackward(
    dx: number,
    dgamma: number,
    dbeta: number,
    dy: number,
    x: number,
    gamma: number,
    mean: number,
    rstd: number,
    rows: number,
    d: number,
    eps: number,
  ): void;

  /**
   * RMS norm backward (y = x·rstd ⊙ gamma, rstd = 1/√(mean(x²) + eps)), rows of d floats:
   * `dx += rstd·g − x·rstd³·mean(g ⊙ x)` with g = dy ⊙ gamma, `dgamma += Σ_rows dy ⊙ x·rstd`.
   * `rstd` `[rows]` from the forward, or 0 to recompute. gamma 0 means ones; dx, dgamma may be 0.
   */
  rmsNormBackward(
    dx: number,
    dgamma: number,
    dy: number,
    x: number,
    gamma: number,
    rstd: number,
    rows: number,
    d: number,
    eps: number,
  ): void;

  /**
   * Softmax backward from the forward output y: `dx += y ⊙ (dy − Σ_j dy ⊙ y)` per row (rows of
   * `cols` floats, leading dimension `ld` for all three). dx must not alias dy or y.
   */
  softmaxBackward(dx: number, dy: number, y: number, rows: number, cols: number, ld: number): void;

  /**
   * Backward of `attention` for one (batch, head) slice, from its weights P (`probs` `[L, S]`,
   * contiguous, as the forward wrote them):
   * `dV += Pᵀ·dO`, `dP = dO·Vᵀ + dProbs`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`,
   * `dQ += scale·dS·K`, `dK += scale·dSᵀ·Q`.
   * - q, k, v and their gradients share the strides `ldq`, `ldk`, `ldv`; dO `[L, dv]` has `ldo`.
   * - `dProbs` `[L, S]`: the gradient of the returned weights, or 0.
   * - `scratch` `[L, S]` floats; on return it holds dS, the gradient of the pre-softmax scores (so
   *   also of an additive float mask).
   * - Padding and causal masks need nothing: masked weights are 0 and get no gradient.
   * dQ, dK, dV may each be 0 (skipped).
   */
  attentionBackward(
    dQ: number,
    dK: number,
    dV: number,
    dO: number,
    ldo: number,
    q: number,
    ldq: number,
    k: number,
    ldk: number,
    v: number,
    ldv: number,
    probs: number,
    dProbs: number,
    scratch: number,
    L: number,
    S: number,
    dk: number,
    dv: number,
    scale: number,
  ): void;

  /**
   * `attentionBackward` for several slices at once, e.g. every (batch, head) of a layer: `slices[i]`
   * is the argument list of one call. The result is that of the calls one after another. Slices
   * that share a `scratch` pointer run one after another, in their order, on one thread: slices
   * adding into the same dK/dV (the query heads of one GQA group) must share one. Slices with
   * different scratch may run side by side and must not write where another reads or writes.
   * A threaded runtime spreads the scratch groups over its threads.
   */
  attentionBackwardHeads(slices: readonly AttentionBackwardArgs[]): void;

  /**
   * Fused softmax + cross-entropy, forward and backward (PyTorch `F.cross_entropy` with class-index
   * targets, `ignore_index`, `label_smoothing`): rows of V logits (leading dim `ld`, shared by
   * dlogits), targets i32. Rows whose target is `ignoreIndex` count for nothing. With ε the
   * smoothing, lse = log Σ_j e^{x_j}, a counted row's loss is `lse − (1 − ε)·x_t − (ε/V)·Σ_j x_j`
   * and `dlogits[r, j] += c·(softmax(x)_j − ε/V − (1 − ε)·[j = t])`, where `reduction` 0 (mean)
   * divides the summed loss by the number N of counted rows and c = dloss/N, and 1 (sum) gives
   * c = dloss. Mean with N = 0 is NaN (as PyTorch) and adds no gradient. The loss is written to
   * `lossOut` (one f32); dlogits may be 0 (loss only). Returns −1, or the first row whose target is
   * outside `[0, V)` and not ignored (then nothing is written).
   */
  softmaxCrossEntropy(
    logits: number,
    dlogits: number,
    ld: number,
    rows: number,
    V: number,
    targets: number,
    ignoreIndex: number,
    labelSmoothing: number,
    reduction: number,
    dloss: number,
    lossOut: number,
  ): number;

  /**
   * Backward of one `lstmCell` step: from the step's gate pre-activations `gates` `[batch, 4H]`
   * (i, f, g, o, as the forward passed them), the cell state before the step `cPrev` `[batch, H]`,
   * `dh` `[batch, H]` (row stride `ldh`: the gradient reaching h_t from the output and the next
   * step) and `dc` `[batch, H]` (in: the gradient reaching c_t from the next step; out, in place:
   * the gradient of c_{t−1}), writes `dgates` `[batch, 4H]`, the gradient of the pre-activations
   * (overwritten: per-step scratch). The caller then does `dW_ih += dgatesᵀ·x_t`,
   * `dW_hh += dgatesᵀ·h_{t−1}`, `db_ih, db_hh += Σ dgates`, `dx_t += dgates·W_ih`,
   * `dh_{t−1} = dgates·W_hh`.
   */
  lstmCellBackward(
    dgates: number,
    dc: number,
    dh: number,
    ldh: number,
    gates: number,
    cPrev: number,
    H: number,
    batch: number,
  ): void;

  /**
   * Backward of one `gruCell` step: from `gx` = W_ih x + b_ih and `gh` = W_hh h + b_hh
   * (`[batch, 3H]`, r, z, n), h_{t−1} `hPrev` (row stride `ldp`) and `dh` (row stride `ldh`),
   * writes `dgx`, `dgh` `[batch, 3H]` (overwritten: the gradients of gx and gh; they differ only in
   * the n block, dgh_n = dgx_n ⊙ r) and accumulates `dhPrev` `[batch, H]` += dh ⊙ z (the direct
   * path; the caller adds `dgh·W_hh`). Then `dW_ih += dgxᵀ·x_t`, `dW_hh += dghᵀ·h_{t−1}`,
   * `db_ih += Σ dgx`, `db_hh += Σ dgh`, `dx_t += dgx·W_ih`.
   */
  gruCellBackward(
    dgx: number,
    dgh: number,
    dhPrev: number,
    dh: number,
    ldh: number,
    gx: number,
    gh: number,
    hPrev: number,
    ldp: number,
    H: number,
    batch: number,
  ): void;
}

/** The backward kernels' names: the loader checks them too. */
export const BACKWARD_KERNEL_NAMES: readonly (keyof BackwardKernels)[] = [
  "unaryBackward",
  "biasGrad",
  "embeddingBackward",
  "im2colPatchBackward",
  "normStats",
  "layerNormBackward",
  "rmsNormBackward",
  "softmaxBackward",
  "attentionBackward",
  "softmaxCrossEntropy",
  "lstmCellBackward",
  "gruCellBackward",
];

// ---- optimizer updates (training) ---------------------------------------------------------------

/**
 * Optimizer steps over one parameter tensor of n floats in the heap: values `theta`, gradient
 * `grad` and the optimizer's buffers, all updated in place. The scalars are taken as f32 and every
 * operation is one f32 operation in the order written (no fused multiply-add), so the SIMD kernels
 * and the reference twins agree bit for bit. The formulas are those of `torch.optim` (see
 * packages/nn/src/optim.ts, which computes the coefficients).
 */
export interface OptimKernels {
  /**
   * Adam / AdamW: `g = sign·grad`; when `wd ≠ 0`, `θ = θ·decay` (`decoupled = 1`, AdamW) or
   * `g = g + wd·θ` (Adam's L2); `m = b1·m + c1·g`; `v = b2·v + c2·(g·g)`; with `vmax ≠ 0` (amsgrad)
   * `vmax = max(vmax, v)` and v̂ = vmax, else v̂ = v; `θ = θ − stepSize·(m / (sqrt(v̂)/bc2 + eps))`.
   * (c1 = 1 − b1, c2 = 1 − b2, stepSize = lr/(1 − b1ᵗ), bc2 = sqrt(1 − b2ᵗ), decay = 1 − lr·wd.)
   */
  adamStep(
    theta: number,
    grad: number,
    m: number,
    v: number,
    vmax: number,
    n: number,
    b1: number,
    c1: number,
    b2: number,
    c2: number,
    eps: number,
    stepSize: number,
    bc2: number,
    wd: number,
    decay: number,
    decoupled: number,
    sign: number,
  ): void;

  /**
   * SGD: `d = sign·grad`, plus `wd·θ` when `wd ≠ 0`; with a momentum buffer (`buf ≠ 0`),
   * `b = d` when `first = 1`, else `b = mu·b + damp1·d` (damp1 = 1 − dampening), then
   * `d = d + mu·b` (`nesterov = 1`) or `d = b`; `θ = θ − lr·d`.
   */
  sgdStep(
    theta: number,
    grad: number,
    buf: number,
    n: number,
    lr: number,
    wd: number,
    mu: number,
    damp1: number,
    first: number,
    nesterov: number,
    sign: number,
  ): void;
}

/** The optimizer kernels' names: the loader checks them too. */
export const OPTIM_KERNEL_NAMES: readonly (keyof OptimKernels)[] = ["adamStep", "sgdStep"];
