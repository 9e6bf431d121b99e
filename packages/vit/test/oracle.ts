// An independent, straightforward float64 ViT forward written from FORMAT.md §6.11 (and PyTorch's
// bicubic interpolation for other image sizes), plus random checkpoints for it. Slow on purpose:
// plain nested loops over Float64Arrays, no kernels shared with the package.
import { Tensor } from "@wasmformer/core";
import { mulberry32 as rng } from "@wasmformer/test-utils/prng";

export interface OracleConfig {
  D: number;
  L: number;
  H: number;
  I: number;
  p: number;
  C: number;
  image: number; // config image_size (square)
  labels: number;
  eps: number;
  act: "gelu" | "gelu_new" | "relu";
  qkvBias: boolean;
}

export function hfConfigJson(c: OracleConfig): Record<string, unknown> {
  const id2label: Record<string, string> = {};
  for (let i = 0; i < c.labels; i++) id2label[String(i)] = `class_${i}`;
  return {
    architectures: ["ViTForImageClassification"],
    hidden_size: c.D,
    num_hidden_layers: c.L,
    num_attention_heads: c.H,
    intermediate_size: c.I,
    hidden_act: c.act,
    layer_norm_eps: c.eps,
    image_size: c.image,
    patch_size: c.p,
    num_channels: c.C,
    qkv_bias: c.qkvBias,
    id2label,
    model_type: "vit",
  };
}

/** Random HF-named weights (f32) for a config. */
export function randomWeights(c: OracleConfig, seed: number): Map<string, Tensor> {
  const r = rng(seed);
  const m = new Map<string, Tensor>();
  const g = c.image / c.p;
  const T = g * g + 1;
  const put = (name: string, shape: number[], scale = 0.3, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = offset + (r() * 2 - 1) * scale;
    m.set(name, new Tensor(d, shape));
  };
  const { D, I, C, p } = c;
  put("vit.embeddings.cls_token", [1, 1, D], 1);
  put("vit.embeddings.position_embeddings", [1, T, D], 1);
  put("vit.embeddings.patch_embeddings.projection.weight", [D, C, p, p], 0.5);
  put("vit.embeddings.patch_embeddings.projection.bias", [D], 0.2);
  for (let i = 0; i < c.L; i++) {
    const P = `vit.encoder.layer.${i}.`;
    put(`${P}layernorm_before.weight`, [D], 0.2, 1);
    put(`${P}layernorm_before.bias`, [D], 0.2);
    for (const q of ["query", "key", "value"]) {
      put(`${P}attention.attention.${q}.weight`, [D, D], 0.6);
      if (c.qkvBias) put(`${P}attention.attention.${q}.bias`, [D], 0.2);
    }
    put(`${P}attention.output.dense.weight`, [D, D], 0.3);
    put(`${P}attention.output.dense.bias`, [D], 0.1);
    put(`${P}layernorm_after.weight`, [D], 0.2, 1);
    put(`${P}layernorm_after.bias`, [D], 0.2);
    put(`${P}intermediate.dense.weight`, [I, D], 0.4);
    put(`${P}intermediate.dense.bias`, [I], 0.2);
    put(`${P}output.dense.weight`, [D, I], 0.3);
    put(`${P}output.dense.bias`, [D], 0.1);
  }
  put("vit.layernorm.weight", [D], 0.2, 1);
  put("vit.layernorm.bias", [D], 0.2);
  put("classifier.weight", [c.labels, D], 0.5);
  put("classifier.bias", [c.labels], 0.1);
  return m;
}

/** The same weights under timm names (q; k; v fused into `attn.qkv`). */
export function toTimm(c: OracleConfig, hf: Map<string, Tensor>): Map<string, Tensor> {
  const t = new Map<string, Tensor>();
  const get = (n: string) => hf.get(n)!;
  t.set("cls_token", get("vit.embeddings.cls_token"));
  t.set("pos_embed", get("vit.embeddings.position_embeddings"));
  t.set("patch_embed.proj.weight", get("vit.embeddings.patch_embeddings.projection.weight"));
  t.set("patch_embed.proj.bias", get("vit.embeddings.patch_embeddings.projection.bias"));
  const cat = (ts: Tensor[], shape: number[]) => {
    const d = new Float32Array(ts.reduce((a, x) => a + x.size, 0));
    let o = 0;
    for (const x of ts) {
      d.set(x.data as Float32Array, o);
      o += x.size;
    }
    return new Tensor(d, shape);
  };
  for (let i = 0; i < c.L; i++) {
    const P = `vit.encoder.layer.${i}.`;
    const B = `blocks.${i}.`;
    t.set(`${B}norm1.weight`, get(`${P}layernorm_before.weight`));
    t.set(`${B}norm1.bias`, get(`${P}layernorm_before.bias`));
    const qkv = ["query", "key", "value"];
    t.set(
      `${B}attn.qkv.weight`,
      cat(
        qkv.map((q) => get(`${P}attention.attention.${q}.weight`)),
        [3 * c.D, c.D],
      ),
    );
    if (c.qkvBias)
      t.set(
        `${B}attn.qkv.bias`,
        cat(
          qkv.map((q) => get(`${P}attention.attention.${q}.bias`)),
          [3 * c.D],
        ),
      );
    t.set(`${B}attn.proj.weight`, get(`${P}attention.output.dense.weight`));
    t.set(`${B}attn.proj.bias`, get(`${P}attention.output.dense.bias`));
    t.set(`${B}norm2.weight`, get(`${P}layernorm_after.weight`));
    t.set(`${B}norm2.bias`, get(`${P}layernorm_after.bias`));
    t.set(`${B}mlp.fc1.weight`, get(`${P}intermediate.dense.weight`));
    t.set(`${B}mlp.fc1.bias`, get(`${P}intermediate.dense.bias`));
    t.set(`${B}mlp.fc2.weight`, get(`${P}output.dense.weight`));
    t.set(`${B}mlp.fc2.bias`, get(`${P}output.dense.bias`));
  }
  t.set("norm.weight", get("vit.layernorm.weight"));
  t.set("norm.bias", get("vit.layernorm.bias"));
  t.set("head.weight", get("classifier.weight"));
  t.set("head.bias", get("classifier.bias"));
  return t;
}

export function randomPixels(B: number, C: number, H: number, W: number, seed: number): Tensor<"f32"> {
  const r = rng(seed);
  const d = new Float32Array(B * C * H * W);
  for (let i = 0; i < d.length; i++) d[i] = r() * 2 - 1;
  return new Tensor(d, [B, C, H, W]);
}

// ---- float64 math, written from the formulas

function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is too coarse; use a series / continued fraction to ~1e-15
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = ax;
    let term = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const v = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -v : v;
  }
  // erfc continued fraction for large |x|
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return x < 0 ? erfc - 1 : 1 - erfc;
}

function act(x: number, a: OracleConfig["act"]): number {
  if (a === "gelu") return 0.5 * x * (1 + erf(x / Math.SQRT2));
  if (a === "gelu_new") return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  return Math.max(0, x);
}

function layerNorm(x: number[], w: Float32Array, b: Float32Array, eps: number): number[] {
  const n = x.length;
  const mean = x.reduce((a, v) => a + v, 0) / n;
  const v = x.reduce((a, t) => a + (t - mean) ** 2, 0) / n;
  return x.map((t, i) => ((t - mean) / Math.sqrt(v + eps)) * w[i]! + b[i]!);
}

function linear(x: number[], w: Float32Array, b: Float32Array | undefined, out: number): number[] {
  const n = x.length;
  const y: number[] = [];
  for (let o = 0; o < out; o++) {
    let s = b ? b[o]! : 0;
    for (let i = 0; i < n; i++) s += w[o * n + i]! * x[i]!;
    y.push(s);
  }
  return y;
}

/** PyTorch bicubic (A = −0.75, align_corners=False, border clamp) of a [g, g, D] grid to [oh, ow, D]. */
function bicubic(grid: number[][], g0h: number, g0w: number, oh: number, ow: number): number[][] {
  const A = -0.75;
  const w4 = (t: number) => {
    const c1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
    const c2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)];
  };
  const out: number[][] = [];
  const D = grid[0]!.length;
  for (let y = 0; y < oh; y++)
    for (let x = 0; x < ow; x++) {
      const sy = (y + 0.5) * (g0h / oh) - 0.5;
      const sx = (x + 0.5) * (g0w / ow) - 0.5;
      const iy = Math.floor(sy);
      const ix = Math.floor(sx);
      const wy = w4(sy - iy);
      const wx = w4(sx - ix);
      const v = new Array(D).fill(0);
      for (let i = 0; i < 4; i++)
        for (let j = 0; j < 4; j++) {
          const yy = Math.min(Math.max(iy - 1 + i, 0), g0h - 1);
          const xx = Math.min(Math.max(ix - 1 + j, 0), g0w - 1);
          const src = grid[yy * g0w + xx]!;
          for (let d = 0; d < D; d++) v[d] += wy[i]! * wx[j]! * src[d]!;
        }
      out.push(v);
    }
  return out;
}

export interface OracleOut {
  logits: number[][]; // [B][labels]
  hidden: number[][][]; // [B][T][D]
  attn: number[][][][][]; // [L][B][H][T][T]
  states: number[][][][]; // [L + 1][B][T][D] residual stream after embeddings and each layer
}

/** The FORMAT.md §6.11 computation in f64, for a [B, C, Hi, Wi] input. */
export function oracleForward(c: OracleConfig, w: Map<string, Tensor>, px: Tensor): OracleOut {
  const f = (n: string) => w.get(n)!.data as Float32Array;
  const [B, C, Hi, Wi] = px.shape as [number, number, number, number];
  const { D, p, H } = c;
  const hs = D / H;
  const gh = Math.floor(Hi / p);
  const gw = Math.floor(Wi / p);
  const N = gh * gw;
  const T = N + 1;
  const g0 = c.image / p;
  const posW = f("vit.embeddings.position_embeddings");
  let pos: number[][] = [];
  for (let t = 0; t < g0 * g0 + 1; t++) pos.push(Array.from(posW.subarray(t * D, (t + 1) * D)));
  if (gh !== g0 || gw !== g0) pos = [pos[0]!, ...bicubic(pos.slice(1), g0, g0, gh, gw)];
  const pw = f("vit.embeddings.patch_embeddings.projection.weight");
  const pb = f("vit.embeddings.patch_embeddings.projection.bias");
  const X = px.data as Float32Array;
  const out: OracleOut = {
    logits: [],
    hidden: [],
    attn: Array.from({ length: c.L }, () => []),
    states: Array.from({ length: c.L + 1 }, () => []),
  };
  for (let b = 0; b < B; b++) {
    let h: number[][] = [Array.from(f("vit.embeddings.cls_token"))];
    for (let r = 0; r < gh; r++)
      for (let cc = 0; cc < gw; cc++) {
        const v: number[] = [];
        for (let o = 0; o < D; o++) {
          let s = pb[o]!;
          for (let ch = 0; ch < C; ch++)
            for (let u = 0; u < p; u++)
              for (let q = 0; q < p; q++)
                s += pw[((o * C + ch) * p + u) * p + q]! * X[((b * C + ch) * Hi + r * p + u) * Wi + cc * p + q]!;
          v.push(s);
        }
        h.push(v);
      }
    h = h.map((row, t) => row.map((v, d) => v + pos[t]![d]!));
    out.states[0]!.push(h);
    for (let l = 0; l < c.L; l++) {
      const P = `vit.encoder.layer.${l}.`;
      const x = h.map((row) => layerNorm(row, f(`${P}layernorm_before.weight`), f(`${P}layernorm_before.bias`), c.eps));
      const bias = (q: string) => (c.qkvBias ? f(`${P}attention.attention.${q}.bias`) : undefined);
      const Q = x.map((row) => linear(row, f(`${P}attention.attention.query.weight`), bias("query"), D));
      const K = x.map((row) => linear(row, f(`${P}attention.attention.key.weight`), bias("key"), D));
      const V = x.map((row) => linear(row, f(`${P}attention.attention.value.weight`), bias("value"), D));
      const ctx = Array.from({ length: T }, () => new Array(D).fill(0));
      const heads: number[][][] = [];
      for (let hh = 0; hh < H; hh++) {
        const A: number[][] = [];
        for (let i = 0; i < T; i++) {
          const s: number[] = [];
          for (let j = 0; j < T; j++) {
            let dot = 0;
            for (let d = 0; d < hs; d++) dot += Q[i]![hh * hs + d]! * K[j]![hh * hs + d]!;
            s.push(dot / Math.sqrt(hs));
          }
          const m = Math.max(...s);
          const e = s.map((v) => Math.exp(v - m));
          const z = e.reduce((a, v) => a + v, 0);
          const a = e.map((v) => v / z);
          A.push(a);
          for (let d = 0; d < hs; d++) {
            let acc = 0;
            for (let j = 0; j < T; j++) acc += a[j]! * V[j]![hh * hs + d]!;
            ctx[i]![hh * hs + d] = acc;
          }
        }
        heads.push(A);
      }
      out.attn[l]!.push(heads);
      h = h.map((row, t) => {
        const a = linear(ctx[t]!, f(`${P}attention.output.dense.weight`), f(`${P}attention.output.dense.bias`), D);
        return row.map((v, d) => v + a[d]!);
      });
      h = h.map((row) => {
        const y = layerNorm(row, f(`${P}layernorm_after.weight`), f(`${P}layernorm_after.bias`), c.eps);
        const m = linear(y, f(`${P}intermediate.dense.weight`), f(`${P}intermediate.dense.bias`), c.I).map((v) =>
          act(v, c.act),
        );
        const o = linear(m, f(`${P}output.dense.weight`), f(`${P}output.dense.bias`), D);
        return row.map((v, d) => v + o[d]!);
      });
      out.states[l + 1]!.push(h);
    }
    const last = h.map((row) => layerNorm(row, f("vit.layernorm.weight"), f("vit.layernorm.bias"), c.eps));
    out.hidden.push(last);
    out.logits.push(linear(last[0]!, f("classifier.weight"), f("classifier.bias"), c.labels));
  }
  return out;
}

/** Max |a − e| / (atol + rtol·|e|) over flat arrays (≤ 1 passes). */
export function ratio(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-4, rtol = 1e-3): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let r = 0;
  for (let i = 0; i < expected.length; i++) {
    const q = Math.abs(actual[i]! - expected[i]!) / (atol + rtol * Math.abs(expected[i]!));
    if (!(q <= r)) r = Number.isNaN(q) ? Number.POSITIVE_INFINITY : q;
  }
  return r;
}
