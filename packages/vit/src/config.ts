/**
 * ViT configuration: the Hugging Face `ViTConfig` fields, copied verbatim
 * (https://github.com/huggingface/transformers/blob/main/src/transformers/models/vit/configuration_vit.py),
 * read from a `config.json` object and checked, plus the geometry derived from it.
 *
 * The structural fields (sizes, layers, heads, patch and image size) are required: a config.json
 * written by `save_pretrained` always has them, and silently falling back to ViT-Base defaults
 * would only move the error to a confusing weight-shape mismatch. The rest have HF's defaults.
 */
import { Act, type ActCode, ConfigError } from "@wasmformer/core";

export interface ViTConfig {
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: string;
  layer_norm_eps: number;
  /** `[height, width]` (HF allows an int for a square image). */
  image_size: [number, number];
  /** `[height, width]` (HF allows an int for a square patch). */
  patch_size: [number, number];
  num_channels: number;
  qkv_bias: boolean;
  /**
   * Class index → label, as given in `config.json`; `{}` for a backbone without classifier, and
   * for a config with only `num_labels` (its labels are `LABEL_i`, made on demand: a huge
   * `num_labels` must not build a huge map before the checkpoint is checked against it).
   */
  id2label: Record<string, string>;
  /** Number of classifier outputs (`len(id2label)`, or `num_labels` when there is no `id2label`). */
  num_labels: number;
}

type Json = Record<string, unknown>;

function positiveInt(cfg: Json, field: string): number {
  const v = cfg[field];
  if (v === undefined) throw new ConfigError("required field is missing", field);
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new ConfigError(`expected a positive integer, got ${JSON.stringify(v)}`, field);
  }
  return v;
}

function pair(cfg: Json, field: string): [number, number] {
  const v = cfg[field];
  if (v === undefined) throw new ConfigError("required field is missing", field);
  const ok = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x > 0;
  if (ok(v)) return [v, v];
  if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return [v[0], v[1]];
  throw new ConfigError(`expected a positive integer or [height, width], got ${JSON.stringify(v)}`, field);
}

/** The fused activation code for an HF `hidden_act` name. */
export function actCode(name: string): ActCode {
  switch (name) {
    case "gelu":
      return Act.gelu;
    case "gelu_new":
    case "gelu_pytorch_tanh":
      return Act.geluTanh;
    case "relu":
      return Act.relu;
    case "silu":
    case "swish":
      return Act.silu;
    default:
      throw new ConfigError(
        `unsupported activation ${JSON.stringify(name)} (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu)`,
        "hidden_act",
      );
  }
}

/**
 * Read and check a ViT `config.json` object.
 * @throws ConfigError naming the field at fault (missing, ill-typed, or inconsistent: heads that do
 *   not divide `hidden_size`, a patch larger than the image).
 */
export function parseViTConfig(raw: unknown): ViTConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new ConfigError("config must be a JSON object");
  const cfg = raw as Json;
  const hidden_size = positiveInt(cfg, "hidden_size");
  const num_hidden_layers = positiveInt(cfg, "num_hidden_layers");
  const num_attention_heads = positiveInt(cfg, "num_attention_heads");
  const intermediate_size = positiveInt(cfg, "intermediate_size");
  if (hidden_size % num_attention_heads !== 0) {
    throw new ConfigError(
      `${num_attention_heads} heads do not divide hidden_size ${hidden_size} (the head size must be a whole number)`,
      "num_attention_heads",
    );
  }
  const image_size = pair(cfg, "image_size");
  const patch_size = pair(cfg, "patch_size");
  if (patch_size[0] !== patch_size[1]) {
    throw new ConfigError(`non-square patches (${patch_size.join("x")}) are not supported`, "patch_size");
  }
  if (patch_size[0] > image_size[0] || patch_size[1] > image_size[1]) {
    throw new ConfigError(
      `patch ${patch_size.join("x")} is larger than the image ${image_size.join("x")}`,
      "patch_size",
    );
  }
  const num_channels = cfg.num_channels === undefined ? 3 : positiveInt(cfg, "num_channels");
  const hidden_act = cfg.hidden_act ?? "gelu";
  if (typeof hidden_act !== "string")
    throw new ConfigError(`expected a string, got ${JSON.stringify(hidden_act)}`, "hidden_act");
  actCode(hidden_act);
  const eps = cfg.layer_norm_eps ?? 1e-12;
  if (typeof eps !== "number" || !(eps >= 0) || !Number.isFinite(eps)) {
    throw new ConfigError(`expected a non-negative number, got ${JSON.stringify(eps)}`, "layer_norm_eps");
  }
  const qkv_bias = cfg.qkv_bias ?? true;
  if (typeof qkv_bias !== "boolean")
    throw new ConfigError(`expected a boolean, got ${JSON.stringify(qkv_bias)}`, "qkv_bias");

  const id2label: Record<string, string> = {};
  let num_labels: number;
  if (cfg.id2label !== undefined) {
    const m = cfg.id2label;
    if (typeof m !== "object" || m === null || Array.isArray(m))
      throw new ConfigError("expected an object", "id2label");
    const keys = Object.keys(m);
    for (const k of keys) {
      const i = Number(k);
      const label = (m as Json)[k];
      if (!Number.isInteger(i) || i < 0 || i >= keys.length || String(i) !== k) {
        throw new ConfigError(`keys must be the indices 0 … ${keys.length - 1}, got ${JSON.stringify(k)}`, "id2label");
      }
      if (typeof label !== "string") throw new ConfigError(`label of ${k} must be a string`, "id2label");
      id2label[k] = label;
    }
    num_labels = keys.length;
    if (cfg.num_labels !== undefined && cfg.num_labels !== num_labels) {
      throw new ConfigError(
        `num_labels ${JSON.stringify(cfg.num_labels)} contradicts id2label (${num_labels} labels)`,
        "num_labels",
      );
    }
  } else if (cfg.num_labels !== undefined) {
    num_labels = positiveInt(cfg, "num_labels");
  } else {
    num_labels = 0;
  }
  return {
    hidden_size,
    num_hidden_layers,
    num_attention_heads,
    intermediate_size,
    hidden_act,
    layer_norm_eps: eps,
    image_size,
    patch_size,
    num_channels,
    qkv_bias,
    id2label,
    num_labels,
  };
}

/** Every class's label: `id2label`, and `LABEL_i` for the classes it does not name (a config with only `num_labels`). */
export function labelNames(cfg: ViTConfig): Record<string, string> {
  const names = { ...cfg.id2label };
  for (let i = 0; i < cfg.num_labels; i++) names[String(i)] ??= `LABEL_${i}`;
  return names;
}

/** Patch grid `[gh, gw]` of an image of `height × width` pixels (a partial last row/column of pixels is dropped). */
export function patchGrid(cfg: ViTConfig, height: number, width: number): [number, number] {
  return [Math.floor(height / cfg.patch_size[0]), Math.floor(width / cfg.patch_size[1])];
}
