/**
 * Test helpers: tiny random GPT-2 checkpoints, and an independent plain-f64 GPT-2 forward pass
 * (no cache, no kernels) written from FORMAT.md §6.12:
 *
 * ```
 * h = wte[input_ids] + wpe[positions]
 * per block:  a = attn.c_proj(Attn(ln_1(h)));  h = h + a;  h = h + mlp.c_proj(gelu_new(mlp.c_fc(ln_2(h))))
 * Attn(x):    q, k, v = the three E-wide slices of attn.c_attn(x); per head softmax(q·kᵀ/√(E/H)), causal
 * logits = ln_f(h) · wteᵀ
 * ```
 */
import { Tensor } from "@wasmformer/core";
import { normalGen } from "@wasmformer/test-utils/prng";
import type { WeightSource } from "../src/gpt2-model.js";

export interface TinySpec {
  V?: number;
  E?: number;
  H?: number;
  L?: number;
  P?: number;
  inner?: number | null;
  seed?: number;
  /** names with `transformer.` (default) or the original GPT-2 layout */
  prefix?: boolean;
  /** add the legacy h.{i}.attn.bias / masked_bias buffers */
  legacy?: boolean;
  /** store lm_head.weight (a copy of wte when tied; its own weight when untied) */
  lmHead?: "tied-copy" | "untied";
  activation?: string;
}

export interface Tiny {
  config: Record<string, unknown>;
  tensors: Map<string, Tensor>;
}

export function makeTiny(spec: TinySpec = {}): Tiny {
  const V = spec.V ?? 40;
  const E = spec.E ?? 16;
  const H = spec.H ?? 4;
  const L = spec.L ?? 2;
  const P = spec.P ?? 32;
  const I = spec.inner ?? 4 * E;
  const normal = normalGen(spec.seed ?? 1);
  const t = (shape: number[], std: number, mean = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return new Tensor(
      Float32Array.from({ length: n }, () => mean + std * normal()),
      shape,
      "f32",
    );
  };
  const pre = spec.prefix === false ? "" : "transformer.";
  const m = new Map<string, Tensor>();
  m.set(`${pre}wte.weight`, t([V, E], 0.5));
  m.set(`${pre}wpe.weight`, t([P, E], 0.2));
  for (let i = 0; i < L; i++) {
    const p = `${pre}h.${i}.`;
    m.set(`${p}ln_1.weight`, t([E], 0.1, 1));
    m.set(`${p}ln_1.bias`, t([E], 0.1));
    m.set(`${p}attn.c_attn.weight`, t([E, 3 * E], 0.3));
    m.set(`${p}attn.c_attn.bias`, t([3 * E], 0.1));
    m.set(`${p}attn.c_proj.weight`, t([E, E], 0.2));
    m.set(`${p}attn.c_proj.bias`, t([E], 0.1));
    m.set(`${p}ln_2.weight`, t([E], 0.1, 1));
    m.set(`${p}ln_2.bias`, t([E], 0.1));
    m.set(`${p}mlp.c_fc.weight`, t([E, I], 0.2));
    m.set(`${p}mlp.c_fc.bias`, t([I], 0.1));
    m.set(`${p}mlp.c_proj.weight`, t([I, E], 0.2));
    m.set(`${p}mlp.c_proj.bias`, t([E], 0.1));
    if (spec.legacy) {
      const tri = new Uint8Array(P * P);
      for (let a = 0; a < P; a++) for (let b = 0; b <= a; b++) tri[a * P + b] = 1;
      m.set(`${p}attn.bias`, new Tensor(tri, [1, 1, P, P], "bool"));
      m.set(`${p}attn.masked_bias`, new Tensor(Float32Array.of(-10000), [], "f32"));
    }
  }
  m.set(`${pre}ln_f.weight`, t([E], 0.1, 1));
  m.set(`${pre}ln_f.bias`, t([E], 0.1));
  if (spec.lmHead === "tied-copy") m.set("lm_head.weight", m.get(`${pre}wte.weight`)!.clone());
  if (spec.lmHead === "untied") m.set("lm_head.weight", t([V, E], 0.5));
  const config = {
    model_type: "gpt2",
    vocab_size: V,
    n_positions: P,
    n_ctx: P,
    n_embd: E,
    n_layer: L,
    n_head: H,
    n_inner: spec.inner ?? null,
    activation_function: spec.activation ?? "gelu_new",
    layer_norm_epsilon: 1e-5,
    tie_word_embeddings: spec.lmHead !== "untied",
    bos_token_id: V - 1,
    eos_token_id: V - 1,
  };
  return { config, tensors: m };
}

/** A `WeightSource` over a Map (sync `get`, with `info`). */
export function source(m: Map<string, Tensor>): WeightSource {
  return {
    names: () => [...m.keys()],
    has: (n) => m.has(n),
    info: (n) => ({ shape: m.get(n)!.shape }),
    get: (n) => m.get(n)!,
  };
}

// ---------------------------------------------------------------------------------------------
// the f64 reference

const gelus: Record<string, (x: number) => number> = {
  gelu_new: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  relu: (x) => Math.max(0, x),
};

/** Logits `[T, V]` (f64) of one sequence, positions 0..T−1, and attention probs per layer `[H][T][T]`. */
export function refForward(tiny: Tiny, ids: number[]): { logits: Float64Array[]; probs: number[][][][] } {
  const c = tiny.config as {
    vocab_size: number;
    n_embd: number;
    n_head: number;
    n_layer: number;
    n_inner: number | null;
    activation_function: string;
    tie_word_embeddings: boolean;
  };
  const V = c.vocab_size;
  const E = c.n_embd;
  const H = c.n_head;
  const d = E / H;
  const I = c.n_inner ?? 4 * E;
  const act = gelus[c.activation_function];
  const m = tiny.tensors;
  const pre = m.has("transformer.wte.weight") ? "transformer." : "";
  const W = (n: string) => m.get(pre + n)!.data as Float32Array;
  const T = ids.length;
  const ln = (x: Float64Array, g: Float32Array, b: Float32Array) => {
    let mean = 0;
    for (const v of x) mean += v;
    mean /= x.length;
    let vr = 0;
    for (const v of x) vr += (v - mean) ** 2;
    vr /= x.length;
    return Float64Array.from(x, (v, j) => ((v - mean) / Math.sqrt(vr + 1e-5)) * g[j] + b[j]);
  };
  // y = x · W + b with W [in, out] (Conv1D)
  const conv = (x: Float64Array, w: Float32Array, b: Float32Array, nout: number) => {
    const y = Float64Array.from(b);
    for (let p = 0; p < x.length; p++) for (let j = 0; j < nout; j++) y[j] += x[p] * w[p * nout + j];
    return y;
  };
  const wte = W("wte.weight");
  const wpe = W("wpe.weight");
  let h = ids.map((id, t) => Float64Array.from({ length: E }, (_, j) => wte[id * E + j] + wpe[t * E + j]));
  const probs: number[][][][] = [];
  for (let l = 0; l < c.n_layer; l++) {
    const p = `h.${l}.`;
    const qkv = h.map((x) =>
      conv(
        ln(x, W(`${p}ln_1.weight`), W(`${p}ln_1.bias`)),
        W(`${p}attn.c_attn.weight`),
        W(`${p}attn.c_attn.bias`),
        3 * E,
      ),
    );
    const att = h.map(() => new Float64Array(E));
    const lp: number[][][] = [];
    for (let hh = 0; hh < H; hh++) {
      const hp: number[][] = [];
      for (let i = 0; i < T; i++) {
        const s: number[] = [];
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let k = 0; k < d; k++) dot += qkv[i][hh * d + k] * qkv[j][E + hh * d + k];
          s.push(dot / Math.sqrt(d));
        }
        const mx = Math.max(...s);
        const e = s.map((v) => Math.exp(v - mx));
        const z = e.reduce((a, b) => a + b, 0);
        const pr = e.map((v) => v / z);
        for (let j = 0; j <= i; j++)
          for (let k = 0; k < d; k++) att[i][hh * d + k] += pr[j] * qkv[j][2 * E + hh * d + k];
        hp.push([...pr, ...new Array(T - 1 - i).fill(0)]);
      }
      lp.push(hp);
    }
    probs.push(lp);
    h = h.map((x, t) => {
      const a = conv(att[t], W(`${p}attn.c_proj.weight`), W(`${p}attn.c_proj.bias`), E);
      const x1 = Float64Array.from(x, (v, j) => v + a[j]);
      const f = conv(
        ln(x1, W(`${p}ln_2.weight`), W(`${p}ln_2.bias`)),
        W(`${p}mlp.c_fc.weight`),
        W(`${p}mlp.c_fc.bias`),
        I,
      ).map(act);
      const o = conv(f, W(`${p}mlp.c_proj.weight`), W(`${p}mlp.c_proj.bias`), E);
      return Float64Array.from(x1, (v, j) => v + o[j]);
    });
  }
  const head = c.tie_word_embeddings ? wte : (m.get("lm_head.weight")!.data as Float32Array);
  const logits = h.map((x) => {
    const y = ln(x, W("ln_f.weight"), W("ln_f.bias"));
    return Float64Array.from({ length: V }, (_, v) => {
      let s = 0;
      for (let j = 0; j < E; j++) s += y[j] * head[v * E + j];
      return s;
    });
  });
  return { logits, probs };
}

/** Uncached greedy with the reference: n tokens, plus the smallest top-2 margin seen. */
export function refGreedy(tiny: Tiny, prompt: number[], n: number): { ids: number[]; margin: number } {
  const seq = [...prompt];
  const ids: number[] = [];
  let margin = Infinity;
  for (let s = 0; s < n; s++) {
    const { logits } = refForward(tiny, seq);
    const last = logits[logits.length - 1];
    let best = 0;
    for (let v = 1; v < last.length; v++) if (last[v] > last[best]) best = v;
    let second = -Infinity;
    for (let v = 0; v < last.length; v++) if (v !== best) second = Math.max(second, last[v]);
    margin = Math.min(margin, last[best] - second);
    ids.push(best);
    seq.push(best);
  }
  return { ids, margin };
}

/** max |a − e| / (atol + rtol·|e|): ≤ 1 means within tolerance. */
export function excess(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-4, rtol = 1e-3): number {
  let w = 0;
  for (let i = 0; i < expected.length; i++)
    w = Math.max(w, Math.abs(actual[i] - expected[i]) / (atol + rtol * Math.abs(expected[i])));
  return w;
}
