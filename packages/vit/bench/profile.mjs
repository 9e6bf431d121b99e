// Per-kernel time of one ViT forward (wraps the runtime's kernels with timers). Not a test.
//   node --experimental-wasm-relaxed-simd bench/profile.mjs tiny      (after export_vit.py tiny)
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const size = process.argv[2] ?? "tiny";
const core = await import("@wasmformer/core");
const vit = await import("../dist/index.js");
await core.init({ backend: process.argv[3] ?? "auto" });
const dir = pathToFileURL(`${process.env.VIT_BENCH_DIR ?? join(tmpdir(), "wasmformer-vit-bench")}/`);
const file = (ext) => new URL(`vit-${size}.${ext}`, dir);
const config = JSON.parse(readFileSync(file("config.json"), "utf8"));
const input = new Float32Array(new Uint8Array(readFileSync(file("input.f32"))).slice().buffer);
const rt = core.createRuntime();
const times = {};
const k = {};
for (const [name, f] of Object.entries(rt.k)) {
  if (typeof f !== "function") continue;
  k[name] = (...a) => {
    const t0 = performance.now();
    const r = f(...a);
    // GEMMs are told apart by shape and epilogue (q/k/v, output projection, MLP with GELU, …)
    const key =
      name === "gemm"
        ? `gemm ${a[0]}x${a[1]}x${a[2]} act ${a[14]} beta ${a[13]}`
        : name === "gemmPacked"
          ? `gemmPacked ${a[0]}x${a[1]}x${a[2]} act ${a[12]} beta ${a[11]}`
          : name;
    times[key] = (times[key] ?? 0) + performance.now() - t0;
    return r;
  };
}
const weights = readFileSync(file("safetensors")); // a Buffer is a Uint8Array: no copy
const m = await vit.ViTForImageClassification.fromPretrained(
  { config, weights },
  { runtime: { backend: rt.backend, heap: rt.heap, k } },
);
const x = new core.Tensor(input, [1, 3, 224, 224]);
m.forward(x);
for (const key of Object.keys(times)) delete times[key];
const R = 5;
const t0 = performance.now();
for (let i = 0; i < R; i++) m.forward(x);
const total = (performance.now() - t0) / R;
console.log(`ViT-${size} on ${rt.backend}: ${total.toFixed(1)} ms per forward`);
for (const [n, t] of Object.entries(times).sort((a, b) => b[1] - a[1]))
  console.log(`  ${n.padEnd(32)} ${(t / R).toFixed(2)} ms`);
