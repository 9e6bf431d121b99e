/**
 * Backpropagation through time for `torch.nn.RNN` (tanh/relu), `LSTM` and `GRU`, stacked and
 * bidirectional, batch first, composed from the kernels (the forward cells, `lstmCellBackward`,
 * `gruCellBackward`, `unaryBackward`, `biasGrad` and GEMM with transposes):
 *
 * Per layer l (from the top) and direction d, the forward has saved, per processing step s
 * (time t = s forward, T−1−s reverse): the input projections `xw[t] = x_t·W_ihᵀ + b_ih`, the
 * gate pre-activations (RNN/LSTM: xw + h_{s}·W_hhᵀ + b_hh; GRU keeps `gh = h·W_hhᵀ + b_hh`
 * apart), the hidden states h_0..h_T and the LSTM cells c_0..c_T. Backward walks s = T−1..0 with
 * dh = dOutput[t] + (gradient from step s+1), and per step
 *   RNN:  dpre = dh ⊙ act′ (from h),                dh ← dpre·W_hh
 *   LSTM: dpre, dc ← lstmCellBackward(dh, dc),      dh ← dpre·W_hh
 *   GRU:  dgx, dgh, dh ← gruCellBackward(dh) (dh ⊙ z), dh += dgh·W_hh
 *   dW_hh += dghᵀ·h_{s}
 * and after the loop, over all T·B rows at once: dW_ih += dgxᵀ·input, db_ih += Σ dgx,
 * db_hh += Σ dgh, dInput += dgx·W_ih. A direction's dInput columns go to the layer below (its two
 * directions' outputs were concatenated there, so their input gradients add); layer 0's is dx.
 * The final dh, dc of each (l, d) are dh0, dc0. No dropout between layers (as PyTorch in eval).
 */
import { InputError, ShapeError, WeightsError } from "./errors.js";
import { Act, BinOp } from "./kernels.js";
import { defaultRuntime, type Runtime } from "./runtime.js";
import { formatShape as fmt, Tensor } from "./tensor.js";

/** The cell, as `@wasmformer/nn`'s `RNNMode`. */
export type RnnMode = "rnn_tanh" | "rnn_relu" | "lstm" | "gru";

export interface RnnSpec {
  mode: RnnMode;
  inputSize: number;
  hiddenSize: number;
  /** default 1 */
  numLayers?: number;
  /** default false */
  bidirectional?: boolean;
  /** default true */
  bias?: boolean;
}

export interface RnnBackwardOptions {
  /** Initial hidden state `[L·D, B, H]` (default zeros). */
  h0?: Tensor;
  /** Initial LSTM cell `[L·D, B, H]` (default zeros). */
  c0?: Tensor;
  /** Gradient of the final hidden state `[L·D, B, H]` (default zeros). */
  dhN?: Tensor;
  /** Gradient of the final LSTM cell `[L·D, B, H]` (default zeros). */
  dcN?: Tensor;
  /** Runtime to run on (default: `defaultRuntime()`). */
  runtime?: Runtime;
}

export interface RnnBackwardResult {
  /** Forward output `[B, T, D·H]`. */
  output: Tensor<"f32">;
  /** Final hidden state `[L·D, B, H]` (row l·D + d), and for LSTM the final cell. */
  hN: Tensor<"f32">;
  cN?: Tensor<"f32">;
  /** Gradient of the input `[B, T, I]`. */
  dx: Tensor<"f32">;
  /** Gradients of the initial states `[L·D, B, H]`. */
  dh0: Tensor<"f32">;
  dc0?: Tensor<"f32">;
  /** Parameter gradients under the PyTorch names (`weight_ih_l0`, `bias_hh_l1_reverse`, …). */
  grads: Record<string, Tensor<"f32">>;
}

const GATES: Record<RnnMode, number> = { rnn_tanh: 1, rnn_relu: 1, lstm: 4, gru: 3 };

function f32Input(t: Tensor | undefined, shape: readonly number[], what: string): Float32Array | undefined {
  if (!t) return undefined;
  if (t.dtype !== "f32" || t.shape.length !== shape.length || t.shape.some((v, i) => v !== shape[i]))
    throw new ShapeError(`rnnForwardBackward: ${what} must be f32 ${fmt(shape)}, got ${t.dtype} ${fmt(t.shape)}`);
  return t.data as Float32Array;
}

/**
 * Forward and backward of a whole (stacked, possibly bidirectional) recurrent network over a
 * sequence, in PyTorch semantics: `x [B, T, I]`, weights by their PyTorch names (`weight_ih_l{l}`,
 * `weight_hh_l{l}`, `bias_ih_l{l}`, `bias_hh_l{l}`, suffix `_reverse` for the reverse direction),
 * `dOutput [B, T, D·H]` the gradient of the output sequence. Returns the forward results and every
 * gradient (fresh tensors; accumulate them into your own buffers as needed).
 * @example
 * ```ts
 * const r = rnnForwardBackward({ mode: "lstm", inputSize: 8, hiddenSize: 16, numLayers: 2, bidirectional: true },
 *   weights, x, dOut);
 * r.grads["weight_hh_l1_reverse"]; // [64, 16]
 * ```
 */
export function rnnForwardBackward(
  spec: RnnSpec,
  weights: Record<string, Tensor>,
  x: Tensor,
  dOutput: Tensor,
  opts: RnnBackwardOptions = {},
): RnnBackwardResult {
  const { mode, inputSize: I, hiddenSize: H } = spec;
  const L = spec.numLayers ?? 1;
  const D = spec.bidirectional ? 2 : 1;
  const bias = spec.bias ?? true;
  if (!(mode in GATES))
    throw new InputError(
      `rnnForwardBackward: mode ${JSON.stringify(mode)} is not one of rnn_tanh, rnn_relu, lstm, gru`,
    );
  for (const [v, name] of [
    [I, "inputSize"],
    [H, "hiddenSize"],
    [L, "numLayers"],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new InputError(`rnnForwardBackward: ${name} must be a positive integer, got ${v}`);
  }
  if (x.dtype !== "f32" || x.ndim !== 3 || x.shape[2] !== I)
    throw new ShapeError(`rnnForwardBackward: x must be f32 [B, T, ${I}], got ${x.dtype} ${fmt(x.shape)}`);
  const [B, T] = x.shape as [number, number, number];
  if (B < 1 || T < 1) throw new ShapeError(`rnnForwardBackward: x ${fmt(x.shape)} has no timestep or no batch row`);
  const G = GATES[mode];
  const GH = G * H;
  const DH = D * H;
  const lstm = mode === "lstm";
  const gru = mode === "gru";
  const act = mode === "rnn_relu" ? Act.relu : Act.tanh;
  const dOut = f32Input(dOutput, [B, T, DH], "dOutput")!;
  const stateShape = [L * D, B, H];
  const h0 = f32Input(opts.h0, stateShape, "h0");
  const c0 = lstm ? f32Input(opts.c0, stateShape, "c0") : undefined;
  const dhN = f32Input(opts.dhN, stateShape, "dhN");
  const dcN = lstm ? f32Input(opts.dcN, stateShape, "dcN") : undefined;
  const names = (l: number, d: number) => {
    const sfx = `l${l}${d ? "_reverse" : ""}`;
    return { ih: `weight_ih_${sfx}`, hh: `weight_hh_${sfx}`, bih: `bias_ih_${sfx}`, bhh: `bias_hh_${sfx}` };
  };
  const param = (name: string, shape: number[]): Float32Array => {
    const t = weights[name];
    if (!t) throw new WeightsError(`rnnForwardBackward: missing weight ${name} ${fmt(shape)}`, [name]);
    if (t.dtype !== "f32" || t.size !== shape.reduce((a, b) => a * b, 1) || t.shape.length !== shape.length)
      throw new WeightsError(`rnnForwardBackward: ${name} must be f32 ${fmt(shape)}, got ${t.dtype} ${fmt(t.shape)}`, [
        name,
      ]);
    return t.data as Float32Array;
  };

  const rt = opts.runtime ?? defaultRuntime();
  const { heap, k } = rt;
  const mark = heap.mark();
  try {
    const put = (a: Float32Array) => heap.put(a);
    const zerosBH = heap.allocF32(B * H);
    // time-major copies of x and dOutput: [T, B, ·]
    const toTimeMajor = (src: Float32Array, C: number) => {
      const p = heap.allocF32(T * B * C);
      for (let b = 0; b < B; b++)
        k.copy2d(put(src.subarray(b * T * C, (b + 1) * T * C)), C, p + b * C * 4, B * C, T, C);
      return p;
    };
    const xT = toTimeMajor(x.data as Float32Array, I);
    const dOutT = toTimeMajor(dOut, DH);
    const h0p = h0 ? put(h0) : 0;
    const c0p = c0 ? put(c0) : 0;
    const dhNp = dhN ? put(dhN) : 0;
    const dcNp = dcN ? put(dcN) : 0;

    interface Saved {
      wih: number;
      whh: number;
      bih: number;
      bhh: number;
      xw: number; // [T, B, GH] by time
      pre: number; // RNN/LSTM gate pre-activations, GRU gh: [T, B, GH] by step
      hs: number; // [T + 1, B, H] by step
      cs: number; // LSTM [T + 1, B, H] by step
    }
    const saved: Saved[][] = [];
    const inputs: number[] = [xT];
    const outs: number[] = [];
    const hN = heap.allocF32(L * D * B * H);
    const cN = lstm ? heap.allocF32(L * D * B * H) : 0;

    // ---- forward, saving what backward needs
    for (let l = 0; l < L; l++) {
      const In = l === 0 ? I : DH;
      const inp = inputs[l]!;
      const out = heap.allocF32(T * B * DH); // [T, B, D·H]
      saved.push([]);
      for (let d = 0; d < D; d++) {
        const n = names(l, d);
        const s: Saved = {
          wih: put(param(n.ih, [GH, In])),
          whh: put(param(n.hh, [GH, H])),
          bih: bias ? put(param(n.bih, [GH])) : 0,
          bhh: bias ? put(param(n.bhh, [GH])) : 0,
          xw: heap.allocF32(T * B * GH),
          pre: heap.allocF32(T * B * GH),
          hs: heap.allocF32((T + 1) * B * H),
          cs: lstm ? heap.allocF32((T + 1) * B * H) : 0,
        };
        saved[l]!.push(s);
        const row = (l * D + d) * B * H * 4;
        if (h0p) k.copy2d(h0p + row, H, s.hs, H, B, H);
        if (c0p) k.copy2d(c0p + row, H, s.cs, H, B, H);
        k.gemm(T * B, GH, In, inp, In, 0, s.wih, In, 1, s.xw, GH, s.bih, 1, 0, Act.none);
        for (let st = 0; st < T; st++) {
          const t = d === 0 ? st : T - 1 - st;
          const hp = s.hs + st * B * H * 4;
          const hn = hp + B * H * 4;
          const pre = s.pre + st * B * GH * 4;
          if (gru) {
            k.gemm(B, GH, H, hp, H, 0, s.whh, H, 1, pre, GH, s.bhh, 1, 0, Act.none);
            k.gruCell(s.xw + t * B * GH * 4, pre, hp, H, hn, H, H, B);
          } else {
            k.copy2d(s.xw + t * B * GH * 4, GH, pre, GH, B, GH);
            k.gemm(B, GH, H, hp, H, 0, s.whh, H, 1, pre, GH, s.bhh, 1, 1, Act.none);
            if (lstm) {
              const cn = s.cs + (st + 1) * B * H * 4;
              k.copy2d(s.cs + st * B * H * 4, H, cn, H, B, H);
              k.lstmCell(pre, cn, hn, H, H, B);
            } else k.unary(pre, hn, B * H, act);
          }
          k.copy2d(hn, H, out + (t * B * DH + d * H) * 4, DH, B, H);
        }
        k.copy2d(s.hs + T * B * H * 4, H, hN + row, H, B, H);
        if (lstm) k.copy2d(s.cs + T * B * H * 4, H, cN + row, H, B, H);
      }
      outs.push(out);
      inputs.push(out);
    }

    // ---- backward
    const grads: Record<string, Tensor<"f32">> = {};
    const dh0 = heap.allocF32(L * D * B * H);
    const dc0 = lstm ? heap.allocF32(L * D * B * H) : 0;
    const dh = heap.allocF32(B * H);
    const dhAlt = heap.allocF32(B * H);
    const dc = lstm ? heap.allocF32(B * H) : 0;
    const tmp = heap.allocF32(B * H);
    const dgx = heap.allocF32(T * B * GH); // by time
    const dgh = gru ? heap.allocF32(T * B * GH) : 0; // by step
    let dAbove = dOutT; // gradient of this layer's output [T, B, D·H]
    for (let l = L - 1; l >= 0; l--) {
      const In = l === 0 ? I : DH;
      const inp = inputs[l]!;
      const dInp = heap.allocF32(T * B * In);
      for (let d = 0; d < D; d++) {
        const s = saved[l]![d]!;
        const n = names(l, d);
        const row = (l * D + d) * B * H * 4;
        const dWih = heap.allocF32(GH * In);
        const dWhh = heap.allocF32(GH * H);
        if (dhNp) k.copy2d(dhNp + row, H, dh, H, B, H);
        else k.copy2d(zerosBH, H, dh, H, B, H);
        if (lstm) k.copy2d(dcNp ? dcNp + row : zerosBH, H, dc, H, B, H);
        let dhCur = dh;
        let dhNext = dhAlt;
        for (let st = T - 1; st >= 0; st--) {
          const t = d === 0 ? st : T - 1 - st;
          const hp = s.hs + st * B * H * 4;
          const pre = s.pre + st * B * GH * 4;
          const dgT = dgx + t * B * GH * 4;
          // dh += dOutput[t][:, d·H:(d+1)·H]
          k.copy2d(dAbove + (t * B * DH + d * H) * 4, DH, tmp, H, B, H);
          k.binary(dhCur, tmp, dhCur, B, H, H, 1, BinOp.add);
          let dghS = dgT;
          if (gru) {
            dghS = dgh + st * B * GH * 4;
            k.copy2d(zerosBH, H, dhNext, H, B, H);
            k.gruCellBackward(dgT, dghS, dhNext, dhCur, H, s.xw + t * B * GH * 4, pre, hp, H, H, B);
            k.gemm(B, H, GH, dghS, GH, 0, s.whh, H, 0, dhNext, H, 0, 1, 1, Act.none);
          } else {
            if (lstm) k.lstmCellBackward(dgT, dc, dhCur, H, pre, s.cs + st * B * H * 4, H, B);
            else {
              k.copy2d(zerosBH, H, dgT, H, B, H);
              k.unaryBackward(dgT, dhCur, hp + B * H * 4, B * H, act);
            }
            k.gemm(B, H, GH, dgT, GH, 0, s.whh, H, 0, dhNext, H, 0, 1, 0, Act.none);
          }
          // dW_hh [GH, H] += dghᵀ [GH, B] · h_s [B, H]
          k.gemm(GH, H, B, dghS, GH, 1, hp, H, 0, dWhh, H, 0, 1, 1, Act.none);
          [dhCur, dhNext] = [dhNext, dhCur];
        }
        k.copy2d(dhCur, H, dh0 + row, H, B, H);
        if (lstm) k.copy2d(dc, H, dc0 + row, H, B, H);
        // dW_ih [GH, In] += dgxᵀ · input;  dInput += dgx · W_ih
        k.gemm(GH, In, T * B, dgx, GH, 1, inp, In, 0, dWih, In, 0, 1, 1, Act.none);
        k.gemm(T * B, In, GH, dgx, GH, 0, s.wih, In, 0, dInp, In, 0, 1, 1, Act.none);
        grads[n.ih] = new Tensor(heap.f32(dWih, GH * In).slice(), [GH, In], "f32");
        grads[n.hh] = new Tensor(heap.f32(dWhh, GH * H).slice(), [GH, H], "f32");
        if (bias) {
          const db = heap.allocF32(GH);
          k.biasGrad(db, dgx, T * B, GH, GH);
          grads[n.bih] = new Tensor(heap.f32(db, GH).slice(), [GH], "f32");
          const dbh = heap.allocF32(GH);
          k.biasGrad(dbh, gru ? dgh : dgx, T * B, GH, GH);
          grads[n.bhh] = new Tensor(heap.f32(dbh, GH).slice(), [GH], "f32");
        }
      }
      dAbove = dInp;
    }

    // ---- results, batch first
    const fromTimeMajor = (p: number, C: number, shape: number[]) => {
      const tm = heap.f32(p, T * B * C);
      const outArr = new Float32Array(B * T * C);
      for (let t = 0; t < T; t++)
        for (let b = 0; b < B; b++) outArr.set(tm.subarray((t * B + b) * C, (t * B + b + 1) * C), (b * T + t) * C);
      return new Tensor(outArr, shape, "f32");
    };
    const read = (p: number) => new Tensor(heap.f32(p, L * D * B * H).slice(), stateShape, "f32");
    return {
      output: fromTimeMajor(outs[L - 1]!, DH, [B, T, DH]),
      hN: read(hN),
      cN: lstm ? read(cN) : undefined,
      dx: fromTimeMajor(dAbove, I, [B, T, I]),
      dh0: read(dh0),
      dc0: lstm ? read(dc0) : undefined,
      grads,
    };
  } finally {
    heap.release(mark);
  }
}
