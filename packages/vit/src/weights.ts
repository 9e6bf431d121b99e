/**
 * Checkpoint → heap: the ViT parameters under their checkpoint names (Hugging Face `ViTModel` /
 * `ViTForImageClassification`, or timm `VisionTransformer`), checked against the config and copied
 * once into the model's runtime heap.
 *
 * Every name and shape is checked before anything is copied; all missing, unexpected and
 * wrong-shaped tensors are reported together in one `WeightsError`.
 *
 * The one departure from the checkpoint layout: HF stores `query`, `key` and `value` as three
 * `[D, D]` Linear layers; we fuse them at load into one `[3D, D]` weight (rows q; k; v, timm's
 * `attn.qkv` layout) so that a layer's projections are one GEMM.
 */
import {
  checkTensors,
  type ExpectedTensor,
  type Heap,
  type SafetensorsDType,
  type Tensor,
  type TensorSource,
  tensorDtypeFor,
  WeightsError,
} from "@wasmformer/core";
import type { ViTConfig } from "./config.js";

export { type TensorSource, tensorSource } from "@wasmformer/core";

/**
 * A source that knows every tensor's dtype and shape up front and reads the data on demand
 * (core's `openSafetensors(path | Blob | URL)`): only one tensor at a time is held outside the heap.
 */
export interface LazyTensorSource {
  names(): string[];
  has(name: string): boolean;
  info(name: string): { dtype: SafetensorsDType; shape: readonly number[] };
  get(name: string): Promise<Tensor>;
}

export type AnyTensorSource = TensorSource | LazyTensorSource;

const isLazy = (s: AnyTensorSource): s is LazyTensorSource =>
  typeof (s as LazyTensorSource).info === "function" && "header" in s;

/** dtype (as a core dtype) and shape of a tensor, without reading a lazy source's data. */
export function tensorMeta(src: AnyTensorSource, name: string): { dtype: string; shape: readonly number[] } {
  if (isLazy(src)) {
    const i = src.info(name);
    return { dtype: tensorDtypeFor(i.dtype), shape: i.shape };
  }
  const t = src.get(name);
  return { dtype: t.dtype, shape: t.shape };
}

async function tensorData(src: AnyTensorSource, name: string): Promise<Float32Array> {
  const t = isLazy(src) ? await src.get(name) : src.get(name);
  return t.data as Float32Array;
}

/** Byte pointers of one encoder layer's parameters in the heap. */
export interface LayerPtrs {
  ln1W: number; // [D]
  ln1B: number; // [D]
  qkvW: number; // [3D, D]  rows q; k; v
  qkvB: number; // [3D] or 0 (qkv_bias false)
  projW: number; // [D, D]
  projB: number; // [D]
  ln2W: number; // [D]
  ln2B: number; // [D]
  fc1W: number; // [I, D]
  fc1B: number; // [I]
  fc2W: number; // [D, I]
  fc2B: number; // [D]
}

/** Byte pointers of all parameters in the heap (llama2.c's `TransformerWeights`). */
export interface ViTWeights {
  clsToken: number; // [D]
  posEmbed: number; // [1 + g0h·g0w, D], row 0 = CLS
  patchW: number; // [D, C·p·p] (= conv weight [D, C, p, p] flattened: im2col's column order)
  patchB: number; // [D]
  layers: LayerPtrs[];
  lnW: number; // [D]
  lnB: number; // [D]
  poolerW: number; // [D, D] or 0
  poolerB: number; // [D] or 0
  headW: number; // [num_labels, D] or 0
  headB: number; // [num_labels] or 0
  /** Bytes copied into the heap. */
  bytes: number;
  /** Encoder Linear weights (qkvW, projW, fc1W, fc2W) repacked in place for `gemmPacked` (see vit-model.ts). */
  packed?: boolean;
}

/** Which checkpoint naming a source uses. */
export type Naming = "hf" | "timm";

/** The names (and shapes) a checkpoint must hold for this config. */
function expectedNames(
  cfg: ViTConfig,
  naming: Naming,
  prefix: string,
  head: "required" | "optional" | "none",
): ExpectedTensor[] {
  const D = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const p = cfg.patch_size[0];
  const C = cfg.num_channels;
  const g0 = [Math.floor(cfg.image_size[0] / p), Math.floor(cfg.image_size[1] / p)];
  const T = g0[0] * g0[1] + 1;
  const w: ExpectedTensor[] = [];
  const add = (name: string, shape: number[], optional = false) => w.push({ name, shape, optional });
  const headOpt = head === "optional";
  if (naming === "hf") {
    const P = prefix;
    add(`${P}embeddings.cls_token`, [1, 1, D]);
    add(`${P}embeddings.position_embeddings`, [1, T, D]);
    add(`${P}embeddings.patch_embeddings.projection.weight`, [D, C, p, p]);
    add(`${P}embeddings.patch_embeddings.projection.bias`, [D]);
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      const L = `${P}encoder.layer.${i}.`;
      add(`${L}layernorm_before.weight`, [D]);
      add(`${L}layernorm_before.bias`, [D]);
      for (const q of ["query", "key", "value"]) {
        add(`${L}attention.attention.${q}.weight`, [D, D]);
        if (cfg.qkv_bias) add(`${L}attention.attention.${q}.bias`, [D]);
      }
      add(`${L}attention.output.dense.weight`, [D, D]);
      add(`${L}attention.output.dense.bias`, [D]);
      add(`${L}layernorm_after.weight`, [D]);
      add(`${L}layernorm_after.bias`, [D]);
      add(`${L}intermediate.dense.weight`, [I, D]);
      add(`${L}intermediate.dense.bias`, [I]);
      add(`${L}output.dense.weight`, [D, I]);
      add(`${L}output.dense.bias`, [D]);
    }
    add(`${P}layernorm.weight`, [D]);
    add(`${P}layernorm.bias`, [D]);
    add(`${P}pooler.dense.weight`, [D, D], true);
    add(`${P}pooler.dense.bias`, [D], true);
    if (head !== "none") {
      add("classifier.weight", [cfg.num_labels, D], headOpt);
      add("classifier.bias", [cfg.num_labels], headOpt);
    }
  } else {
    add("cls_token", [1, 1, D]);
    add("pos_embed", [1, T, D]);
    add("patch_embed.proj.weight", [D, C, p, p]);
    add("patch_embed.proj.bias", [D]);
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      const L = `blocks.${i}.`;
      add(`${L}norm1.weight`, [D]);
      add(`${L}norm1.bias`, [D]);
      add(`${L}attn.qkv.weight`, [3 * D, D]);
      if (cfg.qkv_bias) add(`${L}attn.qkv.bias`, [3 * D]);
      add(`${L}attn.proj.weight`, [D, D]);
      add(`${L}attn.proj.bias`, [D]);
      add(`${L}norm2.weight`, [D]);
      add(`${L}norm2.bias`, [D]);
      add(`${L}mlp.fc1.weight`, [I, D]);
      add(`${L}mlp.fc1.bias`, [I]);
      add(`${L}mlp.fc2.weight`, [D, I]);
      add(`${L}mlp.fc2.bias`, [D]);
    }
    add("norm.weight", [D]);
    add("norm.bias", [D]);
    if (head !== "none") {
      add("head.weight", [cfg.num_labels, D], headOpt);
      add("head.bias", [cfg.num_labels], headOpt);
    }
  }
  return w;
}

/** Names a checkpoint may hold that the computation does not use (ignored). */
function ignorable(name: string, naming: Naming, prefix: string, head: "required" | "optional" | "none"): boolean {
  if (naming === "hf") {
    if (name === `${prefix}embeddings.mask_token`) return true; // ViTModel(use_mask_token=True), for MIM pre-training
    if (head === "required" && name.startsWith(`${prefix}pooler.`)) return true; // HF drops the pooler in the classifier
    if (head === "none" && name.startsWith("classifier.")) return true;
    return false;
  }
  if (head === "none" && name.startsWith("head.")) return true;
  return false;
}

/**
 * Check every tensor of `src` against the config, then copy the parameters into `heap`.
 * @param prefix the HF model prefix (`"vit."` for `ViTForImageClassification`, `""` for `ViTModel`)
 * @param head whether the classifier must be there, may be there, or is not wanted
 * @throws WeightsError listing every missing, unexpected and wrong-shaped tensor by its full name
 */
export async function loadWeights(
  src: AnyTensorSource,
  cfg: ViTConfig,
  heap: Heap,
  naming: Naming,
  prefix: string,
  head: "required" | "optional" | "none",
): Promise<ViTWeights> {
  const wants = expectedNames(cfg, naming, prefix, head);
  const { faults, fit: tensors } = await checkTensors(src, wants, {
    ignore: (n) => ignorable(n, naming, prefix, head),
  });
  // a pooler comes as a pair or not at all
  const pw = `${prefix}pooler.dense.weight`;
  const pb = `${prefix}pooler.dense.bias`;
  if (naming === "hf" && tensors.has(pw) !== tensors.has(pb) && !faults.messages.some((f) => f.includes("pooler"))) {
    faults.addMissing(tensors.has(pw) ? pb : pw, undefined, "the pooler needs both weight and bias");
  }
  const hw = naming === "hf" ? "classifier.weight" : "head.weight";
  const hb = naming === "hf" ? "classifier.bias" : "head.bias";
  if (head === "optional" && tensors.has(hw) !== tensors.has(hb)) {
    faults.addMissing(tensors.has(hw) ? hb : hw, undefined, "the classifier needs both weight and bias");
  }
  faults.throwIfAny(
    `ViT config (hidden_size ${cfg.hidden_size}, ${cfg.num_hidden_layers} layers, ` +
      `intermediate_size ${cfg.intermediate_size}, patch ${cfg.patch_size[0]}, image ${cfg.image_size.join("x")})`,
  );

  // ---- copy: reserve the total once, then bump-allocate each parameter
  let total = 0;
  for (const t of tensors.values()) total += Math.ceil((t.shape.reduce((a, b) => a * b, 1) * 4) / 16) * 16;
  heap.reserve(total + 16 * 64);
  const put = async (name: string): Promise<number> => heap.put(await tensorData(src, name));
  const maybe = async (name: string): Promise<number> => (tensors.has(name) ? put(name) : 0);
  const D = cfg.hidden_size;
  const layers: LayerPtrs[] = [];
  let w: ViTWeights;
  if (naming === "hf") {
    const P = prefix;
    const clsToken = await put(`${P}embeddings.cls_token`);
    const posEmbed = await put(`${P}embeddings.position_embeddings`);
    const patchW = await put(`${P}embeddings.patch_embeddings.projection.weight`);
    const patchB = await put(`${P}embeddings.patch_embeddings.projection.bias`);
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      const L = `${P}encoder.layer.${i}.attention.attention.`;
      const ln1W = await put(`${P}encoder.layer.${i}.layernorm_before.weight`);
      const ln1B = await put(`${P}encoder.layer.${i}.layernorm_before.bias`);
      // fuse q, k, v: [3D, D] = rows of query; key; value
      const qkvW = heap.allocF32(3 * D * D);
      const qkvB = cfg.qkv_bias ? heap.allocF32(3 * D) : 0;
      for (const [j, q] of ["query", "key", "value"].entries()) {
        heap.f32(qkvW + j * D * D * 4, D * D).set(await tensorData(src, `${L}${q}.weight`));
        if (qkvB) heap.f32(qkvB + j * D * 4, D).set(await tensorData(src, `${L}${q}.bias`));
      }
      const E = `${P}encoder.layer.${i}.`;
      layers.push({
        ln1W,
        ln1B,
        qkvW,
        qkvB,
        projW: await put(`${E}attention.output.dense.weight`),
        projB: await put(`${E}attention.output.dense.bias`),
        ln2W: await put(`${E}layernorm_after.weight`),
        ln2B: await put(`${E}layernorm_after.bias`),
        fc1W: await put(`${E}intermediate.dense.weight`),
        fc1B: await put(`${E}intermediate.dense.bias`),
        fc2W: await put(`${E}output.dense.weight`),
        fc2B: await put(`${E}output.dense.bias`),
      });
    }
    w = {
      clsToken,
      posEmbed,
      patchW,
      patchB,
      layers,
      lnW: await put(`${P}layernorm.weight`),
      lnB: await put(`${P}layernorm.bias`),
      poolerW: await maybe(pw),
      poolerB: await maybe(pb),
      headW: head === "none" ? 0 : await maybe("classifier.weight"),
      headB: head === "none" ? 0 : await maybe("classifier.bias"),
      bytes: 0,
    };
  } else {
    const clsToken = await put("cls_token");
    const posEmbed = await put("pos_embed");
    const patchW = await put("patch_embed.proj.weight");
    const patchB = await put("patch_embed.proj.bias");
    for (let i = 0; i < cfg.num_hidden_layers; i++) {
      const L = `blocks.${i}.`;
      layers.push({
        ln1W: await put(`${L}norm1.weight`),
        ln1B: await put(`${L}norm1.bias`),
        qkvW: await put(`${L}attn.qkv.weight`),
        qkvB: cfg.qkv_bias ? await put(`${L}attn.qkv.bias`) : 0,
        projW: await put(`${L}attn.proj.weight`),
        projB: await put(`${L}attn.proj.bias`),
        ln2W: await put(`${L}norm2.weight`),
        ln2B: await put(`${L}norm2.bias`),
        fc1W: await put(`${L}mlp.fc1.weight`),
        fc1B: await put(`${L}mlp.fc1.bias`),
        fc2W: await put(`${L}mlp.fc2.weight`),
        fc2B: await put(`${L}mlp.fc2.bias`),
      });
    }
    w = {
      clsToken,
      posEmbed,
      patchW,
      patchB,
      layers,
      lnW: await put("norm.weight"),
      lnB: await put("norm.bias"),
      poolerW: 0,
      poolerB: 0,
      headW: head === "none" ? 0 : await maybe("head.weight"),
      headB: head === "none" ? 0 : await maybe("head.bias"),
      bytes: 0,
    };
  }
  w.bytes = total;
  return w;
}

/** Guess the naming and HF prefix of a checkpoint from its tensor names. */
export function detectNaming(src: AnyTensorSource): { naming: Naming; prefix: string } {
  const names = src.names();
  if (names.some((n) => n.startsWith("vit.embeddings."))) return { naming: "hf", prefix: "vit." };
  if (names.some((n) => n.startsWith("embeddings."))) return { naming: "hf", prefix: "" };
  if (names.includes("cls_token") || names.some((n) => n.startsWith("blocks."))) return { naming: "timm", prefix: "" };
  throw new WeightsError(
    `not a ViT checkpoint: no "vit.embeddings.*" / "embeddings.*" (Hugging Face) or "cls_token" / "blocks.*" (timm) tensors ` +
      `(first names: ${names.slice(0, 5).join(", ") || "none"})`,
    [],
  );
}
