/**
 * Test helpers: tiny random `vit-qformer-gpt2` checkpoints, and an independent plain-f64
 * implementation of FORMAT.md §6.13 (no kernels, no heap, no KV cache; nothing from src/):
 *
 * ```
 * img  = ViTModel(pixel_values).last_hidden_state          (after vision_model.layernorm, CLS included)
 * h    = qformer.layernorm(query_tokens)
 * per layer i:  a = LN(h + dense(SelfAttn(h)));  if i mod f == 0: a = LN(a + dense(CrossAttn(a, img)))
 *               h = LN(a + output_query.dense(gelu(intermediate_query.dense(a))))
 * projected = language_projection(h);  inputs_embeds = [wte[prefix]; projected; wte[suffix]]
 * logits = GPT-2 on inputs_embeds;  greedy: argmax, the chosen token's wte row appended
 * ```
 * With `lm: "llama"` the language model is a Llama (FORMAT.md §6.15: RMSNorm, rotary positions,
 * SwiGLU, grouped-query attention) under `language_model.model.*` / `language_model.lm_head.weight`.
 * Greedy decoding recomputes the whole sequence at every step.
 */
import { erf, Tensor } from "@wasmformer/core";
import { normalGen } from "@wasmformer/test-utils/prng";

export interface VlmSpec {
  Dv?: number;
  Lv?: number;
  Hv?: number;
  Iv?: number;
  image?: number;
  patch?: number;
  Dq?: number;
  Lq?: number;
  Hq?: number;
  Iq?: number;
  freq?: number;
  Q?: number;
  V?: number;
  Et?: number;
  Lt?: number;
  Ht?: number;
  Pos?: number;
  seed?: number;
  /** add BLIP-2's text-branch feed-forward tensors (to be ignored) */
  textBranch?: boolean;
  /** the language model: GPT-2 (default) or a Llama */
  lm?: "gpt2" | "llama";
  /** Llama: key/value heads (default Ht: plain multi-head) */
  KVh?: number;
  /** Llama: MLP width (default 2·Et + 3) */
  It?: number;
  /** Llama: lm_head tied to embed_tokens (default false) */
  tied?: boolean;
  /** Llama: rope_theta (default 10000) */
  theta?: number;
  /** Llama: bos_token_id (default 1) */
  bos?: number;
  /** Llama: q/k/v biases (`attention_bias`, as Qwen2 has them) */
  attnBias?: boolean;
}

export interface TinyVlm {
  config: Record<string, unknown>;
  tensors: Map<string, Tensor>;
}

export function makeVlm(spec: VlmSpec = {}): TinyVlm {
  const Dv = spec.Dv ?? 12;
  const Lv = spec.Lv ?? 2;
  const Hv = spec.Hv ?? 3;
  const Iv = spec.Iv ?? 20;
  const image = spec.image ?? 12;
  const p = spec.patch ?? 4;
  const Dq = spec.Dq ?? 10;
  const Lq = spec.Lq ?? 3;
  const Hq = spec.Hq ?? 2;
  const Iq = spec.Iq ?? 14;
  const f = spec.freq ?? 2;
  const Q = spec.Q ?? 3;
  const V = spec.V ?? 29;
  const Et = spec.Et ?? 14;
  const Lt = spec.Lt ?? 2;
  const Ht = spec.Ht ?? 2;
  const Pos = spec.Pos ?? 40;
  const normal = normalGen(spec.seed ?? 1);
  const m = new Map<string, Tensor>();
  const t = (name: string, shape: number[], std: number, mean = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = mean + std * normal();
    m.set(name, new Tensor(d, shape));
  };
  const lin = (name: string, out: number, inp: number) => {
    t(`${name}.weight`, [out, inp], 0.9 / Math.sqrt(inp));
    t(`${name}.bias`, [out], 0.1);
  };
  const ln = (name: string, d: number) => {
    t(`${name}.weight`, [d], 0.15, 1);
    t(`${name}.bias`, [d], 0.1);
  };
  // ---- vision tower (HF ViTModel names under vision_model.)
  const g = Math.floor(image / p);
  const Timg = g * g + 1;
  t("vision_model.embeddings.cls_token", [1, 1, Dv], 0.5);
  t("vision_model.embeddings.position_embeddings", [1, Timg, Dv], 0.3);
  t("vision_model.embeddings.patch_embeddings.projection.weight", [Dv, 3, p, p], 1 / Math.sqrt(3 * p * p));
  t("vision_model.embeddings.patch_embeddings.projection.bias", [Dv], 0.1);
  for (let i = 0; i < Lv; i++) {
    const L = `vision_model.encoder.layer.${i}.`;
    ln(`${L}layernorm_before`, Dv);
    for (const x of ["query", "key", "value"]) lin(`${L}attention.attention.${x}`, Dv, Dv);
    lin(`${L}attention.output.dense`, Dv, Dv);
    ln(`${L}layernorm_after`, Dv);
    lin(`${L}intermediate.dense`, Iv, Dv);
    lin(`${L}output.dense`, Dv, Iv);
  }
  ln("vision_model.layernorm", Dv);
  // ---- Q-Former (HF Blip2QFormerModel names under qformer.)
  t("query_tokens", [1, Q, Dq], 0.8);
  ln("qformer.layernorm", Dq);
  for (let i = 0; i < Lq; i++) {
    const L = `qformer.encoder.layer.${i}.`;
    for (const x of ["query", "key", "value"]) lin(`${L}attention.attention.${x}`, Dq, Dq);
    lin(`${L}attention.output.dense`, Dq, Dq);
    ln(`${L}attention.output.LayerNorm`, Dq);
    if (i % f === 0) {
      lin(`${L}crossattention.attention.query`, Dq, Dq);
      lin(`${L}crossattention.attention.key`, Dq, Dv);
      lin(`${L}crossattention.attention.value`, Dq, Dv);
      lin(`${L}crossattention.output.dense`, Dq, Dq);
      ln(`${L}crossattention.output.LayerNorm`, Dq);
    }
    lin(`${L}intermediate_query.dense`, Iq, Dq);
    lin(`${L}output_query.dense`, Dq, Iq);
    ln(`${L}output_query.LayerNorm`, Dq);
    if (spec.textBranch) {
      lin(`${L}intermediate.dense`, Iq, Dq);
      lin(`${L}output.dense`, Dq, Iq);
      ln(`${L}output.LayerNorm`, Dq);
    }
  }
  lin("language_projection", Et, Dq);
  if (spec.lm === "llama")
    return {
      config: {
        ...visionQformerConfig(),
        model_type: "vit-qformer-llama",
        text_config: tinyLlama(t, spec, V, Et, Lt, Ht, Pos),
      },
      tensors: m,
    };
  // ---- GPT-2 (HF names under language_model.; Conv1D weights [in, out])
  const G = "language_model.transformer.";
  t(`${G}wte.weight`, [V, Et], 0.6);
  t(`${G}wpe.weight`, [Pos, Et], 0.2);
  for (let i = 0; i < Lt; i++) {
    const L = `${G}h.${i}.`;
    ln(`${L}ln_1`, Et);
    t(`${L}attn.c_attn.weight`, [Et, 3 * Et], 0.9 / Math.sqrt(Et));
    t(`${L}attn.c_attn.bias`, [3 * Et], 0.1);
    t(`${L}attn.c_proj.weight`, [Et, Et], 0.9 / Math.sqrt(Et));
    t(`${L}attn.c_proj.bias`, [Et], 0.1);
    ln(`${L}ln_2`, Et);
    t(`${L}mlp.c_fc.weight`, [Et, 4 * Et], 0.9 / Math.sqrt(Et));
    t(`${L}mlp.c_fc.bias`, [4 * Et], 0.1);
    t(`${L}mlp.c_proj.weight`, [4 * Et, Et], 0.9 / Math.sqrt(4 * Et));
    t(`${L}mlp.c_proj.bias`, [Et], 0.1);
  }
  ln(`${G}ln_f`, Et);
  function visionQformerConfig() {
    return {
      num_query_tokens: Q,
      vision_config: {
        hidden_size: Dv,
        num_hidden_layers: Lv,
        num_attention_heads: Hv,
        intermediate_size: Iv,
        hidden_act: "gelu",
        layer_norm_eps: 1e-12,
        image_size: image,
        patch_size: p,
        num_channels: 3,
        qkv_bias: true,
      },
      qformer_config: {
        hidden_size: Dq,
        num_hidden_layers: Lq,
        num_attention_heads: Hq,
        intermediate_size: Iq,
        hidden_act: "gelu",
        layer_norm_eps: 1e-12,
        cross_attention_frequency: f,
        encoder_hidden_size: Dv,
        position_embedding_type: "absolute",
        use_qformer_text_input: false,
      },
    };
  }
  const config = {
    model_type: "vit-qformer-gpt2",
    ...visionQformerConfig(),
    text_config: {
      vocab_size: V,
      n_positions: Pos,
      n_embd: Et,
      n_layer: Lt,
      n_head: Ht,
      n_inner: null,
      activation_function: "gelu_new",
      layer_norm_epsilon: 1e-5,
      bos_token_id: V - 1,
      eos_token_id: V - 1,
    },
  };
  return { config, tensors: m };
}

/** Llama weights under `language_model.` (HF `LlamaForCausalLM` names); returns its config. */
function tinyLlama(
  t: (name: string, shape: number[], std: number, mean?: number) => void,
  spec: VlmSpec,
  V: number,
  D: number,
  L: number,
  H: number,
  Pos: number,
): Record<string, unknown> {
  const KV = spec.KVh ?? H;
  const d = D / H;
  const I = spec.It ?? 2 * D + 3;
  const M = "language_model.model.";
  t(`${M}embed_tokens.weight`, [V, D], 0.6);
  for (let i = 0; i < L; i++) {
    const P = `${M}layers.${i}.`;
    t(`${P}input_layernorm.weight`, [D], 0.15, 1);
    t(`${P}self_attn.q_proj.weight`, [H * d, D], 0.9 / Math.sqrt(D));
    t(`${P}self_attn.k_proj.weight`, [KV * d, D], 0.9 / Math.sqrt(D));
    t(`${P}self_attn.v_proj.weight`, [KV * d, D], 0.9 / Math.sqrt(D));
    if (spec.attnBias) {
      t(`${P}self_attn.q_proj.bias`, [H * d], 0.1);
      t(`${P}self_attn.k_proj.bias`, [KV * d], 0.1);
      t(`${P}self_attn.v_proj.bias`, [KV * d], 0.1);
    }
    t(`${P}self_attn.o_proj.weight`, [D, H * d], 0.9 / Math.sqrt(H * d));
    t(`${P}post_attention_layernorm.weight`, [D], 0.15, 1);
    t(`${P}mlp.gate_proj.weight`, [I, D], 1.2 / Math.sqrt(D));
    t(`${P}mlp.up_proj.weight`, [I, D], 1.2 / Math.sqrt(D));
    t(`${P}mlp.down_proj.weight`, [D, I], 0.9 / Math.sqrt(I));
  }
  t(`${M}norm.weight`, [D], 0.15, 1);
  if (!spec.tied) t("language_model.lm_head.weight", [V, D], 1 / Math.sqrt(D));
  return {
    model_type: "llama",
    vocab_size: V,
    hidden_size: D,
    intermediate_size: I,
    num_hidden_layers: L,
    num_attention_heads: H,
    num_key_value_heads: KV,
    head_dim: d,
    hidden_act: "silu",
    max_position_embeddings: Pos,
    rms_norm_eps: 1e-6,
    rope_theta: spec.theta ?? 10000,
    rope_scaling: null,
    attention_bias: spec.attnBias ?? false,
    mlp_bias: false,
    tie_word_embeddings: spec.tied ?? false,
    bos_token_id: spec.bos ?? 1,
    eos_token_id: V - 1,
  };
}

export function randomPixels(B: number, size: number, seed: number): Tensor<"f32"> {
  const normal = normalGen(seed);
  const d = new Float32Array(B * 3 * size * size);
  for (let i = 0; i < d.length; i++) d[i] = normal();
  return new Tensor(d, [B, 3, size, size]);
}

// ---------------------------------------------------------------------------------------------
// f64 building blocks

type W = (name: string) => Float32Array;

function weights(tiny: TinyVlm): W {
  return (name) => {
    const t = tiny.tensors.get(name);
    if (!t) throw new Error(`oracle: no tensor ${name}`);
    return t.data as Float32Array;
  };
}

/** y (n, out) = x (n, in) · Wᵀ + b, W `[out, in]` (torch Linear). */
function linear(x: Float64Array, n: number, inp: number, out: number, w: Float32Array, b: Float32Array): Float64Array {
  const y = new Float64Array(n * out);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < out; o++) {
      let s = b[o]!;
      for (let i = 0; i < inp; i++) s += x[r * inp + i]! * w[o * inp + i]!;
      y[r * out + o] = s;
    }
  return y;
}

/** y (n, out) = x (n, in) · W + b, W `[in, out]` (HF Conv1D). */
function conv1d(x: Float64Array, n: number, inp: number, out: number, w: Float32Array, b: Float32Array): Float64Array {
  const y = new Float64Array(n * out);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < out; o++) {
      let s = b[o]!;
      for (let i = 0; i < inp; i++) s += x[r * inp + i]! * w[i * out + o]!;
      y[r * out + o] = s;
    }
  return y;
}

function layerNorm(x: Float64Array, n: number, d: number, g: Float32Array, b: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i]!;
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[r * d + i]! - mean) ** 2;
    v /= d;
    const inv = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = (x[r * d + i]! - mean) * inv * g[i]! + b[i]!;
  }
  return y;
}

const geluExact = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
const geluTanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

function add(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v + b[i]!);
}

/**
 * Multi-head attention: q (Lq, E) with row stride `qs`/offset `qo`, k/v likewise; heads are
 * contiguous chunks of E/H. Returns (Lq, E).
 */
function mha(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  Lq: number,
  Lk: number,
  E: number,
  H: number,
  causal: boolean,
): Float64Array {
  const d = E / H;
  const out = new Float64Array(Lq * E);
  for (let h = 0; h < H; h++)
    for (let i = 0; i < Lq; i++) {
      const s = new Float64Array(Lk);
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < Lk; j++) {
        if (causal && j > i) {
          s[j] = Number.NEGATIVE_INFINITY;
          continue;
        }
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[i * E + h * d + c]! * k[j * E + h * d + c]!;
        s[j] = dot / Math.sqrt(d);
        max = Math.max(max, s[j]!);
      }
      let z = 0;
      for (let j = 0; j < Lk; j++) {
        s[j] = Math.exp(s[j]! - max);
        z += s[j]!;
      }
      for (let c = 0; c < d; c++) {
        let acc = 0;
        for (let j = 0; j < Lk; j++) acc += s[j]! * v[j * E + h * d + c]!;
        out[i * E + h * d + c] = acc / z;
      }
    }
  return out;
}

const slice = (x: Float64Array, rows: number, ld: number, off: number, w: number) => {
  const y = new Float64Array(rows * w);
  for (let r = 0; r < rows; r++) for (let c = 0; c < w; c++) y[r * w + c] = x[r * ld + off + c]!;
  return y;
};

// ---------------------------------------------------------------------------------------------
// the model

/** ViT last_hidden_state of one image `[3, S, S]` → (T, Dv). */
export function refVit(tiny: TinyVlm, px: Float32Array): Float64Array {
  const w = weights(tiny);
  const c = tiny.config.vision_config as Record<string, number>;
  const D = c.hidden_size!;
  const p = c.patch_size!;
  const S = c.image_size!;
  const g = Math.floor(S / p);
  const N = g * g;
  const T = N + 1;
  const H = c.num_attention_heads!;
  const I = c.intermediate_size!;
  const eps = c.layer_norm_eps!;
  const pw = w("vision_model.embeddings.patch_embeddings.projection.weight");
  const pb = w("vision_model.embeddings.patch_embeddings.projection.bias");
  const cls = w("vision_model.embeddings.cls_token");
  const pos = w("vision_model.embeddings.position_embeddings");
  let h: Float64Array = new Float64Array(T * D);
  for (let d = 0; d < D; d++) h[d] = cls[d]! + pos[d]!;
  for (let n = 0; n < N; n++) {
    const r = Math.floor(n / g);
    const col = n % g;
    for (let d = 0; d < D; d++) {
      let s = pb[d]!;
      for (let ch = 0; ch < 3; ch++)
        for (let u = 0; u < p; u++)
          for (let v = 0; v < p; v++)
            s += px[ch * S * S + (r * p + u) * S + col * p + v]! * pw[((d * 3 + ch) * p + u) * p + v]!;
      h[(n + 1) * D + d] = s + pos[(n + 1) * D + d]!;
    }
  }
  for (let l = 0; l < c.num_hidden_layers!; l++) {
    const L = `vision_model.encoder.layer.${l}.`;
    const x = layerNorm(h, T, D, w(`${L}layernorm_before.weight`), w(`${L}layernorm_before.bias`), eps);
    const A = `${L}attention.attention.`;
    const q = linear(x, T, D, D, w(`${A}query.weight`), w(`${A}query.bias`));
    const k = linear(x, T, D, D, w(`${A}key.weight`), w(`${A}key.bias`));
    const v = linear(x, T, D, D, w(`${A}value.weight`), w(`${A}value.bias`));
    const ctx = mha(q, k, v, T, T, D, H, false);
    h = add(h, linear(ctx, T, D, D, w(`${L}attention.output.dense.weight`), w(`${L}attention.output.dense.bias`)));
    const x2 = layerNorm(h, T, D, w(`${L}layernorm_after.weight`), w(`${L}layernorm_after.bias`), eps);
    const m = linear(x2, T, D, I, w(`${L}intermediate.dense.weight`), w(`${L}intermediate.dense.bias`)).map(geluExact);
    h = add(h, linear(m, T, I, D, w(`${L}output.dense.weight`), w(`${L}output.dense.bias`)));
  }
  return layerNorm(h, T, D, w("vision_model.layernorm.weight"), w("vision_model.layernorm.bias"), eps);
}

/** Q-Former last_hidden_state (Q, Dq) over image features (T, Dv). */
export function refQFormer(tiny: TinyVlm, img: Float64Array, T: number): Float64Array {
  const w = weights(tiny);
  const c = tiny.config.qformer_config as Record<string, number>;
  const D = c.hidden_size!;
  const Dv = c.encoder_hidden_size!;
  const H = c.num_attention_heads!;
  const I = c.intermediate_size!;
  const eps = c.layer_norm_eps!;
  const Q = tiny.config.num_query_tokens as number;
  let h = layerNorm(
    Float64Array.from(w("query_tokens")),
    Q,
    D,
    w("qformer.layernorm.weight"),
    w("qformer.layernorm.bias"),
    eps,
  );
  for (let l = 0; l < c.num_hidden_layers!; l++) {
    const L = `qformer.encoder.layer.${l}.`;
    const A = `${L}attention.attention.`;
    const q = linear(h, Q, D, D, w(`${A}query.weight`), w(`${A}query.bias`));
    const k = linear(h, Q, D, D, w(`${A}key.weight`), w(`${A}key.bias`));
    const v = linear(h, Q, D, D, w(`${A}value.weight`), w(`${A}value.bias`));
    const sa = linear(
      mha(q, k, v, Q, Q, D, H, false),
      Q,
      D,
      D,
      w(`${L}attention.output.dense.weight`),
      w(`${L}attention.output.dense.bias`),
    );
    let a = layerNorm(
      add(h, sa),
      Q,
      D,
      w(`${L}attention.output.LayerNorm.weight`),
      w(`${L}attention.output.LayerNorm.bias`),
      eps,
    );
    if (l % c.cross_attention_frequency! === 0) {
      const C = `${L}crossattention.attention.`;
      const cq = linear(a, Q, D, D, w(`${C}query.weight`), w(`${C}query.bias`));
      const ck = linear(img, T, Dv, D, w(`${C}key.weight`), w(`${C}key.bias`));
      const cv = linear(img, T, Dv, D, w(`${C}value.weight`), w(`${C}value.bias`));
      const ca = linear(
        mha(cq, ck, cv, Q, T, D, H, false),
        Q,
        D,
        D,
        w(`${L}crossattention.output.dense.weight`),
        w(`${L}crossattention.output.dense.bias`),
      );
      a = layerNorm(
        add(a, ca),
        Q,
        D,
        w(`${L}crossattention.output.LayerNorm.weight`),
        w(`${L}crossattention.output.LayerNorm.bias`),
        eps,
      );
    }
    const m = linear(a, Q, D, I, w(`${L}intermediate_query.dense.weight`), w(`${L}intermediate_query.dense.bias`)).map(
      geluExact,
    );
    const o = linear(m, Q, I, D, w(`${L}output_query.dense.weight`), w(`${L}output_query.dense.bias`));
    h = layerNorm(add(a, o), Q, D, w(`${L}output_query.LayerNorm.weight`), w(`${L}output_query.LayerNorm.bias`), eps);
  }
  return h;
}

/** GPT-2 logits (T, V) of one row of embeddings (T, E). */
export function refGpt2(tiny: TinyVlm, emb: Float64Array, T: number): Float64Array {
  const w = weights(tiny);
  const c = tiny.config.text_config as Record<string, number>;
  const E = c.n_embd!;
  const V = c.vocab_size!;
  const H = c.n_head!;
  const eps = c.layer_norm_epsilon!;
  const G = "language_model.transformer.";
  const wpe = w(`${G}wpe.weight`);
  let h: Float64Array = emb.map((v, i) => v + wpe[i]!);
  for (let l = 0; l < c.n_layer!; l++) {
    const L = `${G}h.${l}.`;
    const x = layerNorm(h, T, E, w(`${L}ln_1.weight`), w(`${L}ln_1.bias`), eps);
    const qkv = conv1d(x, T, E, 3 * E, w(`${L}attn.c_attn.weight`), w(`${L}attn.c_attn.bias`));
    const ctx = mha(
      slice(qkv, T, 3 * E, 0, E),
      slice(qkv, T, 3 * E, E, E),
      slice(qkv, T, 3 * E, 2 * E, E),
      T,
      T,
      E,
      H,
      true,
    );
    h = add(h, conv1d(ctx, T, E, E, w(`${L}attn.c_proj.weight`), w(`${L}attn.c_proj.bias`)));
    const x2 = layerNorm(h, T, E, w(`${L}ln_2.weight`), w(`${L}ln_2.bias`), eps);
    const m = conv1d(x2, T, E, 4 * E, w(`${L}mlp.c_fc.weight`), w(`${L}mlp.c_fc.bias`)).map(geluTanh);
    h = add(h, conv1d(m, T, 4 * E, E, w(`${L}mlp.c_proj.weight`), w(`${L}mlp.c_proj.bias`)));
  }
  const f = layerNorm(h, T, E, w(`${G}ln_f.weight`), w(`${G}ln_f.bias`), eps);
  const wte = w(`${G}wte.weight`);
  const logits = new Float64Array(T * V);
  for (let t = 0; t < T; t++)
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let e = 0; e < E; e++) s += f[t * E + e]! * wte[v * E + e]!;
      logits[t * V + v] = s;
    }
  return logits;
}

/** Llama logits (T, V) of one row of embeddings (T, D) at positions 0 … T−1 (FORMAT.md §6.15). */
export function refLlama(tiny: TinyVlm, emb: Float64Array, T: number): Float64Array {
  const w = weights(tiny);
  const c = tiny.config.text_config as Record<string, number>;
  const D = c.hidden_size!;
  const V = c.vocab_size!;
  const H = c.num_attention_heads!;
  const KV = c.num_key_value_heads!;
  const d = c.head_dim!;
  const I = c.intermediate_size!;
  const eps = c.rms_norm_eps!;
  const M = "language_model.model.";
  const rms = (x: Float64Array, g: Float32Array) => {
    const y = new Float64Array(x.length);
    for (let r = 0; r < T; r++) {
      let ss = 0;
      for (let i = 0; i < D; i++) ss += x[r * D + i]! ** 2;
      const inv = 1 / Math.sqrt(ss / D + eps);
      for (let i = 0; i < D; i++) y[r * D + i] = x[r * D + i]! * inv * g[i]!;
    }
    return y;
  };
  const noBias = (n: number) => new Float32Array(n);
  const bias = (name: string, n: number) => (c.attention_bias ? w(name) : noBias(n));
  const rope = (x: Float64Array, heads: number) => {
    const y = x.slice();
    for (let p = 0; p < T; p++)
      for (let h = 0; h < heads; h++)
        for (let k = 0; k < d / 2; k++) {
          const ang = p * c.rope_theta! ** ((-2 * k) / d);
          const i0 = p * heads * d + h * d + k;
          const a = x[i0]!;
          const b = x[i0 + d / 2]!;
          y[i0] = a * Math.cos(ang) - b * Math.sin(ang);
          y[i0 + d / 2] = b * Math.cos(ang) + a * Math.sin(ang);
        }
    return y;
  };
  let h: Float64Array = emb.slice();
  for (let l = 0; l < c.num_hidden_layers!; l++) {
    const P = `${M}layers.${l}.`;
    const x = rms(h, w(`${P}input_layernorm.weight`));
    const A = `${P}self_attn.`;
    const q = rope(linear(x, T, D, H * d, w(`${A}q_proj.weight`), bias(`${A}q_proj.bias`, H * d)), H);
    const k = rope(linear(x, T, D, KV * d, w(`${A}k_proj.weight`), bias(`${A}k_proj.bias`, KV * d)), KV);
    const v = linear(x, T, D, KV * d, w(`${A}v_proj.weight`), bias(`${A}v_proj.bias`, KV * d));
    const ctx = new Float64Array(T * H * d);
    for (let hh = 0; hh < H; hh++) {
      const g = Math.floor(hh / (H / KV));
      // one head at a time through the plain attention: q of head hh, k/v of its group g
      const qh = slice(q, T, H * d, hh * d, d);
      const kh = slice(k, T, KV * d, g * d, d);
      const vh = slice(v, T, KV * d, g * d, d);
      const o = mha(qh, kh, vh, T, T, d, 1, true);
      for (let t = 0; t < T; t++) for (let e = 0; e < d; e++) ctx[t * H * d + hh * d + e] = o[t * d + e]!;
    }
    h = add(h, linear(ctx, T, H * d, D, w(`${P}self_attn.o_proj.weight`), noBias(D)));
    const x2 = rms(h, w(`${P}post_attention_layernorm.weight`));
    const gate = linear(x2, T, D, I, w(`${P}mlp.gate_proj.weight`), noBias(I));
    const up = linear(x2, T, D, I, w(`${P}mlp.up_proj.weight`), noBias(I));
    const act = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]!);
    h = add(h, linear(act, T, I, D, w(`${P}mlp.down_proj.weight`), noBias(D)));
  }
  const f = rms(h, w(`${M}norm.weight`));
  const head = c.tie_word_embeddings ? w(`${M}embed_tokens.weight`) : w("language_model.lm_head.weight");
  return linear(f, T, D, V, head, noBias(V));
}

const isLlama = (tiny: TinyVlm) => (tiny.config.text_config as { model_type?: string }).model_type === "llama";

/** The language model's token-embedding table name. */
export function embedName(tiny: TinyVlm): string {
  return isLlama(tiny) ? "language_model.model.embed_tokens.weight" : "language_model.transformer.wte.weight";
}

/** Logits (T, V) of the tiny model's language model on one row of embeddings. */
export function refLm(tiny: TinyVlm, emb: Float64Array, T: number): Float64Array {
  return isLlama(tiny) ? refLlama(tiny, emb, T) : refGpt2(tiny, emb, T);
}

export interface RefOutput {
  vision: Float64Array[]; // per image (T_img, Dv)
  qformer: Float64Array[]; // per image (Q, Dq)
  projected: Float64Array[]; // per image (Q, Et)
  inputsEmbeds: Float64Array[]; // per row (P+Q+S, Et)
  logits: Float64Array[]; // per row (P+Q+S, V)
  generated: number[][];
  stepLogits: Float64Array[][]; // per row, per step (V)
  /** smallest top-1 − top-2 gap over the greedy steps */
  margin: number;
}

/** The whole §6.13 computation for a batch, with `n` greedy tokens. */
export function refVlm(tiny: TinyVlm, pixels: Tensor, prefix: number[][], suffix: number[][], n: number): RefOutput {
  const w = weights(tiny);
  const vc = tiny.config.vision_config as Record<string, number>;
  const tc = tiny.config.text_config as Record<string, number>;
  const Dq = (tiny.config.qformer_config as Record<string, number>).hidden_size!;
  const E = isLlama(tiny) ? tc.hidden_size! : tc.n_embd!;
  const V = tc.vocab_size!;
  const Q = tiny.config.num_query_tokens as number;
  const [B, , S] = pixels.shape as [number, number, number, number];
  const g = Math.floor(S / vc.patch_size!);
  const Timg = g * g + 1;
  const wte = w(embedName(tiny));
  const out: RefOutput = {
    vision: [],
    qformer: [],
    projected: [],
    inputsEmbeds: [],
    logits: [],
    generated: [],
    stepLogits: [],
    margin: Infinity,
  };
  for (let b = 0; b < B; b++) {
    const px = (pixels.data as Float32Array).subarray(b * 3 * S * S, (b + 1) * 3 * S * S);
    const img = refVit(tiny, px);
    const q = refQFormer(tiny, img, Timg);
    const proj = linear(q, Q, Dq, E, w("language_projection.weight"), w("language_projection.bias"));
    const seq: number[] = [];
    const push = (src: ArrayLike<number>) => {
      for (let i = 0; i < src.length; i++) seq.push(src[i]!);
    };
    for (const id of prefix[b]!) push(wte.subarray(id * E, (id + 1) * E));
    push(proj);
    for (const id of suffix[b]!) push(wte.subarray(id * E, (id + 1) * E));
    const T = seq.length / E;
    const emb = Float64Array.from(seq);
    const logits = refLm(tiny, emb, T);
    out.vision.push(img);
    out.qformer.push(q);
    out.projected.push(proj);
    out.inputsEmbeds.push(emb);
    out.logits.push(logits);
    const gen: number[] = [];
    const steps: Float64Array[] = [];
    let cur = seq.slice();
    let last: Float64Array = logits.slice((T - 1) * V, T * V);
    for (let s = 0; s < n; s++) {
      steps.push(last);
      const order = Array.from(last.keys()).sort((i, j) => last[j]! - last[i]! || i - j);
      out.margin = Math.min(out.margin, last[order[0]!]! - last[order[1]!]!);
      const id = order[0]!;
      gen.push(id);
      if (s + 1 === n) break;
      cur = cur.concat(Array.from(wte.subarray(id * E, (id + 1) * E)));
      const L = cur.length / E;
      last = refLm(tiny, Float64Array.from(cur), L).slice((L - 1) * V, L * V);
    }
    out.generated.push(gen);
    out.stepLogits.push(steps);
  }
  return out;
}

/** Largest violation of |a − e| ≤ atol + rtol·|e| (≤ 0: within tolerance). */
export function excess(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-4, rtol = 1e-3): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let w = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i]!;
    w = Math.max(w, Math.abs(actual[i]! - e) - (atol + rtol * Math.abs(e)));
  }
  return actual.length ? w : 0;
}

/** Concatenate per-row f64 arrays. */
export function cat(parts: Float64Array[]): Float64Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Float64Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
