import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const core = await import("@wasmformer/core");
const vit = await import("../dist/index.js");
const size = process.argv[2] ?? "tiny";
const T = Number(process.env.THREADS ?? 1);
const d = join(tmpdir(), "wasmformer-vit-bench");
await core.init({ threads: T });
const config = JSON.parse(readFileSync(`${d}/vit-${size}.config.json`, "utf8"));
const model = await vit.ViTForImageClassification.fromPretrained({
  config,
  weights: readFileSync(`${d}/vit-${size}.safetensors`),
});
const input = new Float32Array(new Uint8Array(readFileSync(`${d}/vit-${size}.input.f32`)).slice().buffer);
const pixels = new core.Tensor(input, [1, 3, 224, 224]);
const rt = model.rt ?? model.runtime ?? model.vit?.rt;
const acc = new Map();
if (rt && process.env.WRAP)
  for (const name of Object.keys(rt.k)) {
    const f = rt.k[name];
    if (typeof f !== "function") continue;
    rt.k[name] = (...a) => {
      const t = performance.now();
      const r = f(...a);
      acc.set(name, (acc.get(name) ?? 0) + performance.now() - t);
      return r;
    };
  }
for (let i = 0; i < 5; i++) model.forward(pixels);
acc.clear();
const N = Number(process.env.N ?? 20);
const t = performance.now();
for (let i = 0; i < N; i++) model.forward(pixels);
console.log(size, "threads", T, "forward", ((performance.now() - t) / N).toFixed(2), "ms", rt ? "" : "(no rt found)");
for (const [k, v] of [...acc].sort((a, b) => b[1] - a[1]).slice(0, 14))
  console.log(k.padEnd(24), (v / N).toFixed(3), "ms");
