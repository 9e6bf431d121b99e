// Train the dates-seq2seq checkpoint: an LSTM encoder–decoder with Luong attention (@wasmformer/nn
// AttentionSeq2Seq) that turns written dates into ISO dates, character by character. The data are
// generated (scripts/dates-data.mjs, seeded); held-out dates are never seen in training.
//
//   pnpm build
//   nice -n 10 env WASMFORMER_THREADS=1 node --experimental-wasm-relaxed-simd \
//     packages/models/scripts/train-dates-seq2seq.mjs [--max-steps 3000] [--out DIR] [--seed 0]
//
// Each "round" draws 8192 fresh training pairs, buckets them by input length (the encoder takes
// equal-length rows) into batches of 64, and runs them in a seeded random order: teacher-forced
// mean token cross-entropy, AdamW, gradient clipping at 1, linear warm-up then cosine decay.
// At the end: greedy exact match on held-out pairs, and the model in F16 with its config.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { init, Tensor } from "@wasmformer/core";
import { AdamW, AttentionSeq2Seq, clipGradNorm, cosineWithWarmup } from "@wasmformer/nn";
import { datePairs, MAX_TARGET_LENGTH, rng, SRC_VOCAB, TGT_VOCAB, toExample } from "./dates-data.mjs";

export const ARCH = { embedDim: 32, hiddenSize: 128 };
const ROUND = 8192;
const BATCH = 64;

/** Batches of equal-length inputs from `pairs`, in a seeded random order. */
function batches(examples, rand) {
  const byLen = new Map();
  for (const e of examples) {
    const g = byLen.get(e.src.length) ?? [];
    g.push(e);
    byLen.set(e.src.length, g);
  }
  const out = [];
  for (const g of byLen.values()) for (let i = 0; i < g.length; i += BATCH) out.push(g.slice(i, i + BATCH));
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Greedy exact match of `model` on `pairs` (batched by input length). */
export function exactMatch(model, pairs) {
  let right = 0;
  const wrong = [];
  const byLen = new Map();
  for (const p of pairs) {
    const e = toExample(p);
    const g = byLen.get(e.src.length) ?? [];
    g.push([p, e]);
    byLen.set(e.src.length, g);
  }
  for (const [S, g] of byLen) {
    const src = new Tensor(Int32Array.from(g.flatMap(([, e]) => e.src)), [g.length, S], "i32");
    const { ids } = model.greedy(src, { maxNewTokens: MAX_TARGET_LENGTH });
    g.forEach(([p], b) => {
      const text = ids[b]
        .filter((i) => i !== model.eosId)
        .map((i) => TGT_VOCAB[i])
        .join("");
      if (text === p.iso && ids[b].at(-1) === model.eosId) right++;
      else wrong.push(`${p.text} → ${text} (want ${p.iso})`);
    });
  }
  return { accuracy: right / pairs.length, wrong };
}

/**
 * Train; returns the model and the losses. `log` gets progress lines. `maxSteps` optimizer steps,
 * `evalEvery` steps between held-out checks (0: none), `heldOutSize` held-out pairs for the final
 * exact match, `out` the checkpoint folder (none: not saved).
 */
export async function train({
  maxSteps = 3000,
  seed = 0,
  out,
  evalEvery = 250,
  heldOutSize = 1000,
  log = console.log,
} = {}) {
  await init();
  const model = AttentionSeq2Seq.create(
    { srcVocabSize: SRC_VOCAB.length, tgtVocabSize: TGT_VOCAB.length, ...ARCH, bosId: 1, eosId: 2 },
    { seed, vocab: { src: SRC_VOCAB, tgt: TGT_VOCAB, lowercase: true, unkToken: "<unk>" } },
  );
  model.maxTargetLength = MAX_TARGET_LENGTH;
  const params = model.parameters();
  const opt = new AdamW(model.runtime, params, { lr: 3e-3, weightDecay: 0.01 });
  const schedule = cosineWithWarmup(Math.min(100, Math.floor(maxSteps / 10)), maxSteps);
  const probe = datePairs(256, seed + 7).map(toExample); // a fixed training-split batch for the loss
  const heldOut = datePairs(heldOutSize, seed + 1_000_003, true);
  const rand = rng(seed + 13);
  const startLoss = model.evaluate(probe).loss;
  log(`params ${params.reduce((a, p) => a + p.size, 0)}; loss on the probe batch at start ${startLoss.toFixed(4)}`);
  const t0 = performance.now();
  const losses = [];
  let step = 0;
  model.train();
  for (let round = 0; step < maxSteps; round++) {
    for (const batch of batches(datePairs(ROUND, seed * 1000 + round).map(toExample), rand)) {
      if (step >= maxSteps) break;
      model.zeroGrad();
      const r = model.lossAndGrad(batch, 1);
      clipGradNorm(model.runtime, params, 1);
      opt.lr = 3e-3 * schedule(step);
      opt.step();
      step++;
      losses.push(r.loss);
      if (step % 50 === 0 || step === maxSteps) {
        const recent = losses.slice(-50);
        const mean = recent.reduce((a, v) => a + v, 0) / recent.length;
        log(
          `step ${step} loss ${mean.toFixed(4)} lr ${opt.lr.toExponential(2)} ${((performance.now() - t0) / 1000).toFixed(0)} s`,
        );
      }
      if (evalEvery && step % evalEvery === 0 && step < maxSteps) {
        model.eval();
        log(
          `step ${step} held-out exact match ${(exactMatch(model, heldOut.slice(0, 300)).accuracy * 100).toFixed(1)} %`,
        );
        model.train();
      }
    }
  }
  model.eval();
  const seconds = (performance.now() - t0) / 1000;
  const endLoss = model.evaluate(probe).loss;
  log(`loss on the probe batch at the end ${endLoss.toFixed(4)}; ${step} steps in ${seconds.toFixed(0)} s`);
  if (out) {
    const em = exactMatch(model, heldOut);
    log(`held-out exact match ${(em.accuracy * 100).toFixed(2)} % of ${heldOut.length}`);
    for (const w of em.wrong.slice(0, 20)) log(`  wrong: ${w}`);
    mkdirSync(out, { recursive: true });
    await model.saveTo(out, { dtype: "F16" });
    writeFileSync(
      join(out, "training_log.json"),
      `${JSON.stringify({ steps: step, seconds: Math.round(seconds), startLoss, endLoss, heldOutExactMatch: em.accuracy }, null, 2)}\n`,
    );
    log(`saved to ${out}`);
  }
  return { model, losses, startLoss, endLoss, steps: step };
}

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--max-steps") o.maxSteps = Number(v);
    else if (k === "--seed") o.seed = Number(v);
    else if (k === "--out") o.out = v;
    else if (k === "--eval-every") o.evalEvery = Number(v);
    else throw new Error(`unknown argument ${k} (use --max-steps N, --seed N, --out DIR, --eval-every N)`);
  }
  return o;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const here = dirname(fileURLToPath(import.meta.url));
  const o = parseArgs(process.argv.slice(2));
  const { model } = await train({ out: join(here, "..", "checkpoints", "dates-seq2seq"), ...o });
  for (const text of ["march 3rd, 1998", "3 March 1998", "Tuesday, 3/3/98", "1998-03-03"])
    console.log(`${text} → ${model.translate(text).text}`);
  model.dispose();
}
