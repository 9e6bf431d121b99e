/**
 * The `vlm` parity kind (FORMAT.md §6.13): ViT → Q-Former → language_projection → GPT-2 from the
 * case's config and `model.safetensors`, on `input.pixel_values` with the prompt ids around the
 * image slot (`input.prefix_ids`, `input.suffix_ids`; P or S may be 0).
 *
 * The prompt logits come from one pass over `inputs_embeds`; the greedy tokens and their step
 * logits from the KV-cached path (one `decode` per token), which is what generation uses.
 */
import { InputError, type KindRegistry, type KindResult, type ParityCase, type Tensor } from "@wasmformer/core";
import { greedyAfterPrefill } from "@wasmformer/llm/parity";
import { idRows } from "./adapter.js";
import { VisionLanguageModel } from "./vlm-model.js";

function input(inputs: Map<string, Tensor>, name: string): Tensor {
  const t = inputs.get(name);
  if (!t) throw new InputError(`vlm case: missing input tensor "input.${name}"`);
  return t;
}

async function runVlm(c: ParityCase): Promise<KindResult> {
  const n = c.params.max_new_tokens ?? 0;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0)
    throw new InputError(`params.max_new_tokens must be a non-negative integer, got ${JSON.stringify(n)}`);
  const inputs = await c.inputs();
  const pixels = input(inputs, "pixel_values");
  const prefix = idRows(input(inputs, "prefix_ids"), "prefix_ids");
  const suffix = idRows(input(inputs, "suffix_ids"), "suffix_ids");
  const B = prefix.length;
  if (pixels.ndim !== 4 || pixels.shape[0] !== B) {
    throw new InputError(`pixel_values [${pixels.shape.join(", ")}] must hold one image per prompt row (${B} rows)`);
  }
  const model = await VisionLanguageModel.fromPretrained(
    { config: c.config, weights: await c.model() },
    { maxBatch: Math.max(1, B) },
  );
  const lm = model.languageModel;

  const f = model.encodePixels(pixels);
  const inputsEmbeds = model.inputsEmbeds(f, prefix, suffix);
  const T = inputsEmbeds.shape[1]!;
  const P = lm.arch.maxPositions;
  if (T + n > P)
    throw new InputError(`prompt of ${T} positions + max_new_tokens ${n} exceeds ${lm.arch.positionsField} ${P}`);
  const logits = lm.prefillEmbeds(inputsEmbeds, { logits: "all" }).logits!; // [B, T, V]; fills the cache

  return {
    tensors: {
      vision_last_hidden_state: f.visionLastHiddenState,
      qformer_last_hidden_state: f.qformerLastHiddenState!,
      projected_query_embeds: f.imageEmbeds,
      inputs_embeds: inputsEmbeds,
      logits,
      // greedy: step 0 from the last prompt position, then one cached decode step per token
      ...greedyAfterPrefill(lm, logits, n),
    },
  };
}

/** The kinds this package implements. */
export const kinds: KindRegistry = { vlm: runVlm };
