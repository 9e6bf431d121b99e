/**
 * The `vit` parity kind (FORMAT.md §6.11): Hugging Face `ViTForImageClassification` from the case's
 * config and `model.safetensors`, run on `input.pixel_values` with attentions kept.
 */
import {
  createRuntime,
  InputError,
  type KindRegistry,
  type KindResult,
  type ParityCase,
  type Tensor,
} from "@wasmformer/core";
import { clsAttentionMap, meanAttentionDistance } from "./introspection.js";
import { ViTForImageClassification } from "./vit-model.js";

async function runVit(c: ParityCase): Promise<KindResult> {
  const model = await ViTForImageClassification.fromPretrained(
    { config: c.config, weights: await c.model() },
    { runtime: createRuntime() },
  );
  const inputs = await c.inputs();
  const pixels = inputs.get("pixel_values");
  if (!pixels) throw new InputError(`vit case: missing input tensor "input.pixel_values"`);
  const out = model.forward(pixels, { outputAttentions: true });
  const attentions = out.attentions!;
  const tensors: Record<string, Tensor> = {
    logits: out.logits,
    last_hidden_state: out.lastHiddenState,
    cls_attention_map: clsAttentionMap(attentions[attentions.length - 1]!, out.grid),
    mean_attention_distance: meanAttentionDistance(attentions, out.grid, model.config.patch_size[0]),
  };
  attentions.forEach((a, l) => {
    tensors[`attentions.${l}`] = a;
  });
  return { tensors };
}

/** The kinds this package implements. */
export const kinds: KindRegistry = { vit: runVit };
