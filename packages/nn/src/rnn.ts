/**
 * `torch.nn.RNN` (tanh or relu), `LSTM` and `GRU`, batch first, with `numLayers`, `bidirectional`,
 * bias on or off and initial states; plus `step()` for streaming one timestep at a time.
 * https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html
 *
 *   rnn:  h' = act(W_ih x + b_ih + W_hh h + b_hh)
 *   lstm: i, f, g, o = σ, σ, tanh, σ (W_ih x + b_ih + W_hh h + b_hh)   (gate blocks i, f, g, o)
 *         c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')
 *   gru:  r, z = σ(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z})      (gate blocks r, z, n)
 *         n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),   h' = (1 − z) ⊙ n + z ⊙ h
 *
 * Per layer and direction, the input projections of all timesteps are one GEMM (written time-major,
 * `[T, B, G·H]`, so a step's gates are contiguous); only the recurrent product `h·W_hhᵀ` is
 * sequential. Hidden states are written straight into the output sequence and read back from it
 * as the next step's GEMM operand (row stride `T·D·H`), so nothing is copied per step. With one or
 * two rows the T steps are one call of core's `rnnSteps`, which the threaded build splits by hidden
 * units (each thread its rows of W_hh, its gates and cells, one wait a step).
 *
 * State-dict names: `weight_ih_l{l}{sfx}` `[G·H, I_l]`, `weight_hh_l{l}{sfx}` `[G·H, H]`,
 * `bias_ih_l{l}{sfx}`, `bias_hh_l{l}{sfx}` `[G·H]`, `sfx` = `""` or `"_reverse"`.
 */
import {
  Act,
  BinOp,
  ConfigError,
  InputError,
  type PackedWeight,
  packedIndex,
  packLinearWeight,
  packRnnWeight,
  type Runtime,
  ShapeError,
  Tensor,
  WeightsError,
} from "@wasmformer/core";
import { Module } from "./module.js";
import type { Param, WeightScope } from "./state-dict.js";
import { expectShape, fmtShape, type ModuleLife, putF32, readF32, scratch } from "./util.js";

export type RNNMode = "rnn_tanh" | "rnn_relu" | "lstm" | "gru";

export interface RNNOptions {
  inputSize: number;
  hiddenSize: number;
  /** default 1 */
  numLayers?: number;
  /** default true */
  bias?: boolean;
  /** default false */
  bidirectional?: boolean;
}

/** Recurrent state: `h [L·D, B, H]` (row `l·D + d`), and for LSTM `c` of the same shape. */
export interface RNNState {
  h: Tensor<"f32">;
  c?: Tensor<"f32">;
}

export interface RNNOutput extends RNNState {
  /** `[B, T, D·H]` (last layer, directions concatenated) */
  output: Tensor<"f32">;
}

/**
 * Read a weight that is only used packed: it is copied into the heap, packed by each of `packs`, and
 * then only the packed copies stay (they take the place of the original, which is released; its
 * `ptr` becomes 0). Returns the packed weights, or `undefined`s when the weight was not loaded.
 */
function packedOnly(
  rt: Runtime,
  get: () => Param,
  packs: ((ptr: number) => PackedWeight)[],
): { param: Param; packed: (PackedWeight | undefined)[] } {
  const heap = rt.heap;
  const m = heap.mark();
  const param = get();
  if (!param.ptr) return { param, packed: packs.map(() => undefined) };
  const made = packs.map((pack) => pack(param.ptr));
  const copies = made.map((p) => heap.f32(p.ptr, p.floats).slice());
  heap.release(m);
  const packed = made.map((p, i) => ({ ...p, ptr: heap.put(copies[i]!) }));
  return { param: { ...param, ptr: 0 }, packed };
}

interface DirWeights {
  /** names and shapes; `ptr` is 0: the weights live only packed (ihP, hhP, hhR) */
  ih: Param;
  hh: Param;
  bih: Param | undefined;
  bhh: Param | undefined;
  /** W_ih and W_hh packed at load for `gemmPacked` (undefined while only recording names or when a weight is faulty) */
  ihP: PackedWeight | undefined;
  hhP: PackedWeight | undefined;
  /** W_hh packed for `rnnSteps` (one- and two-row batches): its gate blocks, each for `gemvRows` */
  hhR: PackedWeight | undefined;
}

/**
 * `c[B, N] = act(h[B, H]·W_hhᵀ + bias + beta·c)` for one step of B ≥ 3 rows: the `packB` weight,
 * streamed once for up to 4 rows (blocked above). One or two rows go through core's `rnnSteps`
 * (`gemvRows` once per row: W_hh in row groups, one sequential read). Per step for a 1024×256
 * W_hh, µs, relaxed / plain SIMD (gemvRows per row, gemmPacked), 2026-11-26 13:15 UTC:
 * B = 1: 10.3 / 11.1, 13.6 / 13.8;  B = 2: 20.6 / 22.4, 33.1 / 47.4;
 * B = 3: 30.9 / 33.6, 33.2 / 27.4 (a tie: the builds disagree);  B = 4: 41.0 / 44.9, 36.0 / 34.9.
 */
function recurrent(
  rt: Runtime,
  w: DirWeights,
  hhP: PackedWeight,
  B: number,
  N: number,
  h: number,
  ldh: number,
  c: number,
  ldc: number,
  beta: 0 | 1,
  act: number,
): void {
  rt.k.gemmPacked(B, N, hhP.K, h, ldh, 0, hhP.ptr, c, ldc, w.bhh ? w.bhh.ptr : 0, 1, beta, act);
}

const GATES: Record<RNNMode, number> = { rnn_tanh: 1, rnn_relu: 1, lstm: 4, gru: 3 };

/** What a training forward keeps for the backward (batched shapes). */
interface RNNRecord {
  B: number;
  T: number;
  unbatched: boolean;
  /** each layer's input, time-major `[T, B, in]` (layer 0: x) */
  inputs: Float32Array[];
  /** per layer and direction: see `DirSaved` */
  dirs: DirSaved[][];
}

/**
 * What a training forward keeps per layer and direction (copies, time-major), as core's
 * `rnnForwardBackward` saves them: `xw [T, B, G·H]` by time (x·W_ihᵀ + b_ih), `pre [T, B, G·H]`
 * by processing step (RNN/LSTM gate pre-activations; GRU `h·W_hhᵀ + b_hh`), the hidden states
 * `hs [T + 1, B, H]` and (LSTM) cells `cs [T + 1, B, H]` by step.
 */
interface DirSaved {
  xw: Float32Array;
  pre: Float32Array;
  hs: Float32Array;
  cs: Float32Array | undefined;
}

/** Gradients of an RNN's inputs (`backward`): same shapes as the forward's `x`, `h0`, `c0`. */
export interface RNNGrads {
  dx: Tensor<"f32">;
  dh0: Tensor<"f32">;
  dc0?: Tensor<"f32">;
}

/**
 * The shared engine of RNN, LSTM and GRU.
 *
 * Training: inference keeps W_ih and W_hh only packed; the first `train()` (or `parameters()`)
 * unpacks them into plain `[G·H, in]` trainable tensors. A training forward runs on those (GEMMs
 * with transposes and the cell kernels, as core's `rnnForwardBackward`) and keeps each layer's
 * input, projections, gate pre-activations, hidden states and cells; `backward` is BPTT over the
 * whole sequence from them (stacked, bidirectional), accumulating straight into the gradient
 * buffers. `eval()` re-packs the trained values for inference.
 */
export class RNNBase extends Module {
  readonly rt: Runtime;
  protected readonly life: ModuleLife;
  /** Trainable plain copies of the packed weights, by name (made on the first `train()`). */
  private plain: Map<string, Param> | undefined;
  private readonly saved: RNNRecord[] = [];
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly bias: boolean;
  readonly bidirectional: boolean;
  /** directions: 1 or 2 */
  readonly D: number;
  /** gate blocks: 1 (rnn), 4 (lstm), 3 (gru) */
  readonly G: number;
  readonly weights: DirWeights[][];

  constructor(
    scope: WeightScope,
    readonly mode: RNNMode,
    opts: RNNOptions,
  ) {
    const I = opts.inputSize;
    const H = opts.hiddenSize;
    const L = opts.numLayers ?? 1;
    if (!Number.isInteger(I) || I < 1) throw new ConfigError(`expected a positive integer, got ${I}`, "input_size");
    if (!Number.isInteger(H) || H < 1) throw new ConfigError(`expected a positive integer, got ${H}`, "hidden_size");
    if (!Number.isInteger(L) || L < 1) throw new ConfigError(`expected a positive integer, got ${L}`, "num_layers");
    super();
    this.rt = scope.rt;
    this.life = scope.life;
    this.inputSize = I;
    this.hiddenSize = H;
    this.numLayers = L;
    this.bias = opts.bias ?? true;
    this.bidirectional = opts.bidirectional ?? false;
    this.D = this.bidirectional ? 2 : 1;
    this.G = GATES[mode];
    const GH = this.G * H;
    this.weights = [];
    for (let l = 0; l < L; l++) {
      const Il = l === 0 ? I : this.D * H;
      const dirs: DirWeights[] = [];
      for (let d = 0; d < this.D; d++) {
        const sfx = `l${l}${d === 1 ? "_reverse" : ""}`;
        // packed once here (no per-call packing of the projection; the per-step M = B products
        // stream the packed W_hh once for up to 4 rows), and kept only packed
        const rt = this.rt;
        const ih = packedOnly(rt, () => scope.get(`weight_ih_${sfx}`, [GH, Il]), [
          (p) => packLinearWeight(rt, p, GH, Il),
        ]);
        const hh = packedOnly(rt, () => scope.get(`weight_hh_${sfx}`, [GH, H]), [
          (p) => packLinearWeight(rt, p, GH, H),
          (p) => packRnnWeight(rt, p, this.G, H),
        ]);
        dirs.push({
          ih: ih.param,
          hh: hh.param,
          bih: this.bias ? scope.get(`bias_ih_${sfx}`, [GH]) : undefined,
          bhh: this.bias ? scope.get(`bias_hh_${sfx}`, [GH]) : undefined,
          ihP: ih.packed[0],
          hhP: hh.packed[0],
          hhR: hh.packed[1],
        });
      }
      this.weights.push(dirs);
    }
  }

  /**
   * Pointer form. `x [B, T, I]`; `h0`, `c0` `[L·D, B, H]` or 0 (zeros); writes `out [B, T, D·H]`,
   * `hN` and (LSTM) `cN` `[L·D, B, H]` (0 to skip).
   */
  run(x: number, B: number, T: number, h0: number, c0: number, out: number, hN: number, cN: number): void {
    this.life.check(this.name());
    const { rt, hiddenSize: H, D, G, numLayers: L } = this;
    const k = rt.k;
    const heap = rt.heap;
    const GH = G * H;
    const DH = D * H;
    const m = heap.mark();
    // on 64-byte lines: threads splitting a step by hidden units then never write one line (rnnSteps)
    const lines = (n: number) => Math.ceil(heap.allocF32(n + 16) / 64) * 64;
    const xproj = lines(T * B * GH); // time-major input projections of one direction
    const zeros = heap.allocF32(B * H);
    const cbuf = this.mode === "lstm" ? lines(B * H) : 0;
    const gh = this.mode === "gru" || (this.mode === "lstm" && B <= 2) ? lines(B * GH) : 0;
    const ping = L > 1 ? lines(B * T * DH) : 0;
    const pong = L > 2 ? lines(B * T * DH) : 0;
    const act = this.mode === "rnn_relu" ? Act.relu : Act.tanh;
    let input = x;
    let inW = this.inputSize;
    for (let l = 0; l < L; l++) {
      const dst = l === L - 1 ? out : l % 2 === 0 ? ping : pong;
      for (let d = 0; d < D; d++) {
        const w = this.weights[l][d];
        const ihP = w.ihP;
        const hhP = w.hhP;
        const hhR = w.hhR;
        if (!ihP || !hhP || !hhR)
          throw new WeightsError(`${this.name()}: ${w.ih.name} / ${w.hh.name} were not loaded`, [w.ih.name, w.hh.name]);
        // xproj[t, b, :] = x[b, t, :]·W_ihᵀ + b_ih — one GEMM per batch row, scattered time-major
        for (let b = 0; b < B; b++) {
          k.gemmPacked(
            T,
            GH,
            inW,
            input + b * T * inW * 4,
            inW,
            0,
            ihP.ptr,
            xproj + b * GH * 4,
            B * GH,
            w.bih ? w.bih.ptr : 0,
            1,
            0,
            Act.none,
          );
        }
        const row = l * D + d;
        let hp = h0 ? h0 + row * B * H * 4 : zeros;
        let ldp = H;
        if (cbuf) {
          if (c0) k.copy2d(c0 + row * B * H * 4, H, cbuf, H, B, H);
          else heap.f32(cbuf, B * H).fill(0);
        }
        const ldo = T * DH;
        if (B <= 2) {
          // one call for the T steps (gemvRows per gate block and row, then the cell), split over the
          // threads by hidden units: each thread keeps its rows of W_hh cached across the steps
          const bias = w.bhh ? w.bhh.ptr : 0;
          const mode = this.mode === "lstm" ? 1 : this.mode === "gru" ? 2 : 0;
          k.rnnSteps(mode, act, d, T, B, H, hhR.ptr, bias, xproj, gh, cbuf, hp, dst + d * H * 4, DH, ldo, 0, 0, 1);
          if (T > 0) {
            hp = dst + ((d === 0 ? T - 1 : 0) * DH + d * H) * 4;
            ldp = ldo;
          }
        } else {
          for (let s = 0; s < T; s++) {
            const t = d === 0 ? s : T - 1 - s;
            const g = xproj + t * B * GH * 4;
            const ho = dst + (t * DH + d * H) * 4;
            // the recurrent product h·W_hhᵀ + b_hh accumulates onto the step's input projection (beta = 1)
            if (this.mode === "lstm") {
              recurrent(rt, w, hhP, B, GH, hp, ldp, g, GH, 1, Act.none);
              k.lstmCell(g, cbuf, ho, ldo, H, B);
            } else if (this.mode === "gru") {
              // r ⊙ (W_hn h + b_hn) needs the hidden product on its own: all 3H rows into gh
              recurrent(rt, w, hhP, B, GH, hp, ldp, gh, GH, 0, Act.none);
              k.gruCell(g, gh, hp, ldp, ho, ldo, H, B);
            } else {
              recurrent(rt, w, hhP, B, H, hp, ldp, g, H, 1, act);
              k.copy2d(g, H, ho, ldo, B, H);
            }
            hp = ho;
            ldp = ldo;
          }
        }
        if (hN) k.copy2d(hp, ldp, hN + row * B * H * 4, H, B, H);
        if (cN && cbuf) k.copy2d(cbuf, H, cN + row * B * H * 4, H, B, H);
      }
      input = dst;
      inW = DH;
    }
    heap.release(m);
  }

  private checkState(t: Tensor | undefined, B: number, what: string): void {
    if (t) expectShape(t, [this.numLayers * this.D, B, this.hiddenSize], what);
  }

  /**
   * `x [B, T, I]` (or unbatched `[T, I]`) with optional initial states → output `[B, T, D·H]` and the
   * final states `[L·D, B, H]` (forward direction: after t = T−1; reverse: after t = 0).
   */
  protected runTensors(x: Tensor, h0?: Tensor, c0?: Tensor): RNNOutput {
    this.life.check(this.name());
    const unbatched = x.ndim === 2;
    if ((x.ndim !== 3 && x.ndim !== 2) || x.shape[x.ndim - 1] !== this.inputSize) {
      throw new ShapeError(
        `${this.name()} input x has shape ${fmtShape(x.shape)}: expected [B, T, ${this.inputSize}] (input_size ${this.inputSize})`,
      );
    }
    const B = unbatched ? 1 : x.shape[0];
    const T = x.shape[x.ndim - 2];
    if (T < 1) throw new ShapeError(`${this.name()} input x has shape ${fmtShape(x.shape)}: the sequence is empty`);
    const sh = (t: Tensor | undefined) => (t && unbatched && t.ndim === 2 ? t.reshape([t.shape[0], 1, t.shape[1]]) : t);
    const h0b = sh(h0);
    const c0b = sh(c0);
    this.checkState(h0b, B, "h0");
    this.checkState(c0b, B, "c0");
    const LD = this.numLayers * this.D;
    const H = this.hiddenSize;
    const rt = this.rt;
    if (this.training) return this.trainForward(x, h0b, c0b, B, T, unbatched);
    return scratch(rt, () => {
      const xp = putF32(rt, x, "x");
      const hp = h0b ? putF32(rt, h0b, "h0") : 0;
      const cp = c0b ? putF32(rt, c0b, "c0") : 0;
      const out = rt.heap.allocF32(B * T * this.D * H);
      const hN = rt.heap.allocF32(LD * B * H);
      const cN = this.mode === "lstm" ? rt.heap.allocF32(LD * B * H) : 0;
      this.run(xp, B, T, hp, cp, out, hN, cN);
      const stShape = unbatched ? [LD, H] : [LD, B, H];
      const res: RNNOutput = {
        output: readF32(rt, out, unbatched ? [T, this.D * H] : [B, T, this.D * H]),
        h: readF32(rt, hN, stShape),
      };
      if (cN) res.c = readF32(rt, cN, stShape);
      return res;
    });
  }

  /**
   * Advance one timestep for streaming input: `x [B, I]` and the state from the previous call
   * (absent = zeros) → the top layer's output `[B, H]` and the new state. Only unidirectional
   * networks can stream (the reverse direction needs the whole sequence).
   */
  protected stepTensors(x: Tensor, state?: RNNState): RNNOutput {
    if (this.bidirectional)
      throw new InputError(`${this.name()}.step(): a bidirectional network cannot run one timestep at a time`);
    if (x.ndim !== 2 || x.shape[1] !== this.inputSize) {
      throw new ShapeError(
        `${this.name()}.step() input has shape ${fmtShape(x.shape)}, expected [B, ${this.inputSize}]`,
      );
    }
    if (this.mode === "lstm" && state && !state.c) throw new InputError("LSTM.step(): the state needs both h and c");
    const r = this.runTensors(x.reshape([x.shape[0], 1, this.inputSize]), state?.h, state?.c);
    return { ...r, output: r.output.reshape([x.shape[0], this.hiddenSize]) };
  }

  name(): string {
    return this.mode === "lstm" ? "LSTM" : this.mode === "gru" ? "GRU" : "RNN";
  }

  /** The plain (unpacked) trainable weights, made once from the packed copies. */
  private plainWeights(): Map<string, Param> {
    if (this.plain) return this.plain;
    const heap = this.rt.heap;
    const plain = new Map<string, Param>();
    for (const dirs of this.weights) {
      for (const w of dirs) {
        for (const [p, packed] of [
          [w.ih, w.ihP],
          [w.hh, w.hhP],
        ] as const) {
          if (!packed)
            throw new WeightsError(`${this.name()}: ${p.name} was not loaded; it cannot be trained`, [p.name]);
          const [N, K] = p.shape as [number, number];
          const src = heap.f32(packed.ptr, packed.floats).slice();
          const dst = new Float32Array(N * K);
          for (let j = 0; j < N; j++) for (let q = 0; q < K; q++) dst[j * K + q] = src[packedIndex(K, N, q, j)]!;
          plain.set(p.name, { name: p.name, shape: p.shape, ptr: heap.put(dst) });
        }
        if (w.bih) plain.set(w.bih.name, w.bih);
        if (w.bhh) plain.set(w.bhh.name, w.bhh);
      }
    }
    this.plain = plain;
    return plain;
  }

  /** Copy the plain trainable weights into the packed ones the forward reads. */
  private repack(): void {
    const plain = this.plainWeights();
    const rt = this.rt;
    for (const dirs of this.weights) {
      for (const w of dirs) {
        const ih = plain.get(w.ih.name)!;
        const hh = plain.get(w.hh.name)!;
        const [GH, Il] = w.ih.shape as [number, number];
        const H = w.hh.shape[1]!;
        for (const [dst, pack] of [
          [w.ihP!, () => packLinearWeight(rt, ih.ptr, GH, Il)],
          [w.hhP!, () => packLinearWeight(rt, hh.ptr, GH, H)],
          [w.hhR!, () => packRnnWeight(rt, hh.ptr, GH / H, H)],
        ] as const) {
          scratch(rt, () => {
            const p = pack();
            rt.heap.f32(dst.ptr, dst.floats).set(rt.heap.f32(p.ptr, p.floats));
          });
        }
      }
    }
  }

  protected override ownParams(): Param[] {
    return [...this.plainWeights().values()];
  }

  protected override onMode(training: boolean): void {
    this.saved.length = 0;
    // back to inference: the packed weights take the trained values
    if (!training && this.plain) this.repack();
  }

  /**
   * Backward of the latest training forward (BPTT over the whole sequence, from the saved
   * activations): adds every weight's gradient into its `grad` buffer and returns the gradients of
   * `x`, `h0` and (LSTM) `c0`. `dOutput` is the gradient of `output` (absent = zeros), `dState`
   * those of the final `h`/`c` (absent = zeros); shapes as the forward returned them.
   */
  protected backwardTensors(dOutput?: Tensor, dState: { h?: Tensor; c?: Tensor } = {}): RNNGrads {
    // the latest record, left in place until the gradients are known to fit (popRecord throws without one)
    const r = this.saved.at(-1) ?? this.popRecord(this.saved, this.name());
    const { B, T } = r;
    const { D, hiddenSize: H, numLayers: L, G, inputSize: I } = this;
    // unbatched: output [T, D·H] → [1, T, D·H], states [L·D, H] → [L·D, 1, H]
    const batched = (t: Tensor | undefined, shape: number[], what: string) => {
      if (!t) return undefined;
      const b =
        r.unbatched && t.ndim === 2
          ? t.reshape(what === "dOutput" ? [1, ...t.shape] : [t.shape[0]!, 1, t.shape[1]!])
          : t;
      expectShape(b, shape, `${this.name()}.backward ${what}`);
      return b;
    };
    const GH = G * H;
    const DH = D * H;
    const dOut = batched(dOutput, [B, T, DH], "dOutput");
    const dhN = batched(dState.h, [L * D, B, H], "dh");
    const dcN = this.mode === "lstm" ? batched(dState.c, [L * D, B, H], "dc") : undefined;
    this.popRecord(this.saved, this.name()); // the gradients fit: consume the record
    const lstm = this.mode === "lstm";
    const gru = this.mode === "gru";
    const act = this.mode === "rnn_relu" ? Act.relu : Act.tanh;
    const plain = this.plainWeights();
    const rt = this.rt;
    const { heap, k } = rt;
    return scratch(rt, () => {
      const put = (a: Float32Array) => heap.put(a);
      const zeros = heap.allocF32(B * H);
      const dAboveInit = heap.allocF32(T * B * DH); // time-major dOutput
      if (dOut) {
        const src = putF32(rt, dOut, "dOutput");
        for (let b = 0; b < B; b++) k.copy2d(src + b * T * DH * 4, DH, dAboveInit + b * DH * 4, B * DH, T, DH);
      }
      const dhNp = dhN ? putF32(rt, dhN, "dh") : 0;
      const dcNp = dcN ? putF32(rt, dcN, "dc") : 0;
      const dh0 = heap.allocF32(L * D * B * H);
      const dc0 = lstm ? heap.allocF32(L * D * B * H) : 0;
      const dh = heap.allocF32(B * H);
      const dhAlt = heap.allocF32(B * H);
      const dc = lstm ? heap.allocF32(B * H) : 0;
      const tmp = heap.allocF32(B * H);
      const dgx = heap.allocF32(T * B * GH); // by time
      const dgh = gru ? heap.allocF32(T * B * GH) : 0; // by step
      let dAbove = dAboveInit; // gradient of this layer's output [T, B, D·H]
      for (let l = L - 1; l >= 0; l--) {
        const In = l === 0 ? I : DH;
        const inp = put(r.inputs[l]!);
        const dInp = heap.allocF32(T * B * In);
        for (let d = 0; d < D; d++) {
          const w = this.weights[l]![d]!;
          const sv = r.dirs[l]![d]!;
          const wih = plain.get(w.ih.name)!;
          const whh = plain.get(w.hh.name)!;
          const xw = put(sv.xw);
          const preAll = put(sv.pre);
          const hs = put(sv.hs);
          const cs = sv.cs ? put(sv.cs) : 0;
          const row = (l * D + d) * B * H * 4;
          k.copy2d(dhNp ? dhNp + row : zeros, H, dh, H, B, H);
          if (lstm) k.copy2d(dcNp ? dcNp + row : zeros, H, dc, H, B, H);
          const dWhh = this.gradOf(whh);
          let dhCur = dh;
          let dhNext = dhAlt;
          for (let st = T - 1; st >= 0; st--) {
            const t = d === 0 ? st : T - 1 - st;
            const hp = hs + st * B * H * 4;
            const pre = preAll + st * B * GH * 4;
            const dgT = dgx + t * B * GH * 4;
            // dh += dOutput[t][:, d·H:(d+1)·H]
            k.copy2d(dAbove + (t * B * DH + d * H) * 4, DH, tmp, H, B, H);
            k.binary(dhCur, tmp, dhCur, B, H, H, 1, BinOp.add);
            let dghS = dgT;
            if (gru) {
              dghS = dgh + st * B * GH * 4;
              k.copy2d(zeros, H, dhNext, H, B, H);
              k.gruCellBackward(dgT, dghS, dhNext, dhCur, H, xw + t * B * GH * 4, pre, hp, H, H, B);
              k.gemm(B, H, GH, dghS, GH, 0, whh.ptr, H, 0, dhNext, H, 0, 1, 1, Act.none);
            } else {
              if (lstm) k.lstmCellBackward(dgT, dc, dhCur, H, pre, cs + st * B * H * 4, H, B);
              else {
                k.copy2d(zeros, H, dgT, H, B, H);
                k.unaryBackward(dgT, dhCur, hp + B * H * 4, B * H, act);
              }
              k.gemm(B, H, GH, dgT, GH, 0, whh.ptr, H, 0, dhNext, H, 0, 1, 0, Act.none);
            }
            // dW_hh [GH, H] += dghᵀ [GH, B] · h_s [B, H]
            k.gemm(GH, H, B, dghS, GH, 1, hp, H, 0, dWhh, H, 0, 1, 1, Act.none);
            [dhCur, dhNext] = [dhNext, dhCur];
          }
          k.copy2d(dhCur, H, dh0 + row, H, B, H);
          if (lstm) k.copy2d(dc, H, dc0 + row, H, B, H);
          // dW_ih [GH, In] += dgxᵀ · input;  dInput += dgx · W_ih;  db_ih += Σ dgx;  db_hh += Σ dgh
          k.gemm(GH, In, T * B, dgx, GH, 1, inp, In, 0, this.gradOf(wih), In, 0, 1, 1, Act.none);
          k.gemm(T * B, In, GH, dgx, GH, 0, wih.ptr, In, 0, dInp, In, 0, 1, 1, Act.none);
          if (w.bih) k.biasGrad(this.gradOf(w.bih), dgx, T * B, GH, GH);
          if (w.bhh) k.biasGrad(this.gradOf(w.bhh), gru ? dgh : dgx, T * B, GH, GH);
        }
        dAbove = dInp;
      }
      // batch first
      const dx = new Float32Array(B * T * I);
      const tm = heap.f32(dAbove, T * B * I);
      for (let t = 0; t < T; t++)
        for (let b = 0; b < B; b++) dx.set(tm.subarray((t * B + b) * I, (t * B + b + 1) * I), (b * T + t) * I);
      const st = (p: number) => readF32(rt, p, r.unbatched ? [L * D, H] : [L * D, B, H]);
      const out: RNNGrads = {
        dx: new Tensor(dx, r.unbatched ? [T, I] : [B, T, I], "f32"),
        dh0: st(dh0),
      };
      if (lstm) out.dc0 = st(dc0);
      return out;
    });
  }

  /**
   * The training forward (llm.c style): the whole sequence through the plain trainable weights,
   * layer by layer, keeping every layer's input and, per direction, the input projections, gate
   * pre-activations, hidden states and cells for `backward`. Same results as the inference path.
   */
  private trainForward(
    x: Tensor,
    h0: Tensor | undefined,
    c0: Tensor | undefined,
    B: number,
    T: number,
    unbatched: boolean,
  ): RNNOutput {
    const { D, hiddenSize: H, numLayers: L, G, inputSize: I } = this;
    const GH = G * H;
    const DH = D * H;
    const lstm = this.mode === "lstm";
    const gru = this.mode === "gru";
    const act = this.mode === "rnn_relu" ? Act.relu : Act.tanh;
    const plain = this.plainWeights();
    const rt = this.rt;
    const { heap, k } = rt;
    return scratch(rt, () => {
      const xb = putF32(rt, x, "x");
      const h0p = h0 ? putF32(rt, h0, "h0") : 0;
      const c0p = c0 ? putF32(rt, c0, "c0") : 0;
      const xT = heap.allocF32(T * B * I); // time-major
      for (let b = 0; b < B; b++) k.copy2d(xb + b * T * I * 4, I, xT + b * I * 4, B * I, T, I);
      const hN = heap.allocF32(L * D * B * H);
      const cN = lstm ? heap.allocF32(L * D * B * H) : 0;
      const inputs: Float32Array[] = [];
      const dirs: DirSaved[][] = [];
      let inp = xT;
      for (let l = 0; l < L; l++) {
        const In = l === 0 ? I : DH;
        inputs.push(heap.f32(inp, T * B * In).slice());
        const out = heap.allocF32(T * B * DH); // [T, B, D·H]
        dirs.push([]);
        for (let d = 0; d < D; d++) {
          const w = this.weights[l]![d]!;
          const wih = plain.get(w.ih.name)!.ptr;
          const whh = plain.get(w.hh.name)!.ptr;
          const bih = w.bih ? w.bih.ptr : 0;
          const bhh = w.bhh ? w.bhh.ptr : 0;
          const xw = heap.allocF32(T * B * GH);
          const preAll = heap.allocF32(T * B * GH);
          const hs = heap.allocF32((T + 1) * B * H);
          const cs = lstm ? heap.allocF32((T + 1) * B * H) : 0;
          const row = (l * D + d) * B * H * 4;
          if (h0p) k.copy2d(h0p + row, H, hs, H, B, H);
          if (c0p) k.copy2d(c0p + row, H, cs, H, B, H);
          k.gemm(T * B, GH, In, inp, In, 0, wih, In, 1, xw, GH, bih, 1, 0, Act.none);
          for (let st = 0; st < T; st++) {
            const t = d === 0 ? st : T - 1 - st;
            const hp = hs + st * B * H * 4;
            const hn = hp + B * H * 4;
            const pre = preAll + st * B * GH * 4;
            if (gru) {
              k.gemm(B, GH, H, hp, H, 0, whh, H, 1, pre, GH, bhh, 1, 0, Act.none);
              k.gruCell(xw + t * B * GH * 4, pre, hp, H, hn, H, H, B);
            } else {
              k.copy2d(xw + t * B * GH * 4, GH, pre, GH, B, GH);
              k.gemm(B, GH, H, hp, H, 0, whh, H, 1, pre, GH, bhh, 1, 1, Act.none);
              if (lstm) {
                const cn = cs + (st + 1) * B * H * 4;
                k.copy2d(cs + st * B * H * 4, H, cn, H, B, H);
                k.lstmCell(pre, cn, hn, H, H, B);
              } else k.unary(pre, hn, B * H, act);
            }
            k.copy2d(hn, H, out + (t * B * DH + d * H) * 4, DH, B, H);
          }
          k.copy2d(hs + T * B * H * 4, H, hN + row, H, B, H);
          if (lstm) k.copy2d(cs + T * B * H * 4, H, cN + row, H, B, H);
          dirs[l]!.push({
            xw: heap.f32(xw, T * B * GH).slice(),
            pre: heap.f32(preAll, T * B * GH).slice(),
            hs: heap.f32(hs, (T + 1) * B * H).slice(),
            cs: lstm ? heap.f32(cs, (T + 1) * B * H).slice() : undefined,
          });
        }
        inp = out;
      }
      this.saved.push({ B, T, unbatched, inputs, dirs });
      // batch first
      const o = new Float32Array(B * T * DH);
      const tm = heap.f32(inp, T * B * DH);
      for (let t = 0; t < T; t++)
        for (let b = 0; b < B; b++) o.set(tm.subarray((t * B + b) * DH, (t * B + b + 1) * DH), (b * T + t) * DH);
      const stShape = unbatched ? [L * D, H] : [L * D, B, H];
      const res: RNNOutput = {
        output: new Tensor(o, unbatched ? [T, DH] : [B, T, DH], "f32"),
        h: readF32(rt, hN, stShape),
      };
      if (cN) res.c = readF32(rt, cN, stShape);
      return res;
    });
  }

  /**
   * Free the wasm memory of the module tree this network was loaded with (every module of the same
   * `loadModule`): a runtime the load created is released at once for the next model; one passed in
   * stays the caller's. Every later call on any module of the tree throws a `DisposedError`.
   */
  dispose(): void {
    this.saved.length = 0;
    this.life.dispose();
  }
}

/** `torch.nn.RNN` (Elman), `nonlinearity` tanh (default) or relu. */
export class RNN extends RNNBase {
  constructor(scope: WeightScope, opts: RNNOptions & { nonlinearity?: "tanh" | "relu" }) {
    const nl = opts.nonlinearity ?? "tanh";
    if (nl !== "tanh" && nl !== "relu")
      throw new ConfigError(`expected "tanh" or "relu", got ${JSON.stringify(nl)}`, "nonlinearity");
    super(scope, nl === "relu" ? "rnn_relu" : "rnn_tanh", opts);
  }
  /** `x [B, T, I]`, `h0 [L·D, B, H]` → `{ output [B, T, D·H], h [L·D, B, H] }`. */
  forward(x: Tensor, h0?: Tensor): RNNOutput {
    return this.runTensors(x, h0);
  }
  /** Backward of the latest training forward (see `RNNBase`): `dOutput`, `dh` → `{ dx, dh0 }`. */
  backward(dOutput?: Tensor, dh?: Tensor): RNNGrads {
    return this.backwardTensors(dOutput, { h: dh });
  }
  step(x: Tensor, state?: RNNState): RNNOutput {
    return this.stepTensors(x, state);
  }
}

/** `torch.nn.LSTM` (no `proj_size`). */
export class LSTM extends RNNBase {
  constructor(scope: WeightScope, opts: RNNOptions) {
    super(scope, "lstm", opts);
  }
  /** `x [B, T, I]`, `h0`, `c0` `[L·D, B, H]` (both or neither) → `{ output, h, c }`. */
  forward(x: Tensor, h0?: Tensor, c0?: Tensor): RNNOutput {
    if (!!h0 !== !!c0) throw new InputError("LSTM: give both h0 and c0, or neither");
    return this.runTensors(x, h0, c0);
  }
  /** Backward of the latest training forward (see `RNNBase`): `dOutput`, `dh`, `dc` → `{ dx, dh0, dc0 }`. */
  backward(dOutput?: Tensor, dh?: Tensor, dc?: Tensor): RNNGrads {
    return this.backwardTensors(dOutput, { h: dh, c: dc });
  }
  step(x: Tensor, state?: RNNState): RNNOutput {
    return this.stepTensors(x, state);
  }
}

/** `torch.nn.GRU`. */
export class GRU extends RNNBase {
  constructor(scope: WeightScope, opts: RNNOptions) {
    super(scope, "gru", opts);
  }
  /** `x [B, T, I]`, `h0 [L·D, B, H]` → `{ output [B, T, D·H], h [L·D, B, H] }`. */
  forward(x: Tensor, h0?: Tensor): RNNOutput {
    return this.runTensors(x, h0);
  }
  /** Backward of the latest training forward (see `RNNBase`): `dOutput`, `dh` → `{ dx, dh0 }`. */
  backward(dOutput?: Tensor, dh?: Tensor): RNNGrads {
    return this.backwardTensors(dOutput, { h: dh });
  }
  step(x: Tensor, state?: RNNState): RNNOutput {
    return this.stepTensors(x, state);
  }
}
