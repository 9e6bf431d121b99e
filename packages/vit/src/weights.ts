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
  checkBlockCount,
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

/** A source that knows a tensor's dtype and shape without reading it (as core's `tensorMeta` asks). */
const hasInfo = (s: AnyTensorSource): s is LazyTensorSource => typeof (s as LazyTensorSource).info === "function";

/** dtype (as a core dtype) and shape of a tensor, without reading the data when the source has `info`. */
export function tensorMeta(src: AnyTensorSource, name: string): { dtype: string; shape: readonly number[] } {
  if (hasInfo(src)) {
    const i = src.info(name);
    return { dtype: tensorDtypeFor(i.dtype), shape: i.shape };
  }
  const t = src.get(name);
  return { dtype: t.dtype, shape: t.shape };
}

async function tensorData(src: AnyTensorSource, name: string): Promise<Float32Array> {
  return (await src.get(name)).data as Float32Array;
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

/** Checkpoint names of the parameters outside the encoder layers. */
interface TopNames {
  cls: string;
  pos: string;
  patchW: string;
  patchB: string;
  lnW: string;
  lnB: string;
  /** HF only */
  pooler?: { w: string; b: string };
  headW: string;
  headB: string;
}

/** Checkpoint names of one encoder layer's parameters (q, k, v: three HF tensors, or timm's one fused `qkv`). */
type LayerNames = Record<Exclude<keyof LayerPtrs, "qkvW" | "qkvB">, string> & { qkvW: string[]; qkvB: string[] };

function topNames(naming: Naming, P: string): TopNames {
  if (naming === "hf") {
    return {
      cls: `${P}embeddings.cls_token`,
      pos: `${P}embeddings.position_embeddings`,
      patchW: `${P}embeddings.patch_embeddings.projection.weight`,
      patchB: `${P}embeddings.patch_embeddings.projection.bias`,
      lnW: `${P}layernorm.weight`,
      lnB: `${P}layernorm.bias`,
      pooler: { w: `${P}pooler.dense.weight`, b: `${P}pooler.dense.bias` },
      headW: "classifier.weight",
      headB: "classifier.bias",
    };
  }
  return {
    cls: "cls_token",
    pos: "pos_embed",
    patchW: "patch_embed.proj.weight",
    patchB: "patch_embed.proj.bias",
    lnW: "norm.weight",
    lnB: "norm.bias",
    headW: "head.weight",
    headB: "head.bias",
  };
}

function layerNames(naming: Naming, P: string, i: number): LayerNames {
  if (naming === "hf") {
    const L = `${P}encoder.layer.${i}.`;
    const qkv = ["query", "key", "value"].map((q) => `${L}attention.attention.${q}.`);
    return {
      ln1W: `${L}layernorm_before.weight`,
      ln1B: `${L}layernorm_before.bias`,
      qkvW: qkv.map((q) => `${q}weight`),
      qkvB: qkv.map((q) => `${q}bias`),
      projW: `${L}attention.output.dense.weight`,
      projB: `${L}attention.output.dense.bias`,
      ln2W: `${L}layernorm_after.weight`,
      ln2B: `${L}layernorm_after.bias`,
      fc1W: `${L}intermediate.dense.weight`,
      fc1B: `${L}intermediate.dense.bias`,
      fc2W: `${L}output.dense.weight`,
      fc2B: `${L}output.dense.bias`,
    };
  }
  const L = `blocks.${i}.`;
  return {
    ln1W: `${L}norm1.weight`,
    ln1B: `${L}norm1.bias`,
    qkvW: [`${L}attn.qkv.weight`],
    qkvB: [`${L}attn.qkv.bias`],
    projW: `${L}attn.proj.weight`,
    projB: `${L}attn.proj.bias`,
    ln2W: `${L}norm2.weight`,
    ln2B: `${L}norm2.bias`,
    fc1W: `${L}mlp.fc1.weight`,
    fc1B: `${L}mlp.fc1.bias`,
    fc2W: `${L}mlp.fc2.weight`,
    fc2B: `${L}mlp.fc2.bias`,
  };
}

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
  const t = topNames(naming, prefix);
  add(t.cls, [1, 1, D]);
  add(t.pos, [1, T, D]);
  add(t.patchW, [D, C, p, p]);
  add(t.patchB, [D]);
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const n = layerNames(naming, prefix, i);
    add(n.ln1W, [D]);
    add(n.ln1B, [D]);
    const rows = (3 * D) / n.qkvW.length; // [D, D] each of q, k, v, or [3D, D] fused
    n.qkvW.forEach((name, j) => {
      add(name, [rows, D]);
      if (cfg.qkv_bias) add(n.qkvB[j], [rows]);
    });
    add(n.projW, [D, D]);
    add(n.projB, [D]);
    add(n.ln2W, [D]);
    add(n.ln2B, [D]);
    add(n.fc1W, [I, D]);
    add(n.fc1B, [I]);
    add(n.fc2W, [D, I]);
    add(n.fc2B, [D]);
  }
  add(t.lnW, [D]);
  add(t.lnB, [D]);
  if (t.pooler) {
    add(t.pooler.w, [D, D], true);
    add(t.pooler.b, [D], true);
  }
  if (head !== "none") {
    add(t.headW, [cfg.num_labels, D], head === "optional");
    add(t.headB, [cfg.num_labels], head === "optional");
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
 * @param opts.strict tensors the config does not use are faults (default true; false ignores them)
 * @throws WeightsError listing every missing, unexpected and wrong-shaped tensor by its full name
 */
export async function loadWeights(
  src: AnyTensorSource,
  cfg: ViTConfig,
  heap: Heap,
  naming: Naming,
  prefix: string,
  head: "required" | "optional" | "none",
  opts: { strict?: boolean } = {},
): Promise<ViTWeights> {
  // more layers than the file holds fails before the expected names of every layer are listed
  const hf = naming === "hf";
  checkBlockCount(
    src.names(),
    hf ? `${prefix}encoder.layer.` : "blocks.",
    cfg.num_hidden_layers,
    "num_hidden_layers",
    hf ? "layernorm_before.weight" : "norm1.weight",
  );
  const wants = expectedNames(cfg, naming, prefix, head);
  const { faults, fit: tensors } = await checkTensors(src, wants, {
    ignore: (n) => ignorable(n, naming, prefix, head),
    strict: opts.strict,
  });
  const t = topNames(naming, prefix);
  // a pooler comes as a pair or not at all
  const pl = t.pooler;
  if (pl && tensors.has(pl.w) !== tensors.has(pl.b) && !faults.messages.some((f) => f.includes("pooler"))) {
    faults.addMissing(tensors.has(pl.w) ? pl.b : pl.w, undefined, "the pooler needs both weight and bias");
  }
  if (head === "optional" && tensors.has(t.headW) !== tensors.has(t.headB)) {
    faults.addMissing(tensors.has(t.headW) ? t.headB : t.headW, undefined, "the classifier needs both weight and bias");
  }
  faults.throwIfAny(
    `ViT config (hidden_size ${cfg.hidden_size}, ${cfg.num_hidden_layers} layers, ` +
      `intermediate_size ${cfg.intermediate_size}, patch ${cfg.patch_size[0]}, image ${cfg.image_size.join("x")})`,
  );

  // ---- copy: reserve the total once, then bump-allocate each parameter
  let total = 0;
  for (const m of tensors.values()) total += Math.ceil((m.shape.reduce((a, b) => a * b, 1) * 4) / 16) * 16;
  heap.reserve(total + 16 * 64);
  const put = async (name: string): Promise<number> => heap.put(await tensorData(src, name));
  const maybe = async (name: string): Promise<number> => (tensors.has(name) ? put(name) : 0);
  /** One tensor, or several stacked row-wise into one buffer (HF's q; k; v → one [3D, D] weight). */
  const stacked = async (names: string[], floats: number): Promise<number> => {
    if (names.length === 1) return put(names[0]);
    const ptr = heap.allocF32(floats);
    let off = 0;
    for (const n of names) {
      const d = await tensorData(src, n);
      heap.f32(ptr + off * 4, d.length).set(d);
      off += d.length;
    }
    return ptr;
  };
  const D = cfg.hidden_size;
  const clsToken = await put(t.cls);
  const posEmbed = await put(t.pos);
  const patchW = await put(t.patchW);
  const patchB = await put(t.patchB);
  const layers: LayerPtrs[] = [];
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const n = layerNames(naming, prefix, i);
    const ln1W = await put(n.ln1W);
    const ln1B = await put(n.ln1B);
    const qkvW = await stacked(n.qkvW, 3 * D * D);
    const qkvB = cfg.qkv_bias ? await stacked(n.qkvB, 3 * D) : 0;
    layers.push({
      ln1W,
      ln1B,
      qkvW,
      qkvB,
      projW: await put(n.projW),
      projB: await put(n.projB),
      ln2W: await put(n.ln2W),
      ln2B: await put(n.ln2B),
      fc1W: await put(n.fc1W),
      fc1B: await put(n.fc1B),
      fc2W: await put(n.fc2W),
      fc2B: await put(n.fc2B),
    });
  }
  const w: ViTWeights = {
    clsToken,
    posEmbed,
    patchW,
    patchB,
    layers,
    lnW: await put(t.lnW),
    lnB: await put(t.lnB),
    poolerW: pl ? await maybe(pl.w) : 0,
    poolerB: pl ? await maybe(pl.b) : 0,
    headW: head === "none" ? 0 : await maybe(t.headW),
    headB: head === "none" ? 0 : await maybe(t.headB),
    bytes: 0,
  };
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
