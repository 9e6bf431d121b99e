/**
 * The case kinds of this package for the parity runner (FORMAT.md §6.3–6.10): `rnn`, `lstm`,
 * `gru`, `mha`, `sdpa`, `positional_encoding`, `transformer_encoder_layer`,
 * `transformer_decoder_layer`, `transformer`, `transformer_seq2seq`, and `train_step` (§6.17; the
 * model families register their builders: `mlp` and `lstm_classifier` here, `gpt2` in llm, `vit` in vit).
 *
 * Files are read only through the `ParityCase` accessors, so a malformed file surfaces as core's
 * `SafetensorsError`; weights that do not fit as one `WeightsError`; inputs that do not fit as a
 * `ShapeError`/`InputError` naming the tensor.
 */
import { ConfigError, InputError, type Runtime, ShapeError, type Tensor } from "@wasmformer/core";
import type { KindRegistry, KindResult, ParityCase } from "@wasmformer/core/parity";
import { MultiheadAttention, scaledDotProductAttention } from "./attention.js";
import { LSTMClassifier, MLPClassifier } from "./classifiers.js";
import type { Trainable } from "./fit.js";
import { sinusoidalPositionalEncoding } from "./positional-encoding.js";
import { GRU, LSTM, RNN } from "./rnn.js";
import { Seq2SeqTransformer } from "./seq2seq.js";
import { loadModule, type WeightScope } from "./state-dict.js";
import { registerTrainStepModel, runTrainStep, type TrainStepLoss, type TrainStepSetup } from "./train-step.js";
import {
  Transformer,
  TransformerDecoderLayer,
  TransformerEncoderLayer,
  type TransformerLayerOptions,
} from "./transformer.js";
import { bool, fmtShape, nnRuntime, num, oneOf, posInt } from "./util.js";

/** The runtime the kinds use (the wasm backend after `init()`, else the reference backend). */
let runtimeFactory: () => Runtime = () => nnRuntime();

/** Choose the runtime the kinds run on (tests run every case on both backends). */
export function setParityRuntime(f: () => Runtime): void {
  runtimeFactory = f;
}

async function load<T>(c: ParityCase, build: (s: WeightScope) => T): Promise<T> {
  const file = await c.model();
  return loadModule(file, build, { runtime: runtimeFactory() });
}

function need(inputs: Map<string, Tensor>, name: string): Tensor {
  const t = inputs.get(name);
  if (!t) throw new InputError(`missing input tensor "input.${name}"`);
  return t;
}

function requireValue(cfg: Record<string, unknown>, field: string, want: unknown): void {
  const v = cfg[field];
  if (v !== undefined && v !== want)
    throw new ConfigError(`only ${JSON.stringify(want)} is supported, got ${JSON.stringify(v)}`, field);
}

function ids(t: Tensor, name: string): Tensor {
  if (t.dtype !== "i32")
    throw new ShapeError(`input.${name} must hold integer token ids, got ${t.dtype} ${fmtShape(t.shape)}`);
  return t;
}

// ---- rnn / lstm / gru (§6.3) ----

function rnnKind(kind: "rnn" | "lstm" | "gru") {
  return async (c: ParityCase): Promise<KindResult> => {
    const cfg = c.config;
    requireValue(cfg, "batch_first", true);
    if (kind === "lstm") requireValue(cfg, "proj_size", 0);
    const opts = {
      inputSize: posInt(cfg.input_size, "input_size"),
      hiddenSize: posInt(cfg.hidden_size, "hidden_size"),
      numLayers: posInt(cfg.num_layers, "num_layers"),
      bias: bool(cfg.bias, "bias", true),
      bidirectional: bool(cfg.bidirectional, "bidirectional", false),
    };
    num(cfg.dropout, "dropout", 0); // inference: dropout is the identity
    const nonlinearity =
      kind === "rnn" ? oneOf(cfg.nonlinearity, "nonlinearity", ["tanh", "relu"] as const, "tanh") : "tanh";
    const net = await load(c, (s) =>
      kind === "rnn" ? new RNN(s, { ...opts, nonlinearity }) : kind === "lstm" ? new LSTM(s, opts) : new GRU(s, opts),
    );
    const inputs = await c.inputs();
    const x = need(inputs, "x");
    const h0 = inputs.get("h0");
    const c0 = inputs.get("c0");
    if (net instanceof LSTM) {
      const r = net.forward(x, h0, c0);
      return { tensors: { output: r.output, h_n: r.h, c_n: r.c! } };
    }
    if (c0) throw new InputError(`input.c0 is given but a ${kind} has no cell state`);
    const r = (net as RNN | GRU).forward(x, h0);
    return { tensors: { output: r.output, h_n: r.h } };
  };
}

// ---- mha (§6.4) ----

async function mhaKind(c: ParityCase): Promise<KindResult> {
  const cfg = c.config;
  requireValue(cfg, "batch_first", true);
  requireValue(cfg, "add_bias_kv", false);
  requireValue(cfg, "add_zero_attn", false);
  const E = posInt(cfg.embed_dim, "embed_dim");
  const opts = {
    embedDim: E,
    numHeads: posInt(cfg.num_heads, "num_heads"),
    bias: bool(cfg.bias, "bias", true),
    kdim: cfg.kdim === undefined || cfg.kdim === null ? E : posInt(cfg.kdim, "kdim"),
    vdim: cfg.vdim === undefined || cfg.vdim === null ? E : posInt(cfg.vdim, "vdim"),
  };
  const average = bool(cfg.average_attn_weights, "average_attn_weights", false);
  const mha = await load(c, (s) => new MultiheadAttention(s, opts));
  const inputs = await c.inputs();
  const r = mha.forward(need(inputs, "query"), need(inputs, "key"), need(inputs, "value"), {
    attnMask: inputs.get("attn_mask"),
    keyPaddingMask: inputs.get("key_padding_mask"),
    needWeights: true,
    averageAttnWeights: average,
  });
  return { tensors: { attn_output: r.output, attn_weights: r.weights! } };
}

// ---- sdpa (§6.5) ----

async function sdpaKind(c: ParityCase): Promise<KindResult> {
  const cfg = c.config;
  if (cfg.mask_true_means !== undefined && cfg.mask_true_means !== "attend") {
    throw new ConfigError(`only "attend" is supported, got ${JSON.stringify(cfg.mask_true_means)}`, "mask_true_means");
  }
  if (cfg.scale !== undefined && cfg.scale !== "1/sqrt(d_k)") {
    throw new ConfigError(`only "1/sqrt(d_k)" is supported, got ${JSON.stringify(cfg.scale)}`, "scale");
  }
  const inputs = await c.inputs();
  const mask = inputs.get("mask");
  if (mask && mask.dtype !== "bool" && mask.dtype !== "u8")
    throw new ShapeError(`input.mask must be BOOL, got ${mask.dtype}`);
  const r = scaledDotProductAttention(need(inputs, "q"), need(inputs, "k"), need(inputs, "v"), {
    attnMask: mask,
    runtime: runtimeFactory(),
  });
  return { tensors: { output: r.output, weights: r.weights } };
}

// ---- positional_encoding (§6.6) ----

async function peKind(c: ParityCase): Promise<KindResult> {
  const cfg = c.config;
  const pe = sinusoidalPositionalEncoding(
    posInt(cfg.max_len, "max_len", 0),
    posInt(cfg.d_model, "d_model"),
    num(cfg.base, "base", 10000),
  );
  return { tensors: { pe } };
}

// ---- transformer layers (§6.7–6.10) ----

function layerOptions(cfg: Record<string, unknown>): TransformerLayerOptions {
  requireValue(cfg, "batch_first", true);
  num(cfg.dropout, "dropout", 0);
  return {
    dModel: posInt(cfg.d_model, "d_model"),
    nhead: posInt(cfg.nhead, "nhead"),
    dimFeedforward: cfg.dim_feedforward === undefined ? 2048 : posInt(cfg.dim_feedforward, "dim_feedforward"),
    activation: oneOf(cfg.activation, "activation", ["relu", "gelu"] as const, "relu"),
    layerNormEps: num(cfg.layer_norm_eps, "layer_norm_eps", 1e-5),
    normFirst: bool(cfg.norm_first, "norm_first", false),
    bias: bool(cfg.bias, "bias", true),
  };
}

async function encoderLayerKind(c: ParityCase): Promise<KindResult> {
  const opts = layerOptions(c.config);
  const layer = await load(c, (s) => new TransformerEncoderLayer(s, opts));
  const inputs = await c.inputs();
  const output = layer.forward(need(inputs, "src"), {
    srcMask: inputs.get("src_mask"),
    srcKeyPaddingMask: inputs.get("src_key_padding_mask"),
  });
  return { tensors: { output } };
}

async function decoderLayerKind(c: ParityCase): Promise<KindResult> {
  const opts = layerOptions(c.config);
  const layer = await load(c, (s) => new TransformerDecoderLayer(s, opts));
  const inputs = await c.inputs();
  const output = layer.forward(need(inputs, "tgt"), need(inputs, "memory"), {
    tgtMask: inputs.get("tgt_mask"),
    memoryMask: inputs.get("memory_mask"),
    tgtKeyPaddingMask: inputs.get("tgt_key_padding_mask"),
    memoryKeyPaddingMask: inputs.get("memory_key_padding_mask"),
  });
  return { tensors: { output } };
}

function transformerOptions(cfg: Record<string, unknown>) {
  return {
    ...layerOptions(cfg),
    numEncoderLayers: posInt(cfg.num_encoder_layers, "num_encoder_layers", 0),
    numDecoderLayers: posInt(cfg.num_decoder_layers, "num_decoder_layers", 0),
  };
}

async function transformerKind(c: ParityCase): Promise<KindResult> {
  const opts = transformerOptions(c.config);
  const model = await load(c, (s) => new Transformer(s, opts));
  const inputs = await c.inputs();
  const srcKpm = inputs.get("src_key_padding_mask");
  const r = model.forward(need(inputs, "src"), need(inputs, "tgt"), {
    srcMask: inputs.get("src_mask"),
    tgtMask: inputs.get("tgt_mask"),
    memoryMask: inputs.get("memory_mask"),
    srcKeyPaddingMask: srcKpm,
    tgtKeyPaddingMask: inputs.get("tgt_key_padding_mask"),
    memoryKeyPaddingMask: srcKpm, // FORMAT.md §6.9: "same as src_key_padding_mask"
  });
  return { tensors: { memory: r.memory, output: r.output } };
}

async function seq2seqKind(c: ParityCase): Promise<KindResult> {
  const cfg = c.config;
  if (cfg.embedding_scale !== undefined && cfg.embedding_scale !== "sqrt(d_model)") {
    throw new ConfigError(
      `only "sqrt(d_model)" is supported, got ${JSON.stringify(cfg.embedding_scale)}`,
      "embedding_scale",
    );
  }
  const opts = {
    ...transformerOptions(cfg),
    srcVocabSize: posInt(cfg.src_vocab_size, "src_vocab_size"),
    tgtVocabSize: posInt(cfg.tgt_vocab_size, "tgt_vocab_size"),
    bosId: posInt(cfg.bos_id ?? 1, "bos_id", 0),
    padId: posInt(cfg.pad_id ?? 0, "pad_id", 0),
  };
  const N = posInt(c.params.max_new_tokens, "params.max_new_tokens", 0);
  const model = await load(c, (s) => new Seq2SeqTransformer(s, opts));
  const inputs = await c.inputs();
  const src = ids(need(inputs, "src_ids"), "src_ids");
  const tgt = ids(need(inputs, "tgt_ids"), "tgt_ids");
  const srcKpm = inputs.get("src_key_padding_mask");
  const logits = model.forward(src, tgt, {
    srcKeyPaddingMask: srcKpm,
    tgtKeyPaddingMask: inputs.get("tgt_key_padding_mask"),
  });
  const g = model.greedy(src, { maxNewTokens: N, srcKeyPaddingMask: srcKpm });
  return { tensors: { logits, greedy_ids: g.ids, greedy_step_logits: g.stepLogits } };
}

export const kinds: KindRegistry = {
  rnn: rnnKind("rnn"),
  lstm: rnnKind("lstm"),
  gru: rnnKind("gru"),
  mha: mhaKind,
  sdpa: sdpaKind,
  positional_encoding: peKind,
  transformer_encoder_layer: encoderLayerKind,
  transformer_decoder_layer: decoderLayerKind,
  transformer: transformerKind,
  transformer_seq2seq: seq2seqKind,
  // models register their builders: mlp and lstm_classifier below, gpt2 in llm, vit in vit
  train_step: runTrainStep,
};

// ---- train_step (§6.17): the shared loop and its model registry (train-step.ts) ----
export { registerTrainStepModel, runTrainStep, type TrainStepBuilder, type TrainStepLoss } from "./train-step.js";

/** Labels `[B]` of a classifier case, one per row of the first input. */
function classLabels(inputs: Map<string, Tensor>, B: number): Int32Array {
  const labels = need(inputs, "labels");
  if (labels.dtype !== "i32" || labels.ndim !== 1 || labels.shape[0] !== B)
    throw new ShapeError(`input.labels must be integer [${B}], got ${labels.dtype} ${fmtShape(labels.shape)}`);
  return labels.data as Int32Array;
}

/** A trained classifier set up for `runTrainStep` (model in training mode, the case's loss). */
async function classifierSetup<E extends { label: number }>(
  c: ParityCase,
  loss: TrainStepLoss,
  build: (s: WeightScope) => MLPClassifier | LSTMClassifier,
  batch: (inputs: Map<string, Tensor>) => E[],
): Promise<TrainStepSetup> {
  if (loss.shiftLabels) throw new ConfigError("a classifier has no shifted labels", "loss.shift_labels");
  const file = await c.model();
  const model = loadModule(file, build, { runtime: runtimeFactory() });
  try {
    model.setLoss({ ignoreIndex: loss.ignoreIndex, labelSmoothing: loss.labelSmoothing }).train();
    const shapes = Object.fromEntries(file.names().map((n) => [n, file.get(n).shape]));
    return {
      model: model as unknown as Trainable<unknown>,
      batch: batch(await c.inputs()),
      shapes,
      dispose: () => model.dispose(),
    };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

registerTrainStepModel("mlp", (c, loss) => {
  const m = obj(c.config.model_config, "model_config");
  const opts = {
    inputSize: posInt(m.input_size, "model_config.input_size"),
    hiddenSize: posInt(m.hidden_size, "model_config.hidden_size"),
    numClasses: posInt(m.num_classes, "model_config.num_classes"),
    activation: oneOf(m.activation, "model_config.activation", ["relu", "tanh", "gelu"] as const, "relu"),
  };
  return classifierSetup(
    c,
    loss,
    (s) => new MLPClassifier(s, opts),
    (inputs) => {
      const x = need(inputs, "x");
      if (x.dtype !== "f32" || x.ndim !== 2 || x.shape[1] !== opts.inputSize)
        throw new ShapeError(`input.x must be f32 [B, ${opts.inputSize}], got ${x.dtype} ${fmtShape(x.shape)}`);
      const B = x.shape[0]!;
      const labels = classLabels(inputs, B);
      const I = opts.inputSize;
      return [...labels].map((label, b) => ({ x: (x.data as Float32Array).subarray(b * I, (b + 1) * I), label }));
    },
  );
});

registerTrainStepModel("lstm_classifier", (c, loss) => {
  const m = obj(c.config.model_config, "model_config");
  requireValue(m, "batch_first", true);
  requireValue(m, "bias", true);
  if (num(m.dropout, "model_config.dropout", 0) !== 0)
    throw new ConfigError("only 0 is supported", "model_config.dropout");
  const opts = {
    vocabSize: posInt(m.vocab_size, "model_config.vocab_size"),
    embeddingDim: posInt(m.embedding_dim, "model_config.embedding_dim"),
    hiddenSize: posInt(m.hidden_size, "model_config.hidden_size"),
    numLayers: posInt(m.num_layers, "model_config.num_layers"),
    bidirectional: bool(m.bidirectional, "model_config.bidirectional", false),
    numClasses: posInt(m.num_classes, "model_config.num_classes"),
  };
  return classifierSetup(
    c,
    loss,
    (s) => new LSTMClassifier(s, opts),
    (inputs) => {
      const x = ids(need(inputs, "input_ids"), "input_ids");
      if (x.ndim !== 2 || x.shape[1]! < 1)
        throw new ShapeError(`input.input_ids must be [B, T] with T ≥ 1, got ${fmtShape(x.shape)}`);
      const [B, T] = x.shape as [number, number];
      const labels = classLabels(inputs, B);
      return [...labels].map((label, b) => ({ ids: (x.data as Int32Array).subarray(b * T, (b + 1) * T), label }));
    },
  );
});

function obj(v: unknown, field: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new ConfigError("expected an object", field);
  return v as Record<string, unknown>;
}
