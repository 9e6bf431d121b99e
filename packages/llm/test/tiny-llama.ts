/**
 * Test helpers: tiny random Llama-family checkpoints, and an independent plain-f64 forward pass
 * (no cache, no kernels) written from FORMAT.md §6.15 and HF `modeling_rope_utils.py`:
 *
 * ```
 * h = embed_tokens[ids]
 * per layer:  x = RMSNorm(h); q, k, v = x·Wqᵀ, x·Wkᵀ, x·Wvᵀ (+ b); rope(q), rope(k) at position p
 *             query head h reads kv head ⌊h/(H/KV)⌋; h += o_proj(softmax(q·kᵀ/√d, causal)·v)
 *             x = RMSNorm(h); h += down(silu(gate(x)) ⊙ up(x))
 * logits = RMSNorm(h; norm) · lm_headᵀ
 * ```
 */
import { Tensor } from "@wasmformer/core";
import { normalGen } from "@wasmformer/test-utils/prng";

export interface LlamaSpec {
  V?: number;
  D?: number;
  H?: number;
  KV?: number;
  /** head_dim given in the config (else D/H). */
  headDim?: number;
  L?: number;
  I?: number;
  P?: number;
  seed?: number;
  tied?: boolean;
  attentionBias?: boolean;
  /** store o_proj.bias too (HF Llama with attention_bias; Qwen2 has none) */
  oBias?: boolean;
  mlpBias?: boolean;
  theta?: number;
  ropeScaling?: Record<string, unknown> | null;
  modelType?: string;
  /** legacy `rotary_emb.inv_freq` buffers */
  legacy?: boolean;
  eos?: number | number[];
  extra?: Record<string, unknown>;
}

export interface TinyLlama {
  config: Record<string, unknown>;
  tensors: Map<string, Tensor>;
}

export function makeTinyLlama(s: LlamaSpec = {}): TinyLlama {
  const V = s.V ?? 50;
  const D = s.D ?? 24;
  const H = s.H ?? 4;
  const KV = s.KV ?? 2;
  const d = s.headDim ?? D / H;
  const L = s.L ?? 2;
  const I = s.I ?? 40;
  const normal = normalGen(s.seed ?? 1);
  const t = (shape: number[], std: number, mean = 0) =>
    new Tensor(
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => mean + std * normal()),
      shape,
      "f32",
    );
  const m = new Map<string, Tensor>();
  m.set("model.embed_tokens.weight", t([V, D], 0.7));
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    m.set(`${p}input_layernorm.weight`, t([D], 0.1, 1));
    m.set(`${p}self_attn.q_proj.weight`, t([H * d, D], 0.35));
    m.set(`${p}self_attn.k_proj.weight`, t([KV * d, D], 0.35));
    m.set(`${p}self_attn.v_proj.weight`, t([KV * d, D], 0.3));
    m.set(`${p}self_attn.o_proj.weight`, t([D, H * d], 0.25));
    if (s.attentionBias) {
      m.set(`${p}self_attn.q_proj.bias`, t([H * d], 0.2));
      m.set(`${p}self_attn.k_proj.bias`, t([KV * d], 0.2));
      m.set(`${p}self_attn.v_proj.bias`, t([KV * d], 0.2));
    }
    if (s.oBias) m.set(`${p}self_attn.o_proj.bias`, t([D], 0.2));
    m.set(`${p}post_attention_layernorm.weight`, t([D], 0.1, 1));
    m.set(`${p}mlp.gate_proj.weight`, t([I, D], 0.3));
    m.set(`${p}mlp.up_proj.weight`, t([I, D], 0.3));
    m.set(`${p}mlp.down_proj.weight`, t([D, I], 0.25));
    if (s.mlpBias) {
      m.set(`${p}mlp.gate_proj.bias`, t([I], 0.2));
      m.set(`${p}mlp.up_proj.bias`, t([I], 0.2));
      m.set(`${p}mlp.down_proj.bias`, t([D], 0.2));
    }
    if (s.legacy) m.set(`${p}self_attn.rotary_emb.inv_freq`, t([d / 2], 0.1, 0.5));
  }
  m.set("model.norm.weight", t([D], 0.1, 1));
  if (!s.tied) m.set("lm_head.weight", t([V, D], 0.5));
  const config: Record<string, unknown> = {
    architectures: ["LlamaForCausalLM"],
    model_type: s.modelType ?? "llama",
    vocab_size: V,
    hidden_size: D,
    intermediate_size: I,
    num_hidden_layers: L,
    num_attention_heads: H,
    num_key_value_heads: KV,
    head_dim: d,
    hidden_act: "silu",
    max_position_embeddings: s.P ?? 48,
    rms_norm_eps: 1e-5,
    rope_theta: s.theta ?? 10000,
    rope_scaling: s.ropeScaling ?? null,
    attention_bias: s.attentionBias ?? false,
    mlp_bias: s.mlpBias ?? false,
    tie_word_embeddings: s.tied ?? false,
    bos_token_id: 1,
    eos_token_id: s.eos ?? 2,
    pretraining_tp: 1,
    ...s.extra,
  };
  return { config, tensors: m };
}

/** HF inverse frequencies (float64), written from `modeling_rope_utils.py` (not from src/rope.ts). */
export function refInvFreq(c: Record<string, unknown>, seqLen?: number): number[] {
  const d = c.head_dim as number;
  const maxPos = c.max_position_embeddings as number;
  const sc = c.rope_scaling as Record<string, number & string> | null;
  const type = sc ? (sc.rope_type ?? sc.type) : "default";
  let base = c.rope_theta as number;
  if (type === "dynamic") {
    const n = seqLen !== undefined && seqLen > maxPos ? seqLen : maxPos;
    base = base * ((sc!.factor * n) / maxPos - (sc!.factor - 1)) ** (d / (d - 2));
  }
  const inv: number[] = [];
  for (let k = 0; k < d; k += 2) inv.push(1 / base ** (k / d));
  if (type === "linear") return inv.map((f) => f / sc!.factor);
  if (type === "llama3") {
    const old = sc!.original_max_position_embeddings;
    const lowW = old / sc!.low_freq_factor;
    const highW = old / sc!.high_freq_factor;
    return inv.map((f) => {
      const wl = (2 * Math.PI) / f;
      const scaled = wl > lowW ? f / sc!.factor : f;
      if (wl < highW || wl > lowW) return scaled;
      const smooth = (old / wl - sc!.low_freq_factor) / (sc!.high_freq_factor - sc!.low_freq_factor);
      return ((1 - smooth) * scaled) / sc!.factor + smooth * scaled;
    });
  }
  return inv;
}

/** Logits `[T, V]` (f64) of one sequence at positions 0..T−1. */
export function refLlama(tiny: TinyLlama, ids: number[]): Float64Array[] {
  const c = tiny.config;
  const m = tiny.tensors;
  const V = c.vocab_size as number;
  const D = c.hidden_size as number;
  const H = c.num_attention_heads as number;
  const KV = c.num_key_value_heads as number;
  const d = c.head_dim as number;
  const I = c.intermediate_size as number;
  const eps = c.rms_norm_eps as number;
  const W = (n: string) => m.get(n)?.data as Float32Array | undefined;
  const inv = refInvFreq(c);
  const rms = (x: Float64Array, g: Float32Array) => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const r = 1 / Math.sqrt(ss / x.length + eps);
    return Float64Array.from(x, (v, j) => v * r * g[j]);
  };
  // y = x · Wᵀ + b with W [out, in] (Linear)
  const lin = (x: Float64Array, w: Float32Array, b: Float32Array | undefined, nout: number) => {
    const y = new Float64Array(nout);
    for (let o = 0; o < nout; o++) {
      let s = b ? b[o] : 0;
      for (let p = 0; p < x.length; p++) s += x[p] * w[o * x.length + p];
      y[o] = s;
    }
    return y;
  };
  const rope = (v: Float64Array, heads: number, pos: number) => {
    const out = Float64Array.from(v);
    for (let h = 0; h < heads; h++)
      for (let j = 0; j < d / 2; j++) {
        const a = pos * inv[j];
        const x1 = v[h * d + j];
        const x2 = v[h * d + j + d / 2];
        out[h * d + j] = x1 * Math.cos(a) - x2 * Math.sin(a);
        out[h * d + j + d / 2] = x2 * Math.cos(a) + x1 * Math.sin(a);
      }
    return out;
  };
  const emb = W("model.embed_tokens.weight")!;
  let h = ids.map((id) => Float64Array.from({ length: D }, (_, j) => emb[id * D + j]));
  const T = ids.length;
  for (let l = 0; l < (c.num_hidden_layers as number); l++) {
    const p = `model.layers.${l}.`;
    const xs = h.map((x) => rms(x, W(`${p}input_layernorm.weight`)!));
    const q = xs.map((x, t) =>
      rope(lin(x, W(`${p}self_attn.q_proj.weight`)!, W(`${p}self_attn.q_proj.bias`), H * d), H, t),
    );
    const k = xs.map((x, t) =>
      rope(lin(x, W(`${p}self_attn.k_proj.weight`)!, W(`${p}self_attn.k_proj.bias`), KV * d), KV, t),
    );
    const v = xs.map((x) => lin(x, W(`${p}self_attn.v_proj.weight`)!, W(`${p}self_attn.v_proj.bias`), KV * d));
    const att = h.map(() => new Float64Array(H * d));
    for (let hh = 0; hh < H; hh++) {
      const g = Math.floor(hh / (H / KV));
      for (let i = 0; i < T; i++) {
        const s: number[] = [];
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q[i][hh * d + e] * k[j][g * d + e];
          s.push(dot / Math.sqrt(d));
        }
        const mx = Math.max(...s);
        const ex = s.map((x) => Math.exp(x - mx));
        const z = ex.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= i; j++) for (let e = 0; e < d; e++) att[i][hh * d + e] += (ex[j] / z) * v[j][g * d + e];
      }
    }
    h = h.map((x, t) => {
      const a = lin(att[t], W(`${p}self_attn.o_proj.weight`)!, W(`${p}self_attn.o_proj.bias`), D);
      const x1 = Float64Array.from(x, (val, j) => val + a[j]);
      const y = rms(x1, W(`${p}post_attention_layernorm.weight`)!);
      const gate = lin(y, W(`${p}mlp.gate_proj.weight`)!, W(`${p}mlp.gate_proj.bias`), I);
      const up = lin(y, W(`${p}mlp.up_proj.weight`)!, W(`${p}mlp.up_proj.bias`), I);
      const hid = Float64Array.from(gate, (gv, j) => (gv / (1 + Math.exp(-gv))) * up[j]);
      const o = lin(hid, W(`${p}mlp.down_proj.weight`)!, W(`${p}mlp.down_proj.bias`), D);
      return Float64Array.from(x1, (val, j) => val + o[j]);
    });
  }
  const head = W("lm_head.weight") && !c.tie_word_embeddings ? W("lm_head.weight")! : emb;
  return h.map((x) => {
    const y = rms(x, W("model.norm.weight")!);
    return Float64Array.from({ length: V }, (_, vv) => {
      let s = 0;
      for (let j = 0; j < D; j++) s += y[j] * head[vv * D + j];
      return s;
    });
  });
}

/** Uncached greedy with the reference: n tokens, plus the smallest top-2 margin seen. */
export function refLlamaGreedy(tiny: TinyLlama, prompt: number[], n: number): { ids: number[]; margin: number } {
  const seq = [...prompt];
  const ids: number[] = [];
  let margin = Infinity;
  for (let s = 0; s < n; s++) {
    const logits = refLlama(tiny, seq);
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
