// Small random checkpoints for the end-to-end tests, written as Hugging Face folders with
// @wasmformer/core's safetensors writer: a GPT-2 (byte-level BPE tokenizer included) and a
// ViTForImageClassification, plus a PNG test image. Seeded, so every run is the same.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { Tensor, writeSafetensors } from "@wasmformer/core";
import { BYTE_TO_CHAR } from "@wasmformer/text";

/** mulberry32 → N(0, std) by Box–Muller. */
function rng(seed) {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    u,
    normal(shape, std) {
      const n = shape.reduce((x, y) => x * y, 1);
      const d = new Float32Array(n);
      for (let i = 0; i < n; i++) d[i] = std * Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
      return new Tensor(d, shape);
    },
  };
}
const ones = (n) => new Tensor(new Float32Array(n).fill(1), [n]);

/** GPT-2 (HF `GPT2LMHeadModel` names, tied embeddings) with a 256-byte + 6-merge BPE vocabulary. */
export function writeGpt2(dir, opts = {}) {
  mkdirSync(dir, { recursive: true });
  const { tensors, config, vocab, merges } = gpt2Parts(opts);
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tensors));
  writeTokenizer(dir, vocab, merges);
  return { config, dir };
}

function writeTokenizer(dir, vocab, merges) {
  writeFileSync(join(dir, "vocab.json"), JSON.stringify(vocab));
  writeFileSync(join(dir, "merges.txt"), `#version: 0.2\n${merges.map((m) => m.join(" ")).join("\n")}\n`);
}

/** The tensors, config and tokenizer of a random GPT-2. */
export function gpt2Parts({ nLayer = 2, nHead = 4, nEmbd = 32, nPositions = 128, seed = 1, vocabSize = 0 } = {}) {
  const merges = [
    ["Ġ", "t"],
    ["h", "e"],
    ["Ġt", "he"],
    ["i", "n"],
    ["a", "n"],
    ["Ġ", "a"],
  ];
  const vocab = {};
  BYTE_TO_CHAR.forEach((c, i) => {
    vocab[c] = i;
  });
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  // filler tokens up to `vocabSize` (for full-size shapes; never produced by the merges)
  for (let id = Object.keys(vocab).length; id < vocabSize - 1; id++) vocab[`<|filler_${id}|>`] = id;
  vocab["<|endoftext|>"] = Object.keys(vocab).length;
  const V = Object.keys(vocab).length;
  const E = nEmbd;
  const r = rng(seed);
  // tokens other than lower-case letters, space and the merges get tiny embeddings (so tiny tied
  // logits): greedy text from this random model stays readable
  const wte = r.normal([V, E], 0.5);
  const keep = new Set([..."abcdefghijklmnopqrstuvwxyzĠ", ...merges.map(([a, b]) => a + b)]);
  for (const [tok, id] of Object.entries(vocab))
    if (!keep.has(tok)) for (let j = id * E; j < (id + 1) * E; j++) wte.data[j] *= 0.05;
  const t = {
    "transformer.wte.weight": wte,
    "transformer.wpe.weight": r.normal([nPositions, E], 0.1),
    "transformer.ln_f.weight": ones(E),
    "transformer.ln_f.bias": r.normal([E], 0.02),
  };
  for (let i = 0; i < nLayer; i++) {
    const p = `transformer.h.${i}.`;
    Object.assign(t, {
      [`${p}ln_1.weight`]: ones(E),
      [`${p}ln_1.bias`]: r.normal([E], 0.02),
      [`${p}attn.c_attn.weight`]: r.normal([E, 3 * E], 0.4),
      [`${p}attn.c_attn.bias`]: r.normal([3 * E], 0.02),
      [`${p}attn.c_proj.weight`]: r.normal([E, E], 0.2),
      [`${p}attn.c_proj.bias`]: r.normal([E], 0.02),
      [`${p}ln_2.weight`]: ones(E),
      [`${p}ln_2.bias`]: r.normal([E], 0.02),
      [`${p}mlp.c_fc.weight`]: r.normal([E, 4 * E], 0.2),
      [`${p}mlp.c_fc.bias`]: r.normal([4 * E], 0.02),
      [`${p}mlp.c_proj.weight`]: r.normal([4 * E, E], 0.1),
      [`${p}mlp.c_proj.bias`]: r.normal([E], 0.02),
    });
  }
  const config = {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    activation_function: "gelu_new",
    vocab_size: V,
    n_positions: nPositions,
    n_ctx: nPositions,
    n_embd: E,
    n_layer: nLayer,
    n_head: nHead,
    n_inner: null,
    layer_norm_epsilon: 1e-5,
    bos_token_id: V - 1,
    eos_token_id: V - 1,
    tie_word_embeddings: true,
  };
  return { tensors: t, config, vocab, merges };
}

/** ViTForImageClassification (HF names) on `image × image` pictures with `patch`-pixel patches. */
export function writeVit(dir, opts = {}) {
  mkdirSync(dir, { recursive: true });
  const { tensors, config, preprocessor } = vitParts(opts);
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, "preprocessor_config.json"), JSON.stringify(preprocessor, null, 2));
  writeFileSync(join(dir, "model.safetensors"), writeSafetensors(tensors));
  return { config, preprocessor, dir };
}

/** The tensors (`vit.` prefix; a classifier when `labels` > 0), config and preprocessor of a random ViT. */
export function vitParts({ layers = 2, heads = 4, hidden = 32, image = 32, patch = 8, labels = 10, seed = 2 } = {}) {
  const D = hidden;
  const I = 2 * D;
  const N = (image / patch) ** 2;
  const r = rng(seed);
  const t = {
    "vit.embeddings.cls_token": r.normal([1, 1, D], 0.5),
    "vit.embeddings.position_embeddings": r.normal([1, N + 1, D], 0.5),
    "vit.embeddings.patch_embeddings.projection.weight": r.normal([D, 3, patch, patch], 0.1),
    "vit.embeddings.patch_embeddings.projection.bias": r.normal([D], 0.02),
    "vit.layernorm.weight": ones(D),
    "vit.layernorm.bias": r.normal([D], 0.02),
  };
  if (labels > 0) {
    t["classifier.weight"] = r.normal([labels, D], 0.5);
    t["classifier.bias"] = r.normal([labels], 0.1);
  }
  for (let i = 0; i < layers; i++) {
    const p = `vit.encoder.layer.${i}.`;
    for (const n of ["query", "key", "value"]) {
      t[`${p}attention.attention.${n}.weight`] = r.normal([D, D], 0.4);
      t[`${p}attention.attention.${n}.bias`] = r.normal([D], 0.02);
    }
    Object.assign(t, {
      [`${p}attention.output.dense.weight`]: r.normal([D, D], 0.2),
      [`${p}attention.output.dense.bias`]: r.normal([D], 0.02),
      [`${p}intermediate.dense.weight`]: r.normal([I, D], 0.2),
      [`${p}intermediate.dense.bias`]: r.normal([I], 0.02),
      [`${p}output.dense.weight`]: r.normal([D, I], 0.2),
      [`${p}output.dense.bias`]: r.normal([D], 0.02),
      [`${p}layernorm_before.weight`]: ones(D),
      [`${p}layernorm_before.bias`]: r.normal([D], 0.02),
      [`${p}layernorm_after.weight`]: ones(D),
      [`${p}layernorm_after.bias`]: r.normal([D], 0.02),
    });
  }
  const names = [
    "tabby cat",
    "golden retriever",
    "fire truck",
    "teapot",
    "lighthouse",
    "banana",
    "violin",
    "castle",
    "tractor",
    "zebra",
  ];
  const id2label = Object.fromEntries(Array.from({ length: labels }, (_, i) => [String(i), names[i] ?? `LABEL_${i}`]));
  const config = {
    architectures: [labels > 0 ? "ViTForImageClassification" : "ViTModel"],
    model_type: "vit",
    hidden_size: D,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    intermediate_size: I,
    hidden_act: "gelu",
    layer_norm_eps: 1e-12,
    image_size: image,
    patch_size: patch,
    num_channels: 3,
    qkv_bias: true,
    ...(labels > 0
      ? { id2label, label2id: Object.fromEntries(Object.entries(id2label).map(([k, v]) => [v, Number(k)])) }
      : {}),
  };
  const preprocessor = {
    image_processor_type: "ViTImageProcessor",
    do_resize: true,
    size: { height: image, width: image },
    resample: 2,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
  };
  return { tensors: t, config, preprocessor };
}

/**
 * A ViT → Q-Former → projection → GPT-2 model (FORMAT.md §6.13, BLIP-2 / MiniGPT-4 style): a ViT
 * without classifier as `vision_model.*`, a BLIP-2 Q-Former (`query_tokens`, `qformer.*`, cross-attention
 * every `crossEvery` layers), `language_projection`, and the GPT-2 above as `language_model.*`, with
 * its tokenizer. MiniGPT-4's prompt template (the package's default) applies.
 */
export function writeVlm(dir, { queries = 4, qLayers = 2, qHidden = 32, qHeads = 4, crossEvery = 1, seed = 3 } = {}) {
  mkdirSync(dir, { recursive: true });
  const vit = vitParts({ labels: 0, seed: seed + 1 });
  const gpt2 = gpt2Parts({ nEmbd: 48, nHead: 4, nLayer: 2, nPositions: 128, seed: seed + 2 });
  const Dv = vit.config.hidden_size;
  const Dq = qHidden;
  const Iq = 2 * Dq;
  const Et = gpt2.config.n_embd;
  const r = rng(seed);
  const t = {};
  for (const [n, x] of Object.entries(vit.tensors)) t[`vision_model.${n.slice("vit.".length)}`] = x;
  for (const [n, x] of Object.entries(gpt2.tensors)) t[`language_model.${n}`] = x;
  t.query_tokens = r.normal([1, queries, Dq], 0.5);
  t["qformer.layernorm.weight"] = ones(Dq);
  t["qformer.layernorm.bias"] = r.normal([Dq], 0.02);
  const block = (p, kvIn) => {
    t[`${p}attention.query.weight`] = r.normal([Dq, Dq], 0.3);
    t[`${p}attention.query.bias`] = r.normal([Dq], 0.02);
    for (const n of ["key", "value"]) {
      t[`${p}attention.${n}.weight`] = r.normal([Dq, kvIn], 0.3);
      t[`${p}attention.${n}.bias`] = r.normal([Dq], 0.02);
    }
    t[`${p}output.dense.weight`] = r.normal([Dq, Dq], 0.2);
    t[`${p}output.dense.bias`] = r.normal([Dq], 0.02);
    t[`${p}output.LayerNorm.weight`] = ones(Dq);
    t[`${p}output.LayerNorm.bias`] = r.normal([Dq], 0.02);
  };
  for (let i = 0; i < qLayers; i++) {
    const p = `qformer.encoder.layer.${i}.`;
    block(`${p}attention.`, Dq);
    if (i % crossEvery === 0) block(`${p}crossattention.`, Dv);
    t[`${p}intermediate_query.dense.weight`] = r.normal([Iq, Dq], 0.2);
    t[`${p}intermediate_query.dense.bias`] = r.normal([Iq], 0.02);
    t[`${p}output_query.dense.weight`] = r.normal([Dq, Iq], 0.2);
    t[`${p}output_query.dense.bias`] = r.normal([Dq], 0.02);
    t[`${p}output_query.LayerNorm.weight`] = ones(Dq);
    t[`${p}output_query.LayerNorm.bias`] = r.normal([Dq], 0.02);
  }
  t["language_projection.weight"] = r.normal([Et, Dq], 0.3);
  t["language_projection.bias"] = r.normal([Et], 0.02);
  const config = {
    architectures: ["VisionQFormerGPT2ForConditionalGeneration"],
    model_type: "vit-qformer-gpt2",
    num_query_tokens: queries,
    vision_config: vit.config,
    qformer_config: {
      model_type: "blip_2_qformer",
      hidden_size: Dq,
      num_hidden_layers: qLayers,
      num_attention_heads: qHeads,
      intermediate_size: Iq,
      hidden_act: "gelu",
      layer_norm_eps: 1e-12,
      cross_attention_frequency: crossEvery,
      encoder_hidden_size: Dv,
      position_embedding_type: "absolute",
      use_qformer_text_input: false,
    },
    text_config: gpt2.config,
  };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, "model.safetensors"), writeSafetensors(t));
  writeTokenizer(dir, gpt2.vocab, gpt2.merges);
  return { config, dir };
}

// ---------------------------------------------------------------------------------------------
// PNG (RGB, 8-bit, no colour chunks: browsers decode it without colour management)

const CRC = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(buf) {
  let c = -1;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "ascii");
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** A deterministic `w × h` RGB picture (gradients and a disc) and its PNG bytes. */
export function testImage(w, h) {
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const inDisc = (x - w * 0.6) ** 2 + (y - h * 0.4) ** 2 < (w * 0.22) ** 2;
      rgb[i] = inDisc ? 240 : Math.round((255 * x) / (w - 1));
      rgb[i + 1] = inDisc ? 200 : Math.round((255 * y) / (h - 1));
      rgb[i + 2] = inDisc ? 30 : (x * 7 + y * 13) % 256;
    }
  }
  const raw = Buffer.alloc(h * (1 + w * 3));
  for (let y = 0; y < h; y++) {
    raw[y * (1 + w * 3)] = 0; // filter: none
    Buffer.from(rgb.buffer, y * w * 3, w * 3).copy(raw, y * (1 + w * 3) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
  return { rgb, png };
}
