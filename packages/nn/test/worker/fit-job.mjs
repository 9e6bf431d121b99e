// A small seeded training run with `fit` on the built packages (dist), run by plain Node (see
// fit-worker.test.ts): `node fit-job.mjs '<job json>'` runs the job in the main thread, then the same
// job in a worker_threads Worker (this file again, with the job in `workerData`), and prints both
// results as one JSON line { main, worker }.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { createRuntime, init, mulberry32 } from "@wasmformer/core";
import { AdamW, cosineWithWarmup, fit, LSTMClassifier, MLPClassifier } from "../../dist/index.js";

/** Train `kind` ("mlp" | "lstm") for a few epochs; every step's loss and lr, the epoch logs, the final parameters. */
export async function runJob({ kind, backend, seed }) {
  await init({ backend });
  const rand = mulberry32(seed);
  const rt = createRuntime();
  let model;
  let data;
  if (kind === "mlp") {
    model = MLPClassifier.create(
      { inputSize: 5, hiddenSize: 24, numClasses: 3, activation: "gelu" },
      { seed, runtime: rt },
    );
    data = Array.from({ length: 150 }, () => {
      const x = Array.from({ length: 5 }, () => 2 * rand() - 1);
      return { x, label: x[0] + x[1] > 0.3 ? 0 : x[2] * x[3] > 0 ? 1 : 2 };
    });
  } else {
    model = LSTMClassifier.create(
      { vocabSize: 11, embeddingDim: 6, hiddenSize: 9, numClasses: 2 },
      { seed, runtime: rt },
    );
    data = Array.from({ length: 100 }, () => {
      const ids = Array.from({ length: 7 }, () => 1 + Math.floor(rand() * 10));
      return { ids, label: ids.indexOf(3) >= 0 && ids.indexOf(3) < ids.indexOf(7) ? 1 : 0 };
    });
  }
  const opt = new AdamW(rt, model.parameters(), { lr: 0.02 });
  const steps = [];
  const h = await fit(model, data.slice(0, -30), {
    optimizer: opt,
    epochs: 4,
    batchSize: 16,
    seed,
    clipGradNorm: 1,
    schedule: cosineWithWarmup(3, 40),
    validation: data.slice(-30),
    onBatchEnd: (b) => {
      steps.push([b.loss, b.lr, b.gradNorm]);
    },
  });
  const params = model.parameters().map((p) => Array.from(rt.heap.f32(p.ptr, p.size)));
  model.dispose();
  return { steps, history: h.history, params };
}

if (isMainThread && process.argv[2]) {
  const job = JSON.parse(process.argv[2]);
  const main = await runJob(job);
  const worker = await new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: { fitJob: job } });
    w.once("message", (m) => {
      void w.terminate();
      if (m.ok) resolve(m.result);
      else reject(new Error(m.error));
    });
    w.once("error", reject);
  });
  process.stdout.write(`${JSON.stringify({ main, worker })}\n`);
} else if (!isMainThread && workerData?.fitJob) {
  runJob(workerData.fitJob).then(
    (r) => parentPort.postMessage({ ok: true, result: r }),
    (e) => parentPort.postMessage({ ok: false, error: String(e?.stack ?? e) }),
  );
}
