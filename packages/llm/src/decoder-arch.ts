/**
 * The switches of the one decoder engine (`CausalLM` in gpt2-model.ts): what GPT-2 and the Llama
 * family differ in, decided once from a config and a checkpoint's tensor names.
 *
 * | switch     | GPT-2                          | Llama / Qwen2 / Mistral                       |
 * |------------|--------------------------------|-----------------------------------------------|
 * | norm       | LayerNorm with bias            | RMSNorm                                       |
 * | positions  | learned table `wpe`            | rotary (`invFreq`)                            |
 * | MLP        | act(x·W_fc)·W_proj             | (act(x·W_gate) ⊙ x·W_up)·W_down (SwiGLU)      |
 * | heads      | H query = H key/value heads    | H query heads share KV key/value heads        |
 * | weights    | Conv1D [in, out], fused q/k/v  | Linear [out, in], separate q/k/v              |
 * | biases     | everywhere                     | `attention_bias`, `mlp_bias`, o_proj if stored |
 *
 * Every matrix is brought to the engine's one layout at load, so the forward pass only reads these
 * switches.
 */

/** A checkpoint tensor the model reads; `layout` marks matrices (Conv1D [in, out] or Linear [out, in]). */
export interface WeightSpec {
  name: string;
  shape: number[];
  layout?: "conv1d" | "linear";
}

/** Tensor names of one layer (absent optional names: no such bias/tensor). */
export interface BlockNames {
  ln1w: string;
  ln1b?: string;
  /** GPT-2: the fused q/k/v Conv1D [E, 3E]; Llama: q_proj. */
  attnW: string;
  attnB?: string;
  kW?: string;
  kB?: string;
  vW?: string;
  vB?: string;
  attnProjW: string;
  attnProjB?: string;
  ln2w: string;
  ln2b?: string;
  /** GPT-2: c_fc; Llama: gate_proj. */
  fcW: string;
  fcB?: string;
  upW?: string;
  upB?: string;
  /** GPT-2: mlp.c_proj; Llama: down_proj. */
  mlpProjW: string;
  mlpProjB?: string;
}

export interface DecoderArch {
  /** The config's `model_type` (for messages). */
  modelType: string;
  /** The config field bounding positions (`n_positions`, `max_position_embeddings`). */
  positionsField: string;
  maxPositions: number;
  vocab: number;
  /** Residual width E (`n_embd`, `hidden_size`). */
  dim: number;
  /** The config field of the residual width (`n_embd`, `hidden_size`), for messages. */
  dimField: string;
  layers: number;
  /** Query heads H. */
  heads: number;
  /** Key/value heads KV (divides H; query head h reads key/value head ⌊h / (H/KV)⌋). */
  kvHeads: number;
  headDim: number;
  /** MLP width. */
  inner: number;
  norm: "layernorm" | "rmsnorm";
  eps: number;
  /** Rotary inverse frequencies (headDim/2), or null for a learned position table (`pos`). */
  invFreq: Float64Array | null;
  /** SwiGLU-style MLP (gate ⊙ up) instead of two layers. */
  gated: boolean;
  /** Activation code (core `Act`) of the MLP (on c_fc, or on the gate). */
  act: number;
  /** Attention score scale of layer l. */
  attnScale: (layer: number) => number;
  /** Ids that end generation by default (`eos_token_id`, a number or a list). */
  eosTokenIds: number[];
  /** Every tensor to read, in load order. */
  specs: WeightSpec[];
  embed: string;
  pos?: string;
  /** The LM head tensor ([V, E]): `lm_head.weight`, or the embedding when tied. */
  head: string;
  tied: boolean;
  normW: string;
  normB?: string;
  blocks: BlockNames[];
  /**
   * Checkpoint tensors the model does not read but accepts in strict loading (GPT-2's legacy
   * `attn.bias` buffers, Llama's `rotary_emb.inv_freq`, a stored copy of a tied `lm_head.weight`).
   */
  ignorable: (name: string) => boolean;
  /** Config sizes for shape messages, e.g. "vocab_size 96, hidden_size 48, …". */
  describe: string;
}
