// Uses @wasmformer/core, text and nn as an outside user would (copied into the fresh projects as is;
// the same module runs in Node, in a browser page and in a module worker). Resolves to a JSON-able
// report; every value is checked against a plain-JS reference computed here.
import { init, matmul, softmax, Tensor } from "@wasmformer/core";
import { loadModule, MultiheadAttention, tensorSource } from "@wasmformer/nn";
import { padSequences, Tokenizer } from "@wasmformer/text";

function rand(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}
const randTensor = (r, shape) => new Tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, r), shape);

export async function check() {
  const backend = await init();
  const r = rand(7);

  // core: matmul against a triple loop, softmax rows sum to 1
  const [M, K, N] = [5, 7, 3];
  const a = randTensor(r, [M, K]);
  const b = randTensor(r, [K, N]);
  const c = matmul(a, b).data;
  let matmulErr = 0;
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a.data[i * K + k] * b.data[k * N + j];
      matmulErr = Math.max(matmulErr, Math.abs(s - c[i * N + j]));
    }
  const sm = softmax(a, -1).data;
  let softmaxErr = 0;
  for (let i = 0; i < M; i++)
    softmaxErr = Math.max(softmaxErr, Math.abs(sm.subarray(i * K, (i + 1) * K).reduce((x, y) => x + y, 0) - 1));

  // text: the lecture's Keras example
  const tok = new Tokenizer();
  tok.fitOnTexts(["I love Algeria", "machine learning", "Artificial intelligence", "AI"]);
  const sequences = tok.textsToSequences(["Algeria love AI"]);
  const padded = padSequences([[1, 2, 3, 4], [1, 2, 3], [1]], { maxlen: 4, padding: "post" }).toArray();

  // nn: torch.nn.MultiheadAttention (batch first) against a plain-JS reference
  const E = 8;
  const H = 2;
  const L = 4;
  const d = E / H;
  const w = {
    in_proj_weight: randTensor(r, [3 * E, E]),
    in_proj_bias: randTensor(r, [3 * E]),
    "out_proj.weight": randTensor(r, [E, E]),
    "out_proj.bias": randTensor(r, [E]),
  };
  const mha = loadModule(tensorSource(w), (s) => new MultiheadAttention(s, { embedDim: E, numHeads: H }));
  const x = randTensor(r, [1, L, E]);
  const got = mha.forward(x, x, x).output.data;
  const lin = (W, bias, row, off) =>
    Array.from({ length: E }, (_, o) => {
      let s = bias.data[off + o];
      for (let i = 0; i < E; i++) s += W.data[(off + o) * E + i] * row[i];
      return s;
    });
  const rows = Array.from({ length: L }, (_, t) => Array.from(x.data.subarray(t * E, (t + 1) * E)));
  const q = rows.map((row) => lin(w.in_proj_weight, w.in_proj_bias, row, 0));
  const k = rows.map((row) => lin(w.in_proj_weight, w.in_proj_bias, row, E));
  const v = rows.map((row) => lin(w.in_proj_weight, w.in_proj_bias, row, 2 * E));
  let mhaErr = 0;
  for (let t = 0; t < L; t++) {
    const ctx = new Array(E).fill(0);
    for (let h = 0; h < H; h++) {
      const sc = k.map(
        (kr) => kr.slice(h * d, (h + 1) * d).reduce((s, kv, i) => s + kv * q[t][h * d + i], 0) / Math.sqrt(d),
      );
      const m = Math.max(...sc);
      const e = sc.map((z) => Math.exp(z - m));
      const z = e.reduce((s, y) => s + y, 0);
      for (let j = 0; j < L; j++) for (let i = 0; i < d; i++) ctx[h * d + i] += (e[j] / z) * v[j][h * d + i];
    }
    const ref = Array.from({ length: E }, (_, o) => {
      let s = w["out_proj.bias"].data[o];
      for (let i = 0; i < E; i++) s += w["out_proj.weight"].data[o * E + i] * ctx[i];
      return s;
    });
    for (let o = 0; o < E; o++) mhaErr = Math.max(mhaErr, Math.abs(ref[o] - got[t * E + o]));
  }
  return { backend, matmulErr, softmaxErr, sequences, padded, mhaErr };
}
