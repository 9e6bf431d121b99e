/**
 * Hugging Face `LlamaForCausalLM` (and Qwen2 / Mistral checkpoints of the same computation) on the
 * decoder engine of gpt2-model.ts: RMSNorm, rotary positions, a SwiGLU MLP, grouped-query
 * attention with a KV cache sized by the key/value heads. See llama.ts for the config and names.
 */
import { checkBlockCount } from "@wasmformer/core";
import type { DecoderArch } from "./decoder-arch.js";
import { asWeightSource, CausalLM, type GPT2Options, type WeightSource } from "./gpt2-model.js";
import { type LlamaConfig, llamaArch, parseLlamaConfig } from "./llama.js";

/**
 * `LlamaForCausalLM` with a KV cache; every `CausalLM` method (prefill, decode, extend, generate,
 * inputs_embeds) as for GPT-2.
 *
 * @example
 * ```ts
 * await init();
 * const model = await LlamaForCausalLM.fromPretrained("./SmolLM2-135M");
 * const out = await model.generateAll([[1, 415, 2936]], { maxNewTokens: 20 });
 * ```
 */
export class LlamaForCausalLM extends CausalLM<LlamaConfig> {
  protected override readonly modelName: string = "LlamaForCausalLM";
  /**
   * Build a model from a config (a raw Llama / Qwen2 / Mistral `config.json` object, or a parsed
   * `LlamaConfig`) and checkpoint tensors (HF names `model.layers.{i}…`, `lm_head.weight` unless
   * tied), copying the weights into the runtime heap once. Legacy `rotary_emb.inv_freq` buffers are
   * ignored (listed in `unusedWeights`); any other unused tensor is a `WeightsError` unless
   * `strict: false`.
   */
  static async fromWeights(
    config: LlamaConfig | Record<string, unknown>,
    weights: WeightSource,
    opts: GPT2Options = {},
  ): Promise<LlamaForCausalLM> {
    const cfg = parseLlamaConfig(config);
    const source = asWeightSource(weights);
    // a config asking for more layers than the file holds fails before the names are listed
    checkBlockCount(
      source.names(),
      "model.layers.",
      cfg.num_hidden_layers,
      "num_hidden_layers",
      "input_layernorm.weight",
    );
    const arch = llamaArch(cfg, (name) => source.has(name));
    return new LlamaForCausalLM(cfg, await CausalLM.load(arch, source, opts));
  }

  /** @internal Build from a parsed config and an arch checked elsewhere (the GGUF loader, gguf-model.ts). */
  static async fromArch(
    cfg: LlamaConfig,
    arch: DecoderArch,
    weights: WeightSource,
    opts: GPT2Options = {},
  ): Promise<LlamaForCausalLM> {
    return new LlamaForCausalLM(cfg, await CausalLM.load(arch, weights, opts));
  }

  /**
   * Load from a Hugging Face folder (Node): `config.json`, `model.safetensors` and the tokenizer
   * when present. See `loadPretrained`.
   */
  static async fromPretrained(
    folder: string,
    opts: GPT2Options & { tokenizer?: boolean } = {},
  ): Promise<LlamaForCausalLM> {
    const { loadFolder } = await import("./pretrained.js");
    return loadFolder(folder, opts, (config, file, o) => LlamaForCausalLM.fromWeights(config, file, o));
  }
}
