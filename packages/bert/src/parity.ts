/**
 * The `bert` parity kind (FORMAT.md §6.16): Hugging Face `BertModel` with pooler from the case's
 * config and `model.safetensors`, run on `input.input_ids` (with `input.token_type_ids` and
 * `input.attention_mask` when present), attentions kept.
 */
import { InputError, type KindRegistry, type KindResult, type ParityCase, type Tensor } from "@wasmformer/core";
import { BertModel, type BertOutput } from "./bert-model.js";

async function runBert(c: ParityCase): Promise<KindResult> {
  const model = await BertModel.fromWeights(c.config, await c.model());
  let out: BertOutput;
  try {
    const inputs = await c.inputs();
    const ids = inputs.get("input_ids");
    if (!ids) throw new InputError(`bert case: missing input tensor "input.input_ids"`);
    out = model.forward(ids, {
      attentionMask: inputs.get("attention_mask"),
      tokenTypeIds: inputs.get("token_type_ids"),
      outputAttentions: true,
    });
  } finally {
    model.dispose(); // the outputs are copies: the runtime goes back for the next case
  }
  const tensors: Record<string, Tensor> = { last_hidden_state: out.lastHiddenState };
  if (out.poolerOutput) tensors.pooler_output = out.poolerOutput;
  out.attentions!.forEach((a, l) => {
    tensors[`attentions.${l}`] = a;
  });
  return { tensors };
}

/** The kinds this package implements. */
export const kinds: KindRegistry = { bert: runBert };
