/**
 * The `vit` parity kind (FORMAT.md §6.11): Hugging Face `ViTForImageClassification` from the case's
 * config and `model.safetensors`, run on `input.pixel_values` with attentions kept; and the `vit`
 * model of the `train_step` kind (§6.17), registered with nn's `registerTrainStepModel`.
 */
import {
  ConfigError,
  createRuntime,
  InputError,
  type KindRegistry,
  type KindResult,
  type ParityCase,
  ShapeError,
  type Tensor,
} from "@wasmformer/core";
import { registerTrainStepModel } from "@wasmformer/nn/parity";
import { clsAttentionMap, meanAttentionDistance } from "./introspection.js";
import { type ViTExample, ViTForImageClassification } from "./vit-model.js";

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

/**
 * `train_step` with `config.model` = `"vit"`: `ViTForImageClassification` from `config.model_config`
 * and `model.safetensors`, trained on `input.pixel_values` `[B, C, H, W]` and `input.labels` `[B]`.
 */
registerTrainStepModel("vit", async (c, loss) => {
  if (loss.shiftLabels) throw new ConfigError("a classifier's loss has no shifted labels", "loss.shift_labels");
  const model = await ViTForImageClassification.fromPretrained(
    { config: c.config.model_config, weights: await c.model() },
    { runtime: createRuntime() },
  );
  try {
    const inputs = await c.inputs();
    const pixels = inputs.get("pixel_values");
    const labels = inputs.get("labels");
    if (!pixels) throw new InputError(`train_step vit case: missing input tensor "input.pixel_values"`);
    if (!labels) throw new InputError(`train_step vit case: missing input tensor "input.labels"`);
    if (pixels.ndim !== 4 || labels.ndim !== 1 || labels.shape[0] !== pixels.shape[0]) {
      throw new ShapeError(
        `train_step vit case: pixel_values [B, C, H, W] and labels [B] expected, got [${pixels.shape.join(", ")}] and [${labels.shape.join(", ")}]`,
      );
    }
    const B = pixels.shape[0]!;
    const n = pixels.size / B;
    const batch: ViTExample[] = [];
    for (let b = 0; b < B; b++) {
      batch.push({
        pixelValues: (pixels.data as Float32Array).subarray(b * n, (b + 1) * n),
        label: Number(labels.data[b]),
      });
    }
    model.train({ maxBatch: B, ignoreIndex: loss.ignoreIndex, labelSmoothing: loss.labelSmoothing });
    const shapes: Record<string, readonly number[]> = {};
    for (const p of model.parameters()) shapes[p.name] = p.shape;
    return { model, batch, shapes, dispose: () => model.dispose() };
  } catch (e) {
    model.dispose();
    throw e;
  }
});
