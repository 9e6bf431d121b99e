// Training benchmark (not a test): nn's MLPClassifier and LSTMClassifier against TensorFlow.js
// (@tensorflow/tfjs-core + tfjs-backend-wasm, single-threaded SIMD build; core's devDependency) in
// the same process, the same model written with tf ops, the same weights, batch and optimizer (Adam,
// lr 1e-3: TF.js has no AdamW). One step = zero the gradients, forward, backward, Adam update.
//
//   node --experimental-wasm-relaxed-simd packages/nn/bench/train.mjs
//   env: ROUNDS=20 BACKEND=auto|wasm-simd|wasm-relaxed
//
// Before timing, both sides compute the loss of the same batch from the same weights; they must
// agree (relative 1e-4), and after one step again (the updates match too).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROUNDS = Number(process.env.ROUNDS ?? 20);
const BACKEND = process.env.BACKEND ?? "auto";

const core = await import("@wasmformer/core");
const nn = await import("@wasmformer/nn");
const backend = await core.init({ backend: BACKEND });

// TF.js from core's devDependencies
const require = createRequire(fileURLToPath(new URL("../../core/package.json", import.meta.url)));
const tf = await import(pathToFileURL(require.resolve("@tensorflow/tfjs-core")).href);
const tfwasm = await import(pathToFileURL(require.resolve("@tensorflow/tfjs-backend-wasm")).href);
tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
tfwasm.setThreadsCount(1);
tfwasm.setWasmPaths(`${dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm"))}/`);
if (!(await tf.setBackend("wasm"))) throw new Error("tfjs wasm backend failed to initialise");
await tf.ready();
await registerTfGradients();

/**
 * tfjs-core's Node bundle registers no gradient functions (the `@tensorflow/tfjs` union package
 * does, from tfjs-core's ES modules). Bundle those modules (`register_all_gradients.js`) with
 * rolldown (vite's bundler) and load them: their registry and engine are tfjs's global ones, so the
 * gradients land in the engine used here.
 */
async function registerTfGradients() {
  const vitest = createRequire(require.resolve("vitest/package.json"));
  const vite = createRequire(vitest.resolve("vite"));
  const { build } = await import(pathToFileURL(vite.resolve("rolldown")).href);
  const entry = require.resolve("@tensorflow/tfjs-core/dist/register_all_gradients.js");
  const out = await build({ input: entry, write: false, output: { format: "esm" }, logLevel: "silent" });
  const file = join(mkdtempSync(join(os.tmpdir(), "tfgrads-")), "grads.mjs");
  writeFileSync(file, out.output[0].code);
  await import(pathToFileURL(file).href);
  rmSync(dirname(file), { recursive: true, force: true });
}

let seed = 99;
const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The model's parameters by name: tf variables with the same values. */
function tfVars(model) {
  const v = {};
  for (const p of model.parameters()) {
    v[p.name] = { data: model.rt.heap.f32(p.ptr, p.size).slice(), size: p.size };
  }
  return v;
}

/** Times `ours()` and `theirs()` interleaved; checks their losses agree first. */
async function compare(name, ours, theirs, oursLoss, theirsLoss) {
  const [a, b] = [oursLoss(), await theirsLoss()];
  const agree = Math.abs(a - b) <= 1e-4 * Math.abs(b);
  ours();
  await theirs();
  const [a1, b1] = [oursLoss(), await theirsLoss()];
  const agree1 = Math.abs(a1 - b1) <= 1e-3 * Math.abs(b1);
  console.log(
    `${name}: loss ours ${a.toFixed(6)} / tfjs ${b.toFixed(6)} ${agree ? "agree" : "DIFFER"}; ` +
      `after one Adam step ${a1.toFixed(6)} / ${b1.toFixed(6)} ${agree1 ? "agree" : "DIFFER"}`,
  );
  const to = [];
  const tt = [];
  for (let r = 0; r < ROUNDS; r++) {
    let t = performance.now();
    ours();
    to.push(performance.now() - t);
    t = performance.now();
    await theirs();
    tt.push(performance.now() - t);
  }
  // the loss alone (inference forward), for scale
  const fo = [];
  const ft = [];
  for (let r = 0; r < ROUNDS; r++) {
    let t = performance.now();
    oursLoss();
    fo.push(performance.now() - t);
    t = performance.now();
    await theirsLoss();
    ft.push(performance.now() - t);
  }
  const [mo, mt] = [median(to), median(tt)];
  console.log(
    `  per step: ours ${mo.toFixed(2)} ms, tfjs ${mt.toFixed(2)} ms → ours/tfjs = ${(mo / mt).toFixed(2)}  (target ≤ 0.4)\n` +
      `  loss only (forward): ours ${median(fo).toFixed(2)} ms, tfjs ${median(ft).toFixed(2)} ms`,
  );
  return { mo, mt };
}

console.log(
  `backend ${backend}, tfjs-backend-wasm ${tf.version_core} (1 thread, SIMD); node ${process.version}; ` +
    `${os.cpus()[0]?.model}; load ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}; ${ROUNDS} rounds, medians`,
);

// ---- MLP: 784 → 256 (relu) → 10, batch 64 ------------------------------------------------------
{
  const [I, Hd, C, Bn] = [784, 256, 10, 64];
  const model = nn.MLPClassifier.create({ inputSize: I, hiddenSize: Hd, numClasses: C }, { seed: 1 });
  model.train();
  const opt = new nn.Adam(model.runtime ?? model.rt, model.parameters(), { lr: 1e-3 });
  const batch = Array.from({ length: Bn }, () => ({
    x: Float32Array.from({ length: I }, () => rand()),
    label: Math.floor(rand() * C),
  }));
  const w = tfVars(model);
  const v = (n, shape) => tf.variable(tf.tensor(w[n].data, shape));
  const W1 = v("fc1.weight", [Hd, I]);
  const b1 = v("fc1.bias", [Hd]);
  const W2 = v("fc2.weight", [C, Hd]);
  const b2 = v("fc2.bias", [C]);
  const X = tf.tensor2d(
    batch.flatMap((e) => Array.from(e.x)),
    [Bn, I],
  );
  const Y = tf.oneHot(
    tf.tensor1d(
      batch.map((e) => e.label),
      "int32",
    ),
    C,
  );
  const tfOpt = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
  const lossFn = () => {
    const h = tf.relu(tf.add(tf.matMul(X, W1, false, true), b1));
    return tf.losses.softmaxCrossEntropy(Y, tf.add(tf.matMul(h, W2, false, true), b2));
  };
  await compare(
    `MLP ${I}→${Hd}→${C}, batch ${Bn}, Adam`,
    () => {
      opt.zeroGrad();
      model.lossAndGrad(batch, 1);
      opt.step();
    },
    async () => {
      const l = tfOpt.minimize(lossFn, true, [W1, b1, W2, b2]);
      await l.data();
      l.dispose();
    },
    () => model.evaluate(batch).loss,
    async () => {
      const l = tf.tidy(lossFn);
      const x = (await l.data())[0];
      l.dispose();
      return x;
    },
  );
  model.dispose();
}

// ---- LSTM classifier: vocab 2000, embedding 64, hidden 128, 2 classes, batch 32 × 40 tokens ------
{
  const [V, E, H, C, Bn, T] = [2000, 64, 128, 2, 32, 40];
  const model = nn.LSTMClassifier.create({ vocabSize: V, embeddingDim: E, hiddenSize: H, numClasses: C }, { seed: 2 });
  model.train();
  const opt = new nn.Adam(model.rt, model.parameters(), { lr: 1e-3 });
  const batch = Array.from({ length: Bn }, () => ({
    ids: Array.from({ length: T }, () => Math.floor(rand() * V)),
    label: Math.floor(rand() * C),
  }));
  const w = tfVars(model);
  const v = (n, shape) => tf.variable(tf.tensor(w[n].data, shape));
  const emb = v("embedding.weight", [V, E]);
  const Wih = v("lstm.weight_ih_l0", [4 * H, E]);
  const Whh = v("lstm.weight_hh_l0", [4 * H, H]);
  const bih = v("lstm.bias_ih_l0", [4 * H]);
  const bhh = v("lstm.bias_hh_l0", [4 * H]);
  const Wc = v("classifier.weight", [C, H]);
  const bc = v("classifier.bias", [C]);
  // time-major ids [T, B]
  const ids = tf.tensor2d(Array.from({ length: T }, (_, t) => batch.map((e) => e.ids[t])).flat(), [T, Bn], "int32");
  const Y = tf.oneHot(
    tf.tensor1d(
      batch.map((e) => e.label),
      "int32",
    ),
    C,
  );
  const tfOpt = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
  // The embedding lookup: tf.gather, whose gradient (UnsortedSegmentSum) the wasm backend lacks, so
  // its backward is the scatter-add ScatterNd (repeated ids accumulate).
  const flatIds = tf.reshape(ids, [T * Bn]);
  const rows = tf.reshape(ids, [T * Bn, 1]);
  const lookup = tf.customGrad((table) => ({
    value: tf.gather(table, flatIds),
    gradFunc: (dy) => [tf.scatterND(rows, dy, [V, E])],
  }));
  // PyTorch LSTM, gates i, f, g, o; the input projection of every step in one matmul
  const lossFn = () => {
    const x = lookup(emb);
    const gx = tf.reshape(tf.add(tf.matMul(x, Wih, false, true), tf.add(bih, bhh)), [T, Bn, 4 * H]);
    let h = tf.zeros([Bn, H]);
    let c = tf.zeros([Bn, H]);
    const steps = tf.unstack(gx);
    for (let t = 0; t < T; t++) {
      const g = tf.add(steps[t], tf.matMul(h, Whh, false, true));
      const [gi, gf, gg, go] = tf.split(g, 4, 1);
      c = tf.add(tf.mul(tf.sigmoid(gf), c), tf.mul(tf.sigmoid(gi), tf.tanh(gg)));
      h = tf.mul(tf.sigmoid(go), tf.tanh(c));
    }
    return tf.losses.softmaxCrossEntropy(Y, tf.add(tf.matMul(h, Wc, false, true), bc));
  };
  await compare(
    `LSTM classifier (vocab ${V}, ${E}, hidden ${H}, ${C} classes), batch ${Bn}×${T}, Adam`,
    () => {
      opt.zeroGrad();
      model.lossAndGrad(batch, 1);
      opt.step();
    },
    async () => {
      const l = tfOpt.minimize(lossFn, true, [emb, Wih, Whh, bih, bhh, Wc, bc]);
      await l.data();
      l.dispose();
    },
    () => model.evaluate(batch).loss,
    async () => {
      const l = tf.tidy(lossFn);
      const x = (await l.data())[0];
      l.dispose();
      return x;
    },
  );
  model.dispose();
}
