// Thread scaling of GPT-2 (small: 12 layers, 768 wide, 50257 vocabulary): the prefill of 128
// tokens and one decode step with 128 tokens cached, 1 thread (single-thread build) against 2
// threads (or THREADS="2,3"), both models in one process, interleaved round by round. Not a test.
//
//   node --experimental-wasm-relaxed-simd packages/llm/bench/threads.mjs [folder] [--rounds 5]
//   (folder: a GPT-2 safetensors folder, default /tmp/gpt2-bench, e.g. from tools/export-onnx/export_gpt2.py)
import { existsSync } from "node:fs";
import { join } from "node:path";
import { header, loadNote, median, row } from "../../core/bench/threads-util.mjs";

const args = process.argv.slice(2);
const folder = args.find((a) => !a.startsWith("--") && !/^\d+$/.test(a)) ?? "/tmp/gpt2-bench";
const rounds = Number(args[args.indexOf("--rounds") + 1] || 5);
const STEPS = 8;
const counts = (process.env.THREADS ?? "2").split(",").map(Number);
if (!existsSync(join(folder, "model.safetensors"))) {
  console.log(`gpt2 thread bench skipped: no ${join(folder, "model.safetensors")}`);
  process.exit(0);
}
const core = await import("@wasmformer/core");
const llm = await import("../dist/index.js");

let seed = 12345;
const rand = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
};
const prompt = Array.from({ length: 128 }, () => Math.floor(rand() * 50000));

const models = [];
for (const threads of [1, ...counts]) {
  await core.init({ threads });
  models.push(await llm.GPT2LMHeadModel.fromPretrained(folder, { tokenizer: false }));
}
// same logits on every thread count
const ref = models[0].prefill([prompt]).logits.data.slice();
for (const m of models.slice(1)) {
  const l = m.prefill([prompt]).logits.data;
  if (!l.every((v, i) => Object.is(v, ref[i]))) throw new Error("different prefill logits across thread counts");
}
const prefill = models.map(() => []);
const decode = models.map(() => []);
for (let r = 0; r < rounds + 1; r++) {
  models.forEach((m, e) => {
    let t0 = performance.now();
    m.prefill([prompt]);
    if (r > 0) prefill[e].push(performance.now() - t0);
    for (let s = 0; s < STEPS; s++) {
      t0 = performance.now();
      m.decode([(s * 31) % 50000]);
      if (r > 0) decode[e].push(performance.now() - t0);
    }
  });
}
console.log(header("GPT-2 (124M)", counts));
console.log(row("prefill, 128 tokens", { wall: prefill.map(median) }));
console.log(row("decode step, 128 cached", { wall: decode.map(median) }));
console.log(
  `\n${loadNote()}; backend ${core.backendName()}; threads ${models.map((m) => m.runtime.threads).join(" vs ")}`,
);
core.terminateThreads();
