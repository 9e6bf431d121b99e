// The Brown-corpus language model, shared by `train-brown-lm.mjs` (the embedded checkpoint) and
// llm's `examples/train-brown.mjs` (the same run at example size): the corpus as documents, the
// train / validation split, a byte-level BPE tokenizer from text's BpeTrainer, a fresh GPT-2 or
// Llama decoder, nn's `fit` (AdamW, linear warm-up + cosine decay, gradient clipping), samples and
// a Hugging Face folder (config.json, model.safetensors, tokenizer.json, generation_config.json).
//
// Perplexity is per BPE token of this tokenizer (not comparable across vocabularies).
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { mulberry32, Tensor, writeSafetensors } from "@wasmformer/core";
import { AutoModelForCausalLM, fromSubwordTokenizer, generateAll } from "@wasmformer/llm";
import { AdamW, cosineWithWarmup, evaluate, fit, selectParams } from "@wasmformer/nn";
import { BpeTrainer, SubwordTokenizer } from "@wasmformer/text";
import { brownDocuments, splitDocuments } from "./brown-corpus.mjs";

export const EOT = "<|endoftext|>";

/** The prompts of the samples printed after training (and in the model card). */
export const SAMPLE_PROMPTS = ["The jury said", "In the morning", "He looked at her and", "The United States"];

/** `--key value` command-line arguments → options, numbers where the default is a number. */
export function parseArgs(argv, defaults) {
  const raw = Object.fromEntries(argv.flatMap((a, i, all) => (a.startsWith("--") ? [[a.slice(2), all[i + 1]]] : [])));
  const o = { ...defaults };
  for (const [k, v] of Object.entries(raw)) {
    const key = k.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option --${k}; options: ${Object.keys(defaults).join(", ")}`);
    o[key] = typeof defaults[key] === "number" ? Number(v) : v;
    if (typeof defaults[key] === "number" && !Number.isFinite(o[key])) throw new Error(`--${k}: not a number: ${v}`);
  }
  o.out = resolve(o.out);
  return o;
}

/** Documents → one token stream (each document followed by <|endoftext|>, id 0) → windows of ctx tokens. */
export function windows(tokenizer, docs, ctx) {
  const ids = [];
  for (const d of docs) ids.push(...tokenizer.encodeIds(d), 0);
  const out = [];
  for (let i = 0; i + ctx <= ids.length; i += ctx) out.push(Int32Array.from(ids.slice(i, i + ctx)));
  return { out, tokens: ids.length };
}

/** A fresh decoder: GPT-2 (LayerNorm, learned positions, GELU) or Llama (RMSNorm, RoPE, SwiGLU), seeded. */
export async function freshModel(o, maxBatch = 4) {
  const rand = mulberry32(o.seed + 1);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const E = o.width;
  const L = o.layers;
  const tensors = new Map();
  const put = (name, shape, std, fill = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = std ? std * normal() : fill;
    tensors.set(name, new Tensor(data, shape, "f32"));
  };
  const projStd = 0.02 / Math.sqrt(2 * L); // GPT-2's scaled init of the residual projections
  let config;
  if (o.arch === "gpt2") {
    config = {
      model_type: "gpt2",
      vocab_size: o.vocab,
      n_positions: o.ctx,
      n_embd: E,
      n_layer: L,
      n_head: o.heads,
      n_inner: null,
      activation_function: "gelu_new",
      layer_norm_epsilon: 1e-5,
      bos_token_id: 0,
      eos_token_id: 0,
    };
    put("transformer.wte.weight", [o.vocab, E], 0.02);
    put("transformer.wpe.weight", [o.ctx, E], 0.01);
    for (let l = 0; l < L; l++) {
      const p = `transformer.h.${l}.`;
      for (const ln of ["ln_1", "ln_2"]) {
        put(`${p}${ln}.weight`, [E], 0, 1);
        put(`${p}${ln}.bias`, [E], 0);
      }
      put(`${p}attn.c_attn.weight`, [E, 3 * E], 0.02);
      put(`${p}attn.c_attn.bias`, [3 * E], 0);
      put(`${p}attn.c_proj.weight`, [E, E], projStd);
      put(`${p}attn.c_proj.bias`, [E], 0);
      put(`${p}mlp.c_fc.weight`, [E, 4 * E], 0.02);
      put(`${p}mlp.c_fc.bias`, [4 * E], 0);
      put(`${p}mlp.c_proj.weight`, [4 * E, E], projStd);
      put(`${p}mlp.c_proj.bias`, [E], 0);
    }
    put("transformer.ln_f.weight", [E], 0, 1);
    put("transformer.ln_f.bias", [E], 0);
  } else if (o.arch === "llama") {
    const I = Math.round((8 * E) / 3 / 32) * 32;
    config = {
      model_type: "llama",
      vocab_size: o.vocab,
      hidden_size: E,
      intermediate_size: I,
      num_hidden_layers: L,
      num_attention_heads: o.heads,
      num_key_value_heads: o.heads,
      max_position_embeddings: o.ctx,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      hidden_act: "silu",
      tie_word_embeddings: true,
      bos_token_id: 0,
      eos_token_id: 0,
    };
    put("model.embed_tokens.weight", [o.vocab, E], 0.02);
    for (let l = 0; l < L; l++) {
      const p = `model.layers.${l}.`;
      put(`${p}input_layernorm.weight`, [E], 0, 1);
      put(`${p}post_attention_layernorm.weight`, [E], 0, 1);
      for (const q of ["q_proj", "k_proj", "v_proj"]) put(`${p}self_attn.${q}.weight`, [E, E], 0.02);
      put(`${p}self_attn.o_proj.weight`, [E, E], projStd);
      put(`${p}mlp.gate_proj.weight`, [I, E], 0.02);
      put(`${p}mlp.up_proj.weight`, [I, E], 0.02);
      put(`${p}mlp.down_proj.weight`, [E, I], projStd);
    }
    put("model.norm.weight", [E], 0, 1);
  } else {
    throw new Error(`--arch: expected gpt2 or llama, got ${o.arch}`);
  }
  const weights = {
    names: () => [...tensors.keys()],
    has: (n) => tensors.has(n),
    info: (n) => ({ shape: tensors.get(n).shape }),
    get: (n) => tensors.get(n),
  };
  return AutoModelForCausalLM.fromWeights(config, weights, { maxBatch });
}

/**
 * Write the Hugging Face folder: config.json, model.safetensors (`floatDtype` "F16" halves it),
 * tokenizer.json and generation_config.json (the sampling settings of the card's samples).
 */
export async function saveFolder(model, tokJson, out, floatDtype = "F32") {
  await mkdir(out, { recursive: true });
  await writeFile(join(out, "config.json"), `${JSON.stringify(model.configJson(), null, 2)}\n`);
  await writeFile(
    join(out, "model.safetensors"),
    writeSafetensors(model.stateDict(), { format: "pt" }, { floatDtype }),
  );
  await writeFile(join(out, "tokenizer.json"), JSON.stringify(tokJson));
  const gen = { bos_token_id: 0, eos_token_id: 0, do_sample: true, temperature: 0.8, top_k: 40, max_new_tokens: 40 };
  await writeFile(join(out, "generation_config.json"), `${JSON.stringify(gen, null, 2)}\n`);
}

/**
 * The whole run: corpus → tokenizer → windows → fresh model → fit → validation perplexity → samples.
 * `o`: arch, layers, width, heads, ctx, vocab, epochs, batch, lr, docs, maxSteps, seed, logEvery,
 * saveEvery (steps between intermediate folders written by `onSave`, 0 = none), evalBefore (also
 * report the validation loss of the fresh model), init (a folder to start from instead of a fresh model).
 * Returns the trained model (in eval mode), its tokenizer.json object, metrics and samples.
 */
export async function trainBrownLm(o, { log = console.log, onSave } = {}) {
  const t0 = performance.now();
  const secs = () => ((performance.now() - t0) / 1000).toFixed(1);
  const docs = brownDocuments().slice(0, o.docs);
  const split = splitDocuments(docs);
  log(`brown: ${docs.length} documents (${split.train.length} train, ${split.validation.length} validation)`);

  // 1. tokenizer: byte-level BPE learned from the training documents only
  const tokJson = new BpeTrainer({ vocabSize: o.vocab, specialTokens: [EOT] }).feed(split.train).train();
  const subword = SubwordTokenizer.fromTokenizerJson(tokJson);
  log(`[${secs()} s] BpeTrainer: ${o.vocab} tokens`);
  const train = windows(subword, split.train, o.ctx);
  const val = windows(subword, split.validation, o.ctx);
  log(
    `[${secs()} s] ${train.tokens} train tokens → ${train.out.length} windows of ${o.ctx}; ${val.tokens} validation tokens → ${val.out.length}`,
  );

  // 2. a fresh model, or (--init <folder>) one trained before with this tokenizer, to train further
  const model = o.init ? await AutoModelForCausalLM.fromPretrained(o.init, { maxBatch: 4 }) : await freshModel(o);
  model.tokenizer = fromSubwordTokenizer(subword);
  const nParams = model.parameters().reduce((s, p) => s + p.size, 0);
  log(
    `[${secs()} s] ${o.arch}: ${o.layers} layers, width ${o.width}, ${o.heads} heads, context ${o.ctx}: ${(nParams / 1e6).toFixed(2)} M parameters`,
  );

  // 3. fit: AdamW (no decay on biases and norms), warm-up + cosine, clipping at 1
  model.train({ maxBatch: o.batch, maxSeqLen: o.ctx });
  const stepsPerEpoch = Math.ceil(train.out.length / o.batch);
  const totalSteps = o.maxSteps > 0 ? Math.min(o.maxSteps, stepsPerEpoch * o.epochs) : stepsPerEpoch * o.epochs;
  const groups = selectParams(model.parameters(), { noDecay: [/bias$|ln_|norm/] });
  const opt = new AdamW(model.runtime, groups, { lr: o.lr, weightDecay: 0.1, betas: [0.9, 0.95] });
  if (o.evalBefore) {
    const v0 = evaluate(model, val.out, o.batch);
    log(
      `[${secs()} s] before training: validation loss ${v0.loss.toFixed(3)}, perplexity ${Math.exp(v0.loss).toFixed(1)}`,
    );
  }
  const losses = [];
  const history = await fit(model, train.out, {
    optimizer: opt,
    epochs: o.epochs,
    batchSize: o.batch,
    seed: o.seed,
    clipGradNorm: 1,
    schedule: cosineWithWarmup(Math.max(1, Math.round(totalSteps * 0.05)), totalSteps),
    validation: o.epochs > 1 ? val.out : undefined, // per-epoch perplexity (the last one is evaluated below)
    onBatchEnd: async (b) => {
      losses.push(b.loss);
      if (b.step % o.logEvery === 0)
        log(`[${secs()} s] step ${b.step}/${totalSteps} loss ${b.loss.toFixed(3)} lr ${b.lr.toExponential(2)}`);
      if (onSave && o.saveEvery > 0 && b.step % o.saveEvery === 0) {
        await onSave(model, tokJson, b.step);
        log(`[${secs()} s] step ${b.step}: saved`);
      }
      return o.maxSteps > 0 && b.step >= o.maxSteps ? false : undefined;
    },
    onEpochEnd: (e) => {
      if (e.valLoss === undefined) return;
      log(
        `[${secs()} s] epoch ${e.epoch + 1}: train loss ${e.loss.toFixed(3)}, validation loss ${e.valLoss.toFixed(3)}, perplexity ${e.valPerplexity.toFixed(1)}`,
      );
    },
  });
  const vEnd = evaluate(model, val.out, o.batch);
  const seconds = (performance.now() - t0) / 1000;
  log(
    `[${secs()} s] done after ${history.steps} steps: validation loss ${vEnd.loss.toFixed(3)}, perplexity ${Math.exp(vEnd.loss).toFixed(2)}`,
  );

  // 4. samples
  model.eval();
  const maxNewTokens = Math.min(40, o.ctx - 16);
  const sampled = await generateAll(model, model.tokenizer, SAMPLE_PROMPTS, {
    maxNewTokens,
    temperature: 0.8,
    topK: 40,
    seed: o.seed,
    stopIds: [],
  });
  const greedy = await greedyTexts(model, Math.min(20, o.ctx - 16));
  for (const [i, t] of sampled.texts.entries()) log(`sample ${i + 1}: ${JSON.stringify(SAMPLE_PROMPTS[i] + t)}`);
  for (const [i, t] of greedy.entries()) log(`greedy ${i + 1}: ${JSON.stringify(SAMPLE_PROMPTS[i] + t)}`);
  return {
    model,
    tokJson,
    val,
    nParams,
    steps: history.steps,
    epochs: history.steps / stepsPerEpoch,
    losses,
    seconds,
    trainTokens: train.tokens,
    valLoss: vEnd.loss,
    valPerplexity: Math.exp(vEnd.loss),
    samples: sampled.texts.map((t, i) => SAMPLE_PROMPTS[i] + t),
    greedy: greedy.map((t, i) => SAMPLE_PROMPTS[i] + t),
  };
}

/** Greedy continuations of the sample prompts. */
export async function greedyTexts(model, maxNewTokens) {
  const r = await generateAll(model, model.tokenizer, SAMPLE_PROMPTS, { maxNewTokens, temperature: 0, stopIds: [] });
  return r.texts;
}
