// Generates valid `ops` cases (FORMAT.md §6.14) with expected values computed in f64 by plain loops,
// so the runner can be checked on cases that are not in shared/fixtures: odd sizes, −∞ in softmax
// rows, a large common offset in layer norm, conv inputs with leftover rows and columns.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { erf, Tensor, writeSafetensors } from "@wasmformer/core";
// by path, as core's tests do (only vitest imports this module, and it loads .ts)
import { mulberry32 as rng } from "../../test-utils/src/prng.ts";

const f32 = (shape, r, scale = 1) => {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = (r() * 2 - 1) * scale;
  return new Tensor(d, shape, "f32");
};
const out = (shape, f64) => new Tensor(Float32Array.from(f64), shape, "f32");

function matmul(a, b, M, K, N, ao = 0, bo = 0) {
  const o = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let p = 0; p < K; p++) s += a[ao + i * K + p] * b[bo + p * N + j];
      o[i * N + j] = s;
    }
  return o;
}

function softmaxRows(x, R, C) {
  const o = new Float64Array(R * C);
  for (let r = 0; r < R; r++) {
    let m = -Infinity;
    for (let j = 0; j < C; j++) m = Math.max(m, x[r * C + j]);
    let s = 0;
    for (let j = 0; j < C; j++) s += o[r * C + j] = Math.exp(x[r * C + j] - m);
    for (let j = 0; j < C; j++) o[r * C + j] /= s;
  }
  return o;
}

/** Writes one case folder; returns its name. */
function writeCase(root, name, config, tensors, tolerance = { atol: 1e-4, rtol: 1e-3 }) {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "io.safetensors"), writeSafetensors(tensors, { format: "pt", kind: "ops" }));
  const json = {
    format_version: 1,
    kind: "ops",
    name,
    description: `generated ${name}`,
    config,
    files: { io: "io.safetensors" },
    tolerance,
  };
  writeFileSync(join(dir, "case.json"), JSON.stringify(json, null, 1));
  return name;
}

/** Generate a set of random valid ops cases under `root`. */
export function generateOpsCases(root, seed = 1) {
  const r = rng(seed);
  const names = [];
  const sizes = [1, 3, 5, 17, 33, 65, 129];
  const pick = () => sizes[Math.floor(r() * sizes.length)];
  for (let t = 0; t < 6; t++) {
    const [M, K, N] = [pick(), pick(), pick()];
    const a = f32([M, K], r);
    const b = f32([K, N], r);
    names.push(
      writeCase(
        root,
        `ops-gen_matmul_${M}x${K}x${N}_${t}`,
        { op: "matmul" },
        {
          "input.a": a,
          "input.b": b,
          "expected.out": out([M, N], matmul(a.data, b.data, M, K, N)),
        },
      ),
    );
  }
  {
    const [B, M, K, N] = [3, 5, 17, 2];
    const a = f32([B, M, K], r);
    const b = f32([B, K, N], r);
    const e = [];
    for (let i = 0; i < B; i++) e.push(...matmul(a.data, b.data, M, K, N, i * M * K, i * K * N));
    names.push(
      writeCase(
        root,
        "ops-gen_bmm_3x5x17x2",
        { op: "bmm" },
        { "input.a": a, "input.b": b, "expected.out": out([B, M, N], e) },
      ),
    );
  }
  {
    const [R, C] = [7, 33];
    const x = f32([R, C], r, 3000);
    for (let i = 0; i < R; i++) x.data[i * C + ((i * 5) % C)] = -Infinity; // one blocked entry per row
    x.data[C * 2 + 1] = -Infinity;
    names.push(
      writeCase(
        root,
        "ops-gen_softmax_7x33_inf",
        { op: "softmax", dim: -1 },
        { "input.x": x, "expected.out": out([R, C], softmaxRows(x.data, R, C)) },
      ),
    );
  }
  {
    const [R, D, eps] = [4, 65, 1e-6];
    const x = f32([2, R, D], r);
    for (let i = 0; i < x.size; i++) x.data[i] += 3000;
    for (let j = 0; j < D; j++) x.data[j] = 5; // constant row
    const w = f32([D], r);
    const b = f32([D], r);
    const e = [];
    for (let row = 0; row < 2 * R; row++) {
      const v = Array.from(x.data.subarray(row * D, row * D + D));
      const mu = v.reduce((s, c) => s + c, 0) / D;
      const va = v.reduce((s, c) => s + (c - mu) ** 2, 0) / D;
      for (const [j, c] of v.entries()) e.push(((c - mu) / Math.sqrt(va + eps)) * w.data[j] + b.data[j]);
    }
    names.push(
      writeCase(
        root,
        "ops-gen_layer_norm_2x4x65",
        { op: "layer_norm", normalized_shape: [D], eps },
        { "input.x": x, "input.weight": w, "input.bias": b, "expected.out": out([2, R, D], e) },
        { atol: 1e-3, rtol: 1e-3, why: "inputs offset by 3000 lose float32 bits before normalisation" },
      ),
    );
  }
  {
    const x = f32([5, 17], r, 12);
    const g = (v) => 0.5 * v * (1 + erf(v / Math.SQRT2));
    const gt = (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    const si = (v) => v / (1 + Math.exp(-v));
    names.push(
      writeCase(
        root,
        "ops-gen_gelu_5x17",
        { op: "gelu", formula: "0.5*x*(1+erf(x/sqrt(2)))" },
        { "input.x": x, "expected.out": out([5, 17], Array.from(x.data, g)) },
      ),
    );
    names.push(
      writeCase(
        root,
        "ops-gen_gelu_tanh_5x17",
        { op: "gelu_tanh", formula: "tanh" },
        { "input.x": x, "expected.out": out([5, 17], Array.from(x.data, gt)) },
      ),
    );
    names.push(
      writeCase(
        root,
        "ops-gen_silu_5x17",
        { op: "silu", formula: "x*sigmoid(x)" },
        { "input.x": x, "expected.out": out([5, 17], Array.from(x.data, si)) },
      ),
    );
  }
  {
    const [B, C, H, W, O, k] = [2, 3, 11, 7, 5, 3];
    const x = f32([B, C, H, W], r);
    const w = f32([O, C, k, k], r);
    const b = f32([O], r);
    const gh = Math.floor((H - k) / k) + 1;
    const gw = Math.floor((W - k) / k) + 1;
    const e = new Float64Array(B * O * gh * gw);
    for (let bb = 0; bb < B; bb++)
      for (let o = 0; o < O; o++)
        for (let i = 0; i < gh; i++)
          for (let j = 0; j < gw; j++) {
            let s = b.data[o];
            for (let ch = 0; ch < C; ch++)
              for (let u = 0; u < k; u++)
                for (let v = 0; v < k; v++) {
                  s += w.data[((o * C + ch) * k + u) * k + v] * x.data[((bb * C + ch) * H + i * k + u) * W + j * k + v];
                }
            e[((bb * O + o) * gh + i) * gw + j] = s;
          }
    names.push(
      writeCase(
        root,
        "ops-gen_conv2d_patch_k3_leftover",
        { op: "conv2d_patch", kernel_size: k, stride: k, padding: 0 },
        { "input.x": x, "input.weight": w, "input.bias": b, "expected.out": out([B, O, gh, gw], e) },
      ),
    );
  }
  return names;
}
