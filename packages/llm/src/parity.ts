/**
 * Parity kinds of this package (`../shared/fixtures/FORMAT.md` §6.12, §6.15): `gpt2`, `llama`; and
 * the `gpt2` model of nn's `train_step` loop (§6.17), registered with `registerTrainStepModel`.
 *
 * The prompt logits come from one full forward pass; the greedy tokens and their step logits come
 * from the KV-cached path (prefill, then one `decode` per token), which is what generation uses.
 */
import { ConfigError, InputError, type KindRegistry, type KindResult, type ParityCase, Tensor } from "@wasmformer/core";
import { registerTrainStepModel, type TrainStepLoss } from "@wasmformer/nn/parity";
import { type CausalLM, GPT2LMHeadModel, toIdRows } from "./gpt2-model.js";
import { LlamaForCausalLM } from "./llama-model.js";
import { argmax } from "./sampler.js";

async function runGpt2(c: ParityCase): Promise<KindResult> {
  return runDecoder(c, "gpt2", (config, weights, maxBatch) =>
    GPT2LMHeadModel.fromWeights(config, weights, { maxBatch }),
  );
}

async function runLlama(c: ParityCase): Promise<KindResult> {
  return runDecoder(c, "llama", (config, weights, maxBatch) =>
    LlamaForCausalLM.fromWeights(config, weights, { maxBatch }),
  );
}

/** A decoder case: prompt logits by a full forward, then greedy tokens through the KV cache. */
async function runDecoder(
  c: ParityCase,
  kind: string,
  build: (
    config: Record<string, unknown>,
    weights: Awaited<ReturnType<ParityCase["model"]>>,
    maxBatch: number,
  ) => Promise<CausalLM>,
): Promise<KindResult> {
  const n = c.params.max_new_tokens ?? 0;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0) {
    throw new InputError(`params.max_new_tokens must be a non-negative integer, got ${JSON.stringify(n)}`);
  }
  const inputs = await c.inputs();
  const ids = inputs.get("input_ids");
  if (!ids) throw new InputError(`${kind} case: missing input tensor "input.input_ids"`);
  const rows = toIdRows(ids);
  const B = rows.length;
  const model = await build(c.config, await c.model(), Math.max(1, B));
  const T = rows[0]?.length ?? 0;
  const { maxPositions, positionsField } = model.arch;
  // gpt2 cases promise T + N ≤ n_positions (§6.12); llama cases that every position used — the
  // prompt and the N − 1 tokens fed back — lies below max_position_embeddings (§6.15)
  const used = kind === "llama" ? T + Math.max(n - 1, 0) : T + n;
  if (used > maxPositions) {
    throw new InputError(`prompt of ${T} tokens + max_new_tokens ${n} exceeds ${positionsField} ${maxPositions}`);
  }

  // prompt logits [B, T, V] (this also fills the cache)
  const logits = model.forward(ids);
  return { tensors: { logits, ...greedyAfterPrefill(model, logits, n) } };
}

/**
 * Greedy decoding after a prefill whose prompt logits `[B, T, V]` are given (the model's KV cache
 * holds the prompt): step 0 from each row's last prompt position, then one cached `decode` per
 * token. Returns the case tensors `generated_ids [B, n]` and `step_logits [B, n, V]`.
 */
export function greedyAfterPrefill(
  model: CausalLM,
  logits: Tensor,
  n: number,
): { generated_ids: Tensor<"i32">; step_logits: Tensor<"f32"> } {
  const [B, T, V] = logits.shape as [number, number, number];
  const generated = new Int32Array(B * n);
  const stepLogits = new Float32Array(B * n * V);
  let last: Float32Array = new Float32Array(B * V);
  for (let b = 0; b < B; b++) last.set(logits.data.subarray((b * T + T - 1) * V, (b * T + T) * V), b * V);
  for (let step = 0; step < n; step++) {
    const next = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      const row = last.subarray(b * V, (b + 1) * V);
      stepLogits.set(row, (b * n + step) * V);
      next[b] = argmax(row);
      generated[b * n + step] = next[b];
    }
    if (step + 1 < n) last = model.decode(next).logits!.data as Float32Array;
  }
  return {
    generated_ids: new Tensor(generated, [B, n], "i32"),
    step_logits: new Tensor(stepLogits, [B, n, V], "f32"),
  };
}

/** The kinds this package implements. */
export const kinds: KindRegistry = { gpt2: runGpt2, llama: runLlama };

/**
 * `train_step` with `config.model` = "gpt2" (§6.17): the GPT-2 of `config.model_config` from the
 * case's `model.safetensors`, in training mode for the case's `[B, T]` batch and loss.
 */
async function buildGpt2TrainStep(c: ParityCase, loss: TrainStepLoss) {
  const mc = c.config.model_config;
  if (mc === null || typeof mc !== "object" || Array.isArray(mc))
    throw new ConfigError("expected the model's config.json object", "model_config");
  const inputs = await c.inputs();
  const ids = inputs.get("input_ids");
  const labels = inputs.get("labels");
  if (!ids) throw new InputError(`train_step gpt2 case: missing input tensor "input.input_ids"`);
  if (!labels) throw new InputError(`train_step gpt2 case: missing input tensor "input.labels"`);
  const rows = toIdRows(ids, "input_ids");
  const labelRows = toIdRows(labels, "labels");
  if (labelRows.length !== rows.length)
    throw new InputError(`input.labels has ${labelRows.length} rows, input.input_ids has ${rows.length}`);
  const B = rows.length;
  const T = rows[0]?.length ?? 0;
  const model = await GPT2LMHeadModel.fromWeights(mc as Record<string, unknown>, await c.model(), {
    maxBatch: Math.max(1, B),
  });
  try {
    model.train({
      maxBatch: Math.max(1, B),
      maxSeqLen: Math.max(1, Math.min(T, model.arch.maxPositions)),
      ignoreIndex: loss.ignoreIndex,
      labelSmoothing: loss.labelSmoothing,
      shiftLabels: loss.shiftLabels,
    });
    return {
      model,
      batch: rows.map((r, b) => ({ inputIds: r, labels: labelRows[b] })),
      shapes: model.parameterShapes(),
      dispose: () => model.dispose(),
    };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

registerTrainStepModel("gpt2", buildGpt2TrainStep);
