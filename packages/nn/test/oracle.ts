/**
 * Independent, straightforward float64 implementations written from the FORMAT.md formulas
 * (§5, §6.3–6.10), for cross-checking the layers. Plain nested loops over flat arrays; no kernels,
 * no heap, nothing shared with src/.
 */
type W = Record<string, Float32Array>;
type Arr = ArrayLike<number>;

export const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is too coarse; use the series / continued fraction like a textbook
  const ax = Math.abs(x);
  let r: number;
  if (ax < 3) {
    let sum = ax;
    let term = ax;
    for (let n = 1; n < 100; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let cf = 0;
    for (let n = 80; n >= 1; n--) cf = n / 2 / (ax + cf);
    r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + cf);
  }
  return x < 0 ? -r : r;
}

export const act = (name: string, x: number) =>
  name === "relu"
    ? Math.max(0, x)
    : name === "gelu"
      ? 0.5 * x * (1 + erf(x / Math.SQRT2))
      : name === "tanh"
        ? Math.tanh(x)
        : name === "silu"
          ? x / (1 + Math.exp(-x))
          : name === "gelu_tanh"
            ? 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)))
            : x;

/** y[r, o] = Σ_i x[r, i]·w[o, i] + b[o] */
export function linear(x: Arr, rows: number, w: Arr, b: Arr | undefined, inF: number, outF: number): number[] {
  const y = new Array<number>(rows * outF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      y[r * outF + o] = s;
    }
  return y;
}

export function layerNorm(x: Arr, rows: number, d: number, g: Arr, b: Arr, eps: number): number[] {
  const y = new Array<number>(rows * d);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let j = 0; j < d; j++) mean += x[r * d + j];
    mean /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (x[r * d + j] - mean) ** 2;
    v /= d;
    for (let j = 0; j < d; j++) y[r * d + j] = ((x[r * d + j] - mean) / Math.sqrt(v + eps)) * g[j] + b[j];
  }
  return y;
}

export interface MaskSpec {
  /** [L, S] or [B·H, L, S]; kind "bool" (true = blocked) or "f32" (added) */
  attn?: { data: Arr; kind: "bool" | "f32"; perSlice: boolean };
  /** [B, S], true = padded key */
  kpm?: Arr;
  causal?: boolean;
}

/** torch.nn.MultiheadAttention (batch first) in f64: returns output [B, L, E] and weights [B, H, L, S]. */
export function mha(
  w: W,
  prefix: string,
  q: Arr,
  k: Arr,
  v: Arr,
  B: number,
  L: number,
  S: number,
  E: number,
  H: number,
  m: MaskSpec,
  dims: { kdim?: number; vdim?: number; bias?: boolean } = {},
): { out: number[]; weights: number[] } {
  const kd = dims.kdim ?? E;
  const vd = dims.vdim ?? E;
  const bias = dims.bias ?? true;
  const d = E / H;
  let Wq: Arr, Wk: Arr, Wv: Arr;
  if (w[`${prefix}in_proj_weight`]) {
    const ip = w[`${prefix}in_proj_weight`];
    Wq = ip.subarray(0, E * E);
    Wk = ip.subarray(E * E, 2 * E * E);
    Wv = ip.subarray(2 * E * E);
  } else {
    Wq = w[`${prefix}q_proj_weight`];
    Wk = w[`${prefix}k_proj_weight`];
    Wv = w[`${prefix}v_proj_weight`];
  }
  const ib = bias ? w[`${prefix}in_proj_bias`] : undefined;
  const Q = linear(q, B * L, Wq, ib?.subarray(0, E), E, E);
  const K = linear(k, B * S, Wk, ib?.subarray(E, 2 * E), kd, E);
  const V = linear(v, B * S, Wv, ib?.subarray(2 * E), vd, E);
  const O = new Array<number>(B * L * E).fill(0);
  const weights = new Array<number>(B * H * L * S).fill(0);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < L; i++) {
        const sc = new Array<number>(S);
        for (let j = 0; j < S; j++) {
          let s = 0;
          for (let p = 0; p < d; p++) s += Q[(b * L + i) * E + h * d + p] * K[(b * S + j) * E + h * d + p];
          s /= Math.sqrt(d);
          if (m.attn) {
            const off = (m.attn.perSlice ? (b * H + h) * L * S : 0) + i * S + j;
            const mv = m.attn.data[off];
            if (m.attn.kind === "bool") {
              if (mv) s = Number.NEGATIVE_INFINITY;
            } else s += mv;
          }
          if (m.kpm?.[b * S + j]) s = Number.NEGATIVE_INFINITY;
          if (m.causal && j > i) s = Number.NEGATIVE_INFINITY;
          sc[j] = s;
        }
        const mx = Math.max(...sc);
        let sum = 0;
        for (let j = 0; j < S; j++) sum += sc[j] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(sc[j] - mx);
        for (let j = 0; j < S; j++) {
          const p = sc[j] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(sc[j] - mx) / sum;
          weights[((b * H + h) * L + i) * S + j] = p;
          for (let c = 0; c < d; c++) O[(b * L + i) * E + h * d + c] += p * V[(b * S + j) * E + h * d + c];
        }
      }
  const out = linear(O, B * L, w[`${prefix}out_proj.weight`], bias ? w[`${prefix}out_proj.bias`] : undefined, E, E);
  return { out, weights };
}

const add = (a: number[], b: number[]) => a.map((x, i) => x + b[i]);

export interface LayerCfg {
  d: number;
  H: number;
  F: number;
  act: "relu" | "gelu" | "silu" | "gelu_tanh";
  normFirst: boolean;
  eps: number;
}

function ff(w: W, p: string, x: number[], rows: number, c: LayerCfg): number[] {
  const h = linear(x, rows, w[`${p}linear1.weight`], w[`${p}linear1.bias`], c.d, c.F).map((v) => act(c.act, v));
  return linear(h, rows, w[`${p}linear2.weight`], w[`${p}linear2.bias`], c.F, c.d);
}

const ln = (w: W, p: string, x: number[], rows: number, c: LayerCfg) =>
  layerNorm(x, rows, c.d, w[`${p}.weight`], w[`${p}.bias`], c.eps);

/** torch.nn.TransformerEncoderLayer (FORMAT §6.7). */
export function encoderLayer(w: W, p: string, x: number[], B: number, S: number, c: LayerCfg, m: MaskSpec): number[] {
  const rows = B * S;
  const sa = (y: number[]) => mha(w, `${p}self_attn.`, y, y, y, B, S, S, c.d, c.H, m).out;
  if (!c.normFirst) {
    let y = ln(w, `${p}norm1`, add(x, sa(x)), rows, c);
    y = ln(w, `${p}norm2`, add(y, ff(w, p, y, rows, c)), rows, c);
    return y;
  }
  let y = add(x, sa(ln(w, `${p}norm1`, x, rows, c)));
  y = add(y, ff(w, p, ln(w, `${p}norm2`, y, rows, c), rows, c));
  return y;
}

/** torch.nn.TransformerDecoderLayer (FORMAT §6.8). */
export function decoderLayer(
  w: W,
  p: string,
  x: number[],
  mem: number[],
  B: number,
  T: number,
  S: number,
  c: LayerCfg,
  tm: MaskSpec,
  mm: MaskSpec,
): number[] {
  const rows = B * T;
  const sa = (y: number[]) => mha(w, `${p}self_attn.`, y, y, y, B, T, T, c.d, c.H, tm).out;
  const ca = (y: number[]) => mha(w, `${p}multihead_attn.`, y, mem, mem, B, T, S, c.d, c.H, mm).out;
  if (!c.normFirst) {
    let y = ln(w, `${p}norm1`, add(x, sa(x)), rows, c);
    y = ln(w, `${p}norm2`, add(y, ca(y)), rows, c);
    return ln(w, `${p}norm3`, add(y, ff(w, p, y, rows, c)), rows, c);
  }
  let y = add(x, sa(ln(w, `${p}norm1`, x, rows, c)));
  y = add(y, ca(ln(w, `${p}norm2`, y, rows, c)));
  return add(y, ff(w, p, ln(w, `${p}norm3`, y, rows, c), rows, c));
}

/** torch.nn.Transformer (FORMAT §6.9): memory and output. */
export function transformer(
  w: W,
  p: string,
  src: number[],
  tgt: number[],
  B: number,
  S: number,
  T: number,
  nEnc: number,
  nDec: number,
  c: LayerCfg,
  sm: MaskSpec,
  tm: MaskSpec,
  mm: MaskSpec,
): { memory: number[]; output: number[] } {
  let x = src;
  for (let i = 0; i < nEnc; i++) x = encoderLayer(w, `${p}encoder.layers.${i}.`, x, B, S, c, sm);
  const memory = ln(w, `${p}encoder.norm`, x, B * S, c);
  let y = tgt;
  for (let i = 0; i < nDec; i++) y = decoderLayer(w, `${p}decoder.layers.${i}.`, y, memory, B, T, S, c, tm, mm);
  return { memory, output: ln(w, `${p}decoder.norm`, y, B * T, c) };
}

/** Sinusoidal table (FORMAT §6.6). */
export function pe(maxLen: number, d: number, base = 10000): number[] {
  const t = new Array<number>(maxLen * d);
  for (let p = 0; p < maxLen; p++)
    for (let j = 0; j < d; j++) {
      const wk = base ** ((-2 * Math.floor(j / 2)) / d);
      t[p * d + j] = j % 2 === 0 ? Math.sin(p * wk) : Math.cos(p * wk);
    }
  return t;
}

/**
 * torch.nn.RNN / LSTM / GRU, batch first (FORMAT §6.3), written per timestep and gate.
 * Returns output [B, T, D·H], h_n and c_n [L·D, B, H].
 */
export function rnn(
  mode: "rnn_tanh" | "rnn_relu" | "lstm" | "gru",
  w: W,
  x: Arr,
  B: number,
  T: number,
  I: number,
  H: number,
  L: number,
  bidir: boolean,
  bias: boolean,
  h0?: Arr,
  c0?: Arr,
): { output: number[]; h: number[]; c: number[] } {
  const D = bidir ? 2 : 1;
  const hN = new Array<number>(L * D * B * H).fill(0);
  const cN = new Array<number>(L * D * B * H).fill(0);
  let inp: number[] = Array.from(x);
  let inW = I;
  for (let l = 0; l < L; l++) {
    const out = new Array<number>(B * T * D * H).fill(0);
    for (let dir = 0; dir < D; dir++) {
      const sfx = `l${l}${dir ? "_reverse" : ""}`;
      const Wih = w[`weight_ih_${sfx}`];
      const Whh = w[`weight_hh_${sfx}`];
      const bih = bias ? w[`bias_ih_${sfx}`] : undefined;
      const bhh = bias ? w[`bias_hh_${sfx}`] : undefined;
      // W_* x + b_* for gate block g, unit j
      const ix = (g: number, j: number, b: number, t: number) => {
        let s = bih ? bih[g * H + j] : 0;
        for (let i = 0; i < inW; i++) s += Wih[(g * H + j) * inW + i] * inp[(b * T + t) * inW + i];
        return s;
      };
      const hx = (g: number, j: number, h: number[]) => {
        let s = bhh ? bhh[g * H + j] : 0;
        for (let i = 0; i < H; i++) s += Whh[(g * H + j) * H + i] * h[i];
        return s;
      };
      const row = l * D + dir;
      for (let b = 0; b < B; b++) {
        let h = new Array<number>(H).fill(0).map((_, j) => (h0 ? h0[(row * B + b) * H + j] : 0));
        let c = new Array<number>(H).fill(0).map((_, j) => (c0 ? c0[(row * B + b) * H + j] : 0));
        for (let s = 0; s < T; s++) {
          const t = dir === 0 ? s : T - 1 - s;
          const nh = new Array<number>(H);
          const nc = new Array<number>(H);
          for (let j = 0; j < H; j++) {
            if (mode === "lstm") {
              const i_ = sigmoid(ix(0, j, b, t) + hx(0, j, h));
              const f_ = sigmoid(ix(1, j, b, t) + hx(1, j, h));
              const g_ = Math.tanh(ix(2, j, b, t) + hx(2, j, h));
              const o_ = sigmoid(ix(3, j, b, t) + hx(3, j, h));
              nc[j] = f_ * c[j] + i_ * g_;
              nh[j] = o_ * Math.tanh(nc[j]);
            } else if (mode === "gru") {
              const r = sigmoid(ix(0, j, b, t) + hx(0, j, h));
              const z = sigmoid(ix(1, j, b, t) + hx(1, j, h));
              const n = Math.tanh(ix(2, j, b, t) + r * hx(2, j, h));
              nh[j] = (1 - z) * n + z * h[j];
            } else {
              const a = ix(0, j, b, t) + hx(0, j, h);
              nh[j] = mode === "rnn_relu" ? Math.max(0, a) : Math.tanh(a);
            }
          }
          h = nh;
          if (mode === "lstm") c = nc;
          for (let j = 0; j < H; j++) out[(b * T + t) * D * H + dir * H + j] = h[j];
        }
        for (let j = 0; j < H; j++) {
          hN[(row * B + b) * H + j] = h[j];
          cN[(row * B + b) * H + j] = c[j];
        }
      }
    }
    inp = out;
    inW = D * H;
  }
  return { output: inp, h: hN, c: cN };
}
